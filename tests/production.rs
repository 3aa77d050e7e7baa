//! Production conditions: sweeps longer than the poll interval, response bodies past the bound,
//! header and idle timeouts, the connection bound, and (against the built binary, started at a
//! soft limit of 1,024 open files) thousands of half-open connections on the plain and TLS
//! listeners and an upstream that streams a body without end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::server_pki;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_linq-exporter");

/// The demo without injected faults.
const QUIET_DEMO: [&str; 7] = [
    "--demo",
    "--demo.error-rate",
    "0",
    "--demo.rate-limit-rate",
    "0",
    "--demo.slow-rate",
    "0",
];

/// The memory limit of the shipped Kubernetes manifests.
const SHIPPED_MEMORY_LIMIT: u64 = 128 << 20;

fn page_of(p: usize, pages: usize) -> Reply {
    let chats = (0..3)
        .map(|i| chat(&format!("c{p:02}-{i}"), ME, Some("SMS"), Some(50.0), None))
        .collect();
    let next = (p + 1 < pages).then(|| format!("p{}", p + 1));
    page(chats, next.as_deref())
}

const ME: &str = "+14155551234";

/// Log lines captured from a tracing subscriber.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn sweeps_longer_than_the_interval_complete_publish_and_stay_ready() {
    // 30 pages at 150 ms each (a 4.5 s sweep) against a 1 s interval, default flags otherwise.
    let api = FakeApi::start().await;
    for p in 0..30 {
        let cursor = (p > 0).then(|| format!("p{p}"));
        api.chats(
            cursor.as_deref(),
            vec![page_of(p, 30).delay(Duration::from_millis(150))],
        );
    }
    // The test runtime is single-threaded, so a thread-local subscriber sees the poller's logs.
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    );
    let exp = Exporter::start(&api, &["--linq.poll-interval", "1s"]).await;
    let first = exp
        .wait_for(Duration::from_secs(30), |m| {
            value_of(m, "linq_polls_total{result=\"success\"} ").is_some_and(|v| v >= 1.0)
        })
        .await;
    assert!(value_of(&first, "linq_poll_duration_seconds ").unwrap() >= 4.5);
    // From the first publish on, /readyz stays 200 while two more sweeps run back to back.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut readyz_checks = 0;
    loop {
        let (status, body) = exp.get("/readyz").await;
        assert_eq!(status, 200, "{body}");
        readyz_checks += 1;
        let m = exp.metrics().await;
        if value_of(&m, "linq_polls_total{result=\"success\"} ").unwrap() >= 3.0 {
            assert_eq!(
                value_of(&m, "linq_polls_total{result=\"failure\"} "),
                Some(0.0)
            );
            assert_eq!(value_of(&m, "linq_up "), Some(1.0));
            assert_eq!(samples(&m, "linq_chat_info").len(), 90);
            break;
        }
        assert!(Instant::now() < deadline, "3 sweeps not done in time:\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(readyz_checks > 20, "{readyz_checks}");
    // Sweeps outrun the interval: said once, not once per sweep, with the flags that help.
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("sweeps take longer than --linq.poll-interval"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("--linq.discover-numbers")
            && warnings[0].contains("--linq.concurrency")
            && warnings[0].contains("--shard"),
        "{}",
        warnings[0]
    );
    exp.stop().await;
}

#[tokio::test]
async fn a_body_past_the_bound_fails_at_once_as_too_large_and_is_not_retried() {
    let api = FakeApi::start().await;
    let big: Vec<_> = (0..20)
        .map(|i| chat(&format!("big-{i}"), ME, Some("SMS"), Some(50.0), None))
        .collect();
    api.chats(None, vec![page(big, None).header("x-should-retry", "true")]);
    let exp = Exporter::start(&api, &["--linq.max-response-size", "2KiB"]).await;
    let m = exp.wait_polls("failure", 1).await;
    assert_eq!(
        value_of(&m, "linq_poll_failures_total{kind=\"too_large\"} "),
        Some(1.0)
    );
    assert_eq!(
        value_of(
            &m,
            "linq_api_errors_total{endpoint=\"/v3/chats\",error_code=\"\",kind=\"too_large\",status_code=\"\"} "
        ),
        Some(1.0)
    );
    assert_eq!(value_of(&m, "linq_up "), Some(0.0));
    // Not retried, even though the response asked for it.
    assert_eq!(api.request_count(), 1);
    assert_eq!(
        value_of(&m, "linq_api_retries_total{endpoint=\"/v3/chats\"} "),
        Some(0.0)
    );
    exp.stop().await;
}

/// Reads until the peer closes, bounded; returns what was read.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut all))
        .await
        .expect("the server closes the connection in time")
        .ok();
    all
}

#[tokio::test]
async fn incomplete_headers_and_idle_keep_alive_connections_are_closed() {
    let api = FakeApi::start().await;
    api.chats(None, vec![page_of(0, 1)]);
    let exp = Exporter::start(&api, &["--web.read-header-timeout", "300ms"]).await;
    exp.wait_polls("success", 1).await;

    // Half a request head, then nothing: closed without an answer.
    let mut half = TcpStream::connect(exp.addr).await.unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let got = read_to_close(&mut half, Duration::from_secs(5)).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{got:?}");

    // A complete request is answered; the idle keep-alive connection is then closed too.
    let mut idle = TcpStream::connect(exp.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut idle, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200 OK") && text.ends_with("ok\n"),
        "{text}"
    );

    let m = exp.metrics().await;
    assert!(
        value_of(
            &m,
            "linq_exporter_http_connections_closed_total{listener=\"web\",reason=\"header_timeout\"} "
        )
        .unwrap()
            >= 2.0,
        "{m}"
    );
    exp.stop().await;
}

#[tokio::test]
async fn at_the_connection_bound_half_open_clients_make_room_for_fresh_ones() {
    let api = FakeApi::start().await;
    api.chats(None, vec![page_of(0, 1)]);
    let exp = Exporter::start(&api, &["--web.max-connections", "16"]).await;
    exp.wait_polls("success", 1).await;
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(exp.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for path in ["/healthz", "/metrics"] {
        let r = fresh
            .get(format!("http://{}{path}", exp.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let m = exp.metrics().await;
    let evicted = value_of(
        &m,
        "linq_exporter_http_connections_closed_total{listener=\"web\",reason=\"evicted\"} ",
    )
    .unwrap();
    // 40 half-open + 2 fresh + this scrape through a bound of 16: at least 27 made room.
    assert!(evicted >= 27.0, "{evicted}");
    assert!(
        value_of(&m, "linq_exporter_http_connections{listener=\"web\"} ").unwrap() <= 16.0,
        "{m}"
    );
    drop(held);
    exp.stop().await;
}

/// The binary, started through a shell at a soft limit of 1,024 open files.
struct Process {
    child: Child,
    port: u16,
}

impl Process {
    fn start(args: &[&str]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg("ulimit -Sn 1024 && exec \"$0\" \"$@\"")
            .arg(BIN)
            .args(["--web.listen-address", &listen, "--log.level", "warn"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("LINQ_") {
                cmd.env_remove(k);
            }
        }
        Process {
            child: cmd.spawn().unwrap(),
            port,
        }
    }

    fn status_line(&self, key: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Resident memory in bytes.
    fn rss(&self) -> u64 {
        self.status_line("VmRSS:").unwrap() * 1024
    }

    /// The soft and hard open-file limits in force.
    fn open_file_limits(&self) -> (String, String) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string();
        let mut it = line["Max open files".len()..].split_whitespace();
        (it.next().unwrap().into(), it.next().unwrap().into())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_healthy(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} not healthy within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens `n` connections that send `prefix` and then nothing.
async fn half_open(port: u16, n: usize, prefix: &'static [u8]) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(prefix).await.unwrap();
        held.push(s);
    }
    held
}

/// With `held` half-open connections open, fresh /healthz and /metrics requests (each on a new
/// connection) are answered within 1 s, the process stays within the shipped memory limit, and
/// its metrics count the held connections.
async fn fresh_clients_are_served(proc: &Process, client: &reqwest::Client, scheme: &str) {
    let mut slowest = Duration::ZERO;
    for round in 0..5 {
        for path in ["/healthz", "/metrics"] {
            let url = format!("{scheme}://127.0.0.1:{}{path}", proc.port);
            let asked = Instant::now();
            let r = client.get(&url).send().await;
            let r = r.unwrap_or_else(|e| panic!("round {round}: {url}: {e:?}"));
            assert_eq!(r.status(), 200, "{url}");
            let body = r.text().await.unwrap();
            if path == "/metrics" {
                let open =
                    value_of(&body, "linq_exporter_http_connections{listener=\"web\"} ").unwrap();
                assert!(open >= 2000.0, "{open}");
            }
            slowest = slowest.max(asked.elapsed());
        }
    }
    let rss = proc.rss();
    eprintln!(
        "{scheme}: 2,000 half-open connections held; slowest fresh answer {} ms; resident {} MiB",
        slowest.as_millis(),
        rss >> 20
    );
    assert!(
        rss < SHIPPED_MEMORY_LIMIT,
        "resident {} MiB with 2,000 half-open connections",
        rss >> 20
    );
}

/// This test process holds 2,000 connections of its own: make sure it may.
fn raise_own_limit() {
    let (soft, _) = linq_exporter::http::conn::raise_open_file_limit().unwrap();
    assert!(soft.is_none_or(|s| s >= 4096), "{soft:?}");
}

#[tokio::test]
async fn two_thousand_half_open_connections_on_the_plain_listener() {
    raise_own_limit();
    let proc = Process::start(&QUIET_DEMO);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    wait_healthy(&client, &format!("http://127.0.0.1:{}/readyz", proc.port)).await;
    // Started at 1,024, the process raised its soft limit to the hard one.
    let (soft, hard) = proc.open_file_limits();
    assert_eq!(soft, hard);
    assert_ne!(
        soft, "1024",
        "the machine's hard limit must exceed 1,024 for this test"
    );
    let _held = half_open(
        proc.port,
        2000,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    )
    .await;
    fresh_clients_are_served(&proc, &client, "http").await;
}

#[tokio::test]
async fn two_thousand_half_open_connections_on_the_tls_listener() {
    raise_own_limit();
    let (dir, ca) = server_pki("half-open");
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
    );
    let proc = Process::start(
        &[
            &QUIET_DEMO[..],
            &["--web.config.file", cfg.to_str().unwrap()],
        ]
        .concat(),
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    wait_healthy(&client, &format!("https://127.0.0.1:{}/readyz", proc.port)).await;
    // Half a TLS record header (a ClientHello that never comes), then nothing.
    let _held = half_open(proc.port, 2000, b"\x16\x03\x01").await;
    fresh_clients_are_served(&proc, &client, "https").await;
}

/// An upstream that answers every request 200 and then streams a body without end.
async fn endless_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = sock.read(&mut head).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
                chunk.extend(std::iter::repeat_n(b' ', 64 * 1024));
                chunk.extend_from_slice(b"\r\n");
                while sock.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_bound_and_memory_stays_flat() {
    let upstream = endless_upstream().await;
    let proc = Process::start(&[
        "--linq.base-url",
        &upstream,
        "--linq.api-key",
        KEY,
        "--linq.poll-interval",
        "1s",
    ]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let metrics = format!("http://127.0.0.1:{}/metrics", proc.port);
    wait_healthy(&client, &format!("http://127.0.0.1:{}/healthz", proc.port)).await;
    let started = Instant::now();
    let (mut max_rss, mut scrapes) = (0, 0);
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(20) {
        let r = client.get(&metrics).send().await.unwrap();
        assert_eq!(r.status(), 200);
        last = r.text().await.unwrap();
        scrapes += 1;
        max_rss = max_rss.max(proc.rss());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "endless body: {scrapes} scrapes answered in 20 s; peak resident {} MiB",
        max_rss >> 20
    );
    assert!(scrapes >= 40, "{scrapes}");
    assert!(max_rss < 64 << 20, "resident {} MiB", max_rss >> 20);
    let failures = value_of(&last, "linq_poll_failures_total{kind=\"too_large\"} ").unwrap();
    assert!(
        failures >= 5.0,
        "{failures} sweeps failed too_large in 20 s:\n{last}"
    );
    for endpoint in ["/v3/chats", "/v3/phone_numbers"] {
        let counted = value_of(
            &last,
            &format!("linq_api_errors_total{{endpoint=\"{endpoint}\",error_code=\"\",kind=\"too_large\",status_code=\"\"}} "),
        )
        .unwrap_or(0.0);
        assert!(counted >= 5.0, "{endpoint}: {counted}");
    }
    assert_eq!(value_of(&last, "linq_up "), Some(0.0));
}
