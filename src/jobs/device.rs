//! Device workers: one OS thread per compute device, each owning its device value, fed by one
//! shared channel so that any idle worker takes the next task. Async code awaits the result.
//!
//! The device type is generic so that this module never names burn; the app passes its
//! compute device (a burn `Device` on a GPU, or the CPU).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// Why a device task gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("the device workers have stopped")]
    Stopped,
    #[error("the device task panicked: {0}")]
    Panicked(String),
    #[error("could not start a device worker thread: {0}")]
    Spawn(String),
}

type Task<T> = Box<dyn FnOnce(&T) + Send>;

/// A pool of device workers. Dropping it lets the workers finish their current task and exit.
pub struct DevicePool<T> {
    tx: Option<mpsc::Sender<Task<T>>>,
    workers: Vec<JoinHandle<()>>,
}

impl<T> std::fmt::Debug for DevicePool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevicePool")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl<T: Send + 'static> DevicePool<T> {
    /// Starts one worker thread per device; each thread owns its device for its whole life.
    pub fn new(devices: Vec<T>) -> Result<Self, DeviceError> {
        let (tx, rx) = mpsc::channel::<Task<T>>();
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(devices.len());
        for (i, device) in devices.into_iter().enumerate() {
            let rx = Arc::clone(&rx);
            let handle = std::thread::Builder::new()
                .name(format!("sublist-device-{i}"))
                .spawn(move || worker(device, &rx))
                .map_err(|e| DeviceError::Spawn(e.to_string()))?;
            workers.push(handle);
        }
        Ok(Self {
            tx: Some(tx),
            workers,
        })
    }

    /// How many workers (devices) the pool has.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Runs `task` on the next idle worker's device and returns its result. If the caller stops
    /// waiting, the task still runs to its end: long tasks should watch a cancel token.
    pub async fn run<R, F>(&self, task: F) -> Result<R, DeviceError>
    where
        F: FnOnce(&T) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel();
        let span = tracing::Span::current();
        let task: Task<T> = Box::new(move |device: &T| {
            let _entered = span.enter();
            let result = catch_unwind(AssertUnwindSafe(|| task(device)))
                .map_err(|panic| panic_message(panic.as_ref()));
            // The waiter may have gone (timed out, cancelled); the result is then dropped.
            let _ = done_tx.send(result);
        });
        let tx = self.tx.as_ref().ok_or(DeviceError::Stopped)?;
        if self.workers.is_empty() {
            return Err(DeviceError::Stopped);
        }
        tx.send(task).map_err(|_| DeviceError::Stopped)?;
        match done_rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(DeviceError::Panicked(message)),
            Err(_) => Err(DeviceError::Stopped),
        }
    }

    /// Stops taking tasks and waits for the workers to finish the ones they run. Blocks: call it
    /// from a blocking context (`spawn_blocking`) or at the end of `main`.
    pub fn join(mut self) {
        self.tx = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn worker<T>(device: T, rx: &Mutex<mpsc::Receiver<Task<T>>>) {
    loop {
        // The lock is held only while waiting for a task, never while running one.
        let next = {
            let rx = rx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            rx.recv()
        };
        match next {
            Ok(task) => task(&device),
            Err(_) => return,
        }
    }
}

/// The text a panic carried.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn each_task_runs_on_a_worker_thread_with_its_device() {
        let pool = DevicePool::new(vec!["gpu0", "gpu1"]).unwrap();
        assert_eq!(pool.len(), 2);
        let (device, thread) = pool
            .run(|d: &&str| {
                (
                    d.to_string(),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .await
            .unwrap();
        assert!(device == "gpu0" || device == "gpu1");
        assert!(thread.unwrap().starts_with("sublist-device-"));
    }

    #[tokio::test]
    async fn a_busy_worker_does_not_block_an_idle_one() {
        let pool = Arc::new(DevicePool::new(vec![0u8, 1u8]).unwrap());
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let slow = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                pool.run(move |_| release_rx.recv_timeout(Duration::from_secs(10)).is_ok())
                    .await
            })
        };
        // The second task finishes while the first still blocks its worker.
        let quick = pool.run(|d| *d).await.unwrap();
        assert!(quick <= 1);
        release_tx.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), Ok(true));
    }

    #[tokio::test]
    async fn a_panicking_task_is_an_error_and_the_worker_lives_on() {
        let pool = DevicePool::new(vec![()]).unwrap();
        let err = pool.run(|_| -> u32 { panic!("boom") }).await.unwrap_err();
        assert_eq!(err, DeviceError::Panicked("boom".into()));
        assert_eq!(pool.run(|_| 7).await, Ok(7));
    }

    #[tokio::test]
    async fn an_empty_pool_says_it_has_stopped() {
        let pool: DevicePool<()> = DevicePool::new(vec![]).unwrap();
        assert_eq!(pool.run(|_| ()).await, Err(DeviceError::Stopped));
    }
}
