//! Replication limits: a state larger than one chunk travels in several bounded frames and
//! still converges (and survives a restart), a frame over the cap is refused before it is
//! read, and a peer may run only a few pulls against a node at once.

mod runtime_support;

use std::sync::Arc;
use std::time::Duration;

use runtime_support::{Doc, config, wait_until};
use starling_cluster::codec::{self, Kind};
use starling_cluster::crdt::VersionVector;
use starling_cluster::runtime::{ClusterConfig, ClusterNode, SYNC_PULL, SYNC_PUSH};
use starling_cluster::state::Delta;
use starling_cluster::tls::{ClusterCredentials, ClusterSecret, generate_secret};
use starling_cluster::transport::frame::{HEADER_LEN, codes, encode_header};
use starling_cluster::transport::{ClusterEndpoint, EndpointConfig, PartitionTable};

const CHUNK: usize = 32 << 10;

fn secret() -> ClusterSecret {
    ClusterSecret::parse(&generate_secret().unwrap()).unwrap()
}

/// A node without seeds (so nothing syncs unless the test asks), with small chunks.
fn node_config(id: &str, dir: &tempfile::TempDir, secret: &ClusterSecret) -> ClusterConfig {
    let mut c = config(
        id,
        dir.path().to_owned(),
        secret,
        Vec::new(),
        &Arc::new(PartitionTable::new()),
    );
    c.max_sync_bytes = 2 * CHUNK;
    c.sync_chunk_bytes = CHUNK;
    // A stalled answer keeps its slot while the test looks (the default is 2 s).
    c.endpoint.send_timeout = Duration::from_secs(30);
    c
}

/// Puts `n` entries of about 200 bytes in one durable write.
async fn fill(node: &ClusterNode<Doc>, n: usize) {
    node.mutate(|r| {
        let mut all = Delta::<Doc>::default();
        for i in 0..n {
            let d = r.put(
                &format!("entry-{i:05}"),
                format!("{i:05}{}", "v".repeat(200)),
            );
            all.context.union(&d.context);
            all.items.catalog.extend(d.items.catalog);
        }
        (all, ())
    })
    .await
    .unwrap();
}

/// A raw endpoint holding the cluster's credentials, whose stream windows are one frame.
fn raw_peer(secret: &ClusterSecret) -> ClusterEndpoint {
    let creds = ClusterCredentials::from_secret(secret, "raw").unwrap();
    let config = EndpointConfig {
        max_message_size: 2 * CHUNK,
        ..EndpointConfig::default()
    };
    ClusterEndpoint::bind("127.0.0.1:0".parse().unwrap(), &creds, config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_larger_than_a_chunk_converges_through_several_chunks() {
    let secret = secret();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = ClusterNode::<Doc>::start(node_config("a", &dir_a, &secret))
        .await
        .unwrap();
    fill(&a, 2_000).await;
    let whole = a.full_state_bytes().unwrap().len();
    assert!(
        whole > 8 * CHUNK,
        "the state ({whole} bytes) spans many chunks"
    );

    let b = ClusterNode::<Doc>::start(node_config("b", &dir_b, &secret))
        .await
        .unwrap();
    b.sync_with(a.local_addr()).await.unwrap();
    assert_eq!(b.digest().unwrap(), a.digest().unwrap());
    let chunks = b
        .stats()
        .chunks_received
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(chunks as usize >= whole / CHUNK - 1, "{chunks} chunks");
    let pull = a.kind_stats(SYNC_PULL);
    assert_eq!(
        pull.messages_sent,
        chunks + 1,
        "every chunk and the last frame"
    );
    assert!(pull.bytes_sent as usize <= (chunks as usize + 1) * (2 * CHUNK + HEADER_LEN));

    // What b merged chunk by chunk is on disk: it comes back identical.
    let digest = a.digest().unwrap();
    b.shutdown().await;
    let b = ClusterNode::<Doc>::start(node_config("b", &dir_b, &secret))
        .await
        .unwrap();
    assert_eq!(b.digest().unwrap(), digest);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_sync_cap_is_refused_before_it_is_read() {
    let secret = secret();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(
        "a",
        dir.path().to_owned(),
        &secret,
        Vec::new(),
        &Arc::new(PartitionTable::new()),
    );
    c.endpoint.read_timeout = Duration::from_secs(30);
    let default_cap = c.max_sync_bytes;
    assert!(default_cap <= 8 << 20, "frames are capped at 8 MiB");
    let a = ClusterNode::<Doc>::start(c).await.unwrap();
    let peer = raw_peer(&secret);
    let conn = peer.connection(a.local_addr()).await.unwrap();
    let mut stream = conn.open_uni().await.unwrap();
    // A push declaring one byte over the cap; its body never comes.
    let declared = u32::try_from(default_cap + 1).unwrap();
    stream
        .write_all(&encode_header(SYNC_PUSH, declared))
        .await
        .unwrap();
    // The node may stop the stream as soon as it has read the header (`Stopped`): that is the
    // refusal itself, so this write may fail.
    let _ = stream.write_all(b"STRL").await;
    wait_until("the oversized push is refused", || async {
        a.transport_stats().oversized == 1
    })
    .await;
    assert_eq!(a.kind_stats(SYNC_PUSH).malformed, 1);
    a.shutdown().await;
}

/// Opens a pull from `peer` to `to` for everything; returns the stream's receiving half.
async fn raw_pull(peer: &ClusterEndpoint, to: std::net::SocketAddr) -> quinn::RecvStream {
    let conn = peer.connection(to).await.unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    let request = codec::encode(Kind::PullRequest, &VersionVector::new()).unwrap();
    let len = u32::try_from(request.len()).unwrap();
    send.write_all(&encode_header(SYNC_PULL, len))
        .await
        .unwrap();
    send.write_all(&request).await.unwrap();
    send.finish().unwrap();
    recv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_may_run_only_a_few_pulls_at_once() {
    let secret = secret();
    let dir = tempfile::tempdir().unwrap();
    let a = ClusterNode::<Doc>::start(node_config("a", &dir, &secret))
        .await
        .unwrap();
    fill(&a, 2_000).await;
    let peer = raw_peer(&secret);

    // Two pulls whose answers (far larger than the peer's stream window) the peer does not
    // read: both are under way, each holding a slot.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut recv = raw_pull(&peer, a.local_addr()).await;
        let mut header = [0u8; HEADER_LEN];
        recv.read_exact(&mut header).await.unwrap();
        held.push(recv);
    }
    // A third is refused at once, with its own code.
    let mut third = raw_pull(&peer, a.local_addr()).await;
    let mut header = [0u8; HEADER_LEN];
    let err = third.read_exact(&mut header).await.unwrap_err();
    assert!(
        matches!(
            &err,
            quinn::ReadExactError::ReadError(quinn::ReadError::Reset(code))
                if *code == quinn::VarInt::from_u32(codes::TOO_MANY_EXCHANGES)
        ),
        "{err:?}"
    );
    let refused = || {
        a.stats()
            .pulls_refused
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(refused(), 1);

    // Once the peer gives up on them, its slots come back.
    drop(held);
    wait_until("a pull is answered again", || async {
        let mut recv = raw_pull(&peer, a.local_addr()).await;
        let mut header = [0u8; HEADER_LEN];
        recv.read_exact(&mut header).await.is_ok()
    })
    .await;
    // Another peer was never affected: it syncs in full.
    let dir_b = tempfile::tempdir().unwrap();
    let b = ClusterNode::<Doc>::start(node_config("b", &dir_b, &secret))
        .await
        .unwrap();
    b.sync_with(a.local_addr()).await.unwrap();
    assert_eq!(b.digest().unwrap(), a.digest().unwrap());
    b.shutdown().await;
    a.shutdown().await;
}
