//! Per-server settings: the channels for announcements and prompts.

use sqlx::Row;

use super::{Result, Store};

/// What a server's managers chose with `/setup`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuildSettings {
    pub guild_id: u64,
    pub announce_channel: Option<u64>,
    pub prompt_channel: Option<u64>,
}

impl Store {
    /// The server's settings (nothing set when it never ran `/setup`).
    pub async fn guild_settings(&self, guild_id: u64) -> Result<GuildSettings> {
        let row = sqlx::query(
            "SELECT announce_channel_id, prompt_channel_id FROM guild_settings WHERE guild_id = ?",
        )
        .bind(guild_id as i64)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => GuildSettings {
                guild_id,
                announce_channel: r
                    .get::<Option<i64>, _>("announce_channel_id")
                    .map(|c| c as u64),
                prompt_channel: r
                    .get::<Option<i64>, _>("prompt_channel_id")
                    .map(|c| c as u64),
            },
            None => GuildSettings {
                guild_id,
                ..GuildSettings::default()
            },
        })
    }

    /// Sets both channels of a server (None: not set).
    pub async fn set_guild_channels(
        &self,
        guild_id: u64,
        announce_channel: Option<u64>,
        prompt_channel: Option<u64>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO guild_settings (guild_id, announce_channel_id, prompt_channel_id)
             VALUES (?, ?, ?)
             ON CONFLICT(guild_id) DO UPDATE SET
                announce_channel_id = excluded.announce_channel_id,
                prompt_channel_id = excluded.prompt_channel_id",
        )
        .bind(guild_id as i64)
        .bind(announce_channel.map(|c| c as i64))
        .bind(prompt_channel.map(|c| c as i64))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn guild_channels_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_at(&dir.path().join("t.db"), &[7; 32])
            .await
            .unwrap();
        let g = u64::MAX >> 1;
        assert_eq!(
            store.guild_settings(g).await.unwrap().announce_channel,
            None
        );
        store.set_guild_channels(g, Some(5), None).await.unwrap();
        store.set_guild_channels(g, Some(6), Some(7)).await.unwrap();
        let s = store.guild_settings(g).await.unwrap();
        assert_eq!((s.announce_channel, s.prompt_channel), (Some(6), Some(7)));
    }
}
