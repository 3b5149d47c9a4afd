//! Members and their settings; forgetting a member.

use sqlx::Row;

use super::{Result, Store, now};
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
        .bind(now())
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
}
