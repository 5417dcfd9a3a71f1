//! The `starling` processes: one per host, started, killed, paused and restarted by the
//! nemesis, each with its own data dir, log and (for clock faults) libfaketime offset file.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::net::Net;

/// The HTTP port every node listens on, on its own address.
pub const HTTP_PORT: u16 = 8080;
/// The gossip (QUIC) port every node listens on, on its own address.
pub const GOSSIP_PORT: u16 = 7946;
/// The admin token the harness configures.
pub const ADMIN_TOKEN: &str = "jepsen-admin-token";
/// Where Debian's libfaketime lives.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// What every node is started with.
#[derive(Debug, Clone)]
pub struct NodeSetup {
    /// The gateway binary.
    pub binary: PathBuf,
    /// The configuration file (the same for every node).
    pub config: PathBuf,
    /// The cluster secret.
    pub secret: String,
    /// Preload libfaketime so that the node's wall clock can be skewed.
    pub faketime: bool,
    /// Every data dir is a small tmpfs of its own (for the `disk-full` nemesis).
    pub tmpfs: bool,
}

/// Errors starting or signalling a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Spawning failed.
    #[error("starting {node}: {source}")]
    Spawn {
        /// The node.
        node: String,
        /// Why.
        source: std::io::Error,
    },
    /// The node exited or never wrote its ready file.
    #[error("{node} did not become ready: {detail}")]
    NotReady {
        /// The node.
        node: String,
        /// What happened, with the log's tail.
        detail: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One node: its identity, files and (while running) its process.
#[derive(Debug)]
pub struct Node {
    /// 0-based host index.
    pub index: usize,
    /// Node id (`n1`, `n2`, ...), stable across restarts.
    pub id: String,
    /// The host's address.
    pub ip: Ipv4Addr,
    data_dir: PathBuf,
    log: PathBuf,
    ready: PathBuf,
    clock_file: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    /// A node on host `index` whose files live under `dir`.
    pub fn new(index: usize, ip: Ipv4Addr, dir: &Path) -> Self {
        let id = format!("n{}", index + 1);
        Self {
            index,
            data_dir: dir.join(format!("{id}.data")),
            log: dir.join(format!("{id}.log")),
            ready: dir.join(format!("{id}.ready")),
            clock_file: dir.join(format!("{id}.faketime")),
            id,
            ip,
            child: None,
            paused: false,
        }
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}:{HTTP_PORT}", self.ip)
    }

    /// `IP:PORT` of gossip.
    pub fn gossip(&self) -> String {
        format!("{}:{GOSSIP_PORT}", self.ip)
    }

    /// The log file (appended to across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The data dir (`--data-dir`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether a process is running (possibly paused).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Whether the process is stopped with SIGSTOP.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Starts the process in the host's namespace, seeded with `seeds`, and waits until it is
    /// ready (its listeners are bound).
    pub fn start(
        &mut self,
        net: &Net,
        setup: &NodeSetup,
        seeds: &[String],
    ) -> Result<(), NodeError> {
        let _ = std::fs::remove_file(&self.ready);
        let io = |what: &str| {
            let what = format!("{what} for {}", self.id);
            move |source| NodeError::Io { what, source }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io("opening the log"))?;
        let mut cmd = net.command(self.index, &setup.binary);
        cmd.arg("serve")
            .arg("--config")
            .arg(&setup.config)
            .args(["--node-id", &self.id])
            .arg("--listen")
            .arg(format!("{}:{HTTP_PORT}", self.ip))
            .arg("--gossip-listen")
            .arg(self.gossip())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--ready-file")
            .arg(&self.ready)
            .env("STARLING_CLUSTER_SECRET", &setup.secret)
            .env("STARLING_ADMIN_TOKEN", ADMIN_TOKEN)
            // Warnings, and what governance and the cluster say; not a line per request.
            // `STARLING_JEPSEN_NODE_LOG` overrides it, for digging into a failure.
            .env(
                "RUST_LOG",
                std::env::var("STARLING_JEPSEN_NODE_LOG").unwrap_or_else(|_| {
                    "warn,starling_governance=info,starling_cluster=info".into()
                }),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if !seeds.is_empty() {
            cmd.arg("--seeds").arg(seeds.join(","));
        }
        if setup.faketime {
            if !self.clock_file.exists() {
                std::fs::write(&self.clock_file, "+0\n").map_err(io("writing the clock file"))?;
            }
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", &self.clock_file)
                // Re-read the offset every second; only the wall clock is skewed, as NTP
                // trouble would: monotonic time (timers, rate buckets) stays true.
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("DONT_FAKE_MONOTONIC", "1");
        }
        let child = cmd.spawn().map_err(|source| NodeError::Spawn {
            node: self.id.clone(),
            source,
        })?;
        self.child = Some(child);
        self.paused = false;
        let started = Instant::now();
        self.wait_ready()?;
        tracing::info!(node = %self.id, ms = started.elapsed().as_millis(), "node ready");
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), NodeError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::fs::read_to_string(&self.ready).is_ok_and(|t| t.contains("http")) {
                return Ok(());
            }
            let exited = match &mut self.child {
                Some(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
                None => Some("not started".into()),
            };
            if exited.is_some() || Instant::now() > deadline {
                let detail = exited.map_or("timed out".into(), |s| format!("exited: {s}"));
                return Err(NodeError::NotReady {
                    node: self.id.clone(),
                    detail: format!("{detail}; log tail:\n{}", self.log_tail(20)),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn signal(&self, signal: Signal) {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .and_then(Pid::from_raw);
        if let Some(pid) = pid {
            // The process may have died already; that is what we wanted anyway.
            let _ = kill_process(pid, signal);
        }
    }

    /// `kill -9`, and reaps the process.
    pub fn kill(&mut self) {
        self.signal(Signal::KILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// `SIGSTOP`.
    pub fn pause(&mut self) {
        self.signal(Signal::STOP);
        self.paused = true;
    }

    /// `SIGCONT`.
    pub fn resume(&mut self) {
        self.signal(Signal::CONT);
        self.paused = false;
    }

    /// Deletes everything in the data dir (the node must be down): a disk lost with the
    /// machine. The dir itself stays, since it may be a mount point.
    pub fn wipe(&mut self) -> Result<(), NodeError> {
        let io = |e: std::io::Error| NodeError::Io {
            what: format!("wiping {}", self.data_dir.display()),
            source: e,
        };
        let entries = match std::fs::read_dir(&self.data_dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            entries => entries.map_err(io)?,
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            if entry.file_type().map_err(io)?.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io)?;
            } else {
                std::fs::remove_file(&path).map_err(io)?;
            }
        }
        Ok(())
    }

    /// Sets the wall-clock offset (seconds, may be negative); libfaketime picks it up within
    /// a second. Only effective for nodes started with `faketime`.
    pub fn set_clock_offset(&self, secs: i64) -> Result<(), NodeError> {
        std::fs::write(&self.clock_file, format!("{secs:+}\n")).map_err(|source| NodeError::Io {
            what: format!("writing {}", self.clock_file.display()),
            source,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.paused {
            self.resume();
        }
        self.kill();
    }
}
