//! The benchmark scenarios, and the run that strings them together against one mock.

pub mod memory;
pub mod rates;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::load::{ApiFormat, LoadError};
use crate::targets::{
    self, Governance, LitellmSetup, MockSettings, StarlingSetup, Target, TargetError, TargetKind,
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
    /// Operator-supplied gateways: (name, command line).
    pub commands: Vec<(String, String)>,
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
}

/// Everything a bench run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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

/// Runs the plan: the mock, then each target in turn (started, measured, stopped).
pub async fn run(plan: &BenchPlan, report: &mut BenchReport) -> Result<(), ScenarioError> {
    std::fs::create_dir_all(&plan.work).map_err(|source| TargetError::Io {
        path: plan.work.clone(),
        source,
    })?;
    let mock = targets::start_mock(
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
    };
    report.max_p99_us = plan.max_p99_us;

    // The baseline: the mock itself, whose CPU is what the upstream costs. It owns the mock's
    // process, which serves every other target too and stops last.
    let mock_addr = mock.addr;
    let direct = Target {
        kind: TargetKind::Direct,
        addrs: vec![mock_addr],
        base_path: String::new(),
        api_key: targets::CLIENT_KEY.to_owned(),
        procs: vec![mock.proc],
    };
    let baseline = ladder_all(&direct, plan).await?;
    report.rates.extend(baseline.iter().cloned());

    let mut kinds = plan.targets.clone();
    kinds.extend(
        plan.commands
            .iter()
            .map(|(name, _)| TargetKind::Command(name.clone())),
    );
    for kind in kinds.iter().filter(|k| **k != TargetKind::Direct) {
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
                let line = plan
                    .commands
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, l)| l.as_str())
                    .unwrap_or_default();
                tokio::task::block_in_place(|| {
                    targets::start_command(
                        name,
                        line,
                        mock_addr,
                        &plan.work,
                        plan.target_cpus.as_deref(),
                    )
                })?
            }
        };
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
