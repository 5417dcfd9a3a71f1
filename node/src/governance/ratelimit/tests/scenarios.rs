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

#[test]
fn even_overload_stays_within_the_bound() {
    let outcome = rpm(FIXED, even(RPM, 10.0, 1.0)).run();
    let max = outcome.max_window(MINUTE_MS);
    let min = outcome.min_window_from(MINUTE_MS, MINUTE_MS);
    eprintln!(
        "[1] RPM {RPM}, even 10x, delay 50 ms: max per 60 s window {max} (+{}), min after warm-up {min} ({:.1} %)",
        max.saturating_sub(RPM),
        100.0 * min as f64 / RPM as f64
    );
    assert_shares_within_limit(&outcome, RPM);
    assert!(max <= RPM_BOUND, "{max} admitted in one window");
}

#[test]
fn skewed_overload_stays_within_the_bound_and_uses_the_limit() {
    let outcome = rpm(FIXED, skewed(RPM, 10.0, 1.0, (0, 0), 0)).run();
    let max = outcome.max_window(MINUTE_MS);
    let min = outcome.min_window_from(MINUTE_MS, MINUTE_MS);
    eprintln!(
        "[2] RPM {RPM}, 90 % on one node, 10x, delay 50 ms: max per window {max} (+{}), min after warm-up {min} ({:.1} %)",
        max.saturating_sub(RPM),
        100.0 * min as f64 / RPM as f64
    );
    assert_shares_within_limit(&outcome, RPM);
    assert!(max <= RPM_BOUND, "{max} admitted in one window");
    assert!(min * 100 >= RPM * 95, "only {min} admitted in one window");
}

#[test]
fn over_admission_does_not_grow_with_attack_intensity() {
    let mut worst = 0;
    for overload in [2.0, 10.0, 100.0] {
        for (delay_name, delay) in [("50 ms", FIXED), ("20-150 ms", JITTERED)] {
            for skew in [false, true] {
                let load = if skew {
                    skewed(RPM, overload, 1.0, (0, 0), 0)
                } else {
                    even(RPM, overload, 1.0)
                };
                let outcome = rpm(delay, load).run();
                let max = outcome.max_window(MINUTE_MS);
                let min = outcome.min_window_from(MINUTE_MS, MINUTE_MS);
                eprintln!(
                    "[3] RPM {RPM}, {overload}x, {}, delay {delay_name}: max per window {max} (+{}), min after warm-up {min} ({:.1} %)",
                    if skew { "skewed" } else { "even" },
                    max.saturating_sub(RPM),
                    100.0 * min as f64 / RPM as f64
                );
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
    /// The measured recovery is a little over 1 s; this bound leaves room for noise.
    const RECOVERY_BOUND_MS: u64 = 20_000;
    for (overload, delay_name, delay) in [
        (2.0, "50 ms", FIXED),
        (2.0, "20-150 ms", JITTERED),
        (10.0, "20-150 ms", JITTERED),
    ] {
        let outcome = rpm(delay, skewed(RPM, overload, 1.0, (0, 3), SWITCH_MS)).run();
        let max = outcome.max_window(MINUTE_MS);
        let before = outcome.settles_after(0, 0.95);
        let recovery = outcome.settles_after(SWITCH_MS, 0.95);
        eprintln!(
            "[4] RPM {RPM}, 90 % moving from node 0 to node 3 at 2 min, {overload}x, delay {delay_name}: max per window {max} (+{}), usable share >= 95 % from {before:?} ms, again {recovery:?} ms after the move",
            max.saturating_sub(RPM)
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
    // Per node, a window admits at most its share plus the larger of its burst (1 % of its
    // share) and the largest request; true-ups in flight at the window's edges add what the
    // settlement delay lets through.
    let bound = TPM + TPM / 50 + NODES as u64 * ESTIMATE.1;
    for (name, load) in [
        ("even", even(TPM, 10.0, mean_estimate)),
        ("skewed", skewed(TPM, 10.0, mean_estimate, (0, 0), 0)),
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
        let max = outcome.max_window(MINUTE_MS);
        let min = outcome.min_window_from(MINUTE_MS, MINUTE_MS);
        eprintln!(
            "[5] TPM {TPM}, {name} 10x, estimates {ESTIMATE:?} trued up by -50..+20 % after 0.5-5 s: max true tokens per window {max} (+{:.2} %), min after warm-up {min} ({:.1} %), bound {bound}",
            100.0 * (max as f64 / TPM as f64 - 1.0),
            100.0 * min as f64 / TPM as f64
        );
        assert_shares_within_limit(&outcome, TPM);
        assert!(max <= bound, "{max} true tokens in one window");
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
        "[6] {SLOTS} slots, 90 % on one node, 3x, holds {HOLD_MS:?} ms: most in use at once {}, utilisation after warm-up {:.1} %",
        outcome.max_in_flight,
        100.0 * utilisation
    );
    assert_shares_within_limit(&outcome, SLOTS);
    assert!(outcome.max_in_flight <= SLOTS);
    assert!(utilisation >= 0.8, "utilisation {utilisation}");
}
