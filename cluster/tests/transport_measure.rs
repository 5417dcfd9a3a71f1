//! Measurements, printed and not asserted (run with `--nocapture` to see them): handshake time,
//! rejected-handshake time, and how fast a 20 KB chitchat value reaches every node of a
//! 3-node cluster at a 100 ms gossip interval.

mod transport_support;

use std::time::{Duration, Instant};

use starling_cluster::tls::ClusterCredentials;
use transport_support::*;

const LIMIT: Duration = Duration::from_secs(15);

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "n={} min {:.2} ms, median {:.2} ms, max {:.2} ms",
        samples.len(),
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_handshakes() {
    let secret = secret();
    let server = secret_node(&secret, "server", test_config(None));
    let creds = ClusterCredentials::from_secret(&secret, "client").unwrap();
    let mut accepted = Vec::new();
    for _ in 0..20 {
        let client = endpoint(&creds, test_config(None));
        let start = Instant::now();
        client.connection(server.local_addr()).await.unwrap();
        accepted.push(start.elapsed());
    }
    let mut rejected = Vec::new();
    for _ in 0..10 {
        // A fresh endpoint each time: a second attempt would wait out the back-off.
        let intruder = secret_node(&transport_support::secret(), "x", test_config(None));
        let start = Instant::now();
        assert!(intruder.connection(server.local_addr()).await.is_err());
        rejected.push(start.elapsed());
    }
    println!(
        "mutual-TLS QUIC handshake (shared secret): {}",
        summary(accepted)
    );
    println!(
        "handshake rejected (wrong secret):        {}",
        summary(rejected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_20kb_value_convergence() {
    let secret = secret();
    let eps: Vec<_> = (0..3)
        .map(|i| secret_node(&secret, &format!("n{i}"), test_config(None)))
        .collect();
    let addrs: Vec<_> = eps.iter().map(|e| e.local_addr()).collect();
    let mut members = Vec::new();
    for (i, ep) in eps.iter().enumerate() {
        let seeds: Vec<_> = addrs.iter().copied().filter(|a| *a != addrs[i]).collect();
        members.push(member(ep, &format!("n{i}"), &seeds).await);
    }
    for m in &members {
        wait_until(LIMIT, "3 live nodes", || live_count_is(m, 3)).await;
    }

    let mut samples = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..10 {
        // 20 KB of pseudo-random hex, so compression does not shrink it much.
        let value: String = (0..20_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b"0123456789abcdef"[(seed & 15) as usize])
            })
            .collect();
        let writer = &members[round % 3];
        let writer_id = format!("n{}", round % 3);
        let key = format!("blob-{round}");
        let start = Instant::now();
        set(writer, &key, &value).await;
        for m in &members {
            wait_until(LIMIT, "the 20 KB value arrives", || async {
                value_of(m, &writer_id, &key).await.as_deref() == Some(value.as_str())
            })
            .await;
        }
        samples.push(start.elapsed());
    }
    let bytes: u64 = eps.iter().map(|e| e.stats().snapshot().bytes_sent).sum();
    println!(
        "20 KB value visible on all 3 nodes (100 ms gossip interval): {}",
        summary(samples)
    );
    println!("total bytes sent by the 3 nodes during the run: {bytes}");
}
