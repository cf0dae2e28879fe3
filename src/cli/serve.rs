//! `baton serve`: load the engine and the customers' state, then answer HTTP on the
//! configured address until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::serve::{AppState, Sources};
use crate::store::DataDir;

/// Arguments of `baton serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address [default: serve.addr in the config, 127.0.0.1:8080].
    #[arg(long)]
    pub addr: Option<String>,
    /// Serve an empty axum handler on POST /v1/decide instead (the ceiling for load tests).
    #[arg(long, hide = true)]
    pub ceiling: bool,
}

/// Arguments of `baton log export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output directory for decisions.parquet and outcomes.parquet.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `baton log export`: the server's decision log and outcomes as Parquet.
pub fn run_export(data: &Path, args: &ExportArgs) -> anyhow::Result<()> {
    let wal = data.join("wal").join("server.wal");
    let n = crate::serve::export::export_log(&wal, &args.out)?;
    println!(
        "{} decisions and {} outcomes from {} into {}",
        n.decisions,
        n.outcomes,
        wal.display(),
        args.out.display()
    );
    Ok(())
}

/// Builds the state from the data and model directories.
pub fn open_state(
    config: &Config,
    config_path: &Path,
    data: &Path,
    models: &Path,
) -> anyhow::Result<Arc<AppState>> {
    let sources = Sources {
        config_path: config_path.to_path_buf(),
        data: DataDir::create(data)?,
        models: models.to_path_buf(),
    };
    let t = std::time::Instant::now();
    let state = AppState::open(config.clone(), sources)
        .with_context(|| format!("starting the server on data {}", data.display()))?;
    let e = state.engine();
    println!(
        "   loaded {} customers in {:.1}s; models {:?}; policy {}; {} candidates",
        state.customer_count(),
        t.elapsed().as_secs_f64(),
        e.model_versions(),
        e.policy_version(),
        e.candidate_count()
    );
    Ok(state)
}

/// Serves until a shutdown signal.
pub async fn run_serve(
    config: &Config,
    config_path: &Path,
    data: &Path,
    models: &Path,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let addr = args
        .addr
        .clone()
        .unwrap_or_else(|| config.serve.addr.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    if args.ceiling {
        println!("ceiling server (empty handler) on http://{addr}/v1/decide");
        axum::serve(listener, crate::serve::empty_app())
            .with_graceful_shutdown(crate::serve::shutdown_signal())
            .await?;
        return Ok(());
    }
    let state = {
        let (c, p, d, m) = (
            config.clone(),
            config_path.to_path_buf(),
            data.to_path_buf(),
            models.to_path_buf(),
        );
        tokio::task::spawn_blocking(move || open_state(&c, &p, &d, &m)).await??
    };
    if config.serve.api_keys.is_empty() {
        tracing::warn!(
            "no API keys configured (serve.api_keys): every request is accepted; keep the server on a private address"
        );
    }
    let auth = if config.serve.api_keys.is_empty() {
        String::new()
    } else {
        " -H 'Authorization: Bearer <key>'".into()
    };
    println!("listening on http://{addr} (Ctrl-C stops; requests in flight finish)");
    println!(
        "   try: curl -s{auth} -H 'content-type: application/json' -d '{{\"customer_id\":\"c0000001\",\"explain\":true}}' http://{addr}/v1/decide"
    );
    println!("   API: http://{addr}/openapi.json, metrics: http://{addr}/metrics");
    crate::serve::run(state, listener, crate::serve::shutdown_signal()).await?;
    println!("server stopped");
    Ok(())
}

/// The config path the CLI uses (for reloads).
pub fn config_path(cli_config: Option<&Path>) -> PathBuf {
    cli_config.map_or_else(|| PathBuf::from("baton.toml"), Path::to_path_buf)
}

/// Sends one HTTP/1.1 request to `addr` and returns the status and body (for the
/// quickstart's demonstration request; no client library needed for one call).
pub async fn http_call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// The end of the quickstart: serve DATA/quickstart with the trained champions, show one
/// decision made over HTTP, then keep serving (unless `no_serve`).
pub async fn quickstart_serve(
    config: &Config,
    config_path: &Path,
    data: &Path,
    models: &Path,
    as_of: &str,
    no_serve: bool,
) -> anyhow::Result<()> {
    let addr = config.serve.addr.clone();
    let state = {
        let (c, p, d, m) = (
            config.clone(),
            config_path.to_path_buf(),
            data.to_path_buf(),
            models.to_path_buf(),
        );
        tokio::task::spawn_blocking(move || open_state(&c, &p, &d, &m)).await??
    };
    // a port in use only costs the demonstration, not the quickstart
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) if no_serve => {
            println!("   (not serving: cannot listen on {addr}: {e})");
            return Ok(());
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot listen on {addr} (use --no-serve, or set serve.addr)")
            });
        }
    };
    let local = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve::run(state, listener, async move {
        tokio::select! {
            _ = stop_rx => {},
            _ = crate::serve::shutdown_signal() => {},
        }
    }));
    let body = format!(
        r#"{{"customer_id":"c0000001","context":{{"channel":"web"}},"limit":3,"explain":true,"ts":"{as_of}"}}"#
    );
    let (status, answer) = http_call(local, "POST", "/v1/decide", &body).await?;
    println!("   POST /v1/decide {body}\n   -> {status}");
    match serde_json::from_str::<serde_json::Value>(&answer) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
        Err(_) => println!("{answer}"),
    }
    if no_serve {
        let _ = stop_tx.send(());
    } else {
        println!("\nlistening on http://{local} (Ctrl-C stops)");
        println!(
            "   try: curl -s -H 'content-type: application/json' -d '{{\"customer_id\":\"c0000042\",\"explain\":true,\"ts\":\"{as_of}\"}}' http://{local}/v1/decide"
        );
        println!(
            "   (the simulated journeys end at {as_of}; without `ts` a decision is made as of now)"
        );
        println!("   API: http://{local}/openapi.json, metrics: http://{local}/metrics");
        drop(stop_tx);
    }
    server.await??;
    Ok(())
}
