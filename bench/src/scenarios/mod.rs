//! The benchmark scenarios, and the run that strings them together against one mock.

pub mod memory;
pub mod rates;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::load::{ApiFormat, LoadError};
use crate::scale::{self, IdleKeysResult, ScaleError, ScaleOptions, SizeResult, UpdateRateResult};
use crate::targets::{
    self, Governance, LitellmSetup, MockSettings, PeerCommand, StarlingSetup, Target, TargetError,
    TargetKind,
};
use memory::MemoryRow;
use rates::RateRow;

/// Errors that end a bench run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A target could not be started or watched.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The load could not run.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Loading keys for the memory scenario failed.
    #[error("memory scenario: {0}")]
    Memory(String),
    /// A cluster-scale scenario failed.
    #[error("cluster-scale scenario: {0}")]
    Scale(#[from] ScaleError),
}

/// The cluster-scale scenarios of a run.
#[derive(Clone, Debug)]
pub struct ScalePlan {
    /// Cluster sizes for convergence and bandwidth against size.
    pub sizes: Vec<usize>,
    /// Catalog entries for idle bandwidth against keys.
    pub idle_keys: Vec<usize>,
    /// Counter updates per second for bandwidth against the rate of change.
    pub update_rates: Vec<u64>,
    /// Cluster size of the last two.
    pub nodes: usize,
    /// Windows, sample counts, deadlines.
    pub options: ScaleOptions,
}

/// Settings shared by every load run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSettings {
    /// Unmeasured lead-in of each run.
    pub warmup: Duration,
    /// Measured length of each run.
    pub duration: Duration,
    /// Keep-alive connections of the load generator.
    pub connections: usize,
    /// Straggler allowance after the last request is due.
    pub drain: Duration,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
}

/// Which scenarios to run and against what.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    /// The targets of the rate ladder, in order (`direct` is always measured first).
    pub targets: Vec<TargetKind>,
    /// Operator-supplied gateways.
    pub commands: Vec<PeerCommand>,
    /// The rate ladder, requests per second.
    pub rates: Vec<f64>,
    /// Client APIs to run the ladder in.
    pub formats: Vec<ApiFormat>,
    /// Non-streaming, streaming, or both.
    pub streams: Vec<bool>,
    /// Search each Starling target's highest rate with p99 under this, µs (`None`: skip).
    pub max_p99_us: Option<u64>,
    /// Key counts for the memory scenario (empty: skip).
    pub memory_keys: Vec<usize>,
    /// Per-run load settings.
    pub settings: RunSettings,
    /// How the mock answers.
    pub mock: MockSettings,
    /// Where `starling` and `starling-mock` are.
    pub bin_dir: PathBuf,
    /// Work dir for configs, data dirs and logs.
    pub work: PathBuf,
    /// LiteLLM's venv.
    pub litellm_venv: PathBuf,
    /// CPUs for the mock and the targets (`taskset -c` syntax), when pinning.
    pub target_cpus: Option<String>,
    /// `governance.usage_durability` of the governed targets.
    pub usage_durability: String,
    /// The cluster-scale scenarios (`None`: skip).
    pub scale: Option<ScalePlan>,
}

/// Everything a bench run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchReport {
    /// The machine and the settings, for the record.
    pub environment: Environment,
    /// The rate ladder, every target, rate and mode.
    pub rates: Vec<RateRow>,
    /// The highest rate each target sustained with p99 under the bound.
    pub max_sustainable: Vec<RateRow>,
    /// The p99 bound of `max_sustainable`, µs.
    pub max_p99_us: Option<u64>,
    /// Memory against keys loaded.
    pub memory: Vec<MemoryRow>,
    /// What each target costs with no traffic, measured before its load.
    pub idle: Vec<IdleRow>,
    /// Cluster scale: formation, write visibility, burst convergence and bandwidth per size.
    pub convergence: Vec<SizeResult>,
    /// Idle sync bandwidth against catalog entries held.
    pub idle_keys: Vec<IdleKeysResult>,
    /// Sync bandwidth against counter updates per second.
    pub update_rates: Vec<UpdateRateResult>,
}

impl BenchReport {
    /// The (format, streaming) modes of the rate rows, in the order first measured.
    pub fn modes(&self) -> Vec<(ApiFormat, bool)> {
        let mut modes = Vec::new();
        for r in &self.rates {
            if !modes.contains(&(r.format, r.stream)) {
                modes.push((r.format, r.stream));
            }
        }
        modes
    }
}

/// A target's cost with no traffic: what its background work (timers, gossip, replication)
/// takes, and part of every CPU-per-request figure at low rates.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleRow {
    /// Which target.
    pub target: String,
    /// CPU time per second of wall time, ms (summed over a cluster's nodes).
    pub cpu_ms_per_s: f64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
}

/// How long a target's idle cost is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(3);

/// Measures `target` over [`IDLE_WINDOW`] with no traffic.
async fn idle(target: &Target) -> Result<IdleRow, ScenarioError> {
    let before = target.usage().map_err(TargetError::from)?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let after = target.usage().map_err(TargetError::from)?;
    Ok(IdleRow {
        target: target.kind.label(),
        cpu_ms_per_s: (after.cpu_us - before.cpu_us) as f64 / 1000.0 / IDLE_WINDOW.as_secs_f64(),
        rss_bytes: after.rss_bytes,
    })
}

/// What the run ran on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Environment {
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Total memory, bytes.
    pub memory_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// The command line of the run.
    pub command: String,
    /// When it started (RFC 3339, UTC).
    pub started: String,
    /// Load settings.
    pub settings: Option<RunSettings>,
}

impl Environment {
    /// Reads the machine's figures.
    pub fn read(command: String, started: String, settings: RunSettings) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.trim().trim_end_matches(" kB").parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        Self {
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            command,
            started,
            settings: Some(settings),
        }
    }
}

/// Runs the plan: the mock, then each target in turn (started, measured, stopped), then the
/// cluster-scale scenarios.
pub async fn run(plan: &BenchPlan, report: &mut BenchReport) -> Result<(), ScenarioError> {
    if !plan.rates.is_empty() || plan.max_p99_us.is_some() || !plan.memory_keys.is_empty() {
        run_targets(plan, report).await?;
    }
    if let Some(s) = &plan.scale {
        report.convergence = scale::convergence_vs_size(&s.sizes, &s.options).await?;
        report.idle_keys = scale::bandwidth_vs_idle_keys(&s.idle_keys, s.nodes, &s.options).await?;
        report.update_rates =
            scale::bandwidth_vs_update_rate(&s.update_rates, s.nodes, &s.options).await?;
    }
    Ok(())
}

/// The mock and the gateway targets.
async fn run_targets(plan: &BenchPlan, report: &mut BenchReport) -> Result<(), ScenarioError> {
    std::fs::create_dir_all(&plan.work).map_err(|source| TargetError::Io {
        path: plan.work.clone(),
        source,
    })?;
    // The baseline: the mock itself. Its process serves every other target too and stops last.
    let direct = targets::start_mock(
        &plan.bin_dir,
        &plan.work,
        &plan.mock,
        plan.target_cpus.as_deref(),
    )?;
    let starling = StarlingSetup {
        binary: plan.bin_dir.join("starling"),
        work: plan.work.clone(),
        cpus: plan.target_cpus.clone(),
        usage_durability: plan.usage_durability.clone(),
        governance_extra: String::new(),
        extra_config: String::new(),
    };
    report.max_p99_us = plan.max_p99_us;

    let mock_addr = direct.addrs[0];
    report.idle.push(idle(&direct).await?);
    let baseline = ladder_all(&direct, plan).await?;
    report.rates.extend(baseline.iter().cloned());

    let mut kinds = plan.targets.clone();
    kinds.extend(
        plan.commands
            .iter()
            .map(|peer| TargetKind::Command(peer.name.clone())),
    );
    for kind in &kinds {
        let target = match kind {
            TargetKind::Direct => continue,
            TargetKind::Starling => starling.start(mock_addr, Governance::Off, 1).await?,
            TargetKind::StarlingGoverned => starling.start(mock_addr, Governance::On, 1).await?,
            TargetKind::StarlingCluster3 => starling.start(mock_addr, Governance::On, 3).await?,
            TargetKind::Litellm => {
                let setup = LitellmSetup {
                    venv: plan.litellm_venv.clone(),
                    work: plan.work.clone(),
                    cpus: plan.target_cpus.clone(),
                    workers: 1,
                };
                tokio::task::block_in_place(|| setup.start(mock_addr))?
            }
            TargetKind::Command(name) => {
                let Some(peer) = plan.commands.iter().find(|p| &p.name == name) else {
                    continue;
                };
                tokio::task::block_in_place(|| {
                    targets::start_command(peer, mock_addr, &plan.work, plan.target_cpus.as_deref())
                })?
            }
        };
        report.idle.push(idle(&target).await?);
        let mut rows = ladder_all(&target, plan).await?;
        for row in &mut rows {
            if let Some(base) = baseline.iter().find(|b| {
                b.format == row.format
                    && b.stream == row.stream
                    && b.load.offered_rps == row.load.offered_rps
            }) {
                row.compare_with(base);
            }
        }
        report.rates.extend(rows);
        if let Some(bound) = plan.max_p99_us {
            let start = plan.rates.first().copied().unwrap_or(1000.0);
            if let Some(row) =
                rates::max_sustainable(&target, &plan.settings, ApiFormat::Openai, start, bound, 4)
                    .await?
            {
                report.max_sustainable.push(row);
            }
        }
        if *kind == TargetKind::StarlingGoverned && !plan.memory_keys.is_empty() {
            report.memory = memory::keys_ladder(&target, &plan.memory_keys).await?;
        }
        stop(target);
    }
    stop(direct);
    Ok(())
}

/// The ladder in every format and mode of the plan.
async fn ladder_all(target: &Target, plan: &BenchPlan) -> Result<Vec<RateRow>, ScenarioError> {
    let mut rows = Vec::new();
    for &format in &plan.formats {
        for &stream in &plan.streams {
            rows.extend(rates::ladder(target, &plan.settings, format, stream, &plan.rates).await?);
        }
    }
    Ok(rows)
}

/// Stops a target's processes (SIGTERM, then SIGKILL after a grace period).
fn stop(target: Target) {
    for proc in target.procs {
        proc.stop(Duration::from_secs(10));
    }
}
