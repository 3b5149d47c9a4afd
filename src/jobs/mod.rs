//! The durable job queue shared by all members, the device workers that own a compute device
//! each, the runner that executes jobs fairly, and the scheduler.
//!
//! Wiring: open a [`Queue`] over the store, start a [`DevicePool`] with the app's devices, and
//! start a [`JobService`] (the [`Runner`] and the [`Scheduler`]) with the app's [`JobHandler`],
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
