//! The Spotify playlist behind each sublist, its snapshot after our last write, and what we
//! last wrote to it (to tell the member's hand edits from ours); the writes the bot is about to
//! make (recorded before each request, so a write whose answer was lost is still known as
//! ours); and adopting a member's playlist with its tracks' labels.

use std::collections::HashSet;

use sqlx::{Row, SqliteConnection};

use super::labels::{put_label, read_labels};
use super::{Store, StoreError};
use crate::domain::{Label, LabelSource, Layer, SublistId, TrackId};

/// A write the bot is about to make to a playlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PendingOp {
    Add,
    Remove,
}

impl PendingOp {
    fn as_str(self) -> &'static str {
        match self {
            PendingOp::Add => "add",
            PendingOp::Remove => "remove",
        }
    }
}

/// The tracks the bot set out to add to and remove from a playlist since it last recorded the
/// playlist's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PendingWrites {
    pub added: HashSet<TrackId>,
    pub removed: HashSet<TrackId>,
}

impl Store {
    /// The sublist's playlist id and our last snapshot, if the sublist exists.
    pub(crate) async fn sublist_playlist(
        &self,
        sublist: SublistId,
    ) -> Result<Option<(Option<String>, Option<String>)>, StoreError> {
        let row = sqlx::query("SELECT playlist_id, snapshot_id FROM sublists WHERE id = ?")
            .bind(sublist.0)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get("playlist_id")?, r.try_get("snapshot_id")?)))
            .transpose()
    }

    /// Points a sublist at a playlist (new, recreated or adopted) and forgets what was
    /// written to the old one, and any creation or write still pending.
    pub(crate) async fn set_managed_playlist(
        &self,
        sublist: SublistId,
        playlist_id: &str,
        snapshot_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        manage(&mut tx, sublist, playlist_id, snapshot_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the sublist's playlist (the member deleted it), what was written to it and any
    /// write still pending: the sublist has no playlist until a track goes in again.
    pub(crate) async fn forget_managed_playlist(
        &self,
        sublist: SublistId,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE sublists SET playlist_id = NULL, snapshot_id = NULL WHERE id = ?")
            .bind(sublist.0)
            .execute(&mut *tx)
            .await?;
        forget_contents(&mut tx, sublist).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The marker of a playlist creation whose outcome is not recorded yet, if any.
    pub(crate) async fn playlist_creation(
        &self,
        sublist: SublistId,
    ) -> Result<Option<String>, StoreError> {
        let marker: Option<Option<String>> =
            sqlx::query_scalar("SELECT creating FROM sublists WHERE id = ?")
                .bind(sublist.0)
                .fetch_optional(self.pool())
                .await?;
        Ok(marker.flatten())
    }

    /// Records that a playlist carrying `marker` in its description is about to be created
    /// for the sublist; [`Store::set_managed_playlist`] clears it.
    pub(crate) async fn begin_playlist_creation(
        &self,
        sublist: SublistId,
        marker: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE sublists SET creating = ? WHERE id = ?")
            .bind(marker)
            .bind(sublist.0)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records the tracks the bot is about to add to or remove from the sublist's playlist,
    /// before it asks Spotify; the next record of the playlist's contents clears them.
    pub(crate) async fn record_pending(
        &self,
        sublist: SublistId,
        op: PendingOp,
        tracks: &[TrackId],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for t in tracks {
            sqlx::query(
                "INSERT INTO sublist_pending (sublist_id, track_id, op) VALUES (?, ?, ?)
                 ON CONFLICT DO NOTHING",
            )
            .bind(sublist.0)
            .bind(t.as_str())
            .bind(op.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The writes the bot set out to make to the sublist's playlist since its last record.
    pub(crate) async fn pending_writes(
        &self,
        sublist: SublistId,
    ) -> Result<PendingWrites, StoreError> {
        let rows = sqlx::query("SELECT track_id, op FROM sublist_pending WHERE sublist_id = ?")
            .bind(sublist.0)
            .fetch_all(self.pool())
            .await?;
        let mut out = PendingWrites::default();
        for r in rows {
            let id: String = r.try_get("track_id")?;
            let id = TrackId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let op: String = r.try_get("op")?;
            match op.as_str() {
                "add" => out.added.insert(id),
                "remove" => out.removed.insert(id),
                other => return Err(StoreError::Corrupt(format!("pending write {other}"))),
            };
        }
        Ok(out)
    }

    /// What sublist last wrote to the sublist's playlist, in playlist order.
    pub(crate) async fn sublist_tracks(
        &self,
        sublist: SublistId,
    ) -> Result<Vec<TrackId>, StoreError> {
        let rows = sqlx::query(
            "SELECT track_id FROM sublist_tracks WHERE sublist_id = ? ORDER BY position",
        )
        .bind(sublist.0)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                let id: String = r.try_get("track_id")?;
                TrackId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Records the playlist's contents and snapshot after a write, atomically; the writes
    /// that were pending are accounted for by it.
    pub(crate) async fn set_sublist_tracks(
        &self,
        sublist: SublistId,
        tracks: &[TrackId],
        snapshot_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        record_tracks(&mut tx, sublist, tracks, snapshot_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes the member's playlist `playlist_id`, holding `tracks`, the playlist of `sublist`
    /// in one transaction: the bot manages it from now on, and each of its tracks gets the
    /// label [`Label::adopted`] gives (source "imported"), so none leaves the playlist at the
    /// next refresh. Returns how many tracks' labels changed.
    pub(crate) async fn adopt_playlist(
        &self,
        layer: &Layer,
        sublist: SublistId,
        playlist_id: &str,
        snapshot_id: &str,
        tracks: &[TrackId],
    ) -> Result<u32, StoreError> {
        let mut tx = self.write_tx().await?;
        manage(&mut tx, sublist, playlist_id, snapshot_id).await?;
        record_tracks(&mut tx, sublist, tracks, snapshot_id).await?;
        let mut changed = 0;
        for t in tracks {
            let current = read_labels(&mut tx, layer.id, Some(t)).await?.pop();
            let next = Label::adopted(current.as_ref(), layer, sublist);
            next.validate(layer)?;
            if current
                .as_ref()
                .is_some_and(|c| c.label == next && c.source == LabelSource::Imported)
            {
                continue;
            }
            if current.as_ref().is_none_or(|c| c.label != next) {
                changed += 1;
            }
            put_label(
                &mut tx,
                layer.id,
                t,
                &next,
                LabelSource::Imported,
                None,
                self.now(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}

async fn manage(
    conn: &mut SqliteConnection,
    sublist: SublistId,
    playlist_id: &str,
    snapshot_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sublists SET playlist_id = ?, snapshot_id = ?, creating = NULL WHERE id = ?",
    )
    .bind(playlist_id)
    .bind(snapshot_id)
    .bind(sublist.0)
    .execute(&mut *conn)
    .await?;
    forget_contents(conn, sublist).await
}

/// Forgets what the bot last wrote to the sublist's playlist and any write still pending:
/// they described a playlist that is no longer the sublist's.
async fn forget_contents(
    conn: &mut SqliteConnection,
    sublist: SublistId,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sublist_tracks WHERE sublist_id = ?")
        .bind(sublist.0)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM sublist_pending WHERE sublist_id = ?")
        .bind(sublist.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn record_tracks(
    conn: &mut SqliteConnection,
    sublist: SublistId,
    tracks: &[TrackId],
    snapshot_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sublist_tracks WHERE sublist_id = ?")
        .bind(sublist.0)
        .execute(&mut *conn)
        .await?;
    for (i, t) in tracks.iter().enumerate() {
        sqlx::query(
            "INSERT INTO sublist_tracks (sublist_id, track_id, position) VALUES (?, ?, ?)
             ON CONFLICT(sublist_id, track_id) DO NOTHING",
        )
        .bind(sublist.0)
        .bind(t.as_str())
        .bind(i as i64)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("DELETE FROM sublist_pending WHERE sublist_id = ?")
        .bind(sublist.0)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE sublists SET snapshot_id = ? WHERE id = ?")
        .bind(snapshot_id)
        .bind(sublist.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
