//! One [`SharedLimit`] driven by hand.

use super::super::{LimitKind, PeerReport, ShareReport, SharedLimit};

const MINUTE: LimitKind = LimitKind::Rate { window_ms: 60_000 };

#[test]
fn placeholder() {
    let limit = SharedLimit::new(MINUTE, 600, 5, 0);
    let _ = (
        limit.report(0),
        PeerReport {
            report: ShareReport {
                demand: 0.0,
                share: 0.0,
                intent: 0.0,
                seq: 0,
                tiebreak: 0,
            },
            received_ms: 0,
        },
    );
}
