//! Spotify links (sealed tokens, expiry, status) and OAuth `state` values.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::MemberId;

/// Where a link stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkStatus {
    Active,
    /// Spotify refused the refresh token (`invalid_grant`): the member must link again.
    Expired,
    Revoked,
}

impl LinkStatus {
    fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Active => "active",
            LinkStatus::Expired => "expired",
            LinkStatus::Revoked => "revoked",
        }
    }
    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(LinkStatus::Active),
            "expired" => Ok(LinkStatus::Expired),
            "revoked" => Ok(LinkStatus::Revoked),
            other => Err(StoreError::Corrupt(format!("link status {other:?}"))),
        }
    }
}

/// A member's Spotify link with its tokens opened. `Debug` never shows the tokens.
#[derive(Clone)]
pub struct LinkRow {
    pub member: MemberId,
    pub app_client_id: String,
    pub account_id: String,
    pub user_id: String,
    pub display_name: Option<String>,
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub authorized_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
    pub status: LinkStatus,
    pub linked_at: DateTime<Utc>,
}

impl std::fmt::Debug for LinkRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkRow")
            .field("member", &self.member)
            .field("app_client_id", &self.app_client_id)
            .field("account_id", &self.account_id)
            .field("user_id", &self.user_id)
            .field("status", &self.status)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

/// A pending OAuth `state`.
#[derive(Clone, Debug)]
pub struct OAuthState {
    pub state: String,
    pub member: MemberId,
    pub app_client_id: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    pub(crate) async fn insert_oauth_state(&self, s: &OAuthState) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_states (state, member_id, app_client_id, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&s.state)
        .bind(s.member.0 as i64)
        .bind(&s.app_client_id)
        .bind(self.now())
        .bind(s.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Reads a pending state without using it up.
    pub(crate) async fn peek_oauth_state(
        &self,
        state: &str,
    ) -> Result<Option<OAuthState>, StoreError> {
        let row = sqlx::query(
            "SELECT state, member_id, app_client_id, expires_at FROM oauth_states WHERE state = ?",
        )
        .bind(state)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(OAuthState {
                state: r.try_get("state")?,
                member: MemberId(r.try_get::<i64, _>("member_id")? as u64),
                app_client_id: r.try_get("app_client_id")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Uses a state up; true when it was still there (so only one caller wins).
    pub(crate) async fn consume_oauth_state(&self, state: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM oauth_states WHERE state = ?")
            .bind(state)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Drops states past their expiry.
    pub(crate) async fn purge_oauth_states(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let rows = sqlx::query("SELECT state, expires_at FROM oauth_states")
            .fetch_all(self.pool())
            .await?;
        let mut n = 0;
        for r in rows {
            let at: DateTime<Utc> = r.try_get("expires_at")?;
            if at <= now {
                let state: String = r.try_get("state")?;
                n += u64::from(self.consume_oauth_state(&state).await?);
            }
        }
        Ok(n)
    }

    /// How many members each app holds (any status: an expired link still has its allowlist
    /// slot until the member unlinks).
    pub(crate) async fn links_per_app(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let rows = sqlx::query(
            "SELECT app_client_id, COUNT(*) AS n FROM spotify_links GROUP BY app_client_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("app_client_id")?,
                    r.try_get::<i64, _>("n")? as u32,
                ))
            })
            .collect()
    }

    pub(crate) async fn link(&self, member: MemberId) -> Result<Option<LinkRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM spotify_links WHERE member_id = ?")
            .bind(member.0 as i64)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| self.link_from_row(&r)).transpose()
    }

    pub(crate) async fn link_by_account(
        &self,
        account_id: &str,
    ) -> Result<Option<LinkRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM spotify_links WHERE account_id = ?")
            .bind(account_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| self.link_from_row(&r)).transpose()
    }

    pub(crate) async fn all_links(&self) -> Result<Vec<LinkRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM spotify_links")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| self.link_from_row(r)).collect()
    }

    fn link_from_row(&self, r: &sqlx::sqlite::SqliteRow) -> Result<LinkRow, StoreError> {
        let open = |col: &str| -> Result<Option<SecretString>, StoreError> {
            let sealed: Option<Vec<u8>> = r.try_get(col)?;
            sealed.map(|s| self.unseal(&s)).transpose()
        };
        Ok(LinkRow {
            member: MemberId(r.try_get::<i64, _>("member_id")? as u64),
            app_client_id: r.try_get("app_client_id")?,
            account_id: r.try_get("account_id")?,
            user_id: r.try_get("user_id")?,
            display_name: r.try_get("display_name")?,
            access_token: open("access_token")?,
            refresh_token: open("refresh_token")?,
            access_expires_at: r.try_get("access_expires_at")?,
            authorized_at: r.try_get("authorized_at")?,
            refresh_expires_at: r.try_get("refresh_expires_at")?,
            status: LinkStatus::parse(&r.try_get::<String, _>("status")?)?,
            linked_at: r.try_get("linked_at")?,
        })
    }

    /// Inserts or replaces a member's link, sealing the tokens.
    pub(crate) async fn put_link(&self, l: &LinkRow) -> Result<(), StoreError> {
        let seal = |s: &Option<SecretString>| s.as_ref().map(|s| self.seal(s.expose_secret()));
        sqlx::query(
            "INSERT INTO spotify_links (member_id, app_client_id, account_id, user_id,
                 display_name, access_token, refresh_token, access_expires_at, authorized_at,
                 refresh_expires_at, status, linked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(member_id) DO UPDATE SET app_client_id = excluded.app_client_id,
                 account_id = excluded.account_id, user_id = excluded.user_id,
                 display_name = excluded.display_name, access_token = excluded.access_token,
                 refresh_token = excluded.refresh_token,
                 access_expires_at = excluded.access_expires_at,
                 authorized_at = excluded.authorized_at,
                 refresh_expires_at = excluded.refresh_expires_at, status = excluded.status,
                 linked_at = excluded.linked_at",
        )
        .bind(l.member.0 as i64)
        .bind(&l.app_client_id)
        .bind(&l.account_id)
        .bind(&l.user_id)
        .bind(&l.display_name)
        .bind(seal(&l.access_token))
        .bind(seal(&l.refresh_token))
        .bind(l.access_expires_at)
        .bind(l.authorized_at)
        .bind(l.refresh_expires_at)
        .bind(l.status.as_str())
        .bind(l.linked_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores refreshed tokens; `refresh_token` None keeps the stored one.
    pub(crate) async fn update_tokens(
        &self,
        member: MemberId,
        access_token: &SecretString,
        access_expires_at: DateTime<Utc>,
        refresh_token: Option<&SecretString>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE spotify_links SET access_token = ?, access_expires_at = ?,
                 refresh_token = COALESCE(?, refresh_token)
             WHERE member_id = ?",
        )
        .bind(self.seal(access_token.expose_secret()))
        .bind(access_expires_at)
        .bind(refresh_token.map(|t| self.seal(t.expose_secret())))
        .bind(member.0 as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks a link expired and drops its tokens; the rest of the member's data stays.
    pub(crate) async fn expire_link(&self, member: MemberId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE spotify_links SET status = 'expired', access_token = NULL,
                 refresh_token = NULL, access_expires_at = NULL
             WHERE member_id = ?",
        )
        .bind(member.0 as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes a member's link and its tokens.
    pub(crate) async fn delete_link(&self, member: MemberId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM spotify_links WHERE member_id = ?")
            .bind(member.0 as i64)
            .execute(self.pool())
            .await?;
        sqlx::query("DELETE FROM oauth_states WHERE member_id = ?")
            .bind(member.0 as i64)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
