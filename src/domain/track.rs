//! Tracks and the metadata a bot really has for them in 2026.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// A Spotify track id (22 base-62 characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackId(String);

impl TrackId {
    pub fn parse(raw: &str) -> Result<TrackId, DomainError> {
        let id = raw.strip_prefix("spotify:track:").unwrap_or(raw);
        if id.len() == 22 && id.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(TrackId(id.to_string()))
        } else {
            Err(DomainError::BadTrackId(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `spotify:track:<id>`, the form playlist writes take.
    pub fn uri(&self) -> String {
        format!("spotify:track:{}", self.0)
    }

    /// `https://open.spotify.com/track/<id>`, the link shown to members.
    pub fn url(&self) -> String {
        format!("https://open.spotify.com/track/{}", self.0)
    }
}

impl TryFrom<String> for TrackId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TrackId::parse(&s)
    }
}

impl From<TrackId> for String {
    fn from(t: TrackId) -> String {
        t.0
    }
}

impl std::fmt::Display for TrackId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How precise an album's release date is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleasePrecision {
    Year,
    Month,
    Day,
}

impl ReleasePrecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleasePrecision::Year => "year",
            ReleasePrecision::Month => "month",
            ReleasePrecision::Day => "day",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "year" => Some(Self::Year),
            "month" => Some(Self::Month),
            "day" => Some(Self::Day),
            _ => None,
        }
    }
    /// Infers the precision from a date written `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn of_date(date: &str) -> Option<Self> {
        match date.split('-').count() {
            1 => Some(Self::Year),
            2 => Some(Self::Month),
            3 => Some(Self::Day),
            _ => None,
        }
    }
}

/// The names of the 11 audio descriptors, in the order of [`AudioFeatures::values`].
pub const AUDIO_DESCRIPTORS: [&str; 11] = [
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
];

/// The 11 audio descriptors an optional provider (ReccoBeats) may supply.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioFeatures {
    pub danceability: f32,
    pub energy: f32,
    pub key: f32,
    pub loudness: f32,
    pub mode: f32,
    pub speechiness: f32,
    pub acousticness: f32,
    pub instrumentalness: f32,
    pub liveness: f32,
    pub valence: f32,
    pub tempo: f32,
}

impl AudioFeatures {
    pub fn values(&self) -> [f32; 11] {
        [
            self.danceability,
            self.energy,
            self.key,
            self.loudness,
            self.mode,
            self.speechiness,
            self.acousticness,
            self.instrumentalness,
            self.liveness,
            self.valence,
            self.tempo,
        ]
    }

    pub fn from_values(v: [f32; 11]) -> Self {
        AudioFeatures {
            danceability: v[0],
            energy: v[1],
            key: v[2],
            loudness: v[3],
            mode: v[4],
            speechiness: v[5],
            acousticness: v[6],
            instrumentalness: v[7],
            liveness: v[8],
            valence: v[9],
            tempo: v[10],
        }
    }
}

/// A track and its metadata, stored once and shared between members. Every field a provider
/// may not give is optional: missing is a known state, not a zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub id: TrackId,
    pub name: String,
    /// (artist id, artist name); the id may be missing in imported data.
    pub artists: Vec<(Option<String>, String)>,
    pub album_id: Option<String>,
    pub album_name: Option<String>,
    /// "album", "single" or "compilation".
    pub album_type: Option<String>,
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub release_date: Option<String>,
    pub release_precision: Option<ReleasePrecision>,
    pub duration_ms: Option<u32>,
    pub explicit: Option<bool>,
    pub track_number: Option<u32>,
    pub disc_number: Option<u32>,
    pub total_tracks: Option<u32>,
    pub isrc: Option<String>,
    /// The album's cover image, for prompts.
    pub image_url: Option<String>,
    pub audio: Option<AudioFeatures>,
}

impl Track {
    /// A track with a name and nothing else known.
    pub fn bare(id: TrackId, name: impl Into<String>) -> Track {
        Track {
            id,
            name: name.into(),
            artists: Vec::new(),
            album_id: None,
            album_name: None,
            album_type: None,
            release_date: None,
            release_precision: None,
            duration_ms: None,
            explicit: None,
            track_number: None,
            disc_number: None,
            total_tracks: None,
            isrc: None,
            image_url: None,
            audio: None,
        }
    }

    /// "Artist A, Artist B".
    pub fn artist_names(&self) -> String {
        self.artists
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The release year, when the date is known.
    pub fn release_year(&self) -> Option<i32> {
        self.release_date.as_deref()?.get(..4)?.parse().ok()
    }

    /// The ISRC's parts: country (2 letters), registrant (3 characters), year (2 digits).
    pub fn isrc_parts(&self) -> Option<(&str, &str, u32)> {
        let isrc = self.isrc.as_deref()?;
        if isrc.len() != 12 || !isrc.is_ascii() {
            return None;
        }
        let year = isrc[5..7].parse().ok()?;
        Some((&isrc[0..2], &isrc[2..5], year))
    }
}

/// A track in a member's motherlist, with the time it was liked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LikedTrack {
    pub track: Track,
    pub added_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_ids_are_checked() {
        let id = TrackId::parse("6f807x0ima9a1j3VPbc7VN").unwrap();
        assert_eq!(id.uri(), "spotify:track:6f807x0ima9a1j3VPbc7VN");
        assert_eq!(
            TrackId::parse("spotify:track:6f807x0ima9a1j3VPbc7VN").unwrap(),
            id
        );
        let err = TrackId::parse("nope").unwrap_err();
        assert_eq!(err.to_string(), "“nope” is not a Spotify track id.");
        assert!(TrackId::parse("6f807x0ima9a1j3VPbc7V!").is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<TrackId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<TrackId>("\"short\"").is_err());
    }

    #[test]
    fn release_year_and_isrc_parts() {
        let mut t = Track::bare(TrackId::parse("6f807x0ima9a1j3VPbc7VN").unwrap(), "x");
        assert_eq!(t.release_year(), None);
        assert_eq!(t.isrc_parts(), None);
        t.release_date = Some("2019-06-14".into());
        t.isrc = Some("USUM71900764".into());
        assert_eq!(t.release_year(), Some(2019));
        assert_eq!(t.isrc_parts(), Some(("US", "UM7", 19)));
        t.isrc = Some("bad".into());
        assert_eq!(t.isrc_parts(), None);
        assert_eq!(
            ReleasePrecision::of_date("2019-06"),
            Some(ReleasePrecision::Month)
        );
    }

    #[test]
    fn audio_values_round_trip() {
        let v = [0.1, 0.2, 3.0, -5.0, 1.0, 0.05, 0.3, 0.0, 0.1, 0.6, 120.0];
        assert_eq!(AudioFeatures::from_values(v).values(), v);
    }
}
