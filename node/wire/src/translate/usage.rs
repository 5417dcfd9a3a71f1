//! Token usage in one provider-neutral shape, read from and written to both
//! APIs' `usage` objects.
//!
//! The two APIs count input differently: OpenAI's `prompt_tokens` includes
//! cached tokens (`prompt_tokens_details.cached_tokens`), Anthropic's
//! `input_tokens` excludes both cache reads and cache writes. [`Usage`] keeps
//! the disjoint parts so that pricing can charge each at its own rate.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Token counts of one request, split by how they are priced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to a cache.
    pub input_tokens: u64,
    /// Generated tokens (including reasoning tokens).
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
}

impl Usage {
    /// All prompt tokens: uncached + cache reads + cache writes.
    pub fn total_input(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cached_input_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// All tokens: input (uncached, cache reads, cache writes) plus output, saturating.
    /// Counts come from the provider, so a hostile or broken one can send `u64::MAX`.
    pub fn total(&self) -> u64 {
        self.total_input().saturating_add(self.output_tokens)
    }

    /// From an OpenAI `usage` object (chat, completions, embeddings, or a
    /// stream chunk's). Missing or malformed counts read as 0.
    pub fn from_openai_usage(usage: &Value) -> Self {
        OpenAiUsageWire::deserialize(usage)
            .map(|w| w.to_usage())
            .unwrap_or_default()
    }

    /// The `usage` of an OpenAI response or stream chunk, if it has one
    /// (stream chunks carry `"usage": null` until the last).
    pub fn from_openai_response(resp: &Value) -> Option<Self> {
        resp.get("usage")
            .filter(|u| u.is_object())
            .map(Self::from_openai_usage)
    }

    /// From an Anthropic `usage` object (a response's, or
    /// `message_start.message.usage`).
    pub fn from_anthropic_usage(usage: &Value) -> Self {
        let mut u = Self::default();
        u.apply_anthropic_usage(usage);
        u
    }

    /// The `usage` of an Anthropic (non-streaming) response.
    pub fn from_anthropic_response(resp: &Value) -> Option<Self> {
        resp.get("usage")
            .filter(|u| u.is_object())
            .map(Self::from_anthropic_usage)
    }

    /// Applies an Anthropic `usage` object on top of what is known: every
    /// count present overrides, absent ones are kept. This is the rule for
    /// streams, where `message_start.message.usage` comes first and
    /// `message_delta.usage` carries cumulative totals (`output_tokens`
    /// always, the input counts only sometimes).
    pub fn apply_anthropic_usage(&mut self, usage: &Value) {
        if let Ok(w) = AnthropicUsageWire::deserialize(usage) {
            self.apply_anthropic_wire(&w);
        }
    }

    /// Applies one Anthropic stream event (parsed JSON): reads
    /// `message_start.message.usage` and `message_delta.usage`, ignores
    /// everything else. For passthrough streams.
    pub fn apply_anthropic_event(&mut self, event: &Value) {
        let usage = match event.get("type").and_then(Value::as_str) {
            Some("message_start") => event.get("message").and_then(|m| m.get("usage")),
            Some("message_delta") => event.get("usage"),
            _ => None,
        };
        if let Some(u) = usage {
            self.apply_anthropic_usage(u);
        }
    }

    /// Like [`Usage::apply_anthropic_event`], from the raw `data` of the
    /// event without building a `Value` tree. Returns whether usage was read.
    pub fn apply_anthropic_event_data(&mut self, data: &str) -> bool {
        #[derive(Deserialize)]
        struct Msg {
            #[serde(default)]
            usage: Option<AnthropicUsageWire>,
        }
        #[derive(Deserialize)]
        struct Event {
            #[serde(default)]
            message: Option<Msg>,
            #[serde(default)]
            usage: Option<AnthropicUsageWire>,
        }
        let Ok(ev) = serde_json::from_str::<Event>(data) else {
            return false;
        };
        let mut seen = false;
        for w in [ev.message.and_then(|m| m.usage), ev.usage]
            .iter()
            .flatten()
        {
            self.apply_anthropic_wire(w);
            seen = true;
        }
        seen
    }

    /// Reads the usage of an OpenAI stream chunk from its raw `data`, if it
    /// carries one; the last chunk's usage is the total. For passthrough
    /// streams. Returns whether usage was read.
    pub fn apply_openai_chunk_data(&mut self, data: &str) -> bool {
        #[derive(Deserialize)]
        struct Chunk {
            #[serde(default)]
            usage: Option<OpenAiUsageWire>,
        }
        match serde_json::from_str::<Chunk>(data) {
            Ok(Chunk { usage: Some(w) }) => {
                *self = w.to_usage();
                true
            }
            _ => false,
        }
    }

    pub(crate) fn apply_anthropic_wire(&mut self, w: &AnthropicUsageWire) {
        let set = |dst: &mut u64, src: Option<u64>| {
            if let Some(v) = src {
                *dst = v;
            }
        };
        set(&mut self.input_tokens, w.input_tokens);
        set(&mut self.output_tokens, w.output_tokens);
        set(&mut self.cached_input_tokens, w.cache_read_input_tokens);
        set(&mut self.cache_write_tokens, w.cache_creation_input_tokens);
    }

    /// As an OpenAI `usage` object: `prompt_tokens` is the total input and
    /// `prompt_tokens_details.cached_tokens` the cache reads. Cache writes
    /// have no OpenAI field; they are counted in `prompt_tokens` and, when
    /// non-zero, also reported as `prompt_tokens_details.cache_write_tokens`
    /// (OpenRouter's name), which keeps the conversion lossless.
    pub fn to_openai_json(&self) -> Value {
        serde_json::to_value(self.openai_out()).unwrap_or_default()
    }

    /// As an Anthropic `usage` object.
    pub fn to_anthropic_json(&self) -> Value {
        serde_json::to_value(self.anthropic_out()).unwrap_or_default()
    }

    pub(crate) fn openai_out(&self) -> OpenAiUsageOut {
        let prompt = self.total_input();
        OpenAiUsageOut {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
            total_tokens: prompt.saturating_add(self.output_tokens),
            prompt_tokens_details: PromptDetailsOut {
                cached_tokens: self.cached_input_tokens,
                cache_write_tokens: self.cache_write_tokens,
            },
        }
    }

    pub(crate) fn anthropic_out(&self) -> AnthropicUsageOut {
        AnthropicUsageOut {
            input_tokens: self.input_tokens,
            cache_creation_input_tokens: self.cache_write_tokens,
            cache_read_input_tokens: self.cached_input_tokens,
            output_tokens: self.output_tokens,
        }
    }
}

/// The usage of an OpenAI response or stream chunk, if it carries one
/// (same as [`Usage::from_openai_response`]).
pub fn usage_from_openai(resp_or_chunk: &Value) -> Option<Usage> {
    Usage::from_openai_response(resp_or_chunk)
}

/// The usage of an Anthropic response, if it carries one (same as
/// [`Usage::from_anthropic_response`]).
pub fn usage_from_anthropic(resp: &Value) -> Option<Usage> {
    Usage::from_anthropic_response(resp)
}

/// Folds one parsed Anthropic stream event into `usage` (same as
/// [`Usage::apply_anthropic_event`]): `message_start` and `message_delta`
/// counts override, other events are ignored.
pub fn merge_anthropic_stream_usage(usage: &mut Usage, event: &Value) {
    usage.apply_anthropic_event(event);
}

/// OpenAI `usage` as serialized by the gateway.
#[derive(Serialize, Debug)]
pub(crate) struct OpenAiUsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetailsOut,
}

#[derive(Serialize, Debug)]
struct PromptDetailsOut {
    cached_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cache_write_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Anthropic `usage` as serialized by the gateway.
#[derive(Serialize, Debug)]
pub(crate) struct AnthropicUsageOut {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

/// OpenAI `usage` as received. Besides the official fields it reads the
/// cache counts that popular OpenAI-compatible providers add: DeepSeek's
/// `prompt_cache_hit_tokens` and OpenRouter's
/// `prompt_tokens_details.cache_write_tokens`.
#[derive(Deserialize, Debug, Default)]
pub(crate) struct OpenAiUsageWire {
    #[serde(default, deserialize_with = "lenient_u64")]
    prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetailsWire>,
    #[serde(default, deserialize_with = "lenient_u64")]
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize, Debug, Default)]
struct PromptDetailsWire {
    #[serde(default, deserialize_with = "lenient_u64")]
    cached_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    cache_write_tokens: Option<u64>,
}

impl OpenAiUsageWire {
    pub(crate) fn to_usage(&self) -> Usage {
        let details = self.prompt_tokens_details.as_ref();
        let cached = details
            .and_then(|d| d.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0);
        let written = details.and_then(|d| d.cache_write_tokens).unwrap_or(0);
        let prompt = self.prompt_tokens.unwrap_or(0);
        Usage {
            input_tokens: prompt.saturating_sub(cached).saturating_sub(written),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cached_input_tokens: cached,
            cache_write_tokens: written,
        }
    }
}

/// Anthropic `usage` as received; absent counts stay `None` so that a
/// `message_delta` only overrides what it carries.
#[derive(Deserialize, Debug, Default)]
pub(crate) struct AnthropicUsageWire {
    #[serde(default, deserialize_with = "lenient_u64")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    cache_read_input_tokens: Option<u64>,
}

/// Reads a token count without failing the whole event on an odd value:
/// integers as is, non-negative floats truncated, numeric strings parsed,
/// anything else (null, negative, objects…) as absent.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a token count")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // `as` saturates, and the guard excludes NaN and negatives.
            Ok((v >= 0.0).then_some(v as u64))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.trim().parse().ok())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn u(input: u64, output: u64, cached: u64, write: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_write_tokens: write,
        }
    }

    #[test]
    fn openai_chat_usage_subtracts_cached() {
        let v = json!({
            "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0}
        });
        assert_eq!(Usage::from_openai_usage(&v), u(86, 300, 1920, 0));
        assert_eq!(Usage::from_openai_usage(&v).total_input(), 2006);
    }

    #[test]
    fn openai_embeddings_and_legacy_usage() {
        let v = json!({"prompt_tokens": 8, "total_tokens": 8});
        assert_eq!(Usage::from_openai_usage(&v), u(8, 0, 0, 0));
        let resp = json!({"object": "list", "data": [], "usage": v});
        assert_eq!(Usage::from_openai_response(&resp), Some(u(8, 0, 0, 0)));
        assert_eq!(Usage::from_openai_response(&json!({"usage": null})), None);
    }

    #[test]
    fn openai_compatible_cache_fields() {
        let deepseek = json!({"prompt_tokens": 100, "completion_tokens": 5,
            "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36});
        assert_eq!(Usage::from_openai_usage(&deepseek), u(36, 5, 64, 0));
        let openrouter = json!({"prompt_tokens": 100, "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 80}});
        assert_eq!(Usage::from_openai_usage(&openrouter), u(10, 5, 10, 80));
    }

    #[test]
    fn malformed_counts_read_as_zero_not_error() {
        let v = json!({"prompt_tokens": "12", "completion_tokens": -3,
            "prompt_tokens_details": {"cached_tokens": 2.0}});
        assert_eq!(Usage::from_openai_usage(&v), u(10, 0, 2, 0));
        assert_eq!(Usage::from_openai_usage(&json!("nope")), Usage::default());
        let v = json!({"input_tokens": {"x": 1}, "output_tokens": [1], "cache_read_input_tokens": null});
        assert_eq!(Usage::from_anthropic_usage(&v), Usage::default());
    }

    #[test]
    fn anthropic_response_usage() {
        let v = json!({"input_tokens": 50, "output_tokens": 20,
            "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 300,
            "service_tier": "standard"});
        assert_eq!(Usage::from_anthropic_usage(&v), u(50, 20, 300, 1000));
        assert_eq!(Usage::from_anthropic_usage(&v).total_input(), 1350);
    }

    #[test]
    fn anthropic_stream_usage_later_values_override() {
        let mut usage = Usage::default();
        usage.apply_anthropic_event(&json!({"type": "message_start", "message": {
            "usage": {"input_tokens": 472, "output_tokens": 2,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}}}));
        assert_eq!(usage, u(472, 2, 100, 0));
        usage.apply_anthropic_event(&json!({"type": "ping"}));
        usage.apply_anthropic_event(&json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 89}}));
        assert_eq!(
            usage,
            u(472, 89, 100, 0),
            "output is cumulative, input kept"
        );
        usage.apply_anthropic_event(&json!({"type": "message_delta",
            "usage": {"output_tokens": 90, "input_tokens": 480}}));
        assert_eq!(usage, u(480, 90, 100, 0));
    }

    #[test]
    fn free_function_forms() {
        let resp = json!({"usage": {"prompt_tokens": 3, "completion_tokens": 1}});
        assert_eq!(usage_from_openai(&resp), Some(u(3, 1, 0, 0)));
        let resp = json!({"usage": {"input_tokens": 3, "output_tokens": 1}});
        assert_eq!(usage_from_anthropic(&resp), Some(u(3, 1, 0, 0)));
        let mut usage = u(3, 1, 0, 0);
        merge_anthropic_stream_usage(
            &mut usage,
            &json!({"type": "message_delta", "usage": {"output_tokens": 9}}),
        );
        assert_eq!(usage, u(3, 9, 0, 0));
    }

    #[test]
    fn stream_data_helpers() {
        let mut usage = Usage::default();
        assert!(usage.apply_anthropic_event_data(
            r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":9,"output_tokens":1}}}"#
        ));
        assert!(!usage.apply_anthropic_event_data(r#"{"type":"ping"}"#));
        assert!(usage.apply_anthropic_event_data(
            r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":7}}"#
        ));
        assert_eq!(usage, u(9, 7, 0, 0));

        let mut usage = Usage::default();
        assert!(!usage.apply_openai_chunk_data(r#"{"choices":[],"usage":null}"#));
        assert!(!usage.apply_openai_chunk_data("[DONE]"));
        assert!(usage.apply_openai_chunk_data(
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}"#
        ));
        assert_eq!(usage, u(6, 3, 4, 0));
    }

    #[test]
    fn conversions_back() {
        let usage = u(50, 20, 300, 1000);
        assert_eq!(
            usage.to_openai_json(),
            json!({"prompt_tokens": 1350, "completion_tokens": 20, "total_tokens": 1370,
                   "prompt_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 1000}})
        );
        assert_eq!(
            usage.to_anthropic_json(),
            json!({"input_tokens": 50, "output_tokens": 20,
                   "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 300})
        );
        assert_eq!(
            u(5, 1, 0, 0).to_openai_json(),
            json!({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6,
                   "prompt_tokens_details": {"cached_tokens": 0}})
        );
    }

    #[test]
    fn round_trips_are_lossless() {
        let usage = u(50, 20, 300, 1000);
        assert_eq!(Usage::from_openai_usage(&usage.to_openai_json()), usage);
        assert_eq!(
            Usage::from_anthropic_usage(&usage.to_anthropic_json()),
            usage
        );
    }
}
