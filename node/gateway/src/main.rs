//! The `starling` binary: command-line parsing and process set-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use starling::admin::AdminState;
use starling::config::{Config, LogFormat};
use starling::proxy::Gateway;
use starling::server::RunningServer;
use tracing_subscriber::EnvFilter;

mod admin_client;
mod governance_cli;
mod status;

/// Starling: an LLM gateway.
/// mimalloc instead of glibc malloc: the request path allocates and frees many small buffers
/// across threads, where glibc's arenas spent about 13 % of a governed node's CPU (profile in
/// docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "starling", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a gateway node.
    Serve(ServeArgs),
    /// Cluster credentials.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Virtual keys, through a node's admin API.
    Keys(governance_cli::KeysArgs),
    /// Teams, through a node's admin API.
    Teams(governance_cli::AccountArgs),
    /// Customers, through a node's admin API.
    Customers(governance_cli::AccountArgs),
    /// Cluster-wide usage and budgets of a key, team or customer.
    Usage(governance_cli::UsageArgs),
    /// Budget rights: hand back those of a node that is gone for good.
    #[command(subcommand)]
    Budget(governance_cli::BudgetCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print a new shared cluster secret (give it to every node by file or environment).
    Keygen {
        /// A test secret, for fault tests that run deliberately broken modes.
        #[arg(long, hide = true)]
        test: bool,
    },
    /// Create an operator CA: writes ca.pem and ca.key (keep ca.key off the nodes).
    InitCa {
        /// Directory to write the CA into.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print a node's view of the cluster as a table.
    Status {
        /// The node's HTTP base URL, e.g. http://10.0.0.1:8080.
        #[arg(long)]
        node: String,
        /// The admin token (default: the STARLING_ADMIN_TOKEN environment variable).
        #[arg(long, env = "STARLING_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
    },
    /// Issue a node certificate from an operator CA: writes node.pem, node.key and ca.pem.
    IssueCert {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        ca_dir: PathBuf,
        /// The node's id.
        #[arg(long)]
        node_id: String,
        /// Directory to write the node's files into.
        #[arg(long)]
        out_dir: PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file; without it, the embedded default runs.
    #[arg(long, env = "STARLING_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address for the API, overriding `server.listen` (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Listen address for `/metrics`, overriding `server.metrics_listen`.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Once listening, write the bound addresses to this file as JSON.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Print the effective config, with secrets redacted, and exit.
    #[arg(long)]
    print_config: bool,
    /// Log format, overriding `logging.format`.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// This node's cluster id; setting it turns clustering on (`cluster.node_id`).
    #[arg(long)]
    node_id: Option<String>,
    /// QUIC address for gossip and replication (`cluster.gossip_listen`).
    #[arg(long)]
    gossip_listen: Option<SocketAddr>,
    /// The gossip address peers should use (`cluster.gossip_advertise`).
    #[arg(long)]
    gossip_advertise: Option<SocketAddr>,
    /// Comma-separated seed addresses, `host:port` (`cluster.seeds`).
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// Directory for the replica (`cluster.data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Cluster(command) => cluster(command),
        Command::Keys(args) => governance_cli::run(governance_cli::Command::Keys(args)),
        Command::Teams(args) => governance_cli::run(governance_cli::Command::Teams(args)),
        Command::Customers(args) => governance_cli::run(governance_cli::Command::Customers(args)),
        Command::Usage(args) => governance_cli::run(governance_cli::Command::Usage(args)),
        Command::Budget(command) => governance_cli::run(governance_cli::Command::Budget(command)),
    }
}

fn cluster(command: ClusterCommand) -> Result<()> {
    use starling_cluster::tls;
    match command {
        ClusterCommand::Status { node, admin_token } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(status::print(&node, &admin_token))?;
        }
        ClusterCommand::Keygen { test: false } => println!("{}", tls::generate_secret()?),
        ClusterCommand::Keygen { test: true } => println!("{}", tls::generate_test_secret()?),
        ClusterCommand::InitCa { dir } => {
            tls::init_ca(&dir)?;
            println!(
                "wrote {} and {}",
                dir.join(tls::CA_CERT_FILE).display(),
                dir.join(tls::CA_KEY_FILE).display()
            );
        }
        ClusterCommand::IssueCert {
            ca_dir,
            node_id,
            out_dir,
        } => {
            tls::issue_cert(&ca_dir, &node_id, &out_dir)?;
            println!(
                "wrote {} and {}",
                out_dir.join(tls::NODE_CERT_FILE).display(),
                out_dir.join(tls::NODE_KEY_FILE).display()
            );
        }
    }
    Ok(())
}

fn load_config(args: &ServeArgs) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::embedded_default()?,
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(listen) = args.metrics_listen {
        config.server.metrics_listen = Some(listen);
    }
    let cluster = &mut config.cluster;
    if let Some(id) = &args.node_id {
        cluster.node_id = Some(id.clone());
    }
    if let Some(addr) = args.gossip_listen {
        cluster.gossip_listen = addr;
    }
    if let Some(addr) = args.gossip_advertise {
        cluster.gossip_advertise = Some(addr);
    }
    if let Some(seeds) = &args.seeds {
        cluster.seeds = seeds
            .iter()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .collect();
    }
    if let Some(dir) = &args.data_dir {
        cluster.data_dir = dir.clone();
    }
    starling::config::validate(&config)?;
    starling::config::validate_open_access(&config)?;
    if let Some(format) = args.log_format {
        config.logging.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    Ok(config)
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.logging.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.logging.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let config = load_config(&args)?;
    if args.print_config {
        print!(
            "{}",
            config
                .to_redacted_toml()
                .context("cannot render the config")?
        );
        return Ok(());
    }
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config, args.ready_file))
}

async fn run(config: Config, ready_file: Option<PathBuf>) -> Result<()> {
    let listen = config.server.listen;
    let metrics_listen = config.server.metrics_listen;
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let gateway = Arc::new(Gateway::from_config(config)?);
    for provider in gateway.router.providers() {
        tracing::info!(provider = %provider.name, kind = ?provider.kind, "provider on");
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let http_addr = listener.local_addr()?;
    let admin_token = AdminState::token_from_config(&gateway.config.admin)?;
    let cluster = starling::cluster::start(&gateway.config, http_addr).await?;
    if let Some(cluster) = &cluster {
        tracing::info!(node_id = %cluster.writer().node.as_str(), incarnation = cluster.writer().incarnation, gossip = %cluster.local_addr(), "joined the cluster");
    }
    if admin_token.is_none() {
        tracing::info!("admin API off: no admin token set");
    }
    let admin = AdminState {
        token: admin_token,
        cluster: cluster.clone(),
    };
    let metrics_listener = match metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?,
        ),
        None => None,
    };
    let server =
        RunningServer::start_with_admin(gateway.clone(), listener, metrics_listener, admin)?;
    tracing::info!(addr = %server.addr, metrics = ?server.metrics_addr, "starling is serving");
    if gateway.admission.is_open() {
        tracing::warn!(
            "open access: requests without a key are admitted with no budget or limit (no auth.keys and no cluster, or auth.open = true); add auth.keys or set auth.open = false to require a key"
        );
    }
    if let Some(endpoint) = gateway.telemetry.endpoint() {
        tracing::info!(endpoint, "exporting traces over OTLP/HTTP");
    }
    if let Some(path) = ready_file {
        server
            .write_ready_file(&path, cluster.as_ref().map(|c| c.local_addr()))
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests for up to {grace:?}");
    if let Some(cluster) = &cluster {
        // Peers (and `starling cluster status`) see this node draining while gossip still
        // runs during the drain.
        cluster.set_metadata("ready", "false").await;
    }
    server.shutdown(grace).await;
    drain_observability(gateway).await;
    if let Some(cluster) = cluster {
        match Arc::try_unwrap(cluster) {
            Ok(cluster) => {
                cluster.shutdown().await;
                tracing::info!("left the cluster");
            }
            // A request aborted at the deadline may still hold the gateway for a moment.
            Err(_) => {
                tracing::warn!("the cluster member is still in use; exiting without a clean leave")
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Writes what the request log has queued and exports the last spans, off the runtime's
/// workers (both block), then lets go of the gateway so the cluster member can stop.
async fn drain_observability(gateway: Arc<Gateway>) {
    let telemetry = gateway.telemetry.clone();
    let log = gateway.request_log.clone();
    drop(gateway);
    let flushed = tokio::task::spawn_blocking(move || {
        if let Some(log) = log {
            log.close();
        }
        telemetry.shutdown();
    })
    .await;
    if let Err(e) = flushed {
        tracing::warn!("flushing request logs and traces failed: {e}");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
