//! Sharding (`--shard`, `--total-shards`): shards walk disjoint sets of the account's numbers
//! whose union is every number, their per-number series together equal one unsharded
//! exporter's exactly, and together they make no more `/v3/chats` requests than one exporter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

/// The account: numbers, their shard of 3 (FNV-1a 64 modulo 3, see src/config/shard.rs), and
/// how many chats each has (over two pages when more than 2).
const ACCOUNT: [(&str, u32, usize); 8] = [
    ("+12025550101", 2, 3),
    ("+12025550102", 2, 1),
    ("+12025550103", 1, 4),
    ("+12025550104", 1, 2),
    ("+12025550105", 0, 5),
    ("+12025550106", 0, 1),
    ("+14155550100", 1, 2),
    ("+447700900123", 2, 3),
];

fn script_account(api: &FakeApi, list_numbers: bool) {
    if list_numbers {
        let items: Vec<_> = ACCOUNT
            .iter()
            .map(|(n, _, _)| json!({"id": n, "phone_number": n, "line_type": "iMessage", "reputation": {"status": "HEALTHY", "doc_url": null}}))
            .collect();
        api.phone_numbers(vec![Reply::json(json!({ "phone_numbers": items }))]);
    }
    for (n, _, count) in ACCOUNT {
        let chats: Vec<_> = (0..count)
            .map(|i| {
                let status = if i % 2 == 0 { "HEALTHY" } else { "AT_RISK" };
                chat(
                    &format!("{n}-c{i}"),
                    n,
                    Some("iMessage"),
                    Some(10.0 * i as f64),
                    Some(status),
                )
            })
            .collect();
        if count > 2 {
            let cursor = format!("{n}-p2");
            api.script(
                "/v3/chats",
                Some(n),
                None,
                vec![page(chats[..2].to_vec(), Some(&cursor))],
            );
            api.script(
                "/v3/chats",
                Some(n),
                Some(&cursor),
                vec![page(chats[2..].to_vec(), None)],
            );
        } else {
            api.script("/v3/chats", Some(n), None, vec![page(chats, None)]);
        }
    }
}

/// `GET /v3/chats` requests of one sweep of the whole account: one per page.
fn chats_pages() -> usize {
    ACCOUNT
        .iter()
        .map(|(_, _, c)| if *c > 2 { 2 } else { 1 })
        .sum()
}

/// The per-number families compared between the shards and one exporter.
const FAMILIES: [&str; 6] = [
    "linq_chats",
    "linq_chat_info",
    "linq_chats_by_health_status",
    "linq_chat_health_score",
    "linq_phone_number_info",
    "linq_phone_number_reputation",
];

fn lines_of(m: &str) -> Vec<String> {
    let mut out: Vec<String> = FAMILIES
        .iter()
        .flat_map(|f| samples(m, f))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// The `phone_number` label values of `linq_chats` in `m`.
fn numbers_of(m: &str) -> BTreeSet<String> {
    samples(m, "linq_chats")
        .iter()
        .filter_map(|l| {
            let rest = l.split("phone_number=\"").nth(1)?;
            Some(rest.split('"').next()?.to_string())
        })
        .collect()
}

/// Runs one unsharded exporter and three shards, each against its own copy of the account,
/// with `args`; returns each one's /metrics after its first sweep and each API's recorded requests.
async fn one_and_three(args: &[&str], list_numbers: bool) -> (String, Vec<String>, usize, usize) {
    let single_api = FakeApi::start().await;
    script_account(&single_api, list_numbers);
    let mut all = vec!["--linq.poll-interval", "1h"];
    all.extend_from_slice(args);
    let one = Exporter::start(&single_api, &all).await;
    let single = one.wait_polls("success", 1).await;
    one.stop().await;

    let shared = FakeApi::start().await;
    script_account(&shared, list_numbers);
    let mut shards = Vec::new();
    for i in 0..3 {
        let index = i.to_string();
        let mut a = all.clone();
        a.extend_from_slice(&["--shard", &index, "--total-shards", "3"]);
        shards.push(Exporter::start(&shared, &a).await);
    }
    let mut outputs = Vec::new();
    for s in shards {
        outputs.push(s.wait_polls("success", 1).await);
        s.stop().await;
    }
    (
        single,
        outputs,
        single_api.all_requests().len(),
        shared.all_requests().len(),
    )
}

fn check_partition(single: &str, shards: &[String]) {
    let everyone: BTreeSet<String> = ACCOUNT.iter().map(|(n, _, _)| n.to_string()).collect();
    assert_eq!(numbers_of(single), everyone);
    let mut union = BTreeSet::new();
    for (i, m) in shards.iter().enumerate() {
        let mine = numbers_of(m);
        let want: BTreeSet<String> = ACCOUNT
            .iter()
            .filter(|(_, s, _)| *s == i as u32)
            .map(|(n, _, _)| n.to_string())
            .collect();
        assert_eq!(mine, want, "shard {i} walks the numbers it owns");
        assert!(union.is_disjoint(&mine), "shard {i} overlaps another");
        union.extend(mine);
        assert_eq!(
            value_of(
                m,
                &format!("linq_exporter_shard_info{{shard=\"{i}\",total_shards=\"3\"}} ")
            ),
            Some(1.0)
        );
        assert_eq!(samples(m, "linq_exporter_shard_info").len(), 1);
    }
    assert_eq!(union, everyone, "together the shards walk every number");
    // Every per-number series of one exporter, exactly once across the shards, same value.
    let together: Vec<String> = {
        let mut v: Vec<String> = shards.iter().flat_map(|m| lines_of(m)).collect();
        v.sort();
        v
    };
    assert_eq!(together, lines_of(single));
    assert_eq!(
        value_of(
            single,
            "linq_exporter_shard_info{shard=\"0\",total_shards=\"1\"} "
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn three_discovering_shards_export_exactly_one_exporters_numbers() {
    let (single, shards, single_requests, shard_requests) =
        one_and_three(&["--linq.discover-numbers"], true).await;
    check_partition(&single, &shards);
    assert!(lines_of(&single)
        .iter()
        .any(|l| l.starts_with("linq_phone_number_reputation{")));
    // One GET /v3/chats per page either way; each shard lists the numbers once per sweep.
    let chats_pages = chats_pages();
    assert_eq!(single_requests, chats_pages + 1);
    assert_eq!(shard_requests, chats_pages + 3);
}

#[tokio::test]
async fn three_shards_over_a_from_list_make_exactly_one_exporters_requests() {
    let from = ACCOUNT
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(",");
    let (single, shards, single_requests, shard_requests) =
        one_and_three(&["--linq.from", &from, "--linq.phone-numbers=false"], false).await;
    check_partition(&single, &shards);
    assert_eq!(shard_requests, single_requests);
    assert_eq!(single_requests, chats_pages());
}

#[tokio::test]
async fn a_shard_that_owns_no_number_walks_nothing_not_the_whole_account() {
    let api = FakeApi::start().await;
    script_account(&api, false);
    // +12025550101 is shard 0 of 2.
    api.chats(
        None,
        vec![page(vec![chat("everything", "+1", None, None, None)], None)],
    );
    let exp = Exporter::start(
        &api,
        &[
            "--linq.from",
            "+12025550101",
            "--shard",
            "1",
            "--total-shards",
            "2",
            "--linq.phone-numbers=false",
            "--linq.poll-interval",
            "1h",
        ],
    )
    .await;
    let m = exp.wait_polls("success", 1).await;
    assert_eq!(api.request_count(), 0);
    assert!(samples(&m, "linq_chats").is_empty(), "{m}");
    exp.stop().await;
}

#[tokio::test]
async fn a_discovering_shard_fails_its_sweep_until_the_numbers_are_listed() {
    let api = FakeApi::start().await;
    script_account(&api, false);
    api.phone_numbers(vec![Reply::error(500, 3006)]);
    let exp = Exporter::start(
        &api,
        &[
            "--linq.discover-numbers",
            "--shard",
            "0",
            "--total-shards",
            "3",
            "--linq.max-retries",
            "0",
            "--linq.poll-interval",
            "1h",
        ],
    )
    .await;
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(value_of(&m, "linq_up "), Some(0.0));
    assert_eq!(
        value_of(&m, "linq_poll_failures_total{kind=\"http\"} "),
        Some(1.0)
    );
    assert_eq!(api.request_count(), 0, "no walk of the whole account");
    exp.stop().await;
}

/// Runs the binary to its exit, bounded: killed (and the test failed) past 20 seconds.
fn run_bounded(mut cmd: Command) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after 20s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}

#[test]
fn bad_shard_specs_fail_at_start_up_naming_the_flag() {
    for (args, flag) in [
        (
            &[
                "--shard",
                "3",
                "--total-shards",
                "3",
                "--linq.discover-numbers",
            ][..],
            "--shard",
        ),
        (
            &[
                "--shard=-1",
                "--total-shards",
                "3",
                "--linq.discover-numbers",
            ][..],
            "--shard",
        ),
        (&["--total-shards", "0"][..], "--total-shards"),
        (&["--total-shards", "2"][..], "--total-shards"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_linq-exporter"));
        for (k, _) in std::env::vars() {
            if k.starts_with("LINQ_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(["--linq.api-key", "k", "--web.listen-address", "127.0.0.1:0"])
            .args(args);
        let (success, stderr) = run_bounded(cmd);
        assert!(!success, "{args:?}");
        assert!(
            stderr.contains(&format!("invalid value for {flag}:")),
            "{args:?}: {stderr}"
        );
    }
    // The environment variables too.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linq-exporter"));
    cmd.args(["--linq.api-key", "k", "--web.listen-address", "127.0.0.1:0"])
        .env("LINQ_EXPORTER_SHARD", "5")
        .env("LINQ_EXPORTER_TOTAL_SHARDS", "3")
        .env("LINQ_EXPORTER_DISCOVER_NUMBERS", "true");
    let (success, stderr) = run_bounded(cmd);
    assert!(!success);
    assert!(
        stderr.contains("invalid value for --shard: 5 is not below --total-shards 3"),
        "{stderr}"
    );
}

/// The sum of a counter's samples whose line starts with `prefix`.
fn sum_of(m: &str, prefix: &str) -> f64 {
    m.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn against_the_simulator_three_shards_equal_one_exporter() {
    use linq_exporter::demo::{self, SimConfig, DEMO_KEY};
    let numbers: Vec<String> = (1..=6).map(|i| format!("+1202555010{i}")).collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (url, _task) = demo::spawn(
        &SimConfig {
            chats: 600,
            numbers: numbers.clone(),
            // Health values stay put for the test's few seconds.
            drift_period: std::time::Duration::from_secs(86_400 * 365),
            ..Default::default()
        },
        listener,
    )
    .unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--linq.base-url",
            &url,
            "--linq.api-key",
            DEMO_KEY,
            "--linq.discover-numbers",
            "--linq.poll-interval",
            "1h",
        ];
        a.extend_from_slice(extra);
        config(&a)
    };
    let one = Exporter::start_with(args(&[])).await;
    let single = one.wait_polls("success", 1).await;
    one.stop().await;
    let mut shards = Vec::new();
    for i in ["0", "1", "2"] {
        let s = Exporter::start_with(args(&["--shard", i, "--total-shards", "3"])).await;
        shards.push(s.wait_polls("success", 1).await);
        s.stop().await;
    }
    let all: BTreeSet<String> = numbers.iter().cloned().collect();
    assert_eq!(numbers_of(&single), all);
    let mut union = BTreeSet::new();
    for (i, m) in shards.iter().enumerate() {
        let mine = numbers_of(m);
        for n in &mine {
            assert_eq!(
                linq_exporter::config::shard::shard_of(n, 3),
                i as u32,
                "{n} on shard {i}"
            );
        }
        assert!(union.is_disjoint(&mine));
        union.extend(mine);
    }
    assert_eq!(union, all);
    let mut together: Vec<String> = shards.iter().flat_map(|m| lines_of(m)).collect();
    together.sort();
    assert_eq!(together, lines_of(&single));
    assert!(together.len() > 600, "per-chat series included");
    let chats_requests = "linq_api_requests_total{endpoint=\"/v3/chats\"";
    let shard_requests: f64 = shards.iter().map(|m| sum_of(m, chats_requests)).sum();
    assert!(sum_of(&single, chats_requests) >= 6.0);
    assert_eq!(shard_requests, sum_of(&single, chats_requests));
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE=";

/// A signed (Standard Webhooks) delivery of `body` to `url`; the answer's status.
async fn deliver(url: &str, id: &str, body: serde_json::Value) -> u16 {
    use base64::Engine;
    let body = body.to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = base64::engine::general_purpose::STANDARD
        .decode(WEBHOOK_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let sig = base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(
        &key,
        format!("{id}.{ts}.{body}").as_bytes(),
    ));
    reqwest::Client::new()
        .post(url)
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", format!("v1,{sig}"))
        .body(body)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn message(event_type: &str, id: &str, data: serde_json::Value) -> serde_json::Value {
    json!({"api_version": "v3", "webhook_version": "2026-02-03", "event_type": event_type,
        "event_id": id, "created_at": "2026-02-05T19:52:18Z", "trace_id": "t",
        "partner_id": "p", "data": data})
}

#[tokio::test]
async fn webhook_events_are_labelled_by_the_account_number_whichever_shard_receives_them() {
    let api = FakeApi::start().await;
    script_account(&api, false);
    let from = ACCOUNT
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(",");
    let mut shards = Vec::new();
    for i in ["0", "1"] {
        let listen = format!("127.0.0.1:{}", free_port());
        let exp = Exporter::start(
            &api,
            &[
                "--linq.from",
                &from,
                "--linq.phone-numbers=false",
                "--shard",
                i,
                "--total-shards",
                "2",
                "--linq.poll-interval",
                "1h",
                "--webhook.listen-address",
                &listen,
                "--webhook.signing-secret",
                WEBHOOK_SECRET,
            ],
        )
        .await;
        exp.wait_polls("success", 1).await;
        shards.push((exp, format!("http://{listen}/webhook")));
    }
    // +12025550102 is shard 1 of 2, +12025550101 shard 0.
    let (theirs, mine) = ("+12025550102", "+12025550101");
    assert_eq!(linq_exporter::config::shard::shard_of(theirs, 2), 1);
    assert_eq!(linq_exporter::config::shard::shard_of(mine, 2), 0);
    let owner =
        |n: &str| json!({"chat": {"id": "x", "owner_handle": {"handle": n}}, "service": "RCS"});
    // To shard 0: an event naming shard 1's number, one naming its own, one naming no number
    // of the account; to shard 1: a failure carrying only the chat id of one of its chats.
    let url0 = &shards[0].1;
    assert_eq!(
        deliver(url0, "e1", message("message.sent", "e1", owner(theirs))).await,
        200
    );
    assert_eq!(
        deliver(url0, "e2", message("message.sent", "e2", owner(mine))).await,
        200
    );
    assert_eq!(
        deliver(
            url0,
            "e3",
            message("message.sent", "e3", owner("+19999999999"))
        )
        .await,
        200
    );
    let failed = json!({"chat_id": format!("{theirs}-c0"), "message_id": "m", "code": 4001,
        "reason": "r", "failed_at": "2026-01-01T00:00:00Z"});
    assert_eq!(
        deliver(&shards[1].1, "e4", message("message.failed", "e4", failed)).await,
        200
    );

    let mut all = String::new();
    for (exp, _) in &shards {
        all.push_str(&exp.metrics().await);
    }
    let total = |prefix: &str| sum_of(&all, prefix);
    assert_eq!(
        total(&format!("linq_message_events_total{{event=\"sent\",phone_number=\"{theirs}\",service=\"RCS\"}} ")),
        1.0
    );
    assert_eq!(
        total(&format!(
            "linq_message_events_total{{event=\"sent\",phone_number=\"{mine}\",service=\"RCS\"}} "
        )),
        1.0
    );
    assert_eq!(
        total(
            "linq_message_events_total{event=\"sent\",phone_number=\"unknown\",service=\"RCS\"} "
        ),
        1.0
    );
    assert_eq!(
        total(&format!("linq_message_failures_total{{error_code=\"4001\",phone_number=\"{theirs}\",service=\"iMessage\"}} ")),
        1.0
    );
    // Every event counted exactly once across the replicas.
    assert_eq!(total("linq_message_events_total{"), 4.0);
    for (exp, _) in shards {
        exp.stop().await;
    }
}
