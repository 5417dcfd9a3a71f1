//! The acceptance scenarios: a cluster of five nodes under overload, in simulated time.
//!
//! Each prints its measured figures (`cargo test -- --nocapture`).

use super::super::{LimitKind, Tuning};
use super::sim::{Delay, Load, Outcome, Scenario, Work};

const NODES: usize = 5;
const MINUTE_MS: u64 = 60_000;
const RPM: u64 = 600;
/// The bound the issue sets: the limit plus max(2 % of it, one request per node).
const RPM_BOUND: u64 = 612;
const RUN_MS: u64 = 5 * MINUTE_MS;
const FIXED: Delay = Delay::Fixed(50);
const JITTERED: Delay = Delay::Jitter(20, 150);

fn tuning() -> Tuning {
    Tuning {
        report_interval_ms: 100,
        max_delivery_delay_ms: 200,
        ..Tuning::default()
    }
}

/// `overload` times `limit` per minute, spread evenly over the nodes, in units per ms.
fn even(limit: u64, overload: f64, unit: f64) -> Load {
    let per_node = overload * limit as f64 / MINUTE_MS as f64 / unit / NODES as f64;
    Box::new(move |_, _| per_node)
}

/// 90 % of the load on the hot node (which may change at `switch_ms`), the rest spread evenly.
fn skewed(limit: u64, overload: f64, unit: f64, hot: (usize, usize), switch_ms: u64) -> Load {
    let total = overload * limit as f64 / MINUTE_MS as f64 / unit;
    Box::new(move |node, now| {
        let hot_node = if now < switch_ms { hot.0 } else { hot.1 };
        if node == hot_node {
            0.9 * total
        } else {
            0.1 * total / (NODES - 1) as f64
        }
    })
}

fn rpm(delay: Delay, load: Load) -> Scenario {
    Scenario {
        nodes: NODES,
        kind: LimitKind::Rate {
            window_ms: MINUTE_MS,
        },
        limit: RPM,
        duration_ms: RUN_MS,
        tuning: tuning(),
        delay,
        work: Work::Requests,
        load,
        seed: 7,
    }
}

/// Checks the invariant behind every bound: the shares in force never sum above the limit.
fn assert_shares_within_limit(outcome: &Outcome, limit: u64) {
    assert!(
        outcome.max_total_share <= limit as f64 * (1.0 + 1e-9),
        "sum of shares reached {}",
        outcome.max_total_share
    );
}

/// Prints and returns the most admitted in any window and the least in any window after the
/// first.
fn windows(label: &str, outcome: &Outcome, limit: u64) -> (u64, u64) {
    let max = outcome.max_window(MINUTE_MS);
    let min = outcome.min_window_from(MINUTE_MS, MINUTE_MS);
    eprintln!(
        "{label}: most per window {max} ({:+.2} %), least after the first {min} ({:.1} %)",
        100.0 * (max as f64 / limit as f64 - 1.0),
        100.0 * min as f64 / limit as f64
    );
    (max, min)
}

#[test]
fn even_overload_stays_within_the_bound() {
    let outcome = rpm(FIXED, even(RPM, 10.0, 1.0)).run();
    let (max, _) = windows("[1] 600 RPM, 10x even, 50 ms", &outcome, RPM);
    assert_shares_within_limit(&outcome, RPM);
    assert!(max <= RPM_BOUND, "{max} admitted in one window");
}

#[test]
fn skewed_overload_stays_within_the_bound_and_uses_the_limit() {
    let outcome = rpm(FIXED, skewed(RPM, 10.0, 1.0, (0, 0), 0)).run();
    let (max, min) = windows("[2] 600 RPM, 10x, 90 % on one node, 50 ms", &outcome, RPM);
    assert_shares_within_limit(&outcome, RPM);
    assert!(max <= RPM_BOUND, "{max} admitted in one window");
    assert!(min * 100 >= RPM * 95, "only {min} admitted in one window");
}

#[test]
fn over_admission_does_not_grow_with_attack_intensity() {
    let mut worst = 0;
    for overload in [2.0, 10.0, 100.0] {
        for (delay_name, delay) in [("50 ms", FIXED), ("20-150 ms", JITTERED)] {
            for (load_name, load) in [
                ("even", even(RPM, overload, 1.0)),
                ("90 % on one node", skewed(RPM, overload, 1.0, (0, 0), 0)),
            ] {
                let outcome = rpm(delay, load).run();
                let label = format!("[3] 600 RPM, {overload}x {load_name}, {delay_name}");
                let (max, _) = windows(&label, &outcome, RPM);
                assert_shares_within_limit(&outcome, RPM);
                worst = worst.max(max);
            }
        }
    }
    assert!(worst <= RPM_BOUND, "{worst} admitted in one window");
}

#[test]
fn moving_skew_stays_within_the_bound_and_recovers() {
    const SWITCH_MS: u64 = 2 * MINUTE_MS;
    /// The measured recovery is about 1 s (see the printed figures); this leaves a margin.
    const RECOVERY_BOUND_MS: u64 = 2_000;
    for (overload, delay_name, delay) in [
        (2.0, "50 ms", FIXED),
        (2.0, "20-150 ms", JITTERED),
        (10.0, "20-150 ms", JITTERED),
    ] {
        let load = skewed(RPM, overload, 1.0, (0, 3), SWITCH_MS);
        let outcome = rpm(delay, load).run();
        let label = format!("[4] 600 RPM, {overload}x, 90 % moving at 2 min, {delay_name}");
        let (max, _) = windows(&label, &outcome, RPM);
        let start = outcome.settles_after(0, SWITCH_MS, 0.95);
        let recovery = outcome.settles_after(SWITCH_MS, RUN_MS, 0.95);
        eprintln!(
            "    usable share >= 95 % after {start:?} ms, again {recovery:?} ms after the move; \
             least {:.1} % before the move, {:.1} % from 5 s after it",
            100.0 * outcome.min_usable(MINUTE_MS, SWITCH_MS),
            100.0 * outcome.min_usable(SWITCH_MS + 5_000, RUN_MS)
        );
        assert_shares_within_limit(&outcome, RPM);
        assert!(max <= RPM_BOUND, "{max} admitted in one window");
        assert!(
            recovery.is_some_and(|ms| ms <= RECOVERY_BOUND_MS),
            "recovery took {recovery:?} ms"
        );
    }
}

#[test]
fn token_true_ups_stay_within_the_bound() {
    const TPM: u64 = 100_000;
    const ESTIMATE: (u64, u64) = (200, 2_000);
    let mean_estimate = (ESTIMATE.0 + ESTIMATE.1) as f64 / 2.0;
    // Per node, a window admits at most its share plus its bucket (the largest request and
    // 1 % of its share); true-ups in flight at the window's edges add what the settlement
    // delay lets through, taken here as 1 % of the limit.
    let bound = TPM + TPM / 50 + NODES as u64 * ESTIMATE.1;
    for (name, load) in [
        ("even", even(TPM, 10.0, mean_estimate)),
        (
            "90 % on one node",
            skewed(TPM, 10.0, mean_estimate, (0, 0), 0),
        ),
    ] {
        let outcome = Scenario {
            nodes: NODES,
            kind: LimitKind::Rate {
                window_ms: MINUTE_MS,
            },
            limit: TPM,
            duration_ms: RUN_MS,
            tuning: tuning(),
            delay: JITTERED,
            work: Work::Tokens {
                estimate: ESTIMATE,
                factor: (0.5, 1.2),
                settle_ms: (500, 5_000),
            },
            load,
            seed: 11,
        }
        .run();
        let label = format!("[5] 100 000 TPM, 10x {name}, true-ups -50..+20 % after 0.5-5 s");
        let (max, _) = windows(&label, &outcome, TPM);
        assert_shares_within_limit(&outcome, TPM);
        assert!(
            max <= bound,
            "{max} true tokens in one window, bound {bound}"
        );
    }
}

#[test]
fn concurrency_never_exceeds_the_slots() {
    const SLOTS: u64 = 10;
    const HOLD_MS: (u64, u64) = (2_000, 4_000);
    // 3 s average hold, 10 arrivals per second: 30 slots wanted, 3x the limit.
    let per_ms = 10.0 / 1_000.0;
    let outcome = Scenario {
        nodes: NODES,
        kind: LimitKind::Concurrency,
        limit: SLOTS,
        duration_ms: RUN_MS,
        tuning: tuning(),
        delay: JITTERED,
        work: Work::Slots { hold_ms: HOLD_MS },
        load: Box::new(move |node, _| {
            if node == 0 {
                0.9 * per_ms
            } else {
                0.1 * per_ms / (NODES - 1) as f64
            }
        }),
        seed: 13,
    }
    .run();
    let utilisation = outcome.slot_utilisation_from(MINUTE_MS, SLOTS);
    eprintln!(
        "[6] 10 slots, 3x, 90 % on one node, holds 2-4 s: most in use {}, utilisation {:.1} %",
        outcome.max_in_flight,
        100.0 * utilisation
    );
    assert_shares_within_limit(&outcome, SLOTS);
    assert!(outcome.max_in_flight <= SLOTS);
    assert!(utilisation >= 0.8, "utilisation {utilisation}");
}
