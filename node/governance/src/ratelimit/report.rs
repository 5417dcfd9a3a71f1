//! What nodes tell each other about one limit.

/// One node's report about one limit, gossiped to every other node every report interval.
///
/// Plain numbers, so the transport can serialize it however it likes. Shares and demands are
/// in the limit's units: units per window for a rate, slots for concurrency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShareReport {
    /// Smoothed offered load at the sender, admitted and rejected alike (capped at the limit,
    /// since more than the limit makes no difference to the split).
    pub demand: f64,
    /// The share the sender may be using: its share in force, or for concurrency the larger
    /// of that and the slots it holds.
    pub share: f64,
    /// The share the sender is aiming for. It raises its share only to what it has announced
    /// here for long enough, so peers must leave room for `max(share, intent)`.
    pub intent: f64,
    /// Increases by one with every report of one [`SharedLimit`](super::SharedLimit): a receiver
    /// keeps the report with the highest `seq` and drops reordered older ones.
    pub seq: u64,
    /// The sender's rank for breaking ties when whole slots are split; stable per node.
    pub tiebreak: u64,
}

/// A peer's latest report as this node received it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerReport {
    /// The report itself.
    pub report: ShareReport,
    /// When this node received it, on this node's clock (the `now_ms` of the calls).
    pub received_ms: u64,
}
