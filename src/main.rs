//! The `linq-exporter` binary: parse flags, start tracing, bind the listener, call the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
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

fn init_tracing(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .with_context(|| format!("invalid value for --log.level: {level:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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

async fn healthcheck(url: &str, timeout: Duration, insecure: bool) -> bool {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .danger_accept_invalid_certs(insecure)
        .build()
    {
        Ok(c) => c,
        Err(_) => return false,
    };
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck {
        url,
        timeout,
        insecure,
    }) = &cli.command
    {
        return if healthcheck(url, *timeout, *insecure).await {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
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
    }) = &cli.command
    {
        let sim = linq_exporter::demo::SimConfig {
            chats: *chats,
            numbers: linq_exporter::demo::numbers(*numbers),
            latency: *latency,
            ..Default::default()
        };
        return match simulate(sim, listen.0).await {
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

/// `webhook subscribe` and `webhook list`, against --linq.base-url with the API key flags.
async fn webhook_command(cli: &Cli, action: &WebhookCommand) -> anyhow::Result<()> {
    use linq_exporter::webhook::subscribe;
    use std::io::Write;
    let key = match (&cli.api_key, &cli.api_key_file) {
        (Some(k), _) if !k.trim().is_empty() => k.trim().to_string(),
        (_, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading --linq.api-key-file {path:?}"))?
            .trim()
            .to_string(),
        _ => anyhow::bail!("no Linq API key: set --linq.api-key (env LINQ_API_V3_API_KEY) or --linq.api-key-file (env LINQ_API_V3_API_KEY_FILE)"),
    };
    let key = linq_exporter::config::Secret::new(key);
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
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --listen {addr}"))?;
    let (url, task) = linq_exporter::demo::spawn(&sim, listener)?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "url={url}\nkey={}", linq_exporter::demo::DEMO_KEY)?;
        out.flush()?;
    }
    shutdown_signal().await;
    task.abort();
    Ok(())
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let config = Config::try_from(&cli)?;
    init_tracing(&cli.log_level, cli.log_format)?;
    if config.once {
        let exposition = linq_exporter::run_once(config).await?;
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&exposition).context("writing to stdout")?;
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
    let listener = tokio::net::TcpListener::bind(config.listen_address)
        .await
        .with_context(|| format!("binding --web.listen-address {}", config.listen_address))?;
    linq_exporter::run(config, listener, shutdown_signal()).await?;
    Ok(())
}
