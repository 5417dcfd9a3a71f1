//! A node's earlier lives: witnessed debits, catching up, and the automatic reclaim of the
//! budget rights a wiped incarnation left behind.

mod runtime_support;

use std::time::Duration;

use runtime_support::{TestCluster, wait_until};
use starling_cluster::crdt::{BudgetKey, Period, PeriodUnit};
use starling_cluster::runtime::WitnessError;

fn budget() -> BudgetKey {
    BudgetKey::new("key:lives", Period::new(PeriodUnit::Lifetime, 0))
}

/// n0 mints 1 000; n2 takes 300 and debits 50, witnessed. Returns n2's writer.
async fn n2_holds_rights(c: &TestCluster) -> starling_cluster::hlc::WriterId {
    let budget = budget();
    c.node(0)
        .mutate(|r| (r.mint(&budget, 0, 1_000).expect("first mint"), ()))
        .await
        .expect("persisted");
    c.node(2)
        .request_rights(c.node(0).local_addr(), &budget, 300)
        .await
        .expect("exchange")
        .expect("granted");
    c.node(2)
        .mutate(|r| (r.spend(&budget, 50).expect("held"), ()))
        .await
        .expect("persisted");
    c.node(2).witness(&budget).await.expect("a peer holds it");
    c.node(2).writer().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witnessed_debit_is_on_a_peer_when_witness_returns() {
    let c = TestCluster::start(3).await;
    let budget = budget();
    n2_holds_rights(&c).await;
    // Eager pushes may be slower; the witness is not: a peer has the debit already.
    let held = c
        .running()
        .take(2)
        .any(|n| n.read(|r| r.rights().total_spent(&budget)) == 50);
    assert!(held, "a peer holds the debit once witness returns");

    // Cut off from every peer, a debit finds no witness.
    let addrs: Vec<_> = c.running().map(|n| n.local_addr()).collect();
    c.partition.isolate(addrs[2], &addrs[..2]);
    c.node(2)
        .mutate(|r| (r.spend(&budget, 10).expect("held"), ()))
        .await
        .expect("persisted");
    let cut_off = tokio::time::timeout(Duration::from_secs(10), c.node(2).witness(&budget)).await;
    assert!(
        !matches!(cut_off, Ok(Ok(()))),
        "witnessed while cut off: {cut_off:?}"
    );
    c.partition.heal();
    wait_until("a witness after the heal", || async {
        c.node(2).witness(&budget).await.is_ok()
    })
    .await;
    assert!(matches!(
        c.node(0)
            .witness(&BudgetKey::new("key:none", budget.period))
            .await,
        Err(WitnessError::NothingWritten)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_takes_back_its_earlier_lifes_unused_rights_by_itself() {
    let mut c = TestCluster::start(3).await;
    let budget = budget();
    let old = n2_holds_rights(&c).await;
    c.wait_converged().await;
    c.nodes[2].take().expect("running").shutdown().await;

    // Back under its id with an empty data dir: a new incarnation.
    let wiped = tempfile::tempdir().expect("tempdir");
    let reborn = c.start_node("n2", wiped.path(), vec![c.seed.clone()]).await;
    let new = reborn.writer().clone();
    assert_ne!(new, old);
    c.nodes[2] = Some(reborn);
    wait_until(
        "the earlier life's rights back on every replica",
        || async {
            c.running().all(|n| {
                n.read(|r| {
                    let rights = r.rights();
                    rights.rights(&budget, &old) == 0
                        && rights.is_reclaimed(&budget, &old)
                        && rights.rights(&budget, &new) == 250
                        && rights.total_consumed(&budget) == 50
                        && rights.total_minted(&budget) == 1_000
                })
            })
        },
    )
    .await;
    assert!(c.node(2).caught_up().await);
    assert_eq!(
        c.node(2)
            .stats()
            .earlier_lives_reclaimed
            .load(std::sync::atomic::Ordering::Relaxed),
        250
    );
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reclaim_waits_until_every_known_member_has_been_heard() {
    // Gossip remembers the dead member for the whole test.
    let mut c = TestCluster::start_with(3, |config| {
        config.dead_node_grace = Duration::from_secs(600);
    })
    .await;
    let budget = budget();
    let old = n2_holds_rights(&c).await;
    c.wait_converged().await;
    let n1_dir = c.dirs[1].path().to_owned();
    c.nodes[1].take().expect("running").shutdown().await;
    c.nodes[2].take().expect("running").shutdown().await;

    let wiped = tempfile::tempdir().expect("tempdir");
    let reborn = c.start_node("n2", wiped.path(), vec![c.seed.clone()]).await;
    c.nodes[2] = Some(reborn);
    // n1 is known (n0's gossip tells of it) but down: the new life has pulled from n0 only.
    wait_until("n2 pulled from n0 and learnt of n1", || async {
        let members = c.node(2).members().await;
        let pulled_n0 = members
            .iter()
            .any(|m| m.node_id == "n0" && m.last_sync_ms_ago.is_some());
        let knows_n1 = members.iter().any(|m| m.node_id == "n1");
        pulled_n0 && knows_n1
    })
    .await;
    assert!(!c.node(2).caught_up().await, "n1 has not been heard");
    assert!(
        !c.node(2).read(|r| r.rights().is_reclaimed(&budget, &old)),
        "nothing taken back before catching up"
    );

    let n1 = c.start_node("n1", &n1_dir, vec![c.seed.clone()]).await;
    c.nodes[1] = Some(n1);
    let new = c.node(2).writer().clone();
    wait_until("the reclaim once n1 is back", || async {
        c.running().all(|n| {
            n.read(|r| {
                r.rights().is_reclaimed(&budget, &old) && r.rights().rights(&budget, &new) == 250
            })
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_is_no_member_until_it_hears_from_a_peer() {
    let c = TestCluster::start(1).await;
    assert!(!c.node(0).is_clustered());
    assert!(c.node(0).caught_up().await, "nobody to catch up with");
    let dir = tempfile::tempdir().expect("tempdir");
    let joiner = c.start_node("n1", dir.path(), vec![c.seed.clone()]).await;
    assert!(joiner.is_clustered(), "seeds make a member");
    wait_until("n0 hears from n1", || async { c.node(0).is_clustered() }).await;
    joiner.shutdown().await;
}
