//! Writer identity and hybrid logical clocks.
//!
//! # Writer identity and incarnations
//!
//! Every replicated write is made by a [`WriterId`]: the node's configured name ([`NodeId`])
//! plus an **incarnation** number. Counters and rights are single-writer, grow-only rows keyed
//! by writer, merged by taking the maximum. If a node lost its data directory and came back under
//! its old name *and* its old incarnation, its first increments would start again from zero and be
//! hidden behind the maximum its peers still hold for that slot, and its new dots would collide
//! with dots the peers have already seen. So the rule is:
//!
//! * A node that starts **without** its data directory (or with one it cannot trust to hold every
//!   dot it ever shipped) takes a **new incarnation** ([`WriterId::fresh`]) and so writes into a
//!   fresh slot. Its old slot keeps its values in every sum forever: nothing is subtracted or
//!   forgotten because a writer went away.
//! * A node may reuse its incarnation only when its data directory holds every dot it ever sent
//!   to a peer, i.e. it persists a write before shipping it. When in doubt, take a new one: the
//!   only cost is one more (small) slot per restart.
//!
//! A fresh incarnation is the wall-clock time in milliseconds shifted left by 20 bits, with 20
//! random bits below. The time part keeps incarnations readable and roughly ordered; the random
//! part makes a collision impossible in practice even if the clock was reset to an earlier time.
//! Correctness never depends on incarnations being ordered, only on them being distinct.
//!
//! # Hybrid logical clocks
//!
//! [`Hlc`] stamps order catalog writes (last writer wins). They follow Kulkarni et al.'s hybrid
//! logical clock: the wall part tracks physical time, the logical part breaks ties and keeps the
//! clock monotonic when the physical clock stalls or jumps backwards, and the writer breaks the
//! remaining ties so the order is total. [`HlcClock::observe`] refuses a remote stamp whose wall
//! part is more than `max_forward_ms` ahead of our physical clock: one peer with a skewed clock
//! cannot drag every clock (and every period boundary) into the future.

use std::{
    fmt,
    str::FromStr,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// Longest accepted node name, in bytes.
pub const MAX_NODE_ID_LEN: usize = 64;

/// How far (ms) a remote stamp may be ahead of our physical clock before it is refused.
pub const DEFAULT_MAX_FORWARD_MS: u64 = 30_000;

/// A node's configured name: 1 to 64 bytes of `[A-Za-z0-9._-]`.
///
/// Cheap to clone (shared string). Validated on construction and on deserialization, so a
/// peer cannot smuggle in an invalid name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

/// Why a string is not a valid [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// The name is empty.
    #[error("node id is empty")]
    Empty,
    /// The name is longer than [`MAX_NODE_ID_LEN`] bytes.
    #[error("node id is {0} bytes long; the limit is {MAX_NODE_ID_LEN}")]
    TooLong(usize),
    /// The name contains a character outside `[A-Za-z0-9._-]`.
    #[error("node id contains {0:?}; only A-Z, a-z, 0-9, '.', '_' and '-' are allowed")]
    BadChar(char),
}

impl NodeId {
    /// Validates and wraps a node name.
    pub fn new(name: &str) -> Result<Self, NodeIdError> {
        if name.is_empty() {
            return Err(NodeIdError::Empty);
        }
        if name.len() > MAX_NODE_ID_LEN {
            return Err(NodeIdError::TooLong(name.len()));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(NodeIdError::BadChar(bad));
        }
        Ok(Self(Arc::from(name)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeId {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::new(&name).map_err(D::Error::custom)
    }
}

/// One writer: a node name plus the incarnation it is running as (see the module docs).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WriterId {
    /// The node's configured name.
    pub node: NodeId,
    /// Distinguishes runs of the same node that do not share a data directory.
    pub incarnation: u64,
}

impl WriterId {
    /// A writer with a known incarnation (e.g. reloaded from the data directory).
    pub fn new(node: NodeId, incarnation: u64) -> Self {
        Self { node, incarnation }
    }

    /// A writer with a brand-new incarnation, for a node starting without trusted local state.
    pub fn fresh(node: NodeId, now_ms: u64) -> Self {
        Self::new(node, fresh_incarnation(now_ms))
    }
}

impl fmt::Display for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.node, self.incarnation)
    }
}

impl fmt::Debug for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A new incarnation number: `now_ms << 20 | 20 random bits` (see the module docs).
pub fn fresh_incarnation(now_ms: u64) -> u64 {
    (now_ms << 20) | (u64::from(rand::random::<u32>()) & 0xF_FFFF)
}

/// Milliseconds since the Unix epoch from the system clock (0 if the clock is before 1970).
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A hybrid logical clock stamp. Ordered by wall time, then logical counter, then writer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    /// Physical part, milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Logical part: orders events within one millisecond and across backward clock jumps.
    pub logical: u32,
    /// The writer that issued the stamp; makes the order total.
    pub writer: WriterId,
}

/// A remote stamp the clock refused to adopt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "remote stamp from {writer} is {ahead_ms} ms ahead of our clock; at most {max_forward_ms} ms is accepted"
)]
pub struct ClockError {
    /// Who issued the stamp.
    pub writer: WriterId,
    /// How far ahead of our physical clock it was.
    pub ahead_ms: u64,
    /// The configured bound.
    pub max_forward_ms: u64,
}

/// The physical time source of a clock: milliseconds since the Unix epoch.
pub type TimeSource = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A hybrid logical clock owned by one writer. Cloning copies its state and shares its time
/// source.
#[derive(Clone)]
pub struct HlcClock {
    writer: WriterId,
    now_fn: TimeSource,
    wall_ms: u64,
    logical: u32,
    max_forward_ms: u64,
}

impl fmt::Debug for HlcClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HlcClock")
            .field("writer", &self.writer)
            .field("wall_ms", &self.wall_ms)
            .field("logical", &self.logical)
            .field("max_forward_ms", &self.max_forward_ms)
            .finish_non_exhaustive()
    }
}

impl HlcClock {
    /// A clock for `writer` reading physical time from `now_fn` (injectable for tests).
    pub fn new(writer: WriterId, now_fn: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self {
            writer,
            now_fn: Arc::new(now_fn),
            wall_ms: 0,
            logical: 0,
            max_forward_ms: DEFAULT_MAX_FORWARD_MS,
        }
    }

    /// A clock for `writer` on the system clock.
    pub fn system(writer: WriterId) -> Self {
        Self::new(writer, system_now_ms)
    }

    /// Sets how far ahead of our physical clock a remote stamp may be.
    pub fn with_max_forward_ms(mut self, max_forward_ms: u64) -> Self {
        self.max_forward_ms = max_forward_ms;
        self
    }

    /// The writer this clock stamps for.
    pub fn writer(&self) -> &WriterId {
        &self.writer
    }

    /// The configured forward bound, in milliseconds.
    pub fn max_forward_ms(&self) -> u64 {
        self.max_forward_ms
    }

    /// The physical clock reading, in milliseconds since the Unix epoch.
    pub fn physical_ms(&self) -> u64 {
        (self.now_fn)()
    }

    /// The latest stamp issued or observed (without advancing the clock).
    pub fn last(&self) -> Hlc {
        self.stamp()
    }

    /// A new stamp, greater than every stamp this clock issued or observed before.
    pub fn now(&mut self) -> Hlc {
        let pt = self.physical_ms();
        if pt > self.wall_ms {
            self.wall_ms = pt;
            self.logical = 0;
        } else {
            self.tick(self.logical);
        }
        self.stamp()
    }

    /// Checks `remote` against the forward bound without changing the clock.
    pub fn check(&self, remote: &Hlc) -> Result<(), ClockError> {
        let pt = self.physical_ms();
        let limit = pt.saturating_add(self.max_forward_ms);
        if remote.wall_ms > limit {
            return Err(ClockError {
                writer: remote.writer.clone(),
                ahead_ms: remote.wall_ms - pt,
                max_forward_ms: self.max_forward_ms,
            });
        }
        Ok(())
    }

    /// Merges a remote stamp into the clock (the HLC receive rule) and returns the new stamp,
    /// which is greater than both `remote` and everything this clock issued before.
    ///
    /// A stamp more than `max_forward_ms` ahead of our physical clock is refused and leaves the
    /// clock unchanged.
    pub fn observe(&mut self, remote: &Hlc) -> Result<Hlc, ClockError> {
        self.check(remote)?;
        let pt = self.physical_ms();
        let wall = pt.max(self.wall_ms).max(remote.wall_ms);
        let ours = wall == self.wall_ms;
        let theirs = wall == remote.wall_ms;
        match (ours, theirs) {
            (true, true) => self.tick(self.logical.max(remote.logical)),
            (true, false) => self.tick(self.logical),
            (false, true) => {
                self.wall_ms = wall;
                self.tick(remote.logical);
            }
            (false, false) => {
                self.wall_ms = wall;
                self.logical = 0;
            }
        }
        Ok(self.stamp())
    }

    /// Merges a remote stamp like [`Self::observe`], but a stamp more than `max_forward_ms`
    /// ahead moves the clock only up to that bound (and the skew is returned): the data it
    /// stamps is still merged, while a skewed peer cannot drag this clock, and through it the
    /// whole cluster, into the future. Refusing the data instead would only delay it (it is
    /// accepted once real time catches up, with the same stamp) and, with it, everything else
    /// the peer sends.
    pub fn observe_bounded(&mut self, remote: &Hlc) -> Option<ClockError> {
        match self.check(remote) {
            Ok(()) => {
                // Within the bound, observing cannot fail.
                let _ = self.observe(remote);
                None
            }
            Err(skew) => {
                let bound = Hlc {
                    wall_ms: self.physical_ms().saturating_add(self.max_forward_ms),
                    logical: 0,
                    writer: remote.writer.clone(),
                };
                let _ = self.observe(&bound);
                Some(skew)
            }
        }
    }

    /// Moves the clock up to `stamp` if it is ahead, without the forward bound. Only for our own
    /// history (reloading a persisted replica), never for a peer's stamp.
    pub fn adopt(&mut self, stamp: &Hlc) {
        if (stamp.wall_ms, stamp.logical) > (self.wall_ms, self.logical) {
            self.wall_ms = stamp.wall_ms;
            self.logical = stamp.logical;
        }
    }

    /// Sets the logical part to `base + 1`, carrying into the wall part on overflow.
    fn tick(&mut self, base: u32) {
        match base.checked_add(1) {
            Some(next) => self.logical = next,
            None => {
                self.wall_ms = self.wall_ms.saturating_add(1);
                self.logical = 0;
            }
        }
    }

    fn stamp(&self) -> Hlc {
        Hlc {
            wall_ms: self.wall_ms,
            logical: self.logical,
            writer: self.writer.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn writer(name: &str) -> WriterId {
        WriterId::new(NodeId::new(name).unwrap(), 1)
    }

    fn manual(start: u64) -> (Arc<AtomicU64>, impl Fn() -> u64 + Send + Sync + 'static) {
        let t = Arc::new(AtomicU64::new(start));
        let t2 = t.clone();
        (t, move || t2.load(Ordering::SeqCst))
    }

    #[test]
    fn node_id_validation() {
        assert!(NodeId::new("n1.eu-west_2").is_ok());
        assert_eq!(NodeId::new(""), Err(NodeIdError::Empty));
        assert_eq!(NodeId::new("a b"), Err(NodeIdError::BadChar(' ')));
        assert_eq!(NodeId::new("é"), Err(NodeIdError::BadChar('é')));
        assert_eq!(NodeId::new(&"x".repeat(65)), Err(NodeIdError::TooLong(65)));
        assert!(NodeId::new(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn fresh_incarnations_differ() {
        let node = NodeId::new("n1").unwrap();
        let a = WriterId::fresh(node.clone(), 1_700_000_000_000);
        let b = WriterId::fresh(node, 1_700_000_000_000);
        // 20 random bits: equal with probability 2^-20; retry once to keep the test stable.
        let c = WriterId::fresh(NodeId::new("n1").unwrap(), 1_700_000_000_000);
        assert!(a != b || a != c);
        assert_eq!(a.incarnation >> 20, 1_700_000_000_000);
    }

    #[test]
    fn monotonic_under_backward_jump() {
        let (t, f) = manual(10_000);
        let mut clock = HlcClock::new(writer("a"), f);
        let s1 = clock.now();
        t.store(5_000, Ordering::SeqCst);
        let s2 = clock.now();
        let s3 = clock.now();
        assert!(s1 < s2 && s2 < s3);
        assert_eq!(s3.wall_ms, 10_000);
        t.store(20_000, Ordering::SeqCst);
        let s4 = clock.now();
        assert_eq!((s4.wall_ms, s4.logical), (20_000, 0));
    }

    #[test]
    fn logical_overflow_carries() {
        let (_t, f) = manual(1);
        let mut clock = HlcClock::new(writer("a"), f);
        clock.now();
        clock.logical = u32::MAX;
        let s = clock.now();
        assert_eq!((s.wall_ms, s.logical), (2, 0));
    }

    #[test]
    fn observe_bounds_forward_skew() {
        let (_t, f) = manual(100_000);
        let mut clock = HlcClock::new(writer("a"), f).with_max_forward_ms(1_000);
        let before = clock.now();
        let far = Hlc {
            wall_ms: 101_001,
            logical: 0,
            writer: writer("b"),
        };
        let err = clock.observe(&far).unwrap_err();
        assert_eq!(err.ahead_ms, 1_001);
        assert_eq!(clock.last(), before);
        let near = Hlc {
            wall_ms: 101_000,
            logical: 7,
            writer: writer("b"),
        };
        let s = clock.observe(&near).unwrap();
        assert_eq!((s.wall_ms, s.logical), (101_000, 8));
        assert!(clock.now() > near);
    }
}
