//! HTTP tests on the router alone (`tower::ServiceExt::oneshot`), with state built from fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use linq_exporter::api::decode::decode_chats_page;
use linq_exporter::metrics::exposition::{render_snapshot, RenderOptions};
use linq_exporter::metrics::snapshot::SnapshotBuilder;
use linq_exporter::sweep::state::{AppState, LastSweep, Published};
use linq_exporter::telemetry::SelfMetrics;
use tower::ServiceExt;

const PAGE: &str = include_str!("fixtures/chats_page_full.json");

fn state() -> Arc<AppState> {
    let metrics = Arc::new(SelfMetrics::new().unwrap());
    Arc::new(AppState::new(
        metrics,
        Duration::from_secs(180),
        "/metrics".into(),
    ))
}

fn publish(state: &AppState, page: &str, display_name: bool, completed_at: SystemTime) {
    let page = decode_chats_page(page.as_bytes()).unwrap();
    let mut b = SnapshotBuilder::new(display_name);
    for c in &page.chats {
        b.add_chat(0, None, c);
    }
    let snap = b.finish(&[]);
    let opts = RenderOptions {
        display_name,
        ..Default::default()
    };
    state.publish(Published {
        rendered: render_snapshot(&snap, &opts),
        summary: snap.summary(),
        completed_at,
    });
    state.set_last_sweep(LastSweep {
        at: completed_at,
        duration: Duration::from_millis(1234),
        error: None,
    });
}

async fn get(
    state: &Arc<AppState>,
    path: &str,
    gzip: bool,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(path);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let resp = linq_exporter::http::router::router(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes().to_vec(),
    )
}

#[tokio::test]
async fn metrics_before_the_first_sweep_has_only_self_metrics() {
    let s = state();
    let (status, headers, body) = get(&s, "/metrics", false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("linq_up 0\n"));
    assert!(!text.contains("linq_chat_info"));
    assert!(text.contains("linq_exporter_build_info{"));
    assert!(text.contains("process_resident_memory_bytes"));
    let (status, _, _) = get(&s, "/readyz", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_serves_the_published_snapshot_plain_and_gzip() {
    let s = state();
    publish(&s, PAGE, false, SystemTime::now());
    s.metrics.up.set(1);
    let (_, _, plain) = get(&s, "/metrics", false).await;
    let plain = String::from_utf8(plain).unwrap();
    assert!(plain
        .contains("linq_chat_health_score{chat_id=\"chat-4\",phone_number=\"unknown\"} 12.5\n"));
    assert!(plain.contains("linq_up 1\n"));
    let (_, headers, gz) = get(&s, "/metrics", true).await;
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["vary"], "Accept-Encoding");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("process_"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&text), strip(&plain));
    assert_eq!(get(&s, "/readyz", false).await.0, StatusCode::OK);
}

#[tokio::test]
async fn plain_scrapes_inflate_the_gzip_form_while_the_text_is_released() {
    let s = state();
    publish(&s, PAGE, false, SystemTime::now());
    let cached = s.published().unwrap().rendered.text();
    let (_, headers, before) = get(&s, "/metrics", false).await;
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        before.len().to_string()
    );

    s.release_plain_text();
    let published = s.published().unwrap();
    assert!(!published.rendered.has_text());
    assert_eq!(published.rendered.text(), cached, "inflated = cached text");
    let (status, headers, after) = get(&s, "/metrics", false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        after.len().to_string()
    );
    assert!(
        after.starts_with(&cached),
        "the snapshot, then the self metrics"
    );
    let tail = String::from_utf8(after[cached.len()..].to_vec()).unwrap();
    assert!(tail.contains("linq_exporter_build_info{"), "{tail}");
    // gzip is untouched by the release.
    let (_, _, gz) = get(&s, "/metrics", true).await;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut text)
        .unwrap();
    assert!(text.starts_with(&cached));
    // The next publish brings the text back.
    publish(&s, PAGE, false, SystemTime::now());
    assert!(s.published().unwrap().rendered.has_text());
}

#[tokio::test]
async fn readyz_turns_503_when_data_is_stale() {
    let s = state();
    publish(
        &s,
        PAGE,
        false,
        SystemTime::now() - Duration::from_secs(600),
    );
    let (status, _, body) = get(&s, "/readyz", false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&body).contains("600s old"));
}

#[tokio::test]
async fn status_page_shows_fixture_numbers_and_escapes_display_names() {
    let s = state();
    let hostile = PAGE.replace(
        "\"display_name\": \"Bob\"",
        "\"display_name\": \"<script>document.title='pwned'</script>\"",
    );
    publish(&s, &hostile, true, SystemTime::now());
    let (status, headers, body) = get(&s, "/", false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains("<td class=\"n\" id=\"total-chats\">4</td>"),
        "{html}"
    );
    assert!(html.contains("<td class=\"n\" id=\"archived-chats\">1</td>"));
    assert!(html.contains("<td class=\"n\" id=\"group-chats\">1</td>"));
    assert!(
        !html.contains("<script"),
        "markup from the API must be escaped"
    );
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(html.contains("href=\"/metrics\""));
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let s = state();
    assert_eq!(get(&s, "/nope", false).await.0, StatusCode::NOT_FOUND);
}
