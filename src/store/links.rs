//! Spotify links (sealed tokens, expiry, status), links waiting for their member's
//! confirmation, OAuth `state` values with the app slots they reserve, and quota pauses.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::MemberId;

/// Where a link stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkStatus {
    Active,
    /// Spotify refused the refresh token (`invalid_grant`) at the end of its six months: the
    /// member must link again.
    Expired,
    /// Spotify refused the refresh token well before its six months were up: the member (or
    /// Spotify) removed sublist's access.
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
    /// When the member was warned that the link dies soon; None until then.
    pub expiry_warned_at: Option<DateTime<Utc>>,
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

/// What binding a confirmed link did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    Bound,
    /// The Spotify account is linked to another member.
    AccountElsewhere,
    /// The member is linked to another Spotify account (its display name or user id).
    AlreadyLinked(String),
    /// The app has no free slot.
    AppFull,
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
            expiry_warned_at: r.try_get("expiry_warned_at")?,
        })
    }

    /// Inserts or replaces a member's link, sealing the tokens.
    async fn upsert_link<'e, E: sqlx::SqliteExecutor<'e>>(
        &self,
        executor: E,
        l: &LinkRow,
    ) -> Result<(), StoreError> {
        let seal = |s: &Option<SecretString>| s.as_ref().map(|s| self.seal(s.expose_secret()));
        sqlx::query(
            "INSERT INTO spotify_links (member_id, app_client_id, account_id, user_id,
                 display_name, access_token, refresh_token, access_expires_at, authorized_at,
                 refresh_expires_at, status, linked_at, expiry_warned_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(member_id) DO UPDATE SET app_client_id = excluded.app_client_id,
                 account_id = excluded.account_id, user_id = excluded.user_id,
                 display_name = excluded.display_name, access_token = excluded.access_token,
                 refresh_token = excluded.refresh_token,
                 access_expires_at = excluded.access_expires_at,
                 authorized_at = excluded.authorized_at,
                 refresh_expires_at = excluded.refresh_expires_at, status = excluded.status,
                 linked_at = excluded.linked_at, expiry_warned_at = excluded.expiry_warned_at",
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
        .bind(l.expiry_warned_at)
        .execute(executor)
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

    /// Ends a link as `status` (expired or revoked) and drops its tokens; the rest of the
    /// member's data stays.
    pub(crate) async fn end_link(
        &self,
        member: MemberId,
        status: LinkStatus,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE spotify_links SET status = ?, access_token = NULL,
                 refresh_token = NULL, access_expires_at = NULL
             WHERE member_id = ?",
        )
        .bind(status.as_str())
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
        self.delete_pending_link(member).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Chooses the app for a member's new link and reserves its slot by recording the OAuth
    /// `state`, in one IMMEDIATE transaction, so that links started together cannot exceed an
    /// app's cap. The member's previous app is kept (their link, in any status, still holds its
    /// slot); otherwise the first of `apps` (client id, user cap) with a free slot. A slot is
    /// held by every other member's link and by every other member's unexpired attempt (a
    /// `state`, or a link waiting for confirmation). None when every app is full.
    pub(crate) async fn reserve_link_slot(
        &self,
        member: MemberId,
        state: &str,
        expires_at: DateTime<Utc>,
        apps: &[(&str, u32)],
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.write_tx().await?;
        let previous: Option<String> =
            sqlx::query_scalar("SELECT app_client_id FROM spotify_links WHERE member_id = ?")
                .bind(member.0 as i64)
                .fetch_optional(&mut *tx)
                .await?;
        let chosen = match previous.filter(|p| apps.iter().any(|(a, _)| a == p)) {
            Some(p) => Some(p),
            None => {
                let mut holders: HashMap<String, HashSet<i64>> = HashMap::new();
                let links = sqlx::query(
                    "SELECT app_client_id, member_id FROM spotify_links WHERE member_id != ?",
                )
                .bind(member.0 as i64)
                .fetch_all(&mut *tx)
                .await?;
                for r in links {
                    holders
                        .entry(r.try_get("app_client_id")?)
                        .or_default()
                        .insert(r.try_get("member_id")?);
                }
                for table in ["oauth_states", "pending_links"] {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT app_client_id, member_id, expires_at FROM {table} \
                         WHERE member_id != ?"
                    )))
                    .bind(member.0 as i64)
                    .fetch_all(&mut *tx)
                    .await?;
                    for r in rows {
                        let until: DateTime<Utc> = r.try_get("expires_at")?;
                        if until > now {
                            holders
                                .entry(r.try_get("app_client_id")?)
                                .or_default()
                                .insert(r.try_get("member_id")?);
                        }
                    }
                }
                apps.iter()
                    .find(|(a, cap)| holders.get(*a).map_or(0, HashSet::len) < *cap as usize)
                    .map(|(a, _)| a.to_string())
            }
        };
        let Some(app) = chosen else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO oauth_states (state, member_id, app_client_id, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(state)
        .bind(member.0 as i64)
        .bind(&app)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(app))
    }

    /// Holds an authorised account until its member confirms it (one per member; a newer one
    /// replaces it). Tokens are sealed.
    pub(crate) async fn put_pending_link(
        &self,
        l: &LinkRow,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let seal = |s: &Option<SecretString>| s.as_ref().map(|s| self.seal(s.expose_secret()));
        sqlx::query(
            "INSERT OR REPLACE INTO pending_links (member_id, app_client_id, account_id, user_id,
                 display_name, access_token, refresh_token, access_expires_at, authorized_at,
                 refresh_expires_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The account waiting for the member's confirmation, as the link it would become (active,
    /// linked when authorised), and until when it can be confirmed.
    pub(crate) async fn pending_link(
        &self,
        member: MemberId,
    ) -> Result<Option<(LinkRow, DateTime<Utc>)>, StoreError> {
        let row = sqlx::query("SELECT * FROM pending_links WHERE member_id = ?")
            .bind(member.0 as i64)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let open = |col: &str| -> Result<Option<SecretString>, StoreError> {
            let sealed: Option<Vec<u8>> = r.try_get(col)?;
            sealed.map(|s| self.unseal(&s)).transpose()
        };
        let authorized_at: DateTime<Utc> = r.try_get("authorized_at")?;
        let link = LinkRow {
            member,
            app_client_id: r.try_get("app_client_id")?,
            account_id: r.try_get("account_id")?,
            user_id: r.try_get("user_id")?,
            display_name: r.try_get("display_name")?,
            access_token: open("access_token")?,
            refresh_token: open("refresh_token")?,
            access_expires_at: r.try_get("access_expires_at")?,
            authorized_at,
            refresh_expires_at: r.try_get("refresh_expires_at")?,
            status: LinkStatus::Active,
            linked_at: authorized_at,
            expiry_warned_at: None,
        };
        Ok(Some((link, r.try_get("expires_at")?)))
    }

    /// Drops the account waiting for the member's confirmation, if any.
    pub(crate) async fn delete_pending_link(&self, member: MemberId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM pending_links WHERE member_id = ?")
            .bind(member.0 as i64)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Binds a confirmed link, in one IMMEDIATE transaction: the account must be no other
    /// member's, the member must not be linked to another account, and the app must have a
    /// free slot (`cap` links, the member's own not counted). The member's waiting link goes.
    pub(crate) async fn bind_link(&self, l: &LinkRow, cap: u32) -> Result<Bind, StoreError> {
        let mut tx = self.write_tx().await?;
        let elsewhere: Option<i64> = sqlx::query_scalar(
            "SELECT member_id FROM spotify_links WHERE account_id = ? AND member_id != ?",
        )
        .bind(&l.account_id)
        .bind(l.member.0 as i64)
        .fetch_optional(&mut *tx)
        .await?;
        if elsewhere.is_some() {
            return Ok(Bind::AccountElsewhere);
        }
        let existing = sqlx::query(
            "SELECT app_client_id, account_id, user_id, display_name, status
             FROM spotify_links WHERE member_id = ?",
        )
        .bind(l.member.0 as i64)
        .fetch_optional(&mut *tx)
        .await?;
        let mut on_app_already = false;
        if let Some(r) = existing {
            let account: String = r.try_get("account_id")?;
            let status = LinkStatus::parse(&r.try_get::<String, _>("status")?)?;
            if status == LinkStatus::Active && account != l.account_id {
                let name: Option<String> = r.try_get("display_name")?;
                let user: String = r.try_get("user_id")?;
                return Ok(Bind::AlreadyLinked(name.unwrap_or(user)));
            }
            on_app_already = r.try_get::<String, _>("app_client_id")? == l.app_client_id;
        }
        if !on_app_already {
            let used: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM spotify_links WHERE app_client_id = ? AND member_id != ?",
            )
            .bind(&l.app_client_id)
            .bind(l.member.0 as i64)
            .fetch_one(&mut *tx)
            .await?;
            if used >= i64::from(cap) {
                return Ok(Bind::AppFull);
            }
        }
        self.upsert_link(&mut *tx, l).await?;
        sqlx::query("DELETE FROM pending_links WHERE member_id = ?")
            .bind(l.member.0 as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Bind::Bound)
    }

    /// Records that the member is being warned that their active link dies soon; true for the
    /// one caller that records it (a link is warned about once).
    pub(crate) async fn claim_expiry_warning(
        &self,
        member: MemberId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE spotify_links SET expiry_warned_at = ?
             WHERE member_id = ? AND status = 'active' AND expiry_warned_at IS NULL",
        )
        .bind(now)
        .bind(member.0 as i64)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The members whose active link goes through this app.
    pub(crate) async fn members_on_app(&self, app: &str) -> Result<Vec<MemberId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT member_id FROM spotify_links WHERE app_client_id = ? AND status = 'active'
             ORDER BY member_id",
        )
        .bind(app)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().map(|m| MemberId(m as u64)).collect())
    }

    /// Records that an app is paused until `until` (a later time extends the pause in
    /// progress). True when this begins a new pause rather than extending one.
    pub(crate) async fn record_app_pause(
        &self,
        app: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let current: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT paused_until FROM app_pauses WHERE app_client_id = ?")
                .bind(app)
                .fetch_optional(&mut *tx)
                .await?;
        let in_progress = current.is_some_and(|t| t > now);
        if in_progress {
            if current.is_some_and(|t| until > t) {
                sqlx::query("UPDATE app_pauses SET paused_until = ? WHERE app_client_id = ?")
                    .bind(until)
                    .bind(app)
                    .execute(&mut *tx)
                    .await?;
            }
        } else {
            sqlx::query(
                "INSERT OR REPLACE INTO app_pauses (app_client_id, paused_until, since)
                 VALUES (?, ?, ?)",
            )
            .bind(app)
            .bind(until)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(!in_progress)
    }

    /// The apps paused at `now`, and until when.
    pub(crate) async fn app_pauses(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query("SELECT app_client_id, paused_until FROM app_pauses")
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let until: DateTime<Utc> = r.try_get("paused_until")?;
            if until > now {
                out.push((r.try_get("app_client_id")?, until));
            }
        }
        Ok(out)
    }
}
