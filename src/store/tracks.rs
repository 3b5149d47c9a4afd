//! Track metadata, stored once per track and shared between members.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Result, Store, StoreError};
use crate::domain::{AudioFeatures, ReleasePrecision, Track, TrackId};

/// Reads a `tracks` row (`SELECT *` or the same columns).
pub(crate) fn track_from_row(r: &SqliteRow) -> Result<Track> {
    let id: String = r.get("id");
    let artists: String = r.get("artists");
    let audio: Option<String> = r.get("audio");
    let precision: Option<String> = r.get("release_precision");
    let num = |col: &str| {
        r.get::<Option<i64>, _>(col)
            .map(|v| v.clamp(0, u32::MAX as i64) as u32)
    };
    Ok(Track {
        id: TrackId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        name: r.get("name"),
        artists: serde_json::from_str(&artists).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        album_id: r.get("album_id"),
        album_name: r.get("album_name"),
        album_type: r.get("album_type"),
        release_date: r.get("release_date"),
        release_precision: precision.as_deref().and_then(ReleasePrecision::parse),
        duration_ms: num("duration_ms"),
        explicit: r.get("explicit"),
        track_number: num("track_number"),
        disc_number: num("disc_number"),
        total_tracks: num("total_tracks"),
        isrc: r.get("isrc"),
        image_url: r.get("image_url"),
        audio: audio
            .map(|a| serde_json::from_str::<AudioFeatures>(&a))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

impl Store {
    /// Inserts or updates tracks in one transaction. Audio descriptors already known are kept
    /// when the new record has none (Spotify never sends them).
    pub async fn upsert_tracks(&self, tracks: &[Track]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for t in tracks {
            let artists = serde_json::to_string(&t.artists)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let audio = t
                .audio
                .map(|a| serde_json::to_string(&a))
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO tracks (id, name, artists, album_id, album_name, album_type, release_date,
                    release_precision, duration_ms, explicit, track_number, disc_number, total_tracks,
                    isrc, image_url, audio)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, artists = excluded.artists,
                    album_id = excluded.album_id, album_name = excluded.album_name,
                    album_type = excluded.album_type, release_date = excluded.release_date,
                    release_precision = excluded.release_precision, duration_ms = excluded.duration_ms,
                    explicit = excluded.explicit, track_number = excluded.track_number,
                    disc_number = excluded.disc_number, total_tracks = excluded.total_tracks,
                    isrc = excluded.isrc, image_url = excluded.image_url,
                    audio = COALESCE(excluded.audio, tracks.audio)",
            )
            .bind(t.id.as_str())
            .bind(&t.name)
            .bind(artists)
            .bind(&t.album_id)
            .bind(&t.album_name)
            .bind(&t.album_type)
            .bind(&t.release_date)
            .bind(t.release_precision.map(ReleasePrecision::as_str))
            .bind(t.duration_ms.map(i64::from))
            .bind(t.explicit)
            .bind(t.track_number.map(i64::from))
            .bind(t.disc_number.map(i64::from))
            .bind(t.total_tracks.map(i64::from))
            .bind(&t.isrc)
            .bind(&t.image_url)
            .bind(audio)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One track's metadata.
    pub async fn track(&self, id: &TrackId) -> Result<Option<Track>> {
        sqlx::query("SELECT * FROM tracks WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(track_from_row)
            .transpose()
    }

    /// Several tracks' metadata, in the order asked; unknown ids are left out.
    pub async fn tracks(&self, ids: &[TrackId]) -> Result<Vec<Track>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(t) = self.track(id).await? {
                out.push(t);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Tracks no audio provider has been asked about yet, at most `limit`.
    pub(crate) async fn tracks_without_audio_check(&self, limit: u32) -> Result<Vec<TrackId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM tracks WHERE audio_checked_at IS NULL LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
        ids.iter()
            .map(|id| TrackId::parse(id).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// Records a provider's answer for one track: descriptors, or None when it did not know
    /// the track. Either way the track is not asked about again.
    pub(crate) async fn set_audio(
        &self,
        id: &TrackId,
        audio: Option<&AudioFeatures>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let json = audio
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE tracks SET audio = ?, audio_checked_at = ? WHERE id = ?")
            .bind(json)
            .bind(at)
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

impl Store {
    /// The member's motherlist with metadata, oldest like first.
    pub async fn liked_tracks(
        &self,
        member: crate::domain::MemberId,
    ) -> Result<Vec<crate::domain::LikedTrack>> {
        let rows = sqlx::query(
            "SELECT t.*, l.added_at AS liked_at FROM liked l JOIN tracks t ON t.id = l.track_id
             WHERE l.member_id = ? ORDER BY l.added_at, t.id",
        )
        .bind(member.0 as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::domain::LikedTrack {
                    track: track_from_row(r)?,
                    added_at: r.get("liked_at"),
                })
            })
            .collect()
    }
}
