//! Cluster-wide rate limits from node-local buckets (doc to be written).

mod allocation;
mod bucket;
mod demand;
mod demarcation;
mod limit;
mod report;
mod tuning;
mod view;

pub use limit::{Admitted, LimitKind, LimitStatus, Rejected, SharedLimit};
pub use report::{PeerReport, ShareReport};
pub use tuning::Tuning;

#[cfg(test)]
mod tests;
