//! The use cases that tie the rooms together: link, label, train, sort, write, announce; the
//! job handler the queue runs; the services the Discord bot calls; and the command `run`.

mod backend;
mod handler;
pub mod run;
mod sorting;

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::config::PipelineConfig;
use crate::discord::{BackendError, LinkToConfirm, Notifier};
use crate::domain::MemberId;
use crate::jobs::{CancelToken, DevicePool, Queue};
use crate::learn::{Compute, StopFlag, TrainConfig};
use crate::spotify::Spotify;
use crate::store::Store;

pub use sorting::{LayerOutcome, SortOutcome};

/// Everything a running sublist shares: the store, Spotify, the queue, the device workers and,
/// once Discord is connected, the notifier. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    spotify: Spotify,
    queue: Queue,
    devices: DevicePool<Compute>,
    pipeline: PipelineConfig,
    notifier: OnceLock<Notifier>,
    /// How layers are trained, when not the default.
    training: OnceLock<TrainConfig>,
    /// Members waiting for Spotify to send back the account of their `/link`.
    link_waiters: DashMap<MemberId, oneshot::Sender<Result<LinkToConfirm, BackendError>>>,
    /// Fires to stop a member's work outside the queue (inline refresh, first sync, import)
    /// when they are forgotten.
    inline_work: DashMap<MemberId, CancelToken>,
    /// When each member last asked for `/refresh` (for `pipeline.refresh_cooldown_secs`).
    last_refresh: DashMap<MemberId, DateTime<Utc>>,
}

impl App {
    pub fn new(
        store: Store,
        spotify: Spotify,
        queue: Queue,
        devices: DevicePool<Compute>,
        pipeline: PipelineConfig,
    ) -> App {
        App {
            inner: Arc::new(Inner {
                store,
                spotify,
                queue,
                devices,
                pipeline,
                notifier: OnceLock::new(),
                training: OnceLock::new(),
                link_waiters: DashMap::new(),
                inline_work: DashMap::new(),
                last_refresh: DashMap::new(),
            }),
        }
    }

    /// Gives the app the bot's voice, once Discord is connected; from then on link-expiry
    /// warnings and quota pauses reach the members they affect.
    pub fn set_notifier(&self, notifier: Notifier) {
        if self.inner.notifier.set(notifier.clone()).is_ok() {
            self.deliver_notices(notifier);
        }
    }

    /// Trains layers with `config` instead of the default (a quick one in simulations).
    pub fn set_training(&self, config: TrainConfig) {
        let _ = self.inner.training.set(config);
    }

    /// The settings of the next training, with a stop flag of its own.
    fn training(&self) -> TrainConfig {
        let base = self.inner.training.get().cloned().unwrap_or_default();
        TrainConfig {
            stop: StopFlag::default(),
            ..base
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn spotify(&self) -> &Spotify {
        &self.inner.spotify
    }

    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    fn notifier(&self) -> Option<&Notifier> {
        self.inner.notifier.get()
    }
}
