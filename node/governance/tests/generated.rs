//! Generated-input tests of the governance code that reads a client's or a provider's body:
//! token estimation and clamping on every endpoint, and pricing of hostile usage blocks.
//! Inputs come from the wire crate's hostile generators (objects with the real field names
//! whose values are of any type); none may panic.

use proptest::prelude::*;
use serde_json::{Map, Value};
use starling_governance::estimate::{
    EndpointKind, Tokenizer, clamp_max_tokens, input_tokens_upper_bound, output_tokens_cap,
};
use starling_governance::pricing::ModelPrice;
use starling_wire::testsuite::hostile;
use starling_wire::translate::Usage;

const CASES: u32 = 256;

fn as_map(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

const ENDPOINTS: [EndpointKind; 5] = [
    EndpointKind::ChatCompletions,
    EndpointKind::Completions,
    EndpointKind::Embeddings,
    EndpointKind::Messages,
    EndpointKind::CountTokens,
];

fn gen_max() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..100_000, Just(u64::MAX), Just(0u64), any::<u64>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Estimation and clamping on every endpoint: no panic, and after a clamp to
    /// `max` the output bound the estimator reads is at most `max` per completion.
    #[test]
    fn estimates_and_clamps_hold(
        req in hostile::any_request(),
        max in gen_max(),
        tokenizer in prop::sample::select(vec![Tokenizer::Bytes, Tokenizer::O200k, Tokenizer::Cl100k]),
    ) {
        let body = as_map(&req);
        for kind in ENDPOINTS {
            let _ = input_tokens_upper_bound(kind, &body, tokenizer);
            let _ = output_tokens_cap(kind, &body).total(u64::MAX);
            let mut clamped = body.clone();
            clamp_max_tokens(kind, &mut clamped, max);
            let cap = output_tokens_cap(kind, &clamped);
            if cap.choices > 0 {
                prop_assert!(
                    cap.requested.is_some_and(|r| r <= max),
                    "{kind:?}: {:?} after a clamp to {max}", cap.requested
                );
            }
        }
    }

    /// Usage blocks with hostile counts, in every reader: no panic, and what they read can
    /// be summed, priced and written back.
    #[test]
    fn usage_blocks_read_sum_and_price(
        usage in hostile::usage(),
        price in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
    ) {
        let price = ModelPrice { input: price.0, output: price.1, cached_input: price.2, cache_write: price.3 };
        let openai = Usage::from_openai_usage(&usage);
        let mut anthropic = Usage::from_anthropic_usage(&usage);
        let chunk = serde_json::json!({"choices": [], "usage": usage}).to_string();
        let event = serde_json::json!({"type": "message_delta", "usage": usage}).to_string();
        let mut from_chunk = Usage::default();
        from_chunk.apply_openai_chunk_data(&chunk);
        anthropic.apply_anthropic_event_data(&event);
        for u in [openai, anthropic, from_chunk] {
            let _ = (u.total(), u.total_input(), price.cost_micros(&u));
            let _ = (u.to_openai_json(), u.to_anthropic_json());
        }
    }
}
