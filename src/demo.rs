//! The demo simulator: an in-process fake of the Linq API (`GET /v3/chats` with `from`, `to`,
//! `limit` and `cursor`, `GET /v3/chats/{id}`, `GET /v3/phone_numbers`, and the
//! `/v3/webhook-subscriptions` endpoints) with thousands of synthetic chats over a few numbers,
//! a realistic mix of services (RCS-only lines carry no iMessage chats), groups, archived chats,
//! participant statuses and both health fields, health that changed at different times, values
//! that drift over time, opaque cursors, JSON error bodies for every error (an unknown path
//! too), and injectable faults (500s, 429s with `Retry-After`, 401s, slow and malformed pages).
//! It answers in the shapes the official SDK (`linq-python`) validates (`scripts/sdk-check.py`
//! proves it). `--demo`, the integration tests and the benchmarks all use it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post as http_post};
use axum::Router;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub use crate::config::{SimConfig, DEMO_WEBHOOK_SECRET};

/// `count` distinct E.164 numbers for a simulated account.
pub fn numbers(count: usize) -> Vec<String> {
    (0..count.max(1))
        .map(|i| format!("+1415555{:04}", 100 + i))
        .collect()
}

/// The key the simulator accepts.
pub const DEMO_KEY: &str = "demo-key-not-secret";

/// splitmix64: a fast, well-mixed deterministic hash of an integer.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform fraction in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether the account's `k`th line is RCS-only (it sends RCS and SMS, never iMessage).
fn rcs_only_line(k: usize) -> bool {
    k % 3 == 2
}

/// `seconds` before `t`, as RFC 3339 with milliseconds.
fn before(t: SystemTime, seconds: f64) -> String {
    let t = t
        .checked_sub(Duration::from_secs_f64(seconds.max(0.0)))
        .unwrap_or(t);
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A log-normal draw with this median and this 99th percentile, from a uniform `u` in [0, 1).
fn log_normal(u: f64, median: f64, p99: f64) -> f64 {
    // The standard normal quantile of u (Acklam's rational approximation, |error| < 1.2e-9).
    let z = normal_quantile(u.clamp(1e-12, 1.0 - 1e-12));
    let sigma = (p99 / median).ln() / 2.326_347_874;
    median * (sigma * z).exp()
}

fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

struct SimChat {
    id: String,
    number: usize,
    service: Option<&'static str>,
    is_group: bool,
    is_archived: bool,
    others: Vec<(String, &'static str, Option<&'static str>)>,
    has_score: bool,
    has_status: bool,
    base_score: f64,
    display_name: String,
    /// How long before the simulator started the chat was created, and its health last changed.
    created_ago: f64,
    health_ago: f64,
}

/// A subscription made through the simulator's `/v3/webhook-subscriptions`.
#[derive(Clone)]
struct SimSubscription {
    id: String,
    target_url: String,
    events: Vec<String>,
    created_at: String,
}

struct Sim {
    cfg: SimConfig,
    chats: Vec<SimChat>,
    /// Chat indexes per number, for `from` walks.
    by_number: Vec<Vec<usize>>,
    /// Chat index by id, for `GET /v3/chats/{id}`.
    by_id: HashMap<String, usize>,
    started: SystemTime,
    subscriptions: Mutex<Vec<SimSubscription>>,
}

fn generate(cfg: &SimConfig) -> Sim {
    let n_numbers = cfg.numbers.len().max(1);
    let mut chats = Vec::with_capacity(cfg.chats);
    let mut by_number = vec![Vec::new(); n_numbers];
    for i in 0..cfg.chats {
        let h = mix(i as u64 ^ 0x11AA);
        let u = |salt: u64| unit(mix(h ^ salt));
        let number = (mix(h ^ 7) % n_numbers as u64) as usize;
        let service = match u(1) {
            // An RCS-only line carries RCS where an iMessage line would carry iMessage.
            x if x < 0.68 && rcs_only_line(number) => Some("RCS"),
            x if x < 0.68 => Some("iMessage"),
            x if x < 0.88 => Some("SMS"),
            x if x < 0.98 => Some("RCS"),
            _ => None,
        };
        let is_group = u(2) < 0.12;
        let is_archived = u(3) < 0.15;
        let n_others = if is_group {
            2 + (mix(h ^ 4) % 4) as usize
        } else {
            1
        };
        let others = (0..n_others)
            .map(|k| {
                let hk = mix(h ^ (100 + k as u64));
                let handle = if unit(hk) < 0.1 {
                    format!("user{}@example.com", hk % 100_000)
                } else {
                    format!("+1{:010}", 2_000_000_000 + hk % 7_999_999_999)
                };
                let hs = service.unwrap_or("SMS");
                let status = match unit(mix(hk ^ 5)) {
                    x if x < 0.85 => Some("active"),
                    x if x < 0.93 => Some("left"),
                    x if x < 0.97 => Some("removed"),
                    _ => None,
                };
                (handle, hs, status)
            })
            .collect::<Vec<_>>();
        let display_name = if is_group {
            format!("Group {}", i % 500)
        } else {
            others.first().map(|o| o.0.clone()).unwrap_or_default()
        };
        by_number[number].push(i);
        chats.push(SimChat {
            id: format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                (h >> 32) as u32,
                (h >> 16) as u16,
                (h >> 4) & 0xfff,
                mix(h) & 0xfff,
                mix(h ^ 9) & 0xffff_ffff_ffff
            ),
            number,
            service,
            is_group,
            is_archived,
            others,
            has_score: u(5) < 0.75,
            // The API now sends health_status on every chat (with a doc_url).
            has_status: true,
            base_score: 15.0 + 85.0 * u(8).powf(0.6),
            display_name,
            // Created 1 to 13 months ago; health last changed within the last 30 days, most
            // recently for many (a skew towards now).
            created_ago: 86_400.0 * (31.0 + 365.0 * u(10)),
            health_ago: 86_400.0 * 30.0 * u(11).powi(3),
        });
    }
    let by_id = chats
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.clone(), i))
        .collect();
    Sim {
        cfg: cfg.clone(),
        chats,
        by_number,
        by_id,
        started: SystemTime::now(),
        subscriptions: Mutex::new(Vec::new()),
    }
}

impl Sim {
    fn epoch(&self) -> u64 {
        let secs = SystemTime::now()
            .duration_since(self.started)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        (secs / self.cfg.drift_period.as_secs_f64().max(0.001)) as u64
    }

    fn chat_json(&self, i: usize, epoch: u64) -> Value {
        let c = &self.chats[i];
        let drift = (unit(mix(i as u64 ^ epoch.wrapping_mul(0x1234_5678))) - 0.5) * 30.0;
        let score = (c.base_score + drift).clamp(0.0, 100.0).round();
        let status = if unit(mix(i as u64 ^ 0xDEAD)) < 0.02 {
            "OPTED_OUT"
        } else if score < 30.0 {
            "CRITICAL"
        } else if score < 60.0 {
            "AT_RISK"
        } else {
            "HEALTHY"
        };
        let updated = self.health_updated_at(i, epoch);
        let created = before(self.started, c.created_ago);
        let mut handles = vec![self.owner_handle(i)];
        for (k, (handle, service, status)) in c.others.iter().enumerate() {
            handles.push(json!({
                "id": format!("{}-{k}", c.id), "handle": handle, "service": service,
                "joined_at": created, "is_me": false,
                "left_at": if *status == Some("left") { json!(before(self.started, c.health_ago + 3600.0)) } else { Value::Null },
                "status": status
            }));
        }
        let mut chat = json!({
            "id": c.id,
            "created_at": created,
            "updated_at": updated,
            "display_name": c.display_name,
            "service": c.service,
            "is_archived": c.is_archived,
            "is_group": c.is_group,
            "handles": handles,
        });
        if c.has_score {
            chat["health_score"] = json!({
                "reason": if score < 60.0 { "low reply rate" } else { "healthy engagement" },
                "score": score, "updated_at": updated
            });
        }
        if c.has_status {
            chat["health_status"] = json!({
                "status": status, "doc_url": "https://docs.linqapp.com/chat-health", "updated_at": updated
            });
        }
        chat
    }

    /// When chat `i`'s health last changed: at epoch 0 some time in the last 30 days, each chat
    /// at its own time; later, at a chat's own moment within the current drift period.
    fn health_updated_at(&self, i: usize, epoch: u64) -> String {
        let Some(c) = self.chats.get(i) else {
            return before(self.started, 0.0);
        };
        if epoch == 0 {
            return before(self.started, c.health_ago);
        }
        let period = self.cfg.drift_period.as_secs_f64();
        let at = self.started + Duration::from_secs_f64(epoch as f64 * period);
        before(at, period * unit(mix(i as u64 ^ epoch ^ 0xA77E)))
    }

    /// The account's own handle in chat `i`.
    fn owner_handle(&self, i: usize) -> Value {
        let Some(c) = self.chats.get(i) else {
            return Value::Null;
        };
        let me = self
            .cfg
            .numbers
            .get(c.number.min(self.cfg.numbers.len().saturating_sub(1)))
            .cloned()
            .unwrap_or_default();
        json!({
            "id": format!("{}-me", c.id), "handle": me, "service": c.service.unwrap_or("SMS"),
            "joined_at": before(self.started, c.created_ago), "is_me": true, "left_at": null, "status": "active",
            "line_type": if rcs_only_line(c.number) { "RCS" } else { "iMessage" },
        })
    }

    /// Chat `i`'s current health status, as message events carry it.
    fn health_status(&self, i: usize) -> Value {
        let epoch = self.epoch();
        let chat = self.chat_json(i, epoch);
        chat.get("health_status").cloned().unwrap_or(Value::Null)
    }
}

/// Opaque cursor: the offset, scrambled and checksummed so clients cannot compute it.
fn encode_cursor(offset: usize) -> String {
    let x = offset as u64 ^ 0x5DEE_CE66_D1CE_4E5B;
    format!("c1.{:016x}{:04x}", x, mix(x) & 0xffff)
}

fn decode_cursor(c: &str) -> Option<usize> {
    let hex = c.strip_prefix("c1.")?;
    if hex.len() != 20 {
        return None;
    }
    let x = u64::from_str_radix(&hex[..16], 16).ok()?;
    let check = u64::from_str_radix(&hex[16..], 16).ok()?;
    (mix(x) & 0xffff == check).then_some((x ^ 0x5DEE_CE66_D1CE_4E5B) as usize)
}

/// Any unknown path: a JSON 404 as the API sends, not an empty body.
async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, 2001, "Resource not found")
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "success": false,
            "error": {"status": status.as_u16(), "code": code, "message": message},
            "trace_id": "demo"
        })),
    )
        .into_response()
}

/// Applies latency and request-level faults; `Some` is the fault response.
async fn faults(sim: &Sim, headers: &HeaderMap) -> Option<Response> {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {DEMO_KEY}"));
    if !authorized {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            2004,
            "Missing or invalid authentication token",
        ));
    }
    let (r, slow) = {
        let mut rng = rand::rng();
        (rng.random::<f64>(), rng.random::<f64>() < sim.cfg.slow_rate)
    };
    if slow {
        tokio::time::sleep(sim.cfg.slow_delay).await;
    }
    let c = &sim.cfg;
    if r < c.unauthorized_rate {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            2004,
            "Missing or invalid authentication token",
        ));
    }
    if r < c.unauthorized_rate + c.error_rate {
        return Some(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            3001,
            "Database connection error",
        ));
    }
    if r < c.unauthorized_rate + c.error_rate + c.rate_limit_rate {
        let mut resp = error(StatusCode::TOO_MANY_REQUESTS, 1007, "Rate limit exceeded");
        resp.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return Some(resp);
    }
    None
}

#[derive(Debug, Deserialize)]
struct ChatsQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_chats(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<ChatsQuery>,
) -> Response {
    if let Some(resp) = faults(&sim, &headers).await {
        return resp;
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, 1005, "limit must be from 1 to 100");
    }
    let all: Vec<usize>;
    let mut indexes: &[usize] = match &q.from {
        None => {
            all = (0..sim.chats.len()).collect();
            &all
        }
        Some(from) => match sim.cfg.numbers.iter().position(|n| n == from) {
            Some(k) => &sim.by_number[k],
            None => &[],
        },
    };
    // `to`: only the chats this handle takes part in (the account's own number is in all of
    // them, as the API has it).
    let with_to: Vec<usize>;
    if let Some(to) = q.to.as_deref().filter(|t| !t.is_empty()) {
        with_to = indexes
            .iter()
            .copied()
            .filter(|&i| {
                let c = &sim.chats[i];
                sim.cfg.numbers.get(c.number).is_some_and(|n| n == to)
                    || c.others.iter().any(|(h, _, _)| h == to)
            })
            .collect();
        indexes = &with_to;
    }
    let offset = match q.cursor.as_deref() {
        None => 0,
        Some(c) => match decode_cursor(c) {
            Some(o) => o,
            None => return error(StatusCode::BAD_REQUEST, 1005, "invalid cursor"),
        },
    };
    let end = (offset + limit).min(indexes.len());
    let epoch = sim.epoch();
    let chats: Vec<Value> = indexes
        .get(offset..end)
        .unwrap_or(&[])
        .iter()
        .map(|&i| sim.chat_json(i, epoch))
        .collect();
    let next = (end < indexes.len()).then(|| encode_cursor(end));
    let body = json!({"chats": chats, "next_cursor": next}).to_string();
    if rand::rng().random::<f64>() < sim.cfg.malformed_rate {
        let cut = body.len() / 2;
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            body[..cut].to_string(),
        )
            .into_response();
    }
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

async fn list_phone_numbers(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Some(resp) = faults(&sim, &headers).await {
        return resp;
    }
    let epoch = sim.epoch() / 4;
    let numbers: Vec<Value> = sim
        .cfg
        .numbers
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let status = match unit(mix((k as u64).wrapping_mul(0x9E37_79B9) ^ epoch ^ 0x5EED)) {
                x if x < 0.6 => "HEALTHY",
                x if x < 0.9 => "AT_RISK",
                _ => "CRITICAL",
            };
            json!({
                "id": format!("pn-{k}"), "phone_number": n,
                "forwarding_number": if k == 0 { json!("+15550001111") } else { Value::Null },
                "line_type": if rcs_only_line(k) { "RCS" } else { "iMessage" },
                "capabilities": {"sms": true, "mms": true, "voice": false},
                "reputation": {"status": status, "doc_url": "https://docs.linqapp.com/reputation"}
            })
        })
        .collect();
    axum::Json(json!({ "phone_numbers": numbers })).into_response()
}

async fn get_chat(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(resp) = faults(&sim, &headers).await {
        return resp;
    }
    match sim.by_id.get(&id) {
        Some(&i) => axum::Json(sim.chat_json(i, sim.epoch())).into_response(),
        None => error(StatusCode::NOT_FOUND, 2001, "Chat not found"),
    }
}

/// Every event type a subscription can name.
const WEBHOOK_EVENTS: [&str; 17] = crate::webhook::subscribe::EVENTS;

fn subscription_json(s: &SimSubscription) -> Value {
    json!({"id": s.id, "target_url": s.target_url, "subscribed_events": s.events,
        "is_active": true, "created_at": s.created_at, "updated_at": s.created_at})
}

/// Whether a request carries the simulator's key (the subscription endpoints have no faults).
fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {DEMO_KEY}"))
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        2004,
        "Missing or invalid authentication token",
    )
}

async fn create_subscription(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            1001,
            "Request body is not valid JSON",
        );
    };
    let target = req.get("target_url").and_then(Value::as_str).unwrap_or("");
    if !reqwest::Url::parse(target).is_ok_and(|u| u.scheme() == "https") {
        return error(
            StatusCode::BAD_REQUEST,
            1005,
            "target_url must be an HTTPS URL",
        );
    }
    let events: Vec<String> = req
        .get("subscribed_events")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if events.is_empty() || events.iter().any(|e| !WEBHOOK_EVENTS.contains(&e.as_str())) {
        return error(
            StatusCode::BAD_REQUEST,
            1005,
            "subscribed_events must be a non-empty list of webhook event types",
        );
    }
    let mut subs = match sim.subscriptions.lock() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    let n = subs.len() as u64 + 1;
    let h = mix(n ^ 0x5AB5);
    let sub = SimSubscription {
        id: format!(
            "{:08x}-{:04x}-4{:03x}-b{:03x}-{:012x}",
            (h >> 32) as u32,
            (h >> 16) as u16,
            (h >> 4) & 0xfff,
            mix(h) & 0xfff,
            mix(h ^ 3) & 0xffff_ffff_ffff
        ),
        target_url: target.to_string(),
        events,
        created_at: before(SystemTime::now(), 0.0),
    };
    let mut body = subscription_json(&sub);
    body["signing_secret"] = json!(DEMO_WEBHOOK_SECRET);
    subs.push(sub);
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn list_subscriptions(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let subs = match sim.subscriptions.lock() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let list: Vec<Value> = subs.iter().map(subscription_json).collect();
    axum::Json(json!({ "subscriptions": list })).into_response()
}

async fn get_subscription(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let subs = match sim.subscriptions.lock() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    };
    match subs.iter().find(|s| s.id == id) {
        Some(s) => axum::Json(subscription_json(s)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            2001,
            "Webhook subscription not found",
        ),
    }
}

async fn delete_subscription(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let mut subs = match sim.subscriptions.lock() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    let before_len = subs.len();
    subs.retain(|s| s.id != id);
    if subs.len() == before_len {
        return error(
            StatusCode::NOT_FOUND,
            2001,
            "Webhook subscription not found",
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The simulator's router.
pub fn router(cfg: &SimConfig) -> Router {
    let sim = Arc::new(generate(cfg));
    let latency = cfg.latency;
    Router::new()
        .route("/v3/chats", get(list_chats))
        .route("/v3/chats/{id}", get(get_chat))
        .route("/v3/phone_numbers", get(list_phone_numbers))
        .route(
            "/v3/webhook-subscriptions",
            http_post(create_subscription).get(list_subscriptions),
        )
        .route(
            "/v3/webhook-subscriptions/{id}",
            get(get_subscription).delete(delete_subscription),
        )
        .fallback(not_found)
        .with_state(sim)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                respond_after(latency, next.run(req)).await
            },
        ))
}

/// The simulator's latency is each response's time, as a real API's is: the page is built
/// while the time runs, then the answer waits for the rest of it. (Sleeping first and building
/// after would add the simulator's own CPU time to every request, which on a small machine
/// shared with the exporter under test is measured as the exporter's.)
async fn respond_after(
    latency: Duration,
    response: impl std::future::Future<Output = Response>,
) -> Response {
    let started = tokio::time::Instant::now();
    let response = response.await;
    if !latency.is_zero() {
        tokio::time::sleep_until(started + latency).await;
    }
    response
}

/// Sends the receiver at `url` signed webhook events about the simulated account, as Linq
/// does (both header sets), one every `cfg.webhook_interval` (about 20 a second by default): mostly message sent, delivered and read, some
/// received, about 2 % of sent messages failed (codes 3007 and 4001), some participant and chat events, each
/// line's status at the start (the last line FLAGGED) and every few minutes, and now and then a
/// forged, a stale and a replayed request so the rejection counters move.
pub fn spawn_webhook_sender(
    cfg: &SimConfig,
    url: String,
    secret: String,
) -> tokio::task::JoinHandle<()> {
    let sim = generate(cfg);
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .danger_accept_invalid_certs(true)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "demo webhook sender could not start");
                return;
            }
        };
        let mut ticker =
            tokio::time::interval(sim.cfg.webhook_interval.max(Duration::from_millis(1)));
        let mut last: Option<Delivery> = None;
        for n in 0u64.. {
            ticker.tick().await;
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            // A replay of the previous delivery, byte for byte: counted once.
            if n % 150 == 149 {
                if let Some((headers, body)) = &last {
                    post(&client, &url, headers, body.clone()).await;
                    continue;
                }
            }
            let body = demo_envelope(&sim, n, SystemTime::now())
                .to_string()
                .into_bytes();
            let id = format!("evt_{:016x}", mix(n ^ 0xE7E7));
            let (signing_secret, ts) = match n % 500 {
                // A forged request (signed with another secret).
                199 => ("whsec_Zm9yZ2VkLXNlY3JldA==", now),
                // A stale one (an old capture replayed).
                399 => (secret.as_str(), now - 3600),
                _ => (secret.as_str(), now),
            };
            let headers =
                crate::webhook::verify::sign_both(signing_secret, &format!("msg_{id}"), ts, &body);
            post(&client, &url, &headers, body.clone()).await;
            last = Some((headers, body));
        }
    })
}

/// A signed request: its headers and body.
type Delivery = (Vec<(String, String)>, Vec<u8>);

async fn post(client: &reqwest::Client, url: &str, headers: &[(String, String)], body: Vec<u8>) {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Err(e) = req.send().await {
        tracing::debug!(error = %e, "demo webhook delivery failed");
    }
}

/// Linq's webhook lag: the event is created this long before it is sent (50 ms to a few s).
fn webhook_lag(n: u64) -> f64 {
    (0.05 + log_normal(unit(mix(n ^ 0x1A6)), 0.25, 2.5)).min(5.0)
}

/// Delivery latency, `delivered_at - sent_at`: median 2.5 s, p99 a minute, rare ones minutes.
fn delivery_latency(n: u64) -> f64 {
    log_normal(unit(mix(n ^ 0xDE11)), 2.5, 60.0).min(3600.0)
}

/// Read latency, `read_at - delivered_at`: median 3 minutes, p99 3 hours.
fn read_latency(n: u64) -> f64 {
    log_normal(unit(mix(n ^ 0x12EAD)), 180.0, 10_800.0).min(86_400.0)
}

/// The `n`th demo webhook delivery's body (the 2026-02-03 envelope), sent at `now`.
fn demo_envelope(sim: &Sim, n: u64, now: SystemTime) -> Value {
    let lag = webhook_lag(n);
    let (event_type, data) = demo_event(sim, n, now, lag);
    json!({
        "api_version": "v3", "webhook_version": "2026-02-03", "event_type": event_type,
        "event_id": format!("evt_{:016x}", mix(n ^ 0xE7E7)), "created_at": before(now, lag),
        "trace_id": format!("{:016x}{:016x}", mix(n), mix(n ^ 0x7ACE)),
        "partner_id": "demo-partner", "data": data,
    })
}

/// The `n`th demo event: (event_type, data), created `lag` seconds before `now`. Every field the
/// official SDK's models require is there, and the message timestamps follow the 2026-02-03
/// schemas: sent (and received) carry `sent_at`; delivered adds `delivered_at`; read adds
/// `read_at`, each earlier one further back by a realistic latency.
fn demo_event(sim: &Sim, n: u64, now: SystemTime, lag: f64) -> (&'static str, Value) {
    let numbers = &sim.cfg.numbers;
    // The event happened a moment before it was created.
    let happened = lag + 0.01 + 0.2 * unit(mix(n ^ 0x4A99));
    // Each line's status at the start and every 3,000 events (about 2.5 minutes).
    let cycle = n % 3000;
    if (cycle as usize) < numbers.len() {
        let k = cycle as usize;
        let flagged = k + 1 == numbers.len() && numbers.len() > 1;
        return (
            "phone_number.status_updated",
            json!({
                "phone_number": numbers[k],
                "previous_status": "ACTIVE",
                "new_status": if flagged { "FLAGGED" } else { "ACTIVE" },
                "previous_reputation": "HEALTHY",
                "new_reputation": if flagged { "CRITICAL" } else { "HEALTHY" },
                "changed_at": before(now, happened),
            }),
        );
    }
    let i = (mix(n ^ 0xC4A7) % sim.chats.len().max(1) as u64) as usize;
    let Some(chat) = sim.chats.get(i) else {
        return ("chat.typing_indicator.started", json!({}));
    };
    let service = chat.service.unwrap_or("SMS");
    let owner = sim.owner_handle(i);
    let other = chat.others.first().map_or(Value::Null, |(handle, svc, _)| {
        json!({"id": format!("{}-0", chat.id), "handle": handle, "service": svc, "is_me": false,
            "status": "active", "joined_at": before(sim.started, chat.created_ago), "left_at": null})
    });
    let message = |direction: &str, delivered: bool, read: bool| {
        let read_at = happened;
        let delivered_at = if read {
            read_at + read_latency(n)
        } else {
            happened
        };
        let sent_at = if delivered {
            delivered_at + delivery_latency(n)
        } else {
            happened
        };
        json!({
            "chat": {"id": chat.id, "is_group": chat.is_group, "owner_handle": owner,
                "health_status": sim.health_status(i)},
            "id": format!("msg-{:016x}", mix(n)), "direction": direction, "idempotency_key": null,
            "sender_handle": if direction == "inbound" { other.clone() } else { owner.clone() },
            "parts": [{"type": "text", "value": "Hello from the demo"}],
            "service": service, "preferred_service": null, "effect": null, "reply_to": null,
            "sent_at": before(now, sent_at),
            "delivered_at": if delivered { json!(before(now, delivered_at)) } else { Value::Null },
            "read_at": if read { json!(before(now, read_at)) } else { Value::Null },
        })
    };
    let participant = |status: &str, left: bool| {
        json!({"id": format!("{}-p{:x}", chat.id, mix(n) & 0xffff), "handle": "+15550001234",
            "is_me": false, "service": service, "status": status,
            "joined_at": before(now, if left { happened + 86_400.0 } else { happened }),
            "left_at": if left { json!(before(now, happened)) } else { Value::Null }})
    };
    let x = unit(mix(n ^ 0x5EED_F00D));
    match x {
        x if x < 0.40 => ("message.sent", message("outbound", false, false)),
        x if x < 0.70 => ("message.delivered", message("outbound", true, false)),
        x if x < 0.86 => ("message.read", message("outbound", true, true)),
        x if x < 0.955 => ("message.received", message("inbound", false, false)),
        // About 2 % of sent messages fail (0.8 % of all events).
        x if x < 0.963 => (
            "message.failed",
            json!({"chat_id": chat.id, "message_id": format!("msg-{:016x}", mix(n)),
                "code": if n % 2 == 0 { 3007 } else { 4001 },
                "reason": "Request expired before being processed", "service": service,
                "failed_at": before(now, happened)}),
        ),
        x if x < 0.985 => (
            "participant.added",
            json!({"chat_id": chat.id, "handle": "+15550001234",
                "participant": participant("active", false),
                "added_at": before(now, happened)}),
        ),
        x if x < 0.99 => (
            "participant.removed",
            json!({"chat_id": chat.id, "handle": "+15550001234",
                "participant": participant("removed", true),
                "removed_at": before(now, happened)}),
        ),
        _ => {
            // A new chat: created just now, HEALTHY as every chat starts.
            let at = before(now, happened);
            let mut handles = vec![owner];
            handles.extend(other.is_object().then_some(other));
            (
                "chat.created",
                json!({"id": chat.id, "display_name": chat.display_name, "service": service,
                    "is_group": chat.is_group, "handles": handles, "created_at": at, "updated_at": at,
                    "health_status": {"status": "HEALTHY", "doc_url": "https://docs.linqapp.com/chat-health", "updated_at": at}}),
            )
        }
    }
}

/// Serves the simulator on `listener` until the task is dropped; returns its base URL.
pub fn spawn(
    cfg: &SimConfig,
    listener: TcpListener,
) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let addr: SocketAddr = listener.local_addr()?;
    let app = router(cfg);
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(crate::http::conn::no_delay(listener), app).await {
            tracing::error!(error = %e, "demo simulator stopped");
        }
    });
    Ok((format!("http://{addr}"), handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        for o in [0, 1, 100, 99_999] {
            assert_eq!(decode_cursor(&encode_cursor(o)), Some(o));
        }
        assert_eq!(decode_cursor("100"), None);
        let mut forged = encode_cursor(100);
        forged.replace_range(5..6, "f");
        assert_ne!(decode_cursor(&forged), Some(100));
    }

    #[test]
    fn generated_chats_decode_and_cover_every_kind() {
        let sim = generate(&SimConfig::default());
        let mut statuses = std::collections::BTreeSet::new();
        let mut services = std::collections::BTreeSet::new();
        let (mut groups, mut archived, mut scored) = (0, 0, 0);
        for i in 0..sim.chats.len() {
            let text = sim.chat_json(i, 0).to_string();
            let chat: crate::api::models::Chat<'_> = serde_json::from_str(&text).expect("decodes");
            if let Some(s) = &chat.health_status {
                statuses.insert(s.status.to_string());
            }
            services.insert(chat.service.as_deref().unwrap_or("unknown").to_string());
            groups += usize::from(chat.is_group);
            archived += usize::from(chat.is_archived == Some(true));
            scored += usize::from(chat.health_score.is_some());
        }
        assert_eq!(statuses.len(), 4, "{statuses:?}");
        assert_eq!(services.len(), 4, "{services:?}");
        assert!(
            groups > 200 && archived > 300 && scored > 2000,
            "{groups} {archived} {scored}"
        );
    }

    fn parse_time(v: &Value) -> chrono::DateTime<chrono::Utc> {
        v.as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|| panic!("not a time: {v}"))
    }

    #[test]
    fn rcs_only_lines_carry_no_imessage_and_health_changed_at_different_times() {
        let sim = generate(&SimConfig::default());
        let mut updated = std::collections::BTreeSet::new();
        for (i, c) in sim.chats.iter().enumerate() {
            if rcs_only_line(c.number) {
                assert_ne!(c.service, Some("iMessage"), "chat {i}");
            }
            let chat = sim.chat_json(i, 0);
            updated.insert(chat["health_status"]["updated_at"].to_string());
            assert!(
                parse_time(&chat["created_at"]) <= parse_time(&chat["health_status"]["updated_at"])
            );
        }
        assert!(sim
            .chats
            .iter()
            .any(|c| rcs_only_line(c.number) && c.service == Some("RCS")));
        assert!(
            updated.len() > 2900,
            "{} distinct updated_at",
            updated.len()
        );
    }

    #[test]
    fn demo_webhook_timestamps_follow_the_schemas_with_realistic_latencies() {
        let sim = generate(&SimConfig::default());
        let now = SystemTime::now();
        let now_utc = chrono::DateTime::<chrono::Utc>::from(now);
        let (mut delivery, mut read) = (Vec::new(), Vec::new());
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..20_000u64 {
            let body = demo_envelope(&sim, n, now);
            let created = parse_time(&body["created_at"]);
            let lag = (now_utc - created).num_milliseconds();
            assert!((50..=5000).contains(&lag), "lag {lag} ms");
            let trace = body["trace_id"].as_str().unwrap_or_default();
            assert!(
                trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
                "{trace}"
            );
            let kind = body["event_type"].as_str().unwrap_or_default().to_string();
            let d = &body["data"];
            if kind.starts_with("message.") && kind != "message.failed" {
                assert!(d["chat"]["health_status"]["status"].is_string(), "{kind}");
                assert!(
                    d["sender_handle"]["id"].is_string()
                        && d["sender_handle"]["joined_at"].is_string()
                );
                let sent = parse_time(&d["sent_at"]);
                assert!(sent < created);
                match kind.as_str() {
                    "message.sent" | "message.received" => {
                        assert!(
                            d["delivered_at"].is_null() && d["read_at"].is_null(),
                            "{kind}"
                        )
                    }
                    "message.delivered" => {
                        assert!(d["read_at"].is_null());
                        let delivered = parse_time(&d["delivered_at"]);
                        assert!(sent < delivered && delivered < created);
                        delivery.push((delivered - sent).num_milliseconds() as f64 / 1000.0);
                    }
                    "message.read" => {
                        let (delivered, r) =
                            (parse_time(&d["delivered_at"]), parse_time(&d["read_at"]));
                        assert!(sent < delivered && delivered < r && r < created);
                        read.push((r - delivered).num_milliseconds() as f64 / 1000.0);
                    }
                    other => panic!("{other}"),
                }
            }
            if kind.starts_with("participant.") {
                assert!(
                    d["participant"]["id"].is_string() && d["participant"]["joined_at"].is_string()
                );
            }
            if kind == "chat.created" {
                assert_eq!(d["health_status"]["status"], "HEALTHY");
            }
            seen.insert(kind);
        }
        assert_eq!(seen.len(), 9, "{seen:?}");
        let quantile = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() - 1) as f64 * q) as usize]
        };
        let (d50, d99) = (quantile(&mut delivery, 0.5), quantile(&mut delivery, 0.99));
        assert!(
            (1.8..=3.5).contains(&d50) && (30.0..=120.0).contains(&d99),
            "delivery p50 {d50} p99 {d99}"
        );
        assert!(
            delivery.iter().any(|&d| d > 180.0),
            "a rare one of several minutes"
        );
        let (r50, r99) = (quantile(&mut read, 0.5), quantile(&mut read, 0.99));
        assert!(
            (100.0..=300.0).contains(&r50) && (3600.0..=20_000.0).contains(&r99),
            "read p50 {r50} p99 {r99}"
        );
    }
}
