//! How soon replicas agree after a partition heals, when the partition drops datagrams (as a
//! real network does, and as the nftables rules of the fault tests do): QUIC connections idle
//! out during the partition and connection attempts time out, so healing needs reconnection,
//! liveness and anti-entropy, in that order.

mod runtime_support;

use std::time::{Duration, Instant};

use runtime_support::{TestCluster, wait_until};
use starling_cluster::transport::PartitionTable;

/// Regression (jepsen seed 31): after a heal, anti-entropy reached the peers that had just
/// become live only at its next ticks, one peer per tick, and a peer whose exchange had failed
/// (its connection still backing off) only after a round over all the others. It now
/// exchanges with a peer as soon as gossip calls it live again. With a 30 s anti-entropy
/// interval the old loop waited for its next ticks (the replicas did not agree within 30 s);
/// now reconnection and liveness bound it (measured 0.2-1.0 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_is_synced_as_soon_as_it_is_live_again() {
    let c = TestCluster::start_on(4, PartitionTable::packets(), |c| {
        c.gossip_interval = Duration::from_millis(100);
        c.sync_interval = Duration::from_secs(30);
    })
    .await;
    c.split_and_write(2).await;
    // Held until every node calls the other side dead, its connections across have idled out
    // and an attempt to reconnect has failed: the state a partition of several seconds leaves.
    let failed: Vec<u64> = c
        .running()
        .map(|n| n.transport_stats().connects_failed)
        .collect();
    wait_until("the other side to be dead and unreachable", || async {
        for (n, before) in c.running().zip(&failed) {
            let live = n.members().await.iter().filter(|m| m.live).count();
            if live != 2 || n.transport_stats().connects_failed <= *before {
                return false;
            }
        }
        true
    })
    .await;
    assert!(c.node(1).read(|r| r.catalog().get("right").is_none()));
    c.partition.heal();
    let healed = Instant::now();
    c.wait_converged().await;
    let took = healed.elapsed();
    assert!(c.running().all(|n| {
        n.read(|r| r.catalog().get("left").is_some() && r.catalog().get("right").is_some())
    }));
    assert!(
        took < Duration::from_secs(10),
        "replicas agreed {took:?} after the heal"
    );
}
