//! Flag value types parsed with `FromStr`, so a bad value fails start-up naming its flag.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

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

/// `--log.level`: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or tracing filter
/// directives (`info,linq_exporter=debug`). A bare word that is no level is refused: tracing
/// would read it as a target name and silence every other line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(pub String);

const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let is_level = |w: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(w.trim()));
        if s.is_empty() {
            return Err("empty; use error, warn, info, debug or trace".into());
        }
        for directive in s.split(',') {
            let d = directive.trim();
            if d.is_empty() {
                return Err(format!("{s:?} has an empty directive"));
            }
            match d.rsplit_once('=') {
                None if !d.contains('[') && !is_level(d) => {
                    return Err(format!(
                        "{d:?} is not a level (error, warn, info, debug, trace, off) nor a target=level directive"
                    ))
                }
                Some((_, level)) if !is_level(level) => {
                    return Err(format!(
                        "{d:?}: {level:?} is not a level (error, warn, info, debug, trace, off)"
                    ))
                }
                _ => {}
            }
        }
        tracing_subscriber::EnvFilter::builder()
            .parse(s)
            .map_err(|e| format!("{s:?} is not a tracing filter: {e}"))?;
        Ok(LogLevel(s.to_string()))
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
