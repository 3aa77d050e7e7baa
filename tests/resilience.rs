//! Fault-injection tests: retries, rate limits, timeouts, dropped connections, deadlines, key
//! files and supervision, against the scripted fake API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ME: &str = "+14155551234";

fn one_chat(id: &str) -> Vec<serde_json::Value> {
    vec![chat(id, ME, Some("SMS"), Some(70.0), Some("HEALTHY"))]
}

#[tokio::test]
async fn transient_500_on_page_two_is_retried_and_counted() {
    let api = FakeApi::start().await;
    api.chats(None, vec![page(one_chat("c1"), Some("p2"))]);
    api.chats(
        Some("p2"),
        vec![Reply::error(500, 3001), page(one_chat("c2"), None)],
    );
    let exp = Exporter::start(&api, &[]).await;
    let m = exp.wait_polls("success", 1).await;
    assert_eq!(api.request_count(), 3);
    assert_eq!(value_of(&m, "linq_up "), Some(1.0));
    assert_eq!(samples(&m, "linq_chat_info").len(), 2);
    assert_eq!(value_of(&m, "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"3001\",kind=\"http\",status_code=\"500\"} "), Some(1.0));
    assert_eq!(
        value_of(&m, "linq_api_retries_total{endpoint=\"/v3/chats\"} "),
        Some(1.0)
    );
    assert_eq!(
        value_of(
            &m,
            "linq_api_requests_total{endpoint=\"/v3/chats\",status_code=\"500\"} "
        ),
        Some(1.0)
    );
    assert_eq!(
        value_of(
            &m,
            "linq_api_requests_total{endpoint=\"/v3/chats\",status_code=\"200\"} "
        ),
        Some(2.0)
    );
    exp.stop().await;
}

#[tokio::test]
async fn retries_stop_at_max_retries() {
    let api = FakeApi::start().await;
    api.chats(None, vec![Reply::error(503, 4004)]);
    let exp = Exporter::start(&api, &["--linq.max-retries", "2"]).await;
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(api.request_count(), 3, "one attempt and two retries");
    assert_eq!(
        value_of(&m, "linq_api_retries_total{endpoint=\"/v3/chats\"} "),
        Some(2.0)
    );
    assert_eq!(value_of(&m, "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"4004\",kind=\"http\",status_code=\"503\"} "), Some(3.0));
    exp.stop().await;
}

#[tokio::test]
async fn rate_limited_429_waits_for_retry_after() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![
            Reply::error(429, 1007).header("retry-after", "1"),
            page(one_chat("c1"), None),
        ],
    );
    // A 30s cap so the server's Retry-After, not the cap, decides the wait.
    let exp = Exporter::start(&api, &["--linq.retry-max-backoff", "30s"]).await;
    exp.wait_polls("success", 1).await;
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at.duration_since(reqs[0].at);
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_millis(2500),
        "{gap:?}"
    );
    exp.stop().await;
}

#[tokio::test]
async fn retry_after_ms_wins_over_retry_after_and_is_capped() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![
            Reply::error(429, 1007)
                .header("retry-after", "20")
                .header("retry-after-ms", "300"),
            Reply::error(503, 4004).header("retry-after", "120"),
            page(one_chat("c1"), None),
        ],
    );
    let exp = Exporter::start(&api, &["--linq.retry-max-backoff", "600ms"]).await;
    exp.wait_polls("success", 1).await;
    let reqs = api.requests();
    assert_eq!(reqs.len(), 3);
    let first = reqs[1].at.duration_since(reqs[0].at);
    let second = reqs[2].at.duration_since(reqs[1].at);
    assert!(
        first >= Duration::from_millis(280) && first < Duration::from_millis(1500),
        "{first:?}"
    );
    assert!(
        second >= Duration::from_millis(580) && second < Duration::from_millis(2000),
        "capped: {second:?}"
    );
    exp.stop().await;
}

#[tokio::test]
async fn x_should_retry_false_overrides_the_status_rule() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![Reply::error(503, 4004).header("x-should-retry", "false")],
    );
    let exp = Exporter::start(&api, &[]).await;
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(api.request_count(), 1);
    assert_eq!(
        value_of(&m, "linq_api_retries_total{endpoint=\"/v3/chats\"} "),
        Some(0.0)
    );
    exp.stop().await;
}

#[tokio::test]
async fn x_should_retry_true_retries_a_400() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![
            Reply::error(400, 1005).header("x-should-retry", "true"),
            page(one_chat("c1"), None),
        ],
    );
    let exp = Exporter::start(&api, &[]).await;
    exp.wait_polls("success", 1).await;
    assert_eq!(api.request_count(), 2);
    exp.stop().await;
}

#[tokio::test]
async fn forbidden_and_not_found_are_not_retried() {
    for (status, code) in [(403, 2005), (404, 2001), (400, 1005)] {
        let api = FakeApi::start().await;
        api.chats(None, vec![Reply::error(status, code)]);
        let exp = Exporter::start(&api, &[]).await;
        let m = exp.wait_polls("failure", 1).await;
        assert_eq!(api.request_count(), 1, "{status}");
        assert_eq!(
            value_of(&m, "linq_api_retries_total{endpoint=\"/v3/chats\"} "),
            Some(0.0)
        );
        exp.stop().await;
    }
}

#[tokio::test]
async fn slow_page_times_out_while_metrics_stay_fast() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(one_chat("c1"), None).delay(Duration::from_secs(3))],
    );
    let exp = Exporter::start(
        &api,
        &["--linq.request-timeout", "1s", "--linq.max-retries", "0"],
    )
    .await;
    // While the request hangs, scrapes answer at once.
    eventually(Duration::from_secs(5), || api.request_count() == 1).await;
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _) = exp.get("/metrics").await;
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(value_of(&m, "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"\",kind=\"timeout\",status_code=\"\"} "), Some(1.0));
    assert_eq!(
        value_of(&m, "linq_poll_failures_total{kind=\"timeout\"} "),
        Some(1.0)
    );
    exp.stop().await;
}

/// A server that answers every request with a promised 10 kB body, sends 20 bytes and hangs up.
async fn dropping_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n{\"chats\": [{\"id\":")
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn connection_dropped_mid_response_is_a_connect_error() {
    let url = dropping_server().await;
    let cfg = config(&[
        "--linq.base-url",
        &url,
        "--linq.api-key",
        KEY,
        "--linq.max-retries",
        "1",
        "--linq.retry-backoff",
        "10ms",
    ]);
    let exp = Exporter::start_with(cfg).await;
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(value_of(&m, "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"\",kind=\"connect\",status_code=\"\"} "), Some(2.0));
    assert_eq!(
        value_of(&m, "linq_api_retries_total{endpoint=\"/v3/chats\"} "),
        Some(1.0)
    );
    exp.stop().await;
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    // Bind then drop: nothing listens on the port any more.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = config(&[
        "--linq.base-url",
        &url,
        "--linq.api-key",
        KEY,
        "--linq.max-retries",
        "0",
    ]);
    let exp = Exporter::start_with(cfg).await;
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(
        value_of(&m, "linq_poll_failures_total{kind=\"connect\"} "),
        Some(1.0)
    );
    exp.stop().await;
}

#[tokio::test]
async fn sweep_deadline_fails_the_sweep_and_keeps_the_snapshot() {
    let api = FakeApi::start().await;
    api.chats(None, vec![page(one_chat("c1"), Some("p2"))]);
    api.chats(Some("p2"), vec![page(one_chat("c2"), None)]);
    let exp = Exporter::start(
        &api,
        &[
            "--linq.poll-interval",
            "200ms",
            "--linq.sweep-timeout",
            "500ms",
        ],
    )
    .await;
    let good = exp.wait_polls("success", 1).await;
    // Page 2 now takes longer than the whole sweep may (but less than a request may).
    api.chats(
        Some("p2"),
        vec![page(one_chat("c2"), None).delay(Duration::from_secs(2))],
    );
    let m = exp
        .wait_for(Duration::from_secs(10), |m| {
            value_of(m, "linq_poll_failures_total{kind=\"timeout\"} ").is_some_and(|v| v >= 1.0)
        })
        .await;
    assert_eq!(value_of(&m, "linq_up "), Some(0.0));
    assert_eq!(
        samples(&m, "linq_chat_info"),
        samples(&good, "linq_chat_info")
    );
    exp.stop().await;
}

#[tokio::test]
async fn sweeps_never_overlap() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(one_chat("c1"), None).delay(Duration::from_millis(300))],
    );
    let exp = Exporter::start(
        &api,
        &["--linq.poll-interval", "50ms", "--linq.sweep-timeout", "5s"],
    )
    .await;
    exp.wait_polls("success", 3).await;
    assert_eq!(api.max_in_flight(), 1);
    let reqs = api.requests();
    for pair in reqs.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(290));
    }
    exp.stop().await;
}

#[tokio::test]
async fn key_file_is_reread_every_sweep_and_a_missing_file_fails_the_sweep() {
    let api = FakeApi::start().await;
    api.chats(None, vec![page(one_chat("c1"), None)]);
    let dir = std::env::temp_dir().join(format!("linq-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key");
    std::fs::write(&path, "first-key\n").unwrap();
    let cfg = config(&[
        "--linq.base-url",
        &api.url,
        "--linq.api-key-file",
        path.to_str().unwrap(),
        "--linq.poll-interval",
        "100ms",
    ]);
    let exp = Exporter::start_with(cfg).await;
    exp.wait_polls("success", 1).await;
    assert_eq!(
        api.requests()[0].authorization.as_deref(),
        Some("Bearer first-key")
    );

    std::fs::write(&path, "rotated-key").unwrap();
    eventually(Duration::from_secs(5), || {
        api.requests()
            .last()
            .and_then(|r| r.authorization.clone())
            .as_deref()
            == Some("Bearer rotated-key")
    })
    .await;

    std::fs::remove_file(&path).unwrap();
    let m = exp
        .wait_for(Duration::from_secs(5), |m| {
            value_of(m, "linq_poll_failures_total{kind=\"key_file\"} ").is_some_and(|v| v >= 1.0)
        })
        .await;
    assert_eq!(value_of(&m, "linq_up "), Some(0.0));
    assert_eq!(samples(&m, "linq_chat_info").len(), 1, "last snapshot kept");

    std::fs::write(&path, "   \n").unwrap();
    let failures = value_of(
        &exp.metrics().await,
        "linq_poll_failures_total{kind=\"key_file\"} ",
    )
    .unwrap();
    exp.wait_for(Duration::from_secs(5), |m| {
        value_of(m, "linq_poll_failures_total{kind=\"key_file\"} ").is_some_and(|v| v > failures)
    })
    .await;

    std::fs::write(&path, "third-key").unwrap();
    let m = exp
        .wait_for(Duration::from_secs(5), |m| {
            value_of(m, "linq_up ") == Some(1.0)
        })
        .await;
    assert!(!m.contains("first-key") && !m.contains("rotated-key") && !m.contains("third-key"));
    exp.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn poller_death_turns_healthz_503() {
    use tower::ServiceExt;
    let metrics = Arc::new(linq_exporter::telemetry::SelfMetrics::new().unwrap());
    let state = Arc::new(linq_exporter::sweep::state::AppState::new(
        metrics,
        Duration::from_secs(60),
        "/metrics".into(),
    ));
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(async { panic!("simulated poller bug") });
    linq_exporter::supervise(poller, stop_rx, state.clone());
    eventually(Duration::from_secs(5), || state.poller_health().is_err()).await;
    let app = linq_exporter::http::router::router(state);
    let resp = app
        .oneshot(
            axum::http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("simulated poller bug"));
}

#[tokio::test]
async fn a_requested_stop_is_not_a_death() {
    let metrics = Arc::new(linq_exporter::telemetry::SelfMetrics::new().unwrap());
    let state = Arc::new(linq_exporter::sweep::state::AppState::new(
        metrics,
        Duration::from_secs(60),
        "/metrics".into(),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    stop_tx.send(true).unwrap();
    let sup = linq_exporter::supervise(tokio::spawn(async {}), stop_rx, state.clone());
    tokio::time::timeout(Duration::from_secs(5), sup)
        .await
        .unwrap()
        .unwrap();
    assert!(state.poller_health().is_ok());
}
