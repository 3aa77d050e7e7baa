//! Serving with `--web.config.file`: the live [`WebConfigHandle`], a watcher that reloads the file
//! (and the certificates it names) when they change, so the TLS handshakes of the connection loop
//! use the current certificate and cert-manager rotations need no restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::http::web_config::{self, WebConfig};
use crate::telemetry::SelfMetrics;

/// The web config in force, swapped atomically on reload.
#[derive(Debug, Clone)]
pub struct WebConfigHandle(Arc<RwLock<Arc<WebConfig>>>);

impl WebConfigHandle {
    /// A handle holding `config`.
    pub fn new(config: WebConfig) -> Self {
        WebConfigHandle(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The config in force.
    pub fn current(&self) -> Arc<WebConfig> {
        match self.0.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, config: WebConfig) {
        let config = Arc::new(config);
        match self.0.write() {
            Ok(mut c) => *c = config,
            Err(p) => *p.into_inner() = config,
        }
    }
}

/// A fingerprint of the config file and every file it names: a SHA-256 over their contents.
fn fingerprint(path: &std::path::Path) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for f in web_config::referenced_files(path) {
        ctx.update(f.as_os_str().as_encoded_bytes());
        match std::fs::read(&f) {
            Ok(bytes) => {
                ctx.update(&(bytes.len() as u64).to_le_bytes());
                ctx.update(&bytes);
            }
            Err(_) => ctx.update(b"<unreadable>"),
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Checks the file (and the certificates it names) every `every`; when anything changed, loads
/// it and swaps it in. An invalid file is logged and the previous config stays in force, as does
/// switching TLS on or off, which needs a restart.
pub fn spawn_reloader(
    path: PathBuf,
    handle: WebConfigHandle,
    every: Duration,
    metrics: Arc<SelfMetrics>,
) -> tokio::task::JoinHandle<()> {
    for result in ["success", "failure"] {
        metrics.web_config_reloads.with_label_values(&[result]);
    }
    tokio::spawn(async move {
        let mut last = fingerprint(&path);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let p = path.clone();
            let Ok((now, loaded)) = tokio::task::spawn_blocking(move || {
                let now = fingerprint(&p);
                (now, web_config::load(&p))
            })
            .await
            else {
                continue;
            };
            if now == last {
                continue;
            }
            last = now;
            let result = match loaded {
                Ok(new) if new.tls.is_some() != handle.current().tls.is_some() => {
                    tracing::error!(path = %path.display(), "web config reload: turning TLS on or off needs a restart; keeping the previous config");
                    "failure"
                }
                Ok(new) => {
                    handle.set(new);
                    tracing::info!(path = %path.display(), "web config reloaded");
                    "success"
                }
                Err(e) => {
                    tracing::error!(error = %e, "web config reload failed; keeping the previous config");
                    "failure"
                }
            };
            metrics
                .web_config_reloads
                .with_label_values(&[result])
                .inc();
        }
    })
}
