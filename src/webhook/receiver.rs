//! The receiver's router and handler, and its signing secret (re-read from its file when it
//! changes, so a rotated Kubernetes Secret needs no restart).
//!
//! Answers: 413 for a body over [`MAX_BODY`] (from `Content-Length`, without reading the rest),
//! 408 for a body not received within `--web.read-header-timeout` of its headers, 401 for a missing or wrong signature or a
//! timestamp outside `--webhook.max-age`, 400 for a verified body that is not a JSON envelope (or
//! a body that broke off before its `Content-Length`),
//! else 200 at once (a duplicate too, counted once). `GET` on the path is 405, any other path 404.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::config::WebhookSecret;
use crate::sweep::state::AppState;
use crate::webhook::dedupe::SeenIds;
use crate::webhook::envelope;
use crate::webhook::metrics::{Rejected, WebhookMetrics};
use crate::webhook::verify::Verifier;

/// The largest body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// How often the secret file is checked for changes.
pub const SECRET_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why the secret could not be loaded (never its contents).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("--webhook.signing-secret-file {path:?}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The secret is empty.
    #[error("the webhook signing secret is empty")]
    Empty,
    /// The secret is not `whsec_` + base64: Standard Webhooks signatures cannot be verified.
    #[error("the webhook signing secret{} is not whsec_ followed by base64 (as Linq issues it), so Standard Webhooks signatures cannot be verified", .0.as_ref().map(|p| format!(" in --webhook.signing-secret-file {p:?}")).unwrap_or_default())]
    NotStandard(Option<PathBuf>),
}

fn load(secret: &WebhookSecret) -> Result<String, SecretError> {
    {
        let text = match secret {
            WebhookSecret::Value(v) => v.expose().to_string(),
            WebhookSecret::File(path) => {
                std::fs::read_to_string(path).map_err(|e| SecretError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
        };
        let text = text.trim().to_string();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        if !crate::config::standard_webhooks_secret(&text) {
            return Err(SecretError::NotStandard(match secret {
                WebhookSecret::File(path) => Some(path.clone()),
                WebhookSecret::Value(_) => None,
            }));
        }
        Ok(text)
    }
}

/// What the handler shares.
#[derive(Debug)]
pub struct Receiver {
    verifier: RwLock<Arc<Verifier>>,
    max_age: Duration,
    body_timeout: Duration,
    seen: Mutex<SeenIds>,
    metrics: WebhookMetrics,
    state: Arc<AppState>,
}

impl Receiver {
    /// Loads the secret (failing start-up when it cannot be read or is empty), registers the
    /// metrics, and asks the poller for a chat directory with each snapshot.
    pub fn new(
        secret: &WebhookSecret,
        max_age: Duration,
        body_timeout: Duration,
        state: Arc<AppState>,
    ) -> Result<Arc<Self>, ReceiverError> {
        let verifier = Verifier::new(&load(secret)?);
        let metrics = WebhookMetrics::new(&state.metrics)?;
        state.want_directory();
        metrics.init(&state.directory());
        Ok(Arc::new(Receiver {
            verifier: RwLock::new(Arc::new(verifier)),
            max_age,
            body_timeout,
            seen: Mutex::new(SeenIds::default()),
            metrics,
            state,
        }))
    }

    fn verifier(&self) -> Arc<Verifier> {
        match self.verifier.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Keeps the zero series of every (number, service) in step with each new snapshot, and
    /// re-reads a secret file when it changes (an unreadable or empty file keeps the old secret).
    pub fn spawn_upkeep(self: &Arc<Self>, secret: WebhookSecret) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut directory = me.state.subscribe_directory();
            let mut ticker = tokio::time::interval(SECRET_RELOAD_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = load(&secret).ok();
            // A failing file is warned about once per distinct error, not at every check.
            let mut last_error: Option<String> = None;
            loop {
                tokio::select! {
                    changed = directory.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let d = directory.borrow_and_update().clone();
                        me.metrics.init(&d);
                    }
                    _ = ticker.tick() => {
                        if !matches!(secret, WebhookSecret::File(_)) {
                            continue;
                        }
                        let source = secret.clone();
                        let Ok(loaded) = tokio::task::spawn_blocking(move || load(&source)).await else {
                            continue;
                        };
                        match loaded {
                            Ok(s) if last.as_deref() != Some(s.as_str()) => {
                                let v = Arc::new(Verifier::new(&s));
                                match me.verifier.write() {
                                    Ok(mut slot) => *slot = v,
                                    Err(p) => *p.into_inner() = v,
                                }
                                last = Some(s);
                                last_error = None;
                                tracing::info!("webhook signing secret reloaded");
                            }
                            Ok(_) => {
                                if last_error.take().is_some() {
                                    tracing::info!("webhook signing secret file readable again; secret unchanged");
                                }
                            }
                            Err(e) => {
                                let e = e.to_string();
                                if last_error.as_deref() != Some(e.as_str()) {
                                    tracing::warn!(error = %e, "webhook signing secret reload failed; keeping the previous secret (warned once until the error changes)");
                                    last_error = Some(e);
                                }
                            }
                        }
                    }
                }
            }
        })
    }
}

/// Start-up failures of the receiver.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// The secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The metrics registry (a programming error).
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The receiver's router: only `POST {path}`.
pub fn router(receiver: Arc<Receiver>, path: &str) -> Router {
    Router::new()
        .route(path, post(receive))
        .with_state(receiver)
}

fn unix_now() -> (i64, f64) {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    (
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.as_secs_f64(),
    )
}

fn reject(r: &Receiver, why: Rejected, status: StatusCode) -> Response {
    r.metrics.rejected(why);
    (status, format!("{}\n", why.as_str())).into_response()
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Body) -> Response {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return reject(&r, Rejected::TooLarge, StatusCode::PAYLOAD_TOO_LARGE);
    }
    let bytes =
        match tokio::time::timeout(r.body_timeout, axum::body::to_bytes(body, MAX_BODY)).await {
            Ok(Ok(b)) => b,
            // With a Content-Length within the bound, a failed read is a body that broke off;
            // without one (chunked), it is the bound passed while streaming.
            Ok(Err(_)) if declared.is_some() => {
                return reject(&r, Rejected::Malformed, StatusCode::BAD_REQUEST)
            }
            Ok(Err(_)) => return reject(&r, Rejected::TooLarge, StatusCode::PAYLOAD_TOO_LARGE),
            Err(_) => return reject(&r, Rejected::Timeout, StatusCode::REQUEST_TIMEOUT),
        };
    let (now, now_f) = unix_now();
    let verified = match r.verifier().verify(&headers, &bytes, now, r.max_age) {
        Ok(v) => v,
        Err(why) => return reject(&r, why.into(), StatusCode::UNAUTHORIZED),
    };
    let event = match envelope::parse(&bytes) {
        Ok(e) => e,
        Err(_) => return reject(&r, Rejected::Malformed, StatusCode::BAD_REQUEST),
    };
    // One id per event: the `webhook-id` its verified Standard signature covers, else the
    // envelope's `event_id` (both are the same on every retry of a delivery).
    let ids: Vec<&str> = verified
        .webhook_id
        .as_deref()
        .or(event.event_id.as_deref())
        .into_iter()
        .collect();
    if !ids.is_empty() {
        let (duplicate, evicted) = r
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check_and_insert(&ids, now);
        if evicted > 0 {
            r.metrics.evicted(evicted);
        }
        if duplicate {
            r.metrics.rejected(Rejected::Duplicate);
            return (StatusCode::OK, "duplicate\n").into_response();
        }
    }
    let directory = r.state.directory();
    r.metrics.count(&event, &directory, &r.state.metrics, now_f);
    (StatusCode::OK, "ok\n").into_response()
}
