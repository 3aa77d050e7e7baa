//! `--web.config.file` end to end: real TLS handshakes with certificates made in the test (rcgen),
//! mutual TLS, basic auth, extra headers, certificate rotation and invalid configs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::pki::{ca, leaf, server_pki, Dir};
use common::*;

async fn start(api: &FakeApi, config: &Path, extra: &[&str]) -> Exporter {
    let mut args = vec![
        "--web.config.file",
        config.to_str().unwrap(),
        "--web.config.reload-interval",
        "100ms",
    ];
    args.extend_from_slice(extra);
    Exporter::start(api, &args).await
}

fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

async fn status(client: &reqwest::Client, url: String) -> Result<u16, String> {
    match client.get(url).send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            // With TLS 1.3 a rejected client certificate can surface on the first read.
            r.bytes().await.map_err(|e| e.to_string())?;
            Ok(s)
        }
        Err(e) => Err(format!("{e:?}")),
    }
}

async fn api() -> FakeApi {
    let api = FakeApi::start().await;
    api.chats(
        None,
        vec![page(
            vec![chat("c1", "+14155550001", Some("SMS"), Some(40.0), None)],
            None,
        )],
    );
    api
}

#[tokio::test]
async fn tls_serves_metrics_and_refuses_plain_http() {
    let (dir, ca) = server_pki("plain");
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
    );
    let api = api().await;
    let exp = start(&api, &cfg, &[]).await;
    let https = client(&ca.pem, None);
    let url = format!("https://127.0.0.1:{}/metrics", exp.addr.port());
    assert_eq!(status(&https, url.clone()).await, Ok(200));
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://127.0.0.1:{}/metrics", exp.addr.port()))
        .send()
        .await;
    assert!(
        r.is_err() || r.is_ok_and(|r| r.status() != 200),
        "plain HTTP must not get metrics on a TLS port"
    );
    // A client that does not trust the CA fails the handshake.
    let stranger = client(&self::ca("other").pem, None);
    assert!(status(&stranger, url).await.is_err());
    exp.stop().await;
}

#[tokio::test]
async fn mutual_tls_require_and_verify() {
    let (dir, ca) = server_pki("mtls");
    let (client_cert, client_key) = leaf(&ca, "prometheus");
    let rogue = self::ca("rogue");
    let (rogue_cert, rogue_key) = leaf(&rogue, "intruder");
    dir.write("ca.pem", &ca.pem);
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    );
    let api = api().await;
    let probe_port = free_port();
    let probe = format!("127.0.0.1:{probe_port}");
    let exp = start(&api, &cfg, &["--web.probe-listen-address", &probe]).await;
    let url = format!("https://127.0.0.1:{}/metrics", exp.addr.port());
    assert!(
        status(&client(&ca.pem, None), url.clone()).await.is_err(),
        "no client certificate"
    );
    assert!(
        status(
            &client(&ca.pem, Some((&rogue_cert, &rogue_key))),
            url.clone()
        )
        .await
        .is_err(),
        "untrusted client certificate"
    );
    assert_eq!(
        status(&client(&ca.pem, Some((&client_cert, &client_key))), url).await,
        Ok(200)
    );
    // kubelet probes cannot present a client certificate: the plain probe listener serves them.
    let plain = reqwest::Client::new();
    let r = plain
        .get(format!("http://{probe}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = plain
        .get(format!("http://{probe}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the probe listener serves only the probes");
    exp.stop().await;
}

#[tokio::test]
async fn verify_client_cert_if_given() {
    let (dir, ca) = server_pki("ifgiven");
    let (client_cert, client_key) = leaf(&ca, "prometheus");
    let (rogue_cert, rogue_key) = leaf(&self::ca("rogue"), "intruder");
    dir.write("ca.pem", &ca.pem);
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n",
    );
    let api = api().await;
    let exp = start(&api, &cfg, &[]).await;
    let url = format!("https://127.0.0.1:{}/metrics", exp.addr.port());
    assert_eq!(status(&client(&ca.pem, None), url.clone()).await, Ok(200));
    assert_eq!(
        status(
            &client(&ca.pem, Some((&client_cert, &client_key))),
            url.clone()
        )
        .await,
        Ok(200)
    );
    assert!(
        status(&client(&ca.pem, Some((&rogue_cert, &rogue_key))), url)
            .await
            .is_err()
    );
    exp.stop().await;
}

#[tokio::test]
async fn require_any_client_cert_accepts_any_but_needs_one() {
    let (dir, ca) = server_pki("anycert");
    let (rogue_cert, rogue_key) = leaf(&self::ca("rogue"), "anyone");
    let cfg = dir.write("web.yml", "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAnyClientCert\n");
    let api = api().await;
    let exp = start(&api, &cfg, &[]).await;
    let url = format!("https://127.0.0.1:{}/metrics", exp.addr.port());
    assert!(status(&client(&ca.pem, None), url.clone()).await.is_err());
    assert_eq!(
        status(&client(&ca.pem, Some((&rogue_cert, &rogue_key))), url).await,
        Ok(200)
    );
    exp.stop().await;
}

#[tokio::test]
async fn min_version_tls13_refuses_tls12_clients() {
    let (dir, ca) = server_pki("minver");
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS13\n",
    );
    let api = api().await;
    let exp = start(&api, &cfg, &[]).await;
    let url = format!("https://127.0.0.1:{}/metrics", exp.addr.port());
    let tls12 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(status(&tls12, url.clone()).await.is_err());
    assert_eq!(status(&client(&ca.pem, None), url).await, Ok(200));
    exp.stop().await;
}

#[tokio::test]
async fn basic_auth_right_wrong_missing_and_probes_stay_open() {
    let dir = Dir::new("basic");
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let cfg = dir.write(
        "web.yml",
        &format!("basic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: DENY\n    Strict-Transport-Security: max-age=31536000\n"),
    );
    let api = api().await;
    let exp = start(&api, &cfg, &[]).await;
    let c = reqwest::Client::new();
    let url = format!("http://{}/metrics", exp.addr);
    let r = c
        .get(&url)
        .basic_auth("prometheus", Some("correct horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    for (user, pass) in [
        ("prometheus", Some("wrong")),
        ("nobody", Some("correct horse")),
        ("prometheus", None),
    ] {
        let r = c.get(&url).basic_auth(user, pass).send().await.unwrap();
        assert_eq!(r.status(), 401, "{user} {pass:?}");
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm="));
        assert_eq!(r.headers()["x-frame-options"], "DENY");
    }
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"linq-exporter\", charset=\"UTF-8\""
    );
    assert_eq!(
        c.get(format!("http://{}/", exp.addr))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "the status page is protected too"
    );
    assert_eq!(
        c.get(format!("http://{}/healthz", exp.addr))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = c
        .get(format!("http://{}/readyz", exp.addr))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert!(
        ready == 200 || ready == 503,
        "readyz is not behind basic auth: {ready}"
    );
    exp.stop().await;
}

#[tokio::test]
async fn certificate_rotation_needs_no_restart_and_a_bad_reload_keeps_the_old_config() {
    let dir = Dir::new("rotate");
    let ca1 = ca("ca-one");
    let ca2 = ca("ca-two");
    let (cert1, key1) = leaf(&ca1, "server-1");
    let (cert2, key2) = leaf(&ca2, "server-2");
    dir.write("cert.pem", &cert1);
    dir.write("key.pem", &key1);
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
    );
    let api = api().await;
    let exp = start(&api, &cfg, &[]).await;
    let url = format!("https://127.0.0.1:{}/healthz", exp.addr.port());
    let trusts1 = client(&ca1.pem, None);
    let trusts2 = client(&ca2.pem, None);
    assert_eq!(status(&trusts1, url.clone()).await, Ok(200));
    assert!(status(&trusts2, url.clone()).await.is_err());

    // cert-manager writes a new key pair.
    dir.write("key.pem", &key2);
    dir.write("cert.pem", &cert2);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status(&trusts2, url.clone()).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(status(&trusts1, url.clone()).await.is_err());

    let metrics_url = format!("https://127.0.0.1:{}/metrics", exp.addr.port());
    let reloads = |result: &'static str| {
        let (c, u) = (trusts2.clone(), metrics_url.clone());
        async move {
            let body = c.get(u).send().await.unwrap().text().await.unwrap();
            value_of(
                &body,
                &format!("linq_exporter_web_config_reloads_total{{result=\"{result}\"}} "),
            )
            .unwrap()
        }
    };
    assert!(reloads("success").await >= 1.0);
    assert_eq!(reloads("failure").await, 0.0);

    // An invalid file is counted and logged, and the previous config stays in force.
    dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS10\n",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reloads("failure").await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bad reload was never attempted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(&trusts2, url.clone()).await, Ok(200));
    dir.write("cert.pem", "not a certificate");
    while reloads("failure").await < 2.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bad certificate was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(&trusts2, url).await, Ok(200));
    exp.stop().await;
}

#[tokio::test]
async fn invalid_config_at_start_up_fails_naming_the_problem() {
    let (dir, _ca) = server_pki("invalid");
    let cases = [
        ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS11\n", "TLS11"),
        ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "cipher_suites"),
        ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  curve_preferences: [CurveP521]\n", "CurveP521"),
        ("tls_server_config:\n  cert_file: missing.pem\n  key_file: key.pem\n", "missing.pem"),
        ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file"),
        ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: Sometimes\n", "client_auth_type"),
        ("basic_auth_users:\n  admin: plaintext-password\n", "bcrypt"),
        ("tls_config:\n  cert_file: cert.pem\n", "tls_config"),
        ("http_server_config:\n  headers:\n    Content-Type: text/html\n", "Content-Type"),
    ];
    for (yaml, needle) in cases {
        let cfg = dir.write("web.yml", yaml);
        let config = common::config(&["--demo", "--web.config.file", cfg.to_str().unwrap()]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            linq_exporter::run(config, listener, std::future::pending()),
        )
        .await
        .expect("start-up fails fast");
        let err = result.expect_err(yaml).to_string();
        assert!(
            err.contains(needle) && err.contains(&dir.path("web.yml")),
            "{yaml}: {err}"
        );
    }
    // Supported cipher suites and curves are accepted.
    let cfg = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS12\n  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: true\n",
    );
    assert!(linq_exporter::http::web_config::load(&cfg).is_ok());
}

#[tokio::test]
async fn the_webhook_listener_takes_the_web_configs_tls_but_never_its_basic_auth() {
    let (dir, ca) = server_pki("webhook");
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let cfg = dir.write(
        "web.yml",
        &format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: '{hash}'\n"),
    );
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE=";
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let api = api().await;
    let exp = start(
        &api,
        &cfg,
        &[
            "--webhook.listen-address",
            &listen,
            "--webhook.signing-secret",
            secret,
        ],
    )
    .await;
    let https = client(&ca.pem, None);
    let body = br#"{"event_type":"message.sent","event_id":"tls-1","data":{}}"#.to_vec();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut req = https
        .post(format!("https://{listen}/webhook"))
        .body(body.clone());
    for (k, v) in linq_exporter::webhook::verify::sign_both(secret, "msg_tls", ts, &body) {
        req = req.header(k, v);
    }
    // Bounded wait for the listener, then: served over TLS, with no credentials.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        match req.try_clone().unwrap().send().await {
            Ok(r) => break r.status().as_u16(),
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(status, 200);
    // Plain HTTP on the webhook port gets nothing.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = plain
        .post(format!("http://{listen}/webhook"))
        .body(body)
        .send()
        .await;
    assert!(r.is_err() || r.is_ok_and(|r| r.status() != 200));
    // The metrics port still asks for credentials, and counts the event.
    let url = format!("https://127.0.0.1:{}/metrics", exp.addr.port());
    assert_eq!(https.get(&url).send().await.unwrap().status(), 401);
    let r = https
        .get(&url)
        .basic_auth("prometheus", Some("correct horse"))
        .send()
        .await
        .unwrap();
    let m = r.text().await.unwrap();
    assert_eq!(
        value_of(
            &m,
            "linq_webhook_events_total{event_type=\"message.sent\"} "
        ),
        Some(1.0)
    );
    exp.stop().await;
}
