//! The poller: sweeps every chat of the account on a fixed-rate schedule, renders the snapshot
//! and publishes it atomically. A failed sweep is data, not a crash: the last good snapshot
//! stays, `linq_up` drops to 0 and the failure is counted and logged.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::api::client::LinqClient;
use crate::api::decode::decode_chats_page;
use crate::api::error::{ApiError, ErrorKind, SweepError};
use crate::api::models::PhoneNumbersPage;
use crate::api::pagination::CursorWalk;
use crate::config::shard::Sharding;
use crate::config::{ApiKeySource, Secret};
use crate::metrics::exposition::{render_snapshot_cached, Encoding, RenderOptions};
use crate::metrics::snapshot::{Snapshot, SnapshotBuilder};
use crate::sweep::cpu::CpuThread;
use crate::sweep::state::{AppState, ChatDirectory, LastSweep, Published};
use crate::telemetry::{CHATS_ENDPOINT, PHONE_NUMBERS_ENDPOINT};

/// What the poller needs beyond the client.
#[derive(Debug, Clone)]
pub(crate) struct PollerOptions {
    /// Where the key comes from.
    pub key: ApiKeySource,
    /// Numbers to walk (`from`); empty for one unfiltered walk.
    pub from: Vec<String>,
    /// Chats per page.
    pub page_size: u32,
    /// Time between sweep starts.
    pub interval: Duration,
    /// Deadline of one sweep.
    pub sweep_timeout: Duration,
    /// Walks in flight at once.
    pub concurrency: usize,
    /// Fetch `GET /v3/phone_numbers` each sweep for line reputations.
    pub phone_numbers: bool,
    /// Walk every number `GET /v3/phone_numbers` lists.
    pub discover_numbers: bool,
    /// Which of the numbers this replica walks and exports (`--shard`, `--total-shards`).
    pub sharding: Sharding,
    /// Delay before the first sweep.
    pub startup_delay: Duration,
    /// How the snapshot is rendered.
    pub render: RenderOptions,
}

/// One of the account's numbers, as `GET /v3/phone_numbers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// E.164 number.
    pub number: String,
    /// Reputation status, when the API gives one.
    pub reputation: Option<String>,
    /// `iMessage` or `RCS`, when the API gives one.
    pub line_type: Option<String>,
}

/// The render thread's nice value. Rendering is background work (about 0.3 s of CPU per 100k
/// chats, on nobody's critical path), so scrapes served meanwhile go first; decoding stays at
/// normal priority because it paces the sweep. Under wrk's load this took the /metrics p99
/// during back-to-back sweeps from about 1.5x idle to about 1.4x (docs/benchmarks.md).
pub(crate) const RENDER_NICE: i32 = 10;

/// Sweeps and publishes.
#[derive(Debug, Clone)]
pub(crate) struct Poller {
    client: Arc<LinqClient>,
    opts: Arc<PollerOptions>,
    state: Arc<AppState>,
    /// The last list `GET /v3/phone_numbers` returned, kept for when it fails.
    lines: Arc<Mutex<Option<Vec<Line>>>>,
    /// Where decoding and aggregation run.
    cpu: Arc<CpuThread>,
    /// Where rendering runs, at a lower priority than scrapes.
    render_cpu: Arc<CpuThread>,
    /// Whether the "sweeps take longer than the interval" warning was logged (it is, once).
    warned_slow: Arc<AtomicBool>,
    /// Every number of the last sweep's list (`--linq.from` and listed), owned by this shard or
    /// not: the webhook receiver labels events by any of them.
    account: Arc<Mutex<Vec<Arc<str>>>>,
}

impl Poller {
    /// A poller publishing into `state`.
    pub fn new(client: Arc<LinqClient>, opts: PollerOptions, state: Arc<AppState>) -> Self {
        state.metrics.poll_interval.set(opts.interval.as_secs_f64());
        if opts.phone_numbers || opts.discover_numbers {
            state
                .metrics
                .api_retries
                .with_label_values(&[PHONE_NUMBERS_ENDPOINT]);
        }
        Poller {
            client,
            opts: Arc::new(opts),
            state,
            lines: Arc::new(Mutex::new(None)),
            cpu: Arc::new(CpuThread::new()),
            render_cpu: Arc::new(CpuThread::named("linq-render", RENDER_NICE)),
            warned_slow: Arc::new(AtomicBool::new(false)),
            account: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs sweeps until `stop` turns true (or its sender goes away). A sweep in progress at
    /// that moment is abandoned.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let start = Instant::now() + self.opts.startup_delay;
        let mut ticker = tokio::time::interval_at(start, self.opts.interval);
        // A sweep longer than the interval delays the next one: sweeps never overlap or burst.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = self.poll_once() => {}
                _ = stop.changed() => {
                    tracing::info!("shutdown during a sweep; sweep abandoned");
                    return;
                }
            }
        }
    }

    /// One sweep under the deadline, then publish or record the failure.
    pub async fn poll_once(&self) -> Result<(), SweepError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.opts.sweep_timeout, self.sweep()).await {
            Ok(r) => r,
            Err(_) => Err(SweepError::Deadline(self.opts.sweep_timeout)),
        };
        let duration = started.elapsed();
        let m = &self.state.metrics;
        m.poll_duration.set(duration.as_secs_f64());
        match result {
            Ok(snapshot) => {
                let render = self.opts.render;
                let (pages, chats, duplicates) =
                    (snapshot.pages, snapshot.total_chats(), snapshot.duplicates);
                // Rendering 100k chats is CPU work; keep it off the threads serving scrapes.
                let phone_numbers = self.opts.phone_numbers;
                let sharding = self.opts.sharding;
                let account =
                    std::mem::take(&mut *self.account.lock().unwrap_or_else(|p| p.into_inner()));
                let mut snapshot = snapshot;
                let want_directory = self.state.wants_directory();
                let want_protobuf = self.state.wants_protobuf(SystemTime::now());
                let keep_plain = self.state.wants_plain(SystemTime::now());
                let (rendered, protobuf, summary, directory, reputations) = self
                    .render_cpu
                    .run(move || {
                        // Only for the webhook receiver: which number and service each chat is,
                        // and every number of the account (owned by this shard or not), so an
                        // event about another shard's number is still labelled by it.
                        let directory = want_directory.then(|| {
                            // The other shards' numbers join the directory as lines (the
                            // directory's account numbers), and leave the snapshot again below.
                            let listed = snapshot.line_types.len();
                            if sharding.is_sharded() {
                                let known: std::collections::HashSet<Arc<str>> =
                                    snapshot.line_types.iter().map(|(n, _)| n.clone()).collect();
                                let unknown: Arc<str> = Arc::from("unknown");
                                snapshot.line_types.extend(
                                    account
                                        .iter()
                                        .filter(|n| !known.contains(*n))
                                        .map(|n| (n.clone(), unknown.clone())),
                                );
                            }
                            let directory = ChatDirectory::from_snapshot(&snapshot);
                            snapshot.line_types.truncate(listed);
                            directory
                        });
                        // Account-wide series (line info and reputation) only for the numbers
                        // this shard owns: summed across shards, each line counts once.
                        if sharding.is_sharded() {
                            snapshot.line_types.retain(|(n, _)| sharding.owns(n));
                            snapshot.reputations.retain(|(n, _)| sharding.owns(n));
                        }
                        let reputations = phone_numbers.then(|| snapshot.reputations.clone());
                        let rendered =
                            render_snapshot_cached(&snapshot, &render, Encoding::Text, keep_plain);
                        // Only while scrapes ask for it (see AppState::wants_protobuf).
                        let protobuf = want_protobuf.then(|| {
                            render_snapshot_cached(
                                &snapshot,
                                &render,
                                Encoding::Protobuf,
                                keep_plain,
                            )
                        });
                        let summary = snapshot.summary();
                        (rendered, protobuf, summary, directory, reputations)
                    })
                    .await;
                m.series.set(rendered.series as i64);
                m.chat_series_dropped.set(rendered.dropped as i64);
                m.poll_pages.set(pages as i64);
                let now = SystemTime::now();
                if let Some(reputations) = reputations {
                    m.set_reputations(reputations.iter().map(|(n, s)| (&**n, &**s)));
                }
                if let Some(directory) = directory {
                    self.state.set_directory(directory);
                }
                self.state.publish(Published {
                    rendered,
                    protobuf,
                    summary,
                    completed_at: now,
                });
                m.up.set(1);
                m.last_success.set(unix_seconds(now));
                m.polls.with_label_values(&["success"]).inc();
                self.state.set_last_sweep(LastSweep {
                    at: now,
                    duration,
                    error: None,
                });
                tracing::info!(
                    chats,
                    pages,
                    duplicates,
                    duration_ms = duration.as_millis() as u64,
                    "sweep complete"
                );
                self.warn_if_slow(duration);
                Ok(())
            }
            Err(e) => {
                m.up.set(0);
                m.polls.with_label_values(&["failure"]).inc();
                m.poll_failures
                    .with_label_values(&[e.kind().as_str()])
                    .inc();
                let (status, code) = match &e {
                    SweepError::Api(a) => (a.status(), a.code()),
                    _ => (None, None),
                };
                // Before the first good sweep (and always with --once) there is no snapshot to keep.
                let outcome = if self.state.published().is_some() {
                    "keeping the last good snapshot"
                } else {
                    "no snapshot yet"
                };
                tracing::warn!(
                    kind = e.kind().as_str(),
                    status,
                    error_code = code,
                    duration_ms = duration.as_millis() as u64,
                    error = %e,
                    "sweep failed; {outcome}"
                );
                self.state.set_last_sweep(LastSweep {
                    at: SystemTime::now(),
                    duration,
                    error: Some(e.to_string()),
                });
                Err(e)
            }
        }
    }

    /// Logs once (not per sweep) when a successful sweep took longer than the poll interval: the
    /// next one then starts as soon as it ends, so data is as fresh as the account allows, but
    /// the operator should know the flags that shorten a sweep.
    fn warn_if_slow(&self, duration: Duration) {
        if duration <= self.opts.interval || self.warned_slow.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::warn!(
            duration_s = duration.as_secs_f64(),
            interval_s = self.opts.interval.as_secs_f64(),
            "sweeps take longer than --linq.poll-interval: each sweep now starts when the last one ends, \
             and /readyz and LinqExporterDataStale judge freshness by the sweep's duration. To shorten sweeps, \
             walk the account's numbers in parallel with --linq.discover-numbers and --linq.concurrency, \
             or shard the account across exporters with --shard and --total-shards (see docs/deployment.md). Logged once."
        );
    }

    /// Reads the key: the flag's value, or the key file (re-read at every sweep).
    async fn key(&self) -> Result<Secret, SweepError> {
        match &self.opts.key {
            ApiKeySource::Value(k) => Ok(k.clone()),
            ApiKeySource::File(path) => {
                let err = |reason: String| SweepError::KeyFile {
                    path: path.clone(),
                    reason,
                };
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                let key = text.trim();
                if key.is_empty() {
                    return Err(err("the file is empty".into()));
                }
                Ok(Secret::new(key))
            }
        }
    }

    /// The account's numbers: a fresh `GET /v3/phone_numbers`, or the last list when that fails
    /// (the failure is counted and logged, and returned beside the list). `None` when never known.
    async fn lines(&self, key: &Secret) -> (Option<Vec<Line>>, Option<ApiError>) {
        let fetched = match self.client.get(PHONE_NUMBERS_ENDPOINT, key, &[]).await {
            Ok(body) => match serde_json::from_slice::<PhoneNumbersPage<'_>>(&body) {
                Ok(page) => {
                    let mut lines: Vec<Line> = page
                        .phone_numbers
                        .iter()
                        .map(|p| Line {
                            number: p.phone_number.to_string(),
                            reputation: p.reputation.as_ref().map(|r| r.status.to_string()),
                            line_type: p.line_type.as_deref().map(str::to_string),
                        })
                        .collect();
                    lines.sort_by(|a, b| a.number.cmp(&b.number));
                    lines.dedup_by(|a, b| a.number == b.number);
                    Ok(lines)
                }
                Err(e) => {
                    let err = ApiError::Decode {
                        endpoint: PHONE_NUMBERS_ENDPOINT,
                        reason: e.to_string(),
                    };
                    self.state.metrics.api_error(PHONE_NUMBERS_ENDPOINT, &err);
                    Err(err)
                }
            },
            Err(e) => Err(e),
        };
        let mut known = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let failure = match fetched {
            Ok(lines) => {
                *known = Some(lines);
                None
            }
            Err(e) => {
                tracing::warn!(
                    kind = e.kind().as_str(),
                    status = e.status(),
                    error_code = e.code(),
                    error = %e,
                    "listing phone numbers failed; using the last known list"
                );
                Some(e)
            }
        };
        (known.clone(), failure)
    }

    /// Walks every chat and builds a complete snapshot; any failed page fails the sweep.
    pub async fn sweep(&self) -> Result<Snapshot, SweepError> {
        let key = self.key().await?;
        let (lines, lines_failure) = if self.opts.phone_numbers || self.opts.discover_numbers {
            self.lines(&key).await
        } else {
            (None, None)
        };
        let sharding = self.opts.sharding;
        let mut numbers = self.opts.from.clone();
        if self.opts.discover_numbers {
            for line in lines.iter().flatten() {
                if !numbers.contains(&line.number) {
                    numbers.push(line.number.clone());
                }
            }
        }
        if sharding.is_sharded() {
            // The whole list is needed to split it: discovery that never listed the account
            // fails the sweep rather than walk nothing (or everything) and look healthy.
            if self.opts.discover_numbers && lines.is_none() {
                if let Some(e) = lines_failure {
                    return Err(SweepError::Api(e));
                }
            }
            *self.account.lock().unwrap_or_else(|p| p.into_inner()) =
                numbers.iter().map(|n| Arc::from(n.as_str())).collect();
            numbers.retain(|n| sharding.owns(n));
        }
        let walks: Arc<Vec<Option<String>>> = Arc::new(if sharding.is_sharded() {
            // A shard never walks the whole account, even when it owns no number.
            numbers.iter().cloned().map(Some).collect()
        } else if numbers.is_empty() {
            vec![None]
        } else {
            numbers.iter().cloned().map(Some).collect()
        });
        let expected = self.state.published().map_or(0, |p| p.summary.total_chats);
        let builder = Arc::new(Mutex::new(
            SnapshotBuilder::new(self.opts.render.display_name).with_capacity(expected),
        ));
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = JoinSet::new();
        for _ in 0..self.opts.concurrency.min(walks.len()) {
            let (client, key, walks, builder, next, page_size, cpu) = (
                self.client.clone(),
                key.clone(),
                walks.clone(),
                builder.clone(),
                next.clone(),
                self.opts.page_size,
                self.cpu.clone(),
            );
            let metrics = self.state.metrics.clone();
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(from) = walks.get(i) else {
                        return Ok(());
                    };
                    let walk = Walk {
                        client: &client,
                        key: &key,
                        index: i,
                        from: from.as_deref(),
                        page_size,
                        builder: &builder,
                        cpu: &cpu,
                    };
                    walk.run().await.inspect_err(|e| {
                        if let SweepError::Pagination { .. } = e {
                            metrics.count_error(
                                CHATS_ENDPOINT,
                                ErrorKind::Pagination,
                                "",
                                "",
                                e.to_string(),
                            );
                        }
                    })?;
                }
            });
        }
        // The first failure ends the sweep; dropping the set aborts the other walks.
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        let builder = match Arc::try_unwrap(builder) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(shared) => std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner())),
        };
        // Every page is in: the sweep will succeed. The published text goes now, before the
        // snapshot is finished and rendered, so that the old and the new text (tens of MB each
        // at 100k chats) are never in memory together. Until the new snapshot is published,
        // plain scrapes inflate the old gzip form; gzip scrapes (Prometheus) are served as before.
        self.state.release_plain_text();
        let walked = numbers.clone();
        let mut snapshot = self.cpu.run(move || builder.finish(&walked)).await;
        if self.opts.phone_numbers {
            snapshot.reputations = lines
                .iter()
                .flatten()
                .filter_map(|l| {
                    l.reputation
                        .as_deref()
                        .map(|r| (Arc::from(l.number.as_str()), Arc::from(r)))
                })
                .collect();
            snapshot.line_types = lines
                .iter()
                .flatten()
                .map(|l| {
                    (
                        Arc::from(l.number.as_str()),
                        Arc::from(l.line_type.as_deref().unwrap_or("unknown")),
                    )
                })
                .collect();
        }
        Ok(snapshot)
    }
}

/// One cursor walk through `GET /v3/chats`.
///
/// The walk is pipelined: as soon as a page arrives, its `next_cursor` is read from the end of
/// the body (where the API puts it) and the next page is requested while this one is decoded
/// and aggregated on the sweep's CPU thread. So a sweep costs about the HTTP transfer, not transfer
/// plus decoding.
///
/// The prefetch never sends a request that the sequential walk (decode, then follow the decoded
/// cursor) would not send: it is made only when the body itself says the walk goes on (see
/// [`prefetch_cursor`]: a non-empty `chats` array first, a new cursor last), and it is started as
/// soon as the page arrives, before decoding, so which requests are made depends on the bodies
/// alone, never on timing. Only a page that then fails to decode (which fails the sweep) can
/// leave a prefetched answer unused: its errors are not counted, and the answer is dropped.
struct Walk<'a> {
    client: &'a LinqClient,
    key: &'a Secret,
    index: usize,
    from: Option<&'a str>,
    page_size: u32,
    builder: &'a Arc<Mutex<SnapshotBuilder>>,
    cpu: &'a CpuThread,
}

/// What decoding one page yields for the walk.
struct PageOutcome {
    next_cursor: Option<String>,
    chats: usize,
}

impl Walk<'_> {
    fn query<'q>(&'q self, limit: &'q str, cursor: Option<&'q str>) -> Vec<(&'q str, &'q str)> {
        let mut query = vec![("limit", limit)];
        if let Some(from) = self.from {
            query.push(("from", from));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c));
        }
        query
    }

    async fn fetch(&self, cursor: Option<&str>) -> Result<bytes::Bytes, ApiError> {
        let limit = self.page_size.to_string();
        let query = self.query(&limit, cursor);
        self.client.get(CHATS_ENDPOINT, self.key, &query).await
    }

    /// A speculative fetch: its failed attempts are returned, not counted.
    async fn prefetch(&self, cursor: &str) -> (Result<bytes::Bytes, ApiError>, Vec<ApiError>) {
        let limit = self.page_size.to_string();
        let query = self.query(&limit, Some(cursor));
        self.client
            .get_deferred(CHATS_ENDPOINT, self.key, &query)
            .await
    }

    /// Decodes a page into the builder, on the sweep's CPU thread.
    fn decode(
        &self,
        body: bytes::Bytes,
    ) -> impl std::future::Future<Output = Result<PageOutcome, String>> + Send + 'static {
        let (builder, index, from) = (
            self.builder.clone(),
            self.index,
            self.from.map(str::to_string),
        );
        self.cpu.run(move || {
            let page = decode_chats_page(&body).map_err(|e| e.to_string())?;
            let mut b = builder.lock().unwrap_or_else(|p| p.into_inner());
            b.count_page();
            for chat in &page.chats {
                b.add_chat(index, from.as_deref(), chat);
            }
            Ok(PageOutcome {
                chats: page.chats.len(),
                next_cursor: page.next_cursor,
            })
        })
    }

    async fn run(&self) -> Result<(), SweepError> {
        let mut cursor = CursorWalk::new();
        let mut body = self.fetch(None).await?;
        loop {
            let guess = prefetch_cursor(&body).filter(|c| !cursor.has_seen(c));
            let mut work = std::pin::pin!(self.decode(body));
            // Without a guess there is nothing to prefetch: that branch never completes.
            let mut prefetch = std::pin::pin!(async {
                match &guess {
                    Some(c) => self.prefetch(c).await,
                    None => std::future::pending().await,
                }
            });
            let mut prefetched = None;
            let decoded = loop {
                // Biased towards the prefetch: it is always polled (so sent) first, whatever
                // the decode's timing.
                tokio::select! {
                    biased;
                    b = &mut prefetch, if prefetched.is_none() => prefetched = Some(b),
                    r = &mut work => break r,
                }
            };
            let page = match decoded {
                Ok(page) => page,
                Err(reason) => {
                    // An unused prefetch's answer and errors are dropped with it.
                    let err = ApiError::Decode {
                        endpoint: CHATS_ENDPOINT,
                        reason,
                    };
                    self.client.metrics().api_error(CHATS_ENDPOINT, &err);
                    return Err(err.into());
                }
            };
            cursor
                .advance(page.next_cursor, page.chats)
                .map_err(|r| SweepError::Pagination {
                    walk: self.from.unwrap_or("all").to_string(),
                    cursor: r.cursor,
                    pages: r.pages,
                })?;
            let Some(next) = cursor.cursor() else {
                return Ok(());
            };
            body = if guess.as_deref() == Some(next) {
                let (result, errors) = match prefetched {
                    Some(b) => b,
                    None => prefetch.await,
                };
                // The walk needs this answer: its failed attempts count now.
                self.client.count_errors(CHATS_ENDPOINT, &errors);
                result?
            } else {
                // No guess (or, for a page that decoded, never: a different one): fetch the
                // decoded cursor.
                self.fetch(Some(next)).await?
            };
        }
    }
}

/// The cursor to prefetch with, when the raw body says the walk goes on: its `chats` array,
/// written first, has at least one chat, and its `next_cursor`, written last, is a plain string
/// (see [`peek_next_cursor`]). The sequential walk follows exactly that cursor after such a page
/// (unless it repeats one, which the caller checks), and anything else (an empty page, a null
/// cursor, another layout) gives `None`: no prefetch.
pub(crate) fn prefetch_cursor(body: &[u8]) -> Option<String> {
    let rest = body
        .trim_ascii_start()
        .strip_prefix(b"{")?
        .trim_ascii_start();
    let rest = rest.strip_prefix(b"\"chats\"")?.trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"[")?.trim_ascii_start();
    if !rest.starts_with(b"{") {
        return None;
    }
    peek_next_cursor(body)
}

/// The `next_cursor` of a page, read from the end of the body without decoding it, when the
/// body ends the way the API writes it: `..."next_cursor": "<cursor>"}` (or `null`, which gives
/// `None`). Anything else (escapes in the cursor, another layout) gives `None` too. Only a
/// guess to prefetch with: the decoded page decides.
pub fn peek_next_cursor(body: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"next_cursor\"";
    let tail = &body[body.len().saturating_sub(1024)..];
    let at = tail.windows(KEY.len()).rposition(|w| w == KEY)?;
    let rest = tail[at + KEY.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] != b'"' || rest[end + 1..].trim_ascii() != b"}" || end == 0 {
        return None;
    }
    String::from_utf8(rest[..end].to_vec()).ok()
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::{peek_next_cursor, prefetch_cursor};

    #[test]
    fn prefetches_only_when_the_page_has_chats_and_a_cursor() {
        let guess = |s: &str| prefetch_cursor(s.as_bytes());
        assert_eq!(
            guess(r#"{"chats":[{"id":"a"}],"next_cursor":"n1"}"#).as_deref(),
            Some("n1")
        );
        assert_eq!(
            guess("{ \"chats\" :\n [ {\"id\":\"a\"} ], \"next_cursor\": \"n2\" }").as_deref(),
            Some("n2")
        );
        for body in [
            // empty page with a cursor: the sequential walk ends there
            r#"{"chats":[],"next_cursor":"z"}"#,
            r#"{"chats": [ ],"next_cursor":"z"}"#,
            // last page
            r#"{"chats":[{"id":"a"}],"next_cursor":null}"#,
            r#"{"chats":[{"id":"a"}]}"#,
            // chats not first, or not an array of objects
            r#"{"next_cursor":"x","chats":[{"id":"a"}]}"#,
            r#"{"meta":{},"chats":[{"id":"a"}],"next_cursor":"z"}"#,
            r#"{"chats":null,"next_cursor":"z"}"#,
            r#"{"chats":[1],"next_cursor":"z"}"#,
            "",
        ] {
            assert_eq!(guess(body), None, "{body}");
        }
    }

    #[test]
    fn peeks_the_cursor_the_api_writes_last() {
        let peek = |s: &str| peek_next_cursor(s.as_bytes());
        assert_eq!(
            peek(r#"{"chats":[{"id":"a"}],"next_cursor":"b3BhcXVl"}"#).as_deref(),
            Some("b3BhcXVl")
        );
        assert_eq!(
            peek("{\"chats\": [],\n  \"next_cursor\" : \"x-y_z\" }\n").as_deref(),
            Some("x-y_z")
        );
    }

    #[test]
    fn anything_unusual_is_no_guess() {
        let peek = |s: &str| peek_next_cursor(s.as_bytes());
        for body in [
            r#"{"chats":[],"next_cursor":null}"#,
            r#"{"chats":[],"next_cursor":""}"#,
            // escapes: the decoder knows what they mean, the scan does not guess
            r#"{"chats":[],"next_cursor":"a\/b"}"#,
            r#"{"chats":[],"next_cursor":"a\"}"#,
            // not the last member of the top-level object
            r#"{"next_cursor":"a","chats":[]}"#,
            r#"{"chats":[],"meta":{"next_cursor":"a"}}"#,
            r#"{"chats":[{"note":"\"next_cursor\":\"a\""}]}"#,
            // cut short, or no cursor at all
            r#"{"chats":[],"next_cursor":"abc"#,
            r#"{"chats":[]}"#,
            "",
        ] {
            assert_eq!(peek(body), None, "{body}");
        }
    }
}
