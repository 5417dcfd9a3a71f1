//! The private test network: N hosts, each a network namespace joined by a veth pair to a
//! Linux bridge in the root namespace.
//!
//! The harness process stays in the root namespace and reaches every host over the bridge,
//! whose address (`10.231.S.254`) is also where the mock provider listens. Several runs may
//! share the machine, and any of them may be SIGKILLed, so every run takes a *slot* S (see
//! [`Net::create`]) that owns all names and addresses below, and sweeps whatever a dead
//! earlier owner of the slot left behind before building its own.
//!
//! | thing                    | name / address                  |
//! |--------------------------|---------------------------------|
//! | bridge                   | `sjbr{S}`, `10.231.S.254/24`    |
//! | host i's namespace       | `sj{S}h{i}`                     |
//! | host i's veth, root side | `sj{S}v{i}`                     |
//! | host i's veth, its side  | `eth0`, `10.231.S.{i+1}/24`     |
//! | work directory           | `/tmp/starling-jepsen/slot-S/`  |
//!
//! Faults: [`Net::partition`] (nftables drop rules inside the namespaces, host to host only)
//! and [`Net::netem`] (delay, loss, duplication, reordering on a host's egress). Data dirs of
//! the `disk-full` nemesis are small tmpfs mounts in the work directory ([`mount_tmpfs`]),
//! which the sweep unmounts.

mod exec;
mod mounts;
mod netem;
mod partition;
mod slot;
#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

pub use mounts::mount_tmpfs;
pub use netem::{NetemSpec, REORDER_DEFAULT_DELAY_MS};
use netem::{clear_netem_command, netem_command};
pub use partition::{NFT_TABLE, partition_script};
pub use slot::LOCK_DIR;

#[cfg(test)]
use exec::ip;
use exec::{ignore_benign, in_namespace, ip_words, nft_tool, run, run_with_input};
use slot::SlotLock;

/// Number of slots, hence of runs that can have a network at the same time.
pub const SLOTS: u8 = 64;

/// Most hosts one network can have.
pub const MAX_HOSTS: usize = 50;

/// Parent of the slots' work directories.
pub const WORK_ROOT: &str = "/tmp/starling-jepsen";

/// The interface name of every host's end of its veth pair.
pub const HOST_INTERFACE: &str = "eth0";

/// What can go wrong building, faulting or tearing down the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A tool exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line (and its stdin, if any).
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A tool could not be started or waited for.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("creating", "locking", ...).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A process in a test namespace could not be killed.
    #[error("killing pid {pid} in namespace {namespace}: {source}")]
    Kill {
        /// The process.
        pid: i32,
        /// Its namespace.
        namespace: String,
        /// Why it could not be killed.
        #[source]
        source: io::Error,
    },
    /// Every slot is held by a live run.
    #[error("all {slots} slots are in use (locks in {dir})", slots = SLOTS, dir = LOCK_DIR)]
    NoFreeSlot,
    /// The requested host count is 0 or above [`MAX_HOSTS`].
    #[error("a test network has 1..={max} hosts, not {0}", max = MAX_HOSTS)]
    HostCount(usize),
    /// A host index is out of range.
    #[error("there is no host {index}: the network has {hosts}")]
    NoSuchHost {
        /// The index asked for.
        index: usize,
        /// How many hosts the network has.
        hosts: usize,
    },
    /// A partition pair names one host twice.
    #[error("partition pair ({0}, {0}) would cut host {0} off from itself")]
    SelfPair(usize),
    /// A [`NetemSpec`] is out of range.
    #[error("invalid netem spec: {0}")]
    InvalidNetem(String),
    /// The kernel has no netem qdisc (`CONFIG_NET_SCH_NETEM` off, or the module missing).
    #[error("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): `{command}`: {stderr}")]
    NetemUnsupported {
        /// The tc command line.
        command: String,
        /// What tc said.
        stderr: String,
    },
    /// Something the sweep waits for (processes dying, links going) did not happen in time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
    },
}

/// One host of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// 0-based position in [`Net::hosts`].
    pub index: usize,
    /// Its network namespace, `sj{S}h{index}`.
    pub namespace: String,
    /// Its address on `eth0`, `10.231.S.{index + 1}`.
    pub ip: Ipv4Addr,
}

/// Name of slot `slot`'s bridge.
pub fn bridge_name(slot: u8) -> String {
    format!("sjbr{slot}")
}

/// Name of host `index`'s namespace in slot `slot`.
pub fn namespace_name(slot: u8, index: usize) -> String {
    format!("sj{slot}h{index}")
}

/// Name of host `index`'s veth end in the root namespace, in slot `slot`.
pub fn veth_name(slot: u8, index: usize) -> String {
    format!("sj{slot}v{index}")
}

/// Address of host `index` in slot `slot`.
///
/// Meaningful for `index < MAX_HOSTS`; larger values would collide with the bridge.
pub fn host_ip(slot: u8, index: usize) -> Ipv4Addr {
    // Saturating keeps this total; callers have validated index < MAX_HOSTS.
    let last = u8::try_from(index + 1).unwrap_or(u8::MAX);
    Ipv4Addr::new(10, 231, slot, last)
}

/// Address of slot `slot`'s bridge: the harness's side of the network.
pub fn bridge_ip(slot: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 231, slot, 254)
}

/// Slot `slot`'s work directory.
pub fn work_dir_path(slot: u8) -> PathBuf {
    Path::new(WORK_ROOT).join(format!("slot-{slot}"))
}

/// Sweeps the leftovers of dead runs: for every slot nobody holds, removes whatever carries
/// its names (killing processes in its namespaces first). Slots held by live runs are left
/// alone. Returns how many slots had leftovers.
///
/// A slot that cannot be swept does not stop the others: each failure is logged, and the
/// first is returned once all slots have been tried.
pub fn sweep_stale() -> Result<usize, NetError> {
    let mut swept = 0;
    let mut first_error = None;
    for slot in 0..SLOTS {
        // The lock, held until the end of this iteration, keeps a concurrent Net::create from
        // building in the slot while it is being swept.
        let result = SlotLock::try_acquire(slot).and_then(|lock| match lock {
            Some(_lock) => slot::sweep(slot),
            None => Ok(false),
        });
        match result {
            Ok(true) => {
                tracing::info!(slot, "swept the leftovers of a dead run");
                swept += 1;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(slot, %error, "could not sweep the slot");
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(swept), Err)
}

/// A test network owned by this process; torn down on drop.
#[derive(Debug)]
pub struct Net {
    /// Held for the network's whole life; released when the Net is dropped.
    lock: SlotLock,
    hosts: Vec<Host>,
    work_dir: PathBuf,
    torn_down: bool,
}

impl Net {
    /// Builds a network of `hosts` hosts (1..=[`MAX_HOSTS`]) in the lowest free slot, after
    /// sweeping whatever a dead earlier owner of that slot left. All hosts can reach each
    /// other and the bridge address.
    pub fn create(hosts: usize) -> Result<Net, NetError> {
        if !(1..=MAX_HOSTS).contains(&hosts) {
            return Err(NetError::HostCount(hosts));
        }
        Net::build(SlotLock::acquire_any()?, hosts)
    }

    /// Sweeps and builds in the slot `lock` holds.
    fn build(lock: SlotLock, count: usize) -> Result<Net, NetError> {
        let slot = lock.slot();
        if slot::sweep(slot)? {
            tracing::info!(slot, "swept the leftovers of a dead run");
        }
        let hosts = (0..count)
            .map(|index| Host {
                index,
                namespace: namespace_name(slot, index),
                ip: host_ip(slot, index),
            })
            .collect();
        let net = Net {
            lock,
            hosts,
            work_dir: work_dir_path(slot),
            torn_down: false,
        };
        // On failure `net` is dropped here, and its Drop removes whatever was half built.
        net.set_up()?;
        tracing::info!(slot, hosts = count, bridge = %bridge_ip(slot), "test network up");
        Ok(net)
    }

    fn set_up(&self) -> Result<(), NetError> {
        let slot = self.slot();
        let bridge = bridge_name(slot);
        let eth = HOST_INTERFACE;
        run(&mut ip_words(&format!(
            "link add name {bridge} type bridge"
        )))?;
        run(&mut ip_words(&format!(
            "addr add {}/24 dev {bridge}",
            bridge_ip(slot)
        )))?;
        run(&mut ip_words(&format!("link set dev {bridge} up")))?;
        for host in &self.hosts {
            let ns = &host.namespace;
            let veth = veth_name(slot, host.index);
            run(&mut ip_words(&format!("netns add {ns}")))?;
            // The peer is created directly inside the namespace under its final name: an
            // `eth0` in the root namespace would clash with the machine's own.
            run(&mut ip_words(&format!(
                "link add name {veth} type veth peer name {eth} netns {ns}"
            )))?;
            run(&mut ip_words(&format!(
                "link set dev {veth} master {bridge} up"
            )))?;
            run(&mut ip_words(&format!(
                "-n {ns} addr add {}/24 dev {eth}",
                host.ip
            )))?;
            run(&mut ip_words(&format!("-n {ns} link set dev {eth} up")))?;
            run(&mut ip_words(&format!("-n {ns} link set dev lo up")))?;
        }
        fs::create_dir_all(&self.work_dir).map_err(|source| NetError::Io {
            action: "creating",
            path: self.work_dir.clone(),
            source,
        })?;
        Ok(())
    }

    /// The slot this network occupies (0..[`SLOTS`]); it is the third octet of every address.
    pub fn slot(&self) -> u8 {
        self.lock.slot()
    }

    /// The hosts, in index order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The bridge's address: the harness's own address on the network, where the mock
    /// provider should listen and from which clients connect.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        bridge_ip(self.slot())
    }

    /// `/tmp/starling-jepsen/slot-S`, for data directories and logs. It exists while the
    /// network does and is removed by [`Net::teardown`], so copy out what should outlive it.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    fn host(&self, index: usize) -> Result<&Host, NetError> {
        self.hosts.get(index).ok_or(NetError::NoSuchHost {
            index,
            hosts: self.hosts.len(),
        })
    }

    /// `ip netns exec NS program`: runs `program` inside host `host`'s namespace. `ip` execs
    /// the program, so the spawned child's pid is the program's own (signals reach it).
    ///
    /// # Panics
    ///
    /// If `host` is not an index of [`Net::hosts`] (a bug in the caller).
    pub fn command(&self, host: usize, program: impl AsRef<OsStr>) -> Command {
        let Some(host) = self.hosts.get(host) else {
            panic!(
                "there is no host {host}: the network has {}",
                self.hosts.len()
            );
        };
        in_namespace(&host.namespace, program)
    }

    /// [`Net::command`] for tokio.
    ///
    /// # Panics
    ///
    /// If `host` is not an index of [`Net::hosts`].
    pub fn tokio_command(
        &self,
        host: usize,
        program: impl AsRef<OsStr>,
    ) -> tokio::process::Command {
        tokio::process::Command::from(self.command(host, program))
    }

    /// Replaces the current partition: afterwards exactly the packets from host `a` to host `b`
    /// for each pair `(a, b)` are dropped (one-way; add `(b, a)` too to cut both ways). Traffic
    /// with the bridge address is never affected. An empty set heals.
    ///
    /// Each namespace switches atomically; all namespaces are switched concurrently, so the
    /// old and the new partition are mixed only for the few milliseconds that takes. On error
    /// some namespaces may have switched and others not; retrying or healing fixes that.
    pub fn partition<I>(&self, pairs: I) -> Result<(), NetError>
    where
        I: IntoIterator,
        I::Item: Borrow<(usize, usize)>,
    {
        let mut set = BTreeSet::new();
        for pair in pairs {
            let (from, to) = *pair.borrow();
            self.host(from)?;
            self.host(to)?;
            if from == to {
                return Err(NetError::SelfPair(from));
            }
            set.insert((from, to));
        }
        let commands = self
            .hosts
            .iter()
            .map(|host| {
                let mut command = in_namespace(&host.namespace, nft_tool());
                command.args(["-f", "-"]);
                (
                    command,
                    Some(partition_script(self.slot(), host.index, &set)),
                )
            })
            .collect();
        exec::run_all(commands)?;
        if set.is_empty() {
            tracing::info!(slot = self.slot(), "healed");
        } else {
            tracing::info!(slot = self.slot(), pairs = ?set, "partitioned");
        }
        Ok(())
    }

    /// Removes every partition rule.
    pub fn heal(&self) -> Result<(), NetError> {
        self.partition(std::iter::empty::<(usize, usize)>())
    }

    /// Impairs all egress of host `host` (to other hosts and to the bridge alike) as `spec`
    /// says, replacing any previous impairment.
    ///
    /// Fails with [`NetError::NetemUnsupported`] on kernels without netem.
    pub fn netem(&self, host: usize, spec: &NetemSpec) -> Result<(), NetError> {
        spec.validate()?;
        let host = self.host(host)?;
        let mut command = netem_command(&host.namespace, spec);
        match run(&mut command) {
            Ok(_) => Ok(()),
            Err(NetError::Command {
                command, stderr, ..
            }) if stderr.contains("Specified qdisc kind is unknown") => {
                Err(NetError::NetemUnsupported { command, stderr })
            }
            Err(error) => Err(error),
        }
    }

    /// Drops `percent` % of the packets host `host` receives from anywhere (other hosts and
    /// the bridge alike), chosen at random by nftables: packet loss on kernels without netem.
    /// `0.0` removes it. Kept in a table of its own, so partitions and heals leave it alone.
    pub fn random_loss(&self, host: usize, percent: f64) -> Result<(), NetError> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(NetError::InvalidNetem(format!(
                "loss {percent} % is not in 0..=100"
            )));
        }
        let host = self.host(host)?;
        let mut command = in_namespace(&host.namespace, nft_tool());
        command.args(["-f", "-"]);
        run_with_input(&mut command, Some(&loss_script(percent)))?;
        Ok(())
    }

    /// Removes host `host`'s netem impairment, if it has one.
    pub fn clear_netem(&self, host: usize) -> Result<(), NetError> {
        let host = self.host(host)?;
        let mut command = clear_netem_command(&host.namespace);
        // What tc says when there is no root qdisc to delete varies: the default `noqueue`
        // of a veth has handle 0, other kernels answer ENOENT or EINVAL.
        ignore_benign(
            run(&mut command),
            &[
                "Cannot delete qdisc with handle of zero",
                "No such file or directory",
                "Invalid handle",
            ],
        )
    }

    /// Kills every process left in the namespaces, deletes the namespaces, veths and bridge,
    /// and removes the work directory. Idempotent; the slot stays locked until the Net is
    /// dropped.
    pub fn teardown(&mut self) -> Result<(), NetError> {
        if self.torn_down {
            return Ok(());
        }
        let slot = self.slot();
        slot::sweep(slot)?;
        self.torn_down = true;
        tracing::info!(slot, "test network down");
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            tracing::warn!(
                slot = self.slot(),
                %error,
                "tearing down the test network failed; `starling-jepsen cleanup` will retry"
            );
        }
    }
}

/// Whether anything named for `slot` exists (for tests and diagnostics).
#[cfg(test)]
fn has_leftovers(slot: u8) -> Result<bool, NetError> {
    Ok(!slot::Leftovers::scan(slot)?.is_empty())
}

/// The nft script that makes a namespace drop `percent` % of its incoming packets (an empty
/// table for 0).
pub fn loss_script(percent: f64) -> String {
    // numgen draws 0..10000, so fractions of a percent work.
    let threshold = (percent * 100.0).round() as u32;
    let mut script = format!("table inet {LOSS_TABLE} {{}}\ndelete table inet {LOSS_TABLE}\n");
    if threshold > 0 {
        script.push_str(&format!(
            "table inet {LOSS_TABLE} {{\n  chain input {{\n    type filter hook input priority 10; policy accept;\n    iifname \"{HOST_INTERFACE}\" numgen random mod 10000 < {threshold} drop\n  }}\n}}\n"
        ));
    }
    script
}

/// The nftables table of random packet loss.
pub const LOSS_TABLE: &str = "starling_jepsen_loss";
