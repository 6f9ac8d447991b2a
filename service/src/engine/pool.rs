//! The engine's workers: at most `pricing.workers` rule evaluations run at once, each on a
//! blocking thread of its own. Waiting for a worker is first come, first served (tokio's
//! semaphore is fair), which is what bounds how long one merchant's batch waits behind
//! another's (see [`super`]). Each worker's busy time is kept for the metrics.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::Semaphore;

pub(super) struct Pool {
    permits: Semaphore,
    /// Which workers are free, by index (taken with a permit).
    free: Mutex<Vec<usize>>,
    busy_nanos: Vec<AtomicU64>,
}

impl Pool {
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        Self {
            permits: Semaphore::new(workers),
            free: Mutex::new((0..workers).rev().collect()),
            busy_nanos: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Runs `work` on a worker once one is free.
    pub async fn run<T>(&self, work: impl Future<Output = T>) -> T {
        let _permit = self.permits.acquire().await.expect("the pool's semaphore is never closed");
        let worker = self.free.lock().expect("the pool lock is not poisoned").pop().expect("a permit frees a worker");
        let _taken = Taken { pool: self, worker, started: Instant::now() };
        work.await
    }

    /// Seconds each worker has spent evaluating since the start.
    pub fn busy_seconds(&self) -> Vec<f64> {
        self.busy_nanos.iter().map(|n| n.load(Ordering::Relaxed) as f64 / 1e9).collect()
    }
}

/// A worker in use; given back (with its busy time counted) however the work ends.
struct Taken<'a> {
    pool: &'a Pool,
    worker: usize,
    started: Instant,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.pool.busy_nanos[self.worker].fetch_add(self.started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.pool.free.lock().expect("the pool lock is not poisoned").push(self.worker);
    }
}
