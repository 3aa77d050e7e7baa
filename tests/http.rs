//! HTTP tests on the router alone (`tower::ServiceExt::oneshot`), with state built from fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use linq_exporter::api::decode::decode_chats_page;
use linq_exporter::metrics::exposition::{
    render_snapshot, render_snapshot_as, Encoding, RenderOptions,
};
use linq_exporter::metrics::snapshot::SnapshotBuilder;
use linq_exporter::sweep::state::{AppState, LastSweep, Published};
use linq_exporter::telemetry::SelfMetrics;
use tower::ServiceExt;

const PAGE: &str = include_str!("fixtures/chats_page_full.json");

#[allow(dead_code, missing_docs)]
mod metrics_proto {
    include!("common/metrics_proto.rs");
}

fn state() -> Arc<AppState> {
    let metrics = Arc::new(SelfMetrics::new().unwrap());
    Arc::new(AppState::new(
        metrics,
        Duration::from_secs(180),
        "/metrics".into(),
    ))
}

fn publish(state: &AppState, page: &str, display_name: bool, completed_at: SystemTime) {
    publish_as(state, page, display_name, completed_at, false);
}

fn publish_as(
    state: &AppState,
    page: &str,
    display_name: bool,
    completed_at: SystemTime,
    protobuf: bool,
) {
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
        protobuf: protobuf.then(|| render_snapshot_as(&snap, &opts, Encoding::Protobuf)),
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
    get_accept(state, path, None, gzip).await
}

async fn get_accept(
    state: &Arc<AppState>,
    path: &str,
    accept: Option<&str>,
    gzip: bool,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::get(path);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
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
    assert_eq!(headers["vary"], "Accept, Accept-Encoding");
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

const PROM2_PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
const PROM2_DEFAULT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const PROM3_DEFAULT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn openmetrics_for_prometheus_2_and_3_default_headers() {
    let s = state();
    publish(&s, PAGE, false, SystemTime::now());
    let (_, _, text) = get(&s, "/metrics", false).await;
    for accept in [PROM2_DEFAULT, PROM3_DEFAULT] {
        let (status, headers, body) = get_accept(&s, "/metrics", Some(accept), false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(headers["vary"], "Accept, Accept-Encoding");
        let om = String::from_utf8(body).unwrap();
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert_eq!(om.matches("# EOF").count(), 1);
        // The snapshot's part is byte for byte the text's; counters lose _total in TYPE.
        let snapshot_part = s.published().unwrap().rendered.text();
        assert!(om.as_bytes().starts_with(&snapshot_part));
        assert!(om.contains("# TYPE linq_polls counter\nlinq_polls_total{result=\"failure\"} 0\n"));
        assert!(
            om.contains("# TYPE process_cpu_seconds counter\n# UNIT process_cpu_seconds seconds\n")
        );
        assert!(!om.contains("# TYPE linq_polls_total"));
        assert!(om.contains(
            "linq_api_request_duration_seconds_bucket{endpoint=\"/v3/chats\",le=\"+Inf\"} 0\n"
        ));
        assert!(om.contains(
            "linq_chats_by_health_score_bucket{phone_number=\"+14155551234\",le=\"+Inf\"} 1\n"
        ));
        // Same samples as the text (but the live process metrics).
        let samples = |t: &str| {
            let mut v = t
                .lines()
                .filter(|l| !l.starts_with('#') && !l.starts_with("process_"))
                .map(String::from)
                .collect::<Vec<_>>();
            v.sort();
            v
        };
        assert_eq!(
            samples(&om),
            samples(&String::from_utf8(text.clone()).unwrap())
        );
        // gzip carries the same OpenMetrics.
        let (_, headers, gz) = get_accept(&s, "/metrics", Some(accept), true).await;
        assert_eq!(headers["content-encoding"], "gzip");
        let plain = String::from_utf8(gunzip(&gz)).unwrap();
        assert!(plain.ends_with("# EOF\n"));
        assert_eq!(samples(&plain), samples(&om));
    }
    let (_, headers, _) = get_accept(
        &s,
        "/metrics",
        Some("application/openmetrics-text;version=0.0.1"),
        false,
    )
    .await;
    assert_eq!(
        headers["content-type"],
        "application/openmetrics-text; version=0.0.1; charset=utf-8"
    );
    let (_, headers, _) = get_accept(&s, "/metrics", Some("*/*"), false).await;
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

#[tokio::test]
async fn protobuf_once_rendered_and_text_until_then() {
    let s = state();
    publish(&s, PAGE, false, SystemTime::now());
    assert!(!s.wants_protobuf(SystemTime::now()));
    // Not rendered yet: the scrape gets its next choice (text 0.0.4 in Prometheus 2's header),
    // and the sweeps from now on render protobuf.
    let (_, headers, _) = get_accept(&s, "/metrics", Some(PROM2_PROTOBUF), false).await;
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(s.wants_protobuf(SystemTime::now()));
    assert!(!s.wants_protobuf(SystemTime::now() + Duration::from_secs(16 * 60)));
    // --web.protobuf-always: wanted from the start and for good, whatever scrapes come.
    let always = state();
    always.protobuf_always();
    always.protobuf_asked(SystemTime::now());
    assert!(always.wants_protobuf(SystemTime::now() + Duration::from_secs(365 * 86_400)));

    publish_as(&s, PAGE, false, SystemTime::now(), true);
    for gzip in [false, true] {
        let (status, headers, body) = get_accept(&s, "/metrics", Some(PROM2_PROTOBUF), gzip).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["content-type"],
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        );
        let body = if gzip { gunzip(&body) } else { body };
        let families = metrics_proto::decode_families(&body);
        let by_name = |n: &str| families.iter().find(|f| f.name() == n).unwrap();
        let score = by_name("linq_chat_health_score");
        assert_eq!(score.metric.len(), 2);
        let up = by_name("linq_up");
        assert_eq!(up.r#type, Some(1));
        assert_eq!(up.metric[0].gauge.as_ref().unwrap().value, Some(0.0));
        let polls = by_name("linq_polls_total");
        assert_eq!(polls.r#type, Some(0));
        assert_eq!(polls.metric.len(), 2);
        let hist = by_name("linq_api_request_duration_seconds");
        assert_eq!(hist.r#type, Some(4));
        assert_eq!(hist.metric[0].histogram.as_ref().unwrap().bucket.len(), 11);
        let build = by_name("linq_exporter_build_info");
        assert_eq!(
            build.metric[0].label("version"),
            Some(linq_exporter::VERSION)
        );
        // Every family once.
        let mut names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}

/// User plus system CPU time of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse::<u64>().unwrap())
        .sum()
}

#[tokio::test]
async fn process_cpu_seconds_keeps_fractions() {
    let s = state();
    let hz = rustix::param::clock_ticks_per_second() as f64;
    // Spin (bounded) until the CPU time is well inside a second, so that a value cut to whole
    // seconds cannot pass the check below.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut x = 0u64;
    while !(0.1..0.8).contains(&((cpu_ticks() as f64 / hz).fract())) {
        assert!(
            std::time::Instant::now() < deadline,
            "CPU time never left a whole second"
        );
        for i in 0..200_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
    }
    assert_ne!(x, 1);
    let before = cpu_ticks() as f64 / hz;
    let (_, _, body) = get(&s, "/metrics", false).await;
    let after = cpu_ticks() as f64 / hz;
    let text = String::from_utf8(body).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("process_cpu_seconds_total "))
        .unwrap();
    let value: f64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
    // What /proc says at the scrape, in fractions: a value cut to whole seconds would be below.
    assert!(
        (before..=after).contains(&value),
        "{value} not within [{before}, {after}]"
    );
}

#[tokio::test]
async fn plain_bytes_are_kept_only_while_plain_scrapes_come() {
    let s = state();
    publish(&s, PAGE, false, SystemTime::now());
    let now = SystemTime::now();
    // Prometheus asks for gzip: the sweeps keep only the gzip form.
    get(&s, "/metrics", true).await;
    assert!(!s.wants_plain(now));
    get(&s, "/metrics", false).await;
    assert!(s.wants_plain(now));
    assert!(s.wants_plain(now + Duration::from_secs(14 * 60)));
    assert!(!s.wants_plain(now + Duration::from_secs(16 * 60)));
}
