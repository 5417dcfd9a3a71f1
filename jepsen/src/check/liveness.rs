//! Liveness: after the final heal, every node admits a request within budget again within
//! the bound.

use super::{Evidence, Verdict};

/// Checks the probes made after the final heal.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("liveness");
    let bound = ev.bounds.liveness_ms;
    for (node, after) in ev.liveness.iter().enumerate() {
        match after {
            Some(ms) if *ms <= bound => {
                v.figure(format!("n{}: admitted {ms} ms after the heal", node + 1))
            }
            Some(ms) => v.violation(format!(
                "n{}: admitted only {ms} ms after the heal (bound {bound} ms)",
                node + 1
            )),
            None => v.violation(format!(
                "n{}: never admitted a request after the heal",
                node + 1
            )),
        }
    }
    v
}
