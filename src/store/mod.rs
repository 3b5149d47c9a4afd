//! SQLite through sqlx.
//!
//! Stand-in on the `spotify` branch for the lead's `Store` (same API); main's version wins at
//! merge, keeping the `mod` lines of the Spotify table families.

mod links;
mod playlists;
mod sync;
mod tracks;

pub use links::{LinkRow, LinkStatus, OAuthState};
pub use sync::SyncState;

use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::SecretString;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::domain::MemberId;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a sealed secret could not be opened (wrong key or corrupted data)")]
    Unseal,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    cipher: Arc<XChaCha20Poly1305>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and runs the migrations.
    pub async fn open_at(path: &Path, key: [u8; 32]) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            cipher: Arc::new(XChaCha20Poly1305::new(&key.into())),
        })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Encrypts a secret: a random 24-byte nonce followed by the ciphertext.
    pub(crate) fn seal(&self, secret: &str) -> Vec<u8> {
        let nonce: [u8; 24] = rand::random();
        let mut out = nonce.to_vec();
        // Encryption with a valid key and nonce cannot fail.
        if let Ok(ct) = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), secret.as_bytes())
        {
            out.extend(ct);
        }
        out
    }

    pub(crate) fn unseal(&self, sealed: &[u8]) -> Result<SecretString, StoreError> {
        if sealed.len() < 24 {
            return Err(StoreError::Unseal);
        }
        let (nonce, ct) = sealed.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| StoreError::Unseal)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| StoreError::Unseal)
    }

    pub async fn ensure_member(&self, member: MemberId) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO members (id, created_at) VALUES (?, ?) ON CONFLICT(id) DO NOTHING",
        )
        .bind(member.0 as i64)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a member and everything of theirs.
    pub async fn forget_member(&self, member: MemberId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM members WHERE id = ?")
            .bind(member.0 as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
