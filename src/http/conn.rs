//! Serving HTTP/1.1 on a listener with bounds a hostile or broken client cannot get around:
//!
//! - **Time.** A connection that has not sent complete request headers within
//!   `--web.read-header-timeout` is closed. hyper starts that timer whenever a connection waits
//!   for a request, so the same bound closes an idle keep-alive connection. With TLS, the
//!   handshake has the same bound.
//! - **Connections.** At most `--web.max-connections` per listener. At the bound, the oldest
//!   connection that has not yet sent a complete request (a half-open or slowloris client) is
//!   closed to make room, else the oldest idle keep-alive one; a connection serving a request is
//!   never closed. Only when every connection is mid-request is the new one refused. So fresh
//!   probes and scrapes are answered while thousands of half-open connections are held.
//! - **Bytes.** Request heads are bounded (`MAX_HEAD_BYTES`, `MAX_HEADERS`); a larger one is
//!   answered 431 by hyper and the connection closed.
//!
//! Each bound that is hit is counted in `linq_exporter_http_connections_closed_total{reason}`.
//! On shutdown the listener stops accepting, open connections finish their current response
//! and close, and whatever is still open after `DRAIN_TIMEOUT` (5 s) is dropped.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use crate::http::tls::WebConfigHandle;
use crate::telemetry::{CloseReason, SelfMetrics};

/// The largest request head (request line and headers) read, in bytes; hyper's floor is 8 KiB.
/// Prometheus and kubelet requests are a few hundred bytes; this bounds what a client can make
/// the server buffer per connection.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most request headers accepted.
pub(crate) const MAX_HEADERS: usize = 64;
/// How long shutdown waits for open connections to finish.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How a listener serves.
#[derive(Debug, Clone)]
pub(crate) struct ServeOptions {
    /// `--web.read-header-timeout`: headers, TLS handshake and idle keep-alive bound.
    pub read_header_timeout: Duration,
    /// `--web.max-connections`.
    pub max_connections: usize,
    /// The `listener` label of the connection metrics (`web`, `probe`).
    pub name: &'static str,
}

/// Plain TCP, or TLS with the certificate in force when each connection arrives.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
    /// Plain HTTP.
    Plain,
    /// HTTPS from `--web.config.file`.
    Tls(WebConfigHandle),
}

/// Sets `TCP_NODELAY` on an accepted connection. Without it, the last small segment of a large
/// response (the live self metrics after the cached exposition) could wait for the client's
/// delayed ACK, up to 40 ms: measured as a /metrics p99 of 33 ms against a median of 3 ms, with
/// nginx (which sets it) at 8 ms for the same bytes.
pub(crate) fn set_no_delay(stream: &tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
    }
}

/// A plain listener whose connections get [`set_no_delay`].
pub(crate) fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|stream| set_no_delay(stream))
}

/// Accepts one connection and sets `TCP_NODELAY` on it (see [`set_no_delay`]).
pub(crate) async fn accept(listener: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    set_no_delay(&stream);
    Ok((stream, peer))
}

/// A connection's phase, for choosing which one to close at the bound.
const NEW: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

struct Entry {
    phase: Arc<AtomicU8>,
    evict: Option<oneshot::Sender<()>>,
}

/// The connections a listener holds, oldest first (ids only grow).
struct Tracker {
    max: usize,
    conns: Mutex<(u64, BTreeMap<u64, Entry>)>,
}

/// A connection's place in the [`Tracker`]; leaving drops it from the tracker.
struct Slot {
    id: u64,
    phase: Arc<AtomicU8>,
    evicted: oneshot::Receiver<()>,
    tracker: Arc<Tracker>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut conns = self.tracker.lock();
        conns.1.remove(&self.id);
    }
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Entry>)> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().1.len()
    }

    /// A slot for a new connection, making room at the bound (`Evicted`) or refusing (`None`).
    fn admit(self: &Arc<Self>, metrics: &SelfMetrics, name: &str) -> Option<Slot> {
        let mut guard = self.lock();
        let (next_id, conns) = &mut *guard;
        if conns.len() >= self.max {
            let victim = [NEW, IDLE].into_iter().find_map(|phase| {
                conns
                    .iter()
                    .find(|(_, e)| e.phase.load(Ordering::Relaxed) == phase)
                    .map(|(id, _)| *id)
            });
            match victim.and_then(|id| conns.remove(&id)) {
                Some(mut entry) => {
                    if let Some(evict) = entry.evict.take() {
                        let _ = evict.send(());
                    }
                    metrics.connection_closed(name, CloseReason::Evicted);
                }
                None => {
                    metrics.connection_closed(name, CloseReason::Refused);
                    return None;
                }
            }
        }
        let id = *next_id;
        *next_id += 1;
        let phase = Arc::new(AtomicU8::new(NEW));
        let (tx, rx) = oneshot::channel();
        conns.insert(
            id,
            Entry {
                phase: phase.clone(),
                evict: Some(tx),
            },
        );
        Some(Slot {
            id,
            phase,
            evicted: rx,
            tracker: self.clone(),
        })
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains (see the module docs).
pub(crate) async fn serve(
    listener: TcpListener,
    transport: Transport,
    app: Router,
    opts: ServeOptions,
    metrics: Arc<SelfMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tracker = Arc::new(Tracker {
        max: opts.max_connections.max(1),
        conns: Mutex::new((0, BTreeMap::new())),
    });
    metrics.init_connection_metrics(opts.name);
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            r = accept(&listener) => r,
        };
        let (sock, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors (EMFILE), say: back off briefly rather than spin;
                // connections already held keep being served and time out on their own.
                metrics.accept_error(opts.name);
                tracing::warn!(listener = opts.name, error = %e, "accept failed; retrying in 50 ms");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = tracker.admit(&metrics, opts.name) else {
            tracing::debug!(listener = opts.name, peer = %peer, "connection refused: at --web.max-connections with every connection busy");
            continue;
        };
        metrics.set_open_connections(opts.name, tracker.len());
        let (transport, app, opts2, metrics2, drain) = (
            transport.clone(),
            app.clone(),
            opts.clone(),
            metrics.clone(),
            drain_rx.clone(),
        );
        let tracker2 = tracker.clone();
        tokio::spawn(async move {
            let name = opts2.name;
            connection(sock, peer, slot, transport, app, opts2, &metrics2, drain).await;
            metrics2.set_open_connections(name, tracker2.len());
        });
    }
    drop(listener);
    let _ = drain_tx.send(true);
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while tracker.len() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    sock: TcpStream,
    peer: SocketAddr,
    mut slot: Slot,
    transport: Transport,
    app: Router,
    opts: ServeOptions,
    metrics: &SelfMetrics,
    drain: watch::Receiver<bool>,
) {
    match transport {
        Transport::Plain => serve_io(sock, &mut slot, app, &opts, metrics, drain).await,
        Transport::Tls(handle) => {
            let Some(tls) = handle.current().tls.clone() else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let handshake = tokio::time::timeout(opts.read_header_timeout, acceptor.accept(sock));
            let stream = tokio::select! {
                r = handshake => r,
                _ = &mut slot.evicted => return,
            };
            match stream {
                Ok(Ok(stream)) => serve_io(stream, &mut slot, app, &opts, metrics, drain).await,
                Ok(Err(e)) => {
                    metrics.connection_closed(opts.name, CloseReason::TlsHandshake);
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    metrics.connection_closed(opts.name, CloseReason::TlsHandshake);
                    tracing::debug!(peer = %peer, "TLS handshake timed out");
                }
            }
        }
    }
}

async fn serve_io<I>(
    io: I,
    slot: &mut Slot,
    app: Router,
    opts: &ServeOptions,
    metrics: &SelfMetrics,
    mut drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let phase = slot.phase.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut app = app.clone();
        let phase = phase.clone();
        phase.store(BUSY, Ordering::Relaxed);
        async move {
            let resp = tower_service::Service::call(&mut app, req).await;
            phase.store(IDLE, Ordering::Relaxed);
            resp
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.read_header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = &mut slot.evicted => return,
        _ = async { drain.wait_for(|d| *d).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            metrics.connection_closed(opts.name, CloseReason::HeaderTimeout);
        }
        tracing::debug!(listener = opts.name, error = %e, "connection ended with an error");
    }
}

/// Raises the soft open-file limit to the hard limit, as Go programs do since Go 1.19, so the
/// process is not held to 1,024 descriptors where the container allows more. Returns the limits
/// in force afterwards (soft, hard), `None` for unlimited.
#[cfg(target_os = "linux")]
pub fn raise_open_file_limit() -> std::io::Result<(Option<u64>, Option<u64>)> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised).map_err(std::io::Error::from)?;
        limit = getrlimit(Resource::Nofile);
    }
    Ok((limit.current, limit.maximum))
}

/// Elsewhere the limits are left as they are.
#[cfg(not(target_os = "linux"))]
pub fn raise_open_file_limit() -> std::io::Result<(Option<u64>, Option<u64>)> {
    Ok((None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(max: usize) -> Arc<Tracker> {
        Arc::new(Tracker {
            max,
            conns: Mutex::new((0, BTreeMap::new())),
        })
    }

    #[test]
    fn at_the_bound_the_oldest_new_connection_goes_first_then_the_oldest_idle() {
        let metrics = SelfMetrics::new().expect("metrics");
        let t = tracker(3);
        let mut a = t.admit(&metrics, "web").expect("a");
        let mut b = t.admit(&metrics, "web").expect("b");
        let mut c = t.admit(&metrics, "web").expect("c");
        a.phase.store(BUSY, Ordering::Relaxed);
        b.phase.store(IDLE, Ordering::Relaxed);
        // c is the only one without a request: it goes, though b is older.
        let mut d = t.admit(&metrics, "web").expect("d");
        assert!(c.evicted.try_recv().is_ok());
        assert!(a.evicted.try_recv().is_err() && b.evicted.try_recv().is_err());
        drop(c);
        assert_eq!(t.len(), 3);
        // d is new now: it goes next.
        let _e = t.admit(&metrics, "web").expect("e");
        assert!(d.evicted.try_recv().is_ok());
        drop(d);
        // Then b, idle; a (busy) is never closed.
        _e.phase.store(BUSY, Ordering::Relaxed);
        let _f = t.admit(&metrics, "web").expect("f");
        assert!(b.evicted.try_recv().is_ok());
        drop(b);
        _f.phase.store(BUSY, Ordering::Relaxed);
        assert!(t.admit(&metrics, "web").is_none(), "all busy: refused");
        assert!(a.evicted.try_recv().is_err());
        assert_eq!(t.len(), 3);
        let mut out = Vec::new();
        metrics.render(crate::format::Format::Text, &mut out);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains(
            "linq_exporter_http_connections_closed_total{listener=\"web\",reason=\"evicted\"} 3"
        ));
        assert!(text.contains(
            "linq_exporter_http_connections_closed_total{listener=\"web\",reason=\"refused\"} 1"
        ));
    }

    #[tokio::test]
    async fn accepted_connections_get_tcp_nodelay() {
        // Both transports accept through here; TLS handshakes run on the accepted socket.
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let (accepted, _client) = tokio::join!(accept(&tcp), TcpStream::connect(addr));
        let (stream, _) = accepted.expect("accept");
        assert!(stream.nodelay().expect("nodelay"));
    }

    #[tokio::test]
    async fn the_no_delay_listener_sets_tcp_nodelay() {
        use axum::serve::Listener;
        for wrapped in [false, true] {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = tcp.local_addr().expect("addr");
            let client = tokio::net::TcpStream::connect(addr);
            let nodelay = if wrapped {
                let mut listener = no_delay(tcp);
                let ((stream, _), _client) = tokio::join!(listener.accept(), client);
                stream.nodelay()
            } else {
                let mut listener = tcp;
                let ((stream, _), _client) = tokio::join!(Listener::accept(&mut listener), client);
                stream.nodelay()
            };
            // Off by default, which is why the listener needs the wrapper.
            assert_eq!(nodelay.expect("nodelay"), wrapped);
        }
    }

    #[test]
    fn dropping_a_slot_frees_it() {
        let metrics = SelfMetrics::new().expect("metrics");
        let t = tracker(2);
        let a = t.admit(&metrics, "web").expect("a");
        let _b = t.admit(&metrics, "web").expect("b");
        drop(a);
        assert_eq!(t.len(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn open_file_limit_ends_at_the_hard_limit() {
        let (soft, hard) = raise_open_file_limit().expect("raise");
        assert_eq!(soft, hard);
    }
}
