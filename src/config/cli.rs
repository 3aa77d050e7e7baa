//! Command-line flags (clap derive). Every flag has an environment variable; values that need
//! checking are parsed into validated types here, so a bad flag fails start-up naming itself.

use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::api::client::Secret;
use crate::config::values::{
    parse_duration, ByteSize, ListenAddress, LogFormat, LogLevel, PageSize, TelemetryPath,
};
use crate::metrics::snapshot::ChatMetrics;

/// Prometheus exporter for the health of Linq (iMessage, SMS, RCS) business conversations.
#[derive(Debug, Parser)]
#[command(name = "linq-exporter", version = VERSION_LINE, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// Where the secrets came from, filled by [`Cli::parse_with_origins`] (empty when the flags
    /// were parsed some other way, as in unit tests: then the fields given are named).
    #[arg(skip)]
    pub origins: Origins,

    /// Optional subcommand; without one the exporter runs.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Base URL of the Linq partner API (paths add /v3/...).
    #[arg(
        long = "linq.base-url",
        env = "LINQ_API_V3_BASE_URL",
        default_value = "https://api.linqapp.com/api/partner"
    )]
    pub base_url: String,

    /// Linq API key. Prefer --linq.api-key-file in production.
    #[arg(
        long = "linq.api-key",
        env = "LINQ_API_V3_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// File holding the Linq API key; re-read at every sweep so a rotated secret needs no restart.
    #[arg(long = "linq.api-key-file", env = "LINQ_API_V3_API_KEY_FILE")]
    pub api_key_file: Option<std::path::PathBuf>,

    /// Time between sweeps (e.g. 30s, 5m).
    #[arg(long = "linq.poll-interval", env = "LINQ_EXPORTER_POLL_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Phone number (E.164) to walk with the `from` filter; repeatable. Without it, one unfiltered walk.
    #[arg(long = "linq.from", env = "LINQ_EXPORTER_FROM", value_delimiter = ',')]
    pub from: Vec<String>,

    /// Chats per page (1..=100).
    #[arg(
        long = "linq.page-size",
        env = "LINQ_EXPORTER_PAGE_SIZE",
        default_value = "100"
    )]
    pub page_size: PageSize,

    /// Bound on every API request, from send to the last byte of the body.
    #[arg(long = "linq.request-timeout", env = "LINQ_EXPORTER_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Bound on establishing a connection to the API.
    #[arg(long = "linq.connect-timeout", env = "LINQ_EXPORTER_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Deadline for a whole sweep, whatever the poll interval: a sweep longer than the interval
    /// completes and publishes, and the next one starts when it ends.
    #[arg(long = "linq.sweep-timeout", env = "LINQ_EXPORTER_SWEEP_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub sweep_timeout: Duration,

    /// Bound on every API response body (e.g. 16MiB, 512KiB or plain bytes); past it the request fails with kind too_large.
    #[arg(
        long = "linq.max-response-size",
        env = "LINQ_EXPORTER_MAX_RESPONSE_SIZE",
        default_value = "16MiB"
    )]
    pub max_response_size: ByteSize,

    /// Retries per request for 408, 409, 429, 5xx, timeouts and connection errors.
    #[arg(
        long = "linq.max-retries",
        env = "LINQ_EXPORTER_MAX_RETRIES",
        default_value_t = 3
    )]
    pub max_retries: u32,

    /// Base of the exponential retry backoff (full jitter).
    #[arg(long = "linq.retry-backoff", env = "LINQ_EXPORTER_RETRY_BACKOFF", default_value = "500ms", value_parser = parse_duration)]
    pub retry_backoff: Duration,

    /// Cap on a single retry wait, including a server's Retry-After.
    #[arg(long = "linq.retry-max-backoff", env = "LINQ_EXPORTER_RETRY_MAX_BACKOFF", default_value = "30s", value_parser = parse_duration)]
    pub retry_max_backoff: Duration,

    /// Walks (one per --linq.from number) in flight at once.
    #[arg(
        long = "linq.concurrency",
        env = "LINQ_EXPORTER_CONCURRENCY",
        default_value_t = 4
    )]
    pub concurrency: usize,

    /// Client-side limit on API requests per second across all walks (default: off).
    #[arg(
        long = "linq.max-requests-per-second",
        env = "LINQ_EXPORTER_MAX_REQUESTS_PER_SECOND"
    )]
    pub max_requests_per_second: Option<f64>,

    /// Delay the first sweep by a random time up to this, so a fleet restarted together spreads out.
    #[arg(long = "linq.startup-jitter", env = "LINQ_EXPORTER_STARTUP_JITTER", default_value = "0s", value_parser = parse_duration)]
    pub startup_jitter: Duration,

    /// Fetch GET /v3/phone_numbers once per sweep for line reputation metrics (beta endpoint).
    #[arg(long = "linq.phone-numbers", env = "LINQ_EXPORTER_PHONE_NUMBERS", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub phone_numbers: bool,

    /// Walk every number GET /v3/phone_numbers lists (plus any --linq.from), one `from` walk each.
    #[arg(long = "linq.discover-numbers", env = "LINQ_EXPORTER_DISCOVER_NUMBERS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub discover_numbers: bool,

    /// This replica's shard, from 0: it walks only the numbers (--linq.from or discovered) whose FNV-1a 64 hash modulo --total-shards is this.
    #[arg(
        long = "shard",
        env = "LINQ_EXPORTER_SHARD",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub shard: i64,

    /// How many replicas share the account's numbers (1: no sharding). Above 1 it needs --linq.from or --linq.discover-numbers.
    #[arg(
        long = "total-shards",
        env = "LINQ_EXPORTER_TOTAL_SHARDS",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub total_shards: i64,

    /// Which chats get per-chat series: all, unhealthy or none. Aggregates always cover every chat.
    #[arg(
        long = "linq.chat-metrics",
        env = "LINQ_EXPORTER_CHAT_METRICS",
        default_value = "all"
    )]
    pub chat_metrics: ChatMetrics,

    /// With --linq.chat-metrics=unhealthy: a chat scoring below this is unhealthy.
    #[arg(
        long = "linq.unhealthy-score",
        env = "LINQ_EXPORTER_UNHEALTHY_SCORE",
        default_value_t = 50.0
    )]
    pub unhealthy_score: f64,

    /// Hard cap on chats with per-chat series; the worst chats win. Default: unlimited.
    #[arg(long = "linq.max-chat-series", env = "LINQ_EXPORTER_MAX_CHAT_SERIES")]
    pub max_chat_series: Option<usize>,

    /// Add a display_name label to linq_chat_info (off: display names are often customers' numbers).
    #[arg(long = "linq.chat-display-name", env = "LINQ_EXPORTER_CHAT_DISPLAY_NAME", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub chat_display_name: bool,

    /// Address to listen on, host:port or :port.
    #[arg(
        long = "web.listen-address",
        env = "LINQ_EXPORTER_LISTEN_ADDRESS",
        default_value = "0.0.0.0:10042"
    )]
    pub listen_address: ListenAddress,

    /// Render the protobuf form at every sweep, from the first (for a Prometheus with native histograms); by default it is rendered only while protobuf scrapes come.
    #[arg(long = "web.protobuf-always", env = "LINQ_EXPORTER_PROTOBUF_ALWAYS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub protobuf_always: bool,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "LINQ_EXPORTER_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: TelemetryPath,

    /// TLS, mutual TLS, basic auth and headers, in Prometheus exporter-toolkit's web config format.
    #[arg(long = "web.config.file", env = "LINQ_EXPORTER_WEB_CONFIG_FILE")]
    pub web_config_file: Option<std::path::PathBuf>,

    /// How often the web config file and the certificates it names are checked for changes.
    #[arg(long = "web.config.reload-interval", env = "LINQ_EXPORTER_WEB_CONFIG_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub web_config_reload_interval: Duration,

    /// Also serve /healthz and /readyz over plain HTTP here (for kubelet probes when TLS requires client certificates).
    #[arg(
        long = "web.probe-listen-address",
        env = "LINQ_EXPORTER_PROBE_LISTEN_ADDRESS"
    )]
    pub probe_listen_address: Option<ListenAddress>,

    /// Close a connection that has not sent complete request headers in this time (also bounds the TLS handshake and an idle keep-alive connection).
    #[arg(long = "web.read-header-timeout", env = "LINQ_EXPORTER_READ_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub read_header_timeout: Duration,

    /// Connections held at once per listener; at the bound the oldest one without a complete request is closed.
    #[arg(
        long = "web.max-connections",
        env = "LINQ_EXPORTER_MAX_CONNECTIONS",
        default_value_t = 4096
    )]
    pub max_connections: usize,

    /// /readyz turns 503 when the last good sweep is older than this. Default: 3 x max(poll interval, last good sweep's duration).
    #[arg(long = "web.ready-max-age", env = "LINQ_EXPORTER_READY_MAX_AGE", value_parser = parse_duration)]
    pub ready_max_age: Option<Duration>,

    /// Listen address of the webhook receiver (off by default): serves only POST --webhook.path, with --web.config.file's TLS but never its basic auth.
    #[arg(
        long = "webhook.listen-address",
        env = "LINQ_EXPORTER_WEBHOOK_LISTEN_ADDRESS"
    )]
    pub webhook_listen_address: Option<ListenAddress>,

    /// Path the webhook receiver accepts events on.
    #[arg(
        long = "webhook.path",
        env = "LINQ_EXPORTER_WEBHOOK_PATH",
        default_value = "/webhook"
    )]
    pub webhook_path: TelemetryPath,

    /// File holding the webhook signing secret; re-read when it changes, so a rotated secret needs no restart.
    #[arg(
        long = "webhook.signing-secret-file",
        env = "LINQ_WEBHOOK_SIGNING_SECRET_FILE"
    )]
    pub webhook_secret_file: Option<std::path::PathBuf>,

    /// The webhook signing secret (whsec_...). Prefer --webhook.signing-secret-file.
    #[arg(
        long = "webhook.signing-secret",
        env = "LINQ_WEBHOOK_SIGNING_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,

    /// Webhooks whose signed timestamp is older than this, or that far in the future, are refused (401).
    #[arg(long = "webhook.max-age", env = "LINQ_EXPORTER_WEBHOOK_MAX_AGE", default_value = "5m", value_parser = parse_duration)]
    pub webhook_max_age: Duration,

    /// Log level: error, warn, info, debug or trace (or a tracing filter directive).
    #[arg(
        long = "log.level",
        env = "LINQ_EXPORTER_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: LogLevel,

    /// Log format: text or json.
    #[arg(
        long = "log.format",
        env = "LINQ_EXPORTER_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Run one sweep, print the exposition to stdout and exit (non-zero on failure).
    #[arg(long = "once", env = "LINQ_EXPORTER_ONCE", default_value_t = false)]
    pub once: bool,

    /// Run against an embedded simulated Linq API; no key needed.
    #[arg(long = "demo", env = "LINQ_EXPORTER_DEMO", default_value_t = false)]
    pub demo: bool,

    /// Demo: number of synthetic chats.
    #[arg(
        long = "demo.chats",
        env = "LINQ_EXPORTER_DEMO_CHATS",
        default_value_t = 3000
    )]
    pub demo_chats: usize,

    /// Demo: fraction of requests answered with a transient 500.
    #[arg(
        long = "demo.error-rate",
        env = "LINQ_EXPORTER_DEMO_ERROR_RATE",
        default_value_t = 0.02
    )]
    pub demo_error_rate: f64,

    /// Demo: fraction of requests answered with 429 and Retry-After: 1.
    #[arg(
        long = "demo.rate-limit-rate",
        env = "LINQ_EXPORTER_DEMO_RATE_LIMIT_RATE",
        default_value_t = 0.01
    )]
    pub demo_rate_limit_rate: f64,

    /// Demo: fraction of pages answered slowly (see --demo.slow-delay).
    #[arg(
        long = "demo.slow-rate",
        env = "LINQ_EXPORTER_DEMO_SLOW_RATE",
        default_value_t = 0.02
    )]
    pub demo_slow_rate: f64,

    /// Demo: delay of a slow page.
    #[arg(long = "demo.slow-delay", env = "LINQ_EXPORTER_DEMO_SLOW_DELAY", default_value = "300ms", value_parser = parse_duration)]
    pub demo_slow_delay: Duration,

    /// Demo: fraction of pages answered with malformed JSON (fails that sweep with a decode error).
    #[arg(
        long = "demo.malformed-rate",
        env = "LINQ_EXPORTER_DEMO_MALFORMED_RATE",
        default_value_t = 0.0
    )]
    pub demo_malformed_rate: f64,

    /// Demo: fraction of requests answered with 401 (fails that sweep, as a revoked key would).
    #[arg(
        long = "demo.unauthorized-rate",
        env = "LINQ_EXPORTER_DEMO_UNAUTHORIZED_RATE",
        default_value_t = 0.0
    )]
    pub demo_unauthorized_rate: f64,
}

/// `--version`: the version and the git revision it was built from.
const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("LINQ_EXPORTER_REVISION"),
    ")"
);

/// The SDK's environment variable for the webhook signing secret (`linq-python` reads it in
/// `LinqAPIV3(webhook_secret=...)`), accepted beside `LINQ_WEBHOOK_SIGNING_SECRET`.
pub const SDK_WEBHOOK_SECRET_ENV: &str = "LINQ_WEBHOOK_SECRET";

/// Every way each secret was given, by name (`--linq.api-key`, `LINQ_API_V3_API_KEY
/// (environment)`), for the rule that a secret is given one way only.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Whether this was filled from the parser's value sources.
    pub known: bool,
    /// The ways the API key was given.
    pub api_key: Vec<String>,
    /// The ways the webhook signing secret was given.
    pub webhook_secret: Vec<String>,
    /// The value of `LINQ_WEBHOOK_SECRET`, when set.
    pub sdk_webhook_secret: Option<Secret>,
    /// Flags given on the command line or through their environment variable (arg ids).
    pub explicit: Vec<String>,
}

/// The names of the ways one argument was given: its flag on the command line, its environment
/// variable (also when the command line overrides it: both count).
fn ways(
    matches: &clap::ArgMatches,
    id: &str,
    flag: &str,
    env_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let non_empty = matches
        .get_raw(id)
        .and_then(|mut v| v.next())
        .is_some_and(|v| !v.to_string_lossy().trim().is_empty());
    if non_empty && matches.value_source(id) == Some(ValueSource::CommandLine) {
        out.push(flag.to_string());
    }
    if env(env_name).is_some_and(|v| !v.trim().is_empty()) {
        out.push(format!("{env_name} (environment)"));
    }
    out
}

impl Cli {
    /// Parses the process's arguments (exiting with clap's message on a bad one) and records
    /// where each secret came from.
    pub fn parse_with_origins() -> Cli {
        match Self::try_parse_with_origins(std::env::args_os(), &|k| std::env::var(k).ok()) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }

    /// [`Cli::parse_with_origins`] over `args`, with `env` for the environment checks.
    pub fn try_parse_with_origins<I, T>(
        args: I,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = <Cli as CommandFactory>::command().try_get_matches_from(args)?;
        let mut cli = <Cli as FromArgMatches>::from_arg_matches(&matches)?;
        let mut api_key = ways(
            &matches,
            "api_key",
            "--linq.api-key",
            "LINQ_API_V3_API_KEY",
            env,
        );
        api_key.extend(ways(
            &matches,
            "api_key_file",
            "--linq.api-key-file",
            "LINQ_API_V3_API_KEY_FILE",
            env,
        ));
        let mut webhook_secret = ways(
            &matches,
            "webhook_secret",
            "--webhook.signing-secret",
            "LINQ_WEBHOOK_SIGNING_SECRET",
            env,
        );
        webhook_secret.extend(ways(
            &matches,
            "webhook_secret_file",
            "--webhook.signing-secret-file",
            "LINQ_WEBHOOK_SIGNING_SECRET_FILE",
            env,
        ));
        let sdk_webhook_secret = env(SDK_WEBHOOK_SECRET_ENV)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if sdk_webhook_secret.is_some() {
            webhook_secret.push(format!("{SDK_WEBHOOK_SECRET_ENV} (environment)"));
        }
        // Command-line flags first, then the environment.
        api_key.sort_by_key(|w| !w.starts_with("--"));
        webhook_secret.sort_by_key(|w| !w.starts_with("--"));
        let explicit = matches
            .ids()
            .filter(|id| {
                matches!(
                    matches.value_source(id.as_str()),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            })
            .map(|id| id.as_str().to_string())
            .collect();
        cli.origins = Origins {
            known: true,
            api_key,
            webhook_secret,
            sdk_webhook_secret: sdk_webhook_secret.map(Secret::new),
            explicit,
        };
        Ok(cli)
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the demo's simulated Linq API on its own, without faults (for benchmarks and experiments).
    Simulate {
        /// Address to listen on.
        #[arg(long = "listen", default_value = "127.0.0.1:10043")]
        listen: ListenAddress,
        /// Number of chats.
        #[arg(long = "chats", default_value_t = 3000)]
        chats: usize,
        /// Number of account numbers the chats are spread over.
        #[arg(long = "numbers", default_value_t = 3)]
        numbers: usize,
        /// Response time of every request (e.g. 100ms); the simulator builds the answer within it.
        #[arg(long = "latency", default_value = "0s", value_parser = parse_duration)]
        latency: Duration,
        /// Also send the demo's signed webhook events (the demo's secret) to this URL.
        #[arg(long = "webhook-url")]
        webhook_url: Option<String>,
        /// Time between two webhook deliveries with --webhook-url.
        #[arg(long = "webhook-interval", default_value = "50ms", value_parser = parse_duration)]
        webhook_interval: Duration,
    },
    /// Manage the account's webhook subscriptions (with --linq.base-url and the API key flags).
    Webhook {
        /// What to do.
        #[command(subcommand)]
        action: WebhookCommand,
    },
    /// Query a running exporter's /healthz and exit 0 when healthy, 1 otherwise (for Docker HEALTHCHECK).
    Healthcheck {
        /// URL to probe.
        #[arg(
            long = "url",
            env = "LINQ_EXPORTER_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:10042/healthz"
        )]
        url: String,
        /// How long to wait for an answer.
        #[arg(long = "timeout", default_value = "3s", value_parser = parse_duration)]
        timeout: Duration,
        /// With an https URL: do not verify the server certificate (a self-signed one on localhost).
        #[arg(long = "insecure", default_value_t = false)]
        insecure: bool,
    },
}

/// `linq-exporter webhook ...`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create a subscription (POST /v3/webhook-subscriptions); its signing secret goes to --secret-file, never to stdout.
    Subscribe {
        /// The receiver's public URL (https), such as `https://linq-webhooks.example.com/webhook`.
        #[arg(long = "url")]
        url: String,
        /// Events to subscribe to, comma-separated. Default: the message events, phone_number.status_updated, participant and chat.created.
        #[arg(long = "events", value_delimiter = ',')]
        events: Vec<String>,
        /// Where to write the signing secret (mode 0600), for --webhook.signing-secret-file.
        #[arg(long = "secret-file")]
        secret_file: std::path::PathBuf,
    },
    /// List the account's subscriptions (GET /v3/webhook-subscriptions).
    List,
    /// Delete a subscription (DELETE /v3/webhook-subscriptions/{id}).
    Delete {
        /// The subscription's id, as `webhook list` or `webhook subscribe` prints it.
        #[arg(long = "id")]
        id: String,
    },
}
