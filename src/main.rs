//! The `linq-exporter` binary: parse flags, start tracing, bind the listener, call the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use linq_exporter::config::cli::{Cli, Command, WebhookCommand};
use linq_exporter::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// jemalloc: each sweep allocates and frees a snapshot's worth of small objects on several
/// threads; with glibc's per-thread arenas the resident size crept up sweep after sweep, with
/// jemalloc it stays flat (measured at 100k chats, see docs/benchmarks.md). Its options (one
/// arena, a short dirty-page decay) are compiled in from `.cargo/config.toml`.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Colour only on a terminal (not in a file or `docker logs`), and never with `NO_COLOR` set.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_tracing(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .with_context(|| format!("invalid value for --log.level: {level:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Probes `url`; the error says why it is not healthy.
async fn healthcheck(url: &str, timeout: Duration, insecure: bool) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .danger_accept_invalid_certs(insecure)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let resp = client.get(url).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            format!("no answer within {timeout:?} (--timeout)")
        } else if e.is_connect() {
            "connection failed (is the exporter running and listening there?)".to_string()
        } else if e.is_builder() {
            "not a valid URL (--url)".to_string()
        } else {
            e.without_url().to_string()
        };
        format!("GET {url}: {why}")
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.trim().chars().take(200).collect();
    Err(if body.is_empty() {
        format!("GET {url}: HTTP {status}")
    } else {
        format!("GET {url}: HTTP {status}: {body}")
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_with_origins();
    if let Some(Command::Healthcheck {
        url,
        timeout,
        insecure,
    }) = &cli.command
    {
        return match healthcheck(url, *timeout, *insecure).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("linq-exporter healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Webhook { action }) = &cli.command {
        return match webhook_command(&cli, action).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("linq-exporter webhook: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Simulate {
        listen,
        chats,
        numbers,
        latency,
        webhook_url,
        webhook_interval,
    }) = &cli.command
    {
        let sim = linq_exporter::demo::SimConfig {
            chats: *chats,
            numbers: linq_exporter::demo::numbers(*numbers),
            latency: *latency,
            webhook_interval: *webhook_interval,
            ..Default::default()
        };
        return match simulate(sim, listen.0, webhook_url.as_deref()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("linq-exporter simulate: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match real_main(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linq-exporter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `webhook subscribe`, `list` and `delete`, against --linq.base-url with the API key flags.
async fn webhook_command(cli: &Cli, action: &WebhookCommand) -> anyhow::Result<()> {
    use linq_exporter::config::{api_key_source, ApiKeySource, ConfigError, Secret};
    use linq_exporter::webhook::subscribe;
    use std::io::Write;
    let key = match api_key_source(cli)? {
        Some(ApiKeySource::Value(k)) => k,
        Some(ApiKeySource::File(path)) => Secret::new(
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading --linq.api-key-file {path:?}"))?
                .trim(),
        ),
        None => return Err(ConfigError::MissingApiKey.into()),
    };
    let base = cli.base_url.trim().trim_end_matches('/');
    let mut out = std::io::stdout().lock();
    match action {
        WebhookCommand::Subscribe {
            url,
            events,
            secret_file,
        } => {
            let s = subscribe::subscribe(base, &key, url, events, secret_file).await?;
            writeln!(
                out,
                "created subscription {} for {} ({} events); signing secret written to {}",
                s.id,
                s.target_url,
                s.subscribed_events.len(),
                secret_file.display()
            )?;
        }
        WebhookCommand::Delete { id } => {
            subscribe::delete(base, &key, id).await?;
            writeln!(out, "deleted subscription {}", id.trim())?;
        }
        WebhookCommand::List => {
            let subs = subscribe::list(base, &key).await?;
            writeln!(out, "ID\tACTIVE\tTARGET URL\tEVENTS")?;
            for s in subs {
                let active = s.is_active.map_or("?", |a| if a { "yes" } else { "no" });
                writeln!(
                    out,
                    "{}\t{active}\t{}\t{}",
                    s.id,
                    s.target_url,
                    s.subscribed_events.join(",")
                )?;
            }
        }
    }
    Ok(())
}

/// Serves the simulated API until SIGINT or SIGTERM; prints its URL and key on stdout.
async fn simulate(
    sim: linq_exporter::demo::SimConfig,
    addr: std::net::SocketAddr,
    webhook_url: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(u) = webhook_url {
        match reqwest::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => {}
            _ => anyhow::bail!("invalid value for --webhook-url: {u:?} is not an http(s) URL"),
        }
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on --listen {addr}"))?;
    let (url, task) = linq_exporter::demo::spawn(&sim, listener)?;
    let sender = webhook_url.map(|u| {
        linq_exporter::demo::spawn_webhook_sender(
            &sim,
            u.to_string(),
            linq_exporter::demo::DEMO_WEBHOOK_SECRET.to_string(),
        )
    });
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let said = format!("url={url}\nkey={}\n", linq_exporter::demo::DEMO_KEY);
        // A reader that closed stdout after reading these lines does not stop the simulator.
        match out.write_all(said.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
    }
    shutdown_signal().await;
    task.abort();
    if let Some(sender) = sender {
        sender.abort();
    }
    Ok(())
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let config = Config::try_from(&cli)?;
    init_tracing(&cli.log_level.0, cli.log_format)?;
    // A RunError's message is complete: print it once, not followed by its source again.
    let once_said = |e: linq_exporter::RunError| anyhow::anyhow!("{e}");
    if config.once {
        let exposition = linq_exporter::run_once(config).await.map_err(once_said)?;
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        match out.write_all(&exposition).and_then(|()| out.flush()) {
            // `--once | head -1`: the reader has what it wanted.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.context("writing to stdout")?,
        }
        return Ok(());
    }
    match linq_exporter::http::conn::raise_open_file_limit() {
        Ok((soft, hard)) => {
            let show = |l: Option<u64>| l.map_or("unlimited".to_string(), |n| n.to_string());
            tracing::info!(
                soft = %show(soft),
                hard = %show(hard),
                "open-file limit (soft raised to the hard limit)"
            );
        }
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    let listener = linq_exporter::bind("--web.listen-address", config.listen_address)
        .await
        .map_err(once_said)?;
    linq_exporter::run(config, listener, shutdown_signal())
        .await
        .map_err(once_said)?;
    Ok(())
}
