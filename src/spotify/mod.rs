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
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{AudioConfig, SpotifyApp, SpotifyConfig};
use crate::domain::MemberId;
use crate::store::Store;

/// Log directives that must always apply: rspotify logs whole requests, headers included
/// (bearer tokens, the client secret in Basic auth), at info and debug level.
pub const QUIET_LOG_TARGETS: [&str; 2] = ["rspotify=warn", "rspotify_http=warn"];

/// How long a full unlike-detection pass waits after the previous one finished, by default.
pub const DEFAULT_FULL_PASS_EVERY_SECS: i64 = 24 * 3600;

/// Something members should hear about that Spotify work found out; whoever set
/// [`Spotify::set_notice_sender`] delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The member's link stops working at `expires_at`; they should `/link` again before then.
    /// Sent once per link, within [`link::EXPIRY_WARNING_DAYS`] of the end.
    LinkExpiring {
        member: MemberId,
        expires_at: DateTime<Utc>,
    },
    /// Spotify's daily quota paused the app these members use until `until`. Sent once per
    /// pause.
    QuotaPaused {
        members: Vec<MemberId>,
        until: DateTime<Utc>,
    },
}

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
    /// How long a new link lasts; 0: six calendar months, as Spotify does.
    link_lifetime_secs: AtomicI64,
    member_locks: DashMap<MemberId, Arc<tokio::sync::Mutex<()>>>,
    notices: Arc<OnceLock<UnboundedSender<Notice>>>,
    /// The quota pauses recorded before a restart have been taken up by the limiters.
    pauses_loaded: tokio::sync::OnceCell<()>,
}

impl Spotify {
    pub fn new(store: Store, config: SpotifyConfig, audio: AudioConfig) -> Spotify {
        let limiters: HashMap<String, Arc<AppLimiter>> = config
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
        let notices = Arc::new(OnceLock::new());
        let sink: limiter::PauseSink = {
            let store = store.clone();
            let notices = notices.clone();
            Arc::new(move |app: &str, until| {
                record_pause(store.clone(), notices.clone(), app.to_string(), until);
            })
        };
        for l in limiters.values().chain([&audio_limiter]) {
            l.set_pause_sink(sink.clone());
        }
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
                link_lifetime_secs: AtomicI64::new(0),
                member_locks: DashMap::new(),
                notices,
                pauses_loaded: tokio::sync::OnceCell::new(),
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

    /// How long a new link lasts before the member must link again (six months unless
    /// changed; Spotify ends refresh tokens then).
    pub fn set_link_lifetime(&self, lifetime: std::time::Duration) {
        self.inner
            .link_lifetime_secs
            .store(lifetime.as_secs().max(1) as i64, Ordering::Relaxed);
    }

    fn link_ends(&self, authorized_at: DateTime<Utc>) -> DateTime<Utc> {
        match self.inner.link_lifetime_secs.load(Ordering::Relaxed) {
            0 => authorized_at
                .checked_add_months(chrono::Months::new(6))
                .unwrap_or(authorized_at),
            secs => authorized_at + chrono::Duration::seconds(secs),
        }
    }

    /// Where link-expiry warnings and quota pauses are told (set once, when Discord is
    /// connected). Without it nothing is claimed as told.
    pub fn set_notice_sender(&self, sender: UnboundedSender<Notice>) {
        let _ = self.inner.notices.set(sender);
    }

    fn notice_sender(&self) -> Option<&UnboundedSender<Notice>> {
        self.inner.notices.get()
    }

    /// Takes up the quota pauses recorded before a restart (once per process).
    async fn load_pauses(&self) -> Result<(), SpotifyError> {
        self.inner
            .pauses_loaded
            .get_or_try_init(|| async {
                for (app, until) in self.store().app_pauses(self.store().now()).await? {
                    let limiter = self
                        .inner
                        .limiters
                        .get(&app)
                        .or((app == self.inner.audio_limiter.client_id())
                            .then_some(&self.inner.audio_limiter));
                    if let Some(l) = limiter {
                        l.restore_pause(until);
                        tracing::info!(app = %app, %until, "Spotify app still paused from before the restart");
                    }
                }
                Ok::<(), crate::store::StoreError>(())
            })
            .await?;
        Ok(())
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
        self.load_pauses().await?;
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

    /// Waits until the member's Spotify work in progress has ended, and holds any more of it
    /// off until the guard is dropped (forgetting a member runs under it).
    pub async fn hold_member(&self, member: MemberId) -> tokio::sync::OwnedMutexGuard<()> {
        self.member_lock(member).await
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

/// Records a pause that began or grew, and tells the members of the app when it is a new one.
/// The limiter reports pauses synchronously, so the write runs on its own task.
fn record_pause(
    store: Store,
    notices: Arc<OnceLock<UnboundedSender<Notice>>>,
    app: String,
    until: DateTime<Utc>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        match store.record_app_pause(&app, until, store.now()).await {
            Ok(true) => {
                let Some(tx) = notices.get() else { return };
                match store.members_on_app(&app).await {
                    Ok(members) if !members.is_empty() => {
                        let _ = tx.send(Notice::QuotaPaused { members, until });
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(app = %app, error = %e, "could not list the members of a paused app"),
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(app = %app, error = %e, "could not record a quota pause"),
        }
    });
}
