//! Processes under test: started with a ready file, watched through `/proc` (CPU time and
//! peak resident memory), and killed when dropped, so a failed run leaves nothing behind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Errors from starting or watching a process.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The program could not be started.
    #[error("starting {name}: {source}")]
    Spawn {
        /// Which process.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited, or did not become ready in time.
    #[error("{name} did not become ready: {detail}")]
    NotReady {
        /// Which process.
        name: String,
        /// What was seen, with the tail of its log.
        detail: String,
    },
    /// `/proc` could not be read for it.
    #[error("reading /proc for {name}: {source}")]
    Proc {
        /// Which process.
        name: String,
        /// Why.
        source: procfs::ProcError,
    },
}

/// A started process; killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// CPU time and memory of a process at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// User plus system CPU time since start, µs.
    pub cpu_us: u64,
    /// Resident memory now, bytes.
    pub rss_bytes: u64,
    /// Peak resident memory since start (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
}

/// A command for `program`, started through `taskset` when `cpus` is given, so that the
/// pinning holds for every thread the process starts (the process id is the same after
/// `taskset` execs it).
pub fn command(program: impl AsRef<OsStr>, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut pinned = Command::new("taskset");
            pinned.arg("-c").arg(cpus).arg(program);
            pinned
        }
        None => Command::new(program),
    }
}

impl Proc {
    /// Starts `command` (made with [`command`], which pins it) with stdout and stderr
    /// appended to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Result<Self, ProcError> {
        let spawn_error = |source| ProcError::Spawn {
            name: name.to_owned(),
            source,
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_error)?;
        let err = out.try_clone().map_err(spawn_error)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(spawn_error)?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// The process id (with `taskset`, the same process after its exec).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Which process this is.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until `ready` returns a value, the process exits, or `timeout` passes.
    pub fn wait_ready<T>(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Result<T, ProcError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = ready() {
                return Ok(v);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("exited with {status}")));
            }
            if Instant::now() > deadline {
                return Err(self.not_ready(format!("not ready after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn not_ready(&self, what: String) -> ProcError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        ProcError::NotReady {
            name: self.name.clone(),
            detail: format!("{what}; log {}:\n{}", self.log.display(), tail.join("\n")),
        }
    }

    /// CPU time and memory now.
    pub fn usage(&self) -> Result<Usage, ProcError> {
        let proc_error = |source| ProcError::Proc {
            name: self.name.clone(),
            source,
        };
        let process = procfs::process::Process::new(self.pid() as i32).map_err(proc_error)?;
        let stat = process.stat().map_err(proc_error)?;
        let status = process.status().map_err(proc_error)?;
        let ticks = procfs::ticks_per_second().max(1);
        Ok(Usage {
            cpu_us: (stat.utime + stat.stime) * 1_000_000 / ticks,
            rss_bytes: status.vmrss.unwrap_or(0) * 1024,
            peak_rss_bytes: status.vmhwm.unwrap_or(0) * 1024,
        })
    }

    /// Stops the process: SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(mut self, grace: Duration) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid() as i32) {
            // It may have exited already; then there is nothing to stop.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Drop kills what is left.
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of several processes' usage (a cluster's nodes): CPU and RSS add up; the peak is the
/// sum of each one's peak, an upper bound of the peak of the sum.
pub fn total_usage<'a>(procs: impl IntoIterator<Item = &'a Proc>) -> Result<Usage, ProcError> {
    let mut total = Usage::default();
    for p in procs {
        let u = p.usage()?;
        total.cpu_us += u.cpu_us;
        total.rss_bytes += u.rss_bytes;
        total.peak_rss_bytes += u.peak_rss_bytes;
    }
    Ok(total)
}

/// Reads a ready file's JSON, once it is complete (writers rename it into place).
pub fn read_ready_file(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pinned process is the program itself, on the given CPU only.
    #[test]
    fn a_pinned_command_runs_its_program_on_the_given_cpu() {
        let out = command("grep", Some("0"))
            .args(["Cpus_allowed_list", "/proc/self/status"])
            .output()
            .expect("runs grep through taskset");
        assert!(out.status.success(), "{out:?}");
        let line = String::from_utf8_lossy(&out.stdout);
        assert_eq!(line.split_whitespace().last(), Some("0"), "{line}");
        let unpinned = command("true", None).status().expect("runs true");
        assert!(unpinned.success());
    }
}
