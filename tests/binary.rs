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

/// The binary serving a 50-chat demo on `port`, its output discarded.
fn spawn_demo(port: u16) -> std::process::Child {
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
    server.spawn().unwrap()
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

    let mut child = spawn_demo(port);
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

/// A fake of the subscription endpoints: records each request's bearer key and body.
async fn fake_subscriptions() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
) {
    use axum::routing::post;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;
    let seen: Seen = Default::default();
    async fn create(
        axum::extract::State(seen): axum::extract::State<Seen>,
        headers: axum::http::HeaderMap,
        body: String,
    ) -> (axum::http::StatusCode, String) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        seen.lock().unwrap().push((auth, body));
        (
            axum::http::StatusCode::CREATED,
            serde_json::json!({"id": "sub-1", "target_url": "https://hooks.example.com/webhook",
                "signing_secret": "whsec_c3Vic2NyaXB0aW9uLXNlY3JldA==",
                "subscribed_events": ["message.sent", "message.failed"], "is_active": true,
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"})
            .to_string(),
        )
    }
    async fn list(headers: axum::http::HeaderMap) -> (axum::http::StatusCode, String) {
        if headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {KEY}"))
        {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                r#"{"success":false,"error":{"status":401,"code":2004,"message":"bad key"}}"#
                    .into(),
            );
        }
        (
            axum::http::StatusCode::OK,
            serde_json::json!({"subscriptions": [
                {"id": "sub-1", "target_url": "https://hooks.example.com/webhook", "subscribed_events": ["message.sent", "message.failed"], "is_active": true, "created_at": "x", "updated_at": "x"},
                {"id": "sub-2", "target_url": "https://old.example.com/hook", "subscribed_events": ["message.read"], "is_active": false, "created_at": "x", "updated_at": "x"}
            ]})
            .to_string(),
        )
    }
    let app = axum::Router::new()
        .route("/v3/webhook-subscriptions", post(create).get(list))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test]
async fn webhook_subscribe_writes_the_secret_to_a_file_only_and_list_shows_subscriptions() {
    let (url, seen) = fake_subscriptions().await;
    let dir = std::env::temp_dir().join(format!("linq-subscribe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("webhook-secret");
    let mut cmd = exporter();
    cmd.args([
        "--linq.base-url",
        &url,
        "webhook",
        "subscribe",
        "--url",
        "https://hooks.example.com/webhook",
        "--events",
        "message.sent,message.failed",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ])
    .env("LINQ_API_V3_API_KEY", KEY);
    let (stdout, stderr) = success_output(cmd).await;
    assert!(stdout.contains("sub-1"), "{stdout}");
    for out in [&stdout, &stderr] {
        assert!(
            !out.contains("c3Vic2NyaXB0aW9uLXNlY3JldA"),
            "secret printed: {out}"
        );
        assert!(!out.contains(KEY), "key printed: {out}");
    }
    assert_eq!(
        std::fs::read_to_string(&secret_file).unwrap(),
        "whsec_c3Vic2NyaXB0aW9uLXNlY3JldA==\n"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0, format!("Bearer {KEY}"));
    let body: serde_json::Value = serde_json::from_str(&requests[0].1).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"target_url": "https://hooks.example.com/webhook",
            "subscribed_events": ["message.sent", "message.failed"]})
    );

    let mut cmd = exporter();
    cmd.args(["--linq.base-url", &url, "webhook", "list"])
        .env("LINQ_API_V3_API_KEY", KEY);
    let (stdout, _) = success_output(cmd).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(
        lines[1],
        "sub-1\tyes\thttps://hooks.example.com/webhook\tmessage.sent,message.failed"
    );
    assert_eq!(
        lines[2],
        "sub-2\tno\thttps://old.example.com/hook\tmessage.read"
    );

    // A wrong key: a clear error naming the status and Linq's message, non-zero exit.
    let mut cmd = exporter();
    cmd.args(["--linq.base-url", &url, "webhook", "list"])
        .env("LINQ_API_V3_API_KEY", "wrong");
    let out = output(cmd).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("bad key"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_secret_given_two_ways_is_refused_before_any_request() {
    let api = FakeApi::start().await;
    let dir = std::env::temp_dir().join(format!("linq-two-ways-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("key");
    std::fs::write(&key_file, KEY).unwrap();
    let key_file = key_file.to_str().unwrap().to_string();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--linq.api-key-file", &key_file],
            vec![("LINQ_API_V3_API_KEY", KEY)],
            "--linq.api-key-file and LINQ_API_V3_API_KEY (environment) both give the API key; give it one way",
        ),
        (
            vec!["--linq.api-key", KEY],
            vec![("LINQ_API_V3_API_KEY_FILE", key_file.as_str())],
            "--linq.api-key and LINQ_API_V3_API_KEY_FILE (environment) both give the API key; give it one way",
        ),
        (
            vec![
                "--linq.api-key-file", &key_file, "--webhook.listen-address", "127.0.0.1:0",
                "--webhook.signing-secret-file", &key_file,
            ],
            vec![("LINQ_WEBHOOK_SIGNING_SECRET", "whsec_c2VjcmV0")],
            "--webhook.signing-secret-file and LINQ_WEBHOOK_SIGNING_SECRET (environment) both give the webhook signing secret; give it one way",
        ),
        (
            vec![
                "--linq.api-key-file", &key_file, "--webhook.listen-address", "127.0.0.1:0",
                "--webhook.signing-secret", "whsec_c2VjcmV0",
            ],
            vec![("LINQ_WEBHOOK_SECRET", "whsec_c2VjcmV0")],
            "--webhook.signing-secret and LINQ_WEBHOOK_SECRET (environment) both give the webhook signing secret; give it one way",
        ),
    ];
    for (args, env, want) in cases {
        let mut cmd = exporter();
        cmd.args(["--once", "--linq.base-url", &api.url])
            .args(&args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = output(cmd).await;
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr,
            format!("linq-exporter: {want}\n"),
            "{args:?} {env:?}"
        );
    }
    // The same rule for `webhook list`.
    let mut cmd = exporter();
    cmd.args([
        "--linq.base-url",
        &api.url,
        "--linq.api-key",
        KEY,
        "webhook",
        "list",
    ])
    .env("LINQ_API_V3_API_KEY_FILE", &key_file);
    let out = output(cmd).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "linq-exporter webhook: --linq.api-key and LINQ_API_V3_API_KEY_FILE (environment) both give the API key; give it one way\n"
    );
    assert_eq!(api.request_count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn typos_fail_at_start_up_instead_of_misbehaving() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--demo", "--log.level", "verbose"],
            "invalid value 'verbose' for '--log.level <LOG_LEVEL>': \"verbose\" is not a level (error, warn, info, debug, trace, off) nor a target=level directive",
        ),
        (
            &["--demo", "--linq.from", "4155550100"],
            "linq-exporter: invalid value for --linq.from: \"4155550100\" is not an E.164 number: a + then the country code and number, such as +14155551234",
        ),
        (
            &["--linq.api-key", "k", "--webhook.signing-secret", "whsec_c2VjcmV0"],
            "linq-exporter: invalid value for --webhook.signing-secret: needs --webhook.listen-address (env LINQ_EXPORTER_WEBHOOK_LISTEN_ADDRESS): the webhook receiver is off without it",
        ),
        (
            &[
                "--linq.api-key", "k", "--webhook.listen-address", "127.0.0.1:0",
                "--webhook.signing-secret", "correct horse battery staple",
            ],
            "linq-exporter: invalid value for --webhook.signing-secret: the signing secret is not whsec_ followed by base64 (as Linq issues it), so Standard Webhooks signatures cannot be verified",
        ),
    ];
    for (args, want) in cases {
        let mut cmd = exporter();
        cmd.args(*args);
        let out = output(cmd).await;
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("horse"), "{stderr}");
    }
}

#[tokio::test]
async fn a_webhook_port_in_use_is_one_error_naming_the_flag_and_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = exporter();
    cmd.args([
        "--demo",
        "--demo.chats",
        "10",
        "--web.listen-address",
        "127.0.0.1:0",
        "--webhook.listen-address",
        &addr,
        "--log.level",
        "error",
    ]);
    let out = output(cmd).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!("linq-exporter: cannot listen on --webhook.listen-address {addr}: Address already in use (os error 98)\n")
    );
    drop(taken);
}

#[tokio::test]
async fn once_says_the_sweep_failed_once_without_a_last_good_snapshot() {
    let api = FakeApi::start().await;
    api.chats(None, vec![Reply::error(401, 2004)]);
    let mut cmd = exporter();
    cmd.args(["--once", "--linq.base-url", &api.url, "--linq.api-key", KEY]);
    let out = output(cmd).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("linq-exporter: the sweep failed: "),
        "{stderr}"
    );
    let cause = last.trim_start_matches("linq-exporter: the sweep failed: ");
    assert_eq!(
        stderr.matches(cause).count(),
        2,
        "said in the log line and the error, once each: {stderr}"
    );
    assert!(!last.contains(&format!("{cause}: {cause}")), "{stderr}");
    assert!(!stderr.contains("last good snapshot"), "{stderr}");
    assert!(stderr.contains("sweep failed; no snapshot yet"), "{stderr}");
    // Not a terminal: no colour codes.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[tokio::test]
async fn once_into_a_closed_pipe_exits_quietly() {
    let mut cmd = exporter();
    cmd.args([
        "--demo",
        "--once",
        "--demo.chats",
        "3000",
        "--demo.error-rate",
        "0",
        "--demo.rate-limit-rate",
        "0",
        "--demo.slow-rate",
        "0",
        "--log.level",
        "warn",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        // Read one line, then close the pipe, as `| head -1` does.
        let stdout = child.stdout.take().unwrap();
        {
            use std::io::BufRead;
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            assert!(line.starts_with("# HELP"), "{line}");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("still running");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "");
}

#[tokio::test]
async fn healthcheck_says_why_it_failed() {
    let port = free_port();
    let mut cmd = exporter();
    cmd.args([
        "healthcheck",
        "--url",
        &format!("http://127.0.0.1:{port}/healthz"),
        "--timeout",
        "1s",
    ]);
    let out = output(cmd).await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("linq-exporter healthcheck: GET http://127.0.0.1:{port}/healthz: connection failed (is the exporter running and listening there?)\n")
    );
}

#[tokio::test]
async fn version_names_the_revision() {
    let mut cmd = exporter();
    cmd.arg("--version");
    let (stdout, _) = success_output(cmd).await;
    assert!(
        stdout.starts_with(&format!(
            "linq-exporter {} (revision ",
            env!("CARGO_PKG_VERSION")
        )),
        "{stdout}"
    );
}

#[tokio::test]
async fn webhook_subscribe_checks_its_input_before_calling_the_api() {
    let (url, seen) = fake_subscriptions().await;
    let dir = std::env::temp_dir().join(format!("linq-subscribe-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good_file = dir.join("secret");
    let missing = dir.join("no-such-dir").join("secret");
    let cases: Vec<(&str, &str, &std::path::Path, &str)> = vec![
        (
            "not a url",
            "message.sent",
            &good_file,
            "invalid value for --url: \"not a url\" is not an absolute URL",
        ),
        (
            "http://hooks.example.com/webhook",
            "message.sent",
            &good_file,
            "invalid value for --url: \"http://hooks.example.com/webhook\" is not https",
        ),
        (
            "https://hooks.example.com/webhook",
            "message.sent,message.bounced",
            &good_file,
            "invalid value for --events: \"message.bounced\" is not a Linq webhook event",
        ),
        (
            "https://hooks.example.com/webhook",
            "message.sent",
            &missing,
            "does not exist; nothing was created at Linq",
        ),
    ];
    for (target, events, file, want) in cases {
        let mut cmd = exporter();
        cmd.args([
            "--linq.base-url",
            &url,
            "webhook",
            "subscribe",
            "--url",
            target,
            "--events",
            events,
            "--secret-file",
            file.to_str().unwrap(),
        ])
        .env("LINQ_API_V3_API_KEY", KEY);
        let out = output(cmd).await;
        assert!(!out.status.success(), "{target} {events}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("linq-exporter webhook: ") && stderr.contains(want),
            "{stderr}"
        );
    }
    assert_eq!(seen.lock().unwrap().len(), 0, "no request reached the API");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads `simulate`'s first line (`url=...`) from its stdout.
fn simulator() -> (std::process::Child, String) {
    let mut cmd = exporter();
    cmd.args(["simulate", "--listen", "127.0.0.1:0", "--chats", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().strip_prefix("url=").unwrap().to_string();
    (child, url)
}

#[tokio::test]
async fn webhook_subscribe_list_and_delete_work_against_the_simulator() {
    let (mut sim, url) = tokio::task::spawn_blocking(simulator).await.unwrap();
    let dir = std::env::temp_dir().join(format!("linq-sim-subscribe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    let run = |args: Vec<String>| {
        let mut cmd = exporter();
        cmd.args(["--linq.base-url", &url])
            .args(args)
            .env("LINQ_API_V3_API_KEY", linq_exporter::demo::DEMO_KEY);
        cmd
    };
    let (stdout, _) = success_output(run(vec![
        "webhook".into(),
        "subscribe".into(),
        "--url".into(),
        "https://hooks.example.com/webhook".into(),
        "--events".into(),
        "message.failed,message.read".into(),
        "--secret-file".into(),
        file.to_str().unwrap().into(),
    ]))
    .await;
    let id = stdout.split_whitespace().nth(2).unwrap().to_string();
    assert!(stdout.starts_with("created subscription "), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{}\n", linq_exporter::config::DEMO_WEBHOOK_SECRET)
    );
    let (stdout, _) = success_output(run(vec!["webhook".into(), "list".into()])).await;
    assert_eq!(
        stdout,
        format!("ID\tACTIVE\tTARGET URL\tEVENTS\n{id}\tyes\thttps://hooks.example.com/webhook\tmessage.failed,message.read\n")
    );
    let (stdout, _) = success_output(run(vec![
        "webhook".into(),
        "delete".into(),
        "--id".into(),
        id.clone(),
    ]))
    .await;
    assert_eq!(stdout, format!("deleted subscription {id}\n"));
    let (stdout, _) = success_output(run(vec!["webhook".into(), "list".into()])).await;
    assert_eq!(stdout, "ID\tACTIVE\tTARGET URL\tEVENTS\n");
    // Deleting it again: the API's JSON 404, said clearly.
    let out = output(run(vec![
        "webhook".into(),
        "delete".into(),
        "--id".into(),
        id,
    ]))
    .await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "linq-exporter webhook: HTTP 404: Webhook subscription not found\n"
    );
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_demo_status_page_shows_the_webhook_receiver_and_the_flagged_line() {
    let port = free_port();
    let mut child = spawn_demo(port);
    let url = format!("http://127.0.0.1:{port}/");
    wait_http(&url).await;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let page = loop {
        let page = client.get(&url).send().await.unwrap().text().await.unwrap();
        if page.contains("<td class=\"bad\">FLAGGED</td>") && page.contains("ago)") {
            break Some(page);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let page = page.expect("the status page shows a FLAGGED line and a last webhook event");
    assert!(page.contains("<h2>Webhook receiver</h2>"), "{page}");
    assert!(page.contains("<td>+12125550199</td>"), "{page}");
    assert!(
        page.contains("<th>Number</th><th>Reputation</th><th>Status</th>"),
        "{page}"
    );
}

#[tokio::test]
async fn a_missing_secret_file_is_warned_about_once_not_every_second() {
    let api = FakeApi::start().await;
    api.chats(None, vec![page(vec![], None)]);
    let dir = std::env::temp_dir().join(format!("linq-secret-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "whsec_c2VjcmV0\n").unwrap();
    let port = free_port();
    let mut cmd = exporter();
    cmd.args([
        "--linq.base-url",
        &api.url,
        "--linq.api-key",
        KEY,
        "--web.listen-address",
        &format!("127.0.0.1:{port}"),
        "--webhook.listen-address",
        "127.0.0.1:0",
        "--webhook.signing-secret-file",
        secret.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_http(&format!("http://127.0.0.1:{port}/healthz")).await;
    std::fs::remove_file(&secret).unwrap();
    // An observation window, not a synchronisation: the file is checked every second, so the
    // old behaviour warned 3 or 4 times in it.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .matches("webhook signing secret reload failed")
            .count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("c2VjcmV0"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
