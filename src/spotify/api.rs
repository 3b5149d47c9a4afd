//! One member's session with the Spotify Web API: rspotify's `AuthCodeSpotify` (with our base
//! URLs and no automatic token refresh) as the HTTP client, every call under the app's
//! limiter, and our own reading of the answers where rspotify's model falls short (it lacks
//! `account_id` and album `total_tracks`, requires the removed `followers`, and panics on a
//! playlist without `items`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use rspotify::AuthCodeSpotify;
use rspotify::clients::{BaseClient, OAuthClient};
use rspotify::http::Query;
use rspotify::model::{LibraryId, PlayableId, PlaylistId};
use serde::Deserialize;
use serde_json::{Value, json};

use secrecy::ExposeSecret;

use super::Spotify;
use super::error::{CallError, SpotifyError};
use super::limiter::{AppLimiter, Resend};
use crate::config::SpotifyApp;
use crate::domain::{LikedTrack, ReleasePrecision, Track, TrackId};
use crate::store::LinkRow;

/// Items per page of `/me/tracks`, `/me/playlists` and `/playlists/{id}/items` (the maximum).
pub(crate) const PAGE: u32 = 50;
/// Most URIs per playlist add or remove.
pub(crate) const WRITE_CHUNK: usize = 100;
/// Most URIs per `/me/library/contains`.
pub(crate) const CONTAINS_CHUNK: usize = 40;

/// The account behind a token, read from the raw `GET /me`.
#[derive(Clone, Debug)]
pub(crate) struct Me {
    pub account_id: String,
    pub user_id: String,
    pub display_name: Option<String>,
}

/// A playlist as sublist needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistInfo {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub collaborative: bool,
    pub snapshot_id: String,
    pub total: Option<u32>,
    pub description: Option<String>,
}

/// One page of a list, with whether more follow.
pub(crate) struct PageOf<T> {
    pub items: Vec<T>,
    pub has_next: bool,
    pub total: Option<u32>,
}

/// A member's API session.
pub(crate) struct Session {
    client: AuthCodeSpotify,
    limiter: Arc<AppLimiter>,
    requests: AtomicU32,
    refresher: Option<Refresher>,
}

/// What a session needs to refresh its token once when Spotify answers 401 (a token
/// revoked or expired early).
pub(crate) struct Refresher {
    pub spotify: Spotify,
    pub link: tokio::sync::Mutex<LinkRow>,
    pub app: SpotifyApp,
    pub used: AtomicBool,
}

impl Session {
    pub(crate) fn new(
        client: AuthCodeSpotify,
        limiter: Arc<AppLimiter>,
        refresher: Option<Refresher>,
    ) -> Session {
        Session {
            client,
            limiter,
            requests: AtomicU32::new(0),
            refresher,
        }
    }

    /// One call under the app's limiter; a 401 refreshes the token once and tries again.
    async fn run<T, F, Fut>(&self, what: &str, call: F) -> Result<T, SpotifyError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.run_as(what, Resend::Safe, call).await
    }

    /// Like [`Session::run`], sent again after an unknown outcome only if `resend` allows
    /// (a 401 was refused, so it is always sent again once refreshed).
    async fn run_as<T, F, Fut>(
        &self,
        what: &str,
        resend: Resend,
        call: F,
    ) -> Result<T, SpotifyError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        match self.limiter.run_as(what, resend, &call).await {
            Err(SpotifyError::Api { status: 401, .. }) if self.refresh_once().await? => {
                self.limiter.run_as(what, resend, &call).await
            }
            other => other,
        }
    }

    async fn refresh_once(&self) -> Result<bool, SpotifyError> {
        let Some(r) = &self.refresher else {
            return Ok(false);
        };
        if r.used.swap(true, Ordering::SeqCst) {
            return Ok(false);
        }
        let mut link = r.link.lock().await;
        r.spotify.refresh(&mut link, &r.app, &self.limiter).await?;
        let access = link
            .access_token
            .as_ref()
            .map(|t| t.expose_secret().to_string())
            .unwrap_or_default();
        let mut token = self
            .client
            .token
            .lock()
            .await
            .map_err(|_| SpotifyError::Protocol("token lock poisoned".into()))?;
        if let Some(t) = token.as_mut() {
            t.access_token = access;
            t.expires_at = link.access_expires_at;
        }
        Ok(true)
    }

    /// HTTP attempts this session made.
    pub(crate) fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn get(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, SpotifyError> {
        let text = self
            .run(what, || async {
                self.requests.fetch_add(1, Ordering::Relaxed);
                let q: Query = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
                match self.client.api_get(path, &q).await {
                    Ok(t) => Ok(t),
                    Err(e) => Err(CallError::from_rspotify(e).await),
                }
            })
            .await?;
        serde_json::from_str(&text).map_err(|e| SpotifyError::Protocol(format!("{what}: {e}")))
    }

    async fn post(
        &self,
        what: &str,
        path: &str,
        body: &Value,
        resend: Resend,
    ) -> Result<Value, SpotifyError> {
        let text = self
            .run_as(what, resend, || async {
                self.requests.fetch_add(1, Ordering::Relaxed);
                match self.client.api_post(path, body).await {
                    Ok(t) => Ok(t),
                    Err(e) => Err(CallError::from_rspotify(e).await),
                }
            })
            .await?;
        serde_json::from_str(&text).map_err(|e| SpotifyError::Protocol(format!("{what}: {e}")))
    }

    /// `GET /me`, read raw for `account_id`.
    pub(crate) async fn me(&self) -> Result<Me, SpotifyError> {
        let v = self.get("me", "me/", &[]).await?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
        let user_id = s("id").ok_or_else(|| SpotifyError::Protocol("GET /me without id".into()))?;
        Ok(Me {
            account_id: s("account_id")
                .ok_or_else(|| SpotifyError::Protocol("GET /me without account_id".into()))?,
            user_id,
            display_name: s("display_name"),
        })
    }

    /// One page of Liked Songs.
    pub(crate) async fn saved_tracks(
        &self,
        offset: u32,
    ) -> Result<PageOf<LikedTrack>, SpotifyError> {
        let v = self
            .get(
                "saved tracks",
                "me/tracks",
                &[("limit", PAGE.to_string()), ("offset", offset.to_string())],
            )
            .await?;
        let (raw, has_next, total) = page_parts(&v)?;
        let items = raw
            .iter()
            .filter_map(|item| {
                let added_at = item.get("added_at")?.as_str()?;
                let added_at = DateTime::parse_from_rfc3339(added_at)
                    .ok()?
                    .with_timezone(&Utc);
                Some(LikedTrack {
                    track: track_from_json(item.get("track")?)?,
                    added_at,
                })
            })
            .collect();
        Ok(PageOf {
            items,
            has_next,
            total,
        })
    }

    /// One page of the playlists the member owns or follows.
    pub(crate) async fn my_playlists(
        &self,
        offset: u32,
    ) -> Result<PageOf<PlaylistInfo>, SpotifyError> {
        let v = self
            .get(
                "my playlists",
                "me/playlists",
                &[("limit", PAGE.to_string()), ("offset", offset.to_string())],
            )
            .await?;
        let (raw, has_next, total) = page_parts(&v)?;
        let items = raw.iter().filter_map(playlist_from_json).collect();
        Ok(PageOf {
            items,
            has_next,
            total,
        })
    }

    /// A playlist's details, None when Spotify says it does not exist.
    pub(crate) async fn playlist(&self, id: &str) -> Result<Option<PlaylistInfo>, SpotifyError> {
        let fields = "id,name,owner(id),collaborative,snapshot_id,items(total)";
        match self
            .get(
                "playlist",
                &format!("playlists/{id}"),
                &[("fields", fields.into())],
            )
            .await
        {
            Ok(v) => playlist_from_json(&v)
                .map(Some)
                .ok_or_else(|| SpotifyError::Protocol("a playlist without id or snapshot".into())),
            Err(SpotifyError::PlaylistNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of a playlist's tracks (episodes and local files are left out).
    pub(crate) async fn playlist_items(
        &self,
        id: &str,
        offset: u32,
    ) -> Result<PageOf<LikedTrack>, SpotifyError> {
        let v = self
            .get(
                "playlist items",
                &format!("playlists/{id}/items"),
                &[("limit", PAGE.to_string()), ("offset", offset.to_string())],
            )
            .await
            .map_err(|e| match e {
                SpotifyError::Api { status: 403, .. } => SpotifyError::PlaylistNotYours,
                e => e,
            })?;
        let (raw, has_next, total) = page_parts(&v)?;
        let now = self.limiter.now();
        let items = raw
            .iter()
            .filter_map(|item| {
                let obj = item
                    .get("item")
                    .filter(|v| !v.is_null())
                    .or(item.get("track"))?;
                let added_at = item
                    .get("added_at")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map_or(now, |d| d.with_timezone(&Utc));
                Some(LikedTrack {
                    track: track_from_json(obj)?,
                    added_at,
                })
            })
            .collect();
        Ok(PageOf {
            items,
            has_next,
            total,
        })
    }

    /// Every track of a playlist, in order, one page request per 50 tracks.
    pub(crate) async fn all_playlist_items(
        &self,
        id: &str,
    ) -> Result<Vec<LikedTrack>, SpotifyError> {
        let mut out = Vec::new();
        let mut offset = 0;
        // Bounded: Spotify playlists hold at most 10,000 items.
        for _ in 0..=(10_000 / PAGE) {
            let page = self.playlist_items(id, offset).await?;
            let n = page.items.len() as u32;
            out.extend(page.items);
            if !page.has_next || n == 0 {
                break;
            }
            offset += PAGE;
        }
        Ok(out)
    }

    /// Creates a private playlist owned by the member (`POST /me/playlists`, `public: false`).
    /// Sent once: after an unknown outcome ([`SpotifyError::Unavailable`]) the playlist may
    /// exist, and the caller looks for it instead of making another.
    pub(crate) async fn create_playlist(
        &self,
        name: &str,
        description: &str,
    ) -> Result<PlaylistInfo, SpotifyError> {
        let body = json!({"name": name, "public": false, "collaborative": false, "description": description});
        let v = self
            .post("create playlist", "me/playlists", &body, Resend::Never)
            .await?;
        playlist_from_json(&v)
            .ok_or_else(|| SpotifyError::Protocol("created playlist without id or snapshot".into()))
    }

    /// Appends at most 100 tracks; returns the new snapshot. Sent once: after an unknown
    /// outcome ([`SpotifyError::Unavailable`]) the tracks may be in the playlist, and the
    /// caller reads it instead of adding them twice.
    pub(crate) async fn add_items(
        &self,
        id: &str,
        tracks: &[TrackId],
    ) -> Result<String, SpotifyError> {
        debug_assert!(tracks.len() <= WRITE_CHUNK);
        let pid = playlist_id(id)?;
        let ids = track_ids(tracks)?;
        self.run_as("add items", Resend::Never, || async {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let items = ids.iter().map(|t| PlayableId::Track(t.as_ref()));
            match self
                .client
                .playlist_add_items(pid.as_ref(), items, None)
                .await
            {
                Ok(r) => Ok(r.snapshot_id),
                Err(e) => Err(CallError::from_rspotify(e).await),
            }
        })
        .await
    }

    /// Removes every occurrence of at most 100 tracks; returns the new snapshot.
    pub(crate) async fn remove_items(
        &self,
        id: &str,
        tracks: &[TrackId],
        snapshot: Option<&str>,
    ) -> Result<String, SpotifyError> {
        debug_assert!(tracks.len() <= WRITE_CHUNK);
        let pid = playlist_id(id)?;
        let ids = track_ids(tracks)?;
        self.run("remove items", || async {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let items = ids.iter().map(|t| PlayableId::Track(t.as_ref()));
            match self
                .client
                .playlist_remove_all_occurrences_of_items(pid.as_ref(), items, snapshot)
                .await
            {
                Ok(r) => Ok(r.snapshot_id),
                Err(e) => Err(CallError::from_rspotify(e).await),
            }
        })
        .await
    }

    /// Which of the URIs (tracks or playlists) are in the member's library, at most 40.
    pub(crate) async fn library_contains(
        &self,
        ids: &[LibraryId<'_>],
    ) -> Result<Vec<bool>, SpotifyError> {
        debug_assert!(ids.len() <= CONTAINS_CHUNK);
        let answer = self
            .run("library contains", || async {
                self.requests.fetch_add(1, Ordering::Relaxed);
                match self
                    .client
                    .library_contains(ids.iter().map(|i| i.as_ref()))
                    .await
                {
                    Ok(v) => Ok(v),
                    Err(e) => Err(CallError::from_rspotify(e).await),
                }
            })
            .await?;
        if answer.len() != ids.len() {
            return Err(SpotifyError::Protocol(format!(
                "library contains: {} answers for {} ids",
                answer.len(),
                ids.len()
            )));
        }
        Ok(answer)
    }
}

fn playlist_id(id: &str) -> Result<PlaylistId<'static>, SpotifyError> {
    PlaylistId::from_id(id.to_string())
        .map_err(|_| SpotifyError::Protocol(format!("bad playlist id {id:?}")))
}

fn track_ids(tracks: &[TrackId]) -> Result<Vec<rspotify::model::TrackId<'static>>, SpotifyError> {
    tracks
        .iter()
        .map(|t| {
            rspotify::model::TrackId::from_id(t.as_str().to_string())
                .map_err(|_| SpotifyError::Protocol(format!("bad track id {t}")))
        })
        .collect()
}

/// A paging object's items, whether a next page exists, and the total.
fn page_parts(v: &Value) -> Result<(Vec<Value>, bool, Option<u32>), SpotifyError> {
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| SpotifyError::Protocol("a page without items".into()))?;
    let has_next = v.get("next").is_some_and(|n| !n.is_null());
    let total = v.get("total").and_then(Value::as_u64).map(|t| t as u32);
    Ok((items.clone(), has_next, total))
}

fn playlist_from_json(v: &Value) -> Option<PlaylistInfo> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    Some(PlaylistInfo {
        id: s("id")?,
        name: s("name").unwrap_or_default(),
        owner_id: v
            .pointer("/owner/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        collaborative: v
            .get("collaborative")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        snapshot_id: s("snapshot_id")?,
        total: v
            .get("items")
            .or(v.get("tracks"))
            .and_then(|i| i.get("total"))
            .and_then(Value::as_u64)
            .map(|t| t as u32),
        description: s("description"),
    })
}

#[derive(Deserialize)]
struct RawTrack {
    id: Option<String>,
    name: String,
    #[serde(default)]
    artists: Vec<RawArtist>,
    album: Option<RawAlbum>,
    duration_ms: Option<u32>,
    explicit: Option<bool>,
    track_number: Option<u32>,
    disc_number: Option<u32>,
    external_ids: Option<HashMap<String, String>>,
    #[serde(default)]
    is_local: bool,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct RawArtist {
    id: Option<String>,
    name: String,
}

#[derive(Deserialize)]
struct RawAlbum {
    id: Option<String>,
    name: Option<String>,
    album_type: Option<String>,
    release_date: Option<String>,
    release_date_precision: Option<String>,
    total_tracks: Option<u32>,
    #[serde(default)]
    images: Vec<RawImage>,
}

#[derive(Deserialize)]
struct RawImage {
    url: String,
}

/// Reads a Spotify track object; None for episodes, local files and unreadable items.
pub(crate) fn track_from_json(v: &Value) -> Option<Track> {
    let raw: RawTrack = serde_json::from_value(v.clone()).ok()?;
    if raw.is_local || raw.kind.as_deref().is_some_and(|k| k != "track") {
        return None;
    }
    let id = TrackId::parse(raw.id.as_deref()?).ok()?;
    let album = raw.album;
    let release_date = album.as_ref().and_then(|a| a.release_date.clone());
    Some(Track {
        id,
        name: raw.name,
        artists: raw.artists.into_iter().map(|a| (a.id, a.name)).collect(),
        album_id: album.as_ref().and_then(|a| a.id.clone()),
        album_name: album.as_ref().and_then(|a| a.name.clone()),
        album_type: album.as_ref().and_then(|a| a.album_type.clone()),
        release_precision: album
            .as_ref()
            .and_then(|a| a.release_date_precision.as_deref())
            .and_then(ReleasePrecision::parse)
            .or_else(|| release_date.as_deref().and_then(ReleasePrecision::of_date)),
        release_date,
        duration_ms: raw.duration_ms,
        explicit: raw.explicit,
        track_number: raw.track_number,
        disc_number: raw.disc_number,
        total_tracks: album.as_ref().and_then(|a| a.total_tracks),
        isrc: raw.external_ids.and_then(|mut e| e.remove("isrc")),
        image_url: album.and_then(|a| a.images.into_iter().next().map(|i| i.url)),
        audio: None,
    })
}
