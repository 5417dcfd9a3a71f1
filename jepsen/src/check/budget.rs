//! Budget safety: strict budgets are never overspent, whatever the faults; available budgets
//! overspend at most the documented bound.

use std::collections::HashMap;

use super::topology::{limit_multiplier, overlapping};
use super::{Evidence, Verdict, usd};
use crate::nemesis::Fault;

/// One-minute periods, the only duration the harness uses.
const PERIOD_MS: u64 = 60_000;

/// Checks every budgeted key against the ledger.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("budget-safety");
    let mut billed: HashMap<&str, u64> = HashMap::new();
    let mut first_last: HashMap<&str, (u64, u64)> = HashMap::new();
    for (entry, op) in ev.attributed() {
        *billed.entry(op.key.as_str()).or_default() += entry.cost_micros;
        let span = first_last
            .entry(op.key.as_str())
            .or_insert((entry.started_at_ms, entry.started_at_ms));
        span.0 = span.0.min(entry.started_at_ms);
        span.1 = span.1.max(entry.started_at_ms);
    }
    let (mut strict_keys, mut worst_strict, mut used_sum, mut amount_sum) = (0, 0i64, 0u64, 0u64);
    let mut worst_available = 0f64;
    for key in &ev.keys {
        let Some(budget) = &key.budget else { continue };
        let spent = billed.get(key.id.as_str()).copied().unwrap_or(0);
        let amount = budget.amount_micros;
        let (first, last) = first_last.get(key.id.as_str()).copied().unwrap_or((0, 0));
        match (budget.mode.as_str(), budget.period.as_str()) {
            ("strict", "total") => {
                strict_keys += 1;
                worst_strict = worst_strict.max(spent as i64 - amount as i64);
                if key.workload == "budget" {
                    used_sum += spent.min(amount);
                    amount_sum += amount;
                }
                if spent > amount {
                    v.violation(format!(
                        "strict key {} ({}): billed {} of {} (overspent {})",
                        key.id,
                        key.label,
                        usd(spent),
                        usd(amount),
                        usd(spent - amount)
                    ));
                }
            }
            ("strict", _) => {
                // A period budget may be spent once per period any node's clock entered:
                // the periods the key's traffic spans, widened by the largest clock jump.
                let skew_ms = overlapping(&ev.timeline, first, last)
                    .filter_map(|r| match r.fault {
                        Fault::Clock { offset_s, .. } => Some(offset_s.unsigned_abs() * 1_000),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                // Periods are anchored at the key's creation: a span of D meets at most
                // D / P + 2 of them.
                let span = (last + skew_ms).saturating_sub(first.saturating_sub(skew_ms));
                let periods = span / PERIOD_MS + 2;
                let bound = amount * periods;
                v.figure(format!(
                    "periodic strict key {}: billed {} over at most {periods} one-minute periods (bound {})",
                    key.id,
                    usd(spent),
                    usd(bound)
                ));
                if spent > bound {
                    v.violation(format!(
                        "periodic strict key {}: billed {} > {periods} periods × {}",
                        key.id,
                        usd(spent),
                        usd(amount)
                    ));
                }
            }
            _ => {
                let bound = available_bound(ev, key.id.as_str(), amount, first, last);
                let over = spent.saturating_sub(amount);
                worst_available = worst_available.max(over as f64 / amount.max(1) as f64);
                if over > bound {
                    v.violation(format!(
                        "available key {}: billed {} of {}, overspend {} above the bound {}",
                        key.id,
                        usd(spent),
                        usd(amount),
                        usd(over),
                        usd(bound)
                    ));
                }
            }
        }
    }
    v.figure(format!(
        "strict total budgets: {strict_keys}, largest overspend {} (negative: under)",
        if worst_strict >= 0 {
            usd(worst_strict as u64)
        } else {
            format!("-{}", usd(worst_strict.unsigned_abs()))
        }
    ));
    if amount_sum > 0 {
        v.figure(format!(
            "budget-workload strict keys used {:.1} % of their amounts in total",
            used_sum as f64 / amount_sum as f64 * 100.0
        ));
    }
    v.figure(format!(
        "available budgets: largest overspend {:.1} % of the amount",
        worst_available * 100.0
    ));
    v
}

/// The documented bound for an available budget: what the other nodes can admit before this
/// node sees it (spend rate × visibility delay, plus requests in flight × the largest
/// reservation), plus a whole amount for every extra side of a partition during its life.
fn available_bound(ev: &Evidence, key: &str, amount: u64, first: u64, last: u64) -> u64 {
    let entries: Vec<_> = ev
        .attributed()
        .into_iter()
        .filter(|(_, op)| op.key == key)
        .collect();
    // Most spend within one visibility delay. Lost packets are retransmitted, so while the
    // network drops them the replication lag grows: the delay is then the catch-up bound.
    let lossy = |t: u64| {
        overlapping(&ev.timeline, t, t)
            .any(|r| matches!(r.fault, Fault::Loss { .. } | Fault::Netem { .. }))
    };
    let starts: Vec<(u64, u64)> = entries
        .iter()
        .map(|(e, _)| (e.started_at_ms, e.cost_micros))
        .collect();
    let rate_part = most_spend_within(starts, |t| {
        if lossy(t) {
            ev.bounds.catchup_ms
        } else {
            ev.bounds.visibility_ms
        }
    });
    // Requests in flight at once: the clients of this key.
    let clients = entries
        .iter()
        .map(|(_, op)| op.client)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    let sides = limit_multiplier(&ev.timeline, ev.nodes, first, last);
    rate_part + clients * ev.bounds.max_reservation_micros + (sides - 1) * amount
}

/// The most spend that started within one delay before any request: `delay_at(t)` is the
/// visibility delay in force for a request started at `t`.
fn most_spend_within(mut starts: Vec<(u64, u64)>, delay_at: impl Fn(u64) -> u64) -> u64 {
    starts.sort_unstable();
    let mut prefix = Vec::with_capacity(starts.len() + 1);
    prefix.push(0u64);
    for &(_, cost) in &starts {
        prefix.push(prefix.last().copied().unwrap_or(0) + cost);
    }
    starts
        .iter()
        .enumerate()
        .map(|(hi, &(t, _))| {
            let from = t.saturating_sub(delay_at(t).max(1));
            let lo = starts.partition_point(|&(s, _)| s < from);
            prefix[hi + 1] - prefix[lo]
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::most_spend_within;

    #[test]
    fn the_window_follows_the_delay_in_force() {
        // One unit every 100 ms for 10 s.
        let starts: Vec<(u64, u64)> = (0..100).map(|i| (i * 100, 1)).collect();
        assert_eq!(most_spend_within(starts.clone(), |_| 1_000), 11);
        // Seed 55: under packet loss (here from 5 s on) replication lags up to the catch-up
        // bound, and so may the spend a node does not see yet.
        let lossy = |t: u64| if t >= 5_000 { 5_000 } else { 1_000 };
        assert_eq!(most_spend_within(starts, lossy), 51);
        assert_eq!(most_spend_within(Vec::new(), |_| 1_000), 0);
    }
}
