//! The durable queue: jobs live in SQLite; this handle adds the in-memory side (who is waiting
//! on a job, its progress, its cancel token) and wakes the runner when there is work.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Mutex, Notify, watch};

use super::kind::{JobKind, Lane, Priority};
use crate::store::{
    CancelOutcome, FailOutcome, JobId, JobRow, JobState, NewJob, ReadyJob, Store, StoreError,
};

/// What went wrong with the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the job payload could not be written: {0}")]
    Payload(#[from] serde_json::Error),
}

/// A claimed job, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub priority: Priority,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

/// What [`Queue::enqueue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueued {
    pub id: JobId,
    /// True when an equal request was already queued or running and this one joined it.
    pub joined: bool,
}

/// Training progress, reported by the handler and shown to whoever waits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Progress {
    pub epoch: u32,
    pub epochs: u32,
    pub loss: f32,
    pub held_out_accuracy: Option<f32>,
}

/// A job's status as a waiter sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum JobStatus {
    Queued,
    Running {
        attempt: u32,
        progress: Option<Progress>,
    },
    Done {
        result: serde_json::Value,
    },
    Failed {
        error: String,
    },
    Cancelled,
}

impl JobStatus {
    /// Whether the job will not run again.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Done { .. } | Self::Failed { .. } | Self::Cancelled
        )
    }

    fn from_row(row: &JobRow) -> Self {
        match row.state {
            JobState::Queued => Self::Queued,
            JobState::Running => Self::Running {
                attempt: row.attempts,
                progress: None,
            },
            JobState::Done => Self::Done {
                result: row
                    .result
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok())
                    .unwrap_or(serde_json::Value::Null),
            },
            JobState::Failed => Self::Failed {
                error: row.last_error.clone().unwrap_or_default(),
            },
            JobState::Cancelled => Self::Cancelled,
        }
    }
}

/// Cooperative cancellation: the runner cancels, the handler checks (`is_cancelled` between
/// epochs on a device thread, or `cancelled().await` in async code).
#[derive(Clone, Debug)]
pub struct CancelToken(Arc<watch::Sender<bool>>);

impl Default for CancelToken {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the token is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so this only ends when the value turns true.
        let _ = rx.wait_for(|cancelled| *cancelled).await;
    }
}

/// Sends a running job's progress to its waiters. Cheap to clone; usable from any thread.
#[derive(Clone, Debug)]
pub struct ProgressSender(Arc<Live>);

impl ProgressSender {
    pub fn report(&self, progress: Progress) {
        self.0.status.send_modify(|status| {
            if let JobStatus::Running { progress: p, .. } = status {
                *p = Some(progress);
            }
        });
    }
}

/// The in-memory side of a queued or running job.
#[derive(Debug)]
struct Live {
    status: watch::Sender<JobStatus>,
    /// The current attempt's token; a new attempt gets a fresh one unless a cancel is asked.
    cancel: std::sync::Mutex<CancelToken>,
}

impl Live {
    fn new(status: JobStatus, cancel: CancelToken) -> Arc<Live> {
        Arc::new(Live {
            status: watch::Sender::new(status),
            cancel: std::sync::Mutex::new(cancel),
        })
    }

    fn cancel(&self) -> CancelToken {
        self.cancel
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn renew_cancel(&self) {
        *self
            .cancel
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = CancelToken::new();
    }
}

/// A job the runner has claimed, with what its handler needs.
#[derive(Debug)]
pub struct Claimed {
    pub job: Job,
    pub cancel: CancelToken,
    pub progress: ProgressSender,
}

/// A job that failed for good, and why (for telling its member).
#[derive(Clone, Debug, PartialEq)]
pub struct FailedJob {
    pub id: JobId,
    /// None when the stored payload could not be read.
    pub kind: Option<JobKind>,
    pub error: String,
}

/// The job queue. Cheap to clone; all clones share the waiters and the runner's wake-up.
#[derive(Clone, Debug)]
pub struct Queue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    max_attempts: u32,
    /// Jobs someone waits on or that run now. A tokio mutex: `subscribe` holds it across the
    /// database read so that a job cannot finish unseen between the read and the insert.
    live: Mutex<HashMap<JobId, Arc<Live>>>,
    wake: Notify,
}

impl Queue {
    /// A queue over `store`; jobs get `max_attempts` attempts before they fail for good.
    pub fn new(store: Store, max_attempts: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                max_attempts: max_attempts.max(1),
                live: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Queues a job, or joins the equal one already queued or running (same
    /// [`JobKind::dedupe_key`]); a manual request raises a joined automatic job to manual. A
    /// request that [`JobKind::follows_running`] queues one follow-up behind a running equal job
    /// instead of joining it.
    pub async fn enqueue(&self, kind: JobKind, priority: Priority) -> Result<Enqueued, QueueError> {
        let payload = serde_json::to_string(&kind)?;
        let key = kind.dedupe_key();
        let follow_running = kind.follows_running(priority);
        let inserted = self
            .inner
            .store
            .insert_job(
                &NewJob {
                    member: Some(kind.member()),
                    kind: kind.name(),
                    payload: &payload,
                    dedupe_key: key.as_deref(),
                    priority: priority.value(),
                    max_attempts: self.inner.max_attempts,
                    follow_running,
                },
                self.inner.store.now(),
            )
            .await?;
        self.wake();
        Ok(Enqueued {
            id: inserted.id,
            joined: inserted.joined,
        })
    }

    /// Claims the next job of `lane` under the fairness rule (see [`Store::claim_job`]) and
    /// marks it running. A job whose payload cannot be read fails at once and the next is tried.
    pub async fn claim(&self, lane: Lane) -> Result<Option<Claimed>, QueueError> {
        loop {
            let claimed = self
                .inner
                .store
                .claim_job(lane.kinds(), lane.one_per_member(), self.inner.store.now())
                .await?;
            let Some(row) = claimed else {
                return Ok(None);
            };
            let kind = match serde_json::from_str::<JobKind>(&row.payload) {
                Ok(kind) => kind,
                Err(e) => {
                    let error = format!("the job's stored payload is unreadable: {e}");
                    tracing::error!(job = row.id.0, %error);
                    self.inner
                        .store
                        .fail_job(row.id, &error, None, self.inner.store.now())
                        .await?;
                    self.finish(row.id, JobStatus::Failed { error }).await;
                    continue;
                }
            };
            let job = Job {
                id: row.id,
                kind,
                priority: Priority::from_value(row.priority),
                attempt: row.attempts,
                max_attempts: row.max_attempts,
                created_at: row.created_at,
                started_at: row.started_at.unwrap_or_else(|| self.inner.store.now()),
            };
            let live = {
                let mut live = self.inner.live.lock().await;
                live.entry(job.id)
                    .or_insert_with(|| Live::new(JobStatus::Queued, CancelToken::new()))
                    .clone()
            };
            if row.cancel_requested {
                live.cancel().cancel();
            } else if live.cancel().is_cancelled() {
                // Fired for an earlier attempt (its time limit, a shutdown), or by a cancel
                // asked since the claim: the store tells which.
                let asked = self
                    .inner
                    .store
                    .job(job.id)
                    .await?
                    .is_some_and(|r| r.cancel_requested);
                if !asked {
                    live.renew_cancel();
                }
            }
            live.status.send_replace(JobStatus::Running {
                attempt: job.attempt,
                progress: None,
            });
            return Ok(Some(Claimed {
                job,
                cancel: live.cancel(),
                progress: ProgressSender(live),
            }));
        }
    }

    /// Records a job's success.
    pub async fn complete(&self, id: JobId, result: serde_json::Value) -> Result<(), QueueError> {
        self.inner
            .store
            .complete_job(id, &result.to_string(), self.inner.store.now())
            .await?;
        self.finish(id, JobStatus::Done { result }).await;
        Ok(())
    }

    /// Records a job's failure: queued again after `retry_at` while attempts remain (when
    /// `retry_at` is given), else failed for good with `error` kept.
    pub async fn fail(
        &self,
        id: JobId,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<FailOutcome, QueueError> {
        let outcome = self
            .inner
            .store
            .fail_job(id, error, retry_at, self.inner.store.now())
            .await?;
        match outcome {
            FailOutcome::Retrying(_) => self.set_queued(id).await,
            FailOutcome::Failed => {
                self.finish(
                    id,
                    JobStatus::Failed {
                        error: error.to_owned(),
                    },
                )
                .await
            }
            FailOutcome::Cancelled => self.finish(id, JobStatus::Cancelled).await,
            FailOutcome::NotRunning => {}
        }
        Ok(outcome)
    }

    /// Records that a job failed for good for a reason its member can read and fix; `sentence`
    /// is what they are shown.
    pub async fn refuse(&self, id: JobId, sentence: &str) -> Result<FailOutcome, QueueError> {
        let outcome = self
            .inner
            .store
            .refuse_job(id, sentence, self.inner.store.now())
            .await?;
        match outcome {
            FailOutcome::Failed => {
                self.finish(
                    id,
                    JobStatus::Failed {
                        error: sentence.to_owned(),
                    },
                )
                .await
            }
            FailOutcome::Cancelled => self.finish(id, JobStatus::Cancelled).await,
            FailOutcome::Retrying(_) | FailOutcome::NotRunning => {}
        }
        Ok(outcome)
    }

    /// Records that a running job stopped because it was cancelled.
    pub async fn finish_cancelled(&self, id: JobId) -> Result<(), QueueError> {
        self.inner
            .store
            .finish_cancelled_job(id, self.inner.store.now())
            .await?;
        self.finish(id, JobStatus::Cancelled).await;
        Ok(())
    }

    /// Cancels a queued job at once; asks a running one to stop (its handler sees the token).
    pub async fn cancel(&self, id: JobId) -> Result<CancelOutcome, QueueError> {
        let outcome = self
            .inner
            .store
            .cancel_job(id, self.inner.store.now())
            .await?;
        match outcome {
            CancelOutcome::Cancelled => self.finish(id, JobStatus::Cancelled).await,
            CancelOutcome::Requested => {
                // If the runner has claimed the job but not yet registered it, the entry made
                // here is the one it picks up, token already fired.
                let mut live = self.inner.live.lock().await;
                let entry = live
                    .entry(id)
                    .or_insert_with(|| Live::new(JobStatus::Queued, CancelToken::new()));
                entry.cancel().cancel();
            }
            CancelOutcome::AlreadyFinished(_) | CancelOutcome::Unknown => {}
        }
        Ok(outcome)
    }

    /// Puts a running job back in the queue without counting its attempt (clean shutdown).
    pub async fn requeue(&self, id: JobId) -> Result<(), QueueError> {
        if self
            .inner
            .store
            .requeue_job(id, self.inner.store.now())
            .await?
        {
            self.set_queued(id).await;
        }
        Ok(())
    }

    /// Puts a running job back to run after `until` without spending an attempt (a rate limit
    /// or quota said when to come back); `reason` is kept as its last error.
    pub async fn defer(
        &self,
        id: JobId,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.inner
            .store
            .defer_job(id, until, reason, self.inner.store.now())
            .await?;
        match self.inner.store.job(id).await? {
            Some(row) if row.state == JobState::Cancelled => {
                self.finish(id, JobStatus::Cancelled).await
            }
            _ => self.set_queued(id).await,
        }
        Ok(())
    }

    /// Stops a running job's handler without recording anything (the runner re-queues it).
    pub(crate) async fn interrupt(&self, id: JobId) {
        if let Some(live) = self.inner.live.lock().await.get(&id) {
            live.cancel().cancel();
        }
    }

    /// At start-up: jobs a dead process left running are queued again (see
    /// [`Store::recover_jobs`]). Returns those that reached their retry cap and failed.
    pub async fn recover(&self) -> Result<Vec<FailedJob>, QueueError> {
        let finished = self
            .inner
            .store
            .recover_jobs(self.inner.store.now())
            .await?;
        let mut failed = Vec::new();
        for row in finished {
            let status = JobStatus::from_row(&row);
            if let JobStatus::Failed { error } = &status {
                failed.push(FailedJob {
                    id: row.id,
                    kind: serde_json::from_str(&row.payload).ok(),
                    error: error.clone(),
                });
            }
            self.finish(row.id, status).await;
        }
        Ok(failed)
    }

    /// A job's stored row.
    pub async fn job(&self, id: JobId) -> Result<Option<JobRow>, QueueError> {
        Ok(self.inner.store.job(id).await?)
    }

    /// A job's status as the store holds it (no progress): what another process that ran the
    /// job recorded, when this one's waiters were not told. None when there is no such job.
    pub async fn stored_status(&self, id: JobId) -> Result<Option<JobStatus>, QueueError> {
        Ok(self
            .inner
            .store
            .job(id)
            .await?
            .as_ref()
            .map(JobStatus::from_row))
    }

    /// Follows a job: the receiver holds its status, progress included, and sees every change
    /// until the job is final. None when there is no such job.
    pub async fn subscribe(
        &self,
        id: JobId,
    ) -> Result<Option<watch::Receiver<JobStatus>>, QueueError> {
        let mut live = self.inner.live.lock().await;
        if let Some(entry) = live.get(&id) {
            return Ok(Some(entry.status.subscribe()));
        }
        let Some(row) = self.inner.store.job(id).await? else {
            return Ok(None);
        };
        let status = JobStatus::from_row(&row);
        if status.is_final() {
            // Nothing will change: a receiver whose sender is already gone keeps the value.
            return Ok(Some(watch::channel(status).1));
        }
        let cancel = CancelToken::new();
        if row.cancel_requested {
            cancel.cancel();
        }
        let entry = Live::new(status, cancel);
        let rx = entry.status.subscribe();
        live.insert(id, entry);
        Ok(Some(rx))
    }

    /// Waits until a job is final and returns how it ended. None when there is no such job.
    pub async fn wait(&self, id: JobId) -> Result<Option<JobStatus>, QueueError> {
        let Some(mut rx) = self.subscribe(id).await? else {
            return Ok(None);
        };
        let ended = rx.wait_for(JobStatus::is_final).await.map(|s| s.clone());
        // On error the queue was dropped (the process is stopping): return what is known now.
        Ok(Some(ended.unwrap_or_else(|_| rx.borrow().clone())))
    }

    /// How many jobs will run before a queued job in its lane, under the fairness rule, if
    /// nothing else arrives. None when the job is not queued.
    pub async fn position(&self, id: JobId) -> Result<Option<usize>, QueueError> {
        let Some(row) = self.inner.store.job(id).await? else {
            return Ok(None);
        };
        if row.state != JobState::Queued {
            return Ok(None);
        }
        let lane = match serde_json::from_str::<JobKind>(&row.payload) {
            Ok(kind) => kind.lane(),
            Err(_) => return Ok(None),
        };
        let ready = self
            .inner
            .store
            .ready_jobs(lane.kinds(), self.inner.store.now())
            .await?;
        // A job waiting out a retry delay runs after everything that is ready.
        Ok(Some(claim_order(&ready, id).unwrap_or(ready.len())))
    }

    /// Wakes the runner: there may be work.
    pub(crate) fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.inner.wake.notified().await;
    }

    async fn set_queued(&self, id: JobId) {
        if let Some(live) = self.inner.live.lock().await.get(&id) {
            live.status.send_replace(JobStatus::Queued);
        }
        self.wake();
    }

    async fn finish(&self, id: JobId, status: JobStatus) {
        if let Some(live) = self.inner.live.lock().await.remove(&id) {
            live.status.send_replace(status);
        }
    }
}

/// Replays the fairness rule of [`Store::claim_job`] over the ready jobs and returns how many
/// are claimed before `target` (None if `target` is not among them).
pub(crate) fn claim_order(ready: &[ReadyJob], target: JobId) -> Option<usize> {
    struct MemberQueue {
        jobs: Vec<ReadyJob>,
        last_turn: Option<i64>,
    }
    let mut members: HashMap<Option<u64>, MemberQueue> = HashMap::new();
    for job in ready {
        let entry = members
            .entry(job.member.map(|m| m.0))
            .or_insert_with(|| MemberQueue {
                jobs: Vec::new(),
                last_turn: job.last_turn,
            });
        entry.jobs.push(*job);
    }
    for queue in members.values_mut() {
        // Within a member: priority, then age; reversed so that `pop` takes the next.
        queue
            .jobs
            .sort_by(|a, b| a.priority.cmp(&b.priority).then(b.id.cmp(&a.id)));
    }
    let mut turn = ready.iter().filter_map(|j| j.last_turn).max().unwrap_or(0);
    let mut claimed = 0;
    loop {
        let next = members
            .iter()
            .filter(|(_, q)| !q.jobs.is_empty())
            .min_by_key(|(_, q)| {
                let oldest = q.jobs.iter().map(|j| j.id).min().unwrap_or(JobId(i64::MAX));
                (q.last_turn.is_some(), q.last_turn, oldest)
            })
            .map(|(member, _)| *member)?;
        let queue = members.get_mut(&next)?;
        let job = queue.jobs.pop()?;
        if job.id == target {
            return Some(claimed);
        }
        claimed += 1;
        turn += 1;
        queue.last_turn = Some(turn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MemberId;

    fn job(id: i64, member: u64, priority: i64, last_turn: Option<i64>) -> ReadyJob {
        ReadyJob {
            id: JobId(id),
            member: Some(MemberId(member)),
            priority,
            last_turn,
        }
    }

    #[test]
    fn members_take_turns() {
        // Member 1 queued three jobs first; member 2 one, later.
        let ready = [
            job(1, 1, 0, None),
            job(2, 1, 0, None),
            job(3, 1, 0, None),
            job(4, 2, 0, None),
        ];
        assert_eq!(claim_order(&ready, JobId(1)), Some(0));
        assert_eq!(claim_order(&ready, JobId(4)), Some(1));
        assert_eq!(claim_order(&ready, JobId(2)), Some(2));
        assert_eq!(claim_order(&ready, JobId(3)), Some(3));
        assert_eq!(claim_order(&ready, JobId(99)), None);
    }

    #[test]
    fn the_member_served_least_recently_goes_first() {
        let ready = [job(1, 1, 0, Some(5)), job(2, 2, 0, Some(3))];
        assert_eq!(claim_order(&ready, JobId(2)), Some(0));
        assert_eq!(claim_order(&ready, JobId(1)), Some(1));
    }

    #[test]
    fn a_manual_request_outranks_only_its_own_members_automatic_work() {
        let ready = [
            job(1, 1, 0, None),
            job(2, 2, 0, Some(9)),
            job(3, 2, 10, Some(9)),
        ];
        // Member 1 was never served: their automatic job goes first; member 2's manual request
        // goes before member 2's older automatic job.
        assert_eq!(claim_order(&ready, JobId(1)), Some(0));
        assert_eq!(claim_order(&ready, JobId(3)), Some(1));
        assert_eq!(claim_order(&ready, JobId(2)), Some(2));
    }
}
