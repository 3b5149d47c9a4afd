//! SQLite through sqlx.
//!
//! Temporary shell until the lead's `Store` lands on main: only what the job queue needs.

mod jobs;

pub use jobs::{CancelOutcome, FailOutcome, Inserted, JobId, JobRow, JobState, NewJob, ReadyJob};

use std::path::Path;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

use crate::domain::MemberId;

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database holds a value sublist cannot read: {0}")]
    Corrupt(String),
}

/// The handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and runs the migrations.
    pub async fn open_at(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePool::connect_with(options).await?;
        sqlx::migrate!().run(&pool).await?;
        Ok(Self { pool })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Makes sure a members row exists for `member`.
    pub async fn ensure_member(&self, member: MemberId) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO members (id, created_at) VALUES (?, ?)")
            .bind(member.0 as i64)
            .bind(chrono::Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
