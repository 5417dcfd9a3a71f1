//! The client speaks Anthropic Messages, the provider speaks OpenAI Chat
//! Completions (OpenAI or any OpenAI-compatible server): requests go
//! Anthropic → OpenAI, responses and streams come back OpenAI → Anthropic.

mod request;
mod response;
mod stream;

pub use request::messages_request_to_chat;
pub use response::chat_response_to_messages;
pub use stream::OpenAiToAnthropicStream;

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
///
/// `saw_tool_use`: the answer has tool calls. Some OpenAI-compatible servers
/// report `stop` even then, and Anthropic clients only run tools on
/// `tool_use`, so tool calls win over `stop`. `refusal`: the answer carried
/// OpenAI's `refusal` field. OpenAI does not say which stop sequence
/// matched, so `stop` is always `end_turn` (and `stop_sequence` null).
pub fn stop_reason(finish_reason: Option<&str>, saw_tool_use: bool, refusal: bool) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if refusal => "refusal",
        _ if saw_tool_use => "tool_use",
        _ => "end_turn",
    }
}

#[cfg(test)]
mod tests {
    use super::stop_reason;

    #[test]
    fn finish_reason_table() {
        let table = [
            (Some("stop"), false, false, "end_turn"),
            (Some("length"), false, false, "max_tokens"),
            (Some("tool_calls"), true, false, "tool_use"),
            (Some("function_call"), false, false, "tool_use"),
            (Some("content_filter"), false, false, "refusal"),
            (Some("stop"), true, false, "tool_use"),
            (Some("stop"), false, true, "refusal"),
            (Some("length"), true, false, "max_tokens"),
            (None, false, false, "end_turn"),
            (Some("eos"), false, false, "end_turn"),
        ];
        for (finish, tools, refusal, expected) in table {
            assert_eq!(
                stop_reason(finish, tools, refusal),
                expected,
                "{finish:?} {tools} {refusal}"
            );
        }
    }
}
