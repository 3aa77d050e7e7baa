//! Validated configuration: small value types parsed from flags (`FromStr`) and the [`Config`]
//! built from [`Cli`] with cross-flag checks. Nothing here does I/O.

pub mod cli;
pub mod shard;
mod simulator;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::api::client::{ApiKeySource, RetryPolicy, Secret};
pub use crate::metrics::snapshot::ChatMetrics;
use cli::Cli;
pub use simulator::{SimConfig, DEMO_WEBHOOK_SECRET};
pub use values::{
    parse_duration, ByteSize, ListenAddress, LogFormat, LogLevel, PageSize, ReadyMaxAge,
    TelemetryPath,
};

/// A configuration error, naming the offending flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither a key nor a key file was given outside demo mode.
    #[error("no Linq API key: set --linq.api-key (env LINQ_API_V3_API_KEY) or --linq.api-key-file (env LINQ_API_V3_API_KEY_FILE), or run with --demo")]
    MissingApiKey,
    /// A secret was given more than one way.
    #[error("{} give the {what}; give it one way", both(sources))]
    Conflict {
        /// The secret, e.g. `API key`.
        what: &'static str,
        /// Each way it was given, e.g. `--linq.api-key`, `LINQ_API_V3_API_KEY (environment)`.
        sources: Vec<String>,
    },
    /// A flag value is invalid.
    #[error("invalid value for {flag}: {reason}")]
    Invalid {
        /// The flag, e.g. `--linq.poll-interval`.
        flag: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// "A and B both", "A, B and C all".
fn both(sources: &[String]) -> String {
    match sources {
        [a, b] => format!("{a} and {b} both"),
        [rest @ .., last] => format!("{} and {last} all", rest.join(", ")),
        [] => String::new(),
    }
}

/// The ways a secret was given: from the parser's origins when known, else the fields set.
fn ways_given(known: bool, from_origins: &[String], fields: &[(&str, bool)]) -> Vec<String> {
    if known {
        return from_origins.to_vec();
    }
    fields
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name.to_string())
        .collect()
}

fn non_empty(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|v| !v.trim().is_empty())
}

/// The API key from the flags, refusing a key given more than one way (value flag, file flag,
/// their environment variables). `None` when none is given.
pub fn api_key_source(cli: &Cli) -> Result<Option<ApiKeySource>, ConfigError> {
    let ways = ways_given(
        cli.origins.known,
        &cli.origins.api_key,
        &[
            ("--linq.api-key", non_empty(&cli.api_key)),
            ("--linq.api-key-file", cli.api_key_file.is_some()),
        ],
    );
    if ways.len() > 1 {
        return Err(ConfigError::Conflict {
            what: "API key",
            sources: ways,
        });
    }
    Ok(match (&cli.api_key, &cli.api_key_file) {
        (Some(k), _) if !k.trim().is_empty() => Some(ApiKeySource::Value(Secret::new(k.trim()))),
        (_, Some(path)) => Some(ApiKeySource::File(path.clone())),
        _ => None,
    })
}

/// Whether a signing secret can verify Standard Webhooks signatures (`whsec_` + base64).
pub fn standard_webhooks_secret(secret: &str) -> bool {
    let secret = secret.trim();
    !secret.is_empty() && standardwebhooks::Webhook::new(secret).is_ok()
}

/// The webhook signing secret from the flags (or the SDK's `LINQ_WEBHOOK_SECRET`), refusing
/// one given more than one way and a value that cannot verify Standard Webhooks signatures.
fn webhook_secret(cli: &Cli) -> Result<Option<WebhookSecret>, ConfigError> {
    // The SDK's variable counts only for the receiver: without one it may well be set for an
    // application beside the exporter, and is none of the exporter's business.
    let sdk_env = format!("{} (environment)", cli::SDK_WEBHOOK_SECRET_ENV);
    let receiver_on = cli.webhook_listen_address.is_some();
    let given: Vec<String> = cli
        .origins
        .webhook_secret
        .iter()
        .filter(|w| receiver_on || **w != sdk_env)
        .cloned()
        .collect();
    let ways = ways_given(
        cli.origins.known,
        &given,
        &[
            ("--webhook.signing-secret", non_empty(&cli.webhook_secret)),
            (
                "--webhook.signing-secret-file",
                cli.webhook_secret_file.is_some(),
            ),
        ],
    );
    if ways.len() > 1 {
        return Err(ConfigError::Conflict {
            what: "webhook signing secret",
            sources: ways,
        });
    }
    let (flag, value) = match (&cli.webhook_secret, &cli.webhook_secret_file) {
        (_, Some(path)) => return Ok(Some(WebhookSecret::File(path.clone()))),
        (Some(s), None) if !s.trim().is_empty() => ("--webhook.signing-secret", s.trim()),
        _ => match &cli.origins.sdk_webhook_secret {
            Some(s) if receiver_on => (cli::SDK_WEBHOOK_SECRET_ENV, s.expose().trim()),
            _ => return Ok(None),
        },
    };
    if !standard_webhooks_secret(value) {
        return Err(ConfigError::Invalid {
            flag,
            reason: "the signing secret is not whsec_ followed by base64 (as Linq issues it), so Standard Webhooks signatures cannot be verified".into(),
        });
    }
    Ok(Some(WebhookSecret::Value(Secret::new(value))))
}

/// Where the webhook signing secret comes from.
#[derive(Clone)]
pub enum WebhookSecret {
    /// `--webhook.signing-secret`.
    Value(Secret),
    /// `--webhook.signing-secret-file`, re-read when it changes.
    File(PathBuf),
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookSecret::Value(_) => f.write_str("Value(<redacted>)"),
            WebhookSecret::File(p) => write!(f, "File({p:?})"),
        }
    }
}

/// The webhook receiver's settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `--webhook.listen-address` (in demo mode, 127.0.0.1:0 unless given).
    pub listen_address: SocketAddr,
    /// `--webhook.path`.
    pub path: String,
    /// The signing secret.
    pub secret: WebhookSecret,
    /// `--webhook.max-age`.
    pub max_age: Duration,
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
    /// `--shard` of `--total-shards`: which numbers this replica walks.
    pub sharding: shard::Sharding,
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
    /// `--web.protobuf-always`: render the protobuf form at every sweep.
    pub protobuf_always: bool,
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
    /// The webhook receiver, when on.
    pub webhook: Option<WebhookConfig>,
    /// Demo simulator settings when `--demo`.
    pub demo: Option<SimConfig>,
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

/// `--shard` and `--total-shards`, refusing a spec that cannot be (naming the flag) and sharding
/// without a list of numbers to split (one unfiltered walk of the account cannot be divided).
fn sharding(cli: &Cli, from: &[String]) -> Result<shard::Sharding, ConfigError> {
    let invalid = |flag: &'static str, reason: String| ConfigError::Invalid { flag, reason };
    let total = match u32::try_from(cli.total_shards) {
        Ok(t) if t >= 1 => t,
        _ => {
            return Err(invalid(
                "--total-shards",
                format!("{} is not a shard count of 1 or more", cli.total_shards),
            ))
        }
    };
    if cli.shard < 0 {
        return Err(invalid(
            "--shard",
            format!("{} is negative (shards are numbered from 0)", cli.shard),
        ));
    }
    let sharding = u32::try_from(cli.shard)
        .ok()
        .and_then(|shard| shard::Sharding::new(shard, total))
        .ok_or_else(|| {
            invalid(
                "--shard",
                format!(
                    "{} is not below --total-shards {total} (shards are numbered from 0)",
                    cli.shard
                ),
            )
        })?;
    if sharding.is_sharded() && from.is_empty() && !cli.discover_numbers {
        return Err(invalid(
            "--total-shards",
            format!("{total} shards need the account's numbers to split: set --linq.discover-numbers (env LINQ_EXPORTER_DISCOVER_NUMBERS) or list them with --linq.from (env LINQ_EXPORTER_FROM)"),
        ));
    }
    Ok(sharding)
}

fn valid_e164(n: &str) -> bool {
    let Some(digits) = n.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

impl TryFrom<&Cli> for Config {
    type Error = ConfigError;

    fn try_from(cli: &Cli) -> Result<Self, Self::Error> {
        let invalid = |flag: &'static str, reason: String| ConfigError::Invalid { flag, reason };

        let api_key = api_key_source(cli)?;
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
                    format!("{n:?} is not an E.164 number: a + then the country code and number, such as +14155551234"),
                ));
            }
            let n = n.to_string();
            if !from.contains(&n) {
                from.push(n);
            }
        }
        let sharding = sharding(cli, &from)?;
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
        let webhook_secret = webhook_secret(cli)?;
        if cli.webhook_max_age.is_zero() {
            return Err(invalid("--webhook.max-age", "must be above zero".into()));
        }
        if cli.webhook_listen_address.is_none() && !cli.demo {
            // Flags that only mean something to the receiver: refused without it, not ignored.
            let given = |id: &str, differs: bool| {
                if cli.origins.known {
                    cli.origins.explicit.iter().any(|e| e == id)
                } else {
                    differs
                }
            };
            for (id, flag, differs) in [
                (
                    "webhook_secret",
                    "--webhook.signing-secret",
                    non_empty(&cli.webhook_secret),
                ),
                (
                    "webhook_secret_file",
                    "--webhook.signing-secret-file",
                    cli.webhook_secret_file.is_some(),
                ),
                (
                    "webhook_path",
                    "--webhook.path",
                    cli.webhook_path.0 != "/webhook",
                ),
                (
                    "webhook_max_age",
                    "--webhook.max-age",
                    cli.webhook_max_age != Duration::from_secs(300),
                ),
            ] {
                if given(id, differs) {
                    return Err(invalid(
                        flag,
                        "needs --webhook.listen-address (env LINQ_EXPORTER_WEBHOOK_LISTEN_ADDRESS): the webhook receiver is off without it".into(),
                    ));
                }
            }
        }
        let webhook = match (cli.webhook_listen_address, webhook_secret) {
            (Some(addr), Some(secret)) => Some(WebhookConfig {
                listen_address: addr.0,
                path: cli.webhook_path.0.clone(),
                secret,
                max_age: cli.webhook_max_age,
            }),
            (Some(_), None) if !cli.demo => {
                return Err(invalid(
                    "--webhook.listen-address",
                    "the webhook receiver needs a signing secret: set --webhook.signing-secret-file (env LINQ_WEBHOOK_SIGNING_SECRET_FILE) or --webhook.signing-secret (env LINQ_WEBHOOK_SIGNING_SECRET)".into(),
                ))
            }
            // The demo runs the receiver in-process, on loopback unless told otherwise, with the
            // demo's secret, so every panel has data.
            (addr, secret) if cli.demo => Some(WebhookConfig {
                listen_address: addr.map_or_else(
                    || SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
                    |a| a.0,
                ),
                path: cli.webhook_path.0.clone(),
                secret: secret.unwrap_or_else(|| {
                    WebhookSecret::Value(Secret::new(DEMO_WEBHOOK_SECRET))
                }),
                max_age: cli.webhook_max_age,
            }),
            _ => None,
        };
        let demo = if cli.demo {
            if cli.demo_chats == 0 || cli.demo_chats > 1_000_000 {
                return Err(invalid("--demo.chats", "must be from 1 to 1000000".into()));
            }
            Some(SimConfig {
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
            sharding,
            max_requests_per_second: cli.max_requests_per_second,
            startup_jitter: cli.startup_jitter,
            chat_metrics: cli.chat_metrics,
            unhealthy_score: cli.unhealthy_score,
            max_chat_series: cli.max_chat_series,
            chat_display_name: cli.chat_display_name,
            listen_address: cli.listen_address.0,
            telemetry_path: cli.telemetry_path.0.clone(),
            protobuf_always: cli.protobuf_always,
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
            webhook,
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
            "+14155550100,+14155550101",
            "--linq.from",
            "+14155550100",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.from, vec!["+14155550100", "+14155550101"]);
        // Without the +, a number is refused, not guessed at (4155550100 is not +4155550100).
        for bad in ["hello", "4155550100", "14155550101", "+0123", "+1"] {
            let c = cli(&["--demo", "--linq.from", bad]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                config_error(&c),
                format!("invalid value for --linq.from: {bad:?} is not an E.164 number: a + then the country code and number, such as +14155551234")
            );
        }
    }

    #[test]
    fn bad_shard_specs_are_refused_naming_the_flag() {
        let cases: [(&[&str], &str); 5] = [
            (
                &["--shard", "3", "--total-shards", "3"],
                "invalid value for --shard: 3 is not below --total-shards 3 (shards are numbered from 0)",
            ),
            (
                &["--shard", "-1", "--total-shards", "3"],
                "invalid value for --shard: -1 is negative (shards are numbered from 0)",
            ),
            (
                &["--total-shards", "0"],
                "invalid value for --total-shards: 0 is not a shard count of 1 or more",
            ),
            (
                &["--total-shards=-2"],
                "invalid value for --total-shards: -2 is not a shard count of 1 or more",
            ),
            (
                &["--shard", "1", "--total-shards", "2"],
                "invalid value for --total-shards: 2 shards need the account's numbers to split: set --linq.discover-numbers (env LINQ_EXPORTER_DISCOVER_NUMBERS) or list them with --linq.from (env LINQ_EXPORTER_FROM)",
            ),
        ];
        for (args, want) in cases {
            let mut full = vec!["--linq.api-key", "k"];
            full.extend_from_slice(args);
            let c = cli(&full).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(config_error(&c), want, "{args:?}");
        }
        for (args, shard, total) in [
            (
                &[
                    "--linq.discover-numbers",
                    "--shard",
                    "2",
                    "--total-shards",
                    "3",
                ][..],
                2,
                3,
            ),
            (
                &["--linq.from", "+12025550101", "--total-shards", "2"][..],
                0,
                2,
            ),
            (&[][..], 0, 1),
        ] {
            let mut full = vec!["--linq.api-key", "k"];
            full.extend_from_slice(args);
            let c = cli(&full).unwrap_or_else(|e| panic!("{e}"));
            let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((cfg.sharding.shard(), cfg.sharding.total()), (shard, total));
        }
    }

    fn config_error(c: &Cli) -> String {
        Config::try_from(c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    /// Parses with origins, the environment given as pairs.
    fn with_env(args: &[&str], env: &[(&str, &str)]) -> Cli {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut full = vec!["linq-exporter"];
        full.extend_from_slice(args);
        Cli::try_parse_with_origins(full, &lookup).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_secret_given_two_ways_is_refused_naming_both() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                &["--linq.api-key", "a", "--linq.api-key-file", "/k"],
                &[],
                "--linq.api-key and --linq.api-key-file both give the API key; give it one way",
            ),
            (
                &["--linq.api-key-file", "/k"],
                &[("LINQ_API_V3_API_KEY", "sk_env")],
                "--linq.api-key-file and LINQ_API_V3_API_KEY (environment) both give the API key; give it one way",
            ),
            (
                &["--linq.api-key", "a"],
                &[("LINQ_API_V3_API_KEY", "sk_env")],
                "--linq.api-key and LINQ_API_V3_API_KEY (environment) both give the API key; give it one way",
            ),
            (
                &[
                    "--linq.api-key", "k", "--webhook.listen-address", ":0",
                    "--webhook.signing-secret", "whsec_c2VjcmV0",
                    "--webhook.signing-secret-file", "/f",
                ],
                &[],
                "--webhook.signing-secret and --webhook.signing-secret-file both give the webhook signing secret; give it one way",
            ),
            (
                &[
                    "--linq.api-key", "k", "--webhook.listen-address", ":0",
                    "--webhook.signing-secret-file", "/f",
                ],
                &[("LINQ_WEBHOOK_SECRET", "whsec_c2VjcmV0"), ("LINQ_WEBHOOK_SIGNING_SECRET", "whsec_c2VjcmV0")],
                "--webhook.signing-secret-file, LINQ_WEBHOOK_SIGNING_SECRET (environment) and LINQ_WEBHOOK_SECRET (environment) all give the webhook signing secret; give it one way",
            ),
        ];
        for (args, env, want) in cases {
            let err = config_error(&with_env(args, env));
            assert_eq!(&err, want, "{args:?} {env:?}");
            assert!(
                !err.contains("sk_env") && !err.contains("c2VjcmV0"),
                "{err}"
            );
        }
        // One way is fine; an empty variable is no way.
        let c = with_env(
            &["--linq.api-key-file", "/k"],
            &[("LINQ_API_V3_API_KEY", " ")],
        );
        assert!(matches!(
            Config::try_from(&c).map(|c| c.api_key),
            Ok(Some(ApiKeySource::File(_)))
        ));
    }

    #[test]
    fn the_sdk_webhook_secret_variable_is_accepted() {
        let c = with_env(
            &["--linq.api-key", "k", "--webhook.listen-address", ":0"],
            &[("LINQ_WEBHOOK_SECRET", "whsec_c2VjcmV0")],
        );
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        match cfg.webhook.map(|w| w.secret) {
            Some(WebhookSecret::Value(s)) => assert_eq!(s.expose(), "whsec_c2VjcmV0"),
            other => panic!("{other:?}"),
        }
        let c = with_env(
            &["--linq.api-key", "k", "--webhook.listen-address", ":0"],
            &[("LINQ_WEBHOOK_SECRET", "not base64!")],
        );
        assert_eq!(config_error(&c), "invalid value for LINQ_WEBHOOK_SECRET: the signing secret is not whsec_ followed by base64 (as Linq issues it), so Standard Webhooks signatures cannot be verified");
    }

    #[test]
    fn log_levels_are_levels_or_directives() {
        for good in [
            "info",
            "DEBUG",
            "off",
            "warn,linq_exporter=debug",
            "linq_exporter::webhook=trace",
        ] {
            assert!(cli(&["--demo", "--log.level", good]).is_ok(), "{good}");
        }
        for bad in [
            "verbose",
            "info,verbose",
            "linq_exporter=verbose",
            "",
            "info,",
        ] {
            let err = cli(&["--demo", "--log.level", bad])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("--log.level"), "{bad}: {err}");
        }
        let err = cli(&["--demo", "--log.level", "verbose"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("\"verbose\" is not a level (error, warn, info, debug, trace, off) nor a target=level directive"),
            "{err}"
        );
    }

    #[test]
    fn webhook_flags_without_the_receiver_are_refused() {
        for (args, flag) in [
            (
                &["--webhook.signing-secret", "whsec_c2VjcmV0"][..],
                "--webhook.signing-secret",
            ),
            (
                &["--webhook.signing-secret-file", "/f"][..],
                "--webhook.signing-secret-file",
            ),
            (&["--webhook.path", "/hooks"][..], "--webhook.path"),
            (&["--webhook.max-age", "1m"][..], "--webhook.max-age"),
        ] {
            let mut full = vec!["--linq.api-key", "k"];
            full.extend_from_slice(args);
            for c in [
                cli(&full).unwrap_or_else(|e| panic!("{e}")),
                with_env(&full, &[]),
            ] {
                assert_eq!(
                    config_error(&c),
                    format!("invalid value for {flag}: needs --webhook.listen-address (env LINQ_EXPORTER_WEBHOOK_LISTEN_ADDRESS): the webhook receiver is off without it")
                );
            }
        }
        // The SDK's variable alone does not, whatever its value, nor does it conflict with a
        // flag when the receiver is off: it may be set for the SDK, not for us.
        for value in ["whsec_c2VjcmV0", "not base64!"] {
            let c = with_env(&["--linq.api-key", "k"], &[("LINQ_WEBHOOK_SECRET", value)]);
            assert!(
                Config::try_from(&c).is_ok_and(|c| c.webhook.is_none()),
                "{value}"
            );
            let c = with_env(&["--demo"], &[("LINQ_WEBHOOK_SECRET", value)]);
            let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                matches!(cfg.webhook.map(|w| w.secret), Some(WebhookSecret::Value(s)) if s.expose() == DEMO_WEBHOOK_SECRET)
            );
        }
    }

    #[test]
    fn a_signing_secret_that_cannot_verify_standard_webhooks_is_refused() {
        let c = cli(&[
            "--linq.api-key",
            "k",
            "--webhook.listen-address",
            ":0",
            "--webhook.signing-secret",
            "my-plain-password",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let err = config_error(&c);
        assert_eq!(err, "invalid value for --webhook.signing-secret: the signing secret is not whsec_ followed by base64 (as Linq issues it), so Standard Webhooks signatures cannot be verified");
        assert!(!err.contains("my-plain-password"));
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
    fn a_webhook_listener_needs_a_secret_and_names_both_flags() {
        let c = cli(&[
            "--linq.api-key",
            "k",
            "--webhook.listen-address",
            "127.0.0.1:0",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let err = Config::try_from(&c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for needle in [
            "--webhook.signing-secret-file",
            "--webhook.signing-secret ",
            "LINQ_WEBHOOK_SIGNING_SECRET_FILE",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        // With a secret it is on; without the address it is off; the demo turns it on itself.
        let c = cli(&[
            "--linq.api-key",
            "k",
            "--webhook.listen-address",
            ":9000",
            "--webhook.signing-secret",
            "whsec_c2VjcmV0",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        let w = cfg.webhook.expect("on");
        assert_eq!(
            (w.path.as_str(), w.max_age),
            ("/webhook", Duration::from_secs(300))
        );
        assert!(!format!("{:?}", w.secret).contains("c2VjcmV0"));
        let c = cli(&["--linq.api-key", "k"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(Config::try_from(&c)
            .map(|c| c.webhook.is_none())
            .unwrap_or(false));
        let c = cli(&["--demo"]).unwrap_or_else(|e| panic!("{e}"));
        let cfg = Config::try_from(&c).unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg
            .webhook
            .is_some_and(|w| w.listen_address.ip().is_loopback()));
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
