//! A local HTTP server that answers like Spotify (accounts service, the Web API endpoints
//! sublist uses, and ReccoBeats' audio features), for tests and `sublist demo`.
//!
//! It holds state (apps and their allowlists, users, Liked Songs, playlists with snapshot
//! ids, tokens), counts and records every request with the body it answered, and can be told
//! to fail: 429 with `Retry-After`, `QUOTA_EXCEEDED`, any status, or slow answers, before or
//! after applying the request. Bound to
//! 127.0.0.1 on a free port; it stops when the last handle is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use url::Url;

use crate::clock::Clock;
use crate::domain::{Track, TrackId};

/// The 403 body Spotify sends for a user who is not on a development-mode app's allowlist.
pub const NOT_REGISTERED: &str =
    "Check settings on developer.spotify.com/dashboard, the user may not be registered.";

/// A failure the server should answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 429 with `Retry-After` (seconds): the rolling rate limit.
    RateLimited { retry_after: u64 },
    /// 429 `QUOTA_EXCEEDED` with `Retry-After` (seconds): the daily quota.
    Quota { retry_after: u64 },
    /// Any status with a Spotify error body (e.g. 500, 502, 503).
    Status(u16),
    /// Answer normally, but only after this delay.
    Slow(Duration),
    /// Apply the request, then answer with this status and a Spotify error body: the answer
    /// is lost on its way back.
    AppliedThenStatus(u16),
    /// Apply the request, then answer only after this delay (past the client's time-out).
    AppliedThenSlow(Duration),
}

/// Which service a request went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Accounts,
    WebApi,
    ReccoBeats,
}

/// One request the server answered.
#[derive(Clone, Debug)]
pub struct Logged {
    pub service: Service,
    pub method: String,
    /// The path inside the service (for the Web API, without `/v1`: `/me/tracks`).
    pub path: String,
    pub query: String,
    pub status: u16,
    /// The JSON body answered, if any.
    pub body: Option<Value>,
    /// The JSON body received, if any.
    pub request_body: Option<Value>,
}

#[derive(Clone)]
struct App {
    secret: String,
    /// None: every user may use the app; Some: only these user ids.
    allowlist: Option<HashSet<String>>,
}

#[derive(Clone, Default)]
struct User {
    account_id: String,
    display_name: String,
    /// Newest first.
    liked: Vec<(String, DateTime<Utc>)>,
    /// Playlists in the user's library, in order.
    library: Vec<String>,
}

#[derive(Clone)]
struct Playlist {
    id: String,
    owner: String,
    name: String,
    description: String,
    public: bool,
    collaborative: bool,
    items: Vec<(String, DateTime<Utc>, String)>,
    version: u64,
}

impl Playlist {
    fn snapshot(&self) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(format!("{}:{}", self.version, self.id))
    }
}

struct Injected {
    /// Matching requests still let through before the failure starts.
    skip: u32,
    method: Option<String>,
    path_contains: String,
    failure: Failure,
    times: u32,
}

#[derive(Default)]
struct World {
    apps: HashMap<String, App>,
    users: HashMap<String, User>,
    playlists: HashMap<String, Playlist>,
    browser_user: Option<String>,
    deny_next: bool,
    codes: HashMap<String, (String, String, String)>,
    access: HashMap<String, (String, String, DateTime<Utc>)>,
    refresh: HashMap<String, (String, String)>,
    rotate_refresh: bool,
    access_ttl_secs: i64,
    audio_unknown: HashSet<String>,
    failures: VecDeque<Injected>,
    log: Vec<Logged>,
    next: u64,
    /// Tracks with real metadata (the demo's sample); others are made up from their id.
    catalogue: HashMap<String, Track>,
    /// What "now" is: for token lifetimes, like and add times, and fresh ids.
    clock: Clock,
    /// Injected failures answered so far.
    fired: u64,
    /// Apps whose daily quota is used up, until when.
    quota_until: HashMap<String, DateTime<Utc>>,
}

impl World {
    /// The track object for `id`: from the catalogue when it holds the track.
    fn track_json(&self, base: &str, id: &str) -> Value {
        match self.catalogue.get(id) {
            Some(t) => catalogue_track_json(base, t),
            None => track_json(base, id),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        let raw = format!(
            "{prefix}{}{}",
            self.next,
            self.now().timestamp_nanos_opt().unwrap_or(0)
        );
        let mut id: String = raw.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        id.truncate(22);
        while id.len() < 22 {
            id.push('x');
        }
        id
    }
}

struct Shared {
    world: Mutex<World>,
    base: String,
}

struct Abort(tokio::task::JoinHandle<()>);
impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running local Spotify. Clones share the server.
#[derive(Clone)]
pub struct LocalSpotify {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _task: Arc<Abort>,
}

/// The track id the local catalogue uses for number `n` (22 base-62 characters).
pub fn track_id(n: u32) -> TrackId {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut digits = Vec::new();
    let mut v = n as u64;
    loop {
        digits.push(ALPHABET[(v % 62) as usize] as char);
        v /= 62;
        if v == 0 {
            break;
        }
    }
    let tail: String = digits.into_iter().rev().collect();
    let id = format!("{tail:0>22}");
    // Valid by construction: 22 base-62 characters.
    TrackId::parse(&id).unwrap_or_else(|_| unreachable!("generated track id {id}"))
}

impl LocalSpotify {
    /// Starts the server on 127.0.0.1 with a free port.
    pub async fn start() -> std::io::Result<LocalSpotify> {
        Self::start_with_clock(Clock::system()).await
    }

    /// Starts the server with `clock` as its time (token lifetimes, like and add times).
    pub async fn start_with_clock(clock: Clock) -> std::io::Result<LocalSpotify> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            world: Mutex::new(World {
                access_ttl_secs: 3600,
                clock,
                ..World::default()
            }),
            base: format!("http://{addr}"),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(LocalSpotify {
            shared,
            addr,
            _task: Arc::new(Abort(task)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{path}", self.shared.base))
            .unwrap_or_else(|e| unreachable!("local URL: {e}"))
    }

    /// `http://127.0.0.1:PORT/v1/`, for `api_base_url`.
    pub fn api_base_url(&self) -> Url {
        self.url("/v1/")
    }

    /// `http://127.0.0.1:PORT/`, for `accounts_base_url`.
    pub fn accounts_base_url(&self) -> Url {
        self.url("/")
    }

    /// `http://127.0.0.1:PORT/reccobeats/v1/`, for `reccobeats_base_url`.
    pub fn reccobeats_base_url(&self) -> Url {
        self.url("/reccobeats/v1/")
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.shared.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an app. With `allowlist_only`, only users added by [`Self::allow`] may use it.
    pub fn add_app(&self, client_id: &str, secret: &str, allowlist_only: bool) {
        self.world().apps.insert(
            client_id.into(),
            App {
                secret: secret.into(),
                allowlist: allowlist_only.then(HashSet::new),
            },
        );
    }

    pub fn allow(&self, client_id: &str, user_id: &str) {
        if let Some(list) = self
            .world()
            .apps
            .get_mut(client_id)
            .and_then(|a| a.allowlist.as_mut())
        {
            list.insert(user_id.into());
        }
    }

    pub fn add_user(&self, user_id: &str, account_id: &str, display_name: &str) {
        self.world().users.insert(
            user_id.into(),
            User {
                account_id: account_id.into(),
                display_name: display_name.into(),
                ..User::default()
            },
        );
    }

    /// The user logged in to the "browser" that opens `/authorize`.
    pub fn set_browser_user(&self, user_id: &str) {
        self.world().browser_user = Some(user_id.into());
    }

    /// The next `/authorize` is declined by the user.
    pub fn deny_next_authorize(&self) {
        self.world().deny_next = true;
    }

    /// Gives `user` a library of `n` liked tracks, `track_id(0)` the newest.
    pub fn seed_liked(&self, user: &str, n: u32) {
        let mut w = self.world();
        let now = w.now();
        if let Some(u) = w.users.get_mut(user) {
            u.liked = (0..n)
                .map(|i| {
                    (
                        track_id(i).to_string(),
                        now - chrono::Duration::minutes(i64::from(i) + 1),
                    )
                })
                .collect();
        }
    }

    /// Serves these tracks with their real metadata (and audio descriptors, when they have
    /// them) instead of made-up ones.
    pub fn add_catalogue(&self, tracks: &[Track]) {
        let mut w = self.world();
        for t in tracks {
            w.catalogue.insert(t.id.as_str().to_string(), t.clone());
        }
    }

    /// The user likes these tracks now, in order (the last one is the newest).
    pub fn like(&self, user: &str, tracks: &[TrackId]) {
        let mut w = self.world();
        let now = w.now();
        if let Some(u) = w.users.get_mut(user) {
            for (i, t) in tracks.iter().enumerate() {
                u.liked.retain(|(id, _)| id != t.as_str());
                u.liked.insert(
                    0,
                    (
                        t.to_string(),
                        now + chrono::Duration::milliseconds(i as i64),
                    ),
                );
            }
        }
    }

    pub fn unlike(&self, user: &str, tracks: &[TrackId]) {
        let gone: HashSet<&str> = tracks.iter().map(TrackId::as_str).collect();
        if let Some(u) = self.world().users.get_mut(user) {
            u.liked.retain(|(id, _)| !gone.contains(id.as_str()));
        }
    }

    pub fn liked(&self, user: &str) -> Vec<TrackId> {
        self.world()
            .users
            .get(user)
            .map(|u| {
                u.liked
                    .iter()
                    .filter_map(|(id, _)| TrackId::parse(id).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A playlist the user made themselves (in their library).
    pub fn create_playlist(
        &self,
        owner: &str,
        name: &str,
        tracks: &[TrackId],
        collaborative: bool,
    ) -> String {
        let mut w = self.world();
        let id = w.fresh("pl");
        let now = w.now();
        w.playlists.insert(
            id.clone(),
            Playlist {
                id: id.clone(),
                owner: owner.into(),
                name: name.into(),
                description: String::new(),
                public: false,
                collaborative,
                items: tracks
                    .iter()
                    .map(|t| (t.to_string(), now, owner.to_string()))
                    .collect(),
                version: 1,
            },
        );
        if let Some(u) = w.users.get_mut(owner) {
            u.library.push(id.clone());
        }
        id
    }

    /// The tracks of a playlist, in order, or None if there is no such playlist.
    pub fn playlist_tracks(&self, id: &str) -> Option<Vec<TrackId>> {
        self.world().playlists.get(id).map(|p| {
            p.items
                .iter()
                .filter_map(|(t, _, _)| TrackId::parse(t).ok())
                .collect()
        })
    }

    /// Name, description and public flag of a playlist.
    pub fn playlist_details(&self, id: &str) -> Option<(String, String, bool)> {
        self.world()
            .playlists
            .get(id)
            .map(|p| (p.name.clone(), p.description.clone(), p.public))
    }

    /// The playlists in the user's library, (id, name), in order.
    pub fn library_playlists(&self, user: &str) -> Vec<(String, String)> {
        let w = self.world();
        w.users
            .get(user)
            .map(|u| {
                u.library
                    .iter()
                    .filter_map(|id| w.playlists.get(id).map(|p| (id.clone(), p.name.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The member edits a playlist in the Spotify app: appends tracks.
    pub fn hand_add(&self, playlist: &str, tracks: &[TrackId]) {
        let mut w = self.world();
        let now = w.now();
        if let Some(p) = w.playlists.get_mut(playlist) {
            let owner = p.owner.clone();
            p.items
                .extend(tracks.iter().map(|t| (t.to_string(), now, owner.clone())));
            p.version += 1;
        }
    }

    /// The member removes tracks from a playlist in the Spotify app.
    pub fn hand_remove(&self, playlist: &str, tracks: &[TrackId]) {
        let gone: HashSet<&str> = tracks.iter().map(TrackId::as_str).collect();
        if let Some(p) = self.world().playlists.get_mut(playlist) {
            p.items.retain(|(t, _, _)| !gone.contains(t.as_str()));
            p.version += 1;
        }
    }

    pub fn rename(&self, playlist: &str, name: &str) {
        if let Some(p) = self.world().playlists.get_mut(playlist) {
            p.name = name.into();
            p.version += 1;
        }
    }

    /// The member deletes a playlist in the Spotify app (Spotify unfollows it; it still exists).
    pub fn delete_playlist(&self, user: &str, playlist: &str) {
        if let Some(u) = self.world().users.get_mut(user) {
            u.library.retain(|p| p != playlist);
        }
    }

    /// Answer the next `times` requests whose path contains `path_contains` (and whose method
    /// matches, if given) with `failure`.
    pub fn inject(&self, method: Option<&str>, path_contains: &str, failure: Failure, times: u32) {
        self.inject_after(method, path_contains, 0, failure, times);
    }

    /// Like [`Self::inject`], after letting `skip` matching requests through.
    pub fn inject_after(
        &self,
        method: Option<&str>,
        path_contains: &str,
        skip: u32,
        failure: Failure,
        times: u32,
    ) {
        self.world().failures.push_back(Injected {
            skip,
            method: method.map(str::to_ascii_uppercase),
            path_contains: path_contains.into(),
            failure,
            times,
        });
    }

    pub fn clear_failures(&self) {
        self.world().failures.clear();
    }

    /// How many injected failures the server has answered with so far (each answer counts).
    pub fn failures_fired(&self) -> u64 {
        self.world().fired
    }

    /// The app's daily quota is used up until `until`: every Web API call made with its
    /// tokens answers 429 `QUOTA_EXCEEDED`, with the seconds left as `Retry-After`.
    pub fn exhaust_quota(&self, client_id: &str, until: DateTime<Utc>) {
        self.world().quota_until.insert(client_id.into(), until);
    }

    /// The user removes the app's access on their Spotify account: every access and refresh
    /// token the server gave them stops working (401, then `invalid_grant`).
    pub fn revoke_access(&self, user: &str) {
        let mut w = self.world();
        w.access.retain(|_, (u, _, _)| u != user);
        w.refresh.retain(|_, (u, _)| u != user);
    }

    /// Refreshing hands out a new refresh token and retires the old one.
    pub fn set_rotate_refresh(&self, on: bool) {
        self.world().rotate_refresh = on;
    }

    /// Lifetime of new access tokens.
    pub fn set_access_ttl(&self, secs: i64) {
        self.world().access_ttl_secs = secs;
    }

    /// Every access token stops working now (revoked early), whatever its expiry said.
    pub fn expire_access_tokens(&self) {
        let mut w = self.world();
        let past = w.now() - chrono::Duration::seconds(1);
        for (_, (_, _, at)) in w.access.iter_mut() {
            *at = past;
        }
    }

    /// Every refresh token of the user dies (as six months after authorization).
    pub fn revoke_refresh_tokens(&self, user: &str) {
        self.world().refresh.retain(|_, (u, _)| u != user);
    }

    /// Every access and refresh token the server gave the user (to check none is stored in
    /// the clear).
    pub fn tokens_of(&self, user: &str) -> Vec<String> {
        let w = self.world();
        let access = w
            .access
            .iter()
            .filter(|(_, (u, _, _))| u == user)
            .map(|(t, _)| t.clone());
        let refresh = w
            .refresh
            .iter()
            .filter(|(_, (u, _))| u == user)
            .map(|(t, _)| t.clone());
        access.chain(refresh).collect()
    }

    /// ReccoBeats does not know these tracks.
    pub fn set_audio_unknown(&self, tracks: &[TrackId]) {
        self.world()
            .audio_unknown
            .extend(tracks.iter().map(|t| t.to_string()));
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.world().log.clone()
    }

    /// Requests with this method whose path starts with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.world()
            .log
            .iter()
            .filter(|l| l.method.eq_ignore_ascii_case(method) && l.path.starts_with(path_prefix))
            .count()
    }

    pub fn clear_log(&self) {
        self.world().log.clear();
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn api_error(status: u16, message: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"status": status, "message": message}}),
    )
}

/// What a routed request produced: a JSON answer, or a redirect.
enum Answer {
    Json(u16, Value, Option<u64>),
    Empty(u16),
    Redirect(String),
    Text(u16, String),
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let (service, inner) = if let Some(rest) = path.strip_prefix("/v1") {
        (Service::WebApi, rest.to_string())
    } else if let Some(rest) = path.strip_prefix("/reccobeats/v1") {
        (Service::ReccoBeats, rest.to_string())
    } else {
        (Service::Accounts, path.clone())
    };
    let request_body: Option<Value> = serde_json::from_slice(&body).ok();

    // An injected failure, if one matches.
    let failure = {
        let mut w = shared.world.lock().unwrap_or_else(|p| p.into_inner());
        let hit = w.failures.iter_mut().find(|f| {
            f.times > 0
                && path.contains(&f.path_contains)
                && f.method.as_deref().is_none_or(|m| m == method.as_str())
        });
        let failure = hit.and_then(|f| {
            if f.skip > 0 {
                f.skip -= 1;
                return None;
            }
            f.times -= 1;
            Some(f.failure.clone())
        });
        w.failures.retain(|f| f.times > 0);
        w.fired += u64::from(failure.is_some());
        failure
    };
    // Failures that come after the request is applied.
    let (failure, after) = match failure {
        Some(f @ (Failure::AppliedThenStatus(_) | Failure::AppliedThenSlow(_))) => (None, Some(f)),
        other => (other, None),
    };
    let answer = match failure {
        Some(Failure::Slow(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(Failure::RateLimited { retry_after }) => {
            let (s, b) = api_error(429, "API rate limit exceeded");
            Some(Answer::Json(s, b, Some(retry_after)))
        }
        Some(Failure::Quota { retry_after }) => Some(Answer::Json(
            429,
            json!({"error": {"status": 429, "message": "Daily quota exceeded", "reason": "QUOTA_EXCEEDED"}}),
            Some(retry_after),
        )),
        Some(Failure::Status(s)) => {
            let (s, b) = api_error(s, "Something went wrong");
            Some(Answer::Json(s, b, None))
        }
        None | Some(Failure::AppliedThenStatus(_) | Failure::AppliedThenSlow(_)) => None,
    };
    let answer = match answer {
        Some(a) => a,
        None => {
            let mut w = shared.world.lock().unwrap_or_else(|p| p.into_inner());
            let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            match service {
                Service::Accounts => accounts(&mut w, &method, &inner, &params, &headers, &body),
                Service::ReccoBeats => reccobeats(&w, &method, &inner, &params),
                Service::WebApi => web_api(
                    &mut w,
                    &shared.base,
                    &method,
                    &inner,
                    &params,
                    &headers,
                    request_body.as_ref(),
                ),
            }
        }
    };
    let answer = match after {
        Some(Failure::AppliedThenStatus(s)) => {
            let (s, b) = api_error(s, "Something went wrong");
            Answer::Json(s, b, None)
        }
        Some(Failure::AppliedThenSlow(d)) => {
            tokio::time::sleep(d).await;
            answer
        }
        _ => answer,
    };

    let (status, logged_body, response) = match answer {
        Answer::Json(s, b, retry_after) => {
            let mut r = json_response(s, &b);
            if let Some(secs) = retry_after
                && let Ok(v) = secs.to_string().parse()
            {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            (s, Some(b), r)
        }
        Answer::Empty(s) => (
            s,
            None,
            StatusCode::from_u16(s)
                .unwrap_or(StatusCode::OK)
                .into_response(),
        ),
        Answer::Redirect(to) => (
            303,
            None,
            (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response(),
        ),
        Answer::Text(s, t) => (
            s,
            None,
            (
                StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST),
                t,
            )
                .into_response(),
        ),
    };
    let mut w = shared.world.lock().unwrap_or_else(|p| p.into_inner());
    w.log.push(Logged {
        service,
        method: method.to_string(),
        path: inner,
        query,
        status,
        body: logged_body,
        request_body,
    });
    response
}

fn accounts(
    w: &mut World,
    method: &Method,
    path: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Answer {
    match (method.as_str(), path) {
        ("GET", "/authorize") => {
            let client = params.get("client_id").cloned().unwrap_or_default();
            if !w.apps.contains_key(&client) {
                return Answer::Text(400, "INVALID_CLIENT: Invalid client".into());
            }
            if params.get("response_type").map(String::as_str) != Some("code") {
                return Answer::Text(400, "unsupported_response_type".into());
            }
            let Some(redirect) = params.get("redirect_uri").cloned() else {
                return Answer::Text(400, "INVALID_CLIENT: Invalid redirect URI".into());
            };
            let state = params.get("state").cloned().unwrap_or_default();
            let Ok(mut to) = Url::parse(&redirect) else {
                return Answer::Text(400, "INVALID_CLIENT: Invalid redirect URI".into());
            };
            if std::mem::take(&mut w.deny_next) {
                to.query_pairs_mut()
                    .append_pair("error", "access_denied")
                    .append_pair("state", &state);
                return Answer::Redirect(to.to_string());
            }
            let Some(user) = w.browser_user.clone() else {
                return Answer::Text(400, "nobody is logged in to the local Spotify".into());
            };
            let code = w.fresh("code");
            w.codes.insert(code.clone(), (user, client, redirect));
            to.query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("state", &state);
            Answer::Redirect(to.to_string())
        }
        ("POST", "/api/token") => {
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(body).into_owned().collect();
            let (id, secret) = basic_auth(headers).unwrap_or_else(|| {
                (
                    form.get("client_id").cloned().unwrap_or_default(),
                    form.get("client_secret").cloned().unwrap_or_default(),
                )
            });
            if w.apps.get(&id).is_none_or(|a| a.secret != secret) {
                return Answer::Json(
                    400,
                    json!({"error": "invalid_client", "error_description": "Invalid client"}),
                    None,
                );
            }
            let grant = |d: &str| {
                Answer::Json(
                    400,
                    json!({"error": "invalid_grant", "error_description": d}),
                    None,
                )
            };
            let ttl = w.access_ttl_secs;
            match form.get("grant_type").map(String::as_str) {
                Some("authorization_code") => {
                    let code = form.get("code").cloned().unwrap_or_default();
                    let Some((user, client, redirect)) = w.codes.remove(&code) else {
                        return grant("Invalid authorization code");
                    };
                    if client != id || form.get("redirect_uri") != Some(&redirect) {
                        return grant("Invalid redirect URI");
                    }
                    let access = w.fresh("at");
                    let refresh = w.fresh("rt");
                    let expires = w.now() + chrono::Duration::seconds(ttl);
                    w.access
                        .insert(access.clone(), (user.clone(), id.clone(), expires));
                    w.refresh.insert(refresh.clone(), (user, id));
                    Answer::Json(
                        200,
                        json!({"access_token": access, "token_type": "Bearer",
                        "scope": form.get("scope").cloned().unwrap_or_default(),
                        "expires_in": ttl, "refresh_token": refresh}),
                        None,
                    )
                }
                Some("refresh_token") => {
                    let rt = form.get("refresh_token").cloned().unwrap_or_default();
                    let Some((user, client)) = w.refresh.get(&rt).cloned() else {
                        return grant("Refresh token revoked");
                    };
                    if client != id {
                        return grant("Invalid refresh token");
                    }
                    let access = w.fresh("at");
                    let expires = w.now() + chrono::Duration::seconds(ttl);
                    w.access
                        .insert(access.clone(), (user.clone(), id.clone(), expires));
                    let mut answer = json!({"access_token": access, "token_type": "Bearer",
                        "scope": "user-library-read playlist-read-private playlist-modify-private",
                        "expires_in": ttl});
                    if w.rotate_refresh {
                        w.refresh.remove(&rt);
                        let new = w.fresh("rt");
                        w.refresh.insert(new.clone(), (user, id));
                        answer["refresh_token"] = json!(new);
                    }
                    Answer::Json(200, answer, None)
                }
                _ => Answer::Json(400, json!({"error": "unsupported_grant_type"}), None),
            }
        }
        _ => Answer::Text(404, "not found".into()),
    }
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.into(), secret.into()))
}

fn reccobeats(w: &World, method: &Method, path: &str, params: &HashMap<String, String>) -> Answer {
    if method != Method::GET || path != "/audio-features" {
        return Answer::Json(404, json!({"error": "not found"}), None);
    }
    let ids: Vec<&str> = params
        .get("ids")
        .map(|s| s.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if ids.len() > 40 {
        return Answer::Json(400, json!({"error": "at most 40 ids"}), None);
    }
    let content: Vec<Value> = ids
        .iter()
        .filter(|id| !w.audio_unknown.contains(**id))
        .filter(|id| w.catalogue.get(**id).is_none_or(|t| t.audio.is_some()))
        .map(|id| {
            if let Some(a) = w.catalogue.get(*id).and_then(|t| t.audio) {
                let v = a.values();
                return json!({
                    "id": format!("rb-{id}"),
                    "href": format!("https://open.spotify.com/track/{id}"),
                    "danceability": v[0], "energy": v[1], "key": v[2], "loudness": v[3],
                    "mode": v[4], "speechiness": v[5], "acousticness": v[6],
                    "instrumentalness": v[7], "liveness": v[8], "valence": v[9], "tempo": v[10],
                });
            }
            let h = seed(id);
            let f = |k: u64| ((h >> (k * 5)) % 1000) as f64 / 1000.0;
            json!({
                "id": format!("rb-{id}"),
                "href": format!("https://open.spotify.com/track/{id}"),
                "danceability": f(0), "energy": f(1), "key": (h % 12) as f64,
                "loudness": -30.0 * f(2), "mode": (h % 2) as f64, "speechiness": f(3),
                "acousticness": f(4), "instrumentalness": f(5), "liveness": f(6),
                "valence": f(7), "tempo": 60.0 + 120.0 * f(8),
            })
        })
        .collect();
    Answer::Json(200, json!({ "content": content }), None)
}

fn seed(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    })
}

fn track_json(base: &str, id: &str) -> Value {
    let h = seed(id);
    let short = &id[id.len().saturating_sub(6)..];
    let artist = format!("ar{}", &id[2..]);
    let album = format!("al{}", &id[2..]);
    let year = 1970 + (h % 55);
    json!({
        "album": {
            "album_type": if h.is_multiple_of(3) { "single" } else { "album" },
            "total_tracks": 1 + (h % 14),
            "available_markets": [],
            "external_urls": {"spotify": format!("https://open.spotify.com/album/{album}")},
            "href": format!("{base}/v1/albums/{album}"),
            "id": album,
            "images": [{"url": format!("https://i.scdn.co/image/{album}"), "height": 640, "width": 640}],
            "name": format!("Album {short}"),
            "release_date": format!("{year}-0{}-1{}", 1 + h % 9, h % 9),
            "release_date_precision": "day",
            "type": "album",
            "uri": format!("spotify:album:{album}"),
            "artists": [{"external_urls": {"spotify": format!("https://open.spotify.com/artist/{artist}")},
                         "href": format!("{base}/v1/artists/{artist}"), "id": artist,
                         "name": format!("Artist {}", h % 97), "type": "artist",
                         "uri": format!("spotify:artist:{artist}")}]
        },
        "artists": [{"external_urls": {"spotify": format!("https://open.spotify.com/artist/{artist}")},
                     "href": format!("{base}/v1/artists/{artist}"), "id": artist,
                     "name": format!("Artist {}", h % 97), "type": "artist",
                     "uri": format!("spotify:artist:{artist}")}],
        "available_markets": [],
        "disc_number": 1,
        "duration_ms": 120_000 + (h % 240_000),
        "explicit": h.is_multiple_of(5),
        "external_ids": {"isrc": format!("QZ{}{:02}{:05}", "ABC", year % 100, h % 100_000)},
        "external_urls": {"spotify": format!("https://open.spotify.com/track/{id}")},
        "href": format!("{base}/v1/tracks/{id}"),
        "id": id,
        "is_local": false,
        "is_playable": true,
        "name": format!("Track {short}"),
        "preview_url": null,
        "track_number": 1 + (h % 12),
        "type": "track",
        "uri": format!("spotify:track:{id}"),
    })
}

/// A track object from real metadata; what the metadata lacks is left out or made up from
/// the id, as Spotify always sends those fields.
fn catalogue_track_json(base: &str, t: &Track) -> Value {
    let id = t.id.as_str();
    let artist = |(aid, name): &(Option<String>, String)| {
        let aid = aid
            .clone()
            .unwrap_or_else(|| format!("ar{:0>20}", seed(name) % 100_000_000_000));
        json!({"external_urls": {"spotify": format!("https://open.spotify.com/artist/{aid}")},
               "href": format!("{base}/v1/artists/{aid}"), "id": aid, "name": name,
               "type": "artist", "uri": format!("spotify:artist:{aid}")})
    };
    let artists: Vec<Value> = t.artists.iter().map(artist).collect();
    let album = t
        .album_id
        .clone()
        .unwrap_or_else(|| format!("al{}", &id[2..]));
    let mut v = json!({
        "album": {
            "album_type": t.album_type.clone().unwrap_or_else(|| "album".into()),
            "total_tracks": t.total_tracks.unwrap_or(1),
            "available_markets": [],
            "external_urls": {"spotify": format!("https://open.spotify.com/album/{album}")},
            "href": format!("{base}/v1/albums/{album}"),
            "id": album,
            "images": [],
            "name": t.album_name.clone().unwrap_or_default(),
            "release_date": t.release_date.clone().unwrap_or_else(|| "2000".into()),
            "release_date_precision": t.release_precision.map_or("year", |p| p.as_str()),
            "type": "album",
            "uri": format!("spotify:album:{album}"),
            "artists": artists.clone(),
        },
        "artists": artists,
        "available_markets": [],
        "disc_number": t.disc_number.unwrap_or(1),
        "duration_ms": t.duration_ms.unwrap_or(0),
        "explicit": t.explicit.unwrap_or(false),
        "external_ids": {},
        "external_urls": {"spotify": format!("https://open.spotify.com/track/{id}")},
        "href": format!("{base}/v1/tracks/{id}"),
        "id": id,
        "is_local": false,
        "is_playable": true,
        "name": t.name,
        "preview_url": null,
        "track_number": t.track_number.unwrap_or(1),
        "type": "track",
        "uri": format!("spotify:track:{id}"),
    });
    if let Some(isrc) = &t.isrc {
        v["external_ids"]["isrc"] = json!(isrc);
    }
    if let Some(url) = &t.image_url {
        v["album"]["images"] = json!([{"url": url, "height": 640, "width": 640}]);
    }
    v
}

fn user_ref(base: &str, user: &str, display: Option<&str>) -> Value {
    let mut v = json!({
        "external_urls": {"spotify": format!("https://open.spotify.com/user/{user}")},
        "href": format!("{base}/v1/users/{user}"),
        "id": user,
        "type": "user",
        "uri": format!("spotify:user:{user}"),
    });
    if let Some(d) = display {
        v["display_name"] = json!(d);
    }
    v
}

fn page(
    base: &str,
    path: &str,
    items: Vec<Value>,
    limit: usize,
    offset: usize,
    total: usize,
) -> Value {
    let link = |o: usize| format!("{base}/v1{path}?offset={o}&limit={limit}");
    json!({
        "href": link(offset),
        "items": items,
        "limit": limit,
        "next": if offset + limit < total { Value::from(link(offset + limit)) } else { Value::Null },
        "offset": offset,
        "previous": if offset > 0 { Value::from(link(offset.saturating_sub(limit))) } else { Value::Null },
        "total": total,
    })
}

fn playlist_simple(base: &str, w: &World, p: &Playlist) -> Value {
    let display = w.users.get(&p.owner).map(|u| u.display_name.as_str());
    json!({
        "collaborative": p.collaborative,
        "description": p.description,
        "external_urls": {"spotify": format!("https://open.spotify.com/playlist/{}", p.id)},
        "href": format!("{base}/v1/playlists/{}", p.id),
        "id": p.id,
        "images": [],
        "name": p.name,
        "owner": user_ref(base, &p.owner, display),
        "public": p.public,
        "snapshot_id": p.snapshot(),
        "items": {"href": format!("{base}/v1/playlists/{}/items", p.id), "total": p.items.len()},
        "tracks": {"href": format!("{base}/v1/playlists/{}/items", p.id), "total": p.items.len()},
        "type": "playlist",
        "uri": format!("spotify:playlist:{}", p.id),
    })
}

fn playlist_items_page(w: &World, base: &str, p: &Playlist, limit: usize, offset: usize) -> Value {
    let items = p
        .items
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(t, at, by)| {
            let track = w.track_json(base, t);
            json!({
                "added_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "added_by": user_ref(base, by, None),
                "is_local": false,
                "item": track,
                "track": track,
            })
        })
        .collect();
    page(
        base,
        &format!("/playlists/{}/items", p.id),
        items,
        limit,
        offset,
        p.items.len(),
    )
}

fn limit_offset(params: &HashMap<String, String>) -> Result<(usize, usize), (u16, Value)> {
    let limit = match params.get("limit") {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=50).contains(&n) => n,
            _ => return Err(api_error(400, "Invalid limit")),
        },
    };
    let offset = match params.get("offset") {
        None => 0,
        Some(o) => o
            .parse::<usize>()
            .map_err(|_| api_error(400, "Invalid offset"))?,
    };
    Ok((limit, offset))
}

fn uris_to_ids(uris: &[Value]) -> Result<Vec<String>, (u16, Value)> {
    uris.iter()
        .map(|u| {
            u.as_str()
                .and_then(|s| s.strip_prefix("spotify:track:"))
                .filter(|id| TrackId::parse(id).is_ok())
                .map(String::from)
                .ok_or_else(|| api_error(400, "Invalid track uri"))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn web_api(
    w: &mut World,
    base: &str,
    method: &Method,
    path: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Answer {
    let json = |(s, b): (u16, Value)| Answer::Json(s, b, None);
    // Authentication and the app's allowlist.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some((user, client, expires)) = w.access.get(token).cloned() else {
        return json(api_error(401, "Invalid access token"));
    };
    if expires <= w.now() {
        return json(api_error(401, "The access token expired"));
    }
    if let Some(until) = w.quota_until.get(&client).copied()
        && until > w.now()
    {
        let left = (until - w.now()).num_seconds().max(1) as u64;
        return Answer::Json(
            429,
            json!({"error": {"status": 429, "message": "Daily quota exceeded", "reason": "QUOTA_EXCEEDED"}}),
            Some(left),
        );
    }
    if w.apps
        .get(&client)
        .and_then(|a| a.allowlist.as_ref())
        .is_some_and(|l| !l.contains(&user))
    {
        return json(api_error(403, NOT_REGISTERED));
    }
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["me"]) => {
            let Some(u) = w.users.get(&user) else {
                return json(api_error(404, "No such user"));
            };
            let mut v = user_ref(base, &user, Some(&u.display_name));
            v["account_id"] = json!(u.account_id);
            v["images"] = json!([]);
            Answer::Json(200, v, None)
        }
        ("GET", ["me", "tracks"]) => {
            let (limit, offset) = match limit_offset(params) {
                Ok(v) => v,
                Err(e) => return json(e),
            };
            let liked = w
                .users
                .get(&user)
                .map(|u| u.liked.clone())
                .unwrap_or_default();
            let items = liked
                .iter()
                .skip(offset)
                .take(limit)
                .map(|(id, at)| {
                    json!({"added_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                           "track": w.track_json(base, id)})
                })
                .collect();
            Answer::Json(
                200,
                page(base, "/me/tracks", items, limit, offset, liked.len()),
                None,
            )
        }
        ("GET", ["me", "playlists"]) => {
            let (limit, offset) = match limit_offset(params) {
                Ok(v) => v,
                Err(e) => return json(e),
            };
            let library = w
                .users
                .get(&user)
                .map(|u| u.library.clone())
                .unwrap_or_default();
            let items = library
                .iter()
                .skip(offset)
                .take(limit)
                .filter_map(|id| w.playlists.get(id))
                .map(|p| playlist_simple(base, w, p))
                .collect();
            Answer::Json(
                200,
                page(base, "/me/playlists", items, limit, offset, library.len()),
                None,
            )
        }
        ("POST", ["me", "playlists"]) => {
            let Some(name) = body.and_then(|b| b.get("name")).and_then(Value::as_str) else {
                return json(api_error(400, "Missing required field: name"));
            };
            let public = body
                .and_then(|b| b.get("public"))
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let collaborative = body
                .and_then(|b| b.get("collaborative"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let description = body
                .and_then(|b| b.get("description"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let id = w.fresh("pl");
            let p = Playlist {
                id: id.clone(),
                owner: user.clone(),
                name: name.into(),
                description: description.into(),
                public,
                collaborative,
                items: Vec::new(),
                version: 1,
            };
            w.playlists.insert(id.clone(), p.clone());
            if let Some(u) = w.users.get_mut(&user) {
                u.library.push(id);
            }
            let mut v = playlist_simple(base, w, &p);
            v["items"] = playlist_items_page(w, base, &p, 50, 0);
            v["tracks"] = v["items"].clone();
            Answer::Json(201, v, None)
        }
        ("GET", ["me", "library", "contains"]) => {
            let uris: Vec<&str> = params
                .get("uris")
                .map(|s| s.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            if uris.is_empty() || uris.len() > 40 {
                return json(api_error(400, "Between 1 and 40 URIs"));
            }
            let u = w.users.get(&user).cloned().unwrap_or_default();
            let mut out = Vec::new();
            for uri in uris {
                if let Some(id) = uri.strip_prefix("spotify:track:") {
                    out.push(u.liked.iter().any(|(t, _)| t == id));
                } else if let Some(id) = uri.strip_prefix("spotify:playlist:") {
                    out.push(u.library.iter().any(|p| p == id));
                } else {
                    return json(api_error(400, "Unsupported URI type"));
                }
            }
            Answer::Json(200, json!(out), None)
        }
        (m, ["playlists", id, rest @ ..]) => {
            let Some(p) = w.playlists.get(*id).cloned() else {
                return json(api_error(404, "Resource not found"));
            };
            let may_read = p.owner == user || p.collaborative;
            let may_write = may_read;
            match (m, rest) {
                ("GET", []) => {
                    let mut v = playlist_simple(base, w, &p);
                    v["items"] = playlist_items_page(w, base, &p, 50, 0);
                    v["tracks"] = v["items"].clone();
                    Answer::Json(200, v, None)
                }
                ("PUT", []) => {
                    if p.owner != user {
                        return json(api_error(
                            403,
                            "You cannot change a playlist you don't own.",
                        ));
                    }
                    let Some(pl) = w.playlists.get_mut(*id) else {
                        return json(api_error(404, "Resource not found"));
                    };
                    if let Some(n) = body.and_then(|b| b.get("name")).and_then(Value::as_str) {
                        pl.name = n.into();
                    }
                    if let Some(d) = body
                        .and_then(|b| b.get("description"))
                        .and_then(Value::as_str)
                    {
                        pl.description = d.into();
                    }
                    pl.version += 1;
                    Answer::Empty(200)
                }
                ("GET", ["items"]) => {
                    if !may_read {
                        return json(api_error(403, "Forbidden"));
                    }
                    let (limit, offset) = match limit_offset(params) {
                        Ok(v) => v,
                        Err(e) => return json(e),
                    };
                    Answer::Json(200, playlist_items_page(w, base, &p, limit, offset), None)
                }
                (m @ ("POST" | "PUT" | "DELETE"), ["items"]) => {
                    if !may_write {
                        return json(api_error(403, "Forbidden"));
                    }
                    let body = body.cloned().unwrap_or(Value::Null);
                    let now = w.now();
                    let Some(pl) = w.playlists.get_mut(*id) else {
                        return json(api_error(404, "Resource not found"));
                    };
                    match m {
                        "POST" => {
                            let uris = body
                                .get("uris")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default();
                            if uris.is_empty() || uris.len() > 100 {
                                return json(api_error(
                                    400,
                                    "You can add at most 100 items per request",
                                ));
                            }
                            let ids = match uris_to_ids(&uris) {
                                Ok(v) => v,
                                Err(e) => return json(e),
                            };
                            let at = body
                                .get("position")
                                .and_then(Value::as_u64)
                                .map_or(pl.items.len(), |p| (p as usize).min(pl.items.len()));
                            let new: Vec<_> =
                                ids.into_iter().map(|t| (t, now, user.clone())).collect();
                            pl.items.splice(at..at, new);
                            pl.version += 1;
                            Answer::Json(201, json!({"snapshot_id": pl.snapshot()}), None)
                        }
                        "PUT" => {
                            if let Some(uris) = body.get("uris").and_then(Value::as_array) {
                                if uris.len() > 100 {
                                    return json(api_error(
                                        400,
                                        "You can set at most 100 items per request",
                                    ));
                                }
                                let ids = match uris_to_ids(uris) {
                                    Ok(v) => v,
                                    Err(e) => return json(e),
                                };
                                pl.items =
                                    ids.into_iter().map(|t| (t, now, user.clone())).collect();
                            } else {
                                let start =
                                    body.get("range_start").and_then(Value::as_u64).unwrap_or(0)
                                        as usize;
                                let len =
                                    body.get("range_length")
                                        .and_then(Value::as_u64)
                                        .unwrap_or(1) as usize;
                                let before =
                                    body.get("insert_before")
                                        .and_then(Value::as_u64)
                                        .unwrap_or(0) as usize;
                                if start + len > pl.items.len() || before > pl.items.len() {
                                    return json(api_error(400, "Index out of bounds"));
                                }
                                let moved: Vec<_> = pl.items.drain(start..start + len).collect();
                                let at = if before > start { before - len } else { before };
                                pl.items.splice(at..at, moved);
                            }
                            pl.version += 1;
                            Answer::Json(200, json!({"snapshot_id": pl.snapshot()}), None)
                        }
                        _ => {
                            let list = body
                                .get("items")
                                .or(body.get("tracks"))
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default();
                            if list.is_empty() || list.len() > 100 {
                                return json(api_error(
                                    400,
                                    "You can remove at most 100 items per request",
                                ));
                            }
                            let uris: Vec<Value> = list
                                .iter()
                                .map(|i| i.get("uri").cloned().unwrap_or(Value::Null))
                                .collect();
                            let ids = match uris_to_ids(&uris) {
                                Ok(v) => v,
                                Err(e) => return json(e),
                            };
                            let gone: HashSet<&String> = ids.iter().collect();
                            pl.items.retain(|(t, _, _)| !gone.contains(t));
                            pl.version += 1;
                            Answer::Json(200, json!({"snapshot_id": pl.snapshot()}), None)
                        }
                    }
                }
                _ => json(api_error(405, "Method not allowed")),
            }
        }
        _ => json(api_error(404, "Service not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_ids_are_distinct() {
        let ids: HashSet<TrackId> = (0..300_000).map(track_id).collect();
        assert_eq!(ids.len(), 300_000);
    }

    #[test]
    fn every_catalogue_track_reads_back() {
        let bad: Vec<u32> = (0..6000)
            .filter(|i| {
                let id = track_id(*i);
                let v = track_json("http://x", id.as_str());
                crate::spotify::api::track_from_json(&v).map(|t| t.id) != Some(id)
            })
            .collect();
        assert!(bad.is_empty(), "{:?}", &bad[..bad.len().min(5)]);
    }
}
