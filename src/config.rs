//! Validated configuration: small value types parsed from flags (`FromStr`) and the [`Config`]
//! built from [`Cli`] with cross-flag checks. Nothing here does I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::cli::Cli;

/// A configuration error, naming the offending flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither a key nor a key file was given outside demo mode.
    #[error("no Linq API key: set --linq.api-key (env LINQ_API_V3_API_KEY) or --linq.api-key-file (env LINQ_API_V3_API_KEY_FILE), or run with --demo")]
    MissingApiKey,
    /// A flag value is invalid.
    #[error("invalid value for {flag}: {reason}")]
    Invalid {
        /// The flag, e.g. `--linq.poll-interval`.
        flag: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses a human duration such as `500ms`, `30s`, `5m`, `1h`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{s:?}: expected a number, e.g. 30s or 5m"));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: bad number"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds = match unit {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            "d" => number * 86400.0,
            "" => return Err(format!("{s:?}: missing unit (ms, s, m, h, d)")),
            other => return Err(format!("{s:?}: unknown unit {other:?} (ms, s, m, h, d)")),
        };
        total += Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))?;
    }
    Ok(total)
}

/// A size in bytes: plain bytes or with a unit, `512KiB`, `16MiB`, `1GiB` (powers of 1024) or
/// `500KB`, `16MB`, `1GB` (powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let bad = || format!("{s:?} is not a size such as 16MiB, 512KiB or 1048576");
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(bad()),
        };
        match n.checked_mul(scale) {
            Some(0) => Err(format!("{s:?} must be above zero")),
            Some(v) => Ok(ByteSize(v)),
            None => Err(format!("{s:?} is too large")),
        }
    }
}

/// When `/readyz` judges the published snapshot too old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyMaxAge {
    /// `--web.ready-max-age` as given.
    Fixed(Duration),
    /// The default: 3 × max(poll interval, duration of the last successful sweep), so an account
    /// whose sweeps take longer than the interval is judged by the period it can achieve.
    Auto {
        /// `--linq.poll-interval`.
        interval: Duration,
    },
}

impl ReadyMaxAge {
    /// The limit in force, given how long the last successful sweep took.
    pub fn limit(self, last_good_sweep: Option<Duration>) -> Duration {
        match self {
            ReadyMaxAge::Fixed(d) => d,
            ReadyMaxAge::Auto { interval } => {
                interval.max(last_good_sweep.unwrap_or(Duration::ZERO)) * 3
            }
        }
    }
}

impl From<Duration> for ReadyMaxAge {
    fn from(d: Duration) -> Self {
        ReadyMaxAge::Fixed(d)
    }
}

/// Page size for `GET /v3/chats`, 1..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(pub u32);

impl FromStr for PageSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<u32>() {
            Ok(n @ 1..=100) => Ok(PageSize(n)),
            _ => Err(format!("{s:?} is not a whole number from 1 to 100")),
        }
    }
}

/// The address to listen on: `host:port`, `[v6]:port` or `:port` (all interfaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddress(pub SocketAddr);

impl FromStr for ListenAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || format!("{s:?} is not host:port or :port (e.g. 0.0.0.0:10042)");
        if let Some(port) = s.strip_prefix(':') {
            let port: u16 = port.parse().map_err(|_| bad())?;
            return Ok(ListenAddress(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            )));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(ListenAddress(addr));
        }
        if let Some(port) = s.strip_prefix("localhost:") {
            let port: u16 = port.parse().map_err(|_| bad())?;
            return Ok(ListenAddress(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
            )));
        }
        Err(bad())
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The metrics path: starts with `/`, is not one of the fixed endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryPath(pub String);

impl FromStr for TelemetryPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.starts_with('/') || s.len() < 2 || s.contains(['?', '#', ' ', '{', '}', '*']) {
            return Err(format!("{s:?} must be a plain path such as /metrics"));
        }
        if matches!(s, "/healthz" | "/readyz") {
            return Err(format!("{s:?} is reserved"));
        }
        Ok(TelemetryPath(s.to_string()))
    }
}

/// Which chats get per-chat series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatMetrics {
    /// Every chat.
    All,
    /// Only chats scoring below the unhealthy threshold or AT_RISK, CRITICAL or OPTED_OUT.
    Unhealthy,
    /// No per-chat series, aggregates only.
    None,
}

impl FromStr for ChatMetrics {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Self::All),
            "unhealthy" => Ok(Self::Unhealthy),
            "none" => Ok(Self::None),
            _ => Err(format!("{s:?} is not one of all, unhealthy, none")),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" | "logfmt" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("{s:?} is not one of text, json")),
        }
    }
}

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where the API key comes from.
#[derive(Debug, Clone)]
pub enum ApiKeySource {
    /// Given directly.
    Value(Secret),
    /// Read from this file at every sweep.
    File(PathBuf),
}

/// Retry policy for API requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries per request after the first attempt.
    pub max_retries: u32,
    /// Base of the exponential backoff.
    pub base: Duration,
    /// Cap on one wait.
    pub cap: Duration,
}

/// Everything the exporter needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// API base URL without a trailing slash.
    pub base_url: String,
    /// The key, or `None` in demo mode (the simulator's key is used).
    pub api_key: Option<ApiKeySource>,
    /// Time between sweep starts.
    pub poll_interval: Duration,
    /// Numbers to walk; empty for one unfiltered walk.
    pub from: Vec<String>,
    /// Chats per page.
    pub page_size: u32,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Deadline of a sweep.
    pub sweep_timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Walks in flight at once.
    pub concurrency: usize,
    /// Fetch line reputations each sweep.
    pub phone_numbers: bool,
    /// Walk every number the account lists.
    pub discover_numbers: bool,
    /// Client-side request rate limit.
    pub max_requests_per_second: Option<f64>,
    /// Upper bound of the random delay before the first sweep.
    pub startup_jitter: Duration,
    /// Per-chat series selection.
    pub chat_metrics: ChatMetrics,
    /// Score below which a chat is unhealthy.
    pub unhealthy_score: f64,
    /// Cap on chats with per-chat series.
    pub max_chat_series: Option<usize>,
    /// Whether `linq_chat_info` carries `display_name`.
    pub chat_display_name: bool,
    /// Listen address.
    pub listen_address: SocketAddr,
    /// Metrics path.
    pub telemetry_path: String,
    /// `--web.config.file`.
    pub web_config_file: Option<PathBuf>,
    /// How often the web config is checked for changes.
    pub web_config_reload_interval: Duration,
    /// Plain-HTTP listener for the probes only.
    pub probe_listen_address: Option<SocketAddr>,
    /// Max age of the last good sweep for readiness.
    pub ready_max_age: ReadyMaxAge,
    /// Bound on an API response body, in bytes.
    pub max_response_size: u64,
    /// Bound on receiving a request's headers (and the TLS handshake, and an idle keep-alive wait).
    pub read_header_timeout: Duration,
    /// Connections held at once per listener.
    pub max_connections: usize,
    /// Run one sweep and print.
    pub once: bool,
    /// Demo simulator settings when `--demo`.
    pub demo: Option<crate::demo::SimConfig>,
}

fn fraction(flag: &'static str, v: f64) -> Result<f64, ConfigError> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::Invalid {
            flag,
            reason: format!("{v} is not a fraction from 0 to 1"),
        })
    }
}

fn valid_e164(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

impl TryFrom<&Cli> for Config {
    type Error = ConfigError;

    fn try_from(cli: &Cli) -> Result<Self, Self::Error> {
        let invalid = |flag: &'static str, reason: String| ConfigError::Invalid { flag, reason };

        let api_key = match (&cli.api_key, &cli.api_key_file) {
            (Some(k), _) if !k.trim().is_empty() => {
                Some(ApiKeySource::Value(Secret::new(k.trim())))
            }
            (_, Some(path)) => Some(ApiKeySource::File(path.clone())),
            _ => None,
        };
        if api_key.is_none() && !cli.demo {
            return Err(ConfigError::MissingApiKey);
        }
        if cli.poll_interval.is_zero() {
            return Err(invalid("--linq.poll-interval", "must be above zero".into()));
        }
        if cli.request_timeout.is_zero() {
            return Err(invalid(
                "--linq.request-timeout",
                "must be above zero".into(),
            ));
        }
        if cli.connect_timeout.is_zero() {
            return Err(invalid(
                "--linq.connect-timeout",
                "must be above zero".into(),
            ));
        }
        let base_url = cli.base_url.trim().trim_end_matches('/').to_string();
        match reqwest::Url::parse(&base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(invalid(
                    "--linq.base-url",
                    format!("{base_url:?} is not an http(s) URL"),
                ))
            }
        }
        let mut from = Vec::new();
        for n in cli.from.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if !valid_e164(n) {
                return Err(invalid(
                    "--linq.from",
                    format!("{n:?} is not an E.164 number such as +14155551234"),
                ));
            }
            let n = if n.starts_with('+') {
                n.to_string()
            } else {
                format!("+{n}")
            };
            if !from.contains(&n) {
                from.push(n);
            }
        }
        let sweep_timeout = cli.sweep_timeout;
        if sweep_timeout.is_zero() {
            return Err(invalid("--linq.sweep-timeout", "must be above zero".into()));
        }
        if !(0.0..=100.0).contains(&cli.unhealthy_score) {
            return Err(invalid(
                "--linq.unhealthy-score",
                format!("{} is not from 0 to 100", cli.unhealthy_score),
            ));
        }
        if cli.retry_backoff.is_zero() || cli.retry_max_backoff < cli.retry_backoff {
            return Err(invalid(
                "--linq.retry-backoff",
                "must be above zero and at most --linq.retry-max-backoff".into(),
            ));
        }
        if cli.concurrency == 0 || cli.concurrency > 64 {
            return Err(invalid(
                "--linq.concurrency",
                format!("{} is not from 1 to 64", cli.concurrency),
            ));
        }
        if let Some(r) = cli.max_requests_per_second {
            if !(r.is_finite() && r > 0.0) {
                return Err(invalid(
                    "--linq.max-requests-per-second",
                    format!("{r} must be above zero"),
                ));
            }
        }
        if cli.read_header_timeout.is_zero() {
            return Err(invalid(
                "--web.read-header-timeout",
                "must be above zero".into(),
            ));
        }
        if cli.max_connections < 16 {
            return Err(invalid(
                "--web.max-connections",
                format!("{} is below the minimum of 16", cli.max_connections),
            ));
        }
        if let Some(age) = cli.ready_max_age {
            if age.is_zero() {
                return Err(invalid("--web.ready-max-age", "must be above zero".into()));
            }
        }
        let demo = if cli.demo {
            if cli.demo_chats == 0 || cli.demo_chats > 1_000_000 {
                return Err(invalid("--demo.chats", "must be from 1 to 1000000".into()));
            }
            Some(crate::demo::SimConfig {
                chats: cli.demo_chats,
                error_rate: fraction("--demo.error-rate", cli.demo_error_rate)?,
                rate_limit_rate: fraction("--demo.rate-limit-rate", cli.demo_rate_limit_rate)?,
                slow_rate: fraction("--demo.slow-rate", cli.demo_slow_rate)?,
                slow_delay: cli.demo_slow_delay,
                malformed_rate: fraction("--demo.malformed-rate", cli.demo_malformed_rate)?,
                unauthorized_rate: fraction(
                    "--demo.unauthorized-rate",
                    cli.demo_unauthorized_rate,
                )?,
                ..Default::default()
            })
        } else {
            None
        };
        Ok(Config {
            base_url,
            api_key,
            poll_interval: cli.poll_interval,
            from,
            page_size: cli.page_size.0,
            request_timeout: cli.request_timeout,
            connect_timeout: cli.connect_timeout,
            sweep_timeout,
            retry: RetryPolicy {
                max_retries: cli.max_retries,
                base: cli.retry_backoff,
                cap: cli.retry_max_backoff,
            },
            concurrency: cli.concurrency,
            phone_numbers: cli.phone_numbers,
            discover_numbers: cli.discover_numbers,
            max_requests_per_second: cli.max_requests_per_second,
            startup_jitter: cli.startup_jitter,
            chat_metrics: cli.chat_metrics,
            unhealthy_score: cli.unhealthy_score,
            max_chat_series: cli.max_chat_series,
            chat_display_name: cli.chat_display_name,
            listen_address: cli.listen_address.0,
            telemetry_path: cli.telemetry_path.0.clone(),
            web_config_file: cli.web_config_file.clone(),
            web_config_reload_interval: cli
                .web_config_reload_interval
                .max(Duration::from_millis(100)),
            probe_listen_address: cli.probe_listen_address.map(|a| a.0),
            ready_max_age: match cli.ready_max_age {
                Some(age) => ReadyMaxAge::Fixed(age),
                None => ReadyMaxAge::Auto {
                    interval: cli.poll_interval,
                },
            },
            max_response_size: cli.max_response_size.0,
            read_header_timeout: cli.read_header_timeout,
            max_connections: cli.max_connections,
            once: cli.once,
            demo,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut full = vec!["linq-exporter"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            ":10042".parse::<ListenAddress>().map(|a| a.0),
            Ok("0.0.0.0:10042".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert!("127.0.0.1:0".parse::<ListenAddress>().is_ok());
        assert!("[::1]:9000".parse::<ListenAddress>().is_ok());
        assert!("localhost:9000".parse::<ListenAddress>().is_ok());
        assert!("10042".parse::<ListenAddress>().is_err());
        assert!("1.2.3.4:99999".parse::<ListenAddress>().is_err());
    }

    #[test]
    fn page_size_bounds_name_the_flag() {
        assert!(cli(&["--linq.page-size", "100", "--demo"]).is_ok());
        for bad in ["0", "101", "-1", "x"] {
            let arg = format!("--linq.page-size={bad}");
            let err = cli(&[&arg, "--demo"])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("--linq.page-size"), "{err}");
        }
    }

    #[test]
    fn missing_key_names_both_ways() {
        let c = cli(&[]).unwrap_or_else(|e| panic!("{e}"));
        let err = Config::try_from(&c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("--linq.api-key") && err.contains("--linq.api-key-file"),
            "{err}"
        );
        assert!(err.contains("LINQ_API_V3_API_KEY_FILE"), "{err}");
    }

    #[test]
    fn key_never_in_debug() {
        let c = cli(&["--linq.api-key", "sk_live_supersecret"]).unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{cfg:?}").contains("supersecret"));
    }

    #[test]
    fn from_numbers_validated_and_normalised() {
        let c = cli(&[
            "--demo",
            "--linq.from",
            "+14155550100,14155550101",
            "--linq.from",
            "+14155550100",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.from, vec!["+14155550100", "+14155550101"]);
        let c = cli(&["--demo", "--linq.from", "hello"]).unwrap_or_else(|e| panic!("{e}"));
        let err = Config::try_from(&c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--linq.from"), "{err}");
    }

    #[test]
    fn sweep_timeout_is_ten_minutes_whatever_the_interval() {
        for interval in ["1s", "30s", "1h"] {
            let c = cli(&["--demo", "--linq.poll-interval", interval])
                .unwrap_or_else(|e| panic!("{e}"));
            let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cfg.sweep_timeout, Duration::from_secs(600), "{interval}");
        }
        let c = cli(&["--demo", "--linq.sweep-timeout", "45s"]).unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.sweep_timeout, Duration::from_secs(45));
    }

    #[test]
    fn ready_max_age_follows_the_achievable_period() {
        let c = cli(&["--demo", "--linq.poll-interval", "60s"]).unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        let age = cfg.ready_max_age;
        assert_eq!(age.limit(None), Duration::from_secs(180));
        assert_eq!(
            age.limit(Some(Duration::from_secs(20))),
            Duration::from_secs(180)
        );
        assert_eq!(
            age.limit(Some(Duration::from_secs(150))),
            Duration::from_secs(450)
        );
        let c = cli(&["--demo", "--web.ready-max-age", "100s"]).unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cfg.ready_max_age.limit(Some(Duration::from_secs(150))),
            Duration::from_secs(100)
        );
    }

    #[test]
    fn byte_sizes() {
        let size = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(size("16MiB"), Ok(16 << 20));
        assert_eq!(size("512KiB"), Ok(512 << 10));
        assert_eq!(size("1GiB"), Ok(1 << 30));
        assert_eq!(size("2MB"), Ok(2_000_000));
        assert_eq!(size("1048576"), Ok(1_048_576));
        for bad in [
            "",
            "0",
            "16 mib",
            "MiB",
            "-1",
            "1.5MiB",
            "99999999999999GiB",
        ] {
            assert!(size(bad).is_err(), "{bad}");
        }
        let err = cli(&["--demo", "--linq.max-response-size", "lots"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--linq.max-response-size"), "{err}");
        let c = cli(&["--demo"]).unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.max_response_size, 16 << 20);
        assert_eq!(cfg.read_header_timeout, Duration::from_secs(30));
        assert_eq!(cfg.max_connections, 4096);
    }
}
