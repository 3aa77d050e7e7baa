//! Bounded basic auth under a flood of wrong passwords, against the real server on 127.0.0.1:0:
//! bcrypt verifications are bounded (BasicAuth::max_concurrent), requests that cannot get a turn
//! within the queue timeout get 429, and meanwhile correct scrapes and the probes stay fast.
//!
//! The latency bound (docs/tls-and-authentication.md): while 64 (or more) clients send wrong passwords
//! back to back, every correct (cached) scrape of /metrics and every /healthz answers 200 within
//! SCRAPE_BOUND. It is generous on purpose (a shared 2-core CI machine): without the bound on
//! bcrypt, the flood runs 64 bcrypt verifications at once and no request ever gets 429.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pki::Dir;
use common::*;

/// Every correct scrape and probe under the flood must answer within this.
const SCRAPE_BOUND: Duration = Duration::from_secs(2);
/// Concurrent wrong-password clients: at least 64, and enough on a many-core machine to keep more
/// than a second's worth of bcrypt work queued behind the bound (half the cores).
fn flooders() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    64.max(16 * cores)
}
/// Correct scrapes (and as many probes) measured under the flood.
const SCRAPES: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_flood_gets_401_or_429_while_correct_scrapes_stay_fast() {
    let dir = Dir::new("flood");
    // Cost 10: what `htpasswd -nBC 10` writes and the docs recommend (tens of ms per check).
    let hash = bcrypt::hash("correct horse", 10).unwrap();
    let other = bcrypt::hash("battery staple", 10).unwrap();
    let cfg = dir.write(
        "web.yml",
        &format!("basic_auth_users:\n  prometheus: '{hash}'\n  other: '{other}'\n"),
    );
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(
            vec![chat("c1", "+14155550001", Some("SMS"), Some(40.0), None)],
            None,
        )],
    );
    let exp = Exporter::start(&api, &["--web.config.file", cfg.to_str().unwrap()]).await;
    let metrics_url = format!("http://{}/metrics", exp.addr);
    let healthz_url = format!("http://{}/healthz", exp.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Prometheus' first scrape verifies (and caches) its credentials before the flood.
    let r = client
        .get(&metrics_url)
        .basic_auth("prometheus", Some("correct horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let stop = Arc::new(AtomicBool::new(false));
    let unauthorized = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let unexpected = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for i in 0..flooders() {
        let (stop, unauthorized, busy, unexpected) = (
            stop.clone(),
            unauthorized.clone(),
            busy.clone(),
            unexpected.clone(),
        );
        let client = client.clone();
        let url = metrics_url.clone();
        flood.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = client
                    .get(&url)
                    .basic_auth("prometheus", Some(format!("guess-{i}-{n}")))
                    .send()
                    .await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(401) => unauthorized.fetch_add(1, Ordering::Relaxed),
                    Ok(429) => busy.fetch_add(1, Ordering::Relaxed),
                    _ => unexpected.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

    // The flood is on once the bound is reached: some requests already got 429 (bounded wait:
    // a 429 comes after the 1 s queue timeout).
    eventually(Duration::from_secs(20), || busy.load(Ordering::Relaxed) > 0).await;

    let mut latencies = Vec::new();
    for _ in 0..SCRAPES {
        for (url, auth) in [(&metrics_url, true), (&healthz_url, false)] {
            let mut req = client.get(url);
            if auth {
                req = req.basic_auth("prometheus", Some("correct horse"));
            }
            let start = Instant::now();
            let r = req.send().await.unwrap();
            let status = r.status();
            r.bytes().await.unwrap();
            let took = start.elapsed();
            assert_eq!(status, 200, "{url} under the flood");
            assert!(
                took < SCRAPE_BOUND,
                "{url} took {took:?} under the flood (bound {SCRAPE_BOUND:?})"
            );
            latencies.push(took);
        }
    }
    // Correct but not yet cached credentials during the flood: never 401 (a 429 says "retry",
    // not "wrong password").
    let r = client
        .get(&metrics_url)
        .basic_auth("other", Some("battery staple"))
        .send()
        .await
        .unwrap();
    assert!(
        [200, 429].contains(&r.status().as_u16()),
        "uncached correct credentials under the flood: {}",
        r.status()
    );

    stop.store(true, Ordering::Relaxed);
    for task in flood {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("flooders stop within the client timeout")
            .unwrap();
    }
    latencies.sort();
    let (u, b, x) = (
        unauthorized.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed),
        unexpected.load(Ordering::Relaxed),
    );
    eprintln!(
        "flood: {u} x 401, {b} x 429, {x} other; correct scrapes and probes: p50 {:?}, max {:?} (bound {SCRAPE_BOUND:?})",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    assert_eq!(x, 0, "every flood request gets 401 or 429");
    assert!(u > 0, "some wrong passwords were verified (401)");
    assert!(b > 0, "the bound turned some away (429)");

    // After the flood, the uncached user is verified normally.
    let r = client
        .get(&metrics_url)
        .basic_auth("other", Some("battery staple"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    exp.stop().await;
}
