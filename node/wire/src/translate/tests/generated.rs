//! Generated-input tests of everything here that reads a client's or a provider's body:
//! request translators, validation and parsing, response and error-body translators, usage
//! parsers and the arithmetic on their counts. Inputs are objects with the real field names
//! whose values are of any type (see [`crate::testsuite::hostile`]); none may panic, and
//! outputs must stay within a bound of the input's size. Token estimation and pricing of the
//! same inputs are tested in the governance crate (`tests/generated.rs`).

use bytes::Bytes;
use http::StatusCode;
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::api::json::parse_json_object;
use crate::api::validate::validate;
use crate::api::{ApiError, ApiFormat, Endpoint};
use crate::testsuite::hostile;
use crate::translate::errors::{anthropic_error_to_openai, openai_error_to_anthropic};
use crate::translate::{
    Usage, chat_request_to_messages, chat_response_to_messages, messages_request_to_chat,
    messages_response_to_chat,
};

const CASES: u32 = 256;

/// How much larger than its input a translation may be: a few times (a data URL becomes a
/// source object, tool arguments are re-encoded...) plus a constant, never unbounded.
fn assert_bounded(input: &Value, output: &Value) -> Result<(), TestCaseError> {
    let (i, o) = (input.to_string().len(), output.to_string().len());
    prop_assert!(o <= 4 * i + 4096, "output of {o} bytes for {i} input bytes");
    Ok(())
}

fn as_map(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

const ENDPOINTS: [Endpoint; 5] = [
    Endpoint::ChatCompletions,
    Endpoint::Completions,
    Endpoint::Embeddings,
    Endpoint::Messages,
    Endpoint::CountTokens,
];

/// A usage with arbitrary counts, many of them at or near `u64::MAX`.
fn any_usage() -> impl Strategy<Value = Usage> {
    let n = || {
        prop_oneof![
            2 => 0u64..1_000_000,
            1 => Just(u64::MAX),
            1 => (u64::MAX - 1_000)..=u64::MAX,
            1 => any::<u64>(),
        ]
    };
    (n(), n(), n(), n()).prop_map(|(a, b, c, d)| Usage {
        input_tokens: a,
        output_tokens: b,
        cached_input_tokens: c,
        cache_write_tokens: d,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn chat_requests_translate_or_fail_cleanly(
        req in prop_oneof![4 => hostile::chat_request(), 1 => hostile::any_json()],
        default_max in any::<u32>(),
    ) {
        match chat_request_to_messages(&req, "claude-up", default_max) {
            Ok(out) => {
                prop_assert!(out.is_object());
                assert_bounded(&req, &out)?;
            }
            Err(e) => prop_assert!(e.status() == 400 && !e.path().is_empty()),
        }
    }

    #[test]
    fn messages_requests_translate_or_fail_cleanly(
        req in prop_oneof![4 => hostile::messages_request(), 1 => hostile::any_json()],
    ) {
        match messages_request_to_chat(&req, "gpt-up") {
            Ok(out) => {
                prop_assert!(out.is_object());
                assert_bounded(&req, &out)?;
            }
            Err(e) => prop_assert!(e.status() == 400 && !e.path().is_empty()),
        }
    }

    /// Validation on every endpoint: an answer, never a panic.
    #[test]
    fn validation_never_panics(req in hostile::any_request()) {
        let body = as_map(&req);
        for endpoint in ENDPOINTS {
            let _ = validate(endpoint, &body);
        }
    }

    /// The parser under the depth limit, on the generated bodies and on their bytes cut,
    /// and wrapped in nesting around the limit.
    #[test]
    fn request_parsing_never_panics(
        req in hostile::any_request(),
        cut in any::<prop::sample::Index>(),
        depth in 0usize..=3 * hostile::MAX_DEPTH,
    ) {
        let bytes = req.to_string().into_bytes();
        let _ = parse_json_object(&bytes, hostile::MAX_DEPTH);
        let _ = parse_json_object(&bytes[..cut.index(bytes.len() + 1)], hostile::MAX_DEPTH);
        let nested = format!("{}{}{}", "{\"a\":[".repeat(depth), req, "]}".repeat(depth));
        let parsed = parse_json_object(nested.as_bytes(), hostile::MAX_DEPTH);
        if 2 * depth > hostile::MAX_DEPTH {
            prop_assert!(parsed.is_err(), "{depth} levels of nesting accepted");
        }
    }

    #[test]
    fn anthropic_responses_translate_or_fail_cleanly(
        resp in prop_oneof![4 => hostile::messages_response(), 1 => hostile::any_json()],
    ) {
        let _ = Usage::from_anthropic_response(&resp).map(|u| u.to_openai_json());
        match messages_response_to_chat(&resp, "gpt-client") {
            Ok(out) => {
                assert_bounded(&resp, &out)?;
                if let Some(u) = Usage::from_openai_response(&out) {
                    prop_assert!(u.total_input() >= u.cached_input_tokens);
                }
            }
            Err(e) => prop_assert_eq!(e.status(), 502),
        }
    }

    #[test]
    fn openai_responses_translate_or_fail_cleanly(
        resp in prop_oneof![4 => hostile::chat_response(), 1 => hostile::any_json()],
    ) {
        let _ = Usage::from_openai_response(&resp).map(|u| u.to_anthropic_json());
        match chat_response_to_messages(&resp, "claude-client") {
            Ok(out) => assert_bounded(&resp, &out)?,
            Err(e) => prop_assert_eq!(e.status(), 502),
        }
    }

    /// Error bodies of any shape (and raw bytes), at any status, in both directions and
    /// through `ApiError::from_upstream`: an error object in the client's shape comes out.
    #[test]
    fn error_bodies_translate(
        body in prop_oneof![
            3 => hostile::error_body().prop_map(|v| v.to_string().into_bytes()),
            1 => hostile::any_json().prop_map(|v| v.to_string().into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..2048),
            1 => (1usize..64).prop_map(|k| "<html>é".repeat(k * 500).into_bytes()),
        ],
        status in any::<u16>(),
    ) {
        let a = openai_error_to_anthropic(status, &body);
        prop_assert_eq!(a["type"].as_str(), Some("error"));
        let o = anthropic_error_to_openai(status, &body);
        prop_assert!(o["error"]["message"].is_string());
        for s in [a, o] {
            prop_assert!(s.to_string().len() <= body.len() + 4096);
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        for (from, to) in [
            (ApiFormat::OpenAi, ApiFormat::Anthropic),
            (ApiFormat::Anthropic, ApiFormat::OpenAi),
        ] {
            let err = ApiError::from_upstream(status, from, Bytes::from(body.clone()), None);
            let (_, out) = err.body(to);
            prop_assert!(serde_json::from_slice::<Value>(&out).is_ok());
        }
    }

    /// Counts at the top of the range: totals saturate, and the two wire forms read back
    /// what was written (exactly, unless the OpenAI total itself saturated).
    #[test]
    fn usage_arithmetic_saturates(u in any_usage()) {
        prop_assert!(u.total() >= u.total_input().max(u.output_tokens));
        prop_assert_eq!(Usage::from_anthropic_usage(&u.to_anthropic_json()), u);
        let exact = u
            .input_tokens
            .checked_add(u.cached_input_tokens)
            .and_then(|n| n.checked_add(u.cache_write_tokens))
            .is_some();
        if exact {
            prop_assert_eq!(Usage::from_openai_usage(&u.to_openai_json()), u);
        }
    }
}

/// Regression: a provider's usage at `u64::MAX` made the gateway's token totals overflow
/// (a panic in a debug build, a wrapped count in release).
#[test]
fn usage_at_u64_max_sums_without_overflow() {
    let usage = Usage::from_anthropic_usage(&serde_json::json!({
        "input_tokens": u64::MAX,
        "output_tokens": u64::MAX,
        "cache_read_input_tokens": u64::MAX,
        "cache_creation_input_tokens": u64::MAX,
    }));
    assert_eq!(usage.total_input(), u64::MAX);
    assert_eq!(usage.total(), u64::MAX);
}
