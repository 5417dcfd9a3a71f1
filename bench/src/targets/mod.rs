//! What the benchmark measures: the mock upstream itself (the baseline) and the gateways in
//! front of it, each started as its own process against the same mock.

mod litellm;
mod starling;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::load::{ApiFormat, Endpoint, RequestTemplate};
use crate::procs::{self, Proc, ProcError, Usage, read_ready_file, total_usage};

pub use litellm::LitellmSetup;
pub use starling::{ADMIN_TOKEN, Governance, StarlingSetup};

/// The key every target accepts from the load generator when it does not mint its own.
pub const CLIENT_KEY: &str = "sk-bench-client";

/// Errors from setting a target up.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A process failed.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// A file in the work dir could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The target started but could not be prepared (keys, readiness).
    #[error("{target}: {detail}")]
    Setup {
        /// Which target.
        target: String,
        /// What went wrong.
        detail: String,
    },
}

/// Which target, as named on the command line and in reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// The mock, straight: what every other target is compared with.
    Direct,
    /// One Starling node with governance off (static client key, no cluster).
    Starling,
    /// One Starling node with governance on: a virtual key with a budget and rate limits, and
    /// the cluster runtime with its durable log.
    StarlingGoverned,
    /// Three governed Starling nodes on loopback, requests spread round-robin.
    StarlingCluster3,
    /// LiteLLM's proxy from PyPI, in a venv the harness makes.
    Litellm,
    /// Another gateway started from a command line (`--peer-command`).
    Command(String),
}

impl TargetKind {
    /// The name in reports.
    pub fn label(&self) -> String {
        match self {
            TargetKind::Direct => "direct".into(),
            TargetKind::Starling => "starling".into(),
            TargetKind::StarlingGoverned => "starling-governed".into(),
            TargetKind::StarlingCluster3 => "starling-cluster3".into(),
            TargetKind::Litellm => "litellm".into(),
            TargetKind::Command(name) => name.clone(),
        }
    }
}

/// A running target: where to send requests, and the processes whose CPU and memory count.
pub struct Target {
    /// Which one.
    pub kind: TargetKind,
    /// Where requests go (several for a cluster).
    pub addrs: Vec<SocketAddr>,
    /// The base path of the API at those addresses.
    pub base_path: String,
    /// The key the load generator presents.
    pub api_key: String,
    /// The gateway's processes (empty for the direct baseline, whose cost is the mock's).
    pub procs: Vec<Proc>,
}

impl Target {
    /// One endpoint per address, each with its own request template.
    pub fn endpoints(
        &self,
        format: ApiFormat,
        stream: bool,
        max_tokens: u32,
    ) -> Result<Vec<Endpoint>, TargetError> {
        self.addrs
            .iter()
            .map(|addr| {
                let template = RequestTemplate::new(
                    format,
                    &addr.to_string(),
                    &self.base_path,
                    Some(&self.api_key),
                    stream,
                    max_tokens,
                )
                .map_err(|e| TargetError::Setup {
                    target: self.kind.label(),
                    detail: format!("request headers: {e}"),
                })?;
                Ok(Endpoint {
                    addr: *addr,
                    template,
                })
            })
            .collect()
    }

    /// CPU and memory of the target's processes now.
    pub fn usage(&self) -> Result<Usage, ProcError> {
        total_usage(&self.procs)
    }
}

/// How the mock answers.
#[derive(Clone, Debug)]
pub struct MockSettings {
    /// Reply length, tokens.
    pub output_tokens: u32,
    /// Delay before the first streamed token, ms.
    pub ttft_ms: u64,
    /// Delay between streamed tokens, ms.
    pub inter_token_ms: u64,
}

/// Starts `starling-mock` from `bin_dir`, with its log and ready file in `work`, as the
/// baseline target: its CPU is what the upstream costs.
pub fn start_mock(
    bin_dir: &Path,
    work: &Path,
    settings: &MockSettings,
    cpus: Option<&str>,
) -> Result<Target, TargetError> {
    let ready = work.join("mock.ready");
    let _ = std::fs::remove_file(&ready);
    let mut cmd = procs::command(bin_dir.join("starling-mock"), cpus);
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--ready-file")
        .arg(&ready)
        .arg("--output-tokens")
        .arg(settings.output_tokens.to_string())
        .arg("--ttft-ms")
        .arg(settings.ttft_ms.to_string())
        .arg("--inter-token-ms")
        .arg(settings.inter_token_ms.to_string())
        // The ledger is the ground truth in tests; here it would only grow. Its summary
        // totals stay exact.
        .arg("--ledger-limit")
        .arg("1000")
        .env("RUST_LOG", "warn");
    let mut proc = Proc::spawn("mock", &mut cmd, &work.join("mock.log"))?;
    let addr = proc.wait_ready(Duration::from_secs(30), || ready_addr(&ready, "http"))?;
    Ok(Target {
        kind: TargetKind::Direct,
        addrs: vec![addr],
        base_path: String::new(),
        api_key: CLIENT_KEY.to_owned(),
        procs: vec![proc],
    })
}

/// The address under `field` in a ready file, once it is there.
pub(crate) fn ready_addr(path: &Path, field: &str) -> Option<SocketAddr> {
    read_ready_file(path)?.get(field)?.as_str()?.parse().ok()
}

/// Writes `contents` to `work/name`.
pub(crate) fn write_file(work: &Path, name: &str, contents: &str) -> Result<PathBuf, TargetError> {
    let path = work.join(name);
    std::fs::write(&path, contents).map_err(|source| TargetError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// A free loopback port, for programs that cannot report the port they bound. The port is
/// released before the program binds it, so another process could take it in between; the
/// program then fails to start, loudly.
pub(crate) fn free_port() -> Result<u16, TargetError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|a| a.port())
        .map_err(|source| TargetError::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })
}

/// How many members a node's `GET /admin/v1/cluster` answer lists as live (0 for an answer
/// without a member list).
pub fn live_members(cluster_status: &serde_json::Value) -> usize {
    cluster_status["members"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["live"] == true).count())
}

/// Whether something accepts TCP connections at `addr`.
pub(crate) fn accepting(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Another gateway to measure, as the operator describes it.
#[derive(Clone, Debug)]
pub struct PeerCommand {
    /// Its name in reports.
    pub name: String,
    /// The command line, run by `sh -c`. `{port}` is replaced by the loopback port it must
    /// listen on, `{upstream}` by the mock's `http://host:port`, and `{config}` by the path of
    /// its config file.
    pub command: String,
    /// A config file template, with the same placeholders (`{port}`, `{upstream}`), written
    /// out for the run.
    pub config: Option<PathBuf>,
}

/// Starts a gateway from an operator's command line (and config template), in front of
/// `mock`; it is ready once its port accepts connections. The load uses [`CLIENT_KEY`].
pub fn start_command(
    peer: &PeerCommand,
    mock: SocketAddr,
    work: &Path,
    cpus: Option<&str>,
) -> Result<Target, TargetError> {
    let port = free_port()?;
    let fill = |text: &str| {
        text.replace("{port}", &port.to_string())
            .replace("{upstream}", &format!("http://{mock}"))
    };
    let mut line = fill(&peer.command);
    if let Some(template) = &peer.config {
        let text = std::fs::read_to_string(template).map_err(|source| TargetError::Io {
            path: template.clone(),
            source,
        })?;
        let file_name = template
            .file_name()
            .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
        let config = write_file(work, &format!("{}-{file_name}", peer.name), &fill(&text))?;
        line = line.replace("{config}", &config.display().to_string());
    }
    let mut cmd = procs::command("sh", cpus);
    cmd.arg("-c").arg(format!("exec {line}"));
    let log = work.join(format!("{}.log", peer.name));
    let mut proc = Proc::spawn(&peer.name, &mut cmd, &log)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    proc.wait_ready(Duration::from_secs(120), || accepting(addr).then_some(()))?;
    Ok(Target {
        kind: TargetKind::Command(peer.name.clone()),
        addrs: vec![addr],
        base_path: String::new(),
        api_key: CLIENT_KEY.to_owned(),
        procs: vec![proc],
    })
}
