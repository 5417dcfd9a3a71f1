//! Placeholder until the translation module lands: signatures only.
#![allow(missing_docs, dead_code, unused_variables)]
pub mod errors;
pub mod usage;
use bytes::Bytes;
use serde_json::Value;
pub use usage::Usage;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TranslateError {
    pub path: String,
    pub message: String,
}

pub mod sse {
    use bytes::Bytes;
    #[derive(Debug, Clone)]
    pub struct SseEvent {
        pub event: Option<String>,
        pub data: String,
        pub raw: Bytes,
    }
    #[derive(Debug, thiserror::Error)]
    #[error("sse")]
    pub struct SseError;
    pub struct SseParser;
    impl SseParser {
        pub fn new(max: usize) -> Self {
            SseParser
        }
        pub fn push(&mut self, chunk: &[u8]) {}
        pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
            Ok(None)
        }
        pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
            Ok(None)
        }
    }
    pub fn openai_data_frame(v: &serde_json::Value) -> Bytes {
        Bytes::new()
    }
    pub fn openai_done_frame() -> Bytes {
        Bytes::new()
    }
    pub fn anthropic_event_frame(t: &str, v: &serde_json::Value) -> Bytes {
        Bytes::new()
    }
}
pub use sse::{SseEvent, SseParser};

pub fn chat_request_to_messages(req: &Value, m: &str, d: u32) -> Result<Value, TranslateError> {
    Ok(req.clone())
}
pub fn messages_response_to_chat(resp: &Value, m: &str) -> Result<Value, TranslateError> {
    Ok(resp.clone())
}
pub fn messages_request_to_chat(req: &Value, m: &str) -> Result<Value, TranslateError> {
    Ok(req.clone())
}
pub fn chat_response_to_messages(resp: &Value, m: &str) -> Result<Value, TranslateError> {
    Ok(resp.clone())
}
pub struct AnthropicToOpenAiStream;
impl AnthropicToOpenAiStream {
    pub fn new(m: &str, include_usage: bool) -> Self {
        Self
    }
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<Bytes>, TranslateError> {
        Ok(vec![])
    }
    pub fn usage(&self) -> Usage {
        Usage::default()
    }
    pub fn finished(&self) -> bool {
        false
    }
}
pub struct OpenAiToAnthropicStream;
impl OpenAiToAnthropicStream {
    pub fn new(m: &str) -> Self {
        Self
    }
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<Bytes>, TranslateError> {
        Ok(vec![])
    }
    pub fn usage(&self) -> Usage {
        Usage::default()
    }
    pub fn finished(&self) -> bool {
        false
    }
    pub fn finish(&mut self) -> Vec<Bytes> {
        vec![]
    }
}
pub fn usage_from_openai(v: &Value) -> Option<Usage> {
    None
}
pub fn usage_from_anthropic(v: &Value) -> Option<Usage> {
    None
}
pub fn merge_anthropic_stream_usage(u: &mut Usage, v: &Value) {}
