//! Injected faults, prompt directives that break things, and the ledger / control API.

mod common;

use common::*;
use http::Method;
use serde_json::{Value, json};
use starling_bench::{Fault, LedgerEntry, LedgerSummary, MockConfig, Outcome};

fn chat_body(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": user(text)})
}

#[tokio::test]
async fn openai_error_directives_and_auth() {
    let m = mock().await;
    let a = m.addr();
    let r = post(a, "/v1/chat/completions", &[], &chat_body("x", false)).await;
    assert_eq!(r.status, 401);
    let e = &r.json()["error"];
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("invalid_request_error"), Some("invalid_api_key"))
    );
    assert!(e.get("param").is_some() && e.get("message").is_some());

    let r = post(
        a,
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-invalid-1")],
        &chat_body("x", false),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");

    let r = chat(a, &chat_body("[mock:error 429 retry-after=2]", false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert!(r.header("x-request-id").is_some());
    let e = &r.json()["error"];
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("requests"), Some("rate_limit_exceeded"))
    );

    let r = chat(a, &chat_body("[mock:error 500]", true)).await;
    assert_eq!(r.status, 500, "errors come before any stream");
    assert_eq!(r.json()["error"]["type"], "server_error");

    let r = send(
        a,
        Method::POST,
        "/v1/chat/completions",
        &[OPENAI_AUTH],
        Some(bytes::Bytes::from_static(b"[1,")),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");

    let r = chat(
        a,
        &json!({"model": "gpt-4o", "messages": user("x"), "max_tokens": "ten"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "max_tokens");
    let r = chat(a, &json!({"messages": user("x")})).await;
    assert_eq!(r.json()["error"]["param"], "model");

    let statuses: Vec<u16> = m.ledger().iter().map(|e| e.status).collect();
    assert_eq!(statuses, [401, 401, 429, 500, 400, 400, 400]);
    assert!(m.ledger().iter().all(|e| e.outcome == Outcome::Error));
}

#[tokio::test]
async fn status_fault_counts_and_filters() {
    let m = mock().await;
    let a = m.addr();
    m.inject(
        Fault::status(503)
            .times(2)
            .for_model("gpt-4o-mini")
            .retry_after(1),
    );
    let other = chat(a, &json!({"model": "gpt-4o", "messages": user("x")})).await;
    assert_eq!(other.status, 200, "model filter");
    for _ in 0..2 {
        let r = chat(a, &chat_body("x", false)).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert_eq!(
        chat(a, &chat_body("x", false)).await.status,
        200,
        "count exhausted"
    );

    // The same through the HTTP control API, for Anthropic.
    let r = post(
        a,
        "/_mock/faults",
        &[],
        &json!({"kind": "status", "status": 429, "count": 1, "api": "anthropic.messages"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(a, "/_mock/faults", &[])
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": user("x")});
    let r = anthropic(a, "/v1/messages", &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert_eq!(anthropic(a, "/v1/messages", &body).await.status, 200);

    let bad = post(
        a,
        "/_mock/faults",
        &[],
        &json!({"kind": "status", "status": 200}),
    )
    .await;
    assert_eq!(bad.status, 400);
    let bad = post(a, "/_mock/faults", &[], &json!({"kind": "explode"})).await;
    assert_eq!(bad.status, 400);
    post(
        a,
        "/_mock/faults",
        &[],
        &json!({"kind": "status", "count": 0}),
    )
    .await;
    assert_eq!(chat(a, &chat_body("x", false)).await.status, 500);
    assert_eq!(
        chat(a, &chat_body("x", false)).await.status,
        500,
        "count 0 = until cleared"
    );
    assert_eq!(
        send(a, Method::DELETE, "/_mock/faults", &[], None)
            .await
            .status,
        200
    );
    assert_eq!(chat(a, &chat_body("x", false)).await.status, 200);
}

#[tokio::test]
async fn drop_fault_and_directive_cut_non_streams_before_any_response() {
    let m = mock().await;
    let a = m.addr();
    m.inject(Fault::drop_after(0));
    let r = chat(a, &chat_body("x", false)).await;
    assert_eq!((r.status, r.aborted), (0, true), "no response at all");
    let r = anthropic(a, "/v1/messages", &json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": user("[mock:drop-after 0]")})).await;
    assert_eq!((r.status, r.aborted), (0, true));
    let l = m.ledger();
    assert_eq!(l.len(), 2);
    assert!(
        l.iter()
            .all(|e| e.outcome == Outcome::Dropped && e.status == 0 && e.output_tokens == 0)
    );
}

#[tokio::test]
async fn drop_mid_stream_sends_k_chunks_then_cuts() {
    let m = mock().await;
    let a = m.addr();
    let r = chat(
        a,
        &chat_body("cut [mock:tokens 10] [mock:drop-after 3]", true),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.aborted, "the body must end with an error, not cleanly");
    let text = r.text();
    assert!(!text.contains("[DONE]"));
    let frames = sse_data(&text);
    assert_eq!(frames.len(), 1 + 3, "role chunk + 3 content chunks");
    assert!(
        frames
            .iter()
            .all(|f| f["choices"][0]["finish_reason"].is_null())
    );

    m.inject(Fault::drop_after(2).for_api("anthropic.messages"));
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "stream": true, "messages": user("cut [mock:tokens 10]")});
    let r = anthropic(a, "/v1/messages", &body).await;
    assert!(r.aborted);
    let events = sse_events(&r.text());
    let deltas = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .count();
    assert_eq!(deltas, 2);
    assert!(
        events
            .iter()
            .all(|(n, _)| n != "message_stop" && n != "message_delta")
    );

    // More chunks requested than exist: everything but the finish is sent.
    let r = chat(
        a,
        &chat_body("short [mock:tokens 2] [mock:drop-after 5]", true),
    )
    .await;
    assert!(r.aborted);
    assert_eq!(sse_data(&r.text()).len(), 1 + 2);

    let l = m.ledger();
    assert_eq!(l.len(), 3);
    assert!(
        l.iter()
            .all(|e| e.outcome == Outcome::Dropped && e.status == 200 && e.stream)
    );
    assert_eq!(
        l.iter().map(|e| e.output_tokens).collect::<Vec<_>>(),
        [3, 2, 2]
    );
    assert!(
        l.iter().all(|e| e.input_tokens > 0 && e.cost_micros > 0),
        "cut streams bill what was sent"
    );
}

#[tokio::test]
async fn slow_first_byte_still_answers() {
    let m = mock().await;
    m.inject(Fault::slow_first_byte(5));
    let r = chat(m.addr(), &chat_body("x [mock:slow-first-byte 5]", false)).await;
    assert_eq!(r.status, 200);
    assert_eq!(m.ledger()[0].outcome, Outcome::Ok);
}

#[tokio::test]
async fn hang_holds_until_the_client_leaves_or_shutdown() {
    let m = mock().await;
    let a = m.addr();
    m.inject(Fault::hang().times(2));
    // Client gives up: abort the request task once the mock holds the request.
    let client = tokio::spawn(async move { chat(a, &chat_body("x", false)).await });
    wait_until("request held", || m.in_flight() == 1).await;
    client.abort();
    wait_until("client_gone recorded", || m.in_flight() == 0).await;
    assert_eq!(m.ledger()[0].outcome, Outcome::ClientGone);

    // Shutdown releases a hanging request by closing its connection.
    let client = tokio::spawn(async move { chat(a, &chat_body("x", false)).await });
    wait_until("request held", || m.in_flight() == 1).await;
    let ledger_before = m.ledger().len();
    let summary = m.ledger_summary();
    m.shutdown().await;
    let r = client.await.expect("client task");
    assert_eq!((r.status, r.aborted), (0, true));
    assert_eq!(ledger_before, 1);
    assert_eq!(summary.calls, 1);
}

#[tokio::test]
async fn client_gone_mid_stream_is_recorded() {
    let cfg = MockConfig {
        inter_token_ms: 20,
        ..MockConfig::default()
    };
    let m = mock_with(cfg).await;
    let a = m.addr();
    let stream = tokio::net::TcpStream::connect(a).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    let conn_task = tokio::spawn(conn);
    let body = chat_body("long [mock:tokens 1000]", true).to_string();
    let req = http::Request::post("/v1/chat/completions")
        .header("host", "mock")
        .header("authorization", "Bearer k")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    use http_body_util::BodyExt;
    let first = body.frame().await.expect("a frame").expect("data");
    assert!(first.data_ref().is_some());
    drop(body);
    drop(sender);
    conn_task.abort();
    wait_until("stream ended", || m.in_flight() == 0).await;
    let e = &m.ledger()[0];
    assert_eq!(e.outcome, Outcome::ClientGone);
    assert!(
        e.output_tokens < 1000,
        "only what was sent is billed: {}",
        e.output_tokens
    );
    assert_eq!(e.status, 200);
}

#[tokio::test]
async fn ledger_control_api() {
    let m = mock().await;
    let a = m.addr();
    assert_eq!(get(a, "/_mock/health", &[]).await.json()["status"], "ok");
    chat(a, &chat_body("one [mock:tokens 3]", false)).await;
    chat(
        a,
        &json!({"model": "gpt-4o", "messages": user("two [mock:tokens 2]")}),
    )
    .await;
    post(
        a,
        "/v1/chat/completions",
        &[OPENAI_AUTH, ("x-starling-request-id", "abc")],
        &chat_body("three", true),
    )
    .await;
    anthropic(
        a,
        "/v1/messages",
        &json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": user("four")}),
    )
    .await;

    let entries: Vec<LedgerEntry> =
        serde_json::from_slice(&get(a, "/_mock/ledger", &[]).await.body).expect("ledger JSON");
    assert_eq!(entries, m.ledger());
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(
        entries[2].upstream_request_id_header.as_deref(),
        Some("abc")
    );
    let raw = get(a, "/_mock/ledger", &[]).await.json();
    for key in [
        "seq",
        "request_id",
        "upstream_request_id_header",
        "api",
        "model",
        "stream",
        "input_tokens",
        "output_tokens",
        "cost_micros",
        "status",
        "outcome",
        "started_at_ms",
        "completed_at_ms",
    ] {
        assert!(raw[0].get(key).is_some(), "ledger entry has {key}");
    }
    assert_eq!(raw[0]["outcome"], "ok");

    let s: LedgerSummary =
        serde_json::from_slice(&get(a, "/_mock/ledger/summary", &[]).await.body).expect("summary");
    assert_eq!(s, m.ledger_summary());
    assert_eq!(s.calls, 4);
    assert_eq!(
        s.input_tokens,
        entries.iter().map(|e| e.input_tokens).sum::<u64>()
    );
    assert_eq!(
        s.output_tokens,
        entries.iter().map(|e| e.output_tokens).sum::<u64>()
    );
    assert_eq!(
        s.cost_micros,
        entries.iter().map(|e| e.cost_micros).sum::<u64>()
    );
    let mini = &s.by_model["gpt-4o-mini"];
    assert_eq!((mini.calls, mini.output_tokens), (2, 3 + 16));
    assert_eq!(s.by_model["claude-sonnet-4-5"].calls, 1);

    assert_eq!(
        send(a, Method::DELETE, "/_mock/ledger", &[], None)
            .await
            .status,
        200
    );
    assert!(m.ledger().is_empty());
    assert_eq!(m.ledger_summary().calls, 0);
    chat(a, &chat_body("again", false)).await;
    assert_eq!(m.ledger()[0].seq, 5, "sequence numbers are never reused");
    assert_eq!(get(a, "/_mock/nope", &[]).await.status, 404);
}

#[tokio::test]
async fn ledger_limit_keeps_exact_totals() {
    let m = mock_with(MockConfig {
        ledger_limit: Some(2),
        ..MockConfig::default()
    })
    .await;
    for _ in 0..5 {
        chat(m.addr(), &chat_body("x [mock:tokens 1]", false)).await;
    }
    assert_eq!(m.ledger().len(), 2);
    let s = m.ledger_summary();
    assert_eq!((s.calls, s.output_tokens, s.retained_entries), (5, 5, 2));
}
