//! In-process clusters: replication, convergence after partitions, restarts, dead nodes.

mod runtime_support;

use std::time::Duration;

use runtime_support::{TestCluster, config, wait_until, wait_until_within};
use starling_cluster::crdt::{CounterKey, Period, PeriodUnit, Usage};
use starling_cluster::runtime::ClusterNode;

fn key() -> CounterKey {
    CounterKey::new("key:test", Period::new(PeriodUnit::Lifetime, 0))
}

fn usage(spend: u64) -> Usage {
    Usage {
        spend_micros: spend,
        tokens: spend * 10,
        requests: 1,
    }
}

async fn add(node: &ClusterNode<String>, spend: u64) {
    node.mutate(|r| (r.add_usage(&key(), usage(spend)).expect("period open"), ()))
        .await
        .expect("persisted");
}

fn total(node: &ClusterNode<String>) -> Usage {
    node.read(|r| r.counters().total(&key()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_write_on_one_node_is_visible_on_all() {
    let c = TestCluster::start(3).await;
    c.node(1)
        .catalog_put("key-1", "hello".to_owned())
        .await
        .expect("put");
    wait_until("the write on every node", || async {
        c.running()
            .all(|n| n.read(|r| r.catalog().get("key-1").cloned()) == Some("hello".to_owned()))
    })
    .await;
    c.node(2).catalog_delete("key-1").await.expect("delete");
    wait_until("the delete on every node", || async {
        c.running()
            .all(|n| n.read(|r| r.catalog().get("key-1").is_none()))
    })
    .await;
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_converge_to_the_same_sum_on_five_nodes() {
    let c = TestCluster::start(5).await;
    for (i, node) in c.running().enumerate() {
        for _ in 0..10 {
            add(node, i as u64 + 1).await;
        }
    }
    // 10 × (1 + 2 + 3 + 4 + 5)
    wait_until("the sums", || async {
        c.running().all(|n| total(n).spend_micros == 150)
    })
    .await;
    assert!(c.running().all(|n| total(n).requests == 50));
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_byte_identical_after_a_partition_heals() {
    let c = TestCluster::start(5).await;
    c.split_and_write(2).await;
    c.node(1)
        .catalog_put("both", "from-left".to_owned())
        .await
        .expect("put");
    c.node(3)
        .catalog_put("both", "from-right".to_owned())
        .await
        .expect("put");
    add(c.node(0), 7).await;
    add(c.node(3), 5).await;
    // Each side converges on its own and does not see the other.
    wait_until("left side", || async {
        c.node(1).read(|r| r.catalog().get("left").is_some())
    })
    .await;
    assert!(c.node(1).read(|r| r.catalog().get("right").is_none()));
    c.partition.heal();
    c.wait_converged().await;
    let states: Vec<_> = c
        .running()
        .map(|n| n.full_state_bytes().expect("encodes"))
        .collect();
    assert!(
        states.windows(2).all(|w| w[0] == w[1]),
        "full states differ byte for byte"
    );
    // The concurrent writes resolved the same way everywhere, and nothing was lost.
    let both: Vec<_> = c
        .running()
        .map(|n| n.read(|r| r.catalog().get("both").cloned()))
        .collect();
    assert!(
        both.windows(2).all(|w| w[0] == w[1]) && both[0].is_some(),
        "{both:?}"
    );
    assert!(c.running().all(|n| total(n).spend_micros == 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_same_data_dir_keeps_everything() {
    let mut c = TestCluster::start(1).await;
    let node = c.nodes[0].take().expect("running");
    node.catalog_put("k", "v".to_owned()).await.expect("put");
    add(&node, 9).await;
    let writer = node.writer().clone();
    let before = node.digest().expect("digest");
    node.shutdown().await;
    let restarted = c.start_node("n0", c.dirs[0].path(), Vec::new()).await;
    assert_eq!(
        restarted.writer(),
        &writer,
        "same data dir, same incarnation"
    );
    assert_eq!(restarted.digest().expect("digest"), before);
    assert_eq!(total(&restarted).spend_micros, 9);
    // And after a snapshot, too.
    restarted.snapshot().await.expect("snapshot");
    add(&restarted, 1).await;
    restarted.shutdown().await;
    let again = c.start_node("n0", c.dirs[0].path(), Vec::new()).await;
    assert_eq!(total(&again).spend_micros, 10);
    assert_eq!(
        again.read(|r| r.catalog().get("k").cloned()),
        Some("v".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_an_empty_data_dir_does_not_regress_counters() {
    let mut c = TestCluster::start(3).await;
    add(c.node(2), 100).await;
    wait_until("the first spend everywhere", || async {
        c.running().all(|n| total(n).spend_micros == 100)
    })
    .await;
    let old = c.nodes[2].take().expect("running");
    let old_writer = old.writer().clone();
    old.shutdown().await;
    // Same id, wiped disk.
    let wiped = tempfile::tempdir().expect("tempdir");
    let reborn = c.start_node("n2", wiped.path(), vec![c.seed.clone()]).await;
    assert_ne!(
        reborn.writer(),
        &old_writer,
        "a wiped node gets a new incarnation"
    );
    add(&reborn, 5).await;
    c.nodes[2] = Some(reborn);
    c.dirs[2] = wiped;
    // The old slot's 100 and the new slot's 5: the new increments are not hidden by the old max.
    wait_until("old and new spends summed everywhere", || async {
        c.running().all(|n| total(n).spend_micros == 105)
    })
    .await;
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_forgotten_by_gossip_still_counts() {
    let mut c = TestCluster::start(3).await;
    add(c.node(2), 42).await;
    wait_until("the spend everywhere", || async {
        c.running().all(|n| total(n).spend_micros == 42)
    })
    .await;
    let dead = c.nodes[2].take().expect("running");
    dead.shutdown().await;
    // Wait until gossip has forgotten it entirely (dead_node_grace is 2 s in these tests).
    wait_until("gossip to forget n2", || async {
        for node in c.running() {
            if node.members().await.iter().any(|m| m.node_id == "n2") {
                return false;
            }
        }
        true
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        c.running().all(|n| total(n).spend_micros == 42),
        "a dead writer's counts stay in the sum"
    );
}

fn gc_checks(node: &ClusterNode<String>) -> u64 {
    node.stats()
        .gc_checks
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_are_collected_only_after_every_member_acknowledged_them() {
    // Gossip must keep remembering the cut-off node for the whole test: a member it has
    // forgotten no longer holds collection back (see docs/cluster.md).
    let c = TestCluster::start_with(3, |cfg| cfg.dead_node_grace = Duration::from_secs(600)).await;
    let addrs: Vec<_> = c.running().map(ClusterNode::local_addr).collect();
    // n2 is cut off: it cannot acknowledge the delete.
    c.partition.isolate(addrs[2], &addrs[..2]);
    c.node(0)
        .catalog_put("doomed", "x".to_owned())
        .await
        .expect("put");
    c.node(0).catalog_delete("doomed").await.expect("delete");
    wait_until("n1 to hold the tombstone", || async {
        c.node(1).read(|r| r.catalog().tombstones()) == 1
    })
    .await;
    // The collector looks several times while n2's acknowledgement is missing (it has either
    // none from n2 or only one from before the delete).
    let checks = gc_checks(c.node(0));
    wait_until("more collector checks on n0", || async {
        gc_checks(c.node(0)) >= checks + 3
    })
    .await;
    assert_eq!(
        c.node(0).read(|r| r.catalog().tombstones()),
        1,
        "n2 has not acknowledged it yet"
    );
    c.partition.heal();
    wait_until("the tombstone collected everywhere", || async {
        c.running()
            .all(|n| n.read(|r| r.catalog().tombstones()) == 0)
    })
    .await;
    assert!(c.running().all(|n| n.catalog_get("doomed").is_none()));
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_move_by_request_and_never_go_negative() {
    use starling_cluster::crdt::BudgetKey;
    let c = TestCluster::start(2).await;
    let budget = BudgetKey::new("key:b", Period::new(PeriodUnit::Lifetime, 0));
    c.node(0)
        .mutate(|r| (r.mint(&budget, 1, 1_000).expect("first mint"), ()))
        .await
        .expect("persisted");
    assert_eq!(c.node(1).read(|r| r.rights().local_rights(&budget)), 0);
    let grant = c
        .node(1)
        .request_rights(c.node(0).local_addr(), &budget, 400)
        .await
        .expect("exchange")
        .expect("the donor has rights to spare");
    assert_eq!(grant.amount, 400);
    // Spendable at once: the transfer came with the reply.
    assert_eq!(c.node(1).read(|r| r.rights().local_rights(&budget)), 400);
    assert_eq!(c.node(0).read(|r| r.rights().local_rights(&budget)), 600);
    let over = c.node(1).read(|r| r.clone().spend(&budget, 401).is_err());
    assert!(over, "a node cannot spend rights it does not hold");
    c.node(1)
        .mutate(|r| (r.spend(&budget, 400).expect("held"), ()))
        .await
        .expect("persisted");
    c.wait_converged().await;
    for n in c.running() {
        let (minted, spent) = n.read(|r| {
            (
                r.rights().total_minted(&budget),
                r.rights().total_spent(&budget),
            )
        });
        assert_eq!((minted, spent), (1_000, 400));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_sync_channels_is_dropped_and_counted() {
    use bytes::Bytes;
    use starling_cluster::runtime::{SYNC_PULL, SYNC_PUSH, SYNC_RIGHTS};
    use starling_cluster::tls::ClusterCredentials;
    use starling_cluster::transport::{ClusterEndpoint, EndpointConfig};
    let c = TestCluster::start(2).await;
    // An authenticated peer (it holds the secret) that sends nonsense.
    let credentials = ClusterCredentials::from_secret(&c.secret, "rogue").expect("credentials");
    let rogue = ClusterEndpoint::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &credentials,
        EndpointConfig::default(),
    )
    .expect("binds");
    let target = c.node(0).local_addr();
    for payload in [
        Bytes::from_static(b"garbage"),
        Bytes::from(vec![0xff; 4096]),
        Bytes::from_static(b"STRL\x01\x02\x00\x00\x00\x09oops"),
    ] {
        let _ = rogue.send(target, SYNC_PUSH, payload.clone()).await;
        let _ = rogue
            .request(target, SYNC_PULL, payload.clone(), 1024)
            .await;
        let _ = rogue.request(target, SYNC_RIGHTS, payload, 1024).await;
    }
    wait_until("the malformed messages counted", || async {
        c.node(0)
            .stats()
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 9
    })
    .await;
    // Still replicating.
    c.node(0)
        .catalog_put("after", "ok".to_owned())
        .await
        .expect("put");
    wait_until("replication after garbage", || async {
        c.node(1).catalog_get("after").is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_its_old_address_rejoins_with_fresh_gossip() {
    let mut c = TestCluster::start(2).await;
    let old = c.nodes[1].take().expect("running");
    let addr = old.local_addr();
    old.shutdown().await;
    let mut cfg = config(
        "n1",
        c.dirs[1].path().to_owned(),
        &c.secret,
        vec![c.seed.clone()],
        &c.partition,
    );
    cfg.listen = addr;
    // The UDP port is released asynchronously after close: retry the bind until it is free.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let restarted = loop {
        match ClusterNode::<String>::start(cfg.clone()).await {
            Ok(node) => break node,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cannot rebind {addr}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    c.nodes[1] = Some(restarted);
    // The previous process lingers in gossip as a dead member of an older generation; the new
    // one is live, and its new gossip state is taken, not ignored as older than the previous process's.
    c.node(1).set_metadata("probe", "after-restart").await;
    wait_until("n0 to see n1's fresh metadata", || async {
        c.node(0).members().await.iter().any(|m| {
            m.node_id == "n1"
                && m.live
                && m.metadata.get("probe").map(String::as_str) == Some("after-restart")
        })
    })
    .await;
    c.node(1)
        .catalog_put("after", "restart".to_owned())
        .await
        .expect("put");
    wait_until("the write from the restarted node", || async {
        c.node(0).catalog_get("after").is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_nodes_rights_are_reclaimed_by_a_survivor_everywhere() {
    use starling_cluster::crdt::BudgetKey;
    use starling_cluster::runtime::ReclaimError;
    let mut c = TestCluster::start(3).await;
    let budget = BudgetKey::new("key:r", Period::new(PeriodUnit::Lifetime, 0));
    c.node(0)
        .mutate(|r| (r.mint(&budget, 0, 1_000).expect("first mint"), ()))
        .await
        .expect("persisted");
    let grant = c
        .node(2)
        .request_rights(c.node(0).local_addr(), &budget, 300)
        .await
        .expect("exchange")
        .expect("granted");
    assert_eq!(grant.amount, 300);
    c.node(2)
        .mutate(|r| (r.spend(&budget, 50).expect("held"), ()))
        .await
        .expect("persisted");
    c.wait_converged().await;

    // Neither oneself nor a live node can be reclaimed.
    assert!(matches!(
        c.node(0).reclaim_node("n0").await,
        Err(ReclaimError::SelfNode(_))
    ));
    assert!(matches!(
        c.node(0).reclaim_node("n2").await,
        Err(ReclaimError::Live(_))
    ));

    let gone = c.nodes[2].take().expect("running");
    let gone_writer = gone.writer().clone();
    gone.shutdown().await;
    wait_until("n2 no longer live on the survivors", || async {
        c.running().all(|n| {
            n.member_count_live() == 2 && n.live_peers_info().iter().all(|(id, _)| id != "n2")
        })
    })
    .await;

    let taken = c.node(0).reclaim_node("n2").await.expect("reclaimed");
    assert_eq!(taken, vec![(budget.clone(), 250)]);
    assert_eq!(
        c.node(0).read(|r| r.rights().local_rights(&budget)),
        950,
        "held at once on the survivor"
    );
    // Done once: a second reclaim finds nothing left.
    assert!(
        c.node(0)
            .reclaim_node("n2")
            .await
            .expect("nothing to do")
            .is_empty()
    );
    let survivor = c.node(0).writer().clone();
    wait_until("the reclaim on every replica", || async {
        c.running().all(|n| {
            n.read(|r| {
                let rights = r.rights();
                rights.rights(&budget, &gone_writer) == 0
                    && rights.is_reclaimed(&budget, &gone_writer)
                    && rights.rights(&budget, &survivor) == 950
                    && rights.total_consumed(&budget) == 50
                    && rights.total_minted(&budget) == 1_000
            })
        })
    })
    .await;
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_observer_sees_existing_local_and_remote_changes_in_order() {
    use std::sync::{Arc, Mutex};
    let c = TestCluster::start(2).await;
    c.node(0)
        .catalog_put("pre", "old".to_owned())
        .await
        .expect("put");
    wait_until("the first write on n1", || async {
        c.node(1).catalog_get("pre").is_some()
    })
    .await;
    type Events = Arc<Mutex<Vec<(String, Option<String>)>>>;
    let seen: Events = Arc::default();
    let log = seen.clone();
    c.node(1).set_catalog_observer(Arc::new(move |id, v| {
        log.lock()
            .expect("observer log")
            .push((id.to_owned(), v.cloned()));
    }));
    let events = || seen.lock().expect("observer log").clone();
    assert_eq!(events(), vec![("pre".to_owned(), Some("old".to_owned()))]);

    c.node(0)
        .catalog_put("remote", "r1".to_owned())
        .await
        .expect("put");
    c.node(0).catalog_delete("pre").await.expect("delete");
    c.node(1)
        .catalog_put("local", "l1".to_owned())
        .await
        .expect("put");
    wait_until("every change observed", || async { events().len() >= 4 }).await;
    let got = events();
    assert!(got.contains(&("remote".to_owned(), Some("r1".to_owned()))));
    assert!(got.contains(&("local".to_owned(), Some("l1".to_owned()))));
    assert_eq!(
        got.iter()
            .filter(|(id, _)| id == "pre")
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>(),
        vec![Some("old".to_owned()), None],
        "the delete comes after the entry"
    );
    // The observer agrees with the replica it mirrors.
    let mut replayed = std::collections::BTreeMap::new();
    for (id, v) in got {
        replayed.insert(id, v);
    }
    for (id, v) in replayed {
        assert_eq!(c.node(1).catalog_get(&id), v, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_heard_advances_while_peers_talk_and_is_none_alone() {
    let c = TestCluster::start(2).await;
    assert_eq!(
        c.node(0).live_peers_info(),
        vec![("n1".to_owned(), c.node(1).local_addr())]
    );
    assert_eq!(c.node(1).member_count_live(), 2);
    wait_until("n1 to hear from n0", || async {
        c.node(1).last_heard().is_some()
    })
    .await;
    let first = c.node(1).last_heard().expect("heard");
    wait_until("a later exchange", || async {
        c.node(1).last_heard().is_some_and(|t| t > first)
    })
    .await;
    assert!(c.node(1).last_heard().expect("heard") <= std::time::Instant::now());

    // A node with no seeds and nobody seeding from it hears nobody.
    let dir = tempfile::tempdir().expect("tempdir");
    let alone = c.start_node("loner", dir.path(), Vec::new()).await;
    alone
        .catalog_put("x", "y".to_owned())
        .await
        .expect("a write alone");
    assert_eq!(alone.last_heard(), None);
    assert_eq!(alone.member_count_live(), 1);
    assert!(alone.live_peers_info().is_empty());
    alone.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_a_subscriber_after_start() {
    use bytes::Bytes;
    use starling_cluster::runtime::{RATE_REPORT, SYNC_PUSH};
    let c = TestCluster::start(2).await;
    // Taken over by a second subscription: the first receiver ends.
    let mut first = c.node(1).subscribe(RATE_REPORT, 1024);
    let mut inbox = c.node(1).subscribe(RATE_REPORT, 1024);
    let ended = tokio::time::timeout(Duration::from_secs(5), first.recv())
        .await
        .expect("ended at once");
    assert!(ended.is_none());
    // The cluster's own kinds are refused: a closed receiver, and nothing sent.
    let mut reserved = c.node(0).subscribe(SYNC_PUSH, 1024);
    assert!(reserved.recv().await.is_none());
    c.node(0).broadcast(SYNC_PUSH, Bytes::from_static(b"x"));
    // Fire and forget: resend until one arrives, within the deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let message = loop {
        c.node(0)
            .broadcast(RATE_REPORT, Bytes::from_static(b"demand"));
        match tokio::time::timeout(Duration::from_millis(500), inbox.recv()).await {
            Ok(Some(message)) => break message,
            Ok(None) => panic!("the subscription closed"),
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "no broadcast arrived"
            ),
        }
    };
    assert_eq!(message.payload, Bytes::from_static(b"demand"));
    assert_eq!(message.kind, RATE_REPORT);
    assert_eq!(message.from, c.node(0).local_addr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_written_without_waiting_replicates_and_survives_a_clean_restart() {
    let mut c = TestCluster::start(2).await;
    for _ in 0..20 {
        let (delta_items, skipped) = c
            .node(0)
            .mutate_nowait(|r| {
                let (d, skipped) = r.add_usage_many(&[(key(), usage(1)), (key(), usage(2))]);
                let cells = d.items.counters.cells.len();
                (d, (cells, skipped))
            })
            .await
            .expect("queued");
        assert_eq!((delta_items, skipped), (1, 0));
    }
    wait_until("the usage on n1", || async {
        total(c.node(1)).spend_micros == 60
    })
    .await;
    let node = c.nodes[0].take().expect("running");
    node.shutdown().await;
    let back = c.start_node("n0", c.dirs[0].path(), Vec::new()).await;
    assert_eq!(total(&back).spend_micros, 60);
    assert_eq!(total(&back).requests, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_restarted_on_new_ports_leaves_no_entries_behind() {
    // Connection-cache slots go 1 s after their last use here, rather than 30 s.
    let quick = |c: &mut starling_cluster::runtime::ClusterConfig| {
        c.endpoint.forget_idle_peers_after = Duration::from_secs(1);
    };
    let mut c = TestCluster::start_with(3, quick).await;
    const RESTARTS: usize = 3;
    for _ in 0..RESTARTS {
        // Every start binds a new port: the peers see a new address each time.
        let old = c.nodes[2].take().expect("running");
        old.shutdown().await;
        let seeds = vec![c.seed.clone()];
        let n2 = c
            .start_node_with("n2", c.dirs[2].path(), seeds, quick)
            .await;
        let (addr, done) = (n2.local_addr(), total(&n2).spend_micros + 1);
        c.nodes[2] = Some(n2);
        add(c.node(2), 1).await;
        // The survivors know the new process, and have heard from it (it has synced with
        // them), before it goes in turn. Its old process need not be judged dead yet.
        wait_until("the survivors see the new process", || async {
            c.running().take(2).all(|n| {
                let live = n.live_peers_info();
                live.iter().any(|(id, a)| id == "n2" && *a == addr) && total(n).spend_micros == done
            })
        })
        .await;
    }
    // Each survivor saw four addresses of n2; once gossip forgets the dead processes (each must
    // first be judged dead, which on a loaded machine takes a while), it keeps entries for its
    // two live peers only (its seed is one of them).
    wait_until_within(
        Duration::from_secs(120),
        "gossip forgets the dead processes",
        || async {
            for n in c.running() {
                if n.members().await.len() != 3 {
                    return false;
                }
            }
            true
        },
    )
    .await;
    wait_until("per-peer maps back to the live peers", || async {
        c.running().take(2).all(|n| {
            let s = n.peer_state_sizes();
            s.acked <= 2 && s.last_sync <= 2 && s.endpoint_peers <= 2 && s.pulls_in_flight <= 2
        })
    })
    .await;
    c.wait_converged().await;
    assert!(
        c.running()
            .all(|n| total(n).spend_micros == RESTARTS as u64)
    );
}
