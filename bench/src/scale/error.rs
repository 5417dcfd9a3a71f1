//! Why a scenario could not run to the end.

use std::time::Duration;

use starling_cluster::codec::CodecError;
use starling_cluster::crdt::PeriodDropped;
use starling_cluster::runtime::ClusterError;
use starling_cluster::tls::TlsError;

/// A scenario failed. Timeouts say what was awaited and how far it got, since a cluster that
/// never converges is itself a finding worth reading.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The arguments cannot describe a run (no nodes, a zero rate where one is needed...).
    #[error("invalid scenario: {0}")]
    Invalid(String),
    /// A temp data dir could not be made or removed.
    #[error("temp data dir: {0}")]
    Io(#[from] std::io::Error),
    /// The cluster secret or a node's credentials could not be made.
    #[error("cluster credentials: {0}")]
    Credentials(#[from] TlsError),
    /// A node did not start.
    #[error("node {node} did not start: {source}")]
    Start {
        /// The node id.
        node: String,
        /// Why.
        source: ClusterError,
    },
    /// A node refused or failed a local write.
    #[error("write on node {node} failed: {source}")]
    Write {
        /// The node id.
        node: String,
        /// Why.
        source: ClusterError,
    },
    /// A usage update was refused (its period was dropped; the scenarios use lifetime periods,
    /// which never are).
    #[error("usage update refused: {0}")]
    Counter(#[from] PeriodDropped),
    /// A replica could not be encoded (for its digest or its size).
    #[error("replica encoding: {0}")]
    Codec(#[from] CodecError),
    /// A condition did not hold before its deadline.
    #[error("timed out after {waited:?} waiting for {what} ({progress})")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// How far it got when the deadline passed.
        progress: String,
    },
}
