//! Knobs shared by the scenarios: window lengths, sample counts and deadlines.

use std::time::Duration;

/// How long to measure and how many samples to take. [`Default`] is what the CLI runs; a
/// smoke test shortens the windows and counts with struct update syntax.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// K: catalog writes whose visibility on every node is timed, one at a time, each from
    /// the next node in turn.
    pub visibility_writes: usize,
    /// Catalog writes in the burst whose convergence (equal digests) is timed, issued all at
    /// once on randomly chosen nodes.
    pub burst_writes: usize,
    /// Length of each bandwidth measurement window.
    pub window: Duration,
    /// Traffic discarded before each window once the cluster has converged, so transients
    /// (connections opening, gossip spreading fresh heartbeats, the last anti-entropy rounds
    /// of a load) are not counted. It is part of the measurement, never a way to wait for
    /// something: every wait for a state polls that state against [`Self::deadline`].
    pub warmup: Duration,
    /// Catalog writes per second, across the cluster, during the "steady writes" window of
    /// [`super::convergence_vs_size`].
    pub steady_write_rate: u64,
    /// How many nodes (the first ones started) serve as seeds; every later node is given all
    /// of them, as a deployment would list a few stable addresses. At least 1.
    pub seeds: usize,
    /// Longest wait for any one condition (membership, visibility, equal digests).
    pub deadline: Duration,
    /// Size of each catalog value, in bytes (a JSON-ish string padded to this length), roughly
    /// a virtual key or model route as the gateway stores them.
    pub value_bytes: usize,
    /// Catalog entries per write (one delta, one fsync) when loading idle keys.
    pub load_batch: usize,
    /// Distinct counter keys the usage updates of [`super::bandwidth_vs_update_rate`] are
    /// spread over, round robin (as many API keys being charged).
    pub counter_keys: usize,
    /// Seed of the random choices (which node takes each burst write), for repeatable runs.
    pub rng_seed: u64,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        Self {
            visibility_writes: 100,
            burst_writes: 100,
            window: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            steady_write_rate: 10,
            seeds: 3,
            deadline: Duration::from_secs(120),
            value_bytes: 128,
            load_batch: 1_000,
            counter_keys: 100,
            rng_seed: 0x5eed,
        }
    }
}
