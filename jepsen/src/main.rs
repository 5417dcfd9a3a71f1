//! `starling-jepsen`: Jepsen-style fault tests of a Starling cluster. Runs as root.
//!
//! ```text
//! starling-jepsen run --nemesis all --workload all --time-limit 10m --seed 7
//! starling-jepsen cleanup
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use starling_jepsen::nemesis::Nemesis;
use starling_jepsen::run::{RunSpec, run};
use starling_jepsen::workload::{Spread, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "starling-jepsen",
    about = "Jepsen-style fault tests: real starling nodes in network namespaces, faults, ledger checkers (run as root)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One run: set up hosts, load them under faults, heal, check, report. Exits 1 when a
    /// checker finds a violation.
    Run(RunArgs),
    /// Removes namespaces, links, processes and work dirs left by runs that were killed.
    Cleanup,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Number of nodes (one network namespace each).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=50))]
    nodes: u16,
    /// How long the workloads run under faults, e.g. `90s`, `10m`, `1h`.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    time_limit: Duration,
    /// Seed of the schedule and of every client's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Faults: names (partition-halves, partition-majority, partition-isolate,
    /// partition-bridge, partition-ring, partition-one-way, netem, kill, kill-all, wipe,
    /// pause, clock, disk-full, flip-byte, truncate-snapshot) or groups (partition, process,
    /// storage, all, none), comma-separated.
    #[arg(long, default_value = "all", value_parser = Nemesis::parse_list)]
    nemesis: std::vec::Vec<Nemesis>,
    /// Run two faults of different classes at once (e.g. a partition during a clock jump).
    #[arg(long)]
    combine: bool,
    /// Workloads: budget, rate, catalog, or all, comma-separated.
    #[arg(long, default_value = "all", value_parser = Workload::parse_list)]
    workload: std::vec::Vec<Workload>,
    /// Send this share of requests to node 1 (e.g. 0.8); the rest spread evenly.
    #[arg(long)]
    hot: Option<f64>,
    /// Each budget-workload key's budget, USD.
    #[arg(long, default_value_t = 0.05)]
    budget_usd: f64,
    /// Replicas must be identical within this many ms after the later of the last fault's
    /// end and the last client operation, or the convergence checker fails.
    #[arg(long, default_value_t = starling_jepsen::check::convergence::DEFAULT_BOUND_MS)]
    convergence_bound_ms: u64,
    /// Report directory (default: jepsen-reports/<time>-seed<S>).
    #[arg(long)]
    report: Option<PathBuf>,
    /// The `starling` binary (default: beside this one).
    #[arg(long, env = "STARLING_BIN")]
    starling_bin: Option<PathBuf>,
    /// Start the nodes with `governance.unsafe_skip_rights_check`: a deliberately broken mode
    /// that overspends strict budgets, to show that the budget checker catches it.
    #[arg(long)]
    unsafe_skip_rights_check: bool,
    /// End the fault schedule with this nemesis (e.g. `kill-all`), held for the last 8 s of
    /// the time limit, so the final heal is its heal.
    #[arg(long, value_parser = parse_one_nemesis)]
    end_with: Option<Nemesis>,
    /// Succeed only if this checker reports a violation (and fail if it holds): for tests
    /// that prove a checker can fail.
    #[arg(long)]
    expect_violation: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: use a number with s, m or h, e.g. 90s or 10m"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3_600,
        _ => return Err(format!("{text:?}: use s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

fn parse_one_nemesis(text: &str) -> Result<Nemesis, String> {
    match Nemesis::parse_list(text)?.as_slice() {
        [one] => Ok(*one),
        _ => Err(format!("{text:?}: name one nemesis, e.g. kill-all")),
    }
}

fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("starling")))
        .unwrap_or_else(|| PathBuf::from("starling"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    // reqwest is built without a default TLS provider (the workspace picks ring); the harness
    // only speaks plain HTTP, but the client builder needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("starling-jepsen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Cleanup => {
            let swept = starling_jepsen::net::sweep_stale()?;
            println!("removed the leftovers of {swept} killed run(s)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let report = args.report.unwrap_or_else(|| {
                let stamp = starling_jepsen::history::now_ms() / 1_000;
                PathBuf::from(format!("jepsen-reports/{stamp}-seed{}", args.seed))
            });
            let spec = RunSpec {
                nodes: usize::from(args.nodes),
                time_limit: args.time_limit,
                seed: args.seed,
                nemeses: args.nemesis,
                combine: args.combine,
                workloads: args.workload,
                spread: args.hot.map_or(Spread::Even, Spread::Hot),
                report_dir: report.clone(),
                binary: args.starling_bin.unwrap_or_else(default_binary),
                unsafe_skip_rights: args.unsafe_skip_rights_check,
                budget_micros: (args.budget_usd * 1e6).round() as u64,
                convergence_bound_ms: args.convergence_bound_ms,
                end_with: args.end_with,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let stop = Arc::new(AtomicBool::new(false));
            let passed = runtime.block_on(async {
                let on_signal = stop.clone();
                tokio::spawn(async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    if let Ok(mut term) = signal(SignalKind::terminate()) {
                        tokio::select! {
                            _ = term.recv() => {}
                            _ = tokio::signal::ctrl_c() => {}
                        }
                        eprintln!("starling-jepsen: interrupted; cleaning up");
                        on_signal.store(true, Ordering::Relaxed);
                    }
                });
                run(spec, stop.clone()).await
            })?;
            println!("report: {}", report.display());
            Ok(match (args.expect_violation, passed) {
                (None, true) => ExitCode::SUCCESS,
                (None, false) => ExitCode::FAILURE,
                (Some(name), _) => {
                    let verdict = std::fs::read_to_string(report.join("verdict.txt"))?;
                    if verdict.contains(&format!("{name}: FAIL")) {
                        println!("as expected, the {name} checker found the violation");
                        ExitCode::SUCCESS
                    } else {
                        println!(
                            "the {name} checker did NOT report a violation, but one was expected"
                        );
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}
