//! `starling-mock`: the mock provider as a stand-alone process, for the Python SDK suite,
//! benchmarks and Jepsen-style runs.
//!
//! ```text
//! starling-mock --listen 127.0.0.1:0 --ready-file /tmp/mock.json [--latency-ms N]
//!               [--ttft-ms N] [--inter-token-ms N] [--output-tokens N] [--ledger-limit N]
//! ```
//! Once listening it writes `{"http":"127.0.0.1:PORT"}` to the ready file (atomically: a
//! temporary file renamed into place, so readers never see a partial file). It logs to stderr
//! and exits cleanly on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use starling_bench::{MockConfig, MockServer};
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    name = "starling-mock",
    about = "Faithful mock of the OpenAI, Azure OpenAI and Anthropic APIs"
)]
struct Args {
    /// Address to listen on; port 0 lets the OS choose.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write `{"http":"HOST:PORT"}` once listening.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Delay before non-streaming response headers.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Delay before the first streamed content chunk.
    #[arg(long, default_value_t = 0)]
    ttft_ms: u64,
    /// Delay between streamed content chunks.
    #[arg(long, default_value_t = 0)]
    inter_token_ms: u64,
    /// Default reply length in tokens.
    #[arg(long, default_value_t = 16)]
    output_tokens: u32,
    /// Keep at most this many ledger entries (summary totals stay exact); 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    ledger_limit: usize,
}

fn write_ready_file(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let body = serde_json::json!({ "http": addr.to_string() }).to_string();
    let file_name = path
        .file_name()
        .context("ready file path has no file name")?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("installing SIGINT handler")?,
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let cfg = MockConfig {
        latency_ms: args.latency_ms,
        ttft_ms: args.ttft_ms,
        inter_token_ms: args.inter_token_ms,
        default_output_tokens: args.output_tokens,
        ledger_limit: (args.ledger_limit > 0).then_some(args.ledger_limit),
        ..MockConfig::default()
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let server = MockServer::start(listener, cfg).await;
    if let Some(path) = &args.ready_file {
        write_ready_file(path, server.addr())?;
    }
    shutdown_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}
