//! Governance metrics. Labels stay bounded: per-key, team and customer figures are exported
//! only with `governance.per_key_metrics`.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use super::Governance;
use super::model::BudgetMode;

/// Admissions by result: `admitted`, or the refusal's code.
pub const ADMISSIONS: &str = "starling_admissions_total";
/// Time spent deciding admission.
pub const ADMISSION_DURATION: &str = "starling_admission_duration_seconds";
/// Admissions that found their budget pool short and waited for a refill.
pub const SLOW_PATH: &str = "starling_budget_refill_waits_total";
/// Budget rights debited into this node's pools, in micro-dollars: a counter counts whole
/// units, and the figure is kept in micro-dollars throughout (like the cost counter).
pub const DEBITED: &str = "starling_budget_rights_debited_microdollars_total";
/// Rights transfers asked of peers, by result.
pub const TRANSFERS: &str = "starling_budget_rights_transfers_total";
/// How long rights transfers took.
pub const TRANSFER_DURATION: &str = "starling_budget_rights_transfer_duration_seconds";
/// Debits a peer was asked to witness before their rights were used, by result.
pub const WITNESSES: &str = "starling_budget_debit_witnesses_total";
/// How long witnessing a debit took.
pub const WITNESS_DURATION: &str = "starling_budget_debit_witness_duration_seconds";
/// Rights this node holds (escrow plus pools), all budgets.
pub const RIGHTS_HELD: &str = "starling_budget_rights_held_usd";
/// Rights held by members that are not live, or by this node's earlier incarnations: stranded
/// until they return or are reclaimed.
pub const RIGHTS_STRANDED: &str = "starling_budget_rights_stranded_usd";
/// Budgets at or above 90 % of their amount in the current period.
pub const NEAR_EXHAUSTION: &str = "starling_budgets_near_exhaustion";
/// Per budget (with `per_key_metrics`): spent in the current period.
pub const BUDGET_SPENT: &str = "starling_budget_spent_usd";
/// Per budget (with `per_key_metrics`): remaining in the current period.
pub const BUDGET_REMAINING: &str = "starling_budget_remaining_usd";
/// 1 while this node refuses strict keys because it lost contact with the cluster.
pub const FAIL_CLOSED: &str = "starling_governance_fail_closed";

/// HELP lines for `/metrics`.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        ADMISSIONS,
        "Admission decisions for virtual keys, by result."
    );
    describe_histogram!(
        ADMISSION_DURATION,
        Unit::Seconds,
        "Time to decide admission."
    );
    describe_counter!(
        SLOW_PATH,
        "Admissions that waited for a budget pool refill."
    );
    describe_counter!(
        DEBITED,
        "Strict-budget rights debited into this node's pools, in micro-dollars."
    );
    describe_counter!(TRANSFERS, "Budget rights asked of peers, by result.");
    describe_histogram!(
        TRANSFER_DURATION,
        Unit::Seconds,
        "How long a rights request took."
    );
    describe_counter!(
        WITNESSES,
        "Budget debits a peer was asked to hold before their rights were used, by result (witnessed, failed, timeout)."
    );
    describe_histogram!(
        WITNESS_DURATION,
        Unit::Seconds,
        "How long witnessing a debit took."
    );
    describe_gauge!(RIGHTS_HELD, "Budget rights this node holds, in USD.");
    describe_gauge!(
        RIGHTS_STRANDED,
        "Budget rights held by members that are not live, or by this node's earlier incarnations, in USD."
    );
    describe_gauge!(
        NEAR_EXHAUSTION,
        "Budgets with 10 % or less left in the current period."
    );
    describe_gauge!(BUDGET_SPENT, "Spent in the current period, in USD.");
    describe_gauge!(BUDGET_REMAINING, "Remaining in the current period, in USD.");
    describe_gauge!(
        FAIL_CLOSED,
        "1 while this node refuses strict keys because it has heard from no peer."
    );
}

pub(super) fn admission(result: &'static str, took: Duration) {
    counter!(ADMISSIONS, "result" => result).increment(1);
    histogram!(ADMISSION_DURATION).record(took.as_secs_f64());
}

pub(super) fn slow_path() {
    counter!(SLOW_PATH).increment(1);
}

pub(super) fn debited(micros: u64) {
    counter!(DEBITED).increment(micros);
}

pub(super) fn transfer(result: &'static str, took: Duration) {
    counter!(TRANSFERS, "result" => result).increment(1);
    histogram!(TRANSFER_DURATION).record(took.as_secs_f64());
}

pub(super) fn witness(result: &'static str, took: Duration) {
    counter!(WITNESSES, "result" => result).increment(1);
    histogram!(WITNESS_DURATION).record(took.as_secs_f64());
}

pub(super) fn fail_closed(on: bool) {
    gauge!(FAIL_CLOSED).set(if on { 1.0 } else { 0.0 });
}

fn usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// Exports budget figures: rights held here and stranded, budgets near exhaustion, and per
/// budget figures when enabled.
pub(super) fn export_budgets(gov: &Governance, now: u64) {
    let me = gov.cluster.writer().clone();
    let live: std::collections::BTreeSet<String> = gov
        .cluster
        .live_peers_info()
        .into_iter()
        .map(|(node, _)| node)
        .chain(std::iter::once(
            gov.cluster.writer().node.as_str().to_owned(),
        ))
        .collect();
    let mut held = 0u64;
    let mut stranded = 0u64;
    let mut near = 0u64;
    for state in gov.index.budget_states() {
        let Some((budget, _)) = state.budget() else {
            continue;
        };
        let (period, _, _) = budget.period.current(now);
        let remaining = state.remaining(budget.mode, budget.amount_micros, period);
        if budget.mode == BudgetMode::Strict {
            let snap = state.snapshot(period);
            held = held
                .saturating_add(snap.local_rights)
                .saturating_add(u64::try_from(snap.pool_available.max(0)).unwrap_or(0));
            let key = state.key(period);
            stranded = stranded.saturating_add(gov.cluster.read(|r| {
                r.rights()
                    .holders(&key)
                    .iter()
                    .filter(|(w, _)| {
                        !live.contains(w.node.as_str()) || (w.node == me.node && *w != me)
                    })
                    .fold(0u64, |acc, (_, v)| acc.saturating_add(*v))
            }));
        }
        if remaining.saturating_mul(10) <= budget.amount_micros {
            near += 1;
        }
        if gov.config.per_key_metrics {
            let label = state.rights_scope.clone();
            gauge!(BUDGET_REMAINING, "budget" => label.clone()).set(usd(remaining));
            gauge!(BUDGET_SPENT, "budget" => label)
                .set(usd(budget.amount_micros.saturating_sub(remaining)));
        }
    }
    gauge!(RIGHTS_HELD).set(usd(held));
    gauge!(RIGHTS_STRANDED).set(usd(stranded));
    gauge!(NEAR_EXHAUSTION).set(near as f64);
}
