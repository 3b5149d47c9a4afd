//! Prompts: the Discord messages that ask a member where a track goes in one layer. One per
//! (layer, track); the row outlives the bot process, so buttons and reactions work after a
//! restart.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Result, Store, StoreError};
use crate::domain::{Guess, LayerId, MemberId, TrackId};

/// A prompt recorded but not posted within this long was lost (the process stopped between
/// the two): it is forgotten, so that it no longer takes up the member's budget.
const UNPOSTED_AFTER_MINUTES: i64 = 5;

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
    /// The member chose to be asked later: only `/label` asks about it again.
    Skipped,
    /// No longer asked: the track left the motherlist, was answered another way, or was sorted
    /// with confidence (see [`CloseReason`]).
    Closed,
}

/// Why an open prompt was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The track left the motherlist (unliked, or gone from the playlist).
    Unliked,
    /// The track got the member's label another way: a hand edit on Spotify, an import.
    Answered,
    /// The model placed the track with enough confidence.
    Sorted,
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
    /// The model's guess when the prompt was made: its confidence and its evidence.
    pub guess: Option<Guess>,
    pub state: PromptState,
}

fn prompt_from_row(r: &SqliteRow) -> Result<Prompt> {
    let corrupt =
        |what: &str| StoreError::Corrupt(format!("prompt {}: {what}", r.get::<i64, _>("id")));
    let track: String = r.get("track_id");
    let guess: Option<String> = r.get("guess");
    let guess = match guess {
        Some(g) => Some(serde_json::from_str(&g).map_err(|_| corrupt("guess"))?),
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
        guess: Option<&Guess>,
    ) -> Result<Option<PromptId>> {
        let guess = guess
            .map(serde_json::to_string)
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

    /// How many more prompts the member's budget of open prompts allows, after forgetting the
    /// ones a stopped process recorded and never posted. A member the bot does not know has
    /// no room.
    pub async fn prompt_room(&self, member: MemberId) -> Result<u32> {
        let before = self.now() - chrono::Duration::minutes(UNPOSTED_AFTER_MINUTES);
        self.reclaim_unposted_prompts(member, before).await?;
        let budget = self
            .member_settings(member)
            .await?
            .map_or(0, |s| s.prompt_budget);
        Ok(budget.saturating_sub(self.open_prompt_count(member).await?))
    }
}

impl Store {
    /// Closes the member's open prompts whose question is settled: the track left the
    /// motherlist, has a label given another way, or was placed by the model (which places
    /// only what it is sure of). Returns each with why, so that its message can say so.
    pub async fn close_settled_prompts(
        &self,
        member: MemberId,
    ) -> Result<Vec<(Prompt, CloseReason)>> {
        let rows = sqlx::query(
            "SELECT p.id, p.member_id, p.layer_id, p.track_id, p.channel_id, p.message_id, \
                 p.guess, p.state, \
                 EXISTS (SELECT 1 FROM liked k WHERE k.member_id = p.member_id \
                     AND k.track_id = p.track_id) AS liked, \
                 (SELECT l.source FROM labels l WHERE l.layer_id = p.layer_id \
                     AND l.track_id = p.track_id) AS source \
             FROM prompts p WHERE p.member_id = ? AND p.state = 'open'",
        )
        .bind(member.0 as i64)
        .fetch_all(self.pool())
        .await?;
        let mut closed = Vec::new();
        for r in &rows {
            let liked: bool = r.get("liked");
            let source: Option<String> = r.get("source");
            let reason = match (liked, source.as_deref()) {
                (false, _) => CloseReason::Unliked,
                (true, Some("model")) => CloseReason::Sorted,
                (true, Some(_)) => CloseReason::Answered,
                (true, None) => continue,
            };
            let mut prompt = prompt_from_row(r)?;
            let done =
                sqlx::query("UPDATE prompts SET state = 'closed' WHERE id = ? AND state = 'open'")
                    .bind(prompt.id.0)
                    .execute(self.pool())
                    .await?;
            if done.rows_affected() == 1 {
                prompt.state = PromptState::Closed;
                closed.push((prompt, reason));
            }
        }
        Ok(closed)
    }

    /// Forgets the member's prompts recorded before `before` and never posted (the process
    /// stopped between recording and posting), so that they no longer take up the budget.
    /// Returns how many.
    pub async fn reclaim_unposted_prompts(
        &self,
        member: MemberId,
        before: DateTime<Utc>,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM prompts WHERE member_id = ? AND state = 'pending' AND created_at < ?",
        )
        .bind(member.0 as i64)
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Where each track asked about in a layer stands.
    pub async fn prompt_states(&self, layer: LayerId) -> Result<HashMap<TrackId, PromptState>> {
        let rows = sqlx::query("SELECT track_id, state FROM prompts WHERE layer_id = ?")
            .bind(layer.0)
            .fetch_all(self.pool())
            .await?;
        let mut out = HashMap::new();
        for r in rows {
            let track: String = r.get("track_id");
            let state: String = r.get("state");
            if let (Ok(track), Some(state)) = (TrackId::parse(&track), PromptState::parse(&state)) {
                out.insert(track, state);
            }
        }
        Ok(out)
    }

    /// Per layer of the member's that was ever asked about: how many of its prompts wait for
    /// an answer (pending or open), and when it was last asked about.
    pub async fn prompt_turns(
        &self,
        member: MemberId,
    ) -> Result<HashMap<LayerId, (u32, Option<DateTime<Utc>>)>> {
        let rows = sqlx::query(
            "SELECT layer_id, SUM(state IN ('pending', 'open')) AS open, \
                 MAX(created_at) AS last FROM prompts WHERE member_id = ? GROUP BY layer_id",
        )
        .bind(member.0 as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let last: Option<DateTime<Utc>> = r.try_get("last")?;
                Ok((
                    LayerId(r.try_get("layer_id")?),
                    (r.try_get::<i64, _>("open")? as u32, last),
                ))
            })
            .collect()
    }

    /// When the member's last digest was posted, and the (layer, track) pairs it counted.
    pub async fn last_digest(
        &self,
        member: MemberId,
    ) -> Result<Option<(DateTime<Utc>, HashSet<(LayerId, TrackId)>)>> {
        let row = sqlx::query("SELECT sent_at, waiting FROM prompt_digests WHERE member_id = ?")
            .bind(member.0 as i64)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sent_at: DateTime<Utc> = row.get("sent_at");
        let waiting: String = row.get("waiting");
        let keys: Vec<String> = serde_json::from_str(&waiting)
            .map_err(|_| StoreError::Corrupt(format!("digest of member {member}")))?;
        let waiting = keys
            .iter()
            .filter_map(|k| {
                let (layer, track) = k.split_once(':')?;
                Some((LayerId(layer.parse().ok()?), TrackId::parse(track).ok()?))
            })
            .collect();
        Ok(Some((sent_at, waiting)))
    }

    /// Records that a digest counting `waiting` was posted to the member at `sent_at`.
    pub async fn record_digest(
        &self,
        member: MemberId,
        sent_at: DateTime<Utc>,
        waiting: &[(LayerId, TrackId)],
    ) -> Result<()> {
        let keys: Vec<String> = waiting
            .iter()
            .map(|(layer, track)| format!("{}:{}", layer.0, track.as_str()))
            .collect();
        let keys = serde_json::to_string(&keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO prompt_digests (member_id, sent_at, waiting) VALUES (?, ?, ?) \
             ON CONFLICT(member_id) DO UPDATE SET sent_at = excluded.sent_at, \
                 waiting = excluded.waiting",
        )
        .bind(member.0 as i64)
        .bind(sent_at)
        .bind(keys)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Label, LayerRules, SublistId, Track, Why, WhyBasis};

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
        let guess = Some(Guess {
            label: Label::one(SublistId(3)),
            confidence: 0.5,
            why: Some(Why {
                basis: WhyBasis::Artist,
                tracks: vec!["Song A".into(), "Song B".into()],
            }),
        });
        let id = store
            .create_prompt(MemberId(1), layer, &track, guess.as_ref())
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

#[cfg(test)]
mod closing {
    use super::*;
    use crate::domain::{Label, LabelSource, LayerRules, LikedTrack, Track};
    use crate::store::SyncState;

    fn id(n: u32) -> TrackId {
        TrackId::parse(&format!("{n:0>22}")).unwrap()
    }

    #[tokio::test]
    async fn settled_prompts_close_with_their_reason_and_the_rest_stay_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_at(&dir.path().join("t.db"), &[7; 32])
            .await
            .unwrap();
        let m = MemberId(1);
        let layer = store
            .create_layer(
                m,
                "Mood",
                LayerRules {
                    mutual: true,
                    complete: false,
                },
            )
            .await
            .unwrap();
        let calm = store.add_sublist(layer.id, "Calm", "🌙").await.unwrap();
        let layer = store.layer(layer.id).await.unwrap().unwrap();
        let tracks: Vec<Track> = (1..=5).map(|n| Track::bare(id(n), "Song")).collect();
        store.upsert_tracks(&tracks).await.unwrap();
        // Tracks 2 to 5 are liked; track 1 was unliked.
        let liked: Vec<LikedTrack> = tracks[1..]
            .iter()
            .map(|t| LikedTrack {
                track: t.clone(),
                added_at: Utc::now(),
            })
            .collect();
        store
            .save_liked_page(m, &liked, Utc::now(), &SyncState::default())
            .await
            .unwrap();
        let mut prompts = Vec::new();
        for n in 1..=5 {
            let p = store
                .create_prompt(m, layer.id, &id(n), None)
                .await
                .unwrap()
                .unwrap();
            store
                .set_prompt_posted(p, 10, 100 + u64::from(n))
                .await
                .unwrap();
            prompts.push(p);
        }
        // Track 2 answered by a hand edit, track 3 placed by the model; track 4 still waits,
        // and track 5's prompt was skipped.
        let calm_label = Label::one(calm.id);
        store
            .set_label(&layer, &id(2), &calm_label, LabelSource::Member, None)
            .await
            .unwrap();
        store
            .set_label(&layer, &id(3), &calm_label, LabelSource::Model, Some(0.95))
            .await
            .unwrap();
        store
            .set_prompt_state(prompts[4], PromptState::Skipped)
            .await
            .unwrap();

        let closed: Vec<(PromptId, CloseReason)> = store
            .close_settled_prompts(m)
            .await
            .unwrap()
            .into_iter()
            .map(|(p, why)| {
                assert_eq!(p.state, PromptState::Closed);
                (p.id, why)
            })
            .collect();
        assert_eq!(
            closed,
            vec![
                (prompts[0], CloseReason::Unliked),
                (prompts[1], CloseReason::Answered),
                (prompts[2], CloseReason::Sorted),
            ]
        );
        let state = |p: PromptId| {
            let store = store.clone();
            async move { store.prompt(p).await.unwrap().unwrap().state }
        };
        assert_eq!(state(prompts[3]).await, PromptState::Open);
        assert_eq!(state(prompts[4]).await, PromptState::Skipped);
        assert_eq!(store.open_prompt_count(m).await.unwrap(), 1);
        assert!(store.close_settled_prompts(m).await.unwrap().is_empty());
        let states = store.prompt_states(layer.id).await.unwrap();
        assert_eq!(states.get(&id(5)), Some(&PromptState::Skipped));
        assert_eq!(states.get(&id(1)), Some(&PromptState::Closed));
    }

    #[tokio::test]
    async fn a_prompt_never_posted_stops_counting_against_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_at(&dir.path().join("t.db"), &[7; 32])
            .await
            .unwrap();
        let m = MemberId(1);
        let layer = store
            .create_layer(
                m,
                "Mood",
                LayerRules {
                    mutual: true,
                    complete: false,
                },
            )
            .await
            .unwrap();
        store
            .upsert_tracks(&[Track::bare(id(1), "A"), Track::bare(id(2), "B")])
            .await
            .unwrap();
        let lost = store
            .create_prompt(m, layer.id, &id(1), None)
            .await
            .unwrap()
            .unwrap();
        let posted = store
            .create_prompt(m, layer.id, &id(2), None)
            .await
            .unwrap()
            .unwrap();
        store.set_prompt_posted(posted, 10, 11).await.unwrap();
        assert_eq!(store.open_prompt_count(m).await.unwrap(), 2);
        // Recorded a moment ago: still being posted, kept.
        let a_minute_ago = Utc::now() - chrono::Duration::minutes(1);
        assert_eq!(
            store
                .reclaim_unposted_prompts(m, a_minute_ago)
                .await
                .unwrap(),
            0
        );
        // Later, it is known lost; the posted one stays.
        let later = Utc::now() + chrono::Duration::seconds(1);
        assert_eq!(store.reclaim_unposted_prompts(m, later).await.unwrap(), 1);
        assert_eq!(store.prompt(lost).await.unwrap(), None);
        assert_eq!(store.open_prompt_count(m).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn the_last_digest_is_remembered_with_what_it_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_at(&dir.path().join("t.db"), &[7; 32])
            .await
            .unwrap();
        let m = MemberId(1);
        store.ensure_member(m).await.unwrap();
        assert_eq!(store.last_digest(m).await.unwrap(), None);
        let at = Utc::now();
        let counted = vec![(LayerId(3), id(1)), (LayerId(4), id(1))];
        store.record_digest(m, at, &counted).await.unwrap();
        let (sent, seen) = store.last_digest(m).await.unwrap().unwrap();
        assert_eq!(sent, at);
        assert_eq!(seen, counted.into_iter().collect());
    }
}
