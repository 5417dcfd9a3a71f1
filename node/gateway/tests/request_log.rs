//! The request log: the in-memory ring behind `GET /admin/v1/logs` (filters, bound, admin
//! guard), the JSON-lines file, and bodies recorded only when enabled, and then bounded.

mod common;

use std::time::Duration;

use common::{Harness, KEY};
use serde_json::{Value, json};

fn ids(body: &Value) -> Vec<&str> {
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect()
}

async fn chat(h: &Harness, model: &str, text: &str) -> String {
    let response = h
        .post(
            "/v1/chat/completions",
            &json!({"model": model, "messages": [{"role": "user", "content": text}]}),
        )
        .await;
    request_id(&response)
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id")
        .to_owned()
}

#[tokio::test]
async fn the_ring_is_bounded_filtered_and_guarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("requests.jsonl");
    let h = Harness::start(&format!(
        "[request_log]\ncapacity = 3\nfile = \"{}\"\n",
        file.display()
    ))
    .await;
    let r1 = chat(&h, "gpt-4o-mini", "one").await;
    let r2 = chat(&h, "no-such-model", "two").await;
    let messages = h
        .post(
            "/v1/messages",
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 20,
                    "messages": [{"role": "user", "content": "three"}]}),
        )
        .await;
    assert_eq!(messages.status(), 200);
    let r3 = request_id(&messages);
    let r4 = chat(&h, "gpt-4o-mini", "[mock:error 400] four").await;
    let r5 = chat(&h, "gpt-4o-mini", "five").await;

    // Newest first, and only the last three: the ring is bounded.
    let (status, all) = h.admin_get("/admin/v1/logs").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), [&*r5, &*r4, &*r3]);
    assert_eq!(all["capacity"], 3);

    let newest = &all["data"][0];
    assert_eq!(newest["route"], "chat_completions");
    assert_eq!(newest["model"], "gpt-4o-mini");
    assert_eq!(newest["provider"], "mock-openai");
    assert_eq!(newest["status"], 200);
    assert_eq!(newest["attempts"], 1);
    assert!(newest["input_tokens"].as_u64() > Some(0), "{newest}");
    assert!(newest["output_tokens"].as_u64() > Some(0), "{newest}");
    assert!(newest["latency_ms"].as_f64().is_some(), "{newest}");
    assert!(newest["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    for absent in ["request_body", "response_body", "error", "trace_id"] {
        assert!(newest.get(absent).is_none(), "{absent} in {newest}");
    }
    let failed = &all["data"][1];
    assert_eq!(failed["status"], 400);
    assert!(failed["error"].as_str().is_some(), "{failed}");

    // Filters.
    let (_, client_errors) = h.admin_get("/admin/v1/logs?status=4xx").await;
    assert_eq!(
        ids(&client_errors),
        [&*r4],
        "the 404 ({r2}) fell out of the ring"
    );
    let (_, gpt) = h.admin_get("/admin/v1/logs?model=gpt-4o-mini").await;
    assert_eq!(ids(&gpt), [&*r5, &*r4]);
    let (_, exact) = h.admin_get("/admin/v1/logs?status=200&limit=1").await;
    assert_eq!(ids(&exact), [&*r5]);
    let (_, future) = h
        .admin_get("/admin/v1/logs?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(ids(&future), Vec::<&str>::new());
    let (_, by_key) = h.admin_get("/admin/v1/logs?key=vk_nobody").await;
    assert_eq!(ids(&by_key), Vec::<&str>::new(), "static keys have no id");
    let (status, bad) = h.admin_get("/admin/v1/logs?status=teapot").await;
    assert_eq!(status, 400);
    assert!(
        bad["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("status:")),
        "{bad}"
    );
    let unauthenticated = h
        .client
        .get(format!("{}/admin/v1/logs", h.base))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        unauthenticated.status(),
        401,
        "client keys are not admin tokens"
    );

    // The file has every request, in order, written off the request path.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        if lines.len() >= 5 {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the file has {} lines",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let file_ids: Vec<&str> = lines.iter().filter_map(|l| l["id"].as_str()).collect();
    assert_eq!(file_ids, [&r1, &r2, &r3, &r4, &r5]);
    assert_eq!(lines[1]["status"], 404);
    assert_eq!(lines[1]["attempts"], 0);
}

#[tokio::test]
async fn bodies_are_recorded_only_when_enabled_and_bounded() {
    let h = Harness::start("[request_log]\nbodies = true\nmax_body_bytes = 40\n").await;
    let prompt = "a prompt much longer than forty bytes, so that it is cut short";
    chat(&h, "gpt-4o-mini", prompt).await;
    let stream = h
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-4o-mini", "stream": true,
                    "messages": [{"role": "user", "content": "streamed"}]}),
        )
        .await;
    assert_eq!(stream.status(), 200);
    let text = stream.text().await.expect("stream");
    assert!(text.contains("[DONE]"));

    let (_, logs) = h.admin_get("/admin/v1/logs").await;
    let [streamed, complete] = logs["data"].as_array().expect("data").as_slice() else {
        panic!("two records: {logs}");
    };
    for record in [streamed, complete] {
        let request = record["request_body"].as_str().expect("request body");
        assert!(request.len() <= 40, "{request}");
        assert!(request.starts_with("{\"model\""), "{request}");
        let response = record["response_body"].as_str().expect("response body");
        assert!(!response.is_empty() && response.len() <= 40, "{response}");
    }
    assert_eq!(streamed["stream"], true);
    assert!(
        streamed["response_body"]
            .as_str()
            .is_some_and(|b| b.starts_with("data: ")),
        "{streamed}"
    );
    assert!(
        complete["response_body"]
            .as_str()
            .is_some_and(|b| b.starts_with('{')),
        "{complete}"
    );

    // The same traffic with the default config records no body.
    let plain = Harness::start("").await;
    chat(&plain, "gpt-4o-mini", prompt).await;
    let (_, logs) = plain.admin_get("/admin/v1/logs").await;
    let record = &logs["data"][0];
    assert_eq!(record["status"], 200, "{logs}");
    assert!(record.get("request_body").is_none(), "{record}");
    assert!(record.get("response_body").is_none(), "{record}");
}

/// An upstream that answers every Anthropic request with token counts at `u64::MAX`,
/// streaming or not. Returns its address.
async fn hostile_usage_upstream() -> std::net::SocketAddr {
    use axum::{http::header, response::IntoResponse, routing::post};
    const MAX: u64 = u64::MAX;
    async fn messages(axum::Json(body): axum::Json<Value>) -> axum::response::Response {
        let usage = json!({"input_tokens": MAX, "output_tokens": MAX,
            "cache_read_input_tokens": MAX, "cache_creation_input_tokens": MAX});
        if body["stream"] == true {
            let start = json!({"type": "message_start", "message": {"id": "msg_1",
                "type": "message", "role": "assistant", "model": "hostile-1", "content": [],
                "stop_reason": null, "usage": usage}});
            let delta = json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": usage});
            let sse = format!(
                "event: message_start\ndata: {start}\n\n\
                 event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
                 event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"hi\"}}}}\n\n\
                 event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
                 event: message_delta\ndata: {delta}\n\n\
                 event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
            );
            return ([(header::CONTENT_TYPE, "text/event-stream")], sse).into_response();
        }
        axum::Json(
            json!({"id": "msg_1", "type": "message", "role": "assistant",
            "model": "hostile-1", "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn", "stop_sequence": null, "usage": usage}),
        )
        .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("address");
    let app = axum::Router::new().route("/v1/messages", post(messages));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Regression: token counts from the provider were summed without saturation for the request
/// log, the settlement log line and the trace (and the permit), so usage at `u64::MAX`
/// overflowed: a panic in a debug build, which dropped the client's connection.
#[tokio::test]
async fn usage_at_u64_max_from_the_provider_is_logged_saturated() {
    let upstream = hostile_usage_upstream().await;
    let h = Harness::start_with(starling_bench::MockConfig::default(), |mock, key| {
        let extra = format!(
            "[[providers]]\nname = \"hostile\"\nkind = \"anthropic\"\n\
             base_url = \"http://{upstream}\"\napi_key_file = \"{key}\"\nmodels = [\"hostile-*\"]\n"
        );
        common::standard_config(mock, key, "", &extra)
    })
    .await;
    for (path, stream) in [
        ("/v1/messages", false),
        ("/v1/messages", true),
        ("/v1/chat/completions", false),
        ("/v1/chat/completions", true),
    ] {
        let response = h
            .post(
                path,
                &json!({"model": "hostile-1", "max_tokens": 10, "stream": stream,
                        "stream_options": if path.contains("chat") && stream {
                            json!({"include_usage": true}) } else { Value::Null },
                        "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(response.status(), 200, "{path} stream={stream}");
        let body = response.text().await.expect("the whole body arrives");
        assert!(body.contains("hi"), "{path} stream={stream}: {body}");
    }
    let (_, logs) = h.admin_get("/admin/v1/logs").await;
    let records = logs["data"].as_array().expect("data");
    assert_eq!(records.len(), 4, "{logs}");
    for r in records {
        assert_eq!(r["input_tokens"].as_u64(), Some(u64::MAX), "{r}");
        assert_eq!(r["output_tokens"].as_u64(), Some(u64::MAX), "{r}");
    }
}
