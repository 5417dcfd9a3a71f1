//! Faults: what they are, a schedule drawn from the seed, and their application.
//!
//! Faults run one at a time (or two of different classes together with `--combine`), each for
//! a few seconds, with calm gaps between them. Every applied fault is recorded in the
//! timeline with its window, so that the checkers know which guarantees were conditional when.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::history::now_ms;
use crate::net::{Net, NetemSpec};
use crate::nodes::{Node, NodeSetup};

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
}

/// Every nemesis, in order.
pub const ALL: [Nemesis; 12] = [
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
        }
    }

    /// Faults of one class cannot run together (two partitions would overwrite each other).
    fn class(self) -> u8 {
        match self {
            Nemesis::Netem => 1,
            Nemesis::Kill | Nemesis::KillAll | Nemesis::Wipe => 2,
            Nemesis::Pause => 3,
            Nemesis::Clock => 4,
            _ => 0,
        }
    }

    /// Parses a comma-separated list of names and groups (`partition`, `process`, `all`,
    /// `none`).
    pub fn parse_list(text: &str) -> Result<Vec<Nemesis>, String> {
        let mut out = BTreeSet::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "none" => {}
                "all" => out.extend(ALL),
                "partition" => out.extend(ALL.iter().copied().filter(|n| n.class() == 0)),
                "process" => out.extend([Nemesis::Kill, Nemesis::KillAll, Nemesis::Wipe]),
                other => {
                    let n = ALL.iter().find(|n| n.name() == other).ok_or_else(|| {
                        let names: Vec<_> = ALL.iter().map(|n| n.name()).collect();
                        format!(
                            "unknown nemesis {other:?}: use all, none, partition, process, or {}",
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
            Fault::Pause { node } | Fault::Clock { node, .. } => vec![*node],
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

/// How long a final fault (see [`plan`]) is held, and the calm before it.
const FINAL_HOLD: Duration = Duration::from_secs(8);
const FINAL_CALM: Duration = Duration::from_secs(4);

/// Draws the schedule: faults of `kinds`, one class at a time (two with `combine`), each
/// held 6–12 s with 3–6 s of calm between, within `span`. With `last`, the drawn steps stop
/// [`FINAL_CALM`] before one more fault of that nemesis, held [`FINAL_HOLD`] to the end of the
/// span: for reproducing what a particular fault leaves behind at the final heal (`--end-with
/// kill-all`: how fast a cluster restarted whole serves again).
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
        let hold = Duration::from_secs(rng.random_range(6..=12));
        if t + hold > drawn_span {
            break;
        }
        let first = kinds[rng.random_range(0..kinds.len())];
        let mut faults = vec![draw(first, n, caps, rng)];
        if combine {
            let others: Vec<_> = kinds
                .iter()
                .filter(|k| k.class() != first.class())
                .collect();
            if !others.is_empty() {
                faults.push(draw(
                    *others[rng.random_range(0..others.len())],
                    n,
                    caps,
                    rng,
                ));
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

    fn apply(&mut self, fault: &Fault) -> anyhow::Result<()> {
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
        }
        Ok(())
    }

    /// Halfway through a fault's window: the clock jumps back.
    fn midway(&mut self, fault: &Fault) -> anyhow::Result<()> {
        if let Fault::Clock { node, offset_s } = fault {
            self.nodes[*node].set_clock_offset(-offset_s)?;
        }
        Ok(())
    }

    fn heal(&mut self, fault: &Fault) -> anyhow::Result<()> {
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
        }
        Ok(())
    }

    /// Heals everything: no partition, no netem, every node running and resumed, true
    /// clocks. Used after the last step and on the way out.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        self.net.heal()?;
        for h in 0..self.nodes.len() {
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
        let first_record = {
            let mut c = lock();
            let first_record = c.timeline.len();
            for fault in &step.faults {
                tracing::info!(fault = %fault.label(), "nemesis: apply");
                c.apply(fault)?;
                c.timeline.push(FaultRecord {
                    fault: fault.clone(),
                    label: fault.label(),
                    start_ms: now_ms(),
                    end_ms: u64::MAX,
                });
            }
            first_record
        };
        let _ = wait_until(begin + step.at + step.hold / 2);
        {
            let mut c = lock();
            for fault in &step.faults {
                c.midway(fault)?;
            }
        }
        let _ = wait_until(begin + step.at + step.hold);
        let mut c = lock();
        for (i, fault) in step.faults.iter().enumerate() {
            tracing::info!(fault = %fault.label(), "nemesis: heal");
            c.heal(fault)?;
            c.timeline[first_record + i].end_ms = now_ms();
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
