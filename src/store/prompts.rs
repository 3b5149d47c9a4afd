//! Prompts: the Discord messages that ask a member where a track goes in one layer. One per
//! (layer, track); the row outlives the bot process, so buttons and reactions work after a
//! restart.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Result, Store, StoreError};
use crate::domain::{Label, LayerId, MemberId, TrackId};

/// A prompt in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(pub i64);

impl std::fmt::Display for PromptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a prompt stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PromptState {
    /// Recorded, not posted yet.
    Pending,
    /// Posted, waiting for an answer.
    Open,
    Answered,
    /// The member chose to be asked later.
    Skipped,
    /// No longer asked (the track left the motherlist, or a newer prompt replaced it).
    Closed,
}

impl PromptState {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptState::Pending => "pending",
            PromptState::Open => "open",
            PromptState::Answered => "answered",
            PromptState::Skipped => "skipped",
            PromptState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<PromptState> {
        Some(match s {
            "pending" => PromptState::Pending,
            "open" => PromptState::Open,
            "answered" => PromptState::Answered,
            "skipped" => PromptState::Skipped,
            "closed" => PromptState::Closed,
            _ => return None,
        })
    }
}

/// A prompt as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub id: PromptId,
    pub member: MemberId,
    pub layer: LayerId,
    pub track: TrackId,
    pub channel_id: Option<u64>,
    pub message_id: Option<u64>,
    /// The model's guess when the prompt was made, and its confidence.
    pub guess: Option<(Label, f32)>,
    pub state: PromptState,
}

#[derive(Serialize, Deserialize)]
struct GuessJson {
    label: Label,
    confidence: f32,
}

fn prompt_from_row(r: &SqliteRow) -> Result<Prompt> {
    let corrupt =
        |what: &str| StoreError::Corrupt(format!("prompt {}: {what}", r.get::<i64, _>("id")));
    let track: String = r.get("track_id");
    let guess: Option<String> = r.get("guess");
    let guess = match guess {
        Some(g) => {
            let g: GuessJson = serde_json::from_str(&g).map_err(|_| corrupt("guess"))?;
            Some((g.label, g.confidence))
        }
        None => None,
    };
    let state: String = r.get("state");
    Ok(Prompt {
        id: PromptId(r.get("id")),
        member: MemberId(r.get::<i64, _>("member_id") as u64),
        layer: LayerId(r.get("layer_id")),
        track: TrackId::parse(&track).map_err(|_| corrupt("track id"))?,
        channel_id: r.get::<Option<i64>, _>("channel_id").map(|c| c as u64),
        message_id: r.get::<Option<i64>, _>("message_id").map(|m| m as u64),
        guess,
        state: PromptState::parse(&state).ok_or_else(|| corrupt("state"))?,
    })
}

/// `SELECT` of a prompt row with a `WHERE` clause (sqlx takes only literal SQL).
macro_rules! select_prompt {
    ($where:literal) => {
        concat!(
            "SELECT id, member_id, layer_id, track_id, channel_id, message_id, guess, state \
             FROM prompts WHERE ",
            $where
        )
    };
}

impl Store {
    /// Records a prompt about to be posted. `None` when the track is already asked about (or
    /// answered) in that layer; a skipped or closed prompt is asked again.
    pub async fn create_prompt(
        &self,
        member: MemberId,
        layer: LayerId,
        track: &TrackId,
        guess: Option<(Label, f32)>,
    ) -> Result<Option<PromptId>> {
        let guess = guess
            .map(|(label, confidence)| serde_json::to_string(&GuessJson { label, confidence }))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO prompts (member_id, layer_id, track_id, guess, state, created_at)
             VALUES (?, ?, ?, ?, 'pending', ?)
             ON CONFLICT(layer_id, track_id) DO UPDATE SET
                guess = excluded.guess, state = 'pending', channel_id = NULL, message_id = NULL,
                created_at = excluded.created_at, answered_at = NULL
             WHERE prompts.state IN ('skipped', 'closed') AND prompts.member_id = excluded.member_id
             RETURNING id",
        )
        .bind(member.0 as i64)
        .bind(layer.0)
        .bind(track.as_str())
        .bind(guess)
        .bind(self.now())
        .fetch_optional(self.pool())
        .await?;
        Ok(id.map(PromptId))
    }

    /// Records where a prompt was posted; it is open from now on.
    pub async fn set_prompt_posted(
        &self,
        prompt: PromptId,
        channel_id: u64,
        message_id: u64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE prompts SET channel_id = ?, message_id = ?, state = 'open' WHERE id = ?",
        )
        .bind(channel_id as i64)
        .bind(message_id as i64)
        .bind(prompt.0)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn prompt(&self, prompt: PromptId) -> Result<Option<Prompt>> {
        sqlx::query(select_prompt!("id = ?"))
            .bind(prompt.0)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(prompt_from_row)
            .transpose()
    }

    /// The prompt posted as this Discord message.
    pub async fn prompt_by_message(&self, message_id: u64) -> Result<Option<Prompt>> {
        sqlx::query(select_prompt!("message_id = ?"))
            .bind(message_id as i64)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(prompt_from_row)
            .transpose()
    }

    /// Moves a prompt to `state` (an answer stamps `answered_at`).
    pub async fn set_prompt_state(&self, prompt: PromptId, state: PromptState) -> Result<()> {
        let answered_at = (state == PromptState::Answered).then(|| self.now());
        sqlx::query("UPDATE prompts SET state = ?, answered_at = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(answered_at)
            .bind(prompt.0)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets a prompt that could not be posted.
    pub async fn delete_prompt(&self, prompt: PromptId) -> Result<()> {
        sqlx::query("DELETE FROM prompts WHERE id = ?")
            .bind(prompt.0)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// How many of the member's prompts wait for an answer (pending or open).
    pub async fn open_prompt_count(&self, member: MemberId) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM prompts WHERE member_id = ? AND state IN ('pending', 'open')",
        )
        .bind(member.0 as i64)
        .fetch_one(self.pool())
        .await?;
        Ok(n as u32)
    }
}

impl Store {
    /// Tracks a prompt already asks (or asked) about in a layer.
    pub async fn prompted_tracks(&self, layer: LayerId) -> Result<Vec<TrackId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT track_id FROM prompts WHERE layer_id = ?")
                .bind(layer.0)
                .fetch_all(self.pool())
                .await?;
        Ok(ids.iter().filter_map(|i| TrackId::parse(i).ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LayerRules, SublistId, Track};

    async fn fresh() -> (tempfile::TempDir, Store, LayerId, TrackId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_at(&dir.path().join("t.db"), &[7; 32])
            .await
            .unwrap();
        let layer = store
            .create_layer(
                MemberId(1),
                "Mood",
                LayerRules {
                    mutual: true,
                    complete: false,
                },
            )
            .await
            .unwrap();
        let track = TrackId::parse("6f807x0ima9a1j3VPbc7VN").unwrap();
        store
            .upsert_tracks(&[Track::bare(track.clone(), "Song")])
            .await
            .unwrap();
        (dir, store, layer.id, track)
    }

    #[tokio::test]
    async fn prompts_round_trip_by_id_and_message() {
        let (_dir, store, layer, track) = fresh().await;
        let guess = Some((Label::one(SublistId(3)), 0.5));
        let id = store
            .create_prompt(MemberId(1), layer, &track, guess.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.open_prompt_count(MemberId(1)).await.unwrap(), 1);
        store
            .set_prompt_posted(id, 10, u64::MAX >> 1)
            .await
            .unwrap();
        let p = store
            .prompt_by_message(u64::MAX >> 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.id, id);
        assert_eq!(p.state, PromptState::Open);
        assert_eq!(p.guess, guess);
        assert_eq!(p.channel_id, Some(10));
        assert_eq!(store.prompt(id).await.unwrap(), Some(p));
        assert_eq!(store.prompt_by_message(1).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_track_is_asked_once_per_layer_until_skipped() {
        let (_dir, store, layer, track) = fresh().await;
        let m = MemberId(1);
        let id = store
            .create_prompt(m, layer, &track, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.create_prompt(m, layer, &track, None).await.unwrap(),
            None
        );
        store
            .set_prompt_state(id, PromptState::Answered)
            .await
            .unwrap();
        assert_eq!(
            store.create_prompt(m, layer, &track, None).await.unwrap(),
            None
        );
        assert_eq!(store.open_prompt_count(m).await.unwrap(), 0);
        store
            .set_prompt_state(id, PromptState::Skipped)
            .await
            .unwrap();
        assert_eq!(
            store.create_prompt(m, layer, &track, None).await.unwrap(),
            Some(id),
            "a skipped track is asked again, in the same row"
        );
        store.delete_prompt(id).await.unwrap();
        assert_eq!(store.prompt(id).await.unwrap(), None);
    }
}
