//! Members and their settings; forgetting a member.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store};
use crate::domain::{MemberId, Motherlist};

/// What a member chose with `/settings`.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberSettings {
    pub motherlist: Motherlist,
    /// Prompts by direct message (true) or in the server's prompt channel.
    pub prompts_in_dm: bool,
    /// Sort confident tracks without asking.
    pub auto_sort: bool,
    /// Confidence under which a track is asked about instead of sorted.
    pub ask_below: f32,
    /// Most open prompts at once.
    pub prompt_budget: u32,
    /// The server the member last used the bot in.
    pub guild_id: Option<u64>,
}

impl Store {
    /// Records the member if they are new. Idempotent.
    pub async fn ensure_member(&self, member: MemberId) -> Result<()> {
        sqlx::query(
            "INSERT INTO members (id, created_at) VALUES (?, ?) ON CONFLICT(id) DO NOTHING",
        )
        .bind(member.0 as i64)
        .bind(self.now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every member, in the order they arrived.
    pub async fn members(&self) -> Result<Vec<MemberId>> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM members ORDER BY created_at, id")
            .fetch_all(self.pool())
            .await?;
        Ok(ids.into_iter().map(|i| MemberId(i as u64)).collect())
    }

    /// The member's settings, or `None` if they never used the bot.
    pub async fn member_settings(&self, member: MemberId) -> Result<Option<MemberSettings>> {
        let row = sqlx::query(
            "SELECT motherlist, prompts_in_dm, auto_sort, ask_below, prompt_budget, guild_id
             FROM members WHERE id = ?",
        )
        .bind(member.0 as i64)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| MemberSettings {
            motherlist: match r.get::<Option<String>, _>("motherlist") {
                Some(p) => Motherlist::Playlist(p),
                None => Motherlist::LikedSongs,
            },
            prompts_in_dm: r.get("prompts_in_dm"),
            auto_sort: r.get("auto_sort"),
            ask_below: r.get::<f64, _>("ask_below") as f32,
            prompt_budget: r.get::<i64, _>("prompt_budget").max(0) as u32,
            guild_id: r.get::<Option<i64>, _>("guild_id").map(|g| g as u64),
        }))
    }

    /// Saves the member's settings (creating the member if needed).
    pub async fn set_member_settings(&self, member: MemberId, s: &MemberSettings) -> Result<()> {
        self.ensure_member(member).await?;
        let motherlist = match &s.motherlist {
            Motherlist::LikedSongs => None,
            Motherlist::Playlist(p) => Some(p.as_str()),
        };
        sqlx::query(
            "UPDATE members SET motherlist = ?, prompts_in_dm = ?, auto_sort = ?, ask_below = ?,
             prompt_budget = ?, guild_id = ? WHERE id = ?",
        )
        .bind(motherlist)
        .bind(s.prompts_in_dm)
        .bind(s.auto_sort)
        .bind(s.ask_below as f64)
        .bind(s.prompt_budget as i64)
        .bind(s.guild_id.map(|g| g as i64))
        .bind(member.0 as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets the member: their link, tokens, layers, sublists, labels, models, prompts and
    /// jobs go in one transaction (the schema cascades from `members`). Track metadata, shared
    /// with other members, stays. Returns whether the member existed.
    pub async fn delete_member(&self, member: MemberId) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM members WHERE id = ?")
            .bind(member.0 as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets the member like [`Store::delete_member`], and returns the Discord messages
    /// (channel, message) the bot posted for them (prompts, announcements), read in the same
    /// IMMEDIATE transaction, for the caller to delete from Discord. None when the member was
    /// not known.
    pub async fn forget_member(&self, member: MemberId) -> Result<Option<Vec<(u64, u64)>>> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "SELECT channel_id, message_id FROM prompts
                 WHERE member_id = ? AND channel_id IS NOT NULL AND message_id IS NOT NULL
             UNION
             SELECT channel_id, message_id FROM member_messages WHERE member_id = ?",
        )
        .bind(member.0 as i64)
        .bind(member.0 as i64)
        .fetch_all(&mut *tx)
        .await?;
        let messages = rows
            .iter()
            .map(|r| {
                (
                    r.get::<i64, _>("channel_id") as u64,
                    r.get::<i64, _>("message_id") as u64,
                )
            })
            .collect();
        let done = sqlx::query("DELETE FROM members WHERE id = ?")
            .bind(member.0 as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((done.rows_affected() > 0).then_some(messages))
    }

    /// Records a message the bot posted for the member (an announcement, a digest), so that
    /// forgetting them deletes it. False when the member is not (or no longer) known: the
    /// caller should delete the message itself.
    pub async fn record_member_message(
        &self,
        member: MemberId,
        channel: u64,
        message: u64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO member_messages (message_id, channel_id, member_id, posted_at)
             SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM members WHERE id = ?)
             ON CONFLICT(message_id) DO NOTHING",
        )
        .bind(message as i64)
        .bind(channel as i64)
        .bind(member.0 as i64)
        .bind(now)
        .bind(member.0 as i64)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM members WHERE id = ?")
            .bind(member.0 as i64)
            .fetch_optional(self.pool())
            .await?;
        Ok(known.is_some())
    }
}
