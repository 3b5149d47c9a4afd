//! The motherlist (`liked`) and where each member's sync stands (`sync_state`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::{Label, LabelSource, Layer, LikedTrack, MemberId, Track, TrackId};

/// How far a member's motherlist sync has come.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The playlist snapshot last read, for playlist motherlists.
    pub snapshot_id: Option<String>,
    /// The first full read is complete.
    pub initial_done: bool,
    /// During the first read: the offset to continue from.
    pub resume_offset: u32,
    /// The unlike-detection pass: the offset it continues from, and when it began.
    pub full_pass_offset: u32,
    pub full_pass_started_at: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_full_at: Option<DateTime<Utc>>,
    /// The motherlist this state belongs to: `liked` or a playlist id.
    pub source: Option<String>,
}

fn tid(s: String) -> Result<TrackId, StoreError> {
    TrackId::parse(&s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    pub async fn sync_state(&self, member: MemberId) -> Result<SyncState, StoreError> {
        let row = sqlx::query("SELECT * FROM sync_state WHERE member_id = ?")
            .bind(member.0 as i64)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else {
            return Ok(SyncState::default());
        };
        Ok(SyncState {
            snapshot_id: r.try_get("snapshot_id")?,
            initial_done: r.try_get("initial_done")?,
            resume_offset: r.try_get::<i64, _>("resume_offset")? as u32,
            full_pass_offset: r.try_get::<i64, _>("full_pass_offset")? as u32,
            full_pass_started_at: r.try_get("full_pass_started_at")?,
            last_sync_at: r.try_get("last_sync_at")?,
            last_full_at: r.try_get("last_full_at")?,
            source: r.try_get("source")?,
        })
    }

    async fn put_sync_state_tx(
        tx: &mut sqlx::SqliteConnection,
        member: MemberId,
        s: &SyncState,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sync_state (member_id, snapshot_id, initial_done, resume_offset,
                 full_pass_offset, full_pass_started_at, last_sync_at, last_full_at, source)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(member_id) DO UPDATE SET snapshot_id = excluded.snapshot_id,
                 initial_done = excluded.initial_done, resume_offset = excluded.resume_offset,
                 full_pass_offset = excluded.full_pass_offset,
                 full_pass_started_at = excluded.full_pass_started_at,
                 last_sync_at = excluded.last_sync_at, last_full_at = excluded.last_full_at,
                 source = excluded.source",
        )
        .bind(member.0 as i64)
        .bind(&s.snapshot_id)
        .bind(s.initial_done)
        .bind(i64::from(s.resume_offset))
        .bind(i64::from(s.full_pass_offset))
        .bind(s.full_pass_started_at)
        .bind(s.last_sync_at)
        .bind(s.last_full_at)
        .bind(&s.source)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    pub async fn put_sync_state(&self, member: MemberId, s: &SyncState) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        Self::put_sync_state_tx(&mut tx, member, s).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores one page of the motherlist and the sync state after it, atomically, so an
    /// interrupted sync resumes where it stopped. Returns the tracks that were new.
    pub(crate) async fn save_liked_page(
        &self,
        member: MemberId,
        page: &[LikedTrack],
        seen_at: DateTime<Utc>,
        state: &SyncState,
    ) -> Result<Vec<TrackId>, StoreError> {
        let tracks: Vec<Track> = page.iter().map(|l| l.track.clone()).collect();
        self.upsert_tracks(&tracks).await?;
        let mut tx = self.write_tx().await?;
        let mut new = Vec::new();
        for l in page {
            let known = sqlx::query("SELECT 1 FROM liked WHERE member_id = ? AND track_id = ?")
                .bind(member.0 as i64)
                .bind(l.track.id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if known {
                sqlx::query("UPDATE liked SET seen_at = ? WHERE member_id = ? AND track_id = ?")
                    .bind(seen_at)
                    .bind(member.0 as i64)
                    .bind(l.track.id.as_str())
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO liked (member_id, track_id, added_at, seen_at) VALUES (?, ?, ?, ?)",
                )
                .bind(member.0 as i64)
                .bind(l.track.id.as_str())
                .bind(l.added_at)
                .bind(seen_at)
                .execute(&mut *tx)
                .await?;
                new.push(l.track.id.clone());
            }
        }
        Self::put_sync_state_tx(&mut tx, member, state).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Which of `ids` are in the member's motherlist already.
    pub(crate) async fn known_liked(
        &self,
        member: MemberId,
        ids: &[TrackId],
    ) -> Result<HashSet<TrackId>, StoreError> {
        let mut known = HashSet::new();
        for id in ids {
            let hit = sqlx::query("SELECT 1 FROM liked WHERE member_id = ? AND track_id = ?")
                .bind(member.0 as i64)
                .bind(id.as_str())
                .fetch_optional(self.pool())
                .await?;
            if hit.is_some() {
                known.insert(id.clone());
            }
        }
        Ok(known)
    }

    /// Tracks of the motherlist not seen since `t` (the start of an unlike-detection pass).
    pub(crate) async fn liked_unseen_since(
        &self,
        member: MemberId,
        t: DateTime<Utc>,
    ) -> Result<Vec<TrackId>, StoreError> {
        let rows = sqlx::query("SELECT track_id, seen_at FROM liked WHERE member_id = ?")
            .bind(member.0 as i64)
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let seen: DateTime<Utc> = r.try_get("seen_at")?;
            if seen < t {
                out.push(tid(r.try_get("track_id")?)?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn touch_liked(
        &self,
        member: MemberId,
        ids: &[TrackId],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for id in ids {
            sqlx::query("UPDATE liked SET seen_at = ? WHERE member_id = ? AND track_id = ?")
                .bind(at)
                .bind(member.0 as i64)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn remove_liked(
        &self,
        member: MemberId,
        ids: &[TrackId],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for id in ids {
            sqlx::query("DELETE FROM liked WHERE member_id = ? AND track_id = ?")
                .bind(member.0 as i64)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The member's motherlist, newest like first.
    pub async fn liked_ids(&self, member: MemberId) -> Result<Vec<TrackId>, StoreError> {
        let rows = sqlx::query(
            "SELECT track_id FROM liked WHERE member_id = ? ORDER BY added_at DESC, track_id",
        )
        .bind(member.0 as i64)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| tid(r.try_get("track_id")?))
            .collect()
    }

    /// Writes the model's labels of one sort in one transaction: each replaces the track's
    /// label in the layer unless a person labelled the track (then it is not written). Returns,
    /// per entry, whether it was written.
    pub(crate) async fn set_model_labels(
        &self,
        layer: &Layer,
        labels: &[(TrackId, Label, f32)],
    ) -> Result<Vec<bool>, StoreError> {
        for (_, label, _) in labels {
            label.validate(layer)?;
        }
        let now = self.now();
        let mut tx = self.write_tx().await?;
        let mut written = Vec::with_capacity(labels.len());
        for (track, label, confidence) in labels {
            let existing: Option<String> =
                sqlx::query_scalar("SELECT source FROM labels WHERE layer_id = ? AND track_id = ?")
                    .bind(layer.id.0)
                    .bind(track.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if existing
                .as_deref()
                .and_then(LabelSource::parse)
                .is_some_and(LabelSource::is_ground_truth)
            {
                written.push(false);
                continue;
            }
            super::labels::put_label(
                &mut tx,
                layer.id,
                track,
                label,
                LabelSource::Model,
                Some(*confidence),
                now,
            )
            .await?;
            written.push(true);
        }
        tx.commit().await?;
        Ok(written)
    }

    /// When the member's managed playlists were last all read for hand edits.
    pub(crate) async fn playlists_checked_at(
        &self,
        member: MemberId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<Option<DateTime<Utc>>> =
            sqlx::query_scalar("SELECT playlists_checked_at FROM sync_state WHERE member_id = ?")
                .bind(member.0 as i64)
                .fetch_optional(self.pool())
                .await?;
        Ok(at.flatten())
    }

    /// Records that the member's managed playlists were all read for hand edits at `at`.
    pub(crate) async fn set_playlists_checked_at(
        &self,
        member: MemberId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO sync_state (member_id, playlists_checked_at) VALUES (?, ?)
             ON CONFLICT(member_id) DO UPDATE SET playlists_checked_at = excluded.playlists_checked_at",
        )
        .bind(member.0 as i64)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The member's sort revision: a count of changes to what a sort of their motherlist
    /// reads (kept by the schema's triggers), and whether the last sort that changed nothing
    /// saw this very revision.
    pub(crate) async fn sort_revision(
        &self,
        member: MemberId,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT revision, sorted FROM sort_revisions WHERE member_id = ?")
                .bind(member.0 as i64)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(revision, sorted)| (revision, sorted == Some(revision))))
    }

    /// Records that a sort which started at `revision` found everything in place, unless
    /// anything it reads changed since, or a prompt is still being posted (then the next sync
    /// sorts again). Returns whether it was recorded.
    pub(crate) async fn mark_sorted(
        &self,
        member: MemberId,
        revision: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE sort_revisions SET sorted = revision WHERE member_id = ?1 AND revision = ?2 \
             AND NOT EXISTS (SELECT 1 FROM prompts WHERE member_id = ?1 AND state = 'pending')",
        )
        .bind(member.0 as i64)
        .bind(revision)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(done)
    }

    /// Drops the member's motherlist tracks and sync state, so the next sync reads the
    /// (changed) motherlist from the start.
    pub(crate) async fn reset_motherlist(&self, member: MemberId) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM liked WHERE member_id = ?")
            .bind(member.0 as i64)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sync_state WHERE member_id = ?")
            .bind(member.0 as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
