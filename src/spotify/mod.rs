//! Spotify: OAuth and tokens, the per-app limiter, motherlist sync, playlist upkeep and the
//! optional audio-descriptor provider. The only module that names rspotify.
//!
//! [`Spotify`] is the one handle the rest of the bot uses; nothing rspotify-typed leaves this
//! module. [`local::LocalSpotify`] is an HTTP server that answers like Spotify, for tests and
//! `sublist demo`.

mod api;
mod audio;
pub mod demo;
mod error;
mod limiter;
mod link;
pub mod local;
mod sync;
mod upkeep;

pub use api::PlaylistInfo;
pub use audio::AudioReport;
pub use error::SpotifyError;
pub use limiter::AppLimiter;
pub use link::{LinkError, LinkInfo, LinkStart};
pub use sync::{SyncProgress, SyncReport};
pub use upkeep::{Adopted, HandEdit, PlaylistChange, PlaylistSummary, WriteReport};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use crate::config::{AudioConfig, SpotifyApp, SpotifyConfig};
use crate::domain::MemberId;
use crate::store::Store;

/// Log directives that must always apply: rspotify logs whole requests, headers included
/// (bearer tokens, the client secret in Basic auth), at info and debug level.
pub const QUIET_LOG_TARGETS: [&str; 2] = ["rspotify=warn", "rspotify_http=warn"];

/// How long a full unlike-detection pass waits after the previous one finished, by default.
pub const DEFAULT_FULL_PASS_EVERY_SECS: i64 = 24 * 3600;

/// The bot's Spotify side: one per process, cheap to clone.
#[derive(Clone)]
pub struct Spotify {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: SpotifyConfig,
    audio: AudioConfig,
    limiters: HashMap<String, Arc<AppLimiter>>,
    audio_limiter: Arc<AppLimiter>,
    http: reqwest::Client,
    full_pass_every_secs: AtomicI64,
    state_ttl_secs: AtomicI64,
    member_locks: DashMap<MemberId, Arc<tokio::sync::Mutex<()>>>,
}

impl Spotify {
    pub fn new(store: Store, config: SpotifyConfig, audio: AudioConfig) -> Spotify {
        let limiters = config
            .apps
            .iter()
            .map(|a| {
                let lim = AppLimiter::new(&a.client_id, config.max_retries, config.request_timeout)
                    .with_clock(store.clock().clone());
                (a.client_id.clone(), Arc::new(lim))
            })
            .collect();
        let audio_limiter = Arc::new(
            AppLimiter::new("reccobeats", config.max_retries, config.request_timeout)
                .with_clock(store.clock().clone()),
        );
        let http = reqwest::Client::builder()
            .user_agent(concat!("sublist/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Spotify {
            inner: Arc::new(Inner {
                store,
                config,
                audio,
                limiters,
                audio_limiter,
                http,
                full_pass_every_secs: AtomicI64::new(DEFAULT_FULL_PASS_EVERY_SECS),
                state_ttl_secs: AtomicI64::new(link::STATE_TTL_MINUTES * 60),
                member_locks: DashMap::new(),
            }),
        }
    }

    /// How long after a finished unlike-detection pass the next one starts.
    pub fn set_full_pass_every(&self, every: std::time::Duration) {
        self.inner
            .full_pass_every_secs
            .store(every.as_secs() as i64, Ordering::Relaxed);
    }

    /// How long an authorize link stays valid (10 minutes unless changed).
    pub fn set_state_ttl(&self, ttl: std::time::Duration) {
        self.inner
            .state_ttl_secs
            .store(ttl.as_secs() as i64, Ordering::Relaxed);
    }

    fn state_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.inner.state_ttl_secs.load(Ordering::Relaxed))
    }

    fn full_pass_every(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.inner.full_pass_every_secs.load(Ordering::Relaxed))
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn app(&self, client_id: &str) -> Option<&SpotifyApp> {
        self.inner
            .config
            .apps
            .iter()
            .find(|a| a.client_id == client_id)
    }

    fn limiter(&self, client_id: &str) -> Option<Arc<AppLimiter>> {
        self.inner.limiters.get(client_id).cloned()
    }

    /// Until when the member's Spotify app is paused (quota), if it is.
    pub async fn paused_until(
        &self,
        member: MemberId,
    ) -> Result<Option<DateTime<Utc>>, SpotifyError> {
        let Some(link) = self.store().link(member).await? else {
            return Ok(None);
        };
        Ok(self
            .limiter(&link.app_client_id)
            .and_then(|l| l.paused_until()))
    }

    /// Every paused app and when it resumes.
    pub fn paused_apps(&self) -> Vec<(String, DateTime<Utc>)> {
        self.inner
            .limiters
            .values()
            .filter_map(|l| l.paused_until().map(|t| (l.client_id().to_string(), t)))
            .collect()
    }

    /// HTTP attempts made to the Web API through each app's limiter since start.
    pub fn attempts(&self) -> u64 {
        self.inner.limiters.values().map(|l| l.attempts()).sum()
    }

    /// Serialises work on one member's tokens and data (refresh-token rotation must not race).
    async fn member_lock(&self, member: MemberId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .inner
            .member_locks
            .entry(member)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        lock.lock_owned().await
    }
}
