//! The durable job queue shared by all members, the device workers that own a compute device
//! each, the runner that executes jobs fairly, and the scheduler.
//!
//! The rules, all kept in SQLite so that they survive a restart:
//! - Fairness: members take turns: each claim serves the member served least recently in that
//!   lane (never served first), then the one with the oldest ready job; within a member, a
//!   manual request before their automatic work, then age. A member runs at most one network
//!   job at a time (they all wait on the member's Spotify lock), so one member never fills the
//!   network slots.
//! - Coalescing: a request whose `JobKind::dedupe_key` matches a queued or running job joins
//!   it (one training per member and layer); a manual request raises it to manual. A manual
//!   `/train` for a layer whose training is running queues one follow-up behind it instead
//!   (`JobKind::follows_running`), which later requests join; equal jobs never run side by side.
//! - Failures: `JobError::Retry` runs again after a doubling delay until `max_attempts`, then
//!   fails with its error kept and the handler's `on_failed` called once; `JobError::Fatal`
//!   and a time limit fail at once, and `JobError::Refused` too, with a sentence for the member;
//!   `JobError::Deferred` waits until a given time without spending an attempt (quota,
//!   Retry-After). A job whose handler reports durable progress (`progress_mark`) and runs out
//!   of time continues in a further attempt that spends none of its retries.
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
