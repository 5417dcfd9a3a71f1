//! Limits at the edge of the transport: QUIC address validation (Retry) before any handshake
//! work, and gossip whose compressed blocks would inflate beyond the budget.

mod transport_support;

use std::time::Duration;

use bytes::Bytes;
use chitchat::transport::Transport;
use starling_cluster::transport::{
    ClusterEndpoint, EndpointConfig, GOSSIP_MAX_MESSAGE_SIZE, MessageKind, QuicTransport,
    StatsSnapshot,
};
use transport_support::*;

const REQ: MessageKind = MessageKind(10);
const LIMIT: Duration = Duration::from_secs(10);

async fn wait_stats(ep: &ClusterEndpoint, what: &str, cond: impl Fn(&StatsSnapshot) -> bool) {
    wait_until(LIMIT, what, || async { cond(&ep.stats().snapshot()) }).await;
}

/// Serves echo requests of kind [`REQ`] on `server`.
fn echo(server: &ClusterEndpoint) -> tokio::task::JoinHandle<()> {
    let mut requests = server.serve(REQ, 1024).unwrap();
    tokio::spawn(async move {
        while let Some(req) = requests.recv().await {
            let payload = req.payload.clone();
            req.respond(payload);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_peer_validates_its_address_through_a_retry() {
    let secret = secret();
    let server = secret_node(&secret, "server", test_config(None));
    let client = secret_node(&secret, "client", test_config(None));
    let handler = echo(&server);
    let reply = client
        .request(server.local_addr(), REQ, Bytes::from_static(b"hi"), 1024)
        .await
        .unwrap();
    assert_eq!(&reply[..], b"hi");
    let s = server.stats().snapshot();
    assert_eq!(
        (s.retries_sent, s.handshakes_accepted, s.connections_refused),
        (1, 1, 0),
        "{s:?}"
    );
    assert_eq!(client.stats().snapshot().connects_ok, 1);
    handler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_validation_can_be_turned_off() {
    let secret = secret();
    let config = EndpointConfig {
        validate_addresses: false,
        ..test_config(None)
    };
    let server = secret_node(&secret, "server", config);
    let client = secret_node(&secret, "client", test_config(None));
    let handler = echo(&server);
    client
        .request(server.local_addr(), REQ, Bytes::from_static(b"hi"), 1024)
        .await
        .unwrap();
    let s = server.stats().snapshot();
    assert_eq!((s.retries_sent, s.handshakes_accepted), (0, 1), "{s:?}");
    handler.abort();
}

/// A chitchat ACK whose delta is made of zstd blocks that each inflate to 65,535 zero bytes:
/// about 4,000 of them fit under the 65,507-byte gossip cap, some 260 MB once inflated.
pub fn inflation_bomb() -> Vec<u8> {
    let block = zstd::bulk::compress(&[0u8; 65_535], 0).unwrap();
    let mut msg = 45_139u16.to_le_bytes().to_vec();
    msg.extend_from_slice(&[0, 2]);
    while msg.len() + 3 + block.len() < GOSSIP_MAX_MESSAGE_SIZE {
        msg.push(1);
        msg.extend_from_slice(&(block.len() as u16).to_le_bytes());
        msg.extend_from_slice(&block);
    }
    msg.push(0);
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_that_would_inflate_too_far_is_refused_and_counted() {
    let secret = secret();
    let server = secret_node(&secret, "server", test_config(None));
    let peer = secret_node(&secret, "peer", test_config(None));
    let transport = QuicTransport::new(server.clone());
    let mut socket = transport.open(server.local_addr()).await.unwrap();
    let bomb = inflation_bomb();
    assert!(bomb.len() <= GOSSIP_MAX_MESSAGE_SIZE);
    peer.send(server.local_addr(), MessageKind::GOSSIP, Bytes::from(bomb))
        .await
        .unwrap();
    wait_stats(&server, "bomb queued", |s| s.messages_received == 1).await;
    // A good message behind it still gets through, once the bomb is refused.
    gossip_still_flows(&peer, server.local_addr(), &mut socket).await;
    let s = server.stats().snapshot();
    assert_eq!(
        (s.gossip_inflation_refused, s.decode_errors),
        (1, 1),
        "{s:?}"
    );
}
