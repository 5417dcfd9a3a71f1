//! What a client can hold is bounded: slow headers and slow bodies are cut off, connections
//! and requests in flight are capped, and made-up model names create no metric series.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Harness, KEY, metric_value, standard_config, wait_for};
use serde_json::{Value, json};
use starling_bench::MockConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A harness whose `[server]` table also has `server_lines`.
async fn harness(server_lines: &str) -> Harness {
    Harness::start_with(MockConfig::default(), |mock, key| {
        standard_config(mock, key, "", "")
            .replace("[server]\n", &format!("[server]\n{server_lines}\n"))
    })
    .await
}

fn addr(h: &Harness) -> SocketAddr {
    h.server.as_ref().expect("running").addr
}

/// Lets this process open `wanted` descriptors, if the hard limit allows.
fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Reads until the peer closes, or fails after `within`.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(out)
}

/// Splits a raw HTTP/1.1 response into its status, lower-cased head and body.
fn parse_response(raw: &[u8]) -> (u16, String, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// (a) The test: a thousand clients each sending a header byte a second are closed by
/// the header timeout, while a normal client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_closed_and_others_served() {
    const SLOW: usize = 1_000;
    raise_fd_limit(4 * SLOW as u64 + 512);
    let h = harness("header_read_timeout_ms = 2000").await;
    let timeouts_before = metric_value(
        &h.metrics().await,
        "starling_header_read_timeouts_total",
        &[("listener", "api")],
    );
    let addr = addr(&h);
    let started = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let (started, closed) = (started.clone(), closed.clone());
        clients.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connects");
            // Every hundredth trickles the HTTP/2 preface instead of an HTTP/1 head.
            let head: &[u8] = if i % 100 == 0 {
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            } else {
                b"GET /healthz HTTP/1.1\r\nhost: starling\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            };
            let mut first = true;
            for byte in head.iter().cycle() {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                if first {
                    started.fetch_add(1, Ordering::Relaxed);
                    first = false;
                }
                let mut buf = [0u8; 1024];
                // A byte a second, until the gateway closes the connection.
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                    Err(_) => {}
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(_)) => {}
                }
            }
            closed.fetch_add(1, Ordering::Relaxed);
        }));
    }
    wait_for("every slow client to connect", async || {
        (started.load(Ordering::Relaxed) == SLOW).then_some(())
    })
    .await;

    // Meanwhile a normal client is served, on both kinds of route.
    let health = h
        .client
        .get(format!("{}/healthz", h.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(health.status(), 200);
    let chat = h
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(chat.status(), 200);

    wait_for(
        "the header timeout to close every slow client",
        async || (closed.load(Ordering::Relaxed) == SLOW).then_some(()),
    )
    .await;
    let timeouts = metric_value(
        &h.metrics().await,
        "starling_header_read_timeouts_total",
        &[("listener", "api")],
    );
    assert!(
        timeouts - timeouts_before >= SLOW as f64,
        "{timeouts_before} -> {timeouts}"
    );
    for client in clients {
        client.await.expect("client task");
    }
}

/// Sends a request head, then its body a byte every 100 ms, and returns the response and
/// whether the connection was closed after it.
async fn trickle_body(addr: SocketAddr, path: &str) -> (u16, String, Value) {
    let body = json!({"model": "gpt-4o", "max_tokens": 5,
        "messages": [{"role": "user", "content": "a slow body that takes its time"}]})
    .to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: starling\r\nauthorization: Bearer {KEY}\r\n\
         x-api-key: {KEY}\r\nanthropic-version: 2023-06-01\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for byte in body.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Keep the write side open: only the gateway may end the connection.
        std::future::pending::<()>().await;
    });
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut out)).await;
    trickle.abort();
    assert!(
        read.is_ok(),
        "the gateway must answer and close the connection; got so far: {}",
        String::from_utf8_lossy(&out)
    );
    parse_response(&out)
}

/// (b) A body trickling past the body deadline gets a 408 in the called API's format, and its
/// connection is closed.
#[tokio::test]
async fn a_body_past_its_deadline_gets_the_apis_error_and_the_connection_closes() {
    let h = harness("body_read_timeout_ms = 500").await;
    let addr = addr(&h);

    let (status, head, body) = trickle_body(addr, "/v1/chat/completions").await;
    assert_eq!(status, 408, "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");

    let (status, head, body) = trickle_body(addr, "/v1/messages").await;
    assert_eq!(status, 408, "{head}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "timeout_error", "{body}");

    let metrics = h.metrics().await;
    assert!(metric_value(&metrics, "starling_body_read_timeouts_total", &[]) >= 2.0);
}

/// (c) Connections beyond `max_connections` are closed at accept; the others are served, and
/// a closed connection frees its place.
#[tokio::test]
async fn connections_beyond_the_cap_are_closed() {
    let h = harness("max_connections = 3").await;
    let addr = addr(&h);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.expect("connects"));
    }
    // The listener accepts in order: the fourth finds every place taken.
    let mut extra = TcpStream::connect(addr).await.expect("the kernel accepts");
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: starling\r\n\r\n")
        .await;
    let answer = read_to_close(&mut extra, Duration::from_secs(10))
        .await
        .expect("the gateway closes the connection over the cap");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));

    // A held connection is served.
    let request = b"GET /healthz HTTP/1.1\r\nhost: starling\r\nconnection: close\r\n\r\n";
    let mut first = held.remove(0);
    first.write_all(request).await.expect("sent");
    let answer = read_to_close(&mut first, Duration::from_secs(10))
        .await
        .expect("answered");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(first);

    // Its place is free again.
    wait_for("a new connection to be served", async || {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(request).await.ok()?;
        let answer = read_to_close(&mut stream, Duration::from_secs(5)).await?;
        answer.starts_with(b"HTTP/1.1 200").then_some(())
    })
    .await;
    drop(held);
    let metrics = h.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "starling_connections_refused_total",
            &[("listener", "api")]
        ) >= 1.0
    );
}

/// (c) Requests beyond `max_requests_in_flight` get a fast 503 with `retry-after`, in the
/// called API's format.
#[tokio::test]
async fn requests_beyond_the_in_flight_cap_get_503() {
    let h = harness("max_requests_in_flight = 2").await;
    let slow = json!({"model": "gpt-4o",
        "messages": [{"role": "user", "content": "[mock:slow-first-byte 60000] hold on"}]});
    let mut holders = Vec::new();
    for _ in 0..2 {
        let client = h.client.clone();
        let url = format!("{}/v1/chat/completions", h.base);
        let body = slow.clone();
        holders.push(tokio::spawn(async move {
            let _ = client.post(url).bearer_auth(KEY).json(&body).send().await;
        }));
    }
    wait_for("two requests to wait on the upstream", async || {
        (h.mock.in_flight() == 2).then_some(())
    })
    .await;

    let chat = h
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(chat.status(), 503);
    assert!(chat.headers().contains_key("retry-after"));
    let body: Value = chat.json().await.expect("json");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");

    let messages = h
        .post(
            "/v1/messages",
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(messages.status(), 503);
    assert!(messages.headers().contains_key("retry-after"));
    let body: Value = messages.json().await.expect("json");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "overloaded_error", "{body}");

    // Only API requests take a place: health and metrics still answer.
    let metrics = h.metrics().await;
    assert!(metric_value(&metrics, "starling_requests_shed_total", &[]) >= 2.0);
    for holder in holders {
        holder.abort();
    }
}

/// Every value of the `model` label in a metrics page.
fn model_labels(metrics: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        for start in ["{model=\"", ",model=\""] {
            let mut rest = line;
            while let Some(i) = rest.find(start) {
                rest = &rest[i + start.len()..];
                if let Some(end) = rest.find('"') {
                    out.insert(rest[..end].to_owned());
                }
            }
        }
    }
    out
}

/// (d) A hundred requests with made-up model names, which the providers' wildcards accept or
/// nothing resolves, add no model label values to /metrics.
#[tokio::test]
async fn made_up_model_names_add_no_metric_labels() {
    let h = harness("").await;
    // The known model and the two buckets may appear; warm them up first.
    let chat =
        |model: String| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        h.post("/v1/chat/completions", &chat("gpt-4o".into()))
            .await
            .status(),
        200
    );
    let before = model_labels(&h.metrics().await);

    let mut names = Vec::new();
    for i in 0..100 {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let (name, expect) = match i % 4 {
            // Served through the `gpt-*` and `claude-*` patterns.
            0 | 1 => (format!("gpt-{random}"), 200),
            2 => (format!("mock-openai/made-up-{random}"), 200),
            // Resolves nowhere.
            _ => (format!("made-up-{random}"), 404),
        };
        let status = h
            .post("/v1/chat/completions", &chat(name.clone()))
            .await
            .status();
        assert_eq!(status.as_u16(), expect, "{name}");
        names.push(name);
    }
    let claude = format!("claude-{}", uuid::Uuid::new_v4().simple());
    let status = h
        .post(
            "/v1/messages",
            &json!({"model": claude, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .status();
    assert_eq!(status, 200);
    names.push(claude);

    let metrics = h.metrics().await;
    let after = model_labels(&metrics);
    let added: Vec<_> = after
        .difference(&before)
        .filter(|v| !matches!(v.as_str(), "other" | "unknown"))
        .collect();
    assert!(added.is_empty(), "new model label values: {added:?}");
    for name in &names {
        assert!(!metrics.contains(name.as_str()), "{name} is in /metrics");
    }
    assert!(after.contains("other"), "{after:?}");
}
