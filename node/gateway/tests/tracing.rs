//! OpenTelemetry traces end to end: a gateway exports over OTLP/HTTP to a collector inside the
//! test, in front of a tiny upstream that fails once and records the `traceparent` of every
//! attempt. The spans must continue the client's trace, nest admission, both attempts and
//! settlement under the request span, carry the GenAI attributes, and the upstream must have
//! seen each attempt's own span as its parent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::json;
use starling::admin::AdminState;
use starling::config::Config;
use starling::config::secrets::Secret;
use starling::proxy::Gateway;
use starling::server::RunningServer;
use tokio::net::TcpListener;

const KEY: &str = "sk-tracing-test";
const ADMIN: &str = "admin-tracing-test";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Binds a loopback listener on an OS-assigned port and serves `app` on it.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// An OTLP/HTTP receiver keeping every span it is sent.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes| async move {
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return StatusCode::BAD_REQUEST.into_response();
                    };
                    let mut kept = spans.lock().expect("lock");
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            kept.extend(scope.spans);
                        }
                    }
                    // An empty ExportTraceServiceResponse.
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                        .into_response()
                },
            ),
        )
        .with_state(spans.clone());
    (serve(app).await, spans)
}

/// An OpenAI-format upstream: the first call answers 500, later ones a completion. Every
/// call's `traceparent` is recorded.
async fn upstream() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(
                |State(seen): State<Arc<Mutex<Vec<Option<String>>>>>, headers: HeaderMap| async move {
                    let traceparent = headers
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let calls = {
                        let mut seen = seen.lock().expect("lock");
                        seen.push(traceparent);
                        seen.len()
                    };
                    if calls == 1 {
                        let body = json!({"error": {"message": "overloaded", "type": "server_error"}});
                        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
                    }
                    axum::Json(json!({
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                        "model": "gpt-4o-mini-2024-07-18",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "hi"}}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
                    }))
                    .into_response()
                },
            ),
        )
        .with_state(seen.clone());
    (serve(app).await, seen)
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn attr_str<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attr(span, key) {
        Some(Any::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn attr_int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Any::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn wait_for_spans(spans: &Mutex<Vec<Span>>, what: &str, check: impl Fn(&[Span]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if check(&spans.lock().expect("lock")) {
            return;
        }
        let names: Vec<String> = spans
            .lock()
            .expect("lock")
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; spans so far: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_with_genai_attributes_and_trace_context() {
    starling_providers::ensure_crypto_provider();
    let (collector, spans) = collector().await;
    let (upstream, seen) = upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("upstream.key");
    std::fs::write(&key_file, "sk-upstream").expect("key");
    let config = Config::from_toml(&format!(
        r#"
[auth]
keys = ["{KEY}"]

[routing]
retries = 2
backoff_initial_ms = 1
backoff_max_ms = 10

[[providers]]
name = "up"
kind = "openai"
base_url = "{upstream}/v1"
api_key_file = "{}"
models = ["gpt-*"]

[tracing]
endpoint = "{collector}"
service_name = "starling-under-test"
batch_delay_ms = 50
"#,
        key_file.display()
    ))
    .expect("config");
    let gateway = Arc::new(Gateway::from_config(config).expect("gateway"));
    assert!(gateway.telemetry.is_on());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let admin = AdminState {
        token: Some(Secret::new(ADMIN)),
        cluster: None,
    };
    let server =
        RunningServer::start_with_admin(gateway.clone(), listener, None, admin).expect("starts");
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();

    let response = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let missing = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(missing.status(), 404);

    // The batch processor exports within batch_delay_ms; flushing makes it immediate.
    let telemetry = gateway.telemetry.clone();
    tokio::task::spawn_blocking(move || telemetry.flush())
        .await
        .expect("flush");
    wait_for_spans(&spans, "both requests' spans", |s| {
        s.iter()
            .filter(|s| s.kind == SpanKind::Server as i32)
            .count()
            == 2
            && s.iter()
                .filter(|s| s.kind == SpanKind::Client as i32)
                .count()
                == 2
            && s.iter().any(|s| s.name == "starling.settlement")
    })
    .await;
    let spans = spans.lock().expect("lock").clone();
    let by_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == TRACE_ID)
        .collect();

    // The request span continues the client's trace.
    let request = by_trace
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("request span in the client's trace");
    assert_eq!(request.name, "chat gpt-4o-mini");
    assert_eq!(hex(&request.parent_span_id), CLIENT_SPAN);
    assert_eq!(attr_str(request, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(
        attr_str(request, "gen_ai.request.model"),
        Some("gpt-4o-mini")
    );
    assert_eq!(attr_str(request, "gen_ai.provider.name"), Some("openai"));
    assert_eq!(
        attr_str(request, "gen_ai.response.model"),
        Some("gpt-4o-mini")
    );
    assert_eq!(attr_int(request, "gen_ai.request.max_tokens"), Some(50));
    assert_eq!(attr_int(request, "gen_ai.usage.input_tokens"), Some(11));
    assert_eq!(attr_int(request, "gen_ai.usage.output_tokens"), Some(7));
    assert_eq!(attr_int(request, "http.response.status_code"), Some(200));
    assert_eq!(attr_int(request, "starling.attempts"), Some(2));
    assert_eq!(attr_str(request, "starling.provider"), Some("up"));
    assert!(attr(request, "starling.cost_micros").is_some());
    assert!(attr(request, "error.type").is_none());
    match attr(request, "gen_ai.response.finish_reasons") {
        Some(Any::ArrayValue(a)) => {
            let reasons: Vec<_> = a.values.iter().filter_map(|v| v.value.as_ref()).collect();
            assert!(
                matches!(reasons.as_slice(), [Any::StringValue(s)] if s == "stop"),
                "{reasons:?}"
            );
        }
        other => panic!("finish reasons: {other:?}"),
    }

    // Admission, both attempts and settlement are its children.
    let children: HashMap<&str, Vec<&&Span>> = by_trace
        .iter()
        .filter(|s| s.parent_span_id == request.span_id)
        .fold(HashMap::new(), |mut m, s| {
            m.entry(s.name.as_str()).or_default().push(s);
            m
        });
    assert_eq!(children.get("starling.admission").map(Vec::len), Some(1));
    assert_eq!(children.get("starling.settlement").map(Vec::len), Some(1));
    let mut attempts: Vec<&Span> = by_trace
        .iter()
        .copied()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    attempts.sort_by_key(|s| attr_int(s, "starling.attempt"));
    assert_eq!(attempts.len(), 2, "one span per attempt");
    for (n, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt.parent_span_id, request.span_id);
        assert_eq!(attempt.name, "chat gpt-4o-mini");
        assert_eq!(attr_int(attempt, "starling.attempt"), Some(n as i64 + 1));
        assert_eq!(attr_str(attempt, "gen_ai.provider.name"), Some("openai"));
        assert_eq!(attr_str(attempt, "server.address"), Some("127.0.0.1"));
    }
    assert_eq!(
        attr_int(attempts[0], "http.response.status_code"),
        Some(500)
    );
    assert_eq!(attr_str(attempts[0], "error.type"), Some("500"));
    assert_eq!(
        attr_int(attempts[1], "http.response.status_code"),
        Some(200)
    );
    assert!(attr(attempts[1], "error.type").is_none());

    // Each upstream call carried its own attempt span as the parent, in the client's trace.
    let seen = seen.lock().expect("lock").clone();
    let expected: Vec<Option<String>> = attempts
        .iter()
        .map(|a| Some(format!("00-{TRACE_ID}-{}-01", hex(&a.span_id))))
        .collect();
    assert_eq!(seen, expected);

    // A request that fails before any upstream starts a trace of its own, marked failed.
    let failed = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32 && hex(&s.trace_id) != TRACE_ID)
        .expect("the 404's span");
    assert!(failed.parent_span_id.is_empty(), "a root span");
    assert_eq!(failed.name, "chat no-such-model");
    assert_eq!(attr_int(failed, "http.response.status_code"), Some(404));
    assert_eq!(attr_str(failed, "error.type"), Some("model_not_found"));

    // The request log ties the record to the trace.
    let logs: serde_json::Value = client
        .get(format!("{base}/admin/v1/logs?status=200"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("logs")
        .json()
        .await
        .expect("json");
    assert_eq!(logs["data"][0]["trace_id"], TRACE_ID, "{logs}");
    assert_eq!(logs["data"][0]["attempts"], 2, "{logs}");
    server.shutdown(Duration::from_secs(5)).await;
}
