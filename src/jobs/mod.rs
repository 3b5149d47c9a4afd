//! The durable job queue shared by all members, the device workers that own a compute device
//! each, the runner that executes jobs fairly, and the scheduler.
//!
//! The rules, all kept in SQLite so that they survive a restart:
//! - Fairness: each claim serves the member with the most urgent ready job (manual before
//!   automatic), and among equals the member served least recently in that lane (never served
//!   first), then the one with the oldest ready job; within a member, priority then age.
//! - Coalescing: a request whose `JobKind::dedupe_key` matches a queued or running job joins
//!   it (one training per member and layer); a manual request raises it to manual.
//! - Failures: `JobError::Retry` runs again after a doubling delay until `max_attempts`, then
//!   fails with its error kept and the handler's `on_failed` called once; `JobError::Fatal`
//!   and a time limit fail at once; `JobError::Deferred` waits until a given time without
//!   spending an attempt (quota, Retry-After).
//! - Restart: jobs left `running` by a dead process are queued again (the interrupted attempt
//!   counts); a clean shutdown re-queues what it had to interrupt without counting it.
//! - Lanes: training runs in device slots (one per device worker), everything else in network
//!   slots; neither waits for the other.
//!
//! Wiring: open a `Queue` over the store, start a `DevicePool` with the app's devices, and
//! start a `JobService` (the `Runner` and the `Scheduler`) with the app's `JobHandler`,
//! which sends training to the pool. Shut the service down on SIGTERM.

mod device;
mod kind;
mod queue;
mod runner;
mod scheduler;
mod service;

pub use crate::store::{CancelOutcome, FailOutcome, JobId, JobRow, JobState};
pub use device::{DeviceError, DevicePool};
pub use kind::{JobKind, Lane, Priority};
pub use queue::{
    CancelToken, Claimed, Enqueued, FailedJob, Job, JobStatus, Progress, ProgressSender, Queue,
    QueueError,
};
pub use runner::{JobContext, JobError, JobHandler, Runner, RunnerSettings};
pub use scheduler::Scheduler;
pub use service::JobService;
