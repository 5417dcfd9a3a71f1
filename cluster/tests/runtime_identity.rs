//! A peer may speak only for itself: eager pushes of another node's writes, rights requests on
//! behalf of another node, and deltas claiming this node's own future are refused and counted,
//! and the node keeps replicating.

mod runtime_support;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use runtime_support::*;
use starling_cluster::codec::{self, Kind};
use starling_cluster::crdt::{BudgetKey, Dot, Period, PeriodUnit, RightsRequest};
use starling_cluster::hlc::{HlcClock, NodeId, WriterId};
use starling_cluster::runtime::{SYNC_PUSH, SYNC_RELAY, SYNC_RIGHTS};
use starling_cluster::state::Replica;
use starling_cluster::tls::ClusterCredentials;
use starling_cluster::transport::{ClusterEndpoint, EndpointConfig, TransportError};

fn writer(name: &str) -> WriterId {
    WriterId::new(NodeId::new(name).unwrap(), 1)
}

fn replica_of(name: &str) -> Replica<Doc> {
    Replica::new(HlcClock::system(writer(name)))
}

/// An endpoint holding valid credentials for `name` (a peer that is not a cluster member).
fn outsider(cluster: &TestCluster, name: &str) -> ClusterEndpoint {
    let creds = ClusterCredentials::from_secret(&cluster.secret, name).unwrap();
    ClusterEndpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        &creds,
        EndpointConfig::default(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_of_another_nodes_writes_are_refused() {
    let cluster = TestCluster::start(1).await;
    let node = cluster.node(0);
    let peer = outsider(&cluster, "p1");
    let spoofed = replica_of("victim").put("spoofed", "x".to_string());
    let genuine = replica_of("p1").put("genuine", "y".to_string());
    for delta in [&spoofed, &genuine] {
        let bytes = codec::encode(Kind::Delta, delta).unwrap();
        peer.send(node.local_addr(), SYNC_PUSH, bytes)
            .await
            .unwrap();
    }
    wait_until(
        "the genuine push merges and the spoofed one is counted",
        || async {
            node.catalog_get("genuine").is_some()
                && node.stats().spoofed_pushes.load(Ordering::Relaxed) == 1
        },
    )
    .await;
    assert_eq!(node.catalog_get("spoofed"), None);
}

/// A node's own rights write carries every writer's row of its budget key: pushed, it is the
/// node's own write, not an impersonation (found reviewing the push check: such pushes were
/// refused and counted, and only anti-entropy delivered them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_rights_write_with_other_writers_rows_is_merged() {
    let c = TestCluster::start(2).await;
    let budget = BudgetKey::new("key:b", Period::new(PeriodUnit::Lifetime, 0));
    c.node(0)
        .mutate(|r| (r.mint(&budget, 1, 1_000).expect("first mint"), ()))
        .await
        .expect("persisted");
    c.node(1)
        .request_rights(c.node(0).local_addr(), &budget, 400)
        .await
        .expect("exchange")
        .expect("the donor has rights to spare");
    // Node 1's spend ships the key whole: node 0's row beside its own.
    c.node(1)
        .mutate(|r| (r.spend(&budget, 400).expect("held"), ()))
        .await
        .expect("persisted");
    c.wait_converged().await;
    for n in c.running() {
        assert_eq!(n.read(|r| r.rights().total_spent(&budget)), 400);
        assert_eq!(n.stats().spoofed_pushes.load(Ordering::Relaxed), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rights_request_on_behalf_of_another_node_is_refused() {
    let cluster = TestCluster::start(1).await;
    let node = cluster.node(0);
    let peer = outsider(&cluster, "p1");
    let request = |from: &str| RightsRequest {
        key: BudgetKey::new("key:a", Period::new(PeriodUnit::Month, 600)),
        from: writer(from),
        amount: 10,
        request_id: 7,
    };
    let ask = |req: RightsRequest| {
        let peer = peer.clone();
        let to = node.local_addr();
        async move {
            let bytes = codec::encode(Kind::RightsRequest, &req).unwrap();
            peer.request(to, SYNC_RIGHTS, bytes, 1 << 20).await
        }
    };
    let refused = ask(request("victim")).await.unwrap_err();
    assert!(
        matches!(refused, TransportError::Rejected { .. }),
        "{refused}"
    );
    assert_eq!(
        node.stats().spoofed_rights_requests.load(Ordering::Relaxed),
        1
    );
    // Asking for itself is answered (with nothing to give here).
    ask(request("p1")).await.expect("answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_claiming_this_nodes_future_is_refused_and_its_writes_still_propagate() {
    let cluster = TestCluster::start(2).await;
    let (n0, n1) = (cluster.node(0), cluster.node(1));
    n0.catalog_put("before", "1".to_string()).await.unwrap();
    let peer = outsider(&cluster, "p1");
    // Relayed (anti-entropy) deltas may carry anyone's rows, but not n0's future.
    let mut forged = replica_of("p1").put("forged", "x".to_string());
    forged.context.insert(&Dot {
        writer: n0.writer().clone(),
        seq: u64::MAX,
    });
    let bytes = codec::encode(Kind::Delta, &forged).unwrap();
    peer.send(n0.local_addr(), SYNC_RELAY, Bytes::from(bytes.to_vec()))
        .await
        .unwrap();
    wait_until("n0 refuses the forged delta", || async {
        n0.stats().rejected_future_seq.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(n0.catalog_get("forged"), None);
    n0.catalog_put("after", "2".to_string()).await.unwrap();
    wait_until("n0's later write reaches n1", || async {
        n1.catalog_get("after").is_some()
    })
    .await;
}
