//! The sweep's CPU work runs on dedicated threads, one job at a time, in submission order: one
//! thread decodes pages into the snapshot builder and finishes the snapshot, another renders it.
//!
//! Dedicated threads rather than the blocking pool, for two reasons:
//! - a sweep's decoding and rendering never take more than one core from the pod it shares (they
//!   never run at the same time: a snapshot is rendered after its sweep);
//! - the render thread runs at a lower priority ([`CpuThread::named`] with a nice value), so
//!   scrapes served while it works go first. Decoding keeps the normal priority: it paces the
//!   sweep.
//!
//! With the blocking pool, each sweep's large buffers also landed in whichever allocator arena
//! its thread used, and the old sweep's memory stayed resident beside them; jemalloc now runs
//! with one arena (`.cargo/config.toml`).

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// One of the sweep's CPU threads. Dropping it ends the thread once queued jobs are done.
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
        Self::named("linq-sweep-cpu", 0)
    }

    /// Starts a thread called `name` that runs its jobs at `nice` (0: the process's own
    /// priority; higher: lower priority; only ever lowered, and only on Linux).
    pub fn named(name: &str, nice: i32) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if nice > 0 {
                    lower_priority(nice);
                }
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

/// Sets the calling thread's nice value (Linux keeps one per thread); a failure is logged and
/// the thread runs at the process's priority.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::debug!(error = %e, nice, "could not lower a thread's priority");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_named_thread_runs_at_its_nice_value() {
        let nice = || rustix::process::getpriority_process(Some(rustix::thread::gettid()));
        let here = nice().expect("getpriority");
        // Lowering one's own priority needs no privilege.
        let low = CpuThread::named("linq-test-low", here + 5);
        let (name, value) = low
            .run(move || (std::thread::current().name().map(String::from), nice()))
            .await;
        assert_eq!(name.as_deref(), Some("linq-test-low"));
        assert_eq!(value.expect("getpriority"), here + 5);
        // The default thread keeps the process's priority.
        let normal = CpuThread::new();
        assert_eq!(normal.run(nice).await.expect("getpriority"), here);
    }
}
