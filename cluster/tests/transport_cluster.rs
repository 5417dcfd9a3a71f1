//! chitchat over QUIC with shared-secret credentials: a cluster forms and shares state; a node
//! holding another secret is rejected on both sides and learns nothing.

mod transport_support;

use std::time::Duration;

use bytes::Bytes;
use starling_cluster::transport::{MessageKind, TransportError};
use transport_support::*;

const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_with_the_same_secret_form_a_cluster() {
    let secret = secret();
    let eps: Vec<_> = (0..3)
        .map(|i| secret_node(&secret, &format!("n{i}"), test_config(None)))
        .collect();
    let seed = eps[0].local_addr();
    let mut members = Vec::new();
    for (i, ep) in eps.iter().enumerate() {
        let seeds = if i == 0 { vec![] } else { vec![seed] };
        members.push(member(ep, &format!("n{i}"), &seeds).await);
    }
    for (i, m) in members.iter().enumerate() {
        wait_until(LIMIT, &format!("n{i} sees 3 live nodes"), || {
            live_count_is(m, 3)
        })
        .await;
    }

    set(&members[2], "http_addr", "10.0.0.3:8080").await;
    for (i, m) in members.iter().enumerate() {
        wait_until(LIMIT, &format!("n{i} sees n2's key"), || async {
            value_of(m, "n2", "http_addr").await.as_deref() == Some("10.0.0.3:8080")
        })
        .await;
    }

    for ep in &eps {
        let s = ep.stats().snapshot();
        assert_eq!(s.handshakes_rejected, 0, "{s:?}");
        // Streams cut by connection churn (two nodes dialling each other at once) may count as
        // truncated; nothing may fail to decode.
        assert_eq!(
            (s.decode_errors, s.unknown_kind, s.oversized),
            (0, 0, 0),
            "{s:?}"
        );
        assert!(s.messages_received > 0 && s.bytes_received > 0, "{s:?}");
        assert_eq!(
            ep.stats().kind(MessageKind::GOSSIP).messages_received,
            s.messages_received
        );
    }
    for m in members {
        m.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_secret_cannot_join() {
    let good = secret();
    let eps: Vec<_> = (0..3)
        .map(|i| secret_node(&good, &format!("n{i}"), test_config(None)))
        .collect();
    let addrs: Vec<_> = eps.iter().map(|e| e.local_addr()).collect();
    let mut members = Vec::new();
    for (i, ep) in eps.iter().enumerate() {
        let seeds: Vec<_> = addrs.iter().copied().filter(|a| *a != addrs[i]).collect();
        members.push(member(ep, &format!("n{i}"), &seeds).await);
    }
    for m in &members {
        set(m, "secret_state", "visible to members only").await;
    }

    let intruder_ep = secret_node(&secret(), "intruder", test_config(None));
    let intruder = member(&intruder_ep, "intruder", &addrs).await;
    set(&intruder, "evil", "1").await;

    // The cluster forms; the intruder's attempts fail on both sides, and are counted.
    for (i, m) in members.iter().enumerate() {
        wait_until(LIMIT, &format!("n{i} sees 3 live nodes"), || {
            live_count_is(m, 3)
        })
        .await;
    }
    wait_until(
        LIMIT,
        "every member rejected the intruder at least twice",
        || async {
            eps.iter()
                .all(|e| e.stats().snapshot().handshakes_rejected >= 2)
        },
    )
    .await;
    let s = intruder_ep.stats().snapshot();
    assert!(s.connects_failed >= 1, "{s:?}");
    assert_eq!(s.connects_ok + s.handshakes_accepted, 0, "{s:?}");

    // Members dialling the intruder fail too (its certificate is not from their CA).
    let err = eps[0]
        .send(
            intruder_ep.local_addr(),
            MessageKind(9),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(eps[0].stats().snapshot().connects_failed >= 1);
    wait_until(
        LIMIT,
        "the intruder rejected a member's handshake",
        || async { intruder_ep.stats().snapshot().handshakes_rejected >= 1 },
    )
    .await;

    // Neither side learned anything about the other.
    assert_eq!(known_ids(&intruder).await, vec!["intruder".to_string()]);
    assert_eq!(value_of(&intruder, "n0", "secret_state").await, None);
    assert_eq!(live_count(&intruder).await, 1);
    for m in &members {
        assert!(!known_ids(m).await.contains(&"intruder".to_string()));
        assert_eq!(value_of(m, "intruder", "evil").await, None);
    }
    // Nothing of the intruder's reached the message layer. (Truncated streams and read
    // timeouts are left out: they come from ordinary connection churn between members, which
    // a loaded machine makes more likely, not from the intruder.)
    for ep in &eps {
        let s = ep.stats().snapshot();
        assert_eq!(
            (s.decode_errors, s.unknown_kind, s.oversized),
            (0, 0, 0),
            "{s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_name_seeds_are_resolved_and_bad_seeds_refused() {
    use starling_cluster::transport::{MembershipConfig, MembershipError, spawn_membership};

    let secret = secret();
    let e0 = secret_node(&secret, "n0", test_config(None));
    let e1 = secret_node(&secret, "n1", test_config(None));
    let m0 = member(&e0, "n0", &[]).await;
    let mut config = MembershipConfig::new("n1", 1, e1.local_addr(), CLUSTER_ID);
    // `localhost` resolves to 127.0.0.1 (reachable) and possibly ::1 (not, from an IPv4
    // endpoint: those attempts fail and are counted, nothing else).
    config.seeds = vec![format!("localhost:{}", e0.local_addr().port())];
    config.gossip_interval = Duration::from_millis(100);
    config.seed_refresh_interval = Duration::from_millis(200);
    let m1 = spawn_membership(&e1, config, Vec::new()).await.unwrap();
    for m in [&m0, &m1] {
        wait_until(LIMIT, "2 live nodes via a host-name seed", || {
            live_count_is(m, 2)
        })
        .await;
    }

    for bad in ["localhost", "10.0.0.1", ":7946", "host:port"] {
        let e = secret_node(&secret, "n2", test_config(None));
        let mut config = MembershipConfig::new("n2", 1, e.local_addr(), CLUSTER_ID);
        config.seeds = vec![bad.to_string()];
        let err = spawn_membership(&e, config, Vec::new())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, MembershipError::BadSeed { .. }),
            "{bad}: {err}"
        );
    }
    m1.shutdown().await.unwrap();
    m0.shutdown().await.unwrap();
}
