//! `starling-bench`: measures what Starling adds to LLM traffic, side by side with direct
//! traffic to the same mock upstream and with other gateways. See `--help`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use starling_bench::load::ApiFormat;
use starling_bench::report;
use starling_bench::scale::ScaleOptions;
use starling_bench::scenarios::{
    self, BenchPlan, BenchReport, Environment, RunSettings, ScalePlan,
};
use starling_bench::targets::{MockSettings, PeerCommand, TargetKind};

/// Benchmarks Starling against direct traffic to the same mock upstream, and against peers.
///
/// Every run starts `starling-mock` (the upstream), measures it directly (the baseline), then
/// starts each target in turn, measures it with the same load, and stops it. The load is
/// open-loop: requests are due at a fixed rate whether or not earlier ones completed, and
/// latency counts from when each was due, so queueing shows (no coordinated omission).
///
/// Scenarios:
///
/// * rates: each target at each rate of `--rates` (default 1k, 2k, 5k, 10k req/s), in each
///   `--format` and `--mode`, until it saturates (achieves under 90 % of the offered rate or
///   fails over 1 % of requests). Reports achieved rate, p50/p90/p99/p99.9, what each adds to
///   direct at every percentile, errors, CPU-µs per request (the target's CPU time over the run
///   from /proc, divided by the requests it completed), peak RSS; for streams also time to
///   first token and the gaps between tokens, and what the target adds to both.
///
/// * max: the highest rate each gateway target keeps up with at p99 under `--max-p99-ms`
///   (doubling from the first rate, then bisecting).
///
/// * memory: a governed node's RSS with `--memory-keys` virtual keys created through the admin
///   API (default 10k, 100k).
///
/// * scale: in-process cluster nodes on loopback with production intervals. For each of
///   `--scale-sizes` nodes: membership formation, the time a write takes to be visible on every
///   node, the time a burst of writes takes until all digests agree, and sync bandwidth per
///   node idle and under steady writes. Then idle bandwidth against `--scale-keys` catalog
///   entries held, and bandwidth against `--scale-rates` counter updates per second, on
///   `--scale-nodes` nodes.
///
/// Targets (`--targets`): starling (one node, governance off), starling-governed (one node,
/// virtual key with budget and rate limits, metrics), starling-cluster3 (three governed nodes,
/// round-robin). `--peer litellm` adds LiteLLM's proxy (pip-installed into a venv once);
/// `--peer-command NAME='CMD'` adds any gateway: `{port}` in CMD is where it must listen,
/// `{upstream}` the mock's URL and `{config}` the file `--peer-config NAME=FILE` gives, written
/// out with the same placeholders filled in. The load presents `sk-bench-client` as its key.
///
/// Outputs in `--out`: results.json, results.md (the tables), latency-*.png (latency against
/// rate per target), convergence-vs-size.png.
#[derive(Parser, Debug)]
#[command(name = "starling-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the benchmark.
    Run(Box<RunArgs>),
    /// A few seconds of every scenario at tiny sizes, to check the harness works (the test
    /// suite runs it). Measures nothing worth quoting.
    Smoke {
        /// Where the outputs go.
        #[arg(long, default_value = "target/bench/smoke")]
        out: PathBuf,
        /// Directory holding `starling` and `starling-mock` (default: beside this binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Scenarios: rates, max, memory, scale (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "rates,max,memory,scale")]
    scenario: Vec<String>,
    /// Gateway targets, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "starling,starling-governed,starling-cluster3"
    )]
    targets: Vec<String>,
    /// Peers: `litellm`.
    #[arg(long, value_delimiter = ',')]
    peer: Vec<String>,
    /// Another gateway as NAME=COMMAND (repeatable).
    #[arg(long)]
    peer_command: Vec<String>,
    /// A config template for a `--peer-command` gateway, as NAME=FILE (repeatable).
    #[arg(long)]
    peer_config: Vec<String>,
    /// Offered rates, requests per second.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,10000")]
    rates: Vec<f64>,
    /// Client APIs.
    #[arg(long, value_delimiter = ',', default_value = "openai")]
    format: Vec<ApiFormat>,
    /// Modes: plain (non-streaming), stream.
    #[arg(long, value_delimiter = ',', default_value = "plain,stream")]
    mode: Vec<String>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds per run (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Load generator connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// p99 bound of the max scenario, ms.
    #[arg(long, default_value_t = 10.0)]
    max_p99_ms: f64,
    /// Key counts of the memory scenario.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    memory_keys: Vec<usize>,
    /// Cluster sizes of the scale scenario.
    #[arg(long, value_delimiter = ',', default_value = "3,5,10,25,50")]
    scale_sizes: Vec<usize>,
    /// Idle catalog entries of the scale scenario.
    #[arg(long, value_delimiter = ',', default_value = "0,1000,10000,100000")]
    scale_keys: Vec<usize>,
    /// Counter updates per second of the scale scenario.
    #[arg(long, value_delimiter = ',', default_value = "0,10,100,1000,10000")]
    scale_rates: Vec<u64>,
    /// Cluster size for the idle-keys and update-rate measurements.
    #[arg(long, default_value_t = 3)]
    scale_nodes: usize,
    /// Seconds of each bandwidth window of the scale scenario.
    #[arg(long, default_value_t = 10.0)]
    scale_window: f64,
    /// Reply length, tokens.
    #[arg(long, default_value_t = 16)]
    output_tokens: u32,
    /// Mock delay between streamed tokens, ms.
    #[arg(long, default_value_t = 1)]
    inter_token_ms: u64,
    /// `governance.usage_durability` of the governed targets: acknowledged (a response waits
    /// until its usage is on disk) or batched.
    #[arg(long, default_value = "acknowledged")]
    usage_durability: String,
    /// Pin the load generator to the last CPU and everything else to the others.
    #[arg(long)]
    pin: bool,
    /// Where the outputs go.
    #[arg(long, default_value = "target/bench/run")]
    out: PathBuf,
    /// Directory holding `starling` and `starling-mock` (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// LiteLLM's venv.
    #[arg(long, default_value = "target/bench/litellm-venv")]
    litellm_venv: PathBuf,
}

fn main() -> anyhow::Result<()> {
    // reqwest is built without a TLS provider of its own; the workspace uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let (plan, out, pin) = match cli.command {
        Command::Run(args) => {
            let pin = args.pin;
            let out = args.out.clone();
            (plan_from(*args)?, out, pin)
        }
        Command::Smoke { out, bin_dir } => (smoke_plan(&out, bin_dir)?, out, false),
    };
    let loadgen_cpu = pin.then(last_cpu).flatten();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(cpu) = loadgen_cpu {
        builder.on_thread_start(move || {
            core_affinity::set_for_current(cpu);
        });
    }
    let runtime = builder.build().context("starting the runtime")?;
    let started = utc_now();
    let mut report = BenchReport {
        environment: Environment::read(command_line, started, plan.settings.clone()),
        ..BenchReport::default()
    };
    // On Ctrl-C or SIGTERM the run is dropped, and with it every process it started.
    let result = runtime.block_on(async {
        tokio::select! {
            r = scenarios::run(&plan, &mut report) => r.context("bench run"),
            s = interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
        }
    });
    // Whatever was measured is written, also when a later scenario failed.
    let files = report::write(&report, &out).context("writing the report")?;
    result?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM; names the one that came.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        },
        // Without a SIGTERM handler, Ctrl-C still stops the run cleanly.
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

fn plan_from(args: RunArgs) -> anyhow::Result<BenchPlan> {
    let mut targets = Vec::new();
    for t in &args.targets {
        targets.push(match t.as_str() {
            "starling" => TargetKind::Starling,
            "starling-governed" => TargetKind::StarlingGoverned,
            "starling-cluster3" => TargetKind::StarlingCluster3,
            "" => continue,
            other => bail!(
                "unknown target {other:?}: expected starling, starling-governed or starling-cluster3"
            ),
        });
    }
    for p in &args.peer {
        match p.as_str() {
            "litellm" => targets.push(TargetKind::Litellm),
            other => bail!("unknown peer {other:?}: expected litellm (or use --peer-command)"),
        }
    }
    let mut commands: Vec<PeerCommand> = Vec::new();
    for c in &args.peer_command {
        let (name, line) = c
            .split_once('=')
            .with_context(|| format!("--peer-command {c:?}: expected NAME=COMMAND"))?;
        commands.push(PeerCommand {
            name: name.trim().to_owned(),
            command: line.to_owned(),
            config: None,
        });
    }
    for c in &args.peer_config {
        let (name, file) = c
            .split_once('=')
            .with_context(|| format!("--peer-config {c:?}: expected NAME=FILE"))?;
        let peer = commands
            .iter_mut()
            .find(|p| p.name == name.trim())
            .with_context(|| format!("--peer-config {c:?}: no --peer-command named {name:?}"))?;
        peer.config = Some(PathBuf::from(file));
    }
    let mut streams = Vec::new();
    for m in &args.mode {
        streams.push(match m.as_str() {
            "plain" => false,
            "stream" => true,
            other => bail!("unknown mode {other:?}: expected plain or stream"),
        });
    }
    let scenario = |s: &str| args.scenario.iter().any(|x| x == s);
    for s in &args.scenario {
        if !["rates", "max", "memory", "scale"].contains(&s.as_str()) {
            bail!("unknown scenario {s:?}: expected rates, max, memory or scale");
        }
    }
    if args.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        bail!("--rates must be positive numbers");
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0 && args.scale_window > 0.0) {
        bail!("--duration and --scale-window must be positive and --warmup not negative");
    }
    if args.scale_nodes == 0 || args.scale_sizes.contains(&0) {
        bail!("cluster sizes must be at least 1");
    }
    let work = args.out.join("work");
    Ok(BenchPlan {
        targets,
        commands,
        rates: if scenario("rates") {
            args.rates.clone()
        } else {
            Vec::new()
        },
        formats: args.format.clone(),
        streams,
        max_p99_us: scenario("max").then_some((args.max_p99_ms * 1000.0) as u64),
        memory_keys: if scenario("memory") {
            args.memory_keys.clone()
        } else {
            Vec::new()
        },
        settings: RunSettings {
            warmup: Duration::from_secs_f64(args.warmup),
            duration: Duration::from_secs_f64(args.duration),
            connections: args.connections,
            drain: Duration::from_secs(5),
            max_tokens: 64,
        },
        mock: MockSettings {
            output_tokens: args.output_tokens,
            ttft_ms: 0,
            inter_token_ms: args.inter_token_ms,
        },
        bin_dir: bin_dir(args.bin_dir)?,
        work,
        litellm_venv: args.litellm_venv,
        target_cpus: args.pin.then(other_cpus).flatten(),
        usage_durability: match args.usage_durability.as_str() {
            d @ ("acknowledged" | "batched") => d.to_owned(),
            other => bail!("--usage-durability {other:?}: expected acknowledged or batched"),
        },
        scale: scenario("scale").then(|| ScalePlan {
            sizes: args.scale_sizes.clone(),
            idle_keys: args.scale_keys.clone(),
            update_rates: args.scale_rates.clone(),
            nodes: args.scale_nodes,
            options: ScaleOptions {
                window: Duration::from_secs_f64(args.scale_window),
                ..ScaleOptions::default()
            },
        }),
    })
}

fn smoke_plan(out: &std::path::Path, bin_dir_arg: Option<PathBuf>) -> anyhow::Result<BenchPlan> {
    Ok(BenchPlan {
        targets: vec![
            TargetKind::Starling,
            TargetKind::StarlingGoverned,
            TargetKind::StarlingCluster3,
        ],
        commands: Vec::new(),
        rates: vec![100.0],
        formats: vec![ApiFormat::Openai, ApiFormat::Anthropic],
        streams: vec![false, true],
        // A bound nothing meets: the search runs its first step and finds no rate.
        max_p99_us: Some(1),
        memory_keys: vec![50],
        settings: RunSettings {
            warmup: Duration::from_millis(200),
            duration: Duration::from_millis(500),
            connections: 4,
            drain: Duration::from_secs(5),
            max_tokens: 16,
        },
        mock: MockSettings {
            output_tokens: 4,
            ttft_ms: 0,
            inter_token_ms: 1,
        },
        bin_dir: bin_dir(bin_dir_arg)?,
        work: out.join("work"),
        litellm_venv: PathBuf::new(),
        target_cpus: None,
        usage_durability: "acknowledged".into(),
        scale: Some(ScalePlan {
            sizes: vec![3],
            idle_keys: vec![0, 100],
            update_rates: vec![0, 50],
            nodes: 3,
            options: ScaleOptions {
                visibility_writes: 5,
                burst_writes: 10,
                window: Duration::from_millis(500),
                warmup: Duration::from_millis(100),
                load_batch: 50,
                counter_keys: 5,
                ..ScaleOptions::default()
            },
        }),
    })
}

/// Where `starling` and `starling-mock` are: given, or beside this binary.
fn bin_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(d) => d,
        None => std::env::current_exe()
            .context("locating this binary")?
            .parent()
            .context("this binary has no directory")?
            .to_owned(),
    };
    for bin in ["starling", "starling-mock"] {
        if !dir.join(bin).is_file() {
            bail!(
                "{} not found in {}: build the workspace binaries first (cargo build --release --workspace --bins) or pass --bin-dir",
                bin,
                dir.display()
            );
        }
    }
    Ok(dir)
}

fn last_cpu() -> Option<core_affinity::CoreId> {
    core_affinity::get_core_ids()?.pop()
}

/// Every CPU but the last, in `taskset -c` syntax (none on a one-CPU machine).
fn other_cpus() -> Option<String> {
    let ids = core_affinity::get_core_ids()?;
    let others: Vec<String> = ids[..ids.len().saturating_sub(1)]
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    (!others.is_empty()).then(|| others.join(","))
}

/// Now as RFC 3339 UTC.
fn utc_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}
