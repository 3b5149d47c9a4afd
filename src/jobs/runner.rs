//! The runner: claims jobs fairly, runs each lane within its own bound (device jobs no more
//! than there are device workers, network jobs up to a concurrency limit), enforces time
//! limits, records outcomes, and shuts down cleanly.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::device::panic_message;
use super::kind::Lane;
use super::queue::{CancelToken, Claimed, Job, ProgressSender, Queue, QueueError};
use crate::config::JobsConfig;
use crate::store::{FailOutcome, JobId};

/// Why a job's handler did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (network trouble, a busy service).
    #[error("{0}")]
    Retry(String),
    /// Will fail again however often it is tried.
    #[error("{0}")]
    Fatal(String),
    /// Will fail again however often it is tried, for a reason the member can read and fix
    /// ("label a few more tracks"): the sentence is shown to them as it is.
    #[error("{0}")]
    Refused(String),
    /// Not now: run again after `until`, without spending an attempt (Spotify's quota or
    /// Retry-After said when). `reason` is kept as the job's last error.
    #[error("deferred until {until}: {reason}")]
    Deferred {
        until: chrono::DateTime<chrono::Utc>,
        reason: String,
    },
    /// The handler stopped because its cancel token fired.
    #[error("cancelled")]
    Cancelled,
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        JobError::Retry(format!("{e:#}"))
    }
}

/// What a handler gets with each job.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// Fires when the job is cancelled, runs past its time limit, or the process stops.
    pub cancel: CancelToken,
    /// Training progress for whoever waits on the job.
    pub progress: ProgressSender,
    /// When the runner stops the job.
    pub deadline: Instant,
}

/// Executes jobs; the app implements it. `run` is called on the async runtime: a device job
/// sends its compute to a [`super::DevicePool`] and awaits it there.
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one job; the value is stored as the job's result.
    fn run(
        &self,
        job: &Job,
        ctx: JobContext,
    ) -> impl Future<Output = Result<serde_json::Value, JobError>> + Send;

    /// Called once when a job failed for good (retry cap, fatal error, time limit), so that its
    /// member can be told. `error` is the member's sentence when the job was refused (the stored
    /// row says so), else detail for the log.
    fn on_failed(&self, job: &Job, error: &str) -> impl Future<Output = ()> + Send {
        let _ = (job, error);
        async {}
    }

    /// A fingerprint of the durable progress a job makes, read before it runs and after it ran
    /// out of time: when it changed, the job continues in a further attempt that spends none of
    /// its retries (long work such as a first sort goes on across time limits); when it did
    /// not, the time-out counts as a failed attempt. None (the default) for jobs that cannot
    /// continue: running past the time limit fails them.
    fn progress_mark(&self, job: &Job) -> impl Future<Output = Option<String>> + Send {
        let _ = job;
        async { None }
    }
}

/// How the runner behaves.
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    /// Device jobs running at once: the number of device workers (at least one).
    pub device_slots: usize,
    /// Network jobs running at once.
    pub network_concurrency: usize,
    /// Time limit of a training job.
    pub train_timeout: Duration,
    /// Time limit of any other job.
    pub job_timeout: Duration,
    /// At shutdown, how long running jobs may take to finish before they are re-queued.
    pub shutdown_grace: Duration,
    /// Delay before the first retry; each further retry waits twice as long (at most an hour).
    pub retry_backoff: Duration,
    /// How often the queue is polled when nothing wakes the runner (jobs waiting out a delay).
    pub poll_interval: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            device_slots: 1,
            network_concurrency: 8,
            train_timeout: Duration::from_secs(30 * 60),
            job_timeout: Duration::from_secs(5 * 60),
            shutdown_grace: Duration::from_secs(20),
            retry_backoff: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl RunnerSettings {
    /// The settings from the configuration, for a pool of `device_slots` device workers (the
    /// app starts `config.device_workers` of them, or one per device when unset).
    pub fn from_config(config: &JobsConfig, device_slots: usize) -> Self {
        Self {
            device_slots,
            network_concurrency: config.network_concurrency,
            train_timeout: config.train_timeout,
            job_timeout: config.job_timeout,
            shutdown_grace: config.shutdown_grace,
            ..Self::default()
        }
    }

    fn time_limit(&self, lane: Lane) -> Duration {
        match lane {
            Lane::Device => self.train_timeout,
            Lane::Network => self.job_timeout,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.retry_backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(3600))
    }
}

/// Runs the queue's jobs with a handler until shut down.
pub struct Runner<H> {
    queue: Queue,
    handler: Arc<H>,
    settings: Arc<RunnerSettings>,
}

impl<H: JobHandler> Runner<H> {
    pub fn new(queue: Queue, handler: Arc<H>, settings: RunnerSettings) -> Self {
        Self {
            queue,
            handler,
            settings: Arc::new(settings),
        }
    }

    /// Recovers jobs a dead process left running, then claims and runs jobs until `shutdown`
    /// turns true (or its sender is dropped). Then it stops claiming, gives running jobs
    /// `shutdown_grace` to finish, and re-queues the rest.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), QueueError> {
        for failed in self.queue.recover().await? {
            tracing::warn!(job = failed.id.0, error = %failed.error, "job failed at restart");
            if let Some(kind) = failed.kind {
                let job = self.queue.job(failed.id).await?.map(|row| Job {
                    id: row.id,
                    kind,
                    priority: super::Priority::from_value(row.priority),
                    attempt: row.attempts,
                    max_attempts: row.max_attempts,
                    created_at: row.created_at,
                    started_at: row.started_at.unwrap_or(row.created_at),
                });
                if let Some(job) = job {
                    self.handler.on_failed(&job, &failed.error).await;
                }
            }
        }

        let device = Arc::new(Semaphore::new(self.settings.device_slots.max(1)));
        let network = Arc::new(Semaphore::new(self.settings.network_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, JobId> = HashMap::new();

        loop {
            if *shutdown.borrow() {
                break;
            }
            let mut progressed = false;
            for (lane, slots) in [(Lane::Device, &device), (Lane::Network, &network)] {
                let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
                    continue;
                };
                match self.queue.claim(lane).await {
                    Ok(Some(claimed)) => {
                        let id = claimed.job.id;
                        let task = execute(
                            self.queue.clone(),
                            Arc::clone(&self.handler),
                            claimed,
                            Arc::clone(&self.settings),
                        );
                        let handle = tasks.spawn(async move {
                            task.await;
                            drop(permit);
                        });
                        running.insert(handle.id(), id);
                        progressed = true;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "could not claim a job"),
                }
            }
            // A job that ended freed a slot: look for work again before waiting.
            while let Some(done) = tasks.try_join_next_with_id() {
                self.lost(forget(&mut running, done)).await;
                progressed = true;
            }
            if progressed {
                continue;
            }
            tokio::select! {
                () = self.queue.woken() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
                Some(done) = tasks.join_next_with_id() => self.lost(forget(&mut running, done)).await,
            }
        }

        tracing::info!(running = running.len(), "job runner stopping");
        let grace = tokio::time::sleep(self.settings.shutdown_grace);
        tokio::pin!(grace);
        let mut unfinished = Vec::new();
        while !tasks.is_empty() {
            tokio::select! {
                Some(done) = tasks.join_next_with_id() => unfinished.extend(forget(&mut running, done)),
                () = &mut grace => break,
            }
        }
        tasks.abort_all();
        while let Some(done) = tasks.join_next_with_id().await {
            unfinished.extend(forget(&mut running, done));
        }
        for id in unfinished {
            self.queue.interrupt(id).await;
            self.queue.requeue(id).await?;
            tracing::info!(job = id.0, "job re-queued at shutdown");
        }
        Ok(())
    }

    /// A job whose task died outside its handler (a bug in the runner's own code): it is
    /// recorded as a retryable failure instead of staying `running` until the next start.
    async fn lost(&self, job: Option<JobId>) {
        let Some(id) = job else { return };
        tracing::error!(job = id.0, "a job's task died");
        let retry_at = self.queue.store().now();
        if let Err(e) = self
            .queue
            .fail(id, "the job's task died", Some(retry_at))
            .await
        {
            tracing::error!(error = %e, "could not record the job's failure");
        }
    }
}

/// Forgets a finished task's job; returns it when the task did not end normally (it was
/// aborted, or panicked outside the handler), so that its job is still marked running.
fn forget(
    running: &mut HashMap<tokio::task::Id, JobId>,
    done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) -> Option<JobId> {
    match done {
        Ok((id, ())) => {
            running.remove(&id);
            None
        }
        Err(e) => running.remove(&e.id()),
    }
}

/// How a handler's run ended.
enum Ended {
    Returned(Result<serde_json::Value, JobError>),
    Panicked(String),
    TimedOut(Duration),
}

async fn execute<H: JobHandler>(
    queue: Queue,
    handler: Arc<H>,
    claimed: Claimed,
    settings: Arc<RunnerSettings>,
) {
    let Claimed {
        job,
        cancel,
        progress,
    } = claimed;
    let limit = settings.time_limit(job.kind.lane());
    let span = tracing::info_span!(
        "job",
        id = job.id.0,
        kind = job.kind.name(),
        member = %job.kind.member(),
        attempt = job.attempt
    );
    async {
        let mark = handler.progress_mark(&job).await;
        let ctx = JobContext {
            cancel: cancel.clone(),
            progress,
            deadline: Instant::now() + limit,
        };
        let run = AssertUnwindSafe(handler.run(&job, ctx)).catch_unwind();
        tokio::pin!(run);
        let ended = tokio::select! {
            result = &mut run => match result {
                Ok(result) => Ended::Returned(result),
                Err(panic) => Ended::Panicked(panic_message(panic.as_ref())),
            },
            () = tokio::time::sleep(limit) => {
                cancel.cancel();
                Ended::TimedOut(limit)
            }
        };
        let mut handler_running = matches!(ended, Ended::TimedOut(_));
        let recorded = match ended {
            Ended::Returned(Ok(value)) => queue.complete(job.id, value).await.map(|()| None),
            Ended::Returned(Err(_)) if cancel.is_cancelled() => {
                queue.finish_cancelled(job.id).await.map(|()| None)
            }
            Ended::Returned(Err(JobError::Cancelled)) => {
                queue.finish_cancelled(job.id).await.map(|()| None)
            }
            Ended::Returned(Err(JobError::Deferred { until, reason })) => {
                tracing::info!(%until, %reason, "job deferred");
                queue.defer(job.id, until, &reason).await.map(|()| None)
            }
            Ended::Returned(Err(JobError::Retry(error))) => {
                retry(&queue, &job, &settings, error).await
            }
            Ended::Panicked(message) => {
                retry(
                    &queue,
                    &job,
                    &settings,
                    format!("the job panicked: {message}"),
                )
                .await
            }
            Ended::Returned(Err(JobError::Fatal(error))) => fail(&queue, &job, error).await,
            Ended::Returned(Err(JobError::Refused(sentence))) => {
                match queue.refuse(job.id, &sentence).await {
                    Ok(FailOutcome::Failed) => Ok(Some(sentence)),
                    Ok(_) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Ended::TimedOut(limit) if mark.is_some() => {
                // Let the handler stop (it saw its token) before reading what it got done.
                handler_running = false;
                if tokio::time::timeout(limit, &mut run).await.is_err() {
                    tracing::error!("the stopped job's handler did not return");
                }
                let after = handler.progress_mark(&job).await;
                if after.is_some() && after != mark {
                    let reason = format!(
                        "it ran past its time limit of {} and continues where it stopped",
                        human_duration(limit)
                    );
                    tracing::info!(%reason, "job continues");
                    queue
                        .defer(job.id, queue.store().now(), &reason)
                        .await
                        .map(|()| None)
                } else {
                    let error = format!(
                        "stopped: it ran past its time limit of {} without progress",
                        human_duration(limit)
                    );
                    retry(&queue, &job, &settings, error).await
                }
            }
            Ended::TimedOut(limit) => {
                let error = format!(
                    "stopped: it ran past its time limit of {}",
                    human_duration(limit)
                );
                fail(&queue, &job, error).await
            }
        };
        match recorded {
            Ok(Some(error)) => {
                tracing::warn!(%error, "job failed for good");
                handler.on_failed(&job, &error).await;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "could not record the job's outcome"),
        }
        if handler_running {
            // The job is recorded as stopped; its slot stays taken until the handler has really
            // stopped (a device keeps computing until the training sees its token), for at most
            // one more time limit.
            if tokio::time::timeout(limit, &mut run).await.is_err() {
                tracing::error!("the stopped job's handler did not return; freeing its slot");
            }
        }
    }
    .instrument(span)
    .await;
}

/// Records a retryable failure; returns the error when the job failed for good.
async fn retry(
    queue: &Queue,
    job: &Job,
    settings: &RunnerSettings,
    error: String,
) -> Result<Option<String>, QueueError> {
    let delay = chrono::Duration::from_std(settings.backoff(job.attempt))
        .unwrap_or(chrono::Duration::hours(1));
    let retry_at = queue.store().now() + delay;
    tracing::info!(%error, attempt = job.attempt, "job failed");
    Ok(match queue.fail(job.id, &error, Some(retry_at)).await? {
        FailOutcome::Failed => Some(error),
        _ => None,
    })
}

/// Records a final failure; returns the error when the job failed for good.
async fn fail(queue: &Queue, job: &Job, error: String) -> Result<Option<String>, QueueError> {
    Ok(match queue.fail(job.id, &error, None).await? {
        FailOutcome::Failed => Some(error),
        _ => None,
    })
}

fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else if secs >= 1 {
        format!("{secs} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let settings = RunnerSettings {
            retry_backoff: Duration::from_secs(10),
            ..RunnerSettings::default()
        };
        assert_eq!(settings.backoff(1), Duration::from_secs(10));
        assert_eq!(settings.backoff(2), Duration::from_secs(20));
        assert_eq!(settings.backoff(3), Duration::from_secs(40));
        assert_eq!(settings.backoff(40), Duration::from_secs(3600));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_secs(1800)), "30 min");
        assert_eq!(human_duration(Duration::from_secs(90)), "90 s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300 ms");
    }
}
