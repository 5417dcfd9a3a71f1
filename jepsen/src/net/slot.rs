//! Slots: which run owns which set of names and addresses, and cleaning up after dead owners.
//!
//! A run owns slot S while it holds an exclusive `flock` on `/run/starling-jepsen/slot-S.lock`.
//! The kernel drops the lock when the holder dies, however it dies, so a lock that can be taken
//! means nobody alive uses the slot, and whatever carries the slot's names is a dead run's
//! leftover that may be swept. Lock files are never deleted: a process that opened the old file
//! could then lock it while another locks a new file of the same name.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, getpid, kill_process};

use super::exec::{ignore_benign, ip, run, wait_until};
use super::{NetError, SLOTS, bridge_name, work_dir_path};

/// Where the slot lock files live. `/run` is a tmpfs, so it starts empty after a reboot, like
/// the namespaces and links the locks stand for.
pub const LOCK_DIR: &str = "/run/starling-jepsen";

/// How long a sweep waits for killed processes to go and for links to disappear.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(10);

/// An exclusively locked slot; dropping it closes the file, which releases the lock.
#[derive(Debug)]
pub(super) struct SlotLock {
    slot: u8,
    _file: File,
}

impl SlotLock {
    /// The slot number.
    pub(super) fn slot(&self) -> u8 {
        self.slot
    }

    /// Takes the lock of `slot` if nobody holds it.
    pub(super) fn try_acquire(slot: u8) -> Result<Option<SlotLock>, NetError> {
        let dir = Path::new(LOCK_DIR);
        fs::create_dir_all(dir).map_err(|source| NetError::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
        let path = lock_path(slot);
        // Rust opens files close-on-exec, so the nodes and tools the run spawns do not inherit
        // the lock and cannot keep the slot "in use" after the run dies.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| NetError::Io {
                action: "opening",
                path: path.clone(),
                source,
            })?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(SlotLock { slot, _file: file })),
            Err(Errno::WOULDBLOCK) => Ok(None),
            Err(errno) => Err(NetError::Io {
                action: "locking",
                path,
                source: io::Error::from(errno),
            }),
        }
    }

    /// Takes the lowest free slot.
    pub(super) fn acquire_any() -> Result<SlotLock, NetError> {
        for slot in 0..SLOTS {
            if let Some(lock) = SlotLock::try_acquire(slot)? {
                return Ok(lock);
            }
        }
        Err(NetError::NoFreeSlot)
    }
}

/// The lock file of a slot.
pub(super) fn lock_path(slot: u8) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("slot-{slot}.lock"))
}

/// What carries a slot's names right now.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Leftovers {
    /// Namespaces `sj{S}h{i}`.
    pub namespaces: Vec<String>,
    /// Root-namespace links: veth host ends `sj{S}v{i}` and the bridge `sjbr{S}`.
    pub links: Vec<String>,
    /// Whether `/tmp/starling-jepsen/slot-S` exists.
    pub work_dir: bool,
    /// File systems mounted inside the work directory (the `disk-full` nemesis's tmpfs).
    pub mounts: Vec<PathBuf>,
}

impl Leftovers {
    /// Looks for everything named for `slot`.
    pub(super) fn scan(slot: u8) -> Result<Leftovers, NetError> {
        let namespaces = namespace_names(&run(&mut ip(["netns", "list"]))?)
            .filter(|name| is_slot_namespace(slot, name))
            .map(str::to_owned)
            .collect();
        let links = link_names(&run(&mut ip(["-o", "link", "show"]))?)
            .filter(|name| is_slot_link(slot, name))
            .map(str::to_owned)
            .collect();
        let work_dir = work_dir_path(slot).exists();
        let mounts = super::mounts::current_mounts_below(&work_dir_path(slot))?;
        Ok(Leftovers {
            namespaces,
            links,
            work_dir,
            mounts,
        })
    }

    /// Whether nothing of the slot exists.
    pub(super) fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
            && self.links.is_empty()
            && !self.work_dir
            && self.mounts.is_empty()
    }
}

/// Removes everything named for `slot`; the caller must hold the slot's lock. Returns whether
/// there was anything to remove.
///
/// Order matters: processes first (so nothing recreates state or writes logs meanwhile), then
/// the veth host ends, which deletes each pair at once (a namespace's own teardown is
/// asynchronous in the kernel, and a lingering `sj{S}v{i}` would make the next create fail with
/// "File exists"), then the bridge, the namespaces, the file systems mounted in the work
/// directory and the work directory.
pub(super) fn sweep(slot: u8) -> Result<bool, NetError> {
    let found = Leftovers::scan(slot)?;
    if found.is_empty() {
        return Ok(false);
    }
    tracing::debug!(slot, ?found, "sweeping slot");
    kill_processes_in(&found.namespaces)?;
    let bridge = bridge_name(slot);
    let (bridges, veths): (Vec<&String>, Vec<&String>) =
        found.links.iter().partition(|link| **link == bridge);
    for link in veths.into_iter().chain(bridges) {
        ignore_benign(
            run(&mut ip(["link", "del", "dev", link.as_str()])),
            &["Cannot find device"],
        )?;
    }
    for namespace in &found.namespaces {
        ignore_benign(
            run(&mut ip(["netns", "del", namespace.as_str()])),
            &["No such file or directory"],
        )?;
    }
    let dir = work_dir_path(slot);
    super::mounts::unmount_below(&dir)?;
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(NetError::Io {
                action: "removing",
                path: dir,
                source,
            });
        }
    }
    wait_until(
        &format!("slot {slot}'s namespaces and links to disappear"),
        SWEEP_TIMEOUT,
        || Ok(Leftovers::scan(slot)?.is_empty()),
    )?;
    Ok(true)
}

/// SIGKILLs every process in the namespaces until none is left (a process may fork while we
/// kill its siblings, hence the loop).
fn kill_processes_in(namespaces: &[String]) -> Result<(), NetError> {
    if namespaces.is_empty() {
        return Ok(());
    }
    let me = getpid();
    wait_until(
        "processes in the test namespaces to die",
        SWEEP_TIMEOUT,
        || {
            let mut alive = false;
            for namespace in namespaces {
                let listing = run(&mut ip(["netns", "pids", namespace.as_str()]))?;
                for pid in parse_pids(&listing) {
                    // The harness itself lives in the root namespace; never shoot it anyway.
                    if pid == me {
                        continue;
                    }
                    alive = true;
                    match kill_process(pid, Signal::KILL) {
                        // ESRCH: it died between listing and kill, which is what we want.
                        Ok(()) | Err(Errno::SRCH) => {}
                        Err(errno) => {
                            return Err(NetError::Kill {
                                pid: pid.as_raw_nonzero().get(),
                                namespace: namespace.clone(),
                                source: io::Error::from(errno),
                            });
                        }
                    }
                }
            }
            Ok(!alive)
        },
    )
}

/// Pids from `ip netns pids` output. That listing skips zombies (they have left their
/// namespace), so a killed process that nobody reaps does not stall the sweep.
fn parse_pids(listing: &str) -> impl Iterator<Item = Pid> + '_ {
    listing
        .split_whitespace()
        .filter_map(|word| word.parse::<i32>().ok())
        .filter_map(Pid::from_raw)
}

/// Names from `ip netns list` output: `NAME` or `NAME (id: N)` per line.
fn namespace_names(listing: &str) -> impl Iterator<Item = &str> {
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
}

/// Names from `ip -o link show` output: `N: NAME[@PEER]: <FLAGS> ...` per line.
fn link_names(listing: &str) -> impl Iterator<Item = &str> {
    listing.lines().filter_map(|line| {
        let name = line.split(": ").nth(1)?;
        name.split('@').next()
    })
}

/// `sj{S}h{digits}`.
fn is_slot_namespace(slot: u8, name: &str) -> bool {
    name.strip_prefix(&format!("sj{slot}h"))
        .is_some_and(all_digits)
}

/// `sj{S}v{digits}` or `sjbr{S}`.
fn is_slot_link(slot: u8, name: &str) -> bool {
    name == bridge_name(slot)
        || name
            .strip_prefix(&format!("sj{slot}v"))
            .is_some_and(all_digits)
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_do_not_match_other_slots() {
        assert!(is_slot_namespace(1, "sj1h0"));
        assert!(is_slot_namespace(1, "sj1h49"));
        assert!(!is_slot_namespace(1, "sj12h0"));
        assert!(!is_slot_namespace(12, "sj1h20"));
        assert!(!is_slot_namespace(1, "sj1h"));
        assert!(!is_slot_namespace(1, "sj1hx"));
        assert!(is_slot_link(6, "sj6v3"));
        assert!(is_slot_link(6, "sjbr6"));
        assert!(!is_slot_link(6, "sjbr63"));
        assert!(!is_slot_link(6, "sj63v3"));
        assert!(!is_slot_link(6, "eth0"));
    }

    #[test]
    fn parses_ip_listings() {
        let netns = "sj0h1 (id: 3)\nsj0h0 (id: 2)\nother\n";
        assert_eq!(
            namespace_names(netns).collect::<Vec<_>>(),
            ["sj0h1", "sj0h0", "other"]
        );
        let links = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n\
                     6: sj0v0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master sjbr0 state UP\\    link/ether c2:de:04:af:86:ee\n\
                     7: sjbr0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n";
        assert_eq!(
            link_names(links).collect::<Vec<_>>(),
            ["lo", "sj0v0", "sjbr0"]
        );
        let pids: Vec<i32> = parse_pids("12190\n12191\n\n")
            .map(|pid| pid.as_raw_nonzero().get())
            .collect();
        assert_eq!(pids, [12190, 12191]);
    }
}
