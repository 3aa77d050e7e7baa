//! Number discovery, line reputation, concurrency, the client-side rate limit, cardinality
//! controls and the cached rendering, against the scripted fake API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn numbers(list: &[(&str, &str)]) -> Reply {
    let items: Vec<_> = list
        .iter()
        .map(|(n, r)| json!({"id": n, "phone_number": n, "reputation": {"status": r, "doc_url": null}}))
        .collect();
    Reply::json(json!({ "phone_numbers": items }))
}

fn script_number(api: &FakeApi, n: &str, id: &str, delay: Duration) {
    api.script(
        "/v3/chats",
        Some(n),
        None,
        vec![page(
            vec![chat(id, n, Some("SMS"), Some(50.0), Some("HEALTHY"))],
            None,
        )
        .delay(delay)],
    );
}

#[tokio::test]
async fn discovered_numbers_follow_the_account_and_fall_back_when_listing_fails() {
    let api = FakeApi::start().await;
    let (a, b, c) = ("+14155550001", "+14155550002", "+14155550003");
    for (n, id) in [(a, "ca"), (b, "cb"), (c, "cc")] {
        script_number(&api, n, id, Duration::ZERO);
    }
    api.phone_numbers(vec![numbers(&[(a, "HEALTHY"), (b, "AT_RISK")])]);
    let exp = Exporter::start(
        &api,
        &["--linq.discover-numbers", "--linq.poll-interval", "100ms"],
    )
    .await;
    let m = exp.wait_polls("success", 1).await;
    assert!(
        m.contains("chat_id=\"ca\"")
            && m.contains("chat_id=\"cb\"")
            && !m.contains("chat_id=\"cc\"")
    );
    assert_eq!(
        value_of(
            &m,
            &format!("linq_phone_number_reputation{{phone_number=\"{b}\",status=\"AT_RISK\"}} ")
        ),
        Some(1.0)
    );

    // b leaves the account, c joins.
    api.phone_numbers(vec![numbers(&[(a, "HEALTHY"), (c, "CRITICAL")])]);
    let m = exp
        .wait_for(Duration::from_secs(10), |m| m.contains("chat_id=\"cc\""))
        .await;
    assert!(!m.contains("chat_id=\"cb\""), "b's chats are gone");
    assert!(
        !m.contains(&format!("phone_number=\"{b}\"")),
        "and so are its aggregates and reputation"
    );
    assert_eq!(
        value_of(
            &m,
            &format!("linq_phone_number_reputation{{phone_number=\"{c}\",status=\"CRITICAL\"}} ")
        ),
        Some(1.0)
    );

    // Listing fails: the last known numbers are still walked, their reputation kept, and the
    // failure counted under its own endpoint without failing the sweep.
    api.phone_numbers(vec![Reply::error(500, 3006)]);
    let m = exp
        .wait_for(Duration::from_secs(10), |m| {
            value_of(m, "linq_api_errors_total{endpoint=\"/v3/phone_numbers\",error_code=\"3006\",kind=\"http\",status_code=\"500\"} ").is_some()
        })
        .await;
    let successes = value_of(&m, "linq_polls_total{result=\"success\"} ").unwrap() as u64;
    let m = exp.wait_polls("success", successes + 1).await;
    assert_eq!(
        value_of(&m, "linq_polls_total{result=\"failure\"} "),
        Some(0.0)
    );
    assert!(m.contains("chat_id=\"ca\"") && m.contains("chat_id=\"cc\""));
    assert_eq!(
        value_of(
            &m,
            &format!("linq_phone_number_reputation{{phone_number=\"{c}\",status=\"CRITICAL\"}} ")
        ),
        Some(1.0)
    );
    exp.stop().await;
}

#[tokio::test]
async fn phone_numbers_can_be_turned_off() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(
            vec![chat("c1", "+14155550001", Some("SMS"), None, None)],
            None,
        )],
    );
    let exp = Exporter::start(&api, &["--linq.phone-numbers=false"]).await;
    let m = exp.wait_polls("success", 1).await;
    assert!(api.all_requests().iter().all(|r| r.path == "/v3/chats"));
    assert!(samples(&m, "linq_phone_number_reputation").is_empty());
    exp.stop().await;
}

#[tokio::test]
async fn walks_run_concurrently_up_to_the_bound() {
    let api = FakeApi::start().await;
    let nums: Vec<String> = (0..6).map(|i| format!("+1415555010{i}")).collect();
    let mut args = vec!["--linq.concurrency", "2", "--linq.phone-numbers=false"];
    for (i, n) in nums.iter().enumerate() {
        script_number(&api, n, &format!("c{i}"), Duration::from_millis(150));
        args.push("--linq.from");
        args.push(n);
    }
    let exp = Exporter::start(&api, &args).await;
    let m = exp.wait_polls("success", 1).await;
    assert_eq!(samples(&m, "linq_chat_info").len(), 6);
    assert_eq!(api.max_in_flight(), 2, "two walks at a time, never more");
    exp.stop().await;
}

#[tokio::test]
async fn rate_limit_spaces_requests_across_all_walks() {
    let api = FakeApi::start().await;
    let nums: Vec<String> = (0..4).map(|i| format!("+1415555020{i}")).collect();
    let mut args = vec![
        "--linq.concurrency",
        "4",
        "--linq.max-requests-per-second",
        "10",
        "--linq.phone-numbers=false",
    ];
    for (i, n) in nums.iter().enumerate() {
        api.script(
            "/v3/chats",
            Some(n),
            None,
            vec![page(
                vec![chat(&format!("a{i}"), n, None, None, None)],
                Some("p2"),
            )],
        );
        api.script(
            "/v3/chats",
            Some(n),
            Some("p2"),
            vec![page(
                vec![chat(&format!("b{i}"), n, None, None, None)],
                None,
            )],
        );
        args.push("--linq.from");
        args.push(n);
    }
    let exp = Exporter::start(&api, &args).await;
    exp.wait_polls("success", 1).await;
    let mut times: Vec<_> = api.requests().iter().map(|r| r.at).collect();
    times.sort();
    assert_eq!(times.len(), 8);
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(90),
            "requests {gap:?} apart at 10/s"
        );
    }
    let total = times[7].duration_since(times[0]);
    assert!(
        total >= Duration::from_millis(680) && total < Duration::from_millis(2000),
        "{total:?}"
    );
    exp.stop().await;
}

fn mixed_chats() -> Vec<serde_json::Value> {
    let me = "+14155550001";
    vec![
        chat("healthy", me, Some("SMS"), Some(90.0), Some("HEALTHY")),
        chat("low-score", me, Some("SMS"), Some(20.0), None),
        chat("at-risk", me, Some("SMS"), Some(70.0), Some("AT_RISK")),
        chat("critical", me, Some("SMS"), None, Some("CRITICAL")),
        chat("opted-out", me, Some("SMS"), Some(55.0), Some("OPTED_OUT")),
        chat("unscored", me, Some("SMS"), None, None),
    ]
}

async fn sweep_with(args: &[&str]) -> String {
    let api = FakeApi::start().await;
    api.chats(None, vec![page(mixed_chats(), None)]);
    let exp = Exporter::start(&api, args).await;
    let m = exp.wait_polls("success", 1).await;
    exp.stop().await;
    m
}

fn chat_ids(m: &str) -> Vec<String> {
    samples(m, "linq_chat_info")
        .iter()
        .map(|l| {
            l.split("chat_id=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn chat_metrics_modes_and_aggregates_always_cover_every_chat() {
    let all = sweep_with(&[]).await;
    assert_eq!(chat_ids(&all).len(), 6);

    let unhealthy = sweep_with(&["--linq.chat-metrics", "unhealthy"]).await;
    assert_eq!(
        chat_ids(&unhealthy),
        ["at-risk", "critical", "low-score", "opted-out"]
    );
    assert!(samples(&unhealthy, "linq_chat_health_score")
        .iter()
        .all(|l| !l.contains("\"healthy\"")));

    let strict = sweep_with(&[
        "--linq.chat-metrics",
        "unhealthy",
        "--linq.unhealthy-score",
        "95",
    ])
    .await;
    assert_eq!(
        chat_ids(&strict),
        ["at-risk", "critical", "healthy", "low-score", "opted-out"]
    );

    let none = sweep_with(&["--linq.chat-metrics", "none"]).await;
    assert!(chat_ids(&none).is_empty());
    assert!(
        samples(&none, "linq_chat_health_score").is_empty()
            && samples(&none, "linq_chat_health_status").is_empty()
    );
    for m in [&unhealthy, &none] {
        assert_eq!(value_of(m, "linq_chats{phone_number=\"+14155550001\",service=\"SMS\",is_group=\"false\",is_archived=\"false\"} "), Some(6.0));
        assert_eq!(
            value_of(
                m,
                "linq_chats_by_health_score_bucket{phone_number=\"+14155550001\",le=\"100\"} "
            ),
            Some(4.0)
        );
    }
    let series = |m: &str| {
        m.lines()
            .filter(|l| !l.starts_with('#') && l.starts_with("linq_chat"))
            .count() as f64
    };
    assert_eq!(
        value_of(&none, "linq_exporter_series "),
        Some(series(&none))
    );
    assert_eq!(value_of(&all, "linq_exporter_series "), Some(series(&all)));
}

#[tokio::test]
async fn max_chat_series_keeps_the_worst_chats_and_reports_the_rest() {
    let m = sweep_with(&["--linq.max-chat-series", "3"]).await;
    // CRITICAL, a score of 20 (ranks as critical), then OPTED_OUT.
    assert_eq!(chat_ids(&m), ["critical", "low-score", "opted-out"]);
    assert_eq!(
        value_of(&m, "linq_exporter_chat_series_dropped "),
        Some(3.0)
    );
    let m = sweep_with(&["--linq.max-chat-series", "10"]).await;
    assert_eq!(
        value_of(&m, "linq_exporter_chat_series_dropped "),
        Some(0.0)
    );
}

#[tokio::test]
async fn display_name_label_is_opt_in() {
    let off = sweep_with(&[]).await;
    assert!(!off.contains("display_name="));
    let on = sweep_with(&["--linq.chat-display-name"]).await;
    assert!(on.contains("linq_chat_info{chat_id=\"critical\",phone_number=\"+14155550001\",service=\"SMS\",is_group=\"false\",is_archived=\"false\",display_name=\"Chat critical\"} 1"));
}

#[tokio::test]
async fn cached_rendering_still_shows_live_self_metrics() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(mixed_chats(), None), Reply::error(500, 3001)],
    );
    let exp = Exporter::start(
        &api,
        &["--linq.poll-interval", "100ms", "--linq.max-retries", "0"],
    )
    .await;
    let first = exp.wait_polls("success", 1).await;
    let later = exp.wait_polls("failure", 2).await;
    // The snapshot part is the cached render of sweep one; the counters moved on.
    assert_eq!(
        samples(&later, "linq_chat_info"),
        samples(&first, "linq_chat_info")
    );
    let errors = |m: &str| {
        value_of(m, "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"3001\",kind=\"http\",status_code=\"500\"} ")
    };
    assert_eq!(errors(&first), None);
    assert!(errors(&later).unwrap() >= 2.0);
    let next = exp.wait_polls("failure", 3).await;
    assert!(errors(&next).unwrap() > errors(&later).unwrap());
    exp.stop().await;
}
