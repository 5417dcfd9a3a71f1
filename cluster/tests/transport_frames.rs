//! An authenticated peer sending broken frames on raw streams: every one is dropped and counted
//! under its reason, and the endpoint keeps serving. Also the request/response exchange.

mod transport_support;

use std::time::Duration;

use bytes::Bytes;
use chitchat::transport::Transport;
use starling_cluster::transport::frame::{codes, encode_header};
use starling_cluster::transport::{
    ClusterEndpoint, GOSSIP_MAX_MESSAGE_SIZE, MessageKind, QuicTransport, StatsSnapshot,
    TransportError,
};
use transport_support::*;

const KIND: MessageKind = MessageKind(9);
const REQ: MessageKind = MessageKind(10);
const LIMIT: Duration = Duration::from_secs(10);

/// Opens a raw unidirectional stream from `from` to `to`, writes `bytes`, and finishes it
/// (or leaves it open when `finish` is false).
async fn raw(from: &ClusterEndpoint, to: &ClusterEndpoint, bytes: &[u8], finish: bool) {
    let conn = from.connection(to.local_addr()).await.unwrap();
    let mut stream = conn.open_uni().await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if finish {
        stream.finish().unwrap();
    } else {
        // Keep the stream open (and unfinished) past the receiver's read timeout.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
    }
}

async fn wait_stats(ep: &ClusterEndpoint, what: &str, cond: impl Fn(&StatsSnapshot) -> bool) {
    wait_until(LIMIT, what, || async { cond(&ep.stats().snapshot()) }).await;
}

fn frame(kind: MessageKind, declared: u32, body: &[u8]) -> Vec<u8> {
    let mut out = encode_header(kind, declared).to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_frames_are_dropped_and_counted() {
    let secret = secret();
    let server = secret_node(&secret, "server", test_config(None));
    let peer = secret_node(&secret, "peer", test_config(None));
    let mut inbox = server.subscribe(KIND, 1024).unwrap();

    // Oversized: declared beyond the kind's cap; refused before reading the body.
    raw(&peer, &server, &frame(KIND, 1_000_000, b"xx"), true).await;
    wait_stats(&server, "oversized", |s| s.oversized == 1).await;
    // Larger than the stream window entirely: also just dropped.
    raw(&peer, &server, &frame(KIND, 2_000, &[7u8; 2_000]), true).await;
    wait_stats(&server, "oversized 2", |s| s.oversized == 2).await;
    // Truncated payload, and a stream that ends inside the header.
    raw(&peer, &server, &frame(KIND, 100, &[1u8; 10]), true).await;
    raw(&peer, &server, &[KIND.0, 0], true).await;
    wait_stats(&server, "truncated", |s| s.truncated == 2).await;
    // Trailing bytes after the declared payload.
    raw(&peer, &server, &frame(KIND, 3, b"abcdef"), true).await;
    // Garbage: a kind nobody receives.
    raw(&peer, &server, b"\xc8garbage garbage garbage", true).await;
    wait_stats(&server, "unknown kind", |s| s.unknown_kind == 1).await;
    // A slow writer: the rest of the frame never arrives within the read timeout.
    raw(&peer, &server, &frame(KIND, 50, b"partial"), false).await;
    wait_stats(&server, "read timeout", |s| s.read_timeouts == 1).await;

    let s = server.stats().snapshot();
    assert_eq!(s.malformed, 7, "{s:?}");
    assert_eq!(s.messages_received, 0, "{s:?}");
    // The kind is known for all but the unknown-kind frame and the one cut inside its header.
    assert_eq!(server.stats().kind(KIND).malformed, 5, "{s:?}");
    assert!(inbox.try_recv().is_err());

    // The endpoint still serves, on the same connection and on the same kind.
    let got = deliver(
        &peer,
        server.local_addr(),
        KIND,
        Bytes::from_static(b"still here"),
        &mut inbox,
    )
    .await;
    assert_eq!(&got.payload[..], b"still here");
    assert_eq!(got.kind, KIND);
    // An empty payload is a valid message.
    let got = deliver(&peer, server.local_addr(), KIND, Bytes::new(), &mut inbox).await;
    assert!(got.payload.is_empty());
    // And the sender refuses to send over the global cap.
    let err = peer
        .send(
            server.local_addr(),
            KIND,
            Bytes::from(vec![0u8; (1 << 20) + 1]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_gossip_is_dropped_and_counted() {
    let secret = secret();
    let server = secret_node(&secret, "server", test_config(None));
    let peer = secret_node(&secret, "peer", test_config(None));
    let transport = QuicTransport::new(server.clone());
    let mut socket = transport.open(server.local_addr()).await.unwrap();
    // Only one socket per endpoint.
    assert!(transport.open(server.local_addr()).await.is_err());

    for junk in [
        &b"junk"[..],
        &[0u8; 64][..],
        &[0xb3, 0xb0, 0, 0, 0xff, 0xff][..],
    ] {
        peer.send(
            server.local_addr(),
            MessageKind::GOSSIP,
            Bytes::copy_from_slice(junk),
        )
        .await
        .unwrap();
    }
    // Over chitchat's MTU.
    raw(
        &peer,
        &server,
        &frame(MessageKind::GOSSIP, GOSSIP_MAX_MESSAGE_SIZE as u32 + 1, b""),
        true,
    )
    .await;
    // Streams are independent, so wait for those to be queued before sending a good one.
    wait_stats(&server, "junk queued, oversized refused", |s| {
        s.messages_received == 3 && s.oversized == 1
    })
    .await;
    // Then a valid gossip message from a real chitchat peer's socket.
    let (from, _) = gossip_still_flows(&peer, server.local_addr(), &mut socket).await;
    assert_eq!(from, peer.local_addr());
    let s = server.stats().snapshot();
    assert_eq!((s.decode_errors, s.oversized), (3, 1), "{s:?}");
    assert_eq!(server.stats().kind(MessageKind::GOSSIP).malformed, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_responses_and_refusals_are_reported() {
    let secret = secret();
    let server = secret_node(&secret, "server", test_config(None));
    let client = secret_node(&secret, "client", test_config(None));
    let mut requests = server.serve(REQ, 4096).unwrap();
    let handler = tokio::spawn(async move {
        while let Some(req) = requests.recv().await {
            match &req.payload[..] {
                b"drop" => drop(req),
                b"big" => {
                    req.respond(Bytes::from(vec![1u8; 10_000]));
                }
                _ => {
                    let mut echo = b"echo:".to_vec();
                    echo.extend_from_slice(&req.payload);
                    req.respond(Bytes::from(echo));
                }
            }
        }
    });
    let to = server.local_addr();

    let reply = client
        .request(to, REQ, Bytes::from_static(b"ping"), 1024)
        .await
        .unwrap();
    assert_eq!(&reply[..], b"echo:ping");

    // Many concurrent exchanges on the one cached connection.
    let replies = futures::future::join_all((0..50).map(|i| {
        let client = client.clone();
        async move {
            client
                .request(to, REQ, Bytes::from(format!("{i}")), 1024)
                .await
                .unwrap()
        }
    }))
    .await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r, &Bytes::from(format!("echo:{i}")));
    }

    let err = client
        .request(to, REQ, Bytes::from_static(b"drop"), 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::Rejected { code, .. } if code == u64::from(codes::NO_RESPONSE)),
        "{err}"
    );
    let err = client
        .request(to, MessageKind(77), Bytes::from_static(b"?"), 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::Rejected { code, .. } if code == u64::from(codes::UNKNOWN_KIND)),
        "{err}"
    );
    let err = client
        .request(to, REQ, Bytes::from(vec![0u8; 5000]), 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::Rejected { code, .. } if code == u64::from(codes::TOO_LARGE)),
        "{err}"
    );
    let err = client
        .request(to, REQ, Bytes::from_static(b"big"), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::BadResponse { .. }), "{err}");

    // Still serving.
    let reply = client
        .request(to, REQ, Bytes::from_static(b"again"), 1024)
        .await
        .unwrap();
    assert_eq!(&reply[..], b"echo:again");
    assert_eq!(client.stats().snapshot().requests_failed, 4);
    assert_eq!(client.stats().snapshot().connects_ok, 1);
    handler.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_reached_again() {
    let secret = secret();
    let a = secret_node(&secret, "a", test_config(None));
    let b = secret_node(&secret, "b", test_config(None));
    let b_addr = b.local_addr();
    let mut inbox = b.subscribe(KIND, 1024).unwrap();
    deliver(&a, b_addr, KIND, Bytes::from_static(b"1"), &mut inbox).await;

    // b goes away and comes back on the same address with a new process-like endpoint.
    b.close();
    b.wait_idle().await;
    drop((inbox, b));
    // The UDP socket is released by quinn's driver task shortly after the close.
    let creds = starling_cluster::tls::ClusterCredentials::from_secret(&secret, "b").unwrap();
    let mut b2 = None;
    wait_until(LIMIT, "b's address is free again", || {
        b2 = ClusterEndpoint::bind(b_addr, &creds, test_config(None)).ok();
        let bound = b2.is_some();
        async move { bound }
    })
    .await;
    let b2 = b2.unwrap();
    let mut inbox = b2.subscribe(KIND, 1024).unwrap();
    let start = std::time::Instant::now();
    loop {
        let _ = a.send(b_addr, KIND, Bytes::from_static(b"2")).await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), inbox.recv()).await {
            break;
        }
        assert!(start.elapsed() < LIMIT, "a never reached the restarted b");
    }
    println!("reached the restarted peer after {:?}", start.elapsed());
}
