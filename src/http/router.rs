//! The HTTP server (axum): `/metrics` (or the configured path) serves the last published
//! snapshot plus live self metrics, gzip when asked; `/healthz`, `/readyz` and the `/` status
//! page. No handler ever waits on the Linq API.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::format::Format;
use crate::http::status_page;
use crate::http::tls::WebConfigHandle;
use crate::metrics::exposition::{Encoding, Rendered};
use crate::sweep::state::AppState;

/// The router over shared state.
pub fn router(state: Arc<AppState>) -> Router {
    let path = state.telemetry_path.clone();
    Router::new()
        .route(&path, get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(index))
        .with_state(state)
}

/// Only `/healthz` and `/readyz`, for a separate plain-HTTP probe listener
/// (`--web.probe-listen-address`) when TLS with client certificates is on.
pub(crate) fn probe_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Applies `--web.config.file`: basic auth on every path but the probes, and extra headers.
pub(crate) fn with_web_config(router: Router, web: WebConfigHandle) -> Router {
    router.layer(axum::middleware::from_fn_with_state(web, web_guard))
}

async fn web_guard(State(web): State<WebConfigHandle>, req: Request, next: Next) -> Response {
    use crate::http::web_config::AuthOutcome;
    let config = web.current();
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
    let mut resp = match &config.basic_auth {
        Some(auth) if !probe => {
            let header = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            // Cached credentials pass at once; bcrypt runs off the async workers, at most
            // BasicAuth::max_concurrent at a time, and a request that waits too long for a
            // turn gets 429 (docs/tls-and-authentication.md).
            match auth.authorize(header).await {
                AuthOutcome::Allowed => next.run(req).await,
                AuthOutcome::Denied => (
                    StatusCode::UNAUTHORIZED,
                    [(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static(
                            "Basic realm=\"linq-exporter\", charset=\"UTF-8\"",
                        ),
                    )],
                    "Unauthorized\n",
                )
                    .into_response(),
                AuthOutcome::Busy => (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(
                        axum::http::header::RETRY_AFTER,
                        HeaderValue::from_static("1"),
                    )],
                    "Too many authentication attempts in progress\n",
                )
                    .into_response(),
            }
        }
        _ => next.run(req).await,
    };
    for (name, value) in &config.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

/// Whether `Accept-Encoding` admits gzip (`gzip`, `x-gzip` or `*`, with a non-zero q).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && q > 0.0
        })
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let published = state.published();
    let mut format = Format::negotiate(accept);
    if format == Format::Protobuf {
        state.protobuf_asked(SystemTime::now());
        // The protobuf form is rendered by the sweeps after the first protobuf scrape; until
        // then the scrape gets the best of the other formats it accepts.
        if published.as_ref().is_some_and(|p| p.protobuf.is_none()) {
            format = Format::negotiate_among(accept, false);
        }
    }
    let mut tail = Vec::with_capacity(8 * 1024);
    state.metrics.render(format, &mut tail);
    let empty;
    let rendered: &Rendered = match (&published, Encoding::of(format)) {
        (Some(p), Encoding::Text) => &p.rendered,
        (Some(p), Encoding::Protobuf) if p.protobuf.is_some() => {
            p.protobuf.as_ref().unwrap_or(&p.rendered)
        }
        _ => {
            empty = Rendered::empty();
            &empty
        }
    };
    let mut resp_headers = HeaderMap::new();
    resp_headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    resp_headers.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    let gzip = accepts_gzip(&headers);
    if !gzip {
        // Plain bytes are kept by the sweeps from now on (see AppState::wants_plain).
        state.plain_asked(SystemTime::now());
    }
    let body = if gzip {
        resp_headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let chunks = rendered.gzip_with_tail(&tail);
        let len = chunks.iter().map(|b| b.len() as u64).sum();
        axum::body::Body::new(Chunks(chunks.into_iter(), len))
    } else {
        let chunks = rendered.plain_with_tail(tail);
        let len = chunks.remaining();
        axum::body::Body::new(Chunks(chunks, len))
    };
    (resp_headers, body).into_response()
}

/// A response body of chunks, sent without copying them into one buffer, and the bytes still
/// to come.
struct Chunks<I>(I, u64);

impl<I: Iterator<Item = bytes::Bytes> + Unpin + Send + 'static> http_body::Body for Chunks<I> {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let next = self.0.next();
        if let Some(b) = &next {
            self.1 = self.1.saturating_sub(b.len() as u64);
        }
        std::task::Poll::Ready(next.map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.1 == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.1)
    }
}

/// A probe answer: 200 with `ok`, or 503 with `failed: reason`.
fn probe(result: Result<(), String>, ok: &'static str, failed: &str) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, ok).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{failed}: {reason}\n"),
        )
            .into_response(),
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    probe(state.poller_health(), "ok\n", "unhealthy")
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    probe(state.readiness(SystemTime::now()), "ready\n", "not ready")
}

async fn index(State(state): State<Arc<AppState>>) -> Response {
    let page = status_page::render(&state, SystemTime::now());
    (
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(page),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("deflate, gzip;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
