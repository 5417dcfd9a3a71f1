//! Cluster-scale benchmark scenarios: in-process clusters of real `starling-cluster` nodes
//! (QUIC on loopback, TLS from one shared cluster secret, a temp data dir each, fsyncs
//! included) in the caller's tokio runtime, measured from outside through the nodes' public
//! API.
//!
//! * [`convergence_vs_size`]: membership formation, write visibility, burst convergence and
//!   bandwidth (idle and under steady writes) for each cluster size;
//! * [`bandwidth_vs_idle_keys`]: idle bandwidth against the number of catalog entries held
//!   (the design claim: flat);
//! * [`bandwidth_vs_update_rate`]: bandwidth against the rate of usage counter updates (it
//!   should follow the rate of change).
//!
//! Every node runs the production defaults of `ClusterConfig::new` (100 ms gossip, 500 ms
//! anti-entropy); only its address, data dir and seeds are set. Every wait for a state polls
//! that state (or is woken by it) against [`ScaleOptions::deadline`] and fails with
//! [`ScaleError::Timeout`]; the only fixed sleeps are measurement windows and the warm-up
//! before them. Bandwidth counts the transport's frames per message kind (gossip, sync pull,
//! sync push), not QUIC, TLS or UDP overhead.
//!
//! All nodes share the caller's runtime and cores: at large sizes the figures include the
//! cost of the nodes competing for CPU, as a real deployment's would not. Run one scenario at
//! a time.
//!
//! Layout, one concern per module: `cluster` (starting, waiting on and stopping a cluster),
//! `probe` (when each node applied a write, from the catalog observer), `traffic` (bytes
//! sent), `load` (the writes), `pace` (steady rates), `wait` (deadlines), `latency`
//! (percentiles), `options`, `error`, and one module per scenario.

mod cluster;
mod convergence;
mod error;
mod idle_keys;
mod latency;
mod load;
mod options;
mod pace;
mod probe;
mod traffic;
mod update_rate;
mod wait;

pub use cluster::{Formation, Intervals};
pub use convergence::{BurstResult, SizeResult, SteadyWrites, convergence_vs_size};
pub use error::ScaleError;
pub use idle_keys::{IdleKeysResult, bandwidth_vs_idle_keys};
pub use latency::LatencySummary;
pub use options::ScaleOptions;
pub use traffic::{Bandwidth, TransportEvents};
pub use update_rate::{UpdateRateResult, bandwidth_vs_update_rate};
