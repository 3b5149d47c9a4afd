//! The job queue with the real SQLite store (fresh file, real migrations), the real runner on
//! tokio and real device worker threads; the handlers record what ran.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use sublist::domain::{LayerId, MemberId};
use sublist::jobs::{
    CancelOutcome, DevicePool, Job, JobContext, JobError, JobHandler, JobId, JobKind, JobService,
    JobState, JobStatus, Lane, Priority, Progress, Queue, Runner, RunnerSettings, Scheduler,
};
use sublist::store::Store;
use tokio::sync::watch;

/// A generous bound so that a broken test fails instead of hanging; never a speed assertion.
const PATIENCE: Duration = Duration::from_secs(30);

async fn open_store(dir: &tempfile::TempDir) -> Store {
    Store::open_at(&dir.path().join("sublist.db"), &[7; 32])
        .await
        .unwrap()
}

async fn members(store: &Store, ids: impl IntoIterator<Item = u64>) {
    for id in ids {
        store.ensure_member(MemberId(id)).await.unwrap();
    }
}

fn settings() -> RunnerSettings {
    RunnerSettings {
        device_slots: 1,
        network_concurrency: 4,
        train_timeout: Duration::from_secs(60),
        job_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(2),
        retry_backoff: Duration::from_millis(10),
        // The runner must be woken by new jobs and finished ones, never need to poll for them;
        // only jobs waiting out a retry delay need the poll (the retry test shortens it).
        poll_interval: Duration::from_secs(3600),
    }
}

fn train(member: u64, layer: i64) -> JobKind {
    JobKind::Train {
        member: MemberId(member),
        layer: LayerId(layer),
    }
}

fn sync(member: u64) -> JobKind {
    JobKind::SyncMember {
        member: MemberId(member),
    }
}

type Behaviour =
    Arc<dyn Fn(Job, JobContext) -> BoxFuture<'static, Result<Value, JobError>> + Send + Sync>;

/// A handler that records every start, success and final failure, and behaves as told.
struct Recorder {
    started: Mutex<Vec<Job>>,
    succeeded: Mutex<Vec<JobId>>,
    failed: Mutex<Vec<(JobId, String)>>,
    behaviour: Behaviour,
}

impl Recorder {
    fn new(
        behaviour: impl Fn(Job, JobContext) -> BoxFuture<'static, Result<Value, JobError>>
        + Send
        + Sync
        + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            started: Mutex::new(Vec::new()),
            succeeded: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
            behaviour: Arc::new(behaviour),
        })
    }

    /// Succeeds at once with the job's id as its result.
    fn succeeding() -> Arc<Self> {
        Self::new(|job, _| Box::pin(async move { Ok(json!({ "job": job.id.0 })) }))
    }

    fn started_ids(&self) -> Vec<JobId> {
        self.started.lock().unwrap().iter().map(|j| j.id).collect()
    }

    fn succeeded(&self) -> Vec<JobId> {
        self.succeeded.lock().unwrap().clone()
    }
}

impl JobHandler for Recorder {
    async fn run(&self, job: &Job, ctx: JobContext) -> Result<Value, JobError> {
        self.started.lock().unwrap().push(job.clone());
        let result = (self.behaviour)(job.clone(), ctx).await;
        if result.is_ok() {
            self.succeeded.lock().unwrap().push(job.id);
        }
        result
    }

    async fn on_failed(&self, job: &Job, error: &str) {
        self.failed.lock().unwrap().push((job.id, error.to_owned()));
    }
}

/// A runner on its own task, with the sender that stops it.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start<H: JobHandler>(queue: &Queue, handler: &Arc<H>, settings: RunnerSettings) -> Running {
    let (stop, shutdown) = watch::channel(false);
    let runner = Runner::new(queue.clone(), Arc::clone(handler), settings);
    let task = tokio::spawn(async move { runner.run(shutdown).await.unwrap() });
    Running { stop, task }
}

impl Running {
    /// A clean shutdown: stop claiming, let running jobs finish within the grace period.
    async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .unwrap()
            .unwrap();
    }

    /// A crash: the runner and every job it runs vanish mid-flight, recording nothing.
    async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn wait(queue: &Queue, id: JobId) -> JobStatus {
    tokio::time::timeout(PATIENCE, queue.wait(id))
        .await
        .expect("the job never finished")
        .unwrap()
        .expect("no such job")
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_job_interrupted_by_a_crash_completes_exactly_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ids;
    {
        let store = open_store(&dir).await;
        members(&store, [1, 2, 3]).await;
        let queue = Queue::new(store, 3);
        ids = [
            queue
                .enqueue(sync(1), Priority::Automatic)
                .await
                .unwrap()
                .id,
            queue
                .enqueue(sync(2), Priority::Automatic)
                .await
                .unwrap()
                .id,
            queue
                .enqueue(sync(3), Priority::Automatic)
                .await
                .unwrap()
                .id,
        ];
        // The first job hangs mid-flight; the crash comes while it runs.
        let first = ids[0];
        let handler = Recorder::new(move |job, _| {
            Box::pin(async move {
                if job.id == first {
                    std::future::pending::<()>().await;
                }
                Ok(json!("done"))
            })
        });
        let runner = start(
            &queue,
            &handler,
            RunnerSettings {
                network_concurrency: 1,
                ..settings()
            },
        );
        until("the first job starts", || !handler.started_ids().is_empty()).await;
        runner.crash().await;
        assert_eq!(handler.started_ids(), vec![first]);
        assert!(handler.succeeded().is_empty());
        let row = queue.job(first).await.unwrap().unwrap();
        assert_eq!(row.state, JobState::Running, "a crash records nothing");
    }

    // A new process opens the same database.
    let store = open_store(&dir).await;
    let queue = Queue::new(store, 3);
    let handler = Recorder::succeeding();
    let runner = start(&queue, &handler, settings());
    for id in ids {
        assert_eq!(
            wait(&queue, id).await,
            JobStatus::Done {
                result: json!({ "job": id.0 })
            }
        );
    }
    runner.stop().await;

    let mut ran = handler.succeeded();
    ran.sort();
    assert_eq!(ran, ids.to_vec(), "every job completed exactly once");
    let first = queue.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(first.attempts, 2, "the interrupted attempt counts");
    for member in [1, 2, 3] {
        assert!(
            queue
                .store()
                .live_jobs(MemberId(member))
                .await
                .unwrap()
                .is_empty()
        );
    }
    // Nothing was duplicated: the next id is right after the three.
    let next = queue.enqueue(sync(1), Priority::Automatic).await.unwrap();
    assert_eq!(next.id.0, ids[2].0 + 1);
}

#[tokio::test]
async fn a_job_that_keeps_crashing_the_process_stops_at_its_retry_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1]).await;
    let queue = Queue::new(store.clone(), 2);
    let id = queue
        .enqueue(sync(1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    // Two attempts, each ended by a crash.
    for attempt in 1..=2 {
        let claimed = queue.claim(Lane::Network).await.unwrap().unwrap();
        assert_eq!((claimed.job.id, claimed.job.attempt), (id, attempt));
        let queue_after_crash = Queue::new(store.clone(), 2);
        let failed = queue_after_crash.recover().await.unwrap();
        if attempt == 1 {
            assert!(failed.is_empty());
        } else {
            assert_eq!(failed.len(), 1);
            assert_eq!(failed[0].kind, Some(sync(1)));
            assert!(failed[0].error.contains("process stopped"));
        }
    }
    let row = queue.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Failed);
    assert_eq!(row.attempts, 2);
}

#[tokio::test]
async fn duplicate_train_requests_coalesce() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    let queue = Queue::new(store, 3);

    let first = queue
        .enqueue(train(1, 7), Priority::Automatic)
        .await
        .unwrap();
    assert!(!first.joined);
    let second = queue.enqueue(train(1, 7), Priority::Manual).await.unwrap();
    assert_eq!(second.id, first.id);
    assert!(second.joined);
    let row = queue.job(first.id).await.unwrap().unwrap();
    assert!(
        row.priority > 0,
        "a manual request raises the joined job to manual"
    );
    // An automatic request never lowers it.
    queue
        .enqueue(train(1, 7), Priority::Automatic)
        .await
        .unwrap();
    assert_eq!(
        queue.job(first.id).await.unwrap().unwrap().priority,
        row.priority
    );

    // Another layer or another member is another job.
    let other_layer = queue.enqueue(train(1, 8), Priority::Manual).await.unwrap();
    let other_member = queue.enqueue(train(2, 7), Priority::Manual).await.unwrap();
    assert!(!other_layer.joined && !other_member.joined);
    assert_ne!(other_layer.id, first.id);
    assert_ne!(other_member.id, first.id);

    // While it runs, automatic retraining still joins it (a member's /train would queue a
    // follow-up instead); once it is done, a new one starts afresh.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = {
        let gate = Arc::clone(&gate);
        Recorder::new(move |_, _| {
            let gate = Arc::clone(&gate);
            Box::pin(async move {
                gate.acquire().await.unwrap().forget();
                Ok(json!(null))
            })
        })
    };
    let runner = start(&queue, &handler, settings());
    until("the training starts", || {
        handler.started_ids().contains(&first.id)
    })
    .await;
    let during = queue
        .enqueue(train(1, 7), Priority::Automatic)
        .await
        .unwrap();
    assert_eq!((during.id, during.joined), (first.id, true));
    gate.add_permits(1);
    wait(&queue, first.id).await;
    let after = queue.enqueue(train(1, 7), Priority::Manual).await.unwrap();
    assert!(!after.joined);
    assert_ne!(after.id, first.id);
    gate.add_permits(3);
    for id in [other_layer.id, other_member.id, after.id] {
        wait(&queue, id).await;
    }
    runner.stop().await;

    let started = handler.started_ids();
    assert_eq!(
        started.iter().filter(|id| **id == first.id).count(),
        1,
        "three requests, one training"
    );
    assert_eq!(started.len(), 4);
}

#[tokio::test]
async fn a_queued_job_is_cancelled_at_once_and_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    let queue = Queue::new(store, 3);
    let doomed = queue
        .enqueue(train(1, 1), Priority::Manual)
        .await
        .unwrap()
        .id;
    let kept = queue
        .enqueue(train(2, 1), Priority::Manual)
        .await
        .unwrap()
        .id;
    let mut watcher = queue.subscribe(doomed).await.unwrap().unwrap();
    assert_eq!(*watcher.borrow(), JobStatus::Queued);

    assert_eq!(
        queue.cancel(doomed).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        *watcher.wait_for(JobStatus::is_final).await.unwrap(),
        JobStatus::Cancelled
    );
    assert_eq!(
        queue.cancel(doomed).await.unwrap(),
        CancelOutcome::AlreadyFinished(JobState::Cancelled)
    );
    assert_eq!(
        queue.cancel(JobId(999)).await.unwrap(),
        CancelOutcome::Unknown
    );

    let handler = Recorder::succeeding();
    let runner = start(&queue, &handler, settings());
    assert!(matches!(wait(&queue, kept).await, JobStatus::Done { .. }));
    runner.stop().await;
    assert_eq!(handler.started_ids(), vec![kept]);
    let row = queue.job(doomed).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (JobState::Cancelled, 0));
}

/// A stand-in training loop on a device worker thread: reports progress each epoch and stops
/// between epochs once its token fires. Returns the epochs it ran.
fn device_training(
    devices: &Arc<DevicePool<&'static str>>,
    ctx: JobContext,
    epochs: u32,
    epoch_time: Duration,
) -> BoxFuture<'static, Result<Value, JobError>> {
    let devices = Arc::clone(devices);
    Box::pin(async move {
        let cancel = ctx.cancel.clone();
        let ran = devices
            .run(move |device| {
                assert_eq!(*device, "cpu");
                for epoch in 1..=epochs {
                    if ctx.cancel.is_cancelled() {
                        return epoch - 1;
                    }
                    std::thread::sleep(epoch_time);
                    ctx.progress.report(Progress {
                        epoch,
                        epochs,
                        loss: 1.0 / epoch as f32,
                        held_out_accuracy: Some(0.5),
                    });
                }
                epochs
            })
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        Ok(json!({ "epochs": ran }))
    })
}

#[tokio::test]
async fn a_running_training_is_cancelled_on_its_device_thread_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1]).await;
    let queue = Queue::new(store, 3);
    let devices = Arc::new(DevicePool::new(vec!["cpu"]).unwrap());
    let handler = {
        let devices = Arc::clone(&devices);
        Recorder::new(move |_, ctx| {
            device_training(&devices, ctx, 100_000, Duration::from_millis(2))
        })
    };
    let id = queue
        .enqueue(train(1, 1), Priority::Manual)
        .await
        .unwrap()
        .id;
    let mut watcher = queue.subscribe(id).await.unwrap().unwrap();
    let runner = start(&queue, &handler, settings());

    // Progress flows back to the waiter.
    let seen = tokio::time::timeout(
        PATIENCE,
        watcher.wait_for(
            |s| matches!(s, JobStatus::Running { progress: Some(p), .. } if p.epoch >= 3),
        ),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    let JobStatus::Running {
        attempt,
        progress: Some(p),
    } = seen
    else {
        unreachable!("matched above")
    };
    {
        assert_eq!(attempt, 1);
        assert_eq!(p.epochs, 100_000);
        assert!(p.loss <= 1.0 / 3.0);
    }

    assert_eq!(queue.cancel(id).await.unwrap(), CancelOutcome::Requested);
    assert_eq!(wait(&queue, id).await, JobStatus::Cancelled);
    runner.stop().await;
    let row = queue.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Cancelled);
    assert!(handler.succeeded().is_empty());
    assert!(handler.failed.lock().unwrap().is_empty());
    // The device worker is free again: the loop really stopped.
    assert_eq!(devices.run(|d| d.len()).await, Ok(3));
}

#[tokio::test]
async fn a_failing_job_stops_at_its_retry_cap_with_its_error_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    let queue = Queue::new(store, 3);
    let handler = Recorder::new(|job, _| {
        Box::pin(async move {
            match job.kind {
                JobKind::SyncMember {
                    member: MemberId(2),
                } => Err(JobError::Fatal("the Spotify link was revoked".into())),
                _ => Err(JobError::Retry(format!(
                    "Spotify answered 503 on attempt {}",
                    job.attempt
                ))),
            }
        })
    });
    let flaky = queue
        .enqueue(sync(1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let fatal = queue
        .enqueue(sync(2), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let runner = start(
        &queue,
        &handler,
        RunnerSettings {
            poll_interval: Duration::from_millis(20),
            ..settings()
        },
    );
    assert_eq!(
        wait(&queue, flaky).await,
        JobStatus::Failed {
            error: "Spotify answered 503 on attempt 3".into()
        }
    );
    assert_eq!(
        wait(&queue, fatal).await,
        JobStatus::Failed {
            error: "the Spotify link was revoked".into()
        }
    );
    runner.stop().await;

    let row = queue.job(flaky).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (JobState::Failed, 3));
    assert_eq!(
        row.last_error.as_deref(),
        Some("Spotify answered 503 on attempt 3")
    );
    let row = queue.job(fatal).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.attempts),
        (JobState::Failed, 1),
        "fatal: no retry"
    );

    let starts = handler.started_ids();
    assert_eq!(starts.iter().filter(|id| **id == flaky).count(), 3);
    assert_eq!(starts.iter().filter(|id| **id == fatal).count(), 1);
    // The member is told once per job, with the error.
    let mut told = handler.failed.lock().unwrap().clone();
    told.sort();
    assert_eq!(
        told,
        vec![
            (flaky, "Spotify answered 503 on attempt 3".to_owned()),
            (fatal, "the Spotify link was revoked".to_owned())
        ]
    );
}

#[tokio::test]
async fn ten_members_one_greedy_every_other_first_job_starts_before_the_greedy_third() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, 1..=10).await;
    let queue = Queue::new(store, 3);
    let greedy = 1u64;
    let mut greedy_jobs = Vec::new();
    for layer in 1..=20 {
        greedy_jobs.push(
            queue
                .enqueue(train(greedy, layer), Priority::Manual)
                .await
                .unwrap()
                .id,
        );
    }
    let mut others = Vec::new();
    for member in 2..=10 {
        others.push(
            queue
                .enqueue(train(member, 1), Priority::Manual)
                .await
                .unwrap()
                .id,
        );
    }
    // The queue positions /train shows, before anything runs.
    let mut predicted = Vec::new();
    for id in greedy_jobs.iter().chain(&others) {
        predicted.push((queue.position(*id).await.unwrap().unwrap(), *id));
    }
    predicted.sort();

    let devices = Arc::new(DevicePool::new(vec!["cpu"]).unwrap());
    let handler = {
        let devices = Arc::clone(&devices);
        Recorder::new(move |_, ctx| device_training(&devices, ctx, 3, Duration::from_millis(1)))
    };
    let runner = start(&queue, &handler, settings());
    for id in greedy_jobs.iter().chain(&others) {
        assert!(matches!(wait(&queue, *id).await, JobStatus::Done { .. }));
    }
    runner.stop().await;

    let order = handler.started_ids();
    assert_eq!(order.len(), 29);
    let started_at = |id: JobId| order.iter().position(|x| *x == id).unwrap();
    let greedy_third = started_at(greedy_jobs[2]);
    for id in &others {
        assert!(
            started_at(*id) < greedy_third,
            "job {id} started at {} after the greedy member's third at {greedy_third}",
            started_at(*id)
        );
    }
    // The greedy member's own jobs keep their order.
    let greedy_starts: Vec<usize> = greedy_jobs.iter().map(|id| started_at(*id)).collect();
    assert!(greedy_starts.windows(2).all(|w| w[0] < w[1]));
    // The positions shown beforehand were the real order.
    let predicted: Vec<JobId> = predicted.into_iter().map(|(_, id)| id).collect();
    assert_eq!(predicted, order);
}

#[tokio::test]
async fn a_manual_request_outranks_only_its_own_members_automatic_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    let queue = Queue::new(store, 3);
    let auto_1 = queue
        .enqueue(train(1, 1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let auto_2 = queue
        .enqueue(train(2, 1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let manual_2 = queue
        .enqueue(train(2, 2), Priority::Manual)
        .await
        .unwrap()
        .id;
    // Members take turns whatever their requests' priority; member 2's own /train goes before
    // member 2's automatic retraining.
    assert_eq!(queue.position(auto_1).await.unwrap(), Some(0));
    assert_eq!(queue.position(manual_2).await.unwrap(), Some(1));
    assert_eq!(queue.position(auto_2).await.unwrap(), Some(2));
    let handler = Recorder::succeeding();
    let runner = start(&queue, &handler, settings());
    for id in [auto_1, auto_2, manual_2] {
        wait(&queue, id).await;
    }
    runner.stop().await;
    assert_eq!(handler.started_ids(), vec![auto_1, manual_2, auto_2]);
}

#[tokio::test]
async fn a_job_past_its_time_limit_is_stopped_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    let queue = Queue::new(store, 3);
    let devices = Arc::new(DevicePool::new(vec!["cpu"]).unwrap());
    let result = Arc::new(Mutex::new(None));
    let handler = {
        let devices = Arc::clone(&devices);
        let result = Arc::clone(&result);
        Recorder::new(move |job, ctx| {
            let result = Arc::clone(&result);
            if job.kind == train(2, 1) {
                // The next training starts only once the stopped one has left the device.
                let first_done = result.lock().unwrap().is_some();
                return Box::pin(async move { Ok(json!({ "first_done": first_done })) });
            }
            // Epochs of 50 ms: the token is seen up to 50 ms after the limit.
            let training = device_training(&devices, ctx, 1_000_000, Duration::from_millis(50));
            Box::pin(async move {
                let r = training.await;
                *result.lock().unwrap() = Some(r.clone());
                r
            })
        })
    };
    let id = queue
        .enqueue(train(1, 1), Priority::Manual)
        .await
        .unwrap()
        .id;
    let next = queue
        .enqueue(train(2, 1), Priority::Manual)
        .await
        .unwrap()
        .id;
    let runner = start(
        &queue,
        &handler,
        RunnerSettings {
            train_timeout: Duration::from_millis(300),
            ..settings()
        },
    );
    assert_eq!(
        wait(&queue, id).await,
        JobStatus::Failed {
            error: "stopped: it ran past its time limit of 300 ms".into()
        }
    );
    assert_eq!(
        wait(&queue, next).await,
        JobStatus::Done {
            result: json!({ "first_done": true })
        }
    );
    runner.stop().await;
    let row = queue.job(id).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.attempts),
        (JobState::Failed, 1),
        "not retried"
    );
    // The handler saw its token and the device loop ended.
    assert_eq!(*result.lock().unwrap(), Some(Err(JobError::Cancelled)));
    assert_eq!(handler.failed.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn network_jobs_do_not_wait_behind_training() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    let queue = Queue::new(store, 3);
    let devices = Arc::new(DevicePool::new(vec!["cpu"]).unwrap());
    let handler = {
        let devices = Arc::clone(&devices);
        Recorder::new(move |job, ctx| match job.kind {
            JobKind::Train { .. } => {
                device_training(&devices, ctx, 1_000_000, Duration::from_millis(1))
            }
            _ => Box::pin(async { Ok(json!("synced")) }),
        })
    };
    let training = queue
        .enqueue(train(1, 1), Priority::Manual)
        .await
        .unwrap()
        .id;
    let runner = start(&queue, &handler, settings());
    until("the training starts", || {
        handler.started_ids().contains(&training)
    })
    .await;
    let synced = queue
        .enqueue(sync(2), Priority::Automatic)
        .await
        .unwrap()
        .id;
    assert!(matches!(wait(&queue, synced).await, JobStatus::Done { .. }));
    assert_eq!(
        queue.job(training).await.unwrap().unwrap().state,
        JobState::Running,
        "the sync finished while the training still ran"
    );
    queue.cancel(training).await.unwrap();
    wait(&queue, training).await;
    runner.stop().await;
}

#[tokio::test]
async fn shutdown_lets_quick_jobs_finish_and_requeues_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    let queue = Queue::new(store.clone(), 3);
    let slow = queue
        .enqueue(sync(1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let quick = queue
        .enqueue(sync(2), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let handler = Recorder::new(move |job, _| {
        Box::pin(async move {
            if job.id == slow {
                std::future::pending::<()>().await;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(json!(null))
        })
    });
    let runner = start(
        &queue,
        &handler,
        RunnerSettings {
            shutdown_grace: Duration::from_millis(500),
            ..settings()
        },
    );
    until("both jobs start", || handler.started_ids().len() == 2).await;
    runner.stop().await;

    let quick_row = queue.job(quick).await.unwrap().unwrap();
    assert_eq!(quick_row.state, JobState::Done);
    let slow_row = queue.job(slow).await.unwrap().unwrap();
    assert_eq!(
        (slow_row.state, slow_row.attempts),
        (JobState::Queued, 0),
        "re-queued without spending an attempt"
    );

    // The next start runs it.
    let queue = Queue::new(store, 3);
    let handler = Recorder::succeeding();
    let runner = start(&queue, &handler, settings());
    assert!(matches!(wait(&queue, slow).await, JobStatus::Done { .. }));
    runner.stop().await;
    assert_eq!(handler.started_ids(), vec![slow]);
}

/// Links members' Spotify accounts (rows the Spotify room writes); returns a direct connection
/// for later changes.
async fn link(dir: &tempfile::TempDir, members: &[i64]) -> sqlx::SqlitePool {
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("sublist.db").display()
    ))
    .await
    .unwrap();
    for member in members {
        sqlx::query(
            "INSERT INTO spotify_links (member_id, app_client_id, account_id, user_id, \
             authorized_at, refresh_expires_at, linked_at) \
             VALUES (?, 'app', ?, ?, '2026-11-01T00:00:00Z', '2027-05-01T00:00:00Z', \
             '2026-11-01T00:00:00Z')",
        )
        .bind(member)
        .bind(format!("account-{member}"))
        .bind(format!("user-{member}"))
        .execute(&db)
        .await
        .unwrap();
    }
    db
}

#[tokio::test]
async fn the_service_syncs_linked_members_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    link(&dir, &[2]).await;
    let queue = Queue::new(store, 3);
    let handler = Recorder::succeeding();
    let service = JobService::start(
        queue.clone(),
        Arc::clone(&handler),
        settings(),
        Duration::from_secs(3600),
    );
    until("the linked member is synced", || {
        !handler.succeeded().is_empty()
    })
    .await;
    service.shutdown().await.unwrap();
    let started = handler.started.lock().unwrap().clone();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].kind, sync(2));
    assert_eq!(started[0].priority, Priority::Automatic);
}

#[tokio::test]
async fn the_scheduler_queues_one_sync_per_linked_member_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2, 3]).await;
    // Members 1 and 2 linked Spotify; 3 did not; 2's link expires later.
    let db = link(&dir, &[1, 2]).await;
    let queue = Queue::new(store, 3);
    let scheduler = Scheduler::new(queue.clone(), Duration::from_secs(300));
    let first = scheduler.tick().await.unwrap();
    assert_eq!(first.len(), 2);
    for (id, member) in first.iter().zip([1, 2]) {
        let row = queue.job(*id).await.unwrap().unwrap();
        assert_eq!(row.member, Some(MemberId(member)));
        assert_eq!(row.kind, "sync_member");
        assert_eq!(row.priority, 0, "automatic");
    }
    assert!(
        scheduler.tick().await.unwrap().is_empty(),
        "not due again yet"
    );

    // Once the syncs ran, they are still not due until the interval has passed...
    let handler = Recorder::succeeding();
    let runner = start(&queue, &handler, settings());
    for id in &first {
        wait(&queue, *id).await;
    }
    runner.stop().await;
    assert!(scheduler.tick().await.unwrap().is_empty());
    // ...and with a short interval they are due again; an expired link is not synced.
    sqlx::query("UPDATE spotify_links SET status = 'expired' WHERE member_id = 2")
        .execute(&db)
        .await
        .unwrap();
    let eager = Scheduler::new(queue.clone(), Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = eager.tick().await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        queue.job(again[0]).await.unwrap().unwrap().member,
        Some(MemberId(1))
    );
}

#[tokio::test]
async fn a_cancel_asked_of_a_running_job_survives_a_crash_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    let queue = Queue::new(store.clone(), 3);
    // Job A: cancel asked while running, then the process dies.
    let a = queue
        .enqueue(sync(1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    assert_eq!(queue.claim(Lane::Network).await.unwrap().unwrap().job.id, a);
    assert_eq!(queue.cancel(a).await.unwrap(), CancelOutcome::Requested);
    // Job B: cancel asked while running, then its handler fails with a retryable error.
    let b = queue
        .enqueue(sync(2), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let claimed = queue.claim(Lane::Network).await.unwrap().unwrap();
    assert_eq!(claimed.job.id, b);
    assert_eq!(queue.cancel(b).await.unwrap(), CancelOutcome::Requested);
    assert!(claimed.cancel.is_cancelled(), "the handler's token fired");
    queue
        .fail(b, "network down", Some(chrono::Utc::now()))
        .await
        .unwrap();
    assert_eq!(
        queue.job(b).await.unwrap().unwrap().state,
        JobState::Cancelled
    );

    let after_crash = Queue::new(store, 3);
    assert!(after_crash.recover().await.unwrap().is_empty());
    assert_eq!(wait(&after_crash, a).await, JobStatus::Cancelled);
    assert!(after_crash.claim(Lane::Network).await.unwrap().is_none());
}

#[tokio::test]
async fn a_job_waiting_out_its_retry_delay_is_not_claimed_early() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1]).await;
    let queue = Queue::new(store, 3);
    let id = queue
        .enqueue(sync(1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    queue.claim(Lane::Network).await.unwrap().unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    queue
        .fail(id, "429: try again later", Some(later))
        .await
        .unwrap();
    let row = queue.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Queued);
    assert_eq!(row.last_error.as_deref(), Some("429: try again later"));
    assert!(queue.claim(Lane::Network).await.unwrap().is_none());
    assert!(queue.claim(Lane::Device).await.unwrap().is_none());
    // A request in the meantime joins it rather than running twice.
    let again = queue.enqueue(sync(1), Priority::Automatic).await.unwrap();
    assert_eq!((again.id, again.joined), (id, true));
}

#[tokio::test]
async fn a_deferred_job_waits_and_does_not_spend_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1]).await;
    // One attempt only: two deferrals (Spotify's quota) must not use it up.
    let queue = Queue::new(store, 1);
    let runs = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&runs);
    let deferring = Recorder::new(move |_, _| {
        let counter = Arc::clone(&counter);
        Box::pin(async move {
            let run = {
                let mut runs = counter.lock().unwrap();
                *runs += 1;
                *runs
            };
            if run <= 2 {
                Err(JobError::Deferred {
                    until: chrono::Utc::now() + chrono::Duration::milliseconds(50),
                    reason: "Spotify's daily quota is used up".into(),
                })
            } else {
                Ok(json!("synced"))
            }
        })
    });
    let id = queue
        .enqueue(sync(1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let runner = start(
        &queue,
        &deferring,
        RunnerSettings {
            poll_interval: Duration::from_millis(20),
            ..settings()
        },
    );
    assert_eq!(
        wait(&queue, id).await,
        JobStatus::Done {
            result: json!("synced")
        }
    );
    runner.stop().await;
    assert_eq!(*runs.lock().unwrap(), 3);
    let row = queue.job(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (JobState::Done, 1));
    assert_eq!(
        row.last_error.as_deref(),
        Some("Spotify's daily quota is used up")
    );
    // Each deferral really waited: the runs were at least the deferral apart.
    assert!(row.started_at.unwrap() - row.created_at >= chrono::Duration::milliseconds(100));
}

#[tokio::test]
async fn a_train_request_while_that_training_runs_queues_one_follow_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1]).await;
    let queue = Queue::new(store.clone(), 3);
    let first = queue
        .enqueue(train(1, 1), Priority::Manual)
        .await
        .unwrap()
        .id;
    assert_eq!(
        queue.claim(Lane::Device).await.unwrap().unwrap().job.id,
        first
    );

    // Automatic retraining joins the running training: it counts the labels that one used.
    let auto = queue
        .enqueue(train(1, 1), Priority::Automatic)
        .await
        .unwrap();
    assert_eq!((auto.id, auto.joined), (first, true));
    // The member's /train queues one follow-up, which later requests join.
    let follow = queue.enqueue(train(1, 1), Priority::Manual).await.unwrap();
    assert!(!follow.joined, "a follow-up, not the running training");
    for priority in [Priority::Manual, Priority::Automatic] {
        let again = queue.enqueue(train(1, 1), priority).await.unwrap();
        assert_eq!((again.id, again.joined), (follow.id, true));
    }
    // It never runs beside the training it follows.
    assert!(queue.claim(Lane::Device).await.unwrap().is_none());

    // A crash now: both come back and each ends once, one after the other.
    let queue = Queue::new(store, 3);
    assert!(queue.recover().await.unwrap().is_empty());
    let handler = Recorder::succeeding();
    let runner = start(&queue, &handler, settings());
    for id in [first, follow.id] {
        assert!(matches!(wait(&queue, id).await, JobStatus::Done { .. }));
    }
    runner.stop().await;
    assert_eq!(handler.started_ids(), vec![first, follow.id]);
    assert!(
        queue
            .store()
            .live_jobs(MemberId(1))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn one_member_never_holds_more_than_one_network_slot() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1, 2]).await;
    let queue = Queue::new(store, 3);
    let greedy = [
        sync(1),
        JobKind::FetchAudio {
            member: MemberId(1),
        },
        JobKind::SortAndWrite {
            member: MemberId(1),
            layer: None,
        },
        JobKind::PostPrompts {
            member: MemberId(1),
        },
    ];
    let mut ids = Vec::new();
    for kind in greedy {
        ids.push(queue.enqueue(kind, Priority::Manual).await.unwrap().id);
    }
    let other = queue
        .enqueue(sync(2), Priority::Automatic)
        .await
        .unwrap()
        .id;
    // Each job holds its slot a while (as if waiting on the member's Spotify lock); count how
    // many of each member's run at once.
    let running: Arc<Mutex<HashMap<u64, (u32, u32)>>> = Arc::default();
    let counts = Arc::clone(&running);
    let handler = Recorder::new(move |job, _| {
        let counts = Arc::clone(&counts);
        Box::pin(async move {
            let member = job.kind.member().0;
            {
                let mut c = counts.lock().unwrap();
                let (now, most) = c.entry(member).or_default();
                *now += 1;
                *most = (*most).max(*now);
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
            counts.lock().unwrap().entry(member).or_default().0 -= 1;
            Ok(json!(null))
        })
    });
    let runner = start(&queue, &handler, settings());
    for id in ids.iter().chain([&other]) {
        assert!(matches!(wait(&queue, *id).await, JobStatus::Done { .. }));
    }
    runner.stop().await;
    let most = |m: u64| running.lock().unwrap()[&m].1;
    assert_eq!(most(1), 1, "member 1 ran several network jobs at once");
    // The other member was served second, not after the greedy member's four.
    let order = handler.started_ids();
    assert_eq!(
        order.iter().position(|id| *id == other),
        Some(1),
        "{order:?}"
    );
}

/// A handler whose job needs `needed` steps, each kept durably (`steps`), taking `step` each.
struct Slices {
    steps: AtomicU32,
    needed: u32,
    step: Duration,
    failed: Mutex<Vec<String>>,
}

impl JobHandler for Slices {
    async fn run(&self, _job: &Job, ctx: JobContext) -> Result<Value, JobError> {
        while self.steps.load(Ordering::SeqCst) < self.needed {
            tokio::select! {
                () = tokio::time::sleep(self.step) => {}
                () = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            }
            self.steps.fetch_add(1, Ordering::SeqCst);
        }
        Ok(json!({ "steps": self.steps.load(Ordering::SeqCst) }))
    }

    async fn on_failed(&self, _job: &Job, error: &str) {
        self.failed.lock().unwrap().push(error.to_owned());
    }

    async fn progress_mark(&self, _job: &Job) -> Option<String> {
        Some(self.steps.load(Ordering::SeqCst).to_string())
    }
}

#[tokio::test]
async fn a_long_job_that_makes_progress_continues_past_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    members(&store, [1]).await;
    // Two attempts, a 200 ms limit, and work for about a second: it can only finish by
    // continuing across limits without spending its attempts.
    let queue = Queue::new(store, 2);
    let handler = Arc::new(Slices {
        steps: AtomicU32::new(0),
        needed: 20,
        step: Duration::from_millis(50),
        failed: Mutex::new(Vec::new()),
    });
    let id = queue
        .enqueue(sync(1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let settings = RunnerSettings {
        job_timeout: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        ..settings()
    };
    let runner = start(&queue, &handler, settings.clone());
    assert_eq!(
        wait(&queue, id).await,
        JobStatus::Done {
            result: json!({ "steps": 20 })
        }
    );
    runner.stop().await;
    let row = queue.job(id).await.unwrap().unwrap();
    assert_eq!(row.attempts, 1, "continuing spent no attempt");
    assert!(handler.failed.lock().unwrap().is_empty());

    // A job that gets nowhere within its limit still fails once its attempts are spent.
    let stuck = Arc::new(Slices {
        steps: AtomicU32::new(0),
        needed: 1,
        step: Duration::from_secs(3600),
        failed: Mutex::new(Vec::new()),
    });
    let id = queue
        .enqueue(sync(1), Priority::Automatic)
        .await
        .unwrap()
        .id;
    let runner = start(&queue, &stuck, settings);
    assert_eq!(
        wait(&queue, id).await,
        JobStatus::Failed {
            error: "stopped: it ran past its time limit of 200 ms without progress".into()
        }
    );
    runner.stop().await;
    assert_eq!(queue.job(id).await.unwrap().unwrap().attempts, 2);
    assert_eq!(stuck.failed.lock().unwrap().len(), 1);
}
