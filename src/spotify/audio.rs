//! The optional audio-descriptor provider (ReccoBeats: keyless, Spotify track ids, about 40
//! per call, unknown tracks silently left out). Answers are cached per track forever, known
//! or not; with the provider off nothing is asked and the bot works the same.

use serde::Deserialize;

use super::error::CallError;
use super::{Spotify, SpotifyError};
use crate::config::AudioProvider;
use crate::domain::{AudioFeatures, TrackId};

/// Ids per ReccoBeats request.
pub const RECCOBEATS_BATCH: usize = 40;

/// What an audio fill did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AudioReport {
    /// Tracks asked about.
    pub asked: u32,
    /// Tracks the provider knew.
    pub found: u32,
    pub requests: u32,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    content: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Features {
    href: Option<String>,
    danceability: f32,
    energy: f32,
    key: f32,
    loudness: f32,
    mode: f32,
    speechiness: f32,
    acousticness: f32,
    instrumentalness: f32,
    liveness: f32,
    valence: f32,
    tempo: f32,
}

impl Spotify {
    /// Asks the provider about at most `limit` tracks never asked about before.
    pub async fn fill_audio(&self, limit: u32) -> Result<AudioReport, SpotifyError> {
        let mut report = AudioReport::default();
        if self.inner.audio.provider == AudioProvider::None {
            return Ok(report);
        }
        let store = self.store();
        let ids = store.tracks_without_audio_check(limit).await?;
        let base = self
            .inner
            .audio
            .reccobeats_base_url
            .as_str()
            .trim_end_matches('/')
            .to_string();
        let http = &self.inner.http;
        let requests = std::sync::atomic::AtomicU32::new(0);
        for chunk in ids.chunks(RECCOBEATS_BATCH) {
            let list = chunk
                .iter()
                .map(TrackId::as_str)
                .collect::<Vec<_>>()
                .join(",");
            let url = format!("{base}/audio-features");
            let answer: Answer = self
                .inner
                .audio_limiter
                .run("audio features", || async {
                    requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let resp = http
                        .get(&url)
                        .query(&[("ids", list.as_str())])
                        .send()
                        .await
                        .map_err(CallError::from_reqwest)?;
                    if !resp.status().is_success() {
                        return Err(CallError::from_response(resp).await);
                    }
                    resp.json::<Answer>()
                        .await
                        .map_err(|e| CallError::Parse(e.to_string()))
                })
                .await?;
            let mut found = std::collections::HashMap::new();
            for item in answer.content {
                let Ok(f) = serde_json::from_value::<Features>(item) else {
                    continue;
                };
                let Some(id) = f
                    .href
                    .as_deref()
                    .and_then(|h| h.rsplit('/').next())
                    .and_then(|s| TrackId::parse(s).ok())
                else {
                    continue;
                };
                found.insert(
                    id,
                    AudioFeatures {
                        danceability: f.danceability,
                        energy: f.energy,
                        key: f.key,
                        loudness: f.loudness,
                        mode: f.mode,
                        speechiness: f.speechiness,
                        acousticness: f.acousticness,
                        instrumentalness: f.instrumentalness,
                        liveness: f.liveness,
                        valence: f.valence,
                        tempo: f.tempo,
                    },
                );
            }
            let now = store.now();
            for id in chunk {
                let features = found.get(id);
                report.asked += 1;
                report.found += u32::from(features.is_some());
                store.set_audio(id, features, now).await?;
            }
        }
        report.requests = requests.into_inner();
        Ok(report)
    }
}
