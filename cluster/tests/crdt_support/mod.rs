//! Shared helpers for the CRDT tests: writers, a manual clock, a uniform view of the four
//! replicated types, the algebraic-law checks and a reordering/duplicating delivery harness.
#![allow(dead_code)]

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use starling_cluster::{
    crdt::{Catalog, CatalogDelta, CounterDelta, Counters, Rights, RightsDelta, VersionVector},
    hlc::{HlcClock, NodeId, WriterId},
    state::{Delta, Replica},
};

/// Writer `name` with incarnation `inc`.
pub fn writer(name: &str, inc: u64) -> WriterId {
    WriterId::new(NodeId::new(name).unwrap(), inc)
}

/// A manual physical clock shared by test nodes.
#[derive(Clone, Default)]
pub struct ManualTime(pub Arc<AtomicU64>);

impl ManualTime {
    pub fn at(ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(ms)))
    }
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    /// A clock for `w` reading this time plus `offset_ms`.
    pub fn clock(&self, w: WriterId, offset_ms: u64) -> HlcClock {
        let t = self.0.clone();
        HlcClock::new(w, move || t.load(Ordering::SeqCst) + offset_ms)
    }
}

/// The test catalog value: small and concrete.
pub type Val = u32;

/// A standalone catalog with the clock that stamps its writes.
#[derive(Clone)]
pub struct CatNode {
    pub cat: Catalog<Val>,
    pub clock: HlcClock,
}

impl CatNode {
    pub fn put(&mut self, id: &str, v: Val) -> CatalogDelta<Val> {
        let stamp = self.clock.now();
        self.cat.put(id, v, stamp)
    }
    pub fn delete(&mut self, id: &str) -> CatalogDelta<Val> {
        let stamp = self.clock.now();
        self.cat.delete(id, stamp)
    }
}

/// A uniform view of a replicated type for the generic checks.
pub trait Crdt: Clone {
    type D: Clone;
    fn version(&self) -> VersionVector;
    fn delta_since(&self, vv: &VersionVector) -> Self::D;
    fn apply_delta(&mut self, d: Self::D);
    fn digest(&self) -> [u8; 32];
    fn full(&self) -> Self::D {
        self.delta_since(&VersionVector::new())
    }
}

impl Crdt for CatNode {
    type D = CatalogDelta<Val>;
    fn version(&self) -> VersionVector {
        self.cat.version()
    }
    fn delta_since(&self, vv: &VersionVector) -> Self::D {
        self.cat.delta_since(vv)
    }
    fn apply_delta(&mut self, d: Self::D) {
        if let Some(max) = d.items.iter().map(|(_, e)| &e.stamp).max() {
            self.clock.observe(max).unwrap();
        }
        self.cat.apply(d);
    }
    fn digest(&self) -> [u8; 32] {
        self.cat.digest().unwrap()
    }
}

impl Crdt for Counters {
    type D = CounterDelta;
    fn version(&self) -> VersionVector {
        Counters::version(self)
    }
    fn delta_since(&self, vv: &VersionVector) -> Self::D {
        Counters::delta_since(self, vv)
    }
    fn apply_delta(&mut self, d: Self::D) {
        self.apply(d);
    }
    fn digest(&self) -> [u8; 32] {
        Counters::digest(self).unwrap()
    }
}

impl Crdt for Rights {
    type D = RightsDelta;
    fn version(&self) -> VersionVector {
        Rights::version(self)
    }
    fn delta_since(&self, vv: &VersionVector) -> Self::D {
        Rights::delta_since(self, vv)
    }
    fn apply_delta(&mut self, d: Self::D) {
        self.apply(d);
    }
    fn digest(&self) -> [u8; 32] {
        Rights::digest(self).unwrap()
    }
}

impl Crdt for Replica<Val> {
    type D = Delta<Val>;
    fn version(&self) -> VersionVector {
        Replica::version(self)
    }
    fn delta_since(&self, vv: &VersionVector) -> Self::D {
        Replica::delta_since(self, vv)
    }
    fn apply_delta(&mut self, d: Self::D) {
        self.apply(d);
    }
    fn digest(&self) -> [u8; 32] {
        Replica::digest(self).unwrap().0
    }
}

/// Merge laws on states: `a⊔b = b⊔a`, `(a⊔b)⊔c = a⊔(b⊔c)`, `a⊔a = a`, checked on copies of
/// `base` (which may hold state of its own) via full states.
pub fn check_state_laws<C: Crdt>(base: &C, a: &C, b: &C, c: &C) {
    let (fa, fb, fc) = (a.full(), b.full(), c.full());
    // commutative
    let mut ab = base.clone();
    ab.apply_delta(fa.clone());
    ab.apply_delta(fb.clone());
    let mut ba = base.clone();
    ba.apply_delta(fb.clone());
    ba.apply_delta(fa.clone());
    assert_eq!(ab.digest(), ba.digest(), "apply is not commutative");
    // associative
    let mut ab_c = ab.clone();
    ab_c.apply_delta(fc.clone());
    let mut bc = b.clone();
    bc.apply_delta(fc.clone());
    let mut a_bc = base.clone();
    a_bc.apply_delta(fa.clone());
    a_bc.apply_delta(bc.full());
    assert_eq!(ab_c.digest(), a_bc.digest(), "apply is not associative");
    // idempotent
    let mut aa = a.clone();
    aa.apply_delta(fa.clone());
    aa.apply_delta(fa);
    assert_eq!(aa.digest(), a.digest(), "apply is not idempotent");
}

/// Delta laws: applying two deltas to the same state in either order, or one twice, gives the
/// same state.
pub fn check_delta_laws<C: Crdt>(state: &C, d1: &C::D, d2: &C::D) {
    let mut x = state.clone();
    x.apply_delta(d1.clone());
    x.apply_delta(d2.clone());
    let mut y = state.clone();
    y.apply_delta(d2.clone());
    y.apply_delta(d1.clone());
    assert_eq!(
        x.digest(),
        y.digest(),
        "delta application is not commutative"
    );
    let before = x.digest();
    x.apply_delta(d1.clone());
    x.apply_delta(d2.clone());
    assert_eq!(x.digest(), before, "delta application is not idempotent");
}

/// Delivers every delta in `log` to every node, each node in its own random order, with random
/// duplicates, then asserts all digests are equal.
pub fn deliver_everything<C: Crdt>(nodes: &mut [C], log: &[C::D], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for node in nodes.iter_mut() {
        let mut order: Vec<usize> = (0..log.len()).collect();
        let dups = rng.random_range(0..=log.len());
        for _ in 0..dups {
            order.push(rng.random_range(0..log.len()));
        }
        order.shuffle(&mut rng);
        for i in order {
            node.apply_delta(log[i].clone());
        }
    }
    assert_converged(nodes);
}

/// Anti-entropy only: every node pulls from every other, twice around.
pub fn pull_all_pairs<C: Crdt>(nodes: &mut [C]) {
    for _ in 0..2 {
        for i in 0..nodes.len() {
            for j in 0..nodes.len() {
                if i != j {
                    let d = nodes[j].delta_since(&nodes[i].version());
                    nodes[i].apply_delta(d);
                }
            }
        }
    }
    assert_converged(nodes);
}

pub fn assert_converged<C: Crdt>(nodes: &[C]) {
    let first = nodes[0].digest();
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n.digest(), first, "node {i} diverged");
    }
}
