//! The client speaks OpenAI Chat Completions, the provider speaks Anthropic
//! Messages: requests go OpenAI → Anthropic, responses and streams come back
//! Anthropic → OpenAI.

mod request;
mod response;
mod stream;

pub use request::chat_request_to_messages;
pub use response::messages_response_to_chat;
pub use stream::AnthropicToOpenAiStream;

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
///
/// `pause_turn` (a server tool paused a long turn) has no OpenAI
/// counterpart; `stop` is the closest, as the answer so far is complete.
/// `model_context_window_exceeded` is a length limit. Unknown or missing
/// reasons read as `stop`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn, unknown
    }
}
