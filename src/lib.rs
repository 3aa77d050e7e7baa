//! linq-exporter: a Prometheus exporter for the health of Linq (iMessage, SMS, RCS) business
//! conversations. The binary (`src/main.rs`) parses flags, starts tracing, binds the listener and
//! calls [`run`] (or [`run_once`]). The directories follow the data's way through the program;
//! dependencies point one way, from serving down to the API:
//!
//! - [`api`]: the Linq API: client, wire models, page decoding, pagination, errors.
//! - [`sweep`]: the poller and its CPU threads, and the state it publishes.
//! - [`metrics`]: the snapshot (pure aggregation) and its exposition, rendered once per sweep.
//! - [`http`]: serving it: router, connection loop and its bounds, TLS and web config, status page.
//! - [`webhook`]: the other way in: Linq's signed webhooks on their own listener, verified,
//!   deduplicated and counted beside the sweep's state in the same metrics.
//!
//! Beside them: [`config`] (flags, then validated configuration), [`telemetry`] (the exporter's
//! own metrics, which every layer counts into), [`format`] (the exposition formats: `Accept`
//! negotiation, OpenMetrics and protobuf encoders, native histograms) and [`demo`] (the simulated Linq API behind
//! `--demo`, the tests and the benchmarks).

pub mod api;
pub mod config;
pub mod demo;
pub mod format;
pub mod http;
pub mod metrics;
pub mod sweep;
pub mod telemetry;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::client::{ClientOptions, LinqClient};
use crate::api::error::SweepError;
use crate::config::{ApiKeySource, Config, Secret};
use crate::http::{conn as serve, router as server, tls, web_config};
use crate::metrics::exposition::RenderOptions;
use crate::sweep::poller::{Poller, PollerOptions};
use crate::sweep::state::AppState;
use crate::telemetry::SelfMetrics;

/// The exporter's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision it was built from.
pub const REVISION: &str = env!("LINQ_EXPORTER_REVISION");

/// Start-up failures of [`run`] and [`run_once`]. Each message is complete on its own (the
/// cause included), so it is printed once, without the source chain repeating it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The metrics registry rejected a metric (a programming error).
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A listener could not be bound: names its flag and address.
    #[error("cannot listen on {flag} {address}: {reason}")]
    Bind {
        /// The flag, e.g. `--webhook.listen-address`.
        flag: &'static str,
        /// The address.
        address: std::net::SocketAddr,
        /// Why (the OS error).
        reason: String,
    },
    /// Serving failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// `--web.config.file` is invalid.
    #[error(transparent)]
    WebConfig(#[from] web_config::WebConfigError),
    /// The webhook receiver could not start (its secret, say).
    #[error("webhook receiver: {0}")]
    Webhook(#[from] webhook::receiver::ReceiverError),
    /// `--once`: the sweep failed.
    #[error("the sweep failed: {0}")]
    Sweep(#[from] SweepError),
}

/// Binds `address` for `flag`; the error names both.
pub async fn bind(
    flag: &'static str,
    address: std::net::SocketAddr,
) -> Result<TcpListener, RunError> {
    TcpListener::bind(address)
        .await
        .map_err(|e| RunError::Bind {
            flag,
            address,
            reason: e.to_string(),
        })
}

/// What `run` builds before it serves: shared state, the poller, and the demo simulator's task.
struct Parts {
    state: Arc<AppState>,
    poller: Poller,
    _simulator: Option<tokio::task::JoinHandle<()>>,
}

async fn build(config: &Config) -> Result<Parts, RunError> {
    let metrics = Arc::new(SelfMetrics::new()?);
    metrics.set_shard(config.sharding.shard(), config.sharding.total());
    let (base_url, key, simulator) = match (&config.demo, &config.api_key) {
        (Some(demo), _) => {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            let (url, task) = demo::spawn(demo, listener)?;
            tracing::info!(url = %url, chats = demo.chats, "demo: simulated Linq API started");
            (
                url,
                ApiKeySource::Value(Secret::new(demo::DEMO_KEY)),
                Some(task),
            )
        }
        (None, Some(key)) => (config.base_url.clone(), key.clone(), None),
        // Config validation guarantees a key outside demo mode; an empty one fails each sweep.
        (None, None) => (
            config.base_url.clone(),
            ApiKeySource::Value(Secret::new("")),
            None,
        ),
    };
    let client = Arc::new(LinqClient::new(
        ClientOptions {
            base_url,
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
            retry: config.retry,
            max_requests_per_second: config.max_requests_per_second,
            max_response_size: config.max_response_size,
        },
        metrics.clone(),
    )?);
    let state = Arc::new(AppState::new(
        metrics,
        config.ready_max_age,
        config.telemetry_path.clone(),
    ));
    if config.protobuf_always {
        state.protobuf_always();
    }
    let startup_delay = if config.startup_jitter.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(rand::rng().random_range(0.0..=config.startup_jitter.as_secs_f64()))
    };
    let poller = Poller::new(
        client,
        PollerOptions {
            key,
            from: config.from.clone(),
            page_size: config.page_size,
            interval: config.poll_interval,
            sweep_timeout: config.sweep_timeout,
            concurrency: config.concurrency,
            phone_numbers: config.phone_numbers,
            discover_numbers: config.discover_numbers,
            sharding: config.sharding,
            startup_delay,
            render: RenderOptions {
                chat_metrics: config.chat_metrics,
                unhealthy_score: config.unhealthy_score,
                max_chat_series: config.max_chat_series,
                display_name: config.chat_display_name,
            },
        },
        state.clone(),
    );
    Ok(Parts {
        state,
        poller,
        _simulator: simulator,
    })
}

/// Runs the exporter: sweeps on the configured interval and serves HTTP on `listener` until
/// `shutdown` completes, then stops the poller (abandoning a sweep in progress) and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    // An invalid web config fails start-up before anything runs.
    let web = match &config.web_config_file {
        Some(path) => Some((path.clone(), web_config::load(path)?)),
        None => None,
    };
    let parts = build(&config).await?;
    let state = parts.state.clone();
    let web = match web {
        Some((path, loaded)) => {
            let handle = tls::WebConfigHandle::new(loaded);
            tls::spawn_reloader(
                path,
                handle.clone(),
                config.web_config_reload_interval,
                state.metrics.clone(),
            );
            handle
        }
        None => tls::WebConfigHandle::new(web_config::WebConfig::plain()),
    };
    let (stop_tx, stop_rx) = watch::channel(false);

    // Every listener is bound (and the receiver's secret loaded) before the poller starts, so a
    // start-up failure ends the process cleanly, with one error naming the flag.
    let probe = match config.probe_listen_address {
        Some(addr) => Some(bind("--web.probe-listen-address", addr).await?),
        None => None,
    };
    let hooks = match &config.webhook {
        Some(w) => {
            let receiver = webhook::receiver::Receiver::new(
                &w.secret,
                w.max_age,
                config.read_header_timeout,
                state.clone(),
            )?;
            let flag = if config.demo.is_some() && w.listen_address.port() == 0 {
                "the demo's webhook receiver"
            } else {
                "--webhook.listen-address"
            };
            Some((receiver, bind(flag, w.listen_address).await?, w))
        }
        None => None,
    };

    let poller_task = tokio::spawn(parts.poller.run(stop_rx.clone()));
    let supervisor = supervise(poller_task, stop_rx, state.clone());

    let serve_opts = |name| serve::ServeOptions {
        read_header_timeout: config.read_header_timeout,
        max_connections: config.max_connections,
        name,
    };
    if let Some(probe) = probe {
        tracing::info!(address = %probe.local_addr()?, "probe listener (plain HTTP, /healthz and /readyz only)");
        let mut stop = stop_tx.subscribe();
        let app = server::probe_router(state.clone());
        let serving = serve::serve(
            probe,
            serve::Transport::Plain,
            app,
            serve_opts("probe"),
            state.metrics.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        );
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(error = %e, "probe listener failed");
            }
        });
    }

    let tls_on = web.current().tls.is_some();
    if let Some((receiver, hooks, w)) = hooks {
        receiver.spawn_upkeep(w.secret.clone());
        let scheme = if tls_on { "https" } else { "http" };
        let url = format!("{scheme}://{}{}", hooks.local_addr()?, w.path);
        tracing::info!(url = %url, "webhook receiver (POST only)");
        // The web config's TLS applies here too; its basic auth never does (Linq cannot send it).
        let transport = if tls_on {
            serve::Transport::Tls(web.clone())
        } else {
            serve::Transport::Plain
        };
        let mut stop = stop_tx.subscribe();
        let serving = serve::serve(
            hooks,
            transport,
            webhook::receiver::router(receiver, &w.path),
            serve_opts("webhook"),
            state.metrics.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        );
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(error = %e, "webhook listener failed");
            }
        });
        if let (Some(demo), webhook_secret) = (&config.demo, &w.secret) {
            let secret = match webhook_secret {
                config::WebhookSecret::Value(s) => s.expose().to_string(),
                config::WebhookSecret::File(p) => std::fs::read_to_string(p)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
            };
            let sender = demo::spawn_webhook_sender(demo, url, secret);
            let mut stop = stop_tx.subscribe();
            tokio::spawn(async move {
                let _ = stop.wait_for(|s| *s).await;
                sender.abort();
            });
        }
    }
    tracing::info!(address = %listener.local_addr()?, path = %config.telemetry_path, version = VERSION, tls = tls_on, basic_auth = web.current().basic_auth.is_some(), "listening");
    let app = server::with_web_config(server::router(state.clone()), web.clone());
    let stop_on_shutdown = stop_tx.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_on_shutdown.send(true);
    };
    let transport = if tls_on {
        serve::Transport::Tls(web)
    } else {
        serve::Transport::Plain
    };
    serve::serve(
        listener,
        transport,
        app,
        serve_opts("web"),
        state.metrics.clone(),
        graceful,
    )
    .await?;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), supervisor).await;
    Ok(())
}

/// Supervision: if the poller task ends while no stop was asked for (a panic, say), marks the
/// state so `/healthz` turns 503 and the orchestrator restarts the process, and logs why.
pub fn supervise(
    poller: tokio::task::JoinHandle<()>,
    stop: watch::Receiver<bool>,
    state: Arc<AppState>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let outcome = poller.await;
        // A stop asked for, or `run` returned (its sender dropped, on a start-up or serving
        // error it reports itself): not a death to report.
        if *stop.borrow() || (stop.has_changed().is_err() && outcome.is_ok()) {
            return;
        }
        let reason = match outcome {
            Ok(()) => "poller exited unexpectedly".to_string(),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                format!("poller panicked: {msg}")
            }
            Err(e) => format!("poller task failed: {e}"),
        };
        tracing::error!(reason = %reason, "poller died; /healthz now reports 503");
        state.poller_died(reason);
    })
}

/// `--once`: one sweep, then the whole exposition (snapshot and self metrics).
pub async fn run_once(config: Config) -> Result<Vec<u8>, RunError> {
    let parts = build(&config).await?;
    parts.poller.poll_once().await?;
    let mut tail = Vec::new();
    parts.state.metrics.render(format::Format::Text, &mut tail);
    Ok(match parts.state.published() {
        Some(p) => p.rendered.plain_with_tail(tail).concat(),
        None => tail,
    })
}
