//! Faults: what they are, a schedule drawn from the seed, and their application.
//!
//! Faults run one at a time (or two of different classes together with `--combine`), each for
//! a few seconds, with calm gaps between them. Every applied fault is recorded in the
//! timeline with its window, so that the checkers know which guarantees were conditional when.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::history::now_ms;
use crate::net::{Net, NetemSpec};
use crate::nodes::{Node, NodeSetup};
use crate::storage::{self, FailureSeen, StorageReport};

/// The nemeses a run can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nemesis {
    /// Two random halves.
    PartitionHalves,
    /// A majority and a minority.
    PartitionMajority,
    /// One node cut off from all others.
    PartitionIsolate,
    /// Two sides and one node that sees both.
    PartitionBridge,
    /// Every node sees a majority, no two the same (a ring).
    PartitionRing,
    /// One side cannot send to the other; the other way works.
    PartitionOneWay,
    /// Packet loss, delay, reordering or duplication on every link (`tc netem`; random loss
    /// by nftables alone on kernels without netem).
    Netem,
    /// `kill -9` of one node, restarted on its data dir.
    Kill,
    /// `kill -9` of every node at once, all restarted on their data dirs.
    KillAll,
    /// `kill -9` of one node, restarted with a wiped data dir under the same id.
    Wipe,
    /// `SIGSTOP` of one node for longer than failure detection, then `SIGCONT`.
    Pause,
    /// One node's wall clock jumps forward, then back, across a budget period boundary.
    Clock,
    /// One node's data dir (a small tmpfs) filled up by a ballast file while it runs; then
    /// the ballast removed and the node restarted.
    DiskFull,
    /// `kill -9` of one node, a byte flipped in the middle of one of its logs, restarted.
    FlipByte,
    /// `kill -9` of one node, its snapshot truncated, restarted.
    TruncateSnapshot,
}

/// Every nemesis, in order.
pub const ALL: [Nemesis; 15] = [
    Nemesis::PartitionHalves,
    Nemesis::PartitionMajority,
    Nemesis::PartitionIsolate,
    Nemesis::PartitionBridge,
    Nemesis::PartitionRing,
    Nemesis::PartitionOneWay,
    Nemesis::Netem,
    Nemesis::Kill,
    Nemesis::KillAll,
    Nemesis::Wipe,
    Nemesis::Pause,
    Nemesis::Clock,
    Nemesis::DiskFull,
    Nemesis::FlipByte,
    Nemesis::TruncateSnapshot,
];

/// The storage nemeses (group `storage`).
pub const STORAGE: [Nemesis; 3] = [
    Nemesis::DiskFull,
    Nemesis::FlipByte,
    Nemesis::TruncateSnapshot,
];

impl Nemesis {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::PartitionHalves => "partition-halves",
            Nemesis::PartitionMajority => "partition-majority",
            Nemesis::PartitionIsolate => "partition-isolate",
            Nemesis::PartitionBridge => "partition-bridge",
            Nemesis::PartitionRing => "partition-ring",
            Nemesis::PartitionOneWay => "partition-one-way",
            Nemesis::Netem => "netem",
            Nemesis::Kill => "kill",
            Nemesis::KillAll => "kill-all",
            Nemesis::Wipe => "wipe",
            Nemesis::Pause => "pause",
            Nemesis::Clock => "clock",
            Nemesis::DiskFull => "disk-full",
            Nemesis::FlipByte => "flip-byte",
            Nemesis::TruncateSnapshot => "truncate-snapshot",
        }
    }

    /// Faults of one class cannot run together (two partitions would overwrite each other).
    fn class(self) -> u8 {
        match self {
            Nemesis::Netem => 1,
            Nemesis::Kill | Nemesis::KillAll | Nemesis::Wipe => 2,
            Nemesis::Pause => 3,
            Nemesis::Clock => 4,
            Nemesis::DiskFull | Nemesis::FlipByte | Nemesis::TruncateSnapshot => 5,
            _ => 0,
        }
    }

    /// Whether two faults may run together (`--combine`): not of one class, and not a storage
    /// fault with a process fault, since both kill and restart nodes (a kill's restart would
    /// start a node on a disk the storage fault is still damaging).
    fn combines_with(self, other: Nemesis) -> bool {
        let (a, b) = (
            self.class().min(other.class()),
            self.class().max(other.class()),
        );
        a != b && (a, b) != (2, 5)
    }

    /// Parses a comma-separated list of names and groups (`partition`, `process`, `storage`,
    /// `all`, `none`).
    pub fn parse_list(text: &str) -> Result<Vec<Nemesis>, String> {
        let mut out = BTreeSet::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "none" => {}
                "all" => out.extend(ALL),
                "partition" => out.extend(ALL.iter().copied().filter(|n| n.class() == 0)),
                "process" => out.extend([Nemesis::Kill, Nemesis::KillAll, Nemesis::Wipe]),
                "storage" => out.extend(STORAGE),
                other => {
                    let n = ALL.iter().find(|n| n.name() == other).ok_or_else(|| {
                        let names: Vec<_> = ALL.iter().map(|n| n.name()).collect();
                        format!(
                            "unknown nemesis {other:?}: use all, none, partition, process, storage, or {}",
                            names.join(", ")
                        )
                    })?;
                    out.insert(*n);
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// A list of nemeses as briefly as `--nemesis` can say it: `all`, or each group it holds whole
/// (`partition`, `process`, `storage`) and the other names.
pub fn describe_list(list: &[Nemesis]) -> String {
    let set: BTreeSet<Nemesis> = list.iter().copied().collect();
    if ALL.iter().all(|n| set.contains(n)) {
        return "all".to_owned();
    }
    let partition: Vec<Nemesis> = ALL.iter().copied().filter(|n| n.class() == 0).collect();
    let groups: [(&str, &[Nemesis]); 3] = [
        ("partition", &partition),
        ("process", &[Nemesis::Kill, Nemesis::KillAll, Nemesis::Wipe]),
        ("storage", &STORAGE),
    ];
    let mut rest = set.clone();
    let mut words = Vec::new();
    for (name, members) in groups {
        if members.iter().all(|n| set.contains(n)) {
            words.push(name.to_owned());
            for n in members {
                rest.remove(n);
            }
        }
    }
    words.extend(rest.iter().map(|n| n.name().to_owned()));
    if words.is_empty() {
        "none".to_owned()
    } else {
        words.join(",")
    }
}

/// A concrete fault, drawn from a nemesis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
pub enum Fault {
    /// Packets from `a` to `b` are dropped for every pair.
    Partition {
        /// Which partition.
        nemesis: Nemesis,
        /// Directed blocked pairs.
        blocked: Vec<(usize, usize)>,
        /// For people: the sides.
        shape: String,
    },
    /// `tc netem` on every host.
    Netem {
        /// The impairment.
        spec: NetemSpec,
    },
    /// Random loss of incoming packets on every host, by nftables (no netem needed).
    Loss {
        /// Share of packets dropped, percent.
        percent: f64,
    },
    /// Nodes killed for the window, then restarted.
    Kill {
        /// Which nodes.
        nodes: Vec<usize>,
        /// Whether their data dirs are wiped before the restart.
        wipe: bool,
    },
    /// A node stopped for the window.
    Pause {
        /// Which node.
        node: usize,
    },
    /// A node's wall clock is offset by `offset_s`, then by `-offset_s` halfway, then reset.
    Clock {
        /// Which node.
        node: usize,
        /// The first jump, in seconds.
        offset_s: i64,
    },
    /// A node's data dir (a small tmpfs) full for the window; then the ballast is removed and
    /// the node restarted on its data dir.
    DiskFull {
        /// Which node.
        node: usize,
    },
    /// A node down for the window, with a byte flipped in the middle of one of its logs.
    FlipByte {
        /// Which node.
        node: usize,
    },
    /// A node down for the window, with its snapshot cut short.
    TruncateSnapshot {
        /// Which node.
        node: usize,
    },
}

impl Fault {
    /// The nodes a fault acts on directly (all of them for network-wide faults).
    pub fn nodes(&self, n: usize) -> Vec<usize> {
        match self {
            Fault::Partition { blocked, .. } => {
                let set: BTreeSet<usize> = blocked.iter().flat_map(|&(a, b)| [a, b]).collect();
                set.into_iter().collect()
            }
            Fault::Netem { .. } | Fault::Loss { .. } => (0..n).collect(),
            Fault::Kill { nodes, .. } => nodes.clone(),
            Fault::Pause { node }
            | Fault::Clock { node, .. }
            | Fault::DiskFull { node }
            | Fault::FlipByte { node }
            | Fault::TruncateSnapshot { node } => vec![*node],
        }
    }

    /// The kind of fault, for the plot's lanes: `partition`, `network`, `process`, `pause`,
    /// `clock` or `storage`.
    pub fn lane(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::Netem { .. } | Fault::Loss { .. } => "network",
            Fault::Kill { .. } => "process",
            Fault::Pause { .. } => "pause",
            Fault::Clock { .. } => "clock",
            Fault::DiskFull { .. } | Fault::FlipByte { .. } | Fault::TruncateSnapshot { .. } => {
                "storage"
            }
        }
    }

    /// The node a storage fault acts on.
    pub fn storage_node(&self) -> Option<usize> {
        match self {
            Fault::DiskFull { node }
            | Fault::FlipByte { node }
            | Fault::TruncateSnapshot { node } => Some(*node),
            _ => None,
        }
    }

    /// A short label for plots and the timeline.
    pub fn label(&self) -> String {
        match self {
            Fault::Partition { nemesis, shape, .. } => format!("{} {shape}", nemesis.name()),
            Fault::Netem { spec } => format!("netem {}", spec.to_args().join(" ")),
            Fault::Loss { percent } => format!("loss {percent}%"),
            Fault::Kill { nodes, wipe } if nodes.len() > 1 => {
                format!("kill-all{}", if *wipe { " +wipe" } else { "" })
            }
            Fault::Kill { nodes, wipe } => format!(
                "{} n{}",
                if *wipe { "wipe" } else { "kill" },
                nodes.first().map_or(0, |n| n + 1)
            ),
            Fault::Pause { node } => format!("pause n{}", node + 1),
            Fault::Clock { node, offset_s } => format!("clock n{} {offset_s:+}s", node + 1),
            Fault::DiskFull { node } => format!("disk-full n{}", node + 1),
            Fault::FlipByte { node } => format!("flip-byte n{}", node + 1),
            Fault::TruncateSnapshot { node } => format!("truncate-snapshot n{}", node + 1),
        }
    }
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
    /// Its label.
    pub label: String,
    /// When it was applied (epoch ms).
    pub start_ms: u64,
    /// When it was healed (epoch ms; `u64::MAX` while active).
    pub end_ms: u64,
    /// Storage faults: what was damaged and what the node said about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageReport>,
}

impl FaultRecord {
    /// Whether this fault may have taken `node`'s last writes with its disk: a wipe, a damaged
    /// log or snapshot (the records after the damage are lost like a wiped disk's), or a
    /// storage fault after which the harness had to empty the data dir.
    pub fn loses_disk_of(&self, node: usize) -> bool {
        match &self.fault {
            Fault::Kill { nodes, wipe: true } => nodes.contains(&node),
            Fault::FlipByte { node: n } | Fault::TruncateSnapshot { node: n } => *n == node,
            Fault::DiskFull { node: n } => {
                *n == node
                    && self
                        .storage
                        .as_ref()
                        .is_some_and(|r| r.refused_start.is_some())
            }
            _ => false,
        }
    }
}

/// A planned step: faults applied together at `at`, healed after `hold`.
#[derive(Debug, Clone)]
pub struct Step {
    /// Offset from the start of the fault phase.
    pub at: Duration,
    /// How long the faults stay.
    pub hold: Duration,
    /// The faults.
    pub faults: Vec<Fault>,
}

/// What the machine can do, which decides some draws.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// The kernel has `sch_netem` (delay, reordering, duplication).
    pub netem: bool,
}

/// A full disk shows only once the node's log has used up the space it zero-filled ahead of
/// its records (up to 1 MiB: 10–20 s under the default load), so a `disk-full` step is held
/// this much longer than the others.
pub const DISK_FULL_EXTRA_HOLD: Duration = Duration::from_secs(15);

/// How long a final fault (see [`plan`]) is held, and the calm before it.
const FINAL_HOLD: Duration = Duration::from_secs(8);
const FINAL_CALM: Duration = Duration::from_secs(4);

/// Draws the schedule: faults of `kinds`, one class at a time (two with `combine`), each
/// held 6–12 s ([`DISK_FULL_EXTRA_HOLD`] more with a full disk) with 3–6 s of calm between,
/// within `span`. With `last`, the drawn steps stop [`FINAL_CALM`] before one more fault of
/// that nemesis, held [`FINAL_HOLD`] to the end of the span: for reproducing what a particular
/// fault leaves behind at the final heal (`--end-with kill-all`: how fast a cluster restarted
/// whole serves again).
pub fn plan(
    kinds: &[Nemesis],
    last: Option<Nemesis>,
    n: usize,
    span: Duration,
    combine: bool,
    caps: Capabilities,
    rng: &mut StdRng,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let drawn_span = match last {
        Some(_) => span.saturating_sub(FINAL_HOLD + FINAL_CALM),
        None => span,
    };
    let mut t = Duration::from_secs(rng.random_range(3..=5));
    while !kinds.is_empty() {
        let mut hold = Duration::from_secs(rng.random_range(6..=12));
        if t + hold > drawn_span {
            break;
        }
        let first = kinds[rng.random_range(0..kinds.len())];
        let mut faults = vec![draw(first, n, caps, rng)];
        if combine {
            let others: Vec<_> = kinds.iter().filter(|k| k.combines_with(first)).collect();
            if !others.is_empty() {
                faults.push(draw(
                    *others[rng.random_range(0..others.len())],
                    n,
                    caps,
                    rng,
                ));
            }
        }
        if faults.iter().any(|f| matches!(f, Fault::DiskFull { .. })) {
            hold += DISK_FULL_EXTRA_HOLD;
            if t + hold > drawn_span {
                break;
            }
        }
        steps.push(Step {
            at: t,
            hold,
            faults,
        });
        t += hold + Duration::from_secs(rng.random_range(3..=6));
    }
    if let Some(last) = last {
        steps.push(Step {
            at: span.saturating_sub(FINAL_HOLD),
            hold: FINAL_HOLD,
            faults: vec![draw(last, n, caps, rng)],
        });
    }
    steps
}

/// Draws a concrete fault of a nemesis for `n` nodes.
pub fn draw(nemesis: Nemesis, n: usize, caps: Capabilities, rng: &mut StdRng) -> Fault {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let both = |a: &[usize], b: &[usize]| -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for &x in a {
            for &y in b {
                pairs.push((x, y));
                pairs.push((y, x));
            }
        }
        pairs
    };
    let names = |s: &[usize]| {
        let mut s = s.to_vec();
        s.sort_unstable();
        s.iter()
            .map(|i| format!("n{}", i + 1))
            .collect::<Vec<_>>()
            .join(",")
    };
    let partition = |blocked: Vec<(usize, usize)>, shape: String| Fault::Partition {
        nemesis,
        blocked,
        shape,
    };
    match nemesis {
        Nemesis::PartitionHalves | Nemesis::PartitionMajority => {
            let cut = if nemesis == Nemesis::PartitionHalves {
                n / 2
            } else {
                n / 2 + 1
            };
            let (a, b) = order.split_at(cut.clamp(1, n - 1));
            partition(both(a, b), format!("[{}] [{}]", names(a), names(b)))
        }
        Nemesis::PartitionIsolate => {
            let (a, b) = order.split_at(1);
            partition(both(a, b), format!("[{}] alone", names(a)))
        }
        Nemesis::PartitionBridge => {
            let bridge = order[0];
            let rest = &order[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            partition(
                both(a, b),
                format!("[{}] <n{}> [{}]", names(a), bridge + 1, names(b)),
            )
        }
        Nemesis::PartitionRing => {
            // Each node keeps its ring neighbours within `reach`: itself plus 2·reach nodes,
            // a majority.
            let reach = (n / 2).div_ceil(2).max(1);
            let mut blocked = Vec::new();
            for i in 0..n {
                for j in 0..n {
                    let d = i.abs_diff(j).min(n - i.abs_diff(j));
                    if i != j && d > reach {
                        blocked.push((order[i], order[j]));
                    }
                }
            }
            let ring: Vec<String> = order.iter().map(|i| format!("n{}", i + 1)).collect();
            partition(blocked, format!("ring {}", ring.join("-")))
        }
        Nemesis::PartitionOneWay => {
            let (a, b) = order.split_at(n / 2);
            let blocked = a
                .iter()
                .flat_map(|&x| b.iter().map(move |&y| (x, y)))
                .collect();
            partition(blocked, format!("[{}] -x-> [{}]", names(a), names(b)))
        }
        Nemesis::Netem if !caps.netem => Fault::Loss {
            percent: f64::from(rng.random_range(10..=30)),
        },
        Nemesis::Netem => {
            let spec = match rng.random_range(0..4) {
                0 => NetemSpec {
                    loss_percent: Some(20.0),
                    ..NetemSpec::default()
                },
                1 => NetemSpec {
                    delay_ms: Some(60),
                    jitter_ms: Some(40),
                    ..NetemSpec::default()
                },
                2 => NetemSpec {
                    delay_ms: Some(20),
                    reorder_percent: Some(30.0),
                    ..NetemSpec::default()
                },
                _ => NetemSpec {
                    duplicate_percent: Some(30.0),
                    ..NetemSpec::default()
                },
            };
            Fault::Netem { spec }
        }
        Nemesis::Kill => Fault::Kill {
            nodes: vec![order[0]],
            wipe: false,
        },
        Nemesis::KillAll => Fault::Kill {
            nodes: (0..n).collect(),
            wipe: false,
        },
        Nemesis::Wipe => Fault::Kill {
            nodes: vec![order[0]],
            wipe: true,
        },
        Nemesis::Pause => Fault::Pause { node: order[0] },
        Nemesis::DiskFull => Fault::DiskFull { node: order[0] },
        Nemesis::FlipByte => Fault::FlipByte { node: order[0] },
        Nemesis::TruncateSnapshot => Fault::TruncateSnapshot { node: order[0] },
        Nemesis::Clock => {
            // More than a minute, so a one-minute budget period boundary is crossed both ways.
            let magnitude = rng.random_range(65..=90);
            let offset_s = if rng.random_bool(0.5) {
                magnitude
            } else {
                -magnitude
            };
            Fault::Clock {
                node: order[0],
                offset_s,
            }
        }
    }
}

/// The cluster the nemesis acts on, shared with the final phase.
pub struct Cluster {
    /// The network.
    pub net: Net,
    /// The nodes, by host index.
    pub nodes: Vec<Node>,
    /// How nodes start.
    pub setup: NodeSetup,
    /// The timeline so far.
    pub timeline: Vec<FaultRecord>,
    /// Per node with a full disk: the thread watching what it says.
    pub watches: HashMap<usize, JoinHandle<FailureSeen>>,
}

impl Cluster {
    /// Every node's gossip address but `index`'s.
    pub fn seeds_for(&self, index: usize) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.index != index)
            .map(Node::gossip)
            .collect()
    }

    /// Probes what the machine can do: whether `tc netem` works in the namespaces.
    pub fn capabilities(&self) -> Capabilities {
        let probe = NetemSpec {
            loss_percent: Some(0.001),
            ..NetemSpec::default()
        };
        let netem = self.net.netem(0, &probe).is_ok();
        if netem && let Err(e) = self.net.clear_netem(0) {
            tracing::warn!("clearing the netem probe: {e}");
        }
        Capabilities { netem }
    }

    /// Starts node `index` (after a kill).
    pub fn start(&mut self, index: usize) -> anyhow::Result<()> {
        let seeds = self.seeds_for(index);
        let Cluster {
            net, nodes, setup, ..
        } = self;
        nodes[index].start(net, setup, &seeds)?;
        Ok(())
    }

    /// The fault as it will be applied: a snapshot truncation drawn for a node that has no
    /// snapshot yet (early in a run) goes to the next node that has one, so that it damages
    /// something.
    fn retarget(&self, fault: &Fault) -> Fault {
        if let Fault::TruncateSnapshot { node } = *fault {
            let n = self.nodes.len();
            if let Some(other) = (0..n)
                .map(|i| (node + i) % n)
                .find(|&i| storage::has_snapshot(self.nodes[i].data_dir()))
            {
                return Fault::TruncateSnapshot { node: other };
            }
        }
        fault.clone()
    }

    /// Applies a fault; what a storage fault did, for its record.
    fn apply(&mut self, fault: &Fault) -> anyhow::Result<Option<StorageReport>> {
        if let Some(node) = fault.storage_node() {
            return self.apply_storage(fault, node).map(Some);
        }
        match fault {
            Fault::Partition { blocked, .. } => self.net.partition(blocked)?,
            Fault::Netem { spec } => {
                for h in 0..self.nodes.len() {
                    self.net.netem(h, spec)?;
                }
            }
            Fault::Loss { percent } => {
                for h in 0..self.nodes.len() {
                    self.net.random_loss(h, *percent)?;
                }
            }
            Fault::Kill { nodes, wipe } => {
                for &i in nodes {
                    self.nodes[i].kill();
                    if *wipe {
                        self.nodes[i].wipe()?;
                    }
                }
            }
            Fault::Pause { node } => self.nodes[*node].pause(),
            Fault::Clock { node, offset_s } => self.nodes[*node].set_clock_offset(*offset_s)?,
            Fault::DiskFull { .. } | Fault::FlipByte { .. } | Fault::TruncateSnapshot { .. } => {}
        }
        Ok(None)
    }

    /// Fills or damages `node`'s data dir (see [`crate::storage`]).
    fn apply_storage(&mut self, fault: &Fault, node: usize) -> anyhow::Result<StorageReport> {
        let dir = self.nodes[node].data_dir().to_owned();
        let mut report = StorageReport::default();
        match fault {
            Fault::DiskFull { .. } => {
                if !self.setup.tmpfs {
                    anyhow::bail!("disk-full needs the data dirs on tmpfs (set up at start)");
                }
                let filled = Instant::now();
                report.ballast_bytes = Some(storage::fill(&dir, storage::TMPFS_BYTES)?);
                report.expected_reason = Some(storage::REASON_STORE_FAILED.to_owned());
                let url = self.nodes[node].url();
                let deadline = filled + storage::REPORT_DEADLINE;
                let watch = std::thread::spawn(move || {
                    storage::watch_store_failure(&url, filled, deadline)
                });
                self.watches.insert(node, watch);
            }
            Fault::FlipByte { .. } | Fault::TruncateSnapshot { .. } => {
                self.nodes[node].kill();
                let (damage, none) = if matches!(fault, Fault::FlipByte { .. }) {
                    (storage::flip_byte(&dir)?, "no log with two records yet")
                } else {
                    (storage::truncate_snapshot(&dir)?, "no snapshot yet")
                };
                match damage {
                    Some(damage) => {
                        tracing::info!(node = node + 1, file = %damage.file, what = %damage.what, "nemesis: damaged");
                        report.damage = Some(damage);
                        report.expected_reason = Some(storage::REASON_DAMAGED.to_owned());
                    }
                    None => report.skipped = Some(format!("{none}: a plain kill")),
                }
            }
            _ => {}
        }
        Ok(report)
    }

    /// Halfway through a fault's window: the clock jumps back.
    fn midway(&mut self, fault: &Fault) -> anyhow::Result<()> {
        if let Fault::Clock { node, offset_s } = fault {
            self.nodes[*node].set_clock_offset(-offset_s)?;
        }
        Ok(())
    }

    fn heal(&mut self, fault: &Fault, report: Option<&mut StorageReport>) -> anyhow::Result<()> {
        if let (Some(node), Some(report)) = (fault.storage_node(), report) {
            return self.heal_storage(node, report);
        }
        match fault {
            Fault::Partition { .. } => self.net.heal()?,
            Fault::Netem { .. } => {
                for h in 0..self.nodes.len() {
                    self.net.clear_netem(h)?;
                }
            }
            Fault::Loss { .. } => {
                for h in 0..self.nodes.len() {
                    self.net.random_loss(h, 0.0)?;
                }
            }
            Fault::Kill { nodes, .. } => {
                for &i in nodes {
                    self.start(i)?;
                }
            }
            Fault::Pause { node } => self.nodes[*node].resume(),
            Fault::Clock { node, .. } => self.nodes[*node].set_clock_offset(0)?,
            Fault::DiskFull { .. } | Fault::FlipByte { .. } | Fault::TruncateSnapshot { .. } => {}
        }
        Ok(())
    }

    /// Ends a storage fault: collects what a full disk's node said, frees the disk, and
    /// restarts the node on its data dir ([`Cluster::observe_storage`] then reads how it
    /// started).
    fn heal_storage(&mut self, node: usize, report: &mut StorageReport) -> anyhow::Result<()> {
        let dir = self.nodes[node].data_dir().to_owned();
        if report.ballast_bytes.is_some() {
            // A node paused by a fault combined with this one could not answer the watch.
            if self.nodes[node].is_paused() {
                self.nodes[node].resume();
            }
            let watch = self.watches.remove(&node);
            let mut seen = watch.and_then(|w| w.join().ok()).unwrap_or_default();
            if !seen.reported() {
                seen.log_room_left = storage::log_room_left(&dir);
            }
            report.store_failure = Some(seen);
            storage::remove_ballast(&dir)?;
            self.nodes[node].kill();
        }
        let log = self.nodes[node].log_path().to_owned();
        let log_before = std::fs::metadata(&log).map_or(0, |m| m.len());
        report.log_offset = log_before;
        if let Err(error) = self.start(node) {
            // The node's contract is to start on whatever it can read; if it refuses, do what
            // its error tells an operator to (empty the data dir), so the run goes on, and
            // record the refusal, which the storage checker reports.
            let said = storage::log_since(&log, log_before);
            // The error `main` printed, else the last error logged, else why it was not ready.
            let line = said
                .lines()
                .find(|l| l.starts_with("Error:"))
                .or_else(|| said.lines().rev().find(|l| l.contains("ERROR")))
                .map_or_else(|| format!("{error:#}"), str::to_owned);
            tracing::warn!(
                node = node + 1,
                "refused to start after a storage fault: {line}"
            );
            report.refused_start = Some(line.chars().take(240).collect());
            self.nodes[node].kill();
            self.nodes[node].wipe()?;
            self.start(node)?;
        }
        Ok(())
    }

    /// After a storage fault's heal (and the heals of the faults with it, which must not wait
    /// for this): how the restarted node says it started, whether it moved the damaged file
    /// aside, and whether its log names it.
    fn observe_storage(&self, node: usize, report: &mut StorageReport) {
        if report.expected_reason.is_some() {
            report.incarnation_start = storage::incarnation_start(&self.nodes[node].url());
            if let Some(damage) = &report.damage {
                let said = storage::log_since(self.nodes[node].log_path(), report.log_offset);
                report.moved_aside =
                    storage::moved_aside(self.nodes[node].data_dir(), &damage.file);
                report.logged = Some(said.contains(&damage.file));
            }
        }
        tracing::info!(node = node + 1, report = %report.summary(), "nemesis: storage fault healed");
    }

    /// Heals everything: no partition, no netem, every node running and resumed, true
    /// clocks. Used after the last step and on the way out.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        self.net.heal()?;
        for h in 0..self.nodes.len() {
            if self.setup.tmpfs {
                storage::remove_ballast(self.nodes[h].data_dir())?;
            }
            self.net.clear_netem(h)?;
            self.net.random_loss(h, 0.0)?;
            if self.nodes[h].is_paused() {
                self.nodes[h].resume();
            }
            if self.setup.faketime {
                self.nodes[h].set_clock_offset(0)?;
            }
            if !self.nodes[h].is_running() {
                self.start(h)?;
            }
        }
        let now = now_ms();
        for r in &mut self.timeline {
            r.end_ms = r.end_ms.min(now);
        }
        Ok(())
    }
}

/// Runs the schedule on the calling (blocking) thread until it ends or `stop` is set.
/// Faults are applied and healed here; a failure to apply one is returned.
pub fn run(
    cluster: &Arc<Mutex<Cluster>>,
    steps: &[Step],
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<()> {
    let begin = std::time::Instant::now();
    let wait_until = |deadline: std::time::Instant| {
        // Waiting for a scheduled time, not for a condition: the schedule is the point.
        while std::time::Instant::now() < deadline {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    };
    let lock = || cluster.lock().unwrap_or_else(|p| p.into_inner());
    for step in steps {
        if !wait_until(begin + step.at) {
            return Ok(());
        }
        // A step may start late when the heal before it took long (a restart, a full disk's
        // node that had yet to report): it still gets its whole hold, and the calm gaps after
        // it absorb the delay.
        let started = std::time::Instant::now();
        let first_record = {
            let mut c = lock();
            let first_record = c.timeline.len();
            for fault in &step.faults {
                let fault = c.retarget(fault);
                tracing::info!(fault = %fault.label(), "nemesis: apply");
                let storage = c.apply(&fault)?;
                c.timeline.push(FaultRecord {
                    label: fault.label(),
                    fault,
                    start_ms: now_ms(),
                    end_ms: u64::MAX,
                    storage,
                });
            }
            first_record
        };
        let _ = wait_until(started + step.hold / 2);
        {
            let mut c = lock();
            for i in first_record..c.timeline.len() {
                let fault = c.timeline[i].fault.clone();
                c.midway(&fault)?;
            }
        }
        let _ = wait_until(started + step.hold);
        let mut c = lock();
        for i in first_record..c.timeline.len() {
            let fault = c.timeline[i].fault.clone();
            tracing::info!(fault = %fault.label(), "nemesis: heal");
            let mut storage = c.timeline[i].storage.take();
            let healed = c.heal(&fault, storage.as_mut());
            let record = &mut c.timeline[i];
            record.end_ms = now_ms();
            record.storage = storage;
            healed?;
        }
        for i in first_record..c.timeline.len() {
            if let (Some(node), Some(mut report)) = (
                c.timeline[i].fault.storage_node(),
                c.timeline[i].storage.take(),
            ) {
                c.observe_storage(node, &mut report);
                c.timeline[i].storage = Some(report);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const CAPS: Capabilities = Capabilities { netem: true };

    #[test]
    fn names_and_groups_parse() {
        assert_eq!(Nemesis::parse_list("all").map(|v| v.len()), Ok(ALL.len()));
        assert_eq!(
            Nemesis::parse_list("kill, pause"),
            Ok(vec![Nemesis::Kill, Nemesis::Pause])
        );
        assert_eq!(Nemesis::parse_list("partition").map(|v| v.len()), Ok(6));
        assert_eq!(
            Nemesis::parse_list("storage"),
            Ok(vec![
                Nemesis::DiskFull,
                Nemesis::FlipByte,
                Nemesis::TruncateSnapshot
            ])
        );
        assert!(
            Nemesis::parse_list("all").is_ok_and(|all| STORAGE.iter().all(|n| all.contains(n)))
        );
        for text in [
            "all",
            "none",
            "storage",
            "partition,kill",
            "process,storage,clock",
        ] {
            let list = Nemesis::parse_list(text).expect("parses");
            assert_eq!(describe_list(&list), text);
        }
        assert!(Nemesis::parse_list("flood").is_err());
    }

    #[test]
    fn partitions_have_the_promised_shapes() {
        let mut rng = StdRng::seed_from_u64(7);
        let reach = |blocked: &[(usize, usize)], a: usize| {
            (0..5)
                .filter(|&b| b != a && !blocked.contains(&(a, b)))
                .count()
        };
        let Fault::Partition { blocked, .. } = draw(Nemesis::PartitionRing, 5, CAPS, &mut rng)
        else {
            panic!("a partition");
        };
        for a in 0..5 {
            assert_eq!(
                reach(&blocked, a),
                2,
                "each node sees a majority with itself"
            );
        }
        let Fault::Partition { blocked, .. } = draw(Nemesis::PartitionBridge, 5, CAPS, &mut rng)
        else {
            panic!("a partition");
        };
        assert_eq!(
            (0..5).filter(|&a| reach(&blocked, a) == 4).count(),
            1,
            "one bridge"
        );
        let Fault::Partition { blocked, .. } = draw(Nemesis::PartitionOneWay, 5, CAPS, &mut rng)
        else {
            panic!("a partition");
        };
        assert!(
            blocked.iter().all(|&(a, b)| !blocked.contains(&(b, a))),
            "one way only"
        );
        let Fault::Partition { blocked, .. } = draw(Nemesis::PartitionIsolate, 5, CAPS, &mut rng)
        else {
            panic!("a partition");
        };
        assert_eq!((0..5).filter(|&a| reach(&blocked, a) == 0).count(), 1);
    }

    #[test]
    fn the_schedule_is_a_function_of_the_seed_and_fits_the_span() {
        let span = Duration::from_secs(120);
        let draw = || {
            plan(
                &ALL,
                None,
                5,
                span,
                true,
                CAPS,
                &mut StdRng::seed_from_u64(1),
            )
        };
        let (a, b) = (draw(), draw());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(!a.is_empty());
        for s in &a {
            assert!(s.at + s.hold <= span);
            if let [x, y] = s.faults.as_slice() {
                let class = |f: &Fault| match f {
                    Fault::Partition { .. } => 0,
                    Fault::Netem { .. } | Fault::Loss { .. } => 1,
                    Fault::Kill { .. } => 2,
                    Fault::Pause { .. } => 3,
                    Fault::Clock { .. } => 4,
                    // Storage faults kill and restart nodes too: never with a process fault.
                    Fault::DiskFull { .. }
                    | Fault::FlipByte { .. }
                    | Fault::TruncateSnapshot { .. } => 2,
                };
                assert_ne!(class(x), class(y));
            }
        }
    }

    #[test]
    fn a_final_fault_ends_the_schedule() {
        let span = Duration::from_secs(60);
        let with_kill_all = |kinds: &[Nemesis]| {
            let rng = &mut StdRng::seed_from_u64(3);
            plan(kinds, Some(Nemesis::KillAll), 5, span, true, CAPS, rng)
        };
        let steps = with_kill_all(&ALL);
        let (last, drawn) = steps.split_last().expect("steps");
        assert_eq!(last.at + last.hold, span);
        assert_eq!(last.faults.len(), 1);
        assert!(matches!(&last.faults[0], Fault::Kill { nodes, wipe: false } if nodes.len() == 5));
        for s in drawn {
            assert!(s.at + s.hold + FINAL_CALM <= last.at);
        }
        // Alone, too.
        assert_eq!(with_kill_all(&[]).len(), 1);
    }
}
