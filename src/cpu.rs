//! The sweep's CPU work (decoding pages into the snapshot builder, finishing the snapshot,
//! rendering it) runs on one dedicated thread, in submission order.
//!
//! One thread rather than the blocking pool, for two reasons:
//! - a sweep's decoding and rendering never take more than one core from the pod it shares;
//! - the large buffers of a sweep (per-chat records, the rendered text) are allocated by the
//!   same thread every time, so the allocator hands the last sweep's freed memory to the next
//!   one instead of growing: with the blocking pool, each sweep's buffers landed in whichever
//!   allocator arena its thread used, and the old sweep's memory stayed resident beside them.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// The sweep's CPU thread. Dropping it ends the thread once queued jobs are done.
#[derive(Debug)]
pub struct CpuThread {
    jobs: Option<mpsc::Sender<Job>>,
}

impl Default for CpuThread {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuThread {
    /// Starts the thread. Should the OS refuse a thread, jobs run on tokio's blocking pool.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("linq-sweep-cpu".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            });
        match spawned {
            Ok(_) => CpuThread { jobs: Some(tx) },
            Err(e) => {
                tracing::warn!(error = %e, "could not start the sweep thread; using the blocking pool");
                CpuThread { jobs: None }
            }
        }
    }

    /// Queues `f` now and returns its result when it has run. A panic in `f` is resumed in the
    /// caller, as `spawn_blocking` would. Dropping the future does not cancel `f`.
    pub fn run<T, F>(&self, f: F) -> impl Future<Output = T> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        let fallback = match &self.jobs {
            Some(jobs) => jobs.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = fallback {
            // No thread (it could not start): the blocking pool runs the job instead.
            drop(tokio::task::spawn_blocking(job));
        }
        async move {
            match rx.await {
                Ok(Ok(v)) => v,
                Ok(Err(panic)) => resume_unwind(panic),
                // The job was dropped unrun, which only happens if its thread is gone mid-queue
                // (the process is ending).
                Err(_) => resume_unwind(Box::new("the sweep thread stopped")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_in_order_on_one_thread_and_resumes_panics() {
        let cpu = CpuThread::new();
        let a = cpu.run(|| std::thread::current().id());
        let b = cpu.run(|| std::thread::current().id());
        let (a, b) = (a.await, b.await);
        assert_eq!(a, b);
        assert_ne!(a, std::thread::current().id());

        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let waits: Vec<_> = (0..5)
            .map(|i| {
                let order = order.clone();
                cpu.run(move || order.lock().map(|mut o| o.push(i)).is_ok())
            })
            .collect();
        for w in waits {
            assert!(w.await);
        }
        assert_eq!(*order.lock().expect("lock"), [0, 1, 2, 3, 4]);

        let panicked = tokio::spawn(cpu.run(|| -> u8 { resume_unwind(Box::new("boom")) })).await;
        assert!(panicked.expect_err("resumed").is_panic());
        // The thread survives a panicking job.
        assert_eq!(cpu.run(|| 7).await, 7);
    }
}
