//! The Linq API client: one keep-alive `reqwest` client, bearer auth, a per-request timeout,
//! retries with exponential backoff and full jitter (honouring `Retry-After`, `Retry-After-Ms`
//! and `x-should-retry`), an optional client-side request rate limit, and a count of every
//! response, failed attempt and retry in the self metrics.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, USER_AGENT};
use tokio::time::Instant;

use crate::api::error::ApiError;
use crate::api::models;
use crate::telemetry::SelfMetrics;

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

/// Spaces requests evenly, across every caller sharing it.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimiter {
    /// At most `per_second` requests a second.
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// Waits for this caller's slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// API base URL, no trailing slash.
    pub base_url: String,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Client-side request rate limit.
    pub max_requests_per_second: Option<f64>,
    /// Bound on a response body, in bytes (`--linq.max-response-size`).
    pub max_response_size: u64,
}

/// The Linq API client.
#[derive(Debug)]
pub struct LinqClient {
    http: reqwest::Client,
    opts: ClientOptions,
    limiter: Option<RateLimiter>,
    metrics: Arc<SelfMetrics>,
}

/// The longest error body kept for a log line.
const MAX_MESSAGE: usize = 200;

/// How much of an error response's body is read for its Linq error envelope; the rest is
/// dropped with the connection.
const MAX_ERROR_BODY: u64 = 64 * 1024;

impl LinqClient {
    /// Builds the client.
    pub fn new(opts: ClientOptions, metrics: Arc<SelfMetrics>) -> Result<Self, reqwest::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("linq-exporter/", env!("CARGO_PKG_VERSION"))),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(opts.request_timeout)
            .connect_timeout(opts.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        let limiter = opts
            .max_requests_per_second
            .filter(|r| *r > 0.0)
            .map(RateLimiter::new);
        Ok(LinqClient {
            http,
            opts,
            limiter,
            metrics,
        })
    }

    /// The self metrics this client counts into.
    pub fn metrics(&self) -> &SelfMetrics {
        &self.metrics
    }

    /// `GET {base}{endpoint}?{query}` with retries; returns the body of a 2xx response. Every
    /// failed attempt is counted in the self metrics.
    pub async fn get(
        &self,
        endpoint: &'static str,
        key: &Secret,
        query: &[(&str, &str)],
    ) -> Result<Bytes, ApiError> {
        self.get_counting(endpoint, key, query, &mut Errors::Count)
            .await
    }

    /// Like [`LinqClient::get`], but the failed attempts are kept in the returned list instead of
    /// being counted: for a speculative request (the walk's prefetch) whose errors count only if
    /// the walk turns out to need its answer (see [`LinqClient::count_errors`]).
    pub async fn get_deferred(
        &self,
        endpoint: &'static str,
        key: &Secret,
        query: &[(&str, &str)],
    ) -> (Result<Bytes, ApiError>, Vec<ApiError>) {
        let mut errors = Errors::Defer(Vec::new());
        let result = self.get_counting(endpoint, key, query, &mut errors).await;
        let errors = match errors {
            Errors::Defer(v) => v,
            Errors::Count => Vec::new(),
        };
        (result, errors)
    }

    /// Counts failed attempts that [`LinqClient::get_deferred`] kept.
    pub fn count_errors(&self, endpoint: &'static str, errors: &[ApiError]) {
        for e in errors {
            self.metrics.api_error(endpoint, e);
        }
    }

    async fn get_counting(
        &self,
        endpoint: &'static str,
        key: &Secret,
        query: &[(&str, &str)],
        errors: &mut Errors,
    ) -> Result<Bytes, ApiError> {
        let url = format!("{}{}", self.opts.base_url, endpoint);
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                ApiError::Connect {
                    endpoint,
                    reason: "the API key contains characters not allowed in an HTTP header".into(),
                }
            })?;
        auth.set_sensitive(true);
        let mut attempt: u32 = 0;
        loop {
            if let Some(l) = &self.limiter {
                l.acquire().await;
            }
            let started = Instant::now();
            let outcome = self.attempt(endpoint, &url, &auth, query).await;
            self.metrics
                .api_duration
                .with_label_values(&[endpoint])
                .observe(started.elapsed().as_secs_f64());
            let (err, hint) = match outcome {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            match errors {
                Errors::Count => self.metrics.api_error(endpoint, &err),
                Errors::Defer(kept) => kept.push(err.clone()),
            }
            // A body past the bound is never retried, whatever the server says: the next
            // attempt would stream the same endless body.
            let retryable = !matches!(err, ApiError::TooLarge { .. })
                && hint.should_retry.unwrap_or_else(|| default_retryable(&err));
            if !retryable || attempt >= self.opts.retry.max_retries {
                return Err(err);
            }
            let wait = match hint.retry_after {
                Some(after) if after > self.opts.retry.cap => {
                    tracing::warn!(endpoint, requested = ?after, cap = ?self.opts.retry.cap, "Retry-After above the backoff cap; waiting the cap");
                    self.opts.retry.cap
                }
                Some(after) => after,
                None => full_jitter(self.opts.retry, attempt),
            };
            attempt += 1;
            self.metrics
                .api_retries
                .with_label_values(&[endpoint])
                .inc();
            tracing::debug!(endpoint, attempt, wait = ?wait, error = %err, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        endpoint: &'static str,
        url: &str,
        auth: &HeaderValue,
        query: &[(&str, &str)],
    ) -> Result<Bytes, (ApiError, RetryHint)> {
        let transport = |e: reqwest::Error| (self.classify(endpoint, &e), RetryHint::default());
        let resp = self
            .http
            .get(url)
            .header(AUTHORIZATION, auth.clone())
            .query(query)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        self.metrics
            .api_requests
            .with_label_values(&[endpoint, status.as_str()])
            .inc();
        let hint = RetryHint::from_headers(resp.headers());
        if status.is_success() {
            return read_bounded(resp, self.opts.max_response_size)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge => (
                        ApiError::TooLarge {
                            endpoint,
                            limit: self.opts.max_response_size,
                        },
                        RetryHint::default(),
                    ),
                    BodyError::Transport(e) => transport(e),
                });
        }
        // An error body is only read for its envelope: its head is enough, and a proxy's
        // endless error page must not be buffered either.
        let body = match read_bounded(resp, MAX_ERROR_BODY).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => Bytes::new(),
            Err(BodyError::Transport(e)) => return Err(transport(e)),
        };
        let (code, message, trace_id) = match serde_json::from_slice::<models::ErrorEnvelope>(&body)
        {
            Ok(env) => (env.error.code, env.error.message, env.trace_id),
            Err(_) => (None, None, None),
        };
        let message = message.map(|mut m| {
            if m.len() > MAX_MESSAGE {
                let mut cut = MAX_MESSAGE;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
            }
            m
        });
        Err((
            ApiError::Http {
                endpoint,
                status: status.as_u16(),
                code,
                message,
                trace_id: trace_id.map(|t| t.chars().take(64).collect()),
            },
            hint,
        ))
    }

    fn classify(&self, endpoint: &'static str, e: &reqwest::Error) -> ApiError {
        if e.is_timeout() {
            return ApiError::Timeout {
                endpoint,
                timeout: self.opts.request_timeout,
            };
        }
        // The innermost cause says most ("connection refused", "connection reset").
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        ApiError::Connect { endpoint, reason }
    }
}

/// Where [`LinqClient`] puts a failed attempt: counted at once, or kept for later.
enum Errors {
    Count,
    Defer(Vec<ApiError>),
}

/// Why a body could not be read.
enum BodyError {
    /// Past the bound.
    TooLarge,
    /// The connection failed or timed out mid-body.
    Transport(reqwest::Error),
}

/// Reads a response body of at most `limit` bytes. A `Content-Length` above the bound fails at
/// once, without reading; otherwise the body is read chunk by chunk and abandoned (the
/// connection dropped) as soon as it passes the bound, so memory stays within `limit` whatever
/// the server streams.
async fn read_bounded(mut resp: reqwest::Response, limit: u64) -> Result<Bytes, BodyError> {
    let declared = resp.content_length();
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    // The chunks are kept as they arrive and joined once at the end: no buffer doubling while
    // reading, so an endless body costs at most `limit` before it is dropped.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len: u64 = 0;
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        len += chunk.len() as u64;
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        chunks.push(chunk);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut body = bytes::BytesMut::with_capacity(len as usize);
            for c in &chunks {
                body.extend_from_slice(c);
            }
            body.freeze()
        }
    })
}

/// What the response headers say about retrying.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct RetryHint {
    /// `x-should-retry`, which overrides the status rule.
    pub should_retry: Option<bool>,
    /// `Retry-After-Ms` or `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl RetryHint {
    /// Reads the hint from response headers.
    pub fn from_headers(h: &HeaderMap) -> Self {
        let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let should_retry = match text("x-should-retry") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        let retry_after = text("retry-after-ms")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .or_else(|| text("retry-after").and_then(parse_retry_after));
        RetryHint {
            should_retry,
            retry_after,
        }
    }
}

/// `Retry-After`: delay seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// 408, 409, 429, 5xx, timeouts and connection errors are worth another try; other statuses and
/// decode errors are not.
pub fn default_retryable(err: &ApiError) -> bool {
    match err {
        ApiError::Http { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
        ApiError::Timeout { .. } | ApiError::Connect { .. } => true,
        ApiError::Decode { .. } | ApiError::TooLarge { .. } => false,
    }
}

/// Full jitter: a uniform wait in `[0, min(cap, base * 2^attempt)]`.
pub fn full_jitter(policy: RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy
        .base
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(policy.cap);
    let secs = rand::rng().random_range(0.0..=ceiling.as_secs_f64());
    Duration::from_secs_f64(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let future =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let d = parse_retry_after(&future).expect("date");
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn hints_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        h.insert("x-should-retry", HeaderValue::from_static("false"));
        let hint = RetryHint::from_headers(&h);
        assert_eq!(hint.retry_after, Some(Duration::from_millis(1500)));
        assert_eq!(hint.should_retry, Some(false));
        assert_eq!(
            RetryHint::from_headers(&HeaderMap::new()),
            RetryHint::default()
        );
    }

    #[test]
    fn retryable_statuses() {
        let http = |status| ApiError::Http {
            endpoint: "/v3/chats",
            status,
            code: None,
            message: None,
            trace_id: None,
        };
        for s in [408, 409, 429, 500, 502, 503, 504] {
            assert!(default_retryable(&http(s)), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!default_retryable(&http(s)), "{s}");
        }
        assert!(!default_retryable(&ApiError::Decode {
            endpoint: "/v3/chats",
            reason: String::new()
        }));
    }

    #[test]
    fn jitter_stays_under_the_ceiling() {
        let p = RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        };
        for attempt in 0..10 {
            let ceiling = Duration::from_millis(500 * (1 << attempt)).min(p.cap);
            for _ in 0..50 {
                assert!(full_jitter(p, attempt) <= ceiling);
            }
        }
    }
}
