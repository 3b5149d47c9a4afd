//! The Spotify playlist behind each sublist, its snapshot after our last write, and what we
//! last wrote to it (to tell the member's hand edits from ours).

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::{SublistId, TrackId};

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
    /// written to the old one.
    pub(crate) async fn set_managed_playlist(
        &self,
        sublist: SublistId,
        playlist_id: &str,
        snapshot_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE sublists SET playlist_id = ?, snapshot_id = ? WHERE id = ?")
            .bind(playlist_id)
            .bind(snapshot_id)
            .bind(sublist.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sublist_tracks WHERE sublist_id = ?")
            .bind(sublist.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
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

    /// Records the playlist's contents and snapshot after a write, atomically.
    pub(crate) async fn set_sublist_tracks(
        &self,
        sublist: SublistId,
        tracks: &[TrackId],
        snapshot_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM sublist_tracks WHERE sublist_id = ?")
            .bind(sublist.0)
            .execute(&mut *tx)
            .await?;
        for (i, t) in tracks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO sublist_tracks (sublist_id, track_id, position) VALUES (?, ?, ?)
                 ON CONFLICT(sublist_id, track_id) DO NOTHING",
            )
            .bind(sublist.0)
            .bind(t.as_str())
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE sublists SET snapshot_id = ? WHERE id = ?")
            .bind(snapshot_id)
            .bind(sublist.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
