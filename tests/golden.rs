//! Golden exposition: the exporter sweeps the two fixture pages and its whole /metrics output is
//! compared exactly with `tests/golden/metrics.prom`, after replacing values that depend on time
//! (durations, timestamps, latency buckets, process metrics, the git revision) with `<dynamic>`.
//!
//! Regenerate after an intended change: `UPDATE_GOLDEN=1 cargo test --test golden`, then review
//! the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

const PAGE1: &str = include_str!("fixtures/chats_page_full.json");
const PAGE2: &str = include_str!("fixtures/chats_page_last.json");
const GOLDEN: &str = "tests/golden/metrics.prom";

/// Families whose sample values vary from run to run.
const DYNAMIC: [&str; 5] = [
    "linq_exporter_http_connections{",
    "process_",
    "linq_poll_duration_seconds",
    "linq_poll_last_success_timestamp_seconds",
    "linq_api_request_duration_seconds_",
];

fn normalise(exposition: &str) -> String {
    let mut out = String::new();
    for line in exposition.lines() {
        let line = if !line.starts_with('#')
            && DYNAMIC.iter().any(|p| line.starts_with(p))
            && !line.starts_with("linq_api_request_duration_seconds_count")
        {
            let (series, _) = line.rsplit_once(' ').unwrap();
            format!("{series} <dynamic>")
        } else if line.starts_with("linq_exporter_build_info{") {
            line.replace(linq_exporter::REVISION, "<revision>")
                .replace(linq_exporter::VERSION, "<version>")
        } else {
            line.to_string()
        };
        // process_* families differ by platform; keep only their presence on Linux.
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn exposition_matches_the_golden_file() {
    let api = FakeApi::start().await;
    api.chats(None, vec![Reply::raw(200, PAGE1)]);
    api.chats(Some("b3BhcXVlOjI="), vec![Reply::raw(200, PAGE2)]);
    api.phone_numbers(vec![Reply::json(serde_json::json!({"phone_numbers": [
        {"id": "pn-2", "phone_number": "+14155550000", "reputation": {"status": "CRITICAL", "doc_url": null}},
        {"id": "pn-1", "phone_number": "+14155551234", "reputation": {"status": "HEALTHY", "doc_url": null}},
        {"id": "pn-3", "phone_number": "+14155550001"}
    ]}))]);
    let exp = Exporter::start(&api, &["--linq.page-size", "4"]).await;
    let metrics = exp.wait_polls("success", 1).await;
    exp.stop().await;
    let actual = normalise(&metrics);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all("tests/golden").unwrap();
        std::fs::write(GOLDEN, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(GOLDEN)
        .expect("tests/golden/metrics.prom missing: run UPDATE_GOLDEN=1 cargo test --test golden");
    if actual != expected {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  golden: {e}\n  actual: {a}", i + 1))
            .collect();
        panic!(
            "exposition differs from {GOLDEN} ({} vs {} lines):\n{}\n(regenerate with UPDATE_GOLDEN=1 if intended)",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

#[allow(dead_code, missing_docs)]
mod metrics_proto {
    include!("common/metrics_proto.rs");
}

/// `--web.protobuf-always`: the first sweep renders the protobuf form, so the first protobuf
/// scrape after it gets protobuf (by default it would get text until the next sweep).
#[tokio::test]
async fn protobuf_always_serves_protobuf_from_the_first_sweep() {
    let api = FakeApi::start().await;
    api.chats(None, vec![Reply::raw(200, PAGE1)]);
    api.chats(Some("b3BhcXVlOjI="), vec![Reply::raw(200, PAGE2)]);
    api.phone_numbers(vec![Reply::json(serde_json::json!({"phone_numbers": []}))]);
    let exp = Exporter::start(
        &api,
        &[
            "--linq.page-size",
            "4",
            "--linq.poll-interval",
            "1h",
            "--web.protobuf-always",
        ],
    )
    .await;
    let text = exp.wait_polls("success", 1).await;
    let (ct, body) = exp
        .metrics_as("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
        .await;
    exp.stop().await;
    assert!(ct.starts_with("application/vnd.google.protobuf"), "{ct}");
    let families = metrics_proto::decode_families(&body);
    let chats = families.iter().find(|f| f.name() == "linq_chats").unwrap();
    let total: f64 = chats
        .metric
        .iter()
        .map(|m| m.gauge.as_ref().and_then(|g| g.value).unwrap_or(0.0))
        .sum();
    let text_total: f64 = text
        .lines()
        .filter(|l| l.starts_with("linq_chats{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, text_total);
    assert_eq!(total, 6.0);
}
