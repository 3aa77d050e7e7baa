//! The webhook receiver end to end: the exporter (`linq_exporter::run`) with
//! `--webhook.listen-address` on 127.0.0.1, requests signed here with `ring` and `base64`
//! (independently of the receiver's own code), and the metrics read back from `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[allow(dead_code, missing_docs)]
mod metrics_proto {
    include!("common/metrics_proto.rs");
}

use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE=";
const OTHER: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const ME: &str = "+14155550001";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Standard Webhooks headers: HMAC-SHA256 of `{id}.{ts}.{body}` keyed with the decoded secret.
fn standard(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut content = format!("{id}.{ts}.").into_bytes();
    content.extend_from_slice(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, &content));
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{sig}")),
    ]
}

/// Legacy headers: hex HMAC-SHA256 of `{ts}.{body}` keyed with the secret as written.
fn legacy(secret: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut content = format!("{ts}.").into_bytes();
    content.extend_from_slice(body);
    let hex: String = ring::hmac::sign(&key, &content)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        ("x-webhook-timestamp".into(), ts.to_string()),
        ("x-webhook-signature".into(), hex),
    ]
}

fn both(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    let mut h = standard(secret, id, ts, body);
    h.extend(legacy(secret, ts, body));
    h
}

fn envelope(event_type: &str, event_id: &str, data: serde_json::Value) -> Vec<u8> {
    json!({"api_version": "v3", "webhook_version": "2026-02-03", "event_type": event_type,
        "event_id": event_id, "created_at": "2026-02-05T19:52:18Z", "trace_id": "t",
        "partner_id": "p", "data": data})
    .to_string()
    .into_bytes()
}

fn sent(event_type: &str, event_id: &str, chat_id: &str, service: &str) -> Vec<u8> {
    envelope(
        event_type,
        event_id,
        json!({"chat": {"id": chat_id, "is_group": false,
            "owner_handle": {"handle": ME, "is_me": true, "service": service}},
            "id": "m", "direction": "outbound", "service": service, "parts": []}),
    )
}

struct Receiver {
    exp: Exporter,
    url: String,
    base: String,
    http: reqwest::Client,
}

impl Receiver {
    async fn start(api: &FakeApi, extra: &[&str]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["--webhook.listen-address", &listen];
        if !extra
            .iter()
            .any(|a| a.starts_with("--webhook.signing-secret"))
        {
            args.extend(["--webhook.signing-secret", SECRET]);
        }
        args.extend_from_slice(extra);
        let exp = Exporter::start(api, &args).await;
        let base = format!("http://{listen}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        // Bounded wait for the listener.
        let deadline = Instant::now() + Duration::from_secs(10);
        while http.get(format!("{base}/")).send().await.is_err() {
            assert!(Instant::now() < deadline, "webhook listener not up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Receiver {
            url: format!("{base}/webhook"),
            base,
            exp,
            http,
        }
    }

    async fn post(&self, headers: &[(String, String)], body: Vec<u8>) -> (u16, String) {
        let mut req = self.http.post(&self.url).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn metric(&self, prefix: &str) -> Option<f64> {
        value_of(&self.exp.metrics().await, prefix)
    }
}

async fn api() -> FakeApi {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(
            vec![
                chat("chat-sms", ME, Some("SMS"), Some(40.0), None),
                chat("chat-imsg", ME, Some("iMessage"), Some(90.0), None),
            ],
            None,
        )],
    );
    api
}

#[tokio::test]
async fn either_header_set_verifies_and_each_event_counts_once() {
    let api = api().await;
    let r = Receiver::start(&api, &[]).await;
    r.exp.wait_polls("success", 1).await;
    let ts = now();
    let body = sent("message.sent", "e1", "chat-sms", "SMS");
    assert_eq!(
        r.post(&both(SECRET, "msg_1", ts, &body), body.clone())
            .await
            .0,
        200
    );
    let body = sent("message.sent", "e2", "chat-sms", "SMS");
    assert_eq!(
        r.post(&standard(SECRET, "msg_2", ts, &body), body).await.0,
        200
    );
    let body = sent("message.delivered", "e3", "chat-sms", "SMS");
    assert_eq!(r.post(&legacy(SECRET, ts, &body), body).await.0, 200);
    // A retry of e1 (same ids, new timestamp and signatures): 2xx, counted once.
    let body = sent("message.sent", "e1", "chat-sms", "SMS");
    let (status, text) = r.post(&both(SECRET, "msg_1", ts + 5, &body), body).await;
    assert_eq!((status, text.as_str()), (200, "duplicate\n"));
    // An event verified by the legacy set alone is keyed by its event_id: its retry is too.
    let body = sent("message.delivered", "e3", "chat-sms", "SMS");
    assert_eq!(
        r.post(&legacy(SECRET, ts + 9, &body), body).await.1,
        "duplicate\n"
    );

    let m = r.exp.metrics().await;
    let at = |p: &str| value_of(&m, p);
    assert_eq!(
        at("linq_webhook_events_total{event_type=\"message.sent\"} "),
        Some(2.0)
    );
    assert_eq!(
        at("linq_webhook_events_total{event_type=\"message.delivered\"} "),
        Some(1.0)
    );
    assert_eq!(
        at("linq_webhook_rejected_total{reason=\"duplicate\"} "),
        Some(2.0)
    );
    assert_eq!(
        at(&format!(
            "linq_message_events_total{{event=\"sent\",phone_number=\"{ME}\",service=\"SMS\"}} "
        )),
        Some(2.0)
    );
    assert_eq!(
        at(&format!("linq_message_events_total{{event=\"delivered\",phone_number=\"{ME}\",service=\"SMS\"}} ")),
        Some(1.0)
    );
    // Every account number and service of the snapshot has its five series from the start.
    for event in ["sent", "received", "delivered", "read", "failed"] {
        let line = format!(
            "linq_message_events_total{{event=\"{event}\",phone_number=\"{ME}\",service=\"iMessage\"}} "
        );
        assert_eq!(at(&line), Some(0.0), "{line}");
    }
    for code in ["3007", "4001"] {
        let line = format!(
            "linq_message_failures_total{{error_code=\"{code}\",phone_number=\"{ME}\",service=\"iMessage\"}} "
        );
        assert_eq!(at(&line), Some(0.0), "{line}");
    }
    let last = at("linq_webhook_last_event_timestamp_seconds ").unwrap();
    assert!((last - ts as f64).abs() < 60.0, "{last}");
    assert!(!m.contains(SECRET.trim_start_matches("whsec_")));
    r.exp.stop().await;
}

#[tokio::test]
async fn refusals_answer_and_count_by_reason() {
    let api = api().await;
    let r = Receiver::start(&api, &["--web.read-header-timeout", "500ms"]).await;
    let ts = now();
    let body = sent("message.sent", "e1", "chat-sms", "SMS");
    // Tampered body, wrong secret, no signature at all.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        r.post(&both(SECRET, "msg_1", ts, &body), tampered).await.0,
        401
    );
    assert_eq!(
        r.post(&both(OTHER, "msg_1", ts, &body), body.clone())
            .await
            .0,
        401
    );
    assert_eq!(r.post(&[], body.clone()).await.0, 401);
    // Stale and future timestamps (default --webhook.max-age 5m).
    assert_eq!(
        r.post(&both(SECRET, "msg_1", ts - 301, &body), body.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        r.post(&both(SECRET, "msg_1", ts + 301, &body), body.clone())
            .await
            .0,
        401
    );
    // Verified, but not an envelope.
    let junk = b"[1,2,3]".to_vec();
    assert_eq!(r.post(&both(SECRET, "msg_j", ts, &junk), junk).await.0, 400);
    // Unknown event types and fields are accepted and counted.
    let future = envelope(
        "poll.vote.added",
        "e9",
        json!({"poll": {"votes": [1]}, "new": true}),
    );
    assert_eq!(
        r.post(&both(SECRET, "msg_9", ts, &future), future).await.0,
        200
    );

    // Over 1 MiB: 413 from Content-Length alone, before the body is sent.
    let mut s = TcpStream::connect(r.base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head))
        .await
        .expect("answered without the body")
        .unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 413"));
    // Over 1 MiB without a length (chunked): 413 too, once the bound is passed.
    let mut s = TcpStream::connect(r.base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = [
        format!("{:x}\r\n", 64 * 1024).into_bytes(),
        vec![b' '; 64 * 1024],
        b"\r\n".to_vec(),
    ]
    .concat();
    for _ in 0..17 {
        if s.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head))
        .await
        .expect("answered past the bound")
        .unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 413"));
    // A body that stalls: 408 after --web.read-header-timeout.
    let mut s = TcpStream::connect(r.base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ev")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head))
        .await
        .expect("answered after the body timeout")
        .unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 408"));

    // Only POST on the path; nothing else is served here, and the metrics port has no webhook.
    let get = r.http.get(&r.url).send().await.unwrap().status();
    assert_eq!(get, 405);
    for path in ["/metrics", "/", "/healthz", "/other"] {
        let status = r
            .http
            .get(format!("{}{path}", r.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = r.exp.get("/webhook").await;
    assert_eq!(status, 404);

    let m = r.exp.metrics().await;
    let reason = |why: &str| {
        value_of(
            &m,
            &format!("linq_webhook_rejected_total{{reason=\"{why}\"}} "),
        )
    };
    assert_eq!(reason("signature"), Some(3.0));
    assert_eq!(reason("timestamp"), Some(2.0));
    assert_eq!(reason("malformed"), Some(1.0));
    assert_eq!(reason("too_large"), Some(2.0));
    assert_eq!(reason("timeout"), Some(1.0));
    assert_eq!(reason("duplicate"), Some(0.0));
    assert_eq!(
        value_of(
            &m,
            "linq_webhook_events_total{event_type=\"poll.vote.added\"} "
        ),
        Some(1.0)
    );
    assert!(!m.contains("linq_webhook_events_total{event_type=\"message.sent\"}"));
    r.exp.stop().await;
}

#[tokio::test]
async fn failures_take_the_chats_number_and_service_and_line_status_is_set_at_once() {
    let api = api().await;
    let r = Receiver::start(&api, &[]).await;
    r.exp.wait_polls("success", 1).await;
    let ts = now();
    // message.failed carries only the chat id: the snapshot says whose chat it is.
    for (i, (chat, code)) in [("chat-imsg", 4001), ("chat-imsg", 3007), ("nope", 4001)]
        .iter()
        .enumerate()
    {
        let body = envelope(
            "message.failed",
            &format!("f{i}"),
            json!({"chat_id": chat, "message_id": "m", "code": code, "reason": "r", "failed_at": "2026-01-01T00:00:00Z"}),
        );
        assert_eq!(
            r.post(&both(SECRET, &format!("msg_f{i}"), ts, &body), body)
                .await
                .0,
            200
        );
    }
    // A payload naming a number that is not the account's is labelled unknown.
    let body = envelope(
        "message.sent",
        "s1",
        json!({"chat": {"id": "x", "owner_handle": {"handle": "+19999999999"}}, "service": "RCS"}),
    );
    assert_eq!(
        r.post(&both(SECRET, "msg_s1", ts, &body), body).await.0,
        200
    );
    // The line is flagged.
    let body = envelope(
        "phone_number.status_updated",
        "p1",
        json!({"phone_number": ME, "previous_status": "ACTIVE", "new_status": "FLAGGED",
            "previous_reputation": "HEALTHY", "new_reputation": "CRITICAL", "changed_at": "2026-01-01T00:00:00Z"}),
    );
    assert!(
        r.metric("linq_phone_number_status{").await.is_none(),
        "unknown until the first event"
    );
    assert_eq!(
        r.post(&both(SECRET, "msg_p1", ts, &body), body).await.0,
        200
    );

    let m = r.exp.metrics().await;
    let at = |p: String| value_of(&m, &p);
    assert_eq!(
        at(format!("linq_message_failures_total{{error_code=\"4001\",phone_number=\"{ME}\",service=\"iMessage\"}} ")),
        Some(1.0)
    );
    assert_eq!(
        at(format!("linq_message_failures_total{{error_code=\"3007\",phone_number=\"{ME}\",service=\"iMessage\"}} ")),
        Some(1.0)
    );
    assert_eq!(
        at("linq_message_failures_total{error_code=\"4001\",phone_number=\"unknown\",service=\"unknown\"} ".into()),
        Some(1.0)
    );
    assert_eq!(
        at(format!("linq_message_events_total{{event=\"failed\",phone_number=\"{ME}\",service=\"iMessage\"}} ")),
        Some(2.0)
    );
    assert_eq!(
        at(
            "linq_message_events_total{event=\"sent\",phone_number=\"unknown\",service=\"RCS\"} "
                .into()
        ),
        Some(1.0)
    );
    assert_eq!(
        at(format!(
            "linq_phone_number_status{{phone_number=\"{ME}\",status=\"FLAGGED\"}} "
        )),
        Some(1.0)
    );
    assert_eq!(
        at(format!(
            "linq_phone_number_reputation{{phone_number=\"{ME}\",status=\"CRITICAL\"}} "
        )),
        Some(1.0)
    );
    // Back to ACTIVE: the FLAGGED series goes, one status per line.
    let body = envelope(
        "phone_number.status_updated",
        "p2",
        json!({"phone_number": ME, "new_status": "ACTIVE", "new_reputation": "AT_RISK"}),
    );
    assert_eq!(
        r.post(&both(SECRET, "msg_p2", ts, &body), body).await.0,
        200
    );
    let m = r.exp.metrics().await;
    assert_eq!(samples(&m, "linq_phone_number_status").len(), 1);
    assert!(m.contains(&format!(
        "linq_phone_number_status{{phone_number=\"{ME}\",status=\"ACTIVE\"}} 1"
    )));
    r.exp.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_file_takes_effect_without_a_restart() {
    let api = api().await;
    let dir = std::env::temp_dir().join(format!("linq-webhook-rotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let r = Receiver::start(
        &api,
        &["--webhook.signing-secret-file", file.to_str().unwrap()],
    )
    .await;
    let ts = now();
    let body = sent("message.sent", "r1", "chat-sms", "SMS");
    assert_eq!(
        r.post(&both(SECRET, "msg_r1", ts, &body), body).await.0,
        200
    );
    // Rotate as a Kubernetes Secret volume does: write aside, rename over.
    std::fs::write(dir.join(".tmp"), OTHER).unwrap();
    std::fs::rename(dir.join(".tmp"), &file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    loop {
        i += 1;
        let body = sent("message.sent", &format!("r2-{i}"), "chat-sms", "SMS");
        if r.post(&both(OTHER, &format!("msg_r2_{i}"), ts, &body), body)
            .await
            .0
            == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new secret was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = sent("message.sent", "r3", "chat-sms", "SMS");
    assert_eq!(
        r.post(&both(SECRET, "msg_r3", ts, &body), body).await.0,
        401
    );
    r.exp.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A message event whose envelope and payload times are given (None: the field is left out).
fn timed(
    event_type: &str,
    event_id: &str,
    created_at: &str,
    trace_id: &str,
    times: [Option<&str>; 3],
) -> Vec<u8> {
    let mut data = json!({"chat": {"id": "chat-sms", "is_group": false,
        "owner_handle": {"handle": ME, "is_me": true, "service": "SMS"}},
        "id": "m", "direction": "outbound", "service": "SMS", "parts": []});
    for (key, t) in ["sent_at", "delivered_at", "read_at"]
        .into_iter()
        .zip(times)
    {
        if let Some(t) = t {
            data[key] = json!(t);
        }
    }
    json!({"api_version": "v3", "webhook_version": "2026-02-03", "event_type": event_type,
        "event_id": event_id, "created_at": created_at, "trace_id": trace_id,
        "partner_id": "p", "data": data})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn latency_histograms_observe_exact_differences_and_count_what_they_cannot() {
    let api = api().await;
    let r = Receiver::start(&api, &["--linq.poll-interval", "1s"]).await;
    r.exp.wait_polls("success", 1).await;
    let ts = now();
    let rfc = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let (past, future) = (rfc(ts - 2), rfc(ts + 3600));
    let events = [
        // 2.5 s and 40 s deliveries; the first carries trace abc123.
        timed(
            "message.delivered",
            "d1",
            &past,
            "abc123",
            [
                Some("2026-02-05T10:00:00.000Z"),
                Some("2026-02-05T10:00:02.500Z"),
                None,
            ],
        ),
        timed(
            "message.delivered",
            "d2",
            &past,
            "def456",
            [
                Some("2026-02-05T10:00:00Z"),
                Some("2026-02-05T10:00:40Z"),
                None,
            ],
        ),
        // Delivered before it was sent (clock skew), no sent_at, an unreadable delivered_at.
        timed(
            "message.delivered",
            "d3",
            &past,
            "t3",
            [
                Some("2026-02-05T10:00:05Z"),
                Some("2026-02-05T10:00:00Z"),
                None,
            ],
        ),
        timed(
            "message.delivered",
            "d4",
            &past,
            "t4",
            [None, Some("2026-02-05T10:00:00Z"), None],
        ),
        timed(
            "message.delivered",
            "d5",
            &past,
            "t5",
            [Some("2026-02-05T10:00:00Z"), Some("soon"), None],
        ),
        // Read five minutes after delivery; its envelope claims to come from the future.
        timed(
            "message.read",
            "r1",
            &future,
            "ghi789",
            [
                Some("2026-02-05T10:00:00Z"),
                Some("2026-02-05T10:00:02.500Z"),
                Some("2026-02-05T10:05:02.500Z"),
            ],
        ),
        timed("message.read", "r2", "not a time", "t7", [None, None, None]),
    ];
    for (i, body) in events.into_iter().enumerate() {
        let id = format!("msg_lat_{i}");
        assert_eq!(r.post(&standard(SECRET, &id, ts, &body), body).await.0, 200);
    }
    let m = r.exp.metrics().await;
    let at = |p: &str| value_of(&m, p);
    let d = format!("phone_number=\"{ME}\",service=\"SMS\"");
    assert_eq!(
        at(&format!("linq_message_delivery_seconds_count{{{d}}} ")),
        Some(2.0)
    );
    assert_eq!(
        at(&format!("linq_message_delivery_seconds_sum{{{d}}} ")),
        Some(42.5)
    );
    for (le, n) in [
        ("1", 0.0),
        ("2.5", 1.0),
        ("30", 1.0),
        ("60", 2.0),
        ("+Inf", 2.0),
    ] {
        let line = format!("linq_message_delivery_seconds_bucket{{{d},le=\"{le}\"}} ");
        assert_eq!(at(&line), Some(n), "{line}");
    }
    assert_eq!(
        at(&format!("linq_message_read_seconds_count{{{d}}} ")),
        Some(1.0)
    );
    assert_eq!(
        at(&format!("linq_message_read_seconds_sum{{{d}}} ")),
        Some(300.0)
    );
    // The other number/service pairs of the snapshot start at zero.
    assert_eq!(
        at(&format!(
            "linq_message_delivery_seconds_count{{phone_number=\"{ME}\",service=\"iMessage\"}} "
        )),
        Some(0.0)
    );
    for (histogram, reason, n) in [
        ("delivery", "negative", 1.0),
        ("delivery", "missing", 1.0),
        ("delivery", "invalid", 1.0),
        ("read", "missing", 1.0),
        ("read", "invalid", 0.0),
        ("read", "negative", 0.0),
        ("lag", "negative", 1.0),
        ("lag", "invalid", 1.0),
        ("lag", "missing", 0.0),
    ] {
        let line = format!(
            "linq_webhook_timestamps_unobserved_total{{histogram=\"{histogram}\",reason=\"{reason}\"}} "
        );
        assert_eq!(at(&line), Some(n), "{line}");
    }
    // Lag: five delivered events created 2 s before they were sent, each observed once.
    let lag = "linq_webhook_delivery_lag_seconds_count{event_type=\"message.delivered\"} ";
    assert_eq!(at(lag), Some(5.0));
    let lag_sum =
        at("linq_webhook_delivery_lag_seconds_sum{event_type=\"message.delivered\"} ").unwrap();
    assert!((5.0 * 2.0..5.0 * 60.0).contains(&lag_sum), "{lag_sum}");

    // OpenMetrics: the trace id is the exemplar of the bucket its observation fell in.
    let (ct, om) = r
        .exp
        .metrics_as("application/openmetrics-text;version=1.0.0")
        .await;
    assert!(ct.starts_with("application/openmetrics-text; version=1.0.0"));
    let om = String::from_utf8(om).unwrap();
    let bucket = format!(
        "linq_message_delivery_seconds_bucket{{{d},le=\"2.5\"}} 1 # {{trace_id=\"abc123\"}} 2.5 "
    );
    assert!(om.contains(&bucket), "{bucket} in\n{om}");
    assert!(om.contains(&format!(
        "linq_message_delivery_seconds_bucket{{{d},le=\"60\"}} 2 # {{trace_id=\"def456\"}} 40 "
    )));
    assert!(om.contains("# TYPE linq_webhook_timestamps_unobserved counter\n"));
    assert!(om.ends_with("# EOF\n"));

    // Protobuf, once the sweeps render it: native buckets (schema 3) beside the classic ones.
    let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3";
    let (ct, _) = r.exp.metrics_as(accept).await;
    assert!(
        ct.starts_with("text/plain"),
        "{ct}: protobuf before a sweep rendered it"
    );
    let polls = value_of(
        &r.exp.metrics().await,
        "linq_polls_total{result=\"success\"} ",
    )
    .unwrap();
    r.exp.wait_polls("success", polls as u64 + 1).await;
    let (ct, body) = r.exp.metrics_as(accept).await;
    assert!(ct.starts_with("application/vnd.google.protobuf"), "{ct}");
    let families = metrics_proto::decode_families(&body);
    let delivery = families
        .iter()
        .find(|f| f.name() == "linq_message_delivery_seconds")
        .unwrap();
    let h = delivery
        .metric
        .iter()
        .find(|m| m.label("service") == Some("SMS"))
        .and_then(|m| m.histogram.as_ref())
        .unwrap();
    assert_eq!((h.sample_count, h.sample_sum), (Some(2), Some(42.5)));
    assert_eq!(
        (h.schema, h.zero_threshold, h.zero_count),
        (Some(3), Some(0.001), Some(0))
    );
    // 2.5 s is native bucket 11 (2^(10/8) < 2.5 <= 2^(11/8)), 40 s bucket 43.
    let spans: Vec<(i32, u32)> = h
        .positive_span
        .iter()
        .map(|s| (s.offset.unwrap_or(0), s.length.unwrap_or(0)))
        .collect();
    assert_eq!(spans, [(11, 1), (31, 1)]);
    assert_eq!(h.positive_delta, [1, 0]);
    let ex = h
        .bucket
        .iter()
        .find(|b| b.upper_bound == Some(2.5))
        .and_then(|b| b.exemplar.as_ref())
        .unwrap();
    assert_eq!(ex.value, Some(2.5));
    assert_eq!(ex.label[0].value.as_deref(), Some("abc123"));
    r.exp.stop().await;
}
