//! The exporter's own metrics, the lowest layer (every other one counts into it): sweep results, API requests, errors, retries, latency, build info
//! and process metrics. They live in one explicit [`prometheus::Registry`] created in `run` and are
//! rendered at every scrape, so they stay live between sweeps.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::format::histogram::HistogramVec as NativeHistogramVec;
use crate::format::{families, Format};

/// Endpoint label of `GET /v3/chats`.
pub const CHATS_ENDPOINT: &str = "/v3/chats";
/// Endpoint label of `GET /v3/phone_numbers`.
pub const PHONE_NUMBERS_ENDPOINT: &str = "/v3/phone_numbers";

/// The `kind` label of `linq_api_errors_total` and `linq_poll_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The API answered with a non-success HTTP status.
    Http,
    /// A request, or a whole sweep, ran past its deadline.
    Timeout,
    /// Connecting failed, or the connection dropped mid-response.
    Connect,
    /// The body was not the expected JSON shape.
    Decode,
    /// The cursor chain repeated itself.
    Pagination,
    /// The API key file could not be read or was empty.
    KeyFile,
    /// A response body exceeded `--linq.max-response-size`.
    TooLarge,
}

impl ErrorKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Http => "http",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Decode => "decode",
            ErrorKind::Pagination => "pagination",
            ErrorKind::KeyFile => "key_file",
            ErrorKind::TooLarge => "too_large",
        }
    }

    /// Every kind, for pre-initialising counters.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Http,
        ErrorKind::Timeout,
        ErrorKind::Connect,
        ErrorKind::Decode,
        ErrorKind::Pagination,
        ErrorKind::KeyFile,
        ErrorKind::TooLarge,
    ];
}

/// A gauge `{key, status}` that holds one current status per key, 1 for it: setting a new status
/// removes the key's old series (line reputation, line status).
#[derive(Debug)]
pub struct StatusGauge {
    vec: IntGaugeVec,
    now: Mutex<std::collections::BTreeMap<String, String>>,
}

impl StatusGauge {
    /// Wraps a two-label gauge vec (key, status).
    pub fn new(vec: IntGaugeVec) -> Self {
        StatusGauge {
            vec,
            now: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets `key`'s status.
    pub fn set(&self, key: &str, status: &str) {
        let mut now = self.current();
        if let Some(old) = now.get(key).filter(|old| *old != status) {
            let _ = self.vec.remove_label_values(&[key, old]);
        }
        self.vec.with_label_values(&[key, status]).set(1);
        now.insert(key.to_string(), status.to_string());
    }

    /// Replaces every key's status: keys not in `all` lose their series.
    pub fn replace_all<'a>(&self, all: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut now = self.current();
        let next: std::collections::BTreeMap<String, String> = all
            .into_iter()
            .map(|(k, s)| (k.to_string(), s.to_string()))
            .collect();
        for (key, status) in now.iter() {
            if next.get(key) != Some(status) {
                let _ = self.vec.remove_label_values(&[key, status]);
            }
        }
        for (key, status) in &next {
            self.vec.with_label_values(&[key, status]).set(1);
        }
        *now = next;
    }
}

/// A failed request as the error counters label it (implemented by the API's typed error).
pub trait CountedError: std::fmt::Display {
    /// The `kind` label.
    fn kind(&self) -> ErrorKind;
    /// The HTTP status, when there was a response.
    fn status(&self) -> Option<u16>;
    /// Linq's error code, when the body carried one.
    fn code(&self) -> Option<i64>;
}

/// Why a connection was closed by the server (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No complete request headers within the timeout (or idle past it between requests).
    HeaderTimeout,
    /// The TLS handshake failed or ran past the timeout.
    TlsHandshake,
    /// Closed to make room for a new connection at `--web.max-connections`.
    Evicted,
    /// Refused at `--web.max-connections`: every connection was serving a request.
    Refused,
}

impl CloseReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::TlsHandshake => "tls_handshake",
            CloseReason::Evicted => "evicted",
            CloseReason::Refused => "refused",
        }
    }

    /// Every reason, for pre-initialising the counter.
    pub const ALL: [CloseReason; 4] = [
        CloseReason::HeaderTimeout,
        CloseReason::TlsHandshake,
        CloseReason::Evicted,
        CloseReason::Refused,
    ];
}

/// One recent API error, for the status page.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentError {
    /// Unix time.
    pub at: i64,
    /// Endpoint label.
    pub endpoint: &'static str,
    /// Kind label.
    pub kind: ErrorKind,
    /// The error, as logged.
    pub message: String,
}

/// How many recent errors are kept for the status page.
const RECENT_ERRORS: usize = 20;

/// The exporter's own metrics.
#[derive(Debug)]
pub struct SelfMetrics {
    registry: Registry,
    /// `linq_up`.
    pub up: IntGauge,
    /// `linq_poll_last_success_timestamp_seconds`.
    pub last_success: Gauge,
    /// `linq_poll_duration_seconds`.
    pub poll_duration: Gauge,
    /// `linq_polls_total{result}`.
    pub polls: IntCounterVec,
    /// `linq_poll_failures_total{kind}`.
    pub poll_failures: IntCounterVec,
    /// `linq_poll_pages`.
    pub poll_pages: IntGauge,
    /// `linq_poll_interval_seconds`.
    pub poll_interval: Gauge,
    /// `linq_api_requests_total{endpoint,status_code}`.
    pub api_requests: IntCounterVec,
    /// `linq_api_errors_total{endpoint,kind,status_code,error_code}`.
    pub api_errors: IntCounterVec,
    /// `linq_api_retries_total{endpoint}`.
    pub api_retries: IntCounterVec,
    /// `linq_api_request_duration_seconds{endpoint}`.
    pub api_duration: HistogramVec,
    /// `linq_exporter_shard_info{shard,total_shards}`.
    shard_info: IntGaugeVec,
    /// `linq_exporter_series`.
    pub series: IntGauge,
    /// `linq_exporter_chat_series_dropped`.
    pub chat_series_dropped: IntGauge,
    /// `linq_exporter_web_config_reloads_total{result}`.
    pub web_config_reloads: IntCounterVec,
    /// `linq_phone_number_reputation{phone_number,status}`: live, set by each sweep and at once by
    /// a `phone_number.status_updated` webhook.
    reputation: StatusGauge,
    /// `linq_exporter_http_connections{listener}`.
    pub http_connections: IntGaugeVec,
    /// `linq_exporter_http_connections_closed_total{listener,reason}`.
    pub http_connections_closed: IntCounterVec,
    /// `linq_exporter_http_accept_errors_total{listener}`.
    pub http_accept_errors: IntCounterVec,
    recent_errors: Mutex<VecDeque<RecentError>>,
    /// Histograms with native buckets and exemplars (the webhook latencies), rendered after the
    /// registry's families.
    histograms: Mutex<Vec<Arc<NativeHistogramVec>>>,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: T,
) -> Result<T, prometheus::Error> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

impl SelfMetrics {
    /// Creates and registers every self metric (and the process collector) in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let up = register(
            r,
            IntGauge::new(
                "linq_up",
                "1 when the last sweep of the Linq API completed, else 0.",
            )?,
        )?;
        let last_success = register(
            r,
            Gauge::new(
                "linq_poll_last_success_timestamp_seconds",
                "Unix time of the last complete sweep (0 before the first).",
            )?,
        )?;
        let poll_duration = register(
            r,
            Gauge::new(
                "linq_poll_duration_seconds",
                "Duration of the last sweep, successful or not.",
            )?,
        )?;
        let polls = register(
            r,
            IntCounterVec::new(
                Opts::new("linq_polls_total", "Sweeps of the Linq API by result."),
                &["result"],
            )?,
        )?;
        let poll_failures = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "linq_poll_failures_total",
                    "Failed sweeps by the kind of error that failed them.",
                ),
                &["kind"],
            )?,
        )?;
        let poll_pages = register(
            r,
            IntGauge::new(
                "linq_poll_pages",
                "Pages fetched by the last complete sweep.",
            )?,
        )?;
        let poll_interval = register(
            r,
            Gauge::new(
                "linq_poll_interval_seconds",
                "The configured time between sweeps (--linq.poll-interval), for staleness alerts.",
            )?,
        )?;
        let api_requests = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "linq_api_requests_total",
                    "HTTP responses received from the Linq API.",
                ),
                &["endpoint", "status_code"],
            )?,
        )?;
        let api_errors = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "linq_api_errors_total",
                    "Failed Linq API request attempts by kind (http, timeout, connect, decode, pagination), HTTP status and Linq error code.",
                ),
                &["endpoint", "kind", "status_code", "error_code"],
            )?,
        )?;
        let api_retries = register(
            r,
            IntCounterVec::new(
                Opts::new("linq_api_retries_total", "Linq API requests retried."),
                &["endpoint"],
            )?,
        )?;
        let api_duration = register(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "linq_api_request_duration_seconds",
                    "Latency of Linq API requests, to the last byte of the body.",
                )
                .buckets(vec![
                    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                &["endpoint"],
            )?,
        )?;
        let build_info = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "linq_exporter_build_info",
                    "Version and git revision of the exporter; always 1.",
                ),
                &["version", "revision"],
            )?,
        )?;
        build_info
            .with_label_values(&[crate::VERSION, crate::REVISION])
            .set(1);
        let shard_info = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "linq_exporter_shard_info",
                    "Which shard of the account's numbers this replica walks (--shard of --total-shards); always 1.",
                ),
                &["shard", "total_shards"],
            )?,
        )?;
        shard_info.with_label_values(&["0", "1"]).set(1);
        let series = register(
            r,
            IntGauge::new(
                "linq_exporter_series",
                "Series produced by the last render of the chat snapshot.",
            )?,
        )?;
        let chat_series_dropped = register(
            r,
            IntGauge::new(
                "linq_exporter_chat_series_dropped",
                "Chats left without per-chat series by --linq.max-chat-series.",
            )?,
        )?;
        let web_config_reloads = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "linq_exporter_web_config_reloads_total",
                    "Reloads of --web.config.file after it (or a certificate it names) changed, by result.",
                ),
                &["result"],
            )?,
        )?;
        let reputation = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "linq_phone_number_reputation",
                    "1 for the current reputation status of each of the account's numbers (GET /v3/phone_numbers, beta; updated at once by phone_number.status_updated webhooks).",
                ),
                &["phone_number", "status"],
            )?,
        )?;
        let http_connections = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "linq_exporter_http_connections",
                    "Connections open on each HTTP listener (web, probe, webhook).",
                ),
                &["listener"],
            )?,
        )?;
        let http_connections_closed = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "linq_exporter_http_connections_closed_total",
                    "Connections the server closed at a bound: header_timeout (--web.read-header-timeout), tls_handshake, evicted or refused (--web.max-connections).",
                ),
                &["listener", "reason"],
            )?,
        )?;
        let http_accept_errors = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "linq_exporter_http_accept_errors_total",
                    "Failed accepts on each HTTP listener (out of file descriptors, say).",
                ),
                &["listener"],
            )?,
        )?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(process::Process::new()))?;

        for result in ["success", "failure"] {
            polls.with_label_values(&[result]);
        }
        for kind in ErrorKind::ALL {
            poll_failures.with_label_values(&[kind.as_str()]);
        }
        api_retries.with_label_values(&[CHATS_ENDPOINT]);
        api_duration.with_label_values(&[CHATS_ENDPOINT]);
        Ok(SelfMetrics {
            registry,
            up,
            last_success,
            poll_duration,
            polls,
            poll_failures,
            poll_pages,
            poll_interval,
            api_requests,
            api_errors,
            api_retries,
            api_duration,
            shard_info,
            series,
            chat_series_dropped,
            web_config_reloads,
            reputation: StatusGauge::new(reputation),
            http_connections,
            http_connections_closed,
            http_accept_errors,
            recent_errors: Mutex::new(VecDeque::with_capacity(RECENT_ERRORS)),
            histograms: Mutex::new(Vec::new()),
        })
    }

    /// Sets `linq_exporter_shard_info` to this replica's shard (0 of 1 until set).
    pub fn set_shard(&self, shard: u32, total: u32) {
        self.shard_info.reset();
        self.shard_info
            .with_label_values(&[&shard.to_string(), &total.to_string()])
            .set(1);
    }

    /// Replaces every line's reputation (a sweep's `GET /v3/phone_numbers`).
    pub fn set_reputations<'a>(&self, lines: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.reputation.replace_all(lines);
    }

    /// Sets one line's reputation (a `phone_number.status_updated` webhook).
    pub fn set_reputation(&self, number: &str, status: &str) {
        self.reputation.set(number, status);
    }

    /// Registers another collector (the webhook receiver's metrics) in this registry.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// Starts a listener's connection series at zero.
    pub fn init_connection_metrics(&self, listener: &str) {
        self.http_connections.with_label_values(&[listener]).set(0);
        self.http_accept_errors.with_label_values(&[listener]);
        for reason in CloseReason::ALL {
            self.http_connections_closed
                .with_label_values(&[listener, reason.as_str()]);
        }
    }

    /// Counts a connection closed at a bound.
    pub fn connection_closed(&self, listener: &str, reason: CloseReason) {
        self.http_connections_closed
            .with_label_values(&[listener, reason.as_str()])
            .inc();
    }

    /// Counts a failed accept.
    pub fn accept_error(&self, listener: &str) {
        self.http_accept_errors.with_label_values(&[listener]).inc();
    }

    /// Sets the open connections of a listener.
    pub fn set_open_connections(&self, listener: &str, open: usize) {
        self.http_connections
            .with_label_values(&[listener])
            .set(open as i64);
    }

    /// Counts a failed request attempt.
    pub fn api_error(&self, endpoint: &'static str, err: &impl CountedError) {
        let status = err.status().map(|s| s.to_string()).unwrap_or_default();
        let code = err.code().map(|c| c.to_string()).unwrap_or_default();
        self.count_error(endpoint, err.kind(), &status, &code, err.to_string());
    }

    /// Counts a failed request attempt given its labels.
    pub fn count_error(
        &self,
        endpoint: &'static str,
        kind: ErrorKind,
        status: &str,
        code: &str,
        message: String,
    ) {
        self.api_errors
            .with_label_values(&[endpoint, kind.as_str(), status, code])
            .inc();
        if let Ok(mut recent) = self.recent_errors.lock() {
            if recent.len() == RECENT_ERRORS {
                recent.pop_front();
            }
            recent.push_back(RecentError {
                at: chrono::Utc::now().timestamp(),
                endpoint,
                kind,
                message,
            });
        }
    }

    /// The most recent API errors, newest last.
    pub fn recent_errors(&self) -> Vec<RecentError> {
        self.recent_errors
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The registry's families as gathered now (the status page reads the receiver's from them).
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// Registers a histogram with native buckets and exemplars (rendered after the registry).
    pub fn register_histogram(&self, h: Arc<NativeHistogramVec>) {
        self.histograms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(h);
    }

    /// Renders every self metric in `format`, appending to `out`. This is the end of every
    /// exposition, so OpenMetrics gets its `# EOF` here.
    pub fn render(&self, format: Format, out: &mut Vec<u8>) {
        let families = self.registry.gather();
        match format {
            Format::Text => {
                if let Err(e) = TextEncoder::new().encode(&families, out) {
                    tracing::error!(error = %e, "encoding self metrics failed");
                }
            }
            Format::OpenMetrics { .. } => families::openmetrics(&families, out),
            Format::Protobuf => families::protobuf(&families, out),
        }
        let histograms = self
            .histograms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for h in histograms {
            h.encode(format, out);
        }
        if format.is_openmetrics() {
            out.extend_from_slice(b"# EOF\n");
        }
    }
}

/// The process metrics: the `prometheus` crate's collector, with `process_cpu_seconds_total`
/// read in fractions of a second (the crate divides clock ticks as integers, so the counter
/// moved in whole seconds and `rate()` in 1 s steps).
#[cfg(target_os = "linux")]
mod process {
    use prometheus::core::{Collector, Desc};
    use prometheus::process_collector::ProcessCollector;
    use prometheus::proto::MetricFamily;

    /// The process collector with a precise CPU counter.
    #[derive(Debug)]
    pub struct Process {
        inner: ProcessCollector,
        ticks_per_second: f64,
    }

    impl Process {
        pub fn new() -> Self {
            Process {
                inner: ProcessCollector::for_self(),
                ticks_per_second: rustix::param::clock_ticks_per_second().max(1) as f64,
            }
        }
    }

    /// User plus system CPU time, in clock ticks, from the text of `/proc/self/stat`.
    pub(super) fn cpu_ticks(stat: &str) -> Option<u64> {
        // The command name (field 2) is in parentheses and may hold spaces: count from after
        // its closing parenthesis, where field 3 (state) starts; utime and stime are 14 and 15.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_ascii_whitespace().skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some(utime + stime)
    }

    impl Collector for Process {
        fn desc(&self) -> Vec<&Desc> {
            self.inner.desc()
        }

        fn collect(&self) -> Vec<MetricFamily> {
            let mut families = self.inner.collect();
            let seconds = std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| cpu_ticks(&s))
                .map(|t| t as f64 / self.ticks_per_second);
            if let Some(seconds) = seconds {
                for mf in &mut families {
                    if mf.name() == "process_cpu_seconds_total" {
                        for m in mf.mut_metric() {
                            let mut c = prometheus::proto::Counter::default();
                            c.set_value(seconds);
                            m.set_counter(c);
                        }
                    }
                }
            }
            families
        }
    }
}
