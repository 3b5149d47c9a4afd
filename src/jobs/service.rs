//! The job system as one running service: the runner and the scheduler on their own tasks,
//! stopped together.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::queue::{Queue, QueueError};
use super::runner::{JobHandler, Runner, RunnerSettings};
use super::scheduler::Scheduler;

/// The running runner and scheduler.
#[derive(Debug)]
pub struct JobService {
    queue: Queue,
    stop: watch::Sender<bool>,
    runner: JoinHandle<Result<(), QueueError>>,
    scheduler: JoinHandle<()>,
}

impl JobService {
    /// Starts the runner (which first recovers jobs a dead process left running) and the
    /// scheduler that queues each linked member's sync every `sync_interval`.
    pub fn start<H: JobHandler>(
        queue: Queue,
        handler: Arc<H>,
        settings: RunnerSettings,
        sync_interval: Duration,
    ) -> Self {
        let (stop, shutdown) = watch::channel(false);
        let runner =
            tokio::spawn(Runner::new(queue.clone(), handler, settings).run(shutdown.clone()));
        let scheduler = tokio::spawn(Scheduler::new(queue.clone(), sync_interval).run(shutdown));
        Self {
            queue,
            stop,
            runner,
            scheduler,
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Stops cleanly (on SIGTERM): no new claims or syncs; running jobs get the configured
    /// grace period to finish, then are re-queued for the next start.
    pub async fn shutdown(self) -> Result<(), QueueError> {
        self.stop.send_replace(true);
        let _ = self.scheduler.await;
        match self.runner.await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "the job runner task ended abnormally");
                Ok(())
            }
        }
    }
}
