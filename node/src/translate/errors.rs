//! Placeholder until the translation module lands.
use serde_json::{Value, json};
/// Placeholder.
pub fn openai_error_to_anthropic(_status: u16, body: &[u8]) -> Value {
    json!({"type":"error","error":{"type":"api_error","message":String::from_utf8_lossy(body)}})
}
/// Placeholder.
pub fn anthropic_error_to_openai(_status: u16, body: &[u8]) -> Value {
    json!({"error":{"type":"api_error","message":String::from_utf8_lossy(body)}})
}
