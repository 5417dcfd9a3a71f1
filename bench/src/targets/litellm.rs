//! LiteLLM's proxy as a peer target: installed from PyPI into a venv the harness keeps, and
//! configured with the same models against the same mock as Starling.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{CLIENT_KEY, Target, TargetError, TargetKind, accepting, free_port, write_file};
use crate::load::ApiFormat;
use crate::procs::{self, Proc};

/// The version measured, pinned so that reruns compare like with like: the newest whose
/// `[proxy]` extra resolves from the package index (later ones pin `litellm-proxy` or
/// `litellm-proxy-extras` releases that were never published there).
pub const LITELLM_VERSION: &str = "1.108.0";

/// How to install and start LiteLLM.
#[derive(Clone, Debug)]
pub struct LitellmSetup {
    /// The venv (created, and LiteLLM installed, if missing).
    pub venv: PathBuf,
    /// Where its config and log go.
    pub work: PathBuf,
    /// CPUs to pin it to.
    pub cpus: Option<String>,
    /// Proxy worker processes (LiteLLM's `--num_workers`).
    pub workers: u32,
}

impl LitellmSetup {
    /// Installs LiteLLM if needed, starts the proxy in front of `mock` and waits until it
    /// accepts connections.
    pub fn start(&self, mock: SocketAddr) -> Result<Target, TargetError> {
        self.install()?;
        let config = write_file(&self.work, "litellm.yaml", &config(mock))?;
        let port = free_port()?;
        let mut cmd = procs::command(self.venv.join("bin/litellm"), self.cpus.as_deref());
        cmd.arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--num_workers", &self.workers.to_string()])
            // No network here: use the bundled model price map, send no telemetry.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .env("LITELLM_LOG", "ERROR");
        let mut proc = Proc::spawn("litellm", &mut cmd, &self.work.join("litellm.log"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        proc.wait_ready(Duration::from_secs(180), || accepting(addr).then_some(()))?;
        Ok(Target {
            kind: TargetKind::Litellm,
            addrs: vec![addr],
            base_path: String::new(),
            api_key: CLIENT_KEY.to_owned(),
            procs: vec![proc],
        })
    }

    fn install(&self) -> Result<(), TargetError> {
        let litellm = self.venv.join("bin/litellm");
        if litellm.exists() {
            return Ok(());
        }
        eprintln!(
            "installing litellm[proxy]=={LITELLM_VERSION} into {} (once)",
            self.venv.display()
        );
        run(Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&self.venv))?;
        run(Command::new(self.venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("litellm[proxy]=={LITELLM_VERSION}")))?;
        if !litellm.exists() {
            return Err(setup_error(format!(
                "{} missing after install",
                path(&litellm)
            )));
        }
        Ok(())
    }
}

fn run(cmd: &mut Command) -> Result<(), TargetError> {
    let status = cmd
        .status()
        .map_err(|e| setup_error(format!("{cmd:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(setup_error(format!("{cmd:?} exited with {status}")))
    }
}

fn setup_error(detail: String) -> TargetError {
    TargetError::Setup {
        target: "litellm".into(),
        detail,
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The same two models Starling serves, pointed at the mock.
fn config(mock: SocketAddr) -> String {
    let openai = ApiFormat::Openai.model();
    let anthropic = ApiFormat::Anthropic.model();
    format!(
        "model_list:\n\
         \x20 - model_name: {openai}\n\
         \x20   litellm_params:\n\
         \x20     model: openai/{openai}\n\
         \x20     api_base: http://{mock}/v1\n\
         \x20     api_key: sk-bench-upstream\n\
         \x20 - model_name: {anthropic}\n\
         \x20   litellm_params:\n\
         \x20     model: anthropic/{anthropic}\n\
         \x20     api_base: http://{mock}\n\
         \x20     api_key: sk-bench-upstream\n\
         general_settings:\n\
         \x20 master_key: {CLIENT_KEY}\n\
         litellm_settings:\n\
         \x20 telemetry: false\n"
    )
}
