//! The scheduler: queues each linked member's periodic sync (an automatic `SyncMember` job)
//! once their interval has passed, and prunes old finished jobs.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::kind::{JobKind, Priority};
use super::queue::{Queue, QueueError};
use crate::store::JobId;

/// How long finished jobs are kept (for `/jobs`-style history and fair turns).
const KEEP_FINISHED: chrono::Duration = chrono::Duration::days(7);

/// Queues periodic syncs.
#[derive(Clone, Debug)]
pub struct Scheduler {
    queue: Queue,
    interval: Duration,
}

impl Scheduler {
    /// Each linked member is synced once per `interval`.
    pub fn new(queue: Queue, interval: Duration) -> Self {
        Self { queue, interval }
    }

    /// Queues a sync for every linked member whose last one was queued more than an interval
    /// ago (and none is queued or running). Returns the new jobs.
    pub async fn tick(&self) -> Result<Vec<JobId>, QueueError> {
        let since = self.queue.store().now()
            - chrono::Duration::from_std(self.interval).unwrap_or(chrono::Duration::minutes(5));
        let due = self.queue.store().members_due("sync_member", since).await?;
        let mut queued = Vec::with_capacity(due.len());
        for member in due {
            let job = self
                .queue
                .enqueue(JobKind::SyncMember { member }, Priority::Automatic)
                .await?;
            if !job.joined {
                queued.push(job.id);
            }
        }
        Ok(queued)
    }

    /// Ticks until `shutdown` turns true (or its sender is dropped). Ticks come a quarter
    /// interval apart (between 1 s and 1 min), so a member's sync starts at most that late.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let period = (self.interval / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut last_prune: Option<chrono::DateTime<Utc>> = None;
        while !*shutdown.borrow() {
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "could not queue periodic syncs");
            }
            let now = self.queue.store().now();
            if last_prune.is_none_or(|t| now - t > chrono::Duration::hours(1)) {
                last_prune = Some(now);
                match self.queue.store().prune_jobs(now - KEEP_FINISHED).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pruned = n, "old finished jobs deleted"),
                    Err(e) => tracing::error!(error = %e, "could not prune old jobs"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
    }
}
