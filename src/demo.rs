//! The demo simulator: an in-process fake of the Linq API (`GET /v3/chats`, `GET
//! /v3/phone_numbers`) with thousands of synthetic chats over a few numbers, a realistic mix of
//! services, groups, archived chats, participant statuses and both health fields, values that
//! drift over time, opaque cursors, and injectable faults (500s, 429s with `Retry-After`, 401s,
//! slow and malformed pages). `--demo`, the integration tests and the benchmarks all use it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
}

struct Sim {
    cfg: SimConfig,
    chats: Vec<SimChat>,
    /// Chat indexes per number, for `from` walks.
    by_number: Vec<Vec<usize>>,
    started: SystemTime,
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
        });
    }
    Sim {
        cfg: cfg.clone(),
        chats,
        by_number,
        started: SystemTime::now(),
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
        let me = &self.cfg.numbers[c.number.min(self.cfg.numbers.len().saturating_sub(1))];
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
        let updated = chrono::DateTime::<chrono::Utc>::from(self.started)
            + chrono::Duration::seconds((epoch * self.cfg.drift_period.as_secs()) as i64);
        let updated = updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut handles = vec![json!({
            "id": format!("{}-me", c.id), "handle": me, "service": c.service.unwrap_or("SMS"),
            "joined_at": "2026-01-15T10:30:00Z", "is_me": true, "left_at": null, "status": "active"
        })];
        for (k, (handle, service, status)) in c.others.iter().enumerate() {
            handles.push(json!({
                "id": format!("{}-{k}", c.id), "handle": handle, "service": service,
                "joined_at": "2026-01-15T10:30:00Z", "is_me": false,
                "left_at": if *status == Some("left") { json!("2026-03-01T00:00:00Z") } else { Value::Null },
                "status": status
            }));
        }
        let mut chat = json!({
            "id": c.id,
            "created_at": "2026-01-15T10:30:00Z",
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
    let indexes: &[usize] = match &q.from {
        None => {
            all = (0..sim.chats.len()).collect();
            &all
        }
        Some(from) => match sim.cfg.numbers.iter().position(|n| n == from) {
            Some(k) => &sim.by_number[k],
            None => &[],
        },
    };
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
                "id": format!("pn-{k}"), "phone_number": n, "type": "APPLE_ID", "country_code": "US",
                "forwarding_number": if k == 0 { json!("+15550001111") } else { Value::Null },
                "line_type": if k % 3 == 2 { "RCS" } else { "iMessage" },
                "capabilities": {"sms": true, "mms": true, "voice": false},
                "reputation": {"status": status, "doc_url": "https://docs.linqapp.com/reputation"}
            })
        })
        .collect();
    axum::Json(json!({ "phone_numbers": numbers })).into_response()
}

/// The simulator's router.
pub fn router(cfg: &SimConfig) -> Router {
    let sim = Arc::new(generate(cfg));
    let latency = cfg.latency;
    Router::new()
        .route("/v3/chats", get(list_chats))
        .route("/v3/phone_numbers", get(list_phone_numbers))
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
/// does (both header sets), about 20 a second: mostly message sent, delivered and read, some
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
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
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
            let (event_type, data) = demo_event(&sim, n);
            let id = format!("evt_{:016x}", mix(n ^ 0xE7E7));
            let body = json!({
                "api_version": "v3", "webhook_version": "2026-02-03", "event_type": event_type,
                "event_id": id, "created_at": chrono::Utc::now().to_rfc3339(),
                "trace_id": format!("{:032x}", mix(n)), "partner_id": "demo-partner", "data": data,
            })
            .to_string()
            .into_bytes();
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

/// The `n`th demo event: (event_type, data).
fn demo_event(sim: &Sim, n: u64) -> (&'static str, Value) {
    let numbers = &sim.cfg.numbers;
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
                "changed_at": chrono::Utc::now().to_rfc3339(),
            }),
        );
    }
    let Some(chat) = sim
        .chats
        .get((mix(n ^ 0xC4A7) % sim.chats.len().max(1) as u64) as usize)
    else {
        return ("chat.typing_indicator.started", json!({}));
    };
    let number = numbers.get(chat.number).cloned().unwrap_or_default();
    let service = chat.service.unwrap_or("SMS");
    let owner = json!({"handle": number, "id": format!("{}-me", chat.id), "is_me": true,
        "service": service, "status": "active", "joined_at": "2026-01-15T10:30:00Z", "left_at": null});
    let message = |direction: &str| {
        json!({
            "chat": {"id": chat.id, "is_group": chat.is_group, "owner_handle": owner},
            "id": format!("msg-{:016x}", mix(n)), "direction": direction,
            "sender_handle": owner, "parts": [{"type": "text", "value": "Hello from the demo"}],
            "service": service, "sent_at": chrono::Utc::now().to_rfc3339(),
        })
    };
    let x = unit(mix(n ^ 0x5EED_F00D));
    match x {
        x if x < 0.40 => ("message.sent", message("outbound")),
        x if x < 0.70 => ("message.delivered", message("outbound")),
        x if x < 0.86 => ("message.read", message("outbound")),
        x if x < 0.955 => ("message.received", message("inbound")),
        // About 2 % of sent messages fail (0.8 % of all events).
        x if x < 0.963 => (
            "message.failed",
            json!({"chat_id": chat.id, "message_id": format!("msg-{:016x}", mix(n)),
                "code": if n % 2 == 0 { 3007 } else { 4001 },
                "reason": "Request expired before being processed",
                "failed_at": chrono::Utc::now().to_rfc3339()}),
        ),
        x if x < 0.985 => (
            "participant.added",
            json!({"chat_id": chat.id, "handle": "+15550001234",
                "participant": {"handle": "+15550001234", "is_me": false, "service": service, "status": "active"},
                "added_at": chrono::Utc::now().to_rfc3339()}),
        ),
        x if x < 0.99 => (
            "participant.removed",
            json!({"chat_id": chat.id, "handle": "+15550001234",
                "participant": {"handle": "+15550001234", "is_me": false, "service": service, "status": "removed"},
                "removed_at": chrono::Utc::now().to_rfc3339()}),
        ),
        _ => (
            "chat.created",
            json!({"id": chat.id, "service": service, "is_group": chat.is_group,
                "handles": [owner], "created_at": "2026-01-15T10:30:00Z", "updated_at": "2026-01-15T10:30:00Z"}),
        ),
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
}
