//! Test helpers: a tiny HTTP/1.1 client that also reports truncated bodies, and SSE parsers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use starling_bench::{MockConfig, MockServer};
use tokio::net::TcpStream;

/// What came back.
#[derive(Debug)]
pub struct Reply {
    /// 0 when the connection was closed before any response.
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body ended with an error (connection cut) instead of a clean end.
    pub aborted: bool,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn mock() -> MockServer {
    MockServer::bind(MockConfig::default())
        .await
        .expect("bind mock")
}

pub async fn mock_with(cfg: MockConfig) -> MockServer {
    MockServer::bind(cfg).await.expect("bind mock")
}

/// Sends one request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(body.unwrap_or_default()))
        .expect("request");
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(_) => {
            return Reply {
                status: 0,
                headers: HeaderMap::new(),
                body: Bytes::new(),
                aborted: true,
            };
        }
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut aborted = false;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    buf.extend_from_slice(d);
                }
            }
            Some(Err(_)) => {
                aborted = true;
                break;
            }
        }
    }
    Reply {
        status,
        headers,
        body: Bytes::from(buf),
        aborted,
    }
}

pub async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    send(
        addr,
        Method::POST,
        path,
        &h,
        Some(Bytes::from(body.to_string())),
    )
    .await
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(addr, Method::GET, path, headers, None).await
}

pub const OPENAI_AUTH: (&str, &str) = ("authorization", "Bearer sk-test");

pub async fn openai(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    post(addr, path, &[OPENAI_AUTH], body).await
}

pub async fn chat(addr: SocketAddr, body: &Value) -> Reply {
    openai(addr, "/v1/chat/completions", body).await
}

pub const ANTHROPIC_HEADERS: [(&str, &str); 2] = [
    ("x-api-key", "sk-ant-test"),
    ("anthropic-version", "2023-06-01"),
];

pub async fn anthropic(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    post(addr, path, &ANTHROPIC_HEADERS, body).await
}

/// Splits an SSE body into frames, checking each is terminated by a blank line.
fn frames(body: &str) -> Vec<&str> {
    assert!(
        body.is_empty() || body.ends_with("\n\n"),
        "stream must end with a blank line: {body:?}"
    );
    body.split("\n\n").filter(|f| !f.is_empty()).collect()
}

/// OpenAI stream: the `data:` payloads, `[DONE]` as `Value::Null`.
pub fn sse_data(body: &str) -> Vec<Value> {
    frames(body)
        .into_iter()
        .map(|f| {
            let data = f
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data frame: {f:?}"));
            assert!(!data.contains('\n'), "one line per frame: {f:?}");
            if data == "[DONE]" {
                Value::Null
            } else {
                serde_json::from_str(data).unwrap_or_else(|e| panic!("bad JSON {e}: {data}"))
            }
        })
        .collect()
}

/// Anthropic stream: (event name, data), checking the name equals `data.type`.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    frames(body)
        .into_iter()
        .map(|f| {
            let mut lines = f.lines();
            let event = lines
                .next()
                .and_then(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("no event line: {f:?}"));
            let data = lines
                .next()
                .and_then(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("no data line: {f:?}"));
            assert!(lines.next().is_none(), "two lines per frame: {f:?}");
            let v: Value =
                serde_json::from_str(data).unwrap_or_else(|e| panic!("bad JSON {e}: {data}"));
            assert_eq!(v["type"], event, "event name matches data.type");
            (event.to_owned(), v)
        })
        .collect()
}

/// Waits (with a deadline) until `cond` holds; panics on timeout. For conditions that another
/// task makes true, never as a fixed delay.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub fn user(text: &str) -> Value {
    serde_json::json!([{"role": "user", "content": text}])
}
