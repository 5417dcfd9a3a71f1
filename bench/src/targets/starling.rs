//! Starling as a target: one node with governance off, one with governance on, or a governed
//! cluster on loopback; every node a `starling` process from the bench's binary dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{CLIENT_KEY, Target, TargetError, TargetKind, live_members, ready_addr, write_file};
use crate::procs::{self, Proc};

/// The admin token the bench gives its nodes.
pub const ADMIN_TOKEN: &str = "bench-admin-token";

/// Whether virtual keys, budgets and rate limits are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Governance {
    /// A static client key, no cluster runtime.
    Off,
    /// A virtual key with a strict budget, RPM and TPM limits (set far above the load, so
    /// every check runs and none refuses).
    On,
}

/// How to start Starling targets.
#[derive(Clone, Debug)]
pub struct StarlingSetup {
    /// The `starling` binary.
    pub binary: PathBuf,
    /// Where configs, data dirs and logs go.
    pub work: PathBuf,
    /// CPUs to pin the nodes to (`taskset -c` syntax).
    pub cpus: Option<String>,
    /// `governance.usage_durability` of governed nodes (`acknowledged`, the default, waits
    /// for each response's usage to be on disk; `batched` does not).
    pub usage_durability: String,
    /// More lines for the `[governance]` table of governed nodes, e.g.
    /// `per_key_metrics = true` (empty for none).
    pub governance_extra: String,
    /// TOML tables appended to every node's config, e.g. `[[models]]` entries (empty for none).
    pub extra_config: String,
}

impl StarlingSetup {
    /// Starts `nodes` nodes (1 with governance off), waits until they are ready, members of one
    /// cluster, and (with governance) until a virtual key works on every node.
    pub async fn start(
        &self,
        mock: SocketAddr,
        governance: Governance,
        nodes: usize,
    ) -> Result<Target, TargetError> {
        let kind = match (governance, nodes) {
            (Governance::Off, _) => TargetKind::Starling,
            (Governance::On, 1) => TargetKind::StarlingGoverned,
            (Governance::On, _) => TargetKind::StarlingCluster3,
        };
        let dir = self.work.join(kind.label());
        std::fs::create_dir_all(&dir).map_err(|source| TargetError::Io {
            path: dir.clone(),
            source,
        })?;
        let provider_key = write_file(&dir, "provider.key", "sk-bench-upstream\n")?;
        let config = write_file(
            &dir,
            "starling.toml",
            &(config(
                mock,
                &provider_key,
                governance,
                &self.usage_durability,
                &self.governance_extra,
            ) + &self.extra_config),
        )?;
        let secret = match governance {
            Governance::On => Some(self.keygen()?),
            Governance::Off => None,
        };

        let mut procs = Vec::new();
        let mut addrs = Vec::new();
        let mut seed: Option<SocketAddr> = None;
        for i in 0..nodes.max(1) {
            let id = format!("n{}", i + 1);
            let ready = dir.join(format!("{id}.ready"));
            let _ = std::fs::remove_file(&ready);
            let mut cmd = procs::command(&self.binary, self.cpus.as_deref());
            cmd.arg("serve")
                .arg("--config")
                .arg(&config)
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--ready-file")
                .arg(&ready)
                .env("NO_COLOR", "1")
                .env("RUST_LOG", "warn");
            if let Some(secret) = &secret {
                cmd.args(["--node-id", &id])
                    .args(["--gossip-listen", "127.0.0.1:0"])
                    .arg("--data-dir")
                    .arg(dir.join(format!("{id}-data")))
                    .env("STARLING_CLUSTER_SECRET", secret)
                    .env("STARLING_ADMIN_TOKEN", ADMIN_TOKEN);
                if let Some(seed) = seed {
                    cmd.args(["--seeds", &seed.to_string()]);
                }
            }
            let log = dir.join(format!("{id}.log"));
            let mut proc = Proc::spawn(&id, &mut cmd, &log)?;
            let addr = tokio::task::block_in_place(|| {
                proc.wait_ready(Duration::from_secs(60), || ready_addr(&ready, "http"))
            })?;
            if seed.is_none() {
                seed = ready_addr(&ready, "gossip");
            }
            procs.push(proc);
            addrs.push(addr);
        }

        let api_key = match governance {
            Governance::Off => CLIENT_KEY.to_owned(),
            Governance::On => {
                let admin = Admin::new(kind.label());
                admin.wait_for_members(&addrs).await?;
                let key = admin.create_key(addrs[0]).await?;
                admin.wait_for_key(&addrs, &key).await?;
                key
            }
        };
        Ok(Target {
            kind,
            addrs,
            base_path: String::new(),
            api_key,
            procs,
        })
    }

    fn keygen(&self) -> Result<String, TargetError> {
        let out = Command::new(&self.binary)
            .args(["cluster", "keygen"])
            .output()
            .map_err(|source| TargetError::Io {
                path: self.binary.clone(),
                source,
            })?;
        let secret = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || secret.is_empty() {
            return Err(TargetError::Setup {
                target: "starling".into(),
                detail: format!("`starling cluster keygen` failed: {}", out.status),
            });
        }
        Ok(secret)
    }
}

/// The node config: the mock as both an OpenAI and an Anthropic provider.
fn config(
    mock: SocketAddr,
    provider_key: &Path,
    governance: Governance,
    usage_durability: &str,
    governance_extra: &str,
) -> String {
    let (auth, governance) = match governance {
        Governance::Off => (
            format!("[auth]\nkeys = [\"{CLIENT_KEY}\"]\n\n"),
            String::new(),
        ),
        Governance::On => (
            String::new(),
            format!(
                "[governance]\nusage_durability = \"{usage_durability}\"\n{governance_extra}\n\n"
            ),
        ),
    };
    let key = provider_key.display();
    format!(
        "{auth}{governance}[[providers]]\nname = \"mock-openai\"\nkind = \"openai\"\nbase_url = \"http://{mock}/v1\"\n\
         api_key_file = \"{key}\"\nmodels = [\"gpt-*\"]\n\n\
         [[providers]]\nname = \"mock-anthropic\"\nkind = \"anthropic\"\nbase_url = \"http://{mock}\"\n\
         api_key_file = \"{key}\"\nmodels = [\"claude-*\"]\n\n\
         [logging]\nlevel = \"warn\"\n"
    )
}

/// The bench's client of the admin API.
struct Admin {
    target: String,
    http: reqwest::Client,
}

impl Admin {
    fn new(target: String) -> Self {
        Self {
            target,
            http: reqwest::Client::new(),
        }
    }

    fn error(&self, detail: String) -> TargetError {
        TargetError::Setup {
            target: self.target.clone(),
            detail,
        }
    }

    async fn get(&self, addr: SocketAddr, path: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("http://{addr}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// Waits until every node sees every other as live.
    async fn wait_for_members(&self, addrs: &[SocketAddr]) -> Result<(), TargetError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut all = true;
            for addr in addrs {
                let live = self
                    .get(*addr, "/admin/v1/cluster")
                    .await
                    .map_or(0, |v| live_members(&v));
                all &= live == addrs.len();
            }
            if all {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.error("the nodes did not all see each other within 60 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates the load's virtual key: every model, a strict monthly budget and RPM/TPM limits
    /// far above what the bench offers, so that every check runs and none refuses.
    async fn create_key(&self, addr: SocketAddr) -> Result<String, TargetError> {
        let body = json!({
            "name": "bench",
            "budgets": [{"amount_usd": 1_000_000, "period": "monthly", "mode": "strict"}],
            "rpm": 1_000_000_000u64,
            "tpm": 1_000_000_000_000u64,
        });
        let response = self
            .http
            .post(format!("http://{addr}/admin/v1/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.error(format!("creating the key: {e}")))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .map_err(|e| self.error(format!("creating the key: {e}")))?;
        value["key"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.error(format!("creating the key: {status} {value}")))
    }

    /// Waits until a request with `key` succeeds on every node (the key has replicated and the
    /// node holds budget rights).
    async fn wait_for_key(&self, addrs: &[SocketAddr], key: &str) -> Result<(), TargetError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let body = json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 4,
        });
        for addr in addrs {
            loop {
                let ok = self
                    .http
                    .post(format!("http://{addr}/v1/chat/completions"))
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(self.error(format!("the key did not work on {addr} within 60 s")));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}
