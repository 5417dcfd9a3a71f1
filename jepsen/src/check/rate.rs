//! Rate limits: in every sliding 60 s window of the ledger, a key's requests (RPM) and tokens
//! (TPM) stay within the limit × (1 + tolerance) plus one request per node. While nodes
//! cannot all hear each other, each side may take its share of the whole limit
//! (docs/guarantees.md), so the bound is multiplied by the partition's multiplier.

use super::topology::limit_multiplier;
use super::{Evidence, Verdict};

const WINDOW_MS: u64 = 60_000;
/// Reports from a peer that went silent are kept this long (docs/guarantees.md).
const REPORT_MEMORY_MS: u64 = 30_000;
/// The most tokens one request of the harness can carry (prompt and output).
const TOKENS_PER_REQUEST: u64 = 64;

/// Checks every rate-limited key.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("rate-limits");
    let attributed = ev.attributed();
    for key in ev
        .keys
        .iter()
        .filter(|k| k.rpm.is_some() || k.tpm.is_some())
    {
        // Catalog keys change their limit on the way; only fixed limits are checked.
        if key.writes.iter().any(|w| w.action == "update") {
            continue;
        }
        let mut events: Vec<(u64, u64)> = attributed
            .iter()
            .filter(|(_, op)| op.key == key.id)
            .map(|(e, _)| (e.started_at_ms, e.input_tokens + e.output_tokens))
            .collect();
        events.sort_unstable();
        for (name, limit, per_node, weight) in [
            ("rpm", key.rpm, 1, None),
            ("tpm", key.tpm, TOKENS_PER_REQUEST, Some(())),
        ] {
            let Some(limit) = limit else { continue };
            let amount = |i: usize| if weight.is_some() { events[i].1 } else { 1 };
            let (mut hi, mut sum) = (0, 0u64);
            let (mut worst_calm, mut worst_any, mut worst_ratio) = (0u64, 0u64, 0f64);
            for lo in 0..events.len() {
                while hi < events.len() && events[hi].0 < events[lo].0 + WINDOW_MS {
                    sum += amount(hi);
                    hi += 1;
                }
                let (from, to) = (events[lo].0, events[lo].0 + WINDOW_MS);
                let multiplier = limit_multiplier(
                    &ev.timeline,
                    ev.nodes,
                    from.saturating_sub(REPORT_MEMORY_MS),
                    to,
                );
                let allowed = ((limit as f64 * (1.0 + ev.bounds.rate_tolerance)) as u64
                    + per_node * ev.nodes as u64)
                    * multiplier;
                if multiplier == 1 {
                    worst_calm = worst_calm.max(sum);
                }
                worst_any = worst_any.max(sum);
                worst_ratio = worst_ratio.max(sum as f64 / (limit * multiplier) as f64);
                if sum > allowed {
                    v.violation(format!(
                        "key {} ({name} {limit}): {sum} in the 60 s from {} (allowed {allowed}, partition multiplier {multiplier})",
                        key.id, events[lo].0
                    ));
                }
                sum -= amount(lo);
            }
            v.figure(format!(
                "key {} {name} {limit}: most per window {worst_any} ({worst_calm} with every node hearing every other), {:.1} % of the limit in force at worst",
                key.id,
                worst_ratio * 100.0
            ));
        }
    }
    v
}
