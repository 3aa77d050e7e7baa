//! Tests of the built binary: `--once` exit codes, bad flags failing at start-up naming the
//! flag, a missing key, SIGTERM during a sweep, and the healthcheck subcommand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_linq-exporter");

fn exporter() -> Command {
    let mut c = Command::new(BIN);
    // Keep the caller's environment from leaking flags into the test.
    for (k, _) in std::env::vars() {
        if k.starts_with("LINQ_") {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

/// Runs the command to completion (reading its output as it goes), killing it and failing if
/// it runs past 20 seconds.
async fn output(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if done_rx.recv_timeout(Duration::from_secs(20)).is_err() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                return true;
            }
            false
        });
        let out = child.wait_with_output().unwrap();
        let _ = done_tx.send(());
        assert!(!watchdog.join().unwrap(), "{cmd:?} still running after 20s");
        out
    })
    .await
    .unwrap()
}

/// Runs the command, asserts it exits 0 (showing its stderr if not), returns stdout and stderr.
async fn success_output(cmd: Command) -> (String, String) {
    let out = output(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

#[tokio::test]
async fn once_prints_the_exposition_and_exits_zero() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(
            vec![chat(
                "c1",
                "+14155551234",
                Some("SMS"),
                Some(42.0),
                Some("AT_RISK"),
            )],
            None,
        )],
    );
    let mut cmd = exporter();
    cmd.args(["--once", "--linq.base-url", &api.url])
        .env("LINQ_API_V3_API_KEY", KEY);
    let (stdout, stderr) = success_output(cmd).await;
    assert_eq!(
        value_of(
            &stdout,
            "linq_chat_health_score{chat_id=\"c1\",phone_number=\"+14155551234\"} "
        ),
        Some(42.0)
    );
    assert_eq!(value_of(&stdout, "linq_up "), Some(1.0));
    assert!(!stderr.contains(KEY) && !stdout.contains(KEY));
}

#[tokio::test]
async fn once_fails_non_zero_with_the_error_on_stderr() {
    let api = FakeApi::start().await;
    api.chats(None, vec![Reply::error(401, 2004)]);
    let mut cmd = exporter();
    cmd.args(["--once", "--linq.base-url", &api.url, "--linq.api-key", KEY]);
    let out = output(cmd).await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("2004"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY), "{stderr}");
}

#[tokio::test]
async fn demo_once_works_without_a_key() {
    let mut cmd = exporter();
    cmd.args([
        "--demo",
        "--once",
        "--demo.chats",
        "250",
        "--demo.error-rate",
        "0",
        "--demo.rate-limit-rate",
        "0",
        "--demo.slow-rate",
        "0",
    ]);
    let (stdout, _) = success_output(cmd).await;
    assert_eq!(samples(&stdout, "linq_chat_info").len(), 250);
    let total: f64 = samples(&stdout, "linq_chats")
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(total, 250.0);
}

#[tokio::test]
async fn bad_flags_fail_at_start_up_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--demo", "--linq.page-size", "0"], "--linq.page-size"),
        (&["--demo", "--linq.page-size", "101"], "--linq.page-size"),
        (
            &["--demo", "--web.listen-address", "nonsense"],
            "--web.listen-address",
        ),
        (
            &["--demo", "--linq.poll-interval", "soon"],
            "--linq.poll-interval",
        ),
        (
            &["--demo", "--linq.poll-interval", "0s"],
            "--linq.poll-interval",
        ),
        (&["--demo", "--log.format", "xml"], "--log.format"),
        (
            &["--demo", "--linq.chat-metrics", "some"],
            "--linq.chat-metrics",
        ),
        (&["--demo", "--linq.from", "+1-555-CALL"], "--linq.from"),
        (&["--demo", "--linq.base-url", "ftp://x"], "--linq.base-url"),
        (&["--demo", "--log.level", "loud=="], "--log.level"),
    ];
    for (args, flag) in cases {
        let mut cmd = exporter();
        cmd.args(*args);
        let out = output(cmd).await;
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn missing_key_names_both_ways_to_give_one() {
    let out = output(exporter()).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--linq.api-key") && stderr.contains("--linq.api-key-file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("LINQ_API_V3_API_KEY") && stderr.contains("LINQ_API_V3_API_KEY_FILE"),
        "{stderr}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_http(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if client.get(url).send().await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_during_a_sweep_exits_zero_promptly() {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(vec![], None).delay(Duration::from_secs(60))],
    );
    let port = free_port();
    let mut cmd = exporter();
    cmd.args([
        "--linq.base-url",
        &api.url,
        "--linq.api-key",
        KEY,
        "--web.listen-address",
        &format!("127.0.0.1:{port}"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wait_http(&format!("http://127.0.0.1:{port}/healthz")).await;
    eventually(Duration::from_secs(10), || api.request_count() == 1).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap()
    .expect("exporter exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn healthcheck_subcommand_reflects_healthz() {
    let port = free_port();
    let mut cmd = exporter();
    cmd.args([
        "healthcheck",
        "--url",
        &format!("http://127.0.0.1:{port}/healthz"),
        "--timeout",
        "1s",
    ]);
    assert!(!output(cmd).await.status.success(), "nothing listens yet");

    let mut server = exporter();
    server
        .args([
            "--demo",
            "--demo.chats",
            "50",
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = server.spawn().unwrap();
    wait_http(&format!("http://127.0.0.1:{port}/healthz")).await;
    let mut cmd = exporter();
    cmd.args([
        "healthcheck",
        "--url",
        &format!("http://127.0.0.1:{port}/healthz"),
    ]);
    let ok = output(cmd).await.status.success();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert!(ok);
}
