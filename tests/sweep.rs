//! Integration tests: the real exporter (`run`) on 127.0.0.1:0 against a scripted fake Linq API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;

const PAGE1: &str = include_str!("fixtures/chats_page_full.json");
const PAGE2: &str = include_str!("fixtures/chats_page_last.json");
const ME: &str = "+14155551234";

fn two_pages(api: &FakeApi) {
    api.chats(None, vec![Reply::raw(200, PAGE1)]);
    api.chats(Some("b3BhcXVlOjI="), vec![Reply::raw(200, PAGE2)]);
}

#[tokio::test]
async fn multi_page_sweep_exact_values_and_dedupe() {
    let api = FakeApi::start().await;
    two_pages(&api);
    let exp = Exporter::start(&api, &["--linq.page-size", "4"]).await;
    let m = exp.wait_polls("success", 1).await;

    // Requests: two pages, limit sent, cursor sent back verbatim, auth and user agent.
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].query.get("limit").map(String::as_str), Some("4"));
    assert_eq!(reqs[0].query.get("cursor"), None);
    assert_eq!(
        reqs[1].query.get("cursor").map(String::as_str),
        Some("b3BhcXVlOjI=")
    );
    assert_eq!(
        reqs[0].authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        reqs[0].user_agent.as_deref(),
        Some(concat!("linq-exporter/", env!("CARGO_PKG_VERSION")))
    );

    // chat-1 appears on both pages and is counted once: 6 distinct chats.
    assert_eq!(samples(&m, "linq_chat_info").len(), 6);
    let total: f64 = samples(&m, "linq_chats")
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(total, 6.0);
    assert_eq!(value_of(&m, &format!("linq_chats{{phone_number=\"{ME}\",service=\"RCS\",is_group=\"true\",is_archived=\"true\"}} ")), Some(1.0));
    assert_eq!(value_of(&m, "linq_chats{phone_number=\"unknown\",service=\"SMS\",is_group=\"false\",is_archived=\"false\"} "), Some(1.0));
    // chat-6's page omits the deprecated is_archived: unknown, not "not archived".
    assert_eq!(value_of(&m, &format!("linq_chats{{phone_number=\"{ME}\",service=\"SMS\",is_group=\"false\",is_archived=\"unknown\"}} ")), Some(1.0));
    assert_eq!(value_of(&m, &format!("linq_chat_info{{chat_id=\"chat-6\",phone_number=\"{ME}\",service=\"SMS\",is_group=\"false\",is_archived=\"unknown\"}} ")), Some(1.0));
    assert_eq!(
        value_of(
            &m,
            &format!("linq_chat_health_score{{chat_id=\"chat-6\",phone_number=\"{ME}\"}} ")
        ),
        Some(20.0)
    );
    assert_eq!(value_of(&m, &format!("linq_chat_health_status{{chat_id=\"chat-5\",phone_number=\"{ME}\",status=\"AT_RISK\"}} ")), Some(1.0));
    assert_eq!(value_of(&m, &format!("linq_chat_participants{{phone_number=\"{ME}\",service=\"RCS\",status=\"active\"}} ")), Some(2.0));
    assert_eq!(value_of(&m, &format!("linq_chat_participants{{phone_number=\"{ME}\",service=\"iMessage\",status=\"unknown\"}} ")), Some(1.0));
    assert_eq!(
        value_of(
            &m,
            &format!("linq_chats_by_health_status{{phone_number=\"{ME}\",status=\"CRITICAL\"}} ")
        ),
        Some(1.0)
    );
    assert_eq!(
        value_of(
            &m,
            &format!("linq_chats_by_health_status{{phone_number=\"{ME}\",status=\"OPTED_OUT\"}} ")
        ),
        Some(0.0)
    );
    assert_eq!(
        value_of(
            &m,
            &format!("linq_chats_by_health_score_bucket{{phone_number=\"{ME}\",le=\"50\"}} ")
        ),
        Some(2.0)
    );
    assert_eq!(
        value_of(
            &m,
            &format!("linq_chats_by_health_score_bucket{{phone_number=\"{ME}\",le=\"100\"}} ")
        ),
        Some(3.0)
    );
    assert_eq!(value_of(&m, "linq_up "), Some(1.0));
    assert_eq!(value_of(&m, "linq_poll_pages "), Some(2.0));
    assert_eq!(
        value_of(
            &m,
            "linq_api_requests_total{endpoint=\"/v3/chats\",status_code=\"200\"} "
        ),
        Some(2.0)
    );
    assert!(value_of(&m, "linq_poll_last_success_timestamp_seconds ").unwrap() > 1.7e9);
    assert!(!m.contains(KEY), "the API key must never appear in metrics");
    exp.stop().await;
}

#[tokio::test]
async fn chats_missing_from_a_later_sweep_lose_every_series() {
    let api = FakeApi::start().await;
    two_pages(&api);
    let exp = Exporter::start(&api, &["--linq.poll-interval", "100ms"]).await;
    let m = exp.wait_polls("success", 1).await;
    assert_eq!(samples(&m, "linq_chat_info").len(), 6);
    assert!(m.contains("chat_id=\"chat-3\""));

    // The account now has only page 2 (no chat-3, no chat-4 and its "unknown" number).
    api.clear();
    api.chats(None, vec![Reply::raw(200, PAGE2)]);
    let before = value_of(&m, "linq_polls_total{result=\"success\"} ").unwrap() as u64;
    let m = exp.wait_polls("success", before + 2).await;
    assert_eq!(samples(&m, "linq_chat_info").len(), 3);
    assert!(!m.contains("chat_id=\"chat-3\""));
    assert!(!m.contains("chat_id=\"chat-4\""));
    assert!(
        !m.contains("phone_number=\"unknown\""),
        "the vanished number's aggregates go too"
    );
    assert_eq!(samples(&m, "linq_chats_by_health_status").len(), 4);
    exp.stop().await;
}

#[tokio::test]
async fn from_walks_label_chats_with_the_walked_number() {
    let api = FakeApi::start().await;
    let (a, b) = ("+14155550100", "+14155550101");
    api.script(
        "/v3/chats",
        Some(a),
        None,
        vec![page(
            vec![chat("a1", a, Some("SMS"), Some(55.0), None)],
            Some("n1"),
        )],
    );
    api.script(
        "/v3/chats",
        Some(a),
        Some("n1"),
        vec![page(
            vec![chat("a2", a, Some("SMS"), None, Some("CRITICAL"))],
            None,
        )],
    );
    // The chat's own is_me handle says otherwise; the walked number wins.
    api.script(
        "/v3/chats",
        Some(b),
        None,
        vec![page(
            vec![chat(
                "b1",
                "+19999999999",
                Some("iMessage"),
                Some(95.0),
                Some("HEALTHY"),
            )],
            None,
        )],
    );
    let exp = Exporter::start(&api, &["--linq.from", a, "--linq.from", b]).await;
    let m = exp.wait_polls("success", 1).await;
    assert_eq!(api.request_count(), 3);
    assert!(api.requests().iter().all(|r| r.query.contains_key("from")));
    assert_eq!(value_of(&m, &format!("linq_chats{{phone_number=\"{a}\",service=\"SMS\",is_group=\"false\",is_archived=\"false\"}} ")), Some(2.0));
    assert_eq!(
        value_of(
            &m,
            &format!("linq_chat_health_score{{chat_id=\"b1\",phone_number=\"{b}\"}} ")
        ),
        Some(95.0)
    );
    assert_eq!(
        value_of(
            &m,
            &format!("linq_chats_by_health_status{{phone_number=\"{a}\",status=\"CRITICAL\"}} ")
        ),
        Some(1.0)
    );
    assert!(!m.contains("+19999999999"));
    exp.stop().await;
}

#[tokio::test]
async fn unauthorized_sets_up_zero_counts_the_error_and_is_not_retried() {
    let api = FakeApi::start().await;
    api.chats(None, vec![Reply::error(401, 2004)]);
    let exp = Exporter::start(&api, &[]).await;
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(api.request_count(), 1, "401 is never retried");
    assert_eq!(value_of(&m, "linq_up "), Some(0.0));
    assert_eq!(value_of(&m, "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"2004\",kind=\"http\",status_code=\"401\"} "), Some(1.0));
    assert_eq!(
        value_of(
            &m,
            "linq_api_requests_total{endpoint=\"/v3/chats\",status_code=\"401\"} "
        ),
        Some(1.0)
    );
    assert_eq!(
        value_of(&m, "linq_poll_failures_total{kind=\"http\"} "),
        Some(1.0)
    );
    assert_eq!(
        value_of(&m, "linq_api_retries_total{endpoint=\"/v3/chats\"} "),
        Some(0.0)
    );
    assert_eq!(
        value_of(&m, "linq_poll_last_success_timestamp_seconds "),
        Some(0.0)
    );
    assert_eq!(exp.get("/readyz").await.0, 503);
    assert!(!m.contains(KEY));
    exp.stop().await;
}

#[tokio::test]
async fn malformed_page_is_a_decode_error_and_the_last_snapshot_stays() {
    let api = FakeApi::start().await;
    two_pages(&api);
    let exp = Exporter::start(&api, &["--linq.poll-interval", "100ms"]).await;
    let good = exp.wait_polls("success", 1).await;
    api.clear();
    api.chats(None, vec![Reply::raw(200, PAGE1)]);
    api.chats(
        Some("b3BhcXVlOjI="),
        vec![Reply::raw(200, &PAGE2[..PAGE2.len() / 2])],
    );
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(value_of(&m, "linq_up "), Some(0.0));
    assert!(value_of(&m, "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"\",kind=\"decode\",status_code=\"\"} ").unwrap() >= 1.0);
    assert!(value_of(&m, "linq_poll_failures_total{kind=\"decode\"} ").unwrap() >= 1.0);
    // The last good snapshot is still served, whole.
    assert_eq!(
        samples(&m, "linq_chat_info"),
        samples(&good, "linq_chat_info")
    );
    assert_eq!(samples(&m, "linq_chats"), samples(&good, "linq_chats"));
    exp.stop().await;
}

#[tokio::test]
async fn wrong_types_are_decode_errors() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![Reply::raw(200, r#"{"chats": "oops", "next_cursor": null}"#)],
    );
    let exp = Exporter::start(&api, &[]).await;
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(value_of(&m, "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"\",kind=\"decode\",status_code=\"\"} "), Some(1.0));
    assert_eq!(api.request_count(), 1, "decode errors are not retried");
    exp.stop().await;
}

#[tokio::test]
async fn repeating_cursor_is_a_pagination_error_with_bounded_requests() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(
            vec![chat("c1", ME, Some("SMS"), None, None)],
            Some("A"),
        )],
    );
    api.chats(
        Some("A"),
        vec![page(
            vec![chat("c2", ME, Some("SMS"), None, None)],
            Some("B"),
        )],
    );
    api.chats(
        Some("B"),
        vec![page(
            vec![chat("c3", ME, Some("SMS"), None, None)],
            Some("A"),
        )],
    );
    let exp = Exporter::start(&api, &[]).await;
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(api.request_count(), 3);
    assert_eq!(value_of(&m, "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"\",kind=\"pagination\",status_code=\"\"} "), Some(1.0));
    assert_eq!(
        value_of(&m, "linq_poll_failures_total{kind=\"pagination\"} "),
        Some(1.0)
    );
    assert!(
        samples(&m, "linq_chat_info").is_empty(),
        "an incomplete sweep publishes nothing"
    );
    exp.stop().await;
}

#[tokio::test]
async fn pipelined_walk_follows_the_decoded_cursor_not_the_guess() {
    // Page 1 ends with an escaped cursor (no guess: the walk must wait for the decoded "a/b").
    // Page "a/b" has no chats but a cursor: that ends the walk, so the page the walk may have
    // prefetched for "z" must never be used.
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![Reply::raw(
            200,
            &format!(
                r#"{{"chats":[{}],"next_cursor":"a\/b"}}"#,
                chat("c1", ME, Some("SMS"), Some(40.0), None)
            ),
        )],
    );
    api.chats(Some("a/b"), vec![page(vec![], Some("z"))]);
    api.chats(
        Some("z"),
        vec![page(vec![chat("c-z", ME, Some("SMS"), None, None)], None)],
    );
    let exp = Exporter::start(&api, &[]).await;
    let m = exp.wait_polls("success", 1).await;
    let cursors = api.cursors();
    assert_eq!(cursors, [None, Some("a/b".to_string())]);
    assert_eq!(samples(&m, "linq_chat_info").len(), 1);
    assert!(
        !m.contains("c-z"),
        "a prefetched page the walk did not reach was used"
    );
    assert_eq!(value_of(&m, "linq_poll_pages "), Some(2.0));
    exp.stop().await;
}

#[tokio::test]
async fn the_walk_requests_exactly_what_a_sequential_walk_would() {
    // Page 1 ends with a plain cursor (prefetched); page "p1" is empty but carries a cursor,
    // which ends the walk: "stray" must never be requested, in any of 20 sweeps, whatever the
    // timing. A strict API answers it 400, which must not show up as an error either.
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(
            vec![chat("c1", ME, Some("SMS"), Some(40.0), None)],
            Some("p1"),
        )],
    );
    api.chats(Some("p1"), vec![page(vec![], Some("stray"))]);
    api.chats(Some("stray"), vec![Reply::error(400, 1001)]);
    let exp = Exporter::start(&api, &["--linq.poll-interval", "50ms"]).await;
    let m = exp
        .wait_for(Duration::from_secs(20), |m| {
            value_of(m, "linq_polls_total{result=\"success\"} ").is_some_and(|v| v >= 20.0)
        })
        .await;
    exp.stop().await;
    let cursors = api.cursors();
    let sweeps = cursors.len() / 2;
    assert!(sweeps >= 20);
    // Each sweep asks for the first page and "p1", nothing else (a sweep cut short by the
    // stop may have asked for its first page only).
    let want: Vec<Option<String>> = (0..cursors.len())
        .map(|i| (i % 2 == 1).then(|| "p1".to_string()))
        .collect();
    assert_eq!(cursors, want);
    assert!(
        !m.lines()
            .any(|l| l.starts_with("linq_api_errors_total") && l.contains("kind=\"http\"")),
        "{m}"
    );
    assert_eq!(
        value_of(&m, "linq_polls_total{result=\"failure\"} "),
        Some(0.0)
    );
}

#[tokio::test]
async fn an_unneeded_prefetch_is_never_counted_as_an_error() {
    // Page 1 looks like a page that goes on (chats first, a cursor last), so "p2" is prefetched
    // while it is decoded; but it does not decode, so the sweep fails with a decode error and
    // the prefetched answer (a 400 from a strict API) is dropped uncounted.
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![Reply::raw(
            200,
            r#"{"chats":[{"id":"c1","handles":[],"is_group":"no"}],"next_cursor":"p2"}"#,
        )],
    );
    api.chats(Some("p2"), vec![Reply::error(400, 1001)]);
    let exp = Exporter::start(&api, &["--linq.poll-interval", "50ms"]).await;
    let m = exp
        .wait_for(Duration::from_secs(10), |m| {
            value_of(m, "linq_polls_total{result=\"failure\"} ").is_some_and(|v| v >= 10.0)
        })
        .await;
    exp.stop().await;
    let failures = value_of(&m, "linq_poll_failures_total{kind=\"decode\"} ").unwrap();
    assert!(failures >= 10.0);
    assert_eq!(
        value_of(&m, "linq_poll_failures_total{kind=\"http\"} "),
        Some(0.0)
    );
    assert!(!m.contains("kind=\"http\",status_code=\"400\""), "{m}");
}

#[tokio::test]
async fn long_pipelined_walk_is_complete_and_in_order() {
    // 30 pages of 3 chats: every page is prefetched from its predecessor's tail.
    let api = FakeApi::start().await;
    for p in 0..30 {
        let chats = (0..3)
            .map(|i| {
                chat(
                    &format!("c{p:02}-{i}"),
                    ME,
                    Some("SMS"),
                    Some(f64::from(p)),
                    None,
                )
            })
            .collect();
        let next = (p < 29).then(|| format!("p{}", p + 1));
        let cursor = (p > 0).then(|| format!("p{p}"));
        api.chats(cursor.as_deref(), vec![page(chats, next.as_deref())]);
    }
    let exp = Exporter::start(&api, &[]).await;
    let m = exp.wait_polls("success", 1).await;
    let cursors = api.cursors();
    let want: Vec<Option<String>> = (0..30).map(|p| (p > 0).then(|| format!("p{p}"))).collect();
    assert_eq!(cursors, want, "one request per page, in walk order");
    assert_eq!(samples(&m, "linq_chat_info").len(), 90);
    assert_eq!(value_of(&m, "linq_poll_pages "), Some(30.0));
    assert_eq!(
        value_of(
            &m,
            &format!("linq_chats_by_health_score_bucket{{phone_number=\"{ME}\",le=\"10\"}} ")
        ),
        Some(33.0)
    );
    exp.stop().await;
}

#[tokio::test]
async fn readyz_before_and_after_the_first_sweep() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(vec![chat("c1", ME, Some("SMS"), None, None)], None)
            .delay(Duration::from_millis(400))],
    );
    let exp = Exporter::start(&api, &[]).await;
    let (status, body) = exp.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(exp.get("/healthz").await.0, 200);
    exp.wait_polls("success", 1).await;
    assert_eq!(exp.get("/readyz").await, (200, "ready\n".to_string()));
    exp.stop().await;
}

#[tokio::test]
async fn readyz_fails_when_data_is_older_than_the_max_age() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![
            page(vec![chat("c1", ME, Some("SMS"), None, None)], None),
            Reply::error(500, 3001),
        ],
    );
    let exp = Exporter::start(
        &api,
        &[
            "--linq.poll-interval",
            "100ms",
            "--web.ready-max-age",
            "300ms",
            "--linq.max-retries",
            "0",
        ],
    )
    .await;
    exp.wait_polls("success", 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = exp.get("/readyz").await;
        if status == 503 {
            assert!(body.contains("old"), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz never turned 503"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    exp.stop().await;
}

#[tokio::test]
async fn gzip_when_asked() {
    let api = FakeApi::start().await;
    two_pages(&api);
    let exp = Exporter::start(&api, &[]).await;
    let plain = exp.wait_polls("success", 1).await;
    let resp = reqwest::Client::new()
        .get(format!("http://{}/metrics", exp.addr))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let bytes = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(
        samples(&text, "linq_chat_info"),
        samples(&plain, "linq_chat_info")
    );
    assert!(text.contains("linq_up 1\n"));
    exp.stop().await;
}

#[tokio::test]
async fn index_page_names_the_version_and_links_metrics() {
    let api = FakeApi::start().await;
    two_pages(&api);
    let exp = Exporter::start(&api, &["--web.telemetry-path", "/custom"]).await;
    exp.wait_polls("success", 1).await;
    let (status, page) = exp.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
    assert!(page.contains("href=\"/custom\""));
    assert_eq!(exp.get("/metrics").await.0, 404);
    exp.stop().await;
}
