//! Serving with `--web.config.file`: the live [`WebConfigHandle`], a watcher that reloads the file
//! (and the certificates it names) when they change, and a TLS listener for axum whose handshakes
//! use the current certificate, so cert-manager rotations need no restart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::self_metrics::SelfMetrics;
use crate::web_config::{self, WebConfig};

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

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS listener for `axum::serve`. Handshakes run in their own tasks (a slow client cannot
/// hold up others) with the certificate in force when the connection arrived.
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Wraps `tcp`; TLS settings come from `handle` (which must hold a TLS config).
    pub fn new(tcp: TcpListener, handle: WebConfigHandle) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = tcp.accept() => r,
                    _ = tx.closed() => return,
                };
                let (sock, addr) = match accepted {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(tls) = handle.current().tls.clone() else {
                    continue;
                };
                crate::server::set_no_delay(&sock);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let acceptor = TlsAcceptor::from(tls);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, addr)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %addr, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
