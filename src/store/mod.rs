//! SQLite through sqlx: the one place that holds SQL. Migrations in `migrations/` run at
//! start-up; WAL, foreign keys and a busy timeout are set on every connection. One file per
//! table family, each an `impl Store` block. Secrets are sealed before they reach a row.

mod cipher;
mod guilds;
mod jobs;
mod labels;
mod layers;
mod links;
mod members;
mod models;
mod playlists;
mod prompts;
mod sync;
mod tracks;

pub use cipher::Cipher;
pub use guilds::GuildSettings;
pub use jobs::{
    CancelOutcome, FailOutcome, Inserted, JobId, JobRow, JobState, NewJob, ReadyJob, TrainReply,
};
pub use labels::LabelCount;
pub use links::{Bind, LinkRow, LinkStatus, OAuthState};
pub use members::MemberSettings;
pub use models::StoredModel;
pub(crate) use playlists::PendingOp;
pub use prompts::{CloseReason, Prompt, PromptId, PromptState};
pub use sync::SyncState;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::clock::Clock;
use crate::domain::DomainError;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request broke a rule of the domain; the message is for the member.
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(
        "the encryption key does not match the one this database was sealed with; \
         use the original store.encryption_key (tokens sealed with another key cannot be read)"
    )]
    WrongKey,
    #[error("a sealed value could not be opened: {0}")]
    Unseal(&'static str),
    #[error("the database holds a value it cannot read: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("could not migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store: a pool of SQLite connections and the cipher that seals secrets. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    cipher: Arc<Cipher>,
    clock: Clock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

const KEY_CHECK: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &str = "sublist key check v1";

impl Store {
    /// Opens (creating if needed) the database at `path`, runs the migrations, and checks that
    /// `key` is the key the database's secrets were sealed with.
    pub async fn open_at(path: &Path, key: &[u8; 32]) -> Result<Store> {
        Self::open_with_clock(path, key, Clock::system()).await
    }

    /// Like [`Store::open_at`], with `clock` as the time every row is stamped with.
    pub async fn open_with_clock(path: &Path, key: &[u8; 32], clock: Clock) -> Result<Store> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let store = Store {
            pool,
            cipher: Arc::new(Cipher::new(key)),
            clock,
        };
        store.check_key().await?;
        Ok(store)
    }

    /// Runs the migrations only (for `sublist migrate`), returning how many are applied.
    pub async fn migrate_at(path: &Path, key: &[u8; 32]) -> Result<usize> {
        let store = Self::open_at(path, key).await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&store.pool)
            .await?;
        store.close().await;
        Ok(n as usize)
    }

    /// Closes every connection, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The current time, as every table stores it.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The clock the store reads the time from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A transaction that writes: it takes SQLite's write lock at `BEGIN` (IMMEDIATE), so it
    /// waits its turn under the busy timeout instead of failing with "database is locked"
    /// when another writer commits between its reads and its writes (a deferred transaction
    /// cannot be retried then). Every transaction that writes begins here.
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Seals a secret for a row.
    pub(crate) fn seal(&self, secret: &str) -> Vec<u8> {
        self.cipher.seal(secret.as_bytes())
    }

    /// Opens a sealed secret.
    pub(crate) fn unseal(&self, sealed: &[u8]) -> Result<SecretString> {
        let bytes = self.cipher.open(sealed)?;
        String::from_utf8(bytes)
            .map(SecretString::from)
            .map_err(|_| StoreError::Unseal("not text"))
    }

    async fn check_key(&self) -> Result<()> {
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(KEY_CHECK)
            .fetch_optional(&self.pool)
            .await?;
        match sealed {
            Some(sealed) => match self.cipher.open(&sealed) {
                Ok(plain) if plain == KEY_CHECK_PLAINTEXT.as_bytes() => Ok(()),
                _ => Err(StoreError::WrongKey),
            },
            None => {
                sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
                    .bind(KEY_CHECK)
                    .bind(self.cipher.seal(KEY_CHECK_PLAINTEXT.as_bytes()))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
