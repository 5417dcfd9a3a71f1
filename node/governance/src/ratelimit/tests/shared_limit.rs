//! One [`SharedLimit`] driven by hand: admission, the demarcation rule as seen through the
//! public API, membership and limit changes.

use super::super::{LimitKind, PeerReport, ShareReport, SharedLimit, Tuning};

const MINUTE: LimitKind = LimitKind::Rate { window_ms: 60_000 };
/// The default delivery bound: a raise waits this long after its intent was first reported.
const D: u64 = 200;

fn peer(share: f64, intent: f64, seq: u64, received_ms: u64) -> (&'static str, PeerReport) {
    (
        "b",
        PeerReport {
            report: ShareReport {
                demand: 0.0,
                share,
                intent,
                seq,
                tiebreak: 1,
            },
            received_ms,
        },
    )
}

/// Asks `node` for 100 requests a second from `from_ms` to `to_ms`.
fn busy(node: &SharedLimit, from_ms: u64, to_ms: u64) {
    for now in (from_ms..to_ms).step_by(10) {
        let _ = node.try_acquire(1, now);
    }
}

/// A node asked for 100 requests a second from 0 to 1 s, reporting every 100 ms: its demand is
/// ten times the limit of 600 a minute.
fn busy_node(limit: u64, live_nodes: usize) -> SharedLimit {
    let node = SharedLimit::new(MINUTE, limit, live_nodes, 0).with_tiebreak(0);
    for now in (0..1_000).step_by(100) {
        busy(&node, now, now + 100);
        node.report(now + 100);
    }
    node
}

#[test]
fn starts_at_an_even_split_with_a_full_bucket() {
    let node = SharedLimit::new(MINUTE, 600, 5, 0);
    let status = node.status(0);
    assert_eq!(status.share, 120.0);
    assert_eq!(status.limit, 600);
    // One request plus 1 % of the share.
    assert_eq!(status.remaining, 2);
    assert_eq!(node.limit(), 600);
}

#[test]
fn admits_the_burst_then_tells_when_to_retry() {
    let node = SharedLimit::new(MINUTE, 600, 5, 0);
    let first = node.try_acquire(1, 0).expect("full bucket");
    assert_eq!(first.remaining, 1);
    assert!(node.try_acquire(1, 0).is_ok());
    let rejected = node.try_acquire(1, 0).expect_err("bucket empty");
    assert_eq!(rejected.limit, 600);
    // 120 per minute refills one request in 500 ms; 0.2 of it is left after the burst.
    assert_eq!(rejected.retry_after_ms, 400);
    assert!(node.try_acquire(1, 400).is_ok());
}

#[test]
fn true_ups_charge_and_refund() {
    let node = SharedLimit::new(MINUTE, 600, 5, 0);
    assert!(node.try_acquire(1, 0).is_ok());
    node.adjust(30, 0);
    assert!(node.try_acquire(1, 0).is_err(), "in debt");
    node.adjust(-30, 0);
    assert!(node.try_acquire(1, 0).is_ok(), "debt refunded");
}

#[test]
fn lowering_is_immediate() {
    // This node is idle; its peer wants everything.
    let node = SharedLimit::new(MINUTE, 600, 2, 0);
    node.report(100);
    let mut busy = peer(300.0, 300.0, 1, 100);
    busy.1.report.demand = 6_000.0;
    node.update_share(&[busy], 2, 100);
    // The floor: 0.5 % of the limit.
    assert_eq!(node.status(100).share, 3.0);
    assert_eq!(node.report(200).intent, 3.0);
}

#[test]
fn raising_waits_for_the_room_and_for_the_intent_to_be_out() {
    let node = busy_node(600, 2);
    node.update_share(&[peer(300.0, 300.0, 1, 1_000)], 2, 1_000);
    // Target 597 (the peer keeps its floor of 3), but the peer still holds 300.
    assert_eq!(node.status(1_000).share, 300.0);
    assert_eq!(node.report(1_000).intent, 597.0);

    // The peer has lowered, but peers may still hold reports without the intent.
    busy(&node, 1_000, 1_100);
    node.update_share(&[peer(3.0, 3.0, 2, 1_100)], 2, 1_100);
    assert_eq!(node.status(1_100).share, 300.0);
    node.report(1_100);
    busy(&node, 1_100, 1_000 + D - 1);
    node.update_share(&[peer(3.0, 3.0, 2, 1_100)], 2, 1_000 + D - 1);
    assert_eq!(node.status(1_000 + D - 1).share, 300.0);

    // The intent has been out for the delivery bound: raise.
    node.update_share(&[peer(3.0, 3.0, 3, 1_200)], 2, 1_000 + D);
    assert_eq!(node.status(1_000 + D).share, 597.0);
}

#[test]
fn raising_never_takes_what_a_peer_intends() {
    let node = busy_node(600, 2);
    node.update_share(&[peer(100.0, 250.0, 1, 1_000)], 2, 1_000);
    node.report(1_000);
    node.update_share(&[peer(100.0, 250.0, 2, 1_200)], 2, 1_200);
    assert_eq!(node.status(1_200).share, 350.0);
}

#[test]
fn stale_peers_are_held_at_the_larger_of_share_and_intent() {
    let tuning = Tuning::default();
    let stale_ms = 1_000 - tuning.stale_after_ms() - 1;
    let node = busy_node(600, 2);
    node.update_share(&[peer(3.0, 400.0, 1, stale_ms)], 2, 1_000);
    // Held at 400, so this node's target is 200, which it takes at once.
    assert_eq!(node.status(1_000).share, 200.0);
}

#[test]
fn no_raise_while_a_peer_is_stale() {
    let node = busy_node(600, 2);
    node.update_share(&[peer(3.0, 3.0, 1, 1_000)], 2, 1_000);
    node.report(1_000);
    // Everything else would allow a raise to 597 now.
    node.update_share(&[peer(3.0, 3.0, 1, 1_000)], 2, 1_400);
    assert_eq!(node.status(1_400).share, 300.0);
    node.update_share(&[peer(3.0, 3.0, 2, 1_400)], 2, 1_400);
    assert_eq!(node.status(1_400).share, 597.0);
}

#[test]
fn counted_nodes_without_reports_hold_an_even_split() {
    let node = busy_node(600, 3);
    node.report(1_000);
    // Three nodes counted, one heard from: the silent one holds 200, and no raise.
    node.update_share(&[peer(3.0, 3.0, 1, 1_200)], 3, 1_200);
    assert_eq!(node.status(1_200).share, 200.0);
    node.update_share(&[peer(3.0, 3.0, 1, 1_200)], 3, 1_400);
    assert_eq!(node.status(1_400).share, 200.0);
}

#[test]
fn departed_peers_listed_by_the_caller_stay_counted() {
    let node = busy_node(600, 2);
    node.report(1_000);
    let peers = [
        ("b", peer(100.0, 100.0, 1, 1_200).1),
        ("c", peer(100.0, 100.0, 1, 1_200).1),
    ];
    node.update_share(&peers, 1, 1_200);
    assert_eq!(node.status(1_200).share, 300.0);
    assert_eq!(node.report(1_200).intent, 594.0);
}

#[test]
fn repeated_keys_count_once_at_their_newest_report() {
    let node = busy_node(600, 2);
    let peers = [peer(3.0, 3.0, 2, 1_000), peer(500.0, 500.0, 1, 1_000)];
    node.update_share(&peers, 2, 1_000);
    node.report(1_000);
    node.update_share(&peers, 2, 1_000 + D);
    assert_eq!(node.status(1_000 + D).share, 597.0);
}

#[test]
fn a_lower_limit_applies_at_once_a_higher_one_through_the_exchange() {
    let node = SharedLimit::new(MINUTE, 600, 2, 0);
    node.set_limit(300, 0);
    assert_eq!(node.status(0).share, 150.0);
    assert_eq!(node.status(0).limit, 300);
    node.set_limit(1_200, 0);
    assert_eq!(node.status(0).share, 150.0);
    // Both want an even split of the new limit, and both announce it before taking it.
    let announced = [peer(150.0, 600.0, 1, 0)];
    node.update_share(&announced, 2, 0);
    assert_eq!(node.status(0).share, 150.0);
    assert_eq!(node.report(0).intent, 600.0);
    node.update_share(&announced, 2, D);
    assert_eq!(node.status(D).share, 600.0);
}

#[test]
fn joining_a_running_cluster_starts_at_the_floor() {
    let node = SharedLimit::new(MINUTE, 600, 5, 0);
    node.lower_to_floor(5, 0);
    assert_eq!(node.status(0).share, 3.0);
}

#[test]
fn reports_count_up_and_carry_the_tiebreak() {
    let node = SharedLimit::new(MINUTE, 600, 5, 0).with_tiebreak(42);
    let first = node.report(100);
    let second = node.report(200);
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(second.tiebreak, 42);
    assert_eq!(second.share, 120.0);
}

#[test]
fn slots_are_taken_and_released() {
    let node = SharedLimit::new(LimitKind::Concurrency, 10, 5, 0);
    assert_eq!(node.status(0).share, 2.0);
    assert_eq!(node.try_acquire(1, 0).map(|ok| ok.remaining), Ok(1));
    assert!(node.try_acquire(1, 0).is_ok());
    assert!(node.try_acquire(1, 0).is_err());
    node.adjust(-1, 10);
    assert!(node.try_acquire(1, 10).is_ok());
    assert_eq!(node.in_use(), 2);
}

#[test]
fn slots_in_use_stay_reported_after_the_share_drops() {
    let node = SharedLimit::new(LimitKind::Concurrency, 10, 2, 0);
    for _ in 0..5 {
        assert!(node.try_acquire(1, 0).is_ok());
    }
    let mut busy = peer(5.0, 5.0, 1, 100);
    busy.1.report.demand = 10.0;
    node.update_share(&[busy], 2, 100);
    // Down to the floor of one slot.
    assert_eq!(node.status(100).share, 1.0);
    assert!(node.try_acquire(1, 100).is_err());
    // Peers must keep leaving room for the five slots still held.
    assert_eq!(node.report(100).share, 5.0);
    node.adjust(-1, 200);
    assert_eq!(node.report(200).share, 4.0);
}

#[test]
fn tiny_limits_admit_one_request_per_share_and_wait_the_rest() {
    // One request a minute over five nodes: a fifth each.
    let node = SharedLimit::new(MINUTE, 1, 5, 0);
    assert_eq!(node.status(0).share, 0.2);
    assert!(node.try_acquire(1, 0).is_ok());
    let rejected = node.try_acquire(1, 1).expect_err("in debt");
    assert_eq!(rejected.retry_after_ms, 60_000);
    // Three slots over five nodes: two nodes start without any.
    let slots = SharedLimit::new(LimitKind::Concurrency, 3, 5, 0);
    assert_eq!(slots.status(0).share, 0.0);
    assert!(slots.try_acquire(1, 0).is_err());
}

#[test]
fn retry_is_suggested_sooner_while_a_raise_is_on_its_way() {
    let node = busy_node(600, 2);
    node.lower_to_floor(2, 1_000);
    while node.try_acquire(1, 1_000).is_ok() {}
    // At 3 a minute the bucket refills in 20 s...
    let rejected = node.try_acquire(1, 1_000).expect_err("bucket empty");
    assert_eq!(rejected.retry_after_ms, 20_000);
    // ...but this node is about to raise its share.
    node.update_share(&[peer(597.0, 597.0, 1, 1_000)], 2, 1_000);
    let rejected = node.try_acquire(1, 1_000).expect_err("bucket empty");
    assert_eq!(rejected.retry_after_ms, Tuning::default().stale_after_ms());
}
