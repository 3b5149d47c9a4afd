//! Track metadata, stored once and shared between members, and cached audio descriptors.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::{AudioFeatures, ReleasePrecision, Track, TrackId};

impl Store {
    /// Inserts or refreshes tracks' metadata inside a transaction; audio descriptors are kept.
    pub(crate) async fn upsert_tracks_tx(
        tx: &mut sqlx::SqliteConnection,
        tracks: &[Track],
    ) -> Result<(), StoreError> {
        for t in tracks {
            let artists = serde_json::to_string(&t.artists)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO tracks (id, name, artists, album_id, album_name, album_type,
                     release_date, release_precision, duration_ms, explicit, track_number,
                     disc_number, total_tracks, isrc, image_url)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, artists = excluded.artists,
                     album_id = excluded.album_id, album_name = excluded.album_name,
                     album_type = excluded.album_type, release_date = excluded.release_date,
                     release_precision = excluded.release_precision,
                     duration_ms = excluded.duration_ms, explicit = excluded.explicit,
                     track_number = excluded.track_number, disc_number = excluded.disc_number,
                     total_tracks = excluded.total_tracks,
                     isrc = COALESCE(excluded.isrc, tracks.isrc),
                     image_url = excluded.image_url",
            )
            .bind(t.id.as_str())
            .bind(&t.name)
            .bind(artists)
            .bind(&t.album_id)
            .bind(&t.album_name)
            .bind(&t.album_type)
            .bind(&t.release_date)
            .bind(t.release_precision.map(|p| p.as_str()))
            .bind(t.duration_ms.map(i64::from))
            .bind(t.explicit)
            .bind(t.track_number.map(i64::from))
            .bind(t.disc_number.map(i64::from))
            .bind(t.total_tracks.map(i64::from))
            .bind(&t.isrc)
            .bind(&t.image_url)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    pub async fn upsert_tracks(&self, tracks: &[Track]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        Self::upsert_tracks_tx(&mut tx, tracks).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn track(&self, id: &TrackId) -> Result<Option<Track>, StoreError> {
        let row = sqlx::query("SELECT * FROM tracks WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| track_from_row(&r)).transpose()
    }

    /// Tracks no audio provider has been asked about yet, at most `limit`.
    pub(crate) async fn tracks_without_audio_check(
        &self,
        limit: u32,
    ) -> Result<Vec<TrackId>, StoreError> {
        let rows = sqlx::query("SELECT id FROM tracks WHERE audio_checked_at IS NULL LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                TrackId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Records a provider's answer for one track: descriptors, or None when it did not know
    /// the track. Either way the track is not asked about again.
    pub(crate) async fn set_audio(
        &self,
        id: &TrackId,
        audio: Option<&AudioFeatures>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
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

pub(crate) fn track_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Track, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let id: String = r.try_get("id")?;
    let artists: String = r.try_get("artists")?;
    let audio: Option<String> = r.try_get("audio")?;
    let precision: Option<String> = r.try_get("release_precision")?;
    let num = |col: &str| -> Result<Option<u32>, StoreError> {
        Ok(r.try_get::<Option<i64>, _>(col)?.map(|v| v as u32))
    };
    Ok(Track {
        id: TrackId::parse(&id).map_err(|e| corrupt(&e))?,
        name: r.try_get("name")?,
        artists: serde_json::from_str(&artists).map_err(|e| corrupt(&e))?,
        album_id: r.try_get("album_id")?,
        album_name: r.try_get("album_name")?,
        album_type: r.try_get("album_type")?,
        release_date: r.try_get("release_date")?,
        release_precision: precision.as_deref().and_then(ReleasePrecision::parse),
        duration_ms: num("duration_ms")?,
        explicit: r.try_get("explicit")?,
        track_number: num("track_number")?,
        disc_number: num("disc_number")?,
        total_tracks: num("total_tracks")?,
        isrc: r.try_get("isrc")?,
        image_url: r.try_get("image_url")?,
        audio: audio
            .map(|a| serde_json::from_str(&a))
            .transpose()
            .map_err(|e| corrupt(&e))?,
    })
}
