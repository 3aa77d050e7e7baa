//! `--web.config.file`: TLS, mutual TLS, basic auth and extra response headers, in the YAML format
//! of Prometheus' exporter-toolkit, so operators can reuse the files they write for Go exporters.
//! This module parses and validates the file into a [`WebConfig`] (a rustls `ServerConfig` plus
//! the auth and header settings); a value rustls cannot honour is an error, never ignored.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderName, HeaderValue};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::Deserialize;

/// A problem with the web config file or a file it names.
#[derive(Debug, thiserror::Error)]
#[error("web config {path}: {reason}")]
pub struct WebConfigError {
    /// The config file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<String>,
    #[serde(default)]
    client_ca: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

/// exporter-toolkit's `client_auth_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked for.
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified against a CA.
    RequireAnyClientCert,
    /// Verified against `client_ca_file` when given.
    VerifyClientCertIfGiven,
    /// Required and verified against `client_ca_file`.
    RequireAndVerifyClientCert,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// TLS, when `tls_server_config` is set.
    pub tls: Option<Arc<ServerConfig>>,
    /// The client auth mode (for logs and docs).
    pub client_auth: ClientAuth,
    /// Basic auth users, when set.
    pub basic_auth: Option<Arc<BasicAuth>>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl WebConfig {
    /// No TLS, no auth, no headers: what runs without `--web.config.file`.
    pub fn plain() -> Self {
        WebConfig {
            tls: None,
            client_auth: ClientAuth::NoClientCert,
            basic_auth: None,
            headers: Vec::new(),
        }
    }
}

/// Headers the exporter sets itself, which the config may not override.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "www-authenticate",
    "vary",
];

/// Reads and validates the file at `path`; relative file names in it are relative to its folder.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let err = |reason: String| WebConfigError {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| err(e.to_string()))?
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let resolve = |f: &str| -> PathBuf {
        let p = Path::new(f);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };

    let mut client_auth = ClientAuth::NoClientCert;
    let tls = match raw.tls_server_config {
        None => None,
        Some(t) => {
            let (config, auth) = tls_config(t, &resolve).map_err(err)?;
            client_auth = auth;
            Some(Arc::new(config))
        }
    };

    let basic_auth = match raw.basic_auth_users {
        None => None,
        Some(users) if users.is_empty() => None,
        Some(users) => {
            for (user, hash) in &users {
                if user.contains(':') {
                    return Err(err(format!("basic_auth_users: user {user:?} contains ':'")));
                }
                if !hash.starts_with("$2") {
                    return Err(err(format!(
                        "basic_auth_users: the password of {user:?} is not a bcrypt hash ($2a$, $2b$ or $2y$)"
                    )));
                }
            }
            Some(Arc::new(BasicAuth::new(users)))
        }
    };

    let mut headers = Vec::new();
    if let Some(http) = raw.http_server_config {
        let _ = http.http2;
        for (name, value) in http.headers.unwrap_or_default() {
            let lname = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lname.as_str()) {
                return Err(err(format!(
                    "http_server_config.headers: {name:?} is set by the exporter itself"
                )));
            }
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err(format!("http_server_config.headers: bad name {name:?}")))?;
            let v = HeaderValue::from_str(&value).map_err(|_| {
                err(format!(
                    "http_server_config.headers: bad value for {name:?}"
                ))
            })?;
            headers.push((n, v));
        }
    }
    Ok(WebConfig {
        tls,
        client_auth,
        basic_auth,
        headers,
    })
}

/// The files a config refers to, so a watcher can notice a rotated certificate.
pub fn referenced_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    let Ok(text) = std::fs::read_to_string(path) else {
        return files;
    };
    let Ok(raw) = serde_yaml_ng::from_str::<RawConfig>(&text) else {
        return files;
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Some(t) = raw.tls_server_config {
        for f in [t.cert_file, t.key_file, t.client_ca_file]
            .into_iter()
            .flatten()
        {
            let p = Path::new(&f);
            files.push(if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            });
        }
    }
    files
}

fn pem_or_file(
    inline: Option<String>,
    file: Option<String>,
    what: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<u8>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("set either {what} or {what}_file, not both")),
        (Some(pem), None) => Ok(pem.into_bytes()),
        (None, Some(f)) => {
            let p = resolve(&f);
            std::fs::read(&p).map_err(|e| format!("{what}_file {}: {e}", p.display()))
        }
        (None, None) => Err(format!("tls_server_config needs {what}_file")),
    }
}

fn provider_for(t: &RawTls) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &t.cipher_suites {
        let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
        let mut chosen = Vec::new();
        for name in names {
            // Go's names (TLS 1.2 suites only; TLS 1.3 suites are not configurable there either).
            let found = all.iter().find(|s| {
                s.version() == &rustls::version::TLS12
                    && format!("{:?}", s.suite()) == name.as_str()
            });
            match found {
                Some(s) => chosen.push(*s),
                None => {
                    return Err(format!(
                        "cipher_suites: {name:?} is not supported (supported: {})",
                        all.iter()
                            .filter(|s| s.version() == &rustls::version::TLS12)
                            .map(|s| format!("{:?}", s.suite()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
        let mut suites: Vec<_> = all
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        suites.extend(chosen);
        provider.cipher_suites = suites;
    }
    if let Some(curves) = &t.curve_preferences {
        let mut groups = Vec::new();
        for c in curves {
            let group = match c.as_str() {
                "X25519" => rustls::crypto::ring::kx_group::X25519,
                "CurveP256" => rustls::crypto::ring::kx_group::SECP256R1,
                "CurveP384" => rustls::crypto::ring::kx_group::SECP384R1,
                other => {
                    return Err(format!(
                        "curve_preferences: {other:?} is not supported (supported: X25519, CurveP256, CurveP384)"
                    ))
                }
            };
            groups.push(group);
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

fn tls_version(v: &str, field: &str) -> Result<u8, String> {
    match v {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        "TLS10" | "TLS11" => Err(format!(
            "{field}: {v} is not supported (TLS 1.0 and 1.1 are insecure; use TLS12 or TLS13)"
        )),
        other => Err(format!(
            "{field}: unknown version {other:?} (TLS12 or TLS13)"
        )),
    }
}

fn tls_config(
    t: RawTls,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<(ServerConfig, ClientAuth), String> {
    if t.client_allowed_sans
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err("client_allowed_sans is not supported".into());
    }
    let provider = Arc::new(provider_for(&t)?);
    let min = tls_version(t.min_version.as_deref().unwrap_or("TLS12"), "min_version")?;
    let max = tls_version(t.max_version.as_deref().unwrap_or("TLS13"), "max_version")?;
    if min > max {
        return Err("min_version is above max_version".into());
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();

    let cert_pem = pem_or_file(t.cert.clone(), t.cert_file.clone(), "cert", resolve)?;
    let key_pem = pem_or_file(t.key.clone(), t.key_file.clone(), "key", resolve)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert: {e}"))?;
    if certs.is_empty() {
        return Err("cert: no certificate found".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| format!("key: {e}"))?;

    let auth = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        "RequireAnyClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => return Err(format!("client_auth_type: unknown value {other:?}")),
    };
    let ca = match (t.client_ca.clone(), t.client_ca_file.clone()) {
        (None, None) => None,
        (inline, file) => Some(pem_or_file(inline, file, "client_ca", resolve)?),
    };
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth {
        ClientAuth::NoClientCert => None,
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Some(Arc::new(AnyClientCert {
                mandatory: auth == ClientAuth::RequireAnyClientCert,
                algorithms: provider.signature_verification_algorithms,
            }))
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let Some(ca) = ca else {
                return Err(format!("client_auth_type {auth:?} needs client_ca_file"));
            };
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&ca) {
                let cert = cert.map_err(|e| format!("client_ca: {e}"))?;
                roots.add(cert).map_err(|e| format!("client_ca: {e}"))?;
            }
            if roots.is_empty() {
                return Err("client_ca: no certificate found".into());
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            Some(builder.build().map_err(|e| format!("client_ca: {e}"))?)
        }
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("cert/key: {e}"))?;
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, auth))
}

/// Accepts any client certificate (checking only that the client holds its key), optionally
/// requiring one: exporter-toolkit's `RequestClientCert` and `RequireAnyClientCert`.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Basic auth users with bcrypt hashes. A check always runs one bcrypt verification (against a
/// dummy hash for unknown users), so timing does not tell which users exist; verified
/// credentials are cached by SHA-256 so repeated scrapes skip bcrypt.
///
/// bcrypt verifications are bounded: at most [`BasicAuth::max_concurrent`] run at once (half the
/// cores, at least one), and a request that waits longer than [`BCRYPT_QUEUE_TIMEOUT`] for a
/// turn is answered [`AuthOutcome::Busy`] (429) without running bcrypt. So a flood of wrong
/// passwords takes at most half the cores, while cached credentials, the probes and the
/// webhook never wait for it.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
    max_concurrent: usize,
}

/// The result of [`BasicAuth::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Valid credentials.
    Allowed,
    /// Missing, malformed or wrong credentials (401).
    Denied,
    /// No bcrypt verification slot within [`BCRYPT_QUEUE_TIMEOUT`]: too many verifications are
    /// running or waiting (429 with `Retry-After`). Not a verdict on the credentials.
    Busy,
}

/// How long a request waits for a bcrypt verification slot before it gets 429.
pub const BCRYPT_QUEUE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// bcrypt of a random string at cost 10, checked when the user is unknown.
const DUMMY_HASH: &str = "$2b$10$CwTycUXWue0Thq9StjUM0uJ8.iWkAm8E9/Ebiw7hQjj0Z5gC.DmKm";
/// At most this many verified credentials are cached.
const CACHE_LIMIT: usize = 256;

impl BasicAuth {
    /// Users and their bcrypt hashes.
    pub fn new(users: BTreeMap<String, String>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_max_concurrent(users, (cores / 2).max(1))
    }

    /// Users and their bcrypt hashes, with at most `max_concurrent` (at least 1) bcrypt
    /// verifications at once.
    pub fn with_max_concurrent(users: BTreeMap<String, String>, max_concurrent: usize) -> Self {
        let max_concurrent = max_concurrent.max(1);
        BasicAuth {
            users,
            verified: Mutex::new(HashSet::new()),
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(max_concurrent)),
            max_concurrent,
        }
    }

    /// How many bcrypt verifications may run at once.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Whether the header holds credentials verified before (a SHA-256, no bcrypt).
    fn is_cached(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(decode_basic) else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            return false;
        };
        let key = Self::cache_key(&user, &password, hash);
        self.verified
            .lock()
            .map(|c| c.contains(&key))
            .unwrap_or(false)
    }

    /// [`check`](Self::check) within the bound: cached credentials at once, on the calling task;
    /// others wait at most [`BCRYPT_QUEUE_TIMEOUT`] for one of the bcrypt slots, then run
    /// bcrypt on a blocking thread.
    pub async fn authorize(self: &Arc<Self>, authorization: Option<String>) -> AuthOutcome {
        let Some(_) = authorization.as_deref().and_then(decode_basic) else {
            return AuthOutcome::Denied;
        };
        if self.is_cached(authorization.as_deref()) {
            return AuthOutcome::Allowed;
        }
        let slot = tokio::time::timeout(
            BCRYPT_QUEUE_TIMEOUT,
            Arc::clone(&self.bcrypt_slots).acquire_owned(),
        )
        .await;
        let Ok(Ok(permit)) = slot else {
            return AuthOutcome::Busy;
        };
        let auth = Arc::clone(self);
        // bcrypt is deliberately slow: keep it off the async workers. The permit moves into the
        // blocking task, so the slot is held while bcrypt runs even if the client goes away.
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            auth.check(authorization.as_deref())
        })
        .await
        .unwrap_or(false);
        if ok {
            AuthOutcome::Allowed
        } else {
            AuthOutcome::Denied
        }
    }

    fn cache_key(user: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [user, password, hash] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }

    /// Whether the `Authorization` header value holds valid credentials.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(decode_basic) else {
            return false;
        };
        let known = self.users.get(&user);
        let hash = known.map(String::as_str).unwrap_or(DUMMY_HASH);
        let key = Self::cache_key(&user, &password, hash);
        if known.is_some()
            && self
                .verified
                .lock()
                .map(|c| c.contains(&key))
                .unwrap_or(false)
        {
            return true;
        }
        let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known.is_some();
        if ok {
            if let Ok(mut cache) = self.verified.lock() {
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(key);
            }
        }
        ok
    }
}

fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_checks_users_and_passwords() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let auth = BasicAuth::new([("prom".to_string(), hash)].into_iter().collect());
        let header = |u: &str, p: &str| {
            let raw = format!("{u}:{p}");
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
            )
        };
        assert!(auth.check(Some(&header("prom", "s3cret"))));
        assert!(auth.check(Some(&header("prom", "s3cret"))), "cached");
        assert!(!auth.check(Some(&header("prom", "wrong"))));
        assert!(!auth.check(Some(&header("other", "s3cret"))));
        assert!(!auth.check(None));
        assert!(!auth.check(Some("Bearer abc")));
    }

    #[tokio::test]
    async fn authorize_is_bounded_and_cached_credentials_skip_the_queue() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let auth = Arc::new(BasicAuth::with_max_concurrent(
            [("prom".to_string(), hash)].into_iter().collect(),
            1,
        ));
        let header = |p: &str| {
            use base64::Engine;
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("prom:{p}"))
            ))
        };
        assert_eq!(auth.authorize(header("s3cret")).await, AuthOutcome::Allowed);
        assert_eq!(auth.authorize(header("wrong")).await, AuthOutcome::Denied);
        assert_eq!(auth.authorize(None).await, AuthOutcome::Denied);
        // Every slot taken: an uncached check gives up after the queue timeout, a cached one
        // does not wait.
        let held = Arc::clone(&auth.bcrypt_slots)
            .acquire_owned()
            .await
            .expect("permit");
        assert_eq!(auth.authorize(header("wrong")).await, AuthOutcome::Busy);
        assert_eq!(auth.authorize(header("s3cret")).await, AuthOutcome::Allowed);
        drop(held);
        assert_eq!(auth.authorize(header("wrong")).await, AuthOutcome::Denied);
    }

    #[test]
    fn dummy_hash_is_a_valid_bcrypt_hash() {
        assert!(bcrypt::verify("anything", DUMMY_HASH).is_ok());
    }
}
