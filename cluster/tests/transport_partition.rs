//! The partition hook: one-way and two-way drops between chosen peers at the transport level,
//! for messages, requests and chitchat gossip, and recovery once healed.

mod transport_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use starling_cluster::transport::{MessageKind, PartitionTable, TransportError};
use tokio::time::timeout;
use transport_support::*;

const KIND: MessageKind = MessageKind(30);
const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_partition_drops_one_direction_only() {
    let secret = secret();
    let table = Arc::new(PartitionTable::new());
    let a = secret_node(&secret, "a", test_config(Some(table.clone())));
    let b = secret_node(&secret, "b", test_config(Some(table.clone())));
    let mut a_inbox = a.subscribe(KIND, 1024).unwrap();
    let mut b_inbox = b.subscribe(KIND, 1024).unwrap();
    let mut b_requests = b.serve(KIND, 1024).unwrap();
    tokio::spawn(async move {
        while let Some(req) = b_requests.recv().await {
            let payload = req.payload.clone();
            req.respond(payload);
        }
    });

    table.block(a.local_addr(), b.local_addr());
    // a → b: dropped silently at a.
    a.send(b.local_addr(), KIND, Bytes::from_static(b"lost"))
        .await
        .unwrap();
    assert_eq!(a.stats().snapshot().partition_dropped, 1);
    let err = a
        .request(b.local_addr(), KIND, Bytes::from_static(b"q"), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Partitioned { .. }), "{err}");
    // b → a: still flows.
    b.send(a.local_addr(), KIND, Bytes::from_static(b"ok"))
        .await
        .unwrap();
    let got = timeout(LIMIT, a_inbox.recv()).await.unwrap().unwrap();
    assert_eq!(&got.payload[..], b"ok");

    // Only b → a blocked: a's request reaches b but the response is dropped.
    table.heal();
    table.block(b.local_addr(), a.local_addr());
    let err = a
        .request(b.local_addr(), KIND, Bytes::from_static(b"q"), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Partitioned { .. }), "{err}");

    table.heal();
    a.send(b.local_addr(), KIND, Bytes::from_static(b"after"))
        .await
        .unwrap();
    let got = timeout(LIMIT, b_inbox.recv()).await.unwrap().unwrap();
    assert_eq!(&got.payload[..], b"after");
    let reply = a
        .request(b.local_addr(), KIND, Bytes::from_static(b"q"), 1024)
        .await
        .unwrap();
    assert_eq!(&reply[..], b"q");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_heals_after_a_partition() {
    let secret = secret();
    let table = Arc::new(PartitionTable::new());
    let eps: Vec<_> = (0..3)
        .map(|i| secret_node(&secret, &format!("n{i}"), test_config(Some(table.clone()))))
        .collect();
    let addrs: Vec<_> = eps.iter().map(|e| e.local_addr()).collect();
    let mut members = Vec::new();
    for (i, ep) in eps.iter().enumerate() {
        let seeds: Vec<_> = addrs.iter().copied().filter(|a| *a != addrs[i]).collect();
        members.push(member(ep, &format!("n{i}"), &seeds).await);
    }
    for (i, m) in members.iter().enumerate() {
        wait_until(LIMIT, &format!("n{i} sees 3 live nodes"), || {
            live_count_is(m, 3)
        })
        .await;
    }

    // Cut n2 off both ways, then publish on n0.
    table.isolate(addrs[2], &addrs[..2]);
    let dropped_before = eps[2].stats().snapshot().partition_dropped;
    set(&members[0], "catalog_version", "42").await;
    wait_until(LIMIT, "n1 sees the update", || async {
        value_of(&members[1], "n0", "catalog_version")
            .await
            .as_deref()
            == Some("42")
    })
    .await;
    // Evidence that n2 kept trying (and that its gossip was dropped) for a while: at least
    // ten more drops on its side, i.e. several gossip rounds.
    wait_until(LIMIT, "n2's gossip dropped for several rounds", || async {
        eps[2].stats().snapshot().partition_dropped >= dropped_before + 10
    })
    .await;
    assert_eq!(value_of(&members[2], "n0", "catalog_version").await, None);

    table.heal();
    let healed_in = wait_until(LIMIT, "n2 catches up after the heal", || async {
        value_of(&members[2], "n0", "catalog_version")
            .await
            .as_deref()
            == Some("42")
    })
    .await;
    println!("n2 caught up {healed_in:?} after the partition healed");
    for (i, m) in members.iter().enumerate() {
        wait_until(LIMIT, &format!("n{i} sees 3 live nodes again"), || {
            live_count_is(m, 3)
        })
        .await;
    }
}
