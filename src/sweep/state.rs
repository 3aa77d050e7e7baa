//! State shared by the poller and the HTTP server: the last published snapshot (rendered), the
//! self metrics, and the poller's liveness. Created once in `run` and passed through axum `State`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::config::ReadyMaxAge;
use crate::metrics::exposition::Rendered;
use crate::metrics::snapshot::{Snapshot, Summary};
use crate::telemetry::SelfMetrics;

/// A published snapshot.
#[derive(Debug)]
pub struct Published {
    /// The rendered exposition as text (text 0.0.4 and OpenMetrics).
    pub rendered: Rendered,
    /// The protobuf rendering, when protobuf scrapes came within [`PROTOBUF_WANTED_FOR`].
    pub protobuf: Option<Rendered>,
    /// For the status page.
    pub summary: Summary,
    /// When the sweep completed.
    pub completed_at: SystemTime,
}

/// How long after a protobuf (or a plain) scrape each sweep still renders the protobuf form (or
/// keeps the plain bytes): longer than any sensible scrape interval, so that it is not dropped
/// between two scrapes.
pub const PROTOBUF_WANTED_FOR: Duration = Duration::from_secs(15 * 60);

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether `asked` (Unix seconds, 0 for never) lies within [`PROTOBUF_WANTED_FOR`] of `now`.
fn recently(asked: &AtomicU64, now: SystemTime) -> bool {
    let asked = asked.load(Ordering::Relaxed);
    asked == u64::MAX
        || (asked > 0 && unix_secs(now).saturating_sub(asked) <= PROTOBUF_WANTED_FOR.as_secs())
}

/// How the last sweep ended.
#[derive(Debug, Clone)]
pub struct LastSweep {
    /// When it ended.
    pub at: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// `None` on success, else the error.
    pub error: Option<String>,
}

/// Which account number and service each chat of the last snapshot has, and the account's
/// numbers: how the webhook receiver labels events that carry only a chat id, and how it keeps
/// its `phone_number` label to the account's own numbers. Built only when the receiver is on.
#[derive(Debug, Default)]
pub struct ChatDirectory {
    chats: HashMap<Box<str>, (Arc<str>, Arc<str>)>,
    numbers: HashSet<Arc<str>>,
    pairs: Vec<(Arc<str>, Arc<str>)>,
}

impl ChatDirectory {
    /// The directory of a snapshot: its chats, its numbers and the lines
    /// `GET /v3/phone_numbers` listed.
    pub fn from_snapshot(s: &Snapshot) -> Self {
        let chats = s
            .chats
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    (
                        s.labels.value(c.phone_number).clone(),
                        s.labels.value(c.service).clone(),
                    ),
                )
            })
            .collect();
        let mut numbers: HashSet<Arc<str>> = s.phone_numbers.iter().cloned().collect();
        numbers.extend(s.line_types.iter().map(|(n, _)| n.clone()));
        numbers.extend(s.reputations.iter().map(|(n, _)| n.clone()));
        numbers.remove("unknown");
        let mut pairs: Vec<(Arc<str>, Arc<str>)> = s
            .chat_counts
            .keys()
            .map(|(n, svc, _, _)| (n.clone(), svc.clone()))
            .filter(|(n, _)| numbers.contains(n))
            .collect();
        pairs.dedup();
        ChatDirectory {
            chats,
            numbers,
            pairs,
        }
    }

    /// A chat's (number, service).
    pub fn chat(&self, id: &str) -> Option<(&str, &str)> {
        self.chats.get(id).map(|(n, s)| (&**n, &**s))
    }

    /// Whether `number` is one of the account's numbers.
    pub fn is_account_number(&self, number: &str) -> bool {
        self.numbers.contains(number)
    }

    /// Every (account number, service) with chats.
    pub fn pairs(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.pairs
    }
}

/// Shared state.
#[derive(Debug)]
pub struct AppState {
    /// Self metrics.
    pub metrics: Arc<SelfMetrics>,
    published: RwLock<Option<Arc<Published>>>,
    last_sweep: Mutex<Option<LastSweep>>,
    poller_alive: AtomicBool,
    poller_failure: Mutex<Option<String>>,
    /// Readiness turns false when the last good sweep is older than this.
    pub ready_max_age: ReadyMaxAge,
    /// How long the last successful sweep took.
    last_good_duration: Mutex<Option<Duration>>,
    /// The metrics path.
    pub telemetry_path: String,
    wants_directory: AtomicBool,
    directory: tokio::sync::watch::Sender<Arc<ChatDirectory>>,
    /// Unix seconds of the last scrape that preferred protobuf (0: never).
    protobuf_asked_at: AtomicU64,
    /// Unix seconds of the last scrape without gzip (0: never).
    plain_asked_at: AtomicU64,
}

impl AppState {
    /// Fresh state: nothing published, poller considered alive.
    pub fn new(
        metrics: Arc<SelfMetrics>,
        ready_max_age: impl Into<ReadyMaxAge>,
        telemetry_path: String,
    ) -> Self {
        AppState {
            last_good_duration: Mutex::new(None),
            metrics,
            published: RwLock::new(None),
            last_sweep: Mutex::new(None),
            poller_alive: AtomicBool::new(true),
            poller_failure: Mutex::new(None),
            ready_max_age: ready_max_age.into(),
            telemetry_path,
            wants_directory: AtomicBool::new(false),
            directory: tokio::sync::watch::Sender::new(Arc::new(ChatDirectory::default())),
            protobuf_asked_at: AtomicU64::new(0),
            plain_asked_at: AtomicU64::new(0),
        }
    }

    /// Records that a scrape preferred protobuf at `now`: sweeps render that form from now on.
    pub fn protobuf_asked(&self, now: SystemTime) {
        // fetch_max: a later ask never moves it back, and `--web.protobuf-always` stays.
        self.protobuf_asked_at
            .fetch_max(unix_secs(now).max(1), Ordering::Relaxed);
    }

    /// `--web.protobuf-always`: every sweep renders the protobuf form, from the first.
    pub fn protobuf_always(&self) {
        self.protobuf_asked_at.store(u64::MAX, Ordering::Relaxed);
    }

    /// Whether a sweep ending at `now` renders the protobuf form: only while scrapes ask for it,
    /// so a format nobody reads takes no memory.
    pub fn wants_protobuf(&self, now: SystemTime) -> bool {
        recently(&self.protobuf_asked_at, now)
    }

    /// Records a scrape without gzip at `now`: sweeps keep the plain bytes from now on.
    pub fn plain_asked(&self, now: SystemTime) {
        self.plain_asked_at
            .store(unix_secs(now).max(1), Ordering::Relaxed);
    }

    /// Whether a sweep ending at `now` keeps the plain bytes of its rendering beside the gzip
    /// form. Prometheus always asks for gzip: the plain bytes (four to five times larger) are
    /// kept only while clients ask for them, and until then a plain answer is inflated from
    /// the gzip form as it is sent.
    pub fn wants_plain(&self, now: SystemTime) -> bool {
        recently(&self.plain_asked_at, now)
    }

    /// Asks the poller to publish a [`ChatDirectory`] with each snapshot (the webhook receiver).
    pub fn want_directory(&self) {
        self.wants_directory.store(true, Ordering::SeqCst);
    }

    /// Whether a [`ChatDirectory`] is wanted.
    pub fn wants_directory(&self) -> bool {
        self.wants_directory.load(Ordering::SeqCst)
    }

    /// Publishes a snapshot's directory.
    pub fn set_directory(&self, d: ChatDirectory) {
        self.directory.send_replace(Arc::new(d));
    }

    /// The last published directory (empty before the first).
    pub fn directory(&self) -> Arc<ChatDirectory> {
        self.directory.borrow().clone()
    }

    /// Notified at each new directory.
    pub fn subscribe_directory(&self) -> tokio::sync::watch::Receiver<Arc<ChatDirectory>> {
        self.directory.subscribe()
    }

    /// The last published snapshot.
    pub fn published(&self) -> Option<Arc<Published>> {
        match self.published.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Publishes a new snapshot atomically.
    pub fn publish(&self, p: Published) {
        let p = Some(Arc::new(p));
        match self.published.write() {
            Ok(mut slot) => *slot = p,
            Err(poisoned) => *poisoned.into_inner() = p,
        }
    }

    /// Drops the published snapshot's cached plain text, keeping its gzip form (plain scrapes
    /// then inflate it). Called once a sweep has every page, before its snapshot is finished
    /// and rendered, so the old and the new text are never in memory at once. Scrapes already sending the text keep their share
    /// of it until they finish.
    pub fn release_plain_text(&self) {
        let mut slot = match self.published.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(p) = slot.as_ref().filter(|p| p.rendered.has_text()) {
            let released = Published {
                rendered: p.rendered.without_text(),
                protobuf: p.protobuf.as_ref().map(Rendered::without_text),
                summary: p.summary.clone(),
                completed_at: p.completed_at,
            };
            *slot = Some(Arc::new(released));
        }
    }

    /// Records how the last sweep ended.
    pub fn set_last_sweep(&self, s: LastSweep) {
        if s.error.is_none() {
            if let Ok(mut good) = self.last_good_duration.lock() {
                *good = Some(s.duration);
            }
        }
        if let Ok(mut slot) = self.last_sweep.lock() {
            *slot = Some(s);
        }
    }

    /// How the last sweep ended.
    pub fn last_sweep(&self) -> Option<LastSweep> {
        self.last_sweep.lock().ok().and_then(|s| s.clone())
    }

    /// Marks the poller dead; `/healthz` then fails so the orchestrator restarts the process.
    pub fn poller_died(&self, reason: String) {
        self.poller_alive.store(false, Ordering::SeqCst);
        if let Ok(mut slot) = self.poller_failure.lock() {
            *slot = Some(reason);
        }
    }

    /// `Ok` while the poller runs, else why it stopped.
    pub fn poller_health(&self) -> Result<(), String> {
        if self.poller_alive.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(self
            .poller_failure
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_else(|| "poller stopped".into()))
    }

    /// The age past which the published snapshot is stale: `--web.ready-max-age`, or by default
    /// 3 × max(poll interval, duration of the last successful sweep).
    pub fn max_age(&self) -> Duration {
        let good = self.last_good_duration.lock().ok().and_then(|d| *d);
        self.ready_max_age.limit(good)
    }

    /// `Ok` when a snapshot no older than [`AppState::max_age`] is published, else why not.
    pub fn readiness(&self, now: SystemTime) -> Result<(), String> {
        let Some(p) = self.published() else {
            return Err("no complete sweep yet".into());
        };
        let age = now.duration_since(p.completed_at).unwrap_or(Duration::ZERO);
        let limit = self.max_age();
        if age > limit {
            return Err(format!(
                "last complete sweep is {}s old (limit {}s)",
                age.as_secs(),
                limit.as_secs()
            ));
        }
        Ok(())
    }
}
