//! Test harness: a scripted fake Linq API on 127.0.0.1:0 that records every request, and the
//! real exporter (`linq_exporter::run`) on 127.0.0.1:0 pointed at it. Every wait is bounded.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Parser;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod pki;

pub const KEY: &str = "sk_test_do_not_leak_4f9a";

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(body: Value) -> Self {
        Reply {
            status: 200,
            headers: vec![],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn raw(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn error(status: u16, code: i64) -> Self {
        Reply::raw(
            status,
            &json!({"success": false, "error": {"status": status, "code": code, "message": "scripted"}, "trace_id": "t"})
                .to_string(),
        )
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// A recorded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub at: Instant,
    pub path: String,
    pub query: HashMap<String, String>,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
}

type Key = (String, Option<String>, Option<String>);

#[derive(Default)]
struct FakeState {
    /// (path, from, cursor) → replies; the last reply repeats.
    script: Mutex<HashMap<Key, VecDeque<Reply>>>,
    requests: Mutex<Vec<Recorded>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The fake Linq API.
#[derive(Clone)]
pub struct FakeApi {
    pub url: String,
    state: Arc<FakeState>,
}

/// A chat in the wire format.
pub fn chat(
    id: &str,
    me: &str,
    service: Option<&str>,
    score: Option<f64>,
    status: Option<&str>,
) -> Value {
    let mut c = json!({
        "id": id,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-05-01T00:00:00Z",
        "display_name": format!("Chat {id}"),
        "service": service,
        "is_archived": false,
        "is_group": false,
        "handles": [
            {"id": format!("{id}-me"), "handle": me, "service": service.unwrap_or("SMS"), "joined_at": "2026-01-01T00:00:00Z", "is_me": true, "status": "active"},
            {"id": format!("{id}-o"), "handle": "+15550009999", "service": service.unwrap_or("SMS"), "joined_at": "2026-01-01T00:00:00Z", "is_me": false, "status": "active"}
        ]
    });
    if let Some(s) = score {
        c["health_score"] =
            json!({"reason": "r", "score": s, "updated_at": "2026-05-01T00:00:00Z"});
    }
    if let Some(s) = status {
        c["health_status"] =
            json!({"status": s, "doc_url": null, "updated_at": "2026-05-02T00:00:00Z"});
    }
    c
}

pub fn page(chats: Vec<Value>, next: Option<&str>) -> Reply {
    Reply::json(json!({"chats": chats, "next_cursor": next}))
}

async fn handle(
    State(state): State<Arc<FakeState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let n = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(n, Ordering::SeqCst);
    let path = uri.path().to_string();
    state.requests.lock().unwrap().push(Recorded {
        at: Instant::now(),
        path: path.clone(),
        query: query.clone(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        user_agent: headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    });
    let key = (
        path,
        query.get("from").cloned(),
        query.get("cursor").cloned(),
    );
    let reply = {
        let mut script = state.script.lock().unwrap();
        match script.get_mut(&key) {
            Some(q) if q.len() > 1 => q.pop_front(),
            Some(q) => q.front().cloned(),
            None => None,
        }
    };
    let reply = reply.unwrap_or_else(|| Reply::error(404, 2001));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (k, v) in reply.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

impl FakeApi {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = Router::new()
            .route("/v3/chats", get(handle))
            .route("/v3/phone_numbers", get(handle))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let api = FakeApi {
            url: format!("http://{addr}"),
            state,
        };
        api.phone_numbers(vec![Reply::json(json!({"phone_numbers": []}))]);
        api
    }

    /// Scripts `/v3/phone_numbers` (by default it lists no numbers).
    pub fn phone_numbers(&self, replies: Vec<Reply>) {
        self.script("/v3/phone_numbers", None, None, replies);
    }

    /// Scripts replies for `GET path?from=..&cursor=..` (the last one repeats).
    pub fn script(
        &self,
        path: &str,
        from: Option<&str>,
        cursor: Option<&str>,
        replies: Vec<Reply>,
    ) {
        self.state.script.lock().unwrap().insert(
            (
                path.to_string(),
                from.map(String::from),
                cursor.map(String::from),
            ),
            replies.into(),
        );
    }

    /// Scripts `/v3/chats` for an unfiltered walk.
    pub fn chats(&self, cursor: Option<&str>, replies: Vec<Reply>) {
        self.script("/v3/chats", None, cursor, replies);
    }

    /// Forgets the `/v3/chats` script.
    pub fn clear(&self) {
        self.state
            .script
            .lock()
            .unwrap()
            .retain(|k, _| k.0 != "/v3/chats");
    }

    /// Every recorded request, both endpoints.
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Recorded `/v3/chats` requests.
    pub fn requests(&self) -> Vec<Recorded> {
        self.all_requests()
            .into_iter()
            .filter(|r| r.path == "/v3/chats")
            .collect()
    }

    /// The `cursor` of each `/v3/chats` request, in the order they came.
    pub fn cursors(&self) -> Vec<Option<String>> {
        self.requests()
            .iter()
            .map(|r| r.query.get("cursor").cloned())
            .collect()
    }

    /// Number of `/v3/chats` requests.
    pub fn request_count(&self) -> usize {
        self.requests().len()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

/// The exporter under test, running `linq_exporter::run` on 127.0.0.1:0.
pub struct Exporter {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), linq_exporter::RunError>>,
    http: reqwest::Client,
    metrics_path: String,
}

pub fn config(args: &[&str]) -> linq_exporter::config::Config {
    let mut full = vec!["linq-exporter", "--web.listen-address", "127.0.0.1:0"];
    full.extend_from_slice(args);
    let cli = linq_exporter::config::cli::Cli::try_parse_from(full).expect("flags parse");
    linq_exporter::config::Config::try_from(&cli).expect("config valid")
}

impl Exporter {
    /// Starts the exporter against `api` with `KEY` and fast retries, plus `args`.
    pub async fn start(api: &FakeApi, args: &[&str]) -> Self {
        let mut all = vec![
            "--linq.base-url",
            &api.url,
            "--linq.api-key",
            KEY,
            "--linq.retry-backoff",
            "10ms",
            "--linq.retry-max-backoff",
            "50ms",
        ];
        all.extend_from_slice(args);
        Self::start_with(config(&all)).await
    }

    pub async fn start_with(cfg: linq_exporter::config::Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let metrics_path = cfg.telemetry_path.clone();
        let task = tokio::spawn(linq_exporter::run(cfg, listener, async move {
            let _ = rx.await;
        }));
        Exporter {
            addr,
            shutdown: Some(tx),
            task,
            http: reqwest::Client::new(),
            metrics_path,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("http://{}{}", self.addr, path))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// `/metrics` with an `Accept` header: the content type and the body.
    pub async fn metrics_as(&self, accept: &str) -> (String, Vec<u8>) {
        let r = self
            .http
            .get(format!("http://{}{}", self.addr, self.metrics_path))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (ct, r.bytes().await.unwrap().to_vec())
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = self.get(&self.metrics_path).await;
        assert_eq!(status, 200);
        body
    }

    /// Polls /metrics until `pred` holds; panics with the last body after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let body = self.metrics().await;
            if pred(&body) {
                return body;
            }
            if Instant::now() > deadline {
                panic!("condition not met within {timeout:?}; last /metrics:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` sweeps have ended with `result`.
    pub async fn wait_polls(&self, result: &str, n: u64) -> String {
        let needle = format!("linq_polls_total{{result=\"{result}\"}} ");
        self.wait_for(Duration::from_secs(10), |m| {
            value_of(m, &needle).is_some_and(|v| v >= n as f64)
        })
        .await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("exporter stops within 5s")
            .expect("task joins")
            .expect("run returns Ok");
    }
}

/// The value of the first line starting with `prefix` (a metric name plus labels and a space).
pub fn value_of(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Lines of one metric family (samples only).
pub fn samples<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .collect()
}

/// A port free on 127.0.0.1 now (for listeners the exporter binds itself from a flag).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns true, bounded.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
