//! Error bodies: converting a provider's error into the client's format,
//! and building the gateway's own errors in either format.
//!
//! OpenAI: `{"error":{"message","type","param","code"}}`.
//! Anthropic: `{"type":"error","error":{"type","message"}}`.
//! Both SDKs pick the exception class from the HTTP status, so the status
//! is what must be right; the `type` follows it through one table.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::TranslateError;

/// Longest upstream text kept as an error message when the body is not JSON
/// (an HTML page from a proxy, say).
const MAX_RAW_MESSAGE: usize = 1024;

/// The error `type` for an HTTP status, shared by both APIs (Anthropic's
/// names, which OpenAI also uses for the common cases).
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        405..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// An Anthropic error body.
pub fn anthropic_error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type_for_status(status), "message": message}})
}

/// An OpenAI error body; `param` names the offending request field.
pub fn openai_error_body(
    status: u16,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    json!({"error": {
        "message": message,
        "type": error_type_for_status(status),
        "param": param,
        "code": code,
    }})
}

/// Converts an OpenAI-compatible provider's error response for an Anthropic
/// client, keeping the provider's message.
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> Value {
    let parsed = UpstreamError::parse(status, body);
    anthropic_error_body(status, &parsed.message)
}

/// Converts an Anthropic error response for an OpenAI client, keeping the
/// provider's message; Anthropic's own error type becomes the `code`.
pub fn anthropic_error_to_openai(status: u16, body: &[u8]) -> Value {
    let parsed = UpstreamError::parse(status, body);
    openai_error_body(status, &parsed.message, None, parsed.kind.as_deref())
}

/// The Anthropic error type for an OpenAI stream error object
/// (`{"error":{...}}` mid-stream, where there is no HTTP status).
pub(crate) fn anthropic_type_for_openai_error(error: &Value) -> &'static str {
    let field = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default();
    if let Some(status) = error.get("code").and_then(Value::as_u64) {
        return error_type_for_status(u16::try_from(status).unwrap_or(500));
    }
    match (field("type"), field("code")) {
        (_, "rate_limit_exceeded") | ("requests" | "tokens" | "rate_limit_error", _) => {
            "rate_limit_error"
        }
        ("insufficient_quota", _) | (_, "insufficient_quota") => "billing_error",
        (t, _) => known_type(t).unwrap_or("api_error"),
    }
}

/// The OpenAI error type for an Anthropic stream `error` event's type.
pub(crate) fn openai_type_for_anthropic_error(kind: &str) -> &'static str {
    known_type(kind).unwrap_or("api_error")
}

fn known_type(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "invalid_request_error" => "invalid_request_error",
        "authentication_error" => "authentication_error",
        "billing_error" => "billing_error",
        "permission_error" => "permission_error",
        "not_found_error" => "not_found_error",
        "request_too_large" => "request_too_large",
        "rate_limit_error" => "rate_limit_error",
        "timeout_error" => "timeout_error",
        "overloaded_error" => "overloaded_error",
        "api_error" | "server_error" => "api_error",
        _ => return None,
    })
}

/// What can be read from an upstream error body of any shape.
struct UpstreamError {
    message: String,
    /// The provider's own error type, if it sent one.
    kind: Option<String>,
}

impl UpstreamError {
    fn parse(status: u16, body: &[u8]) -> Self {
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            // Gemini's OpenAI endpoint wraps the error in a one-element array.
            let v = v.as_array().and_then(|a| a.first()).unwrap_or(&v);
            let err = v.get("error").unwrap_or(v);
            let message = err
                .get("message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("detail"))
                .or(Some(err))
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty());
            if let Some(message) = message {
                let kind = err.get("type").and_then(Value::as_str).map(str::to_owned);
                return Self {
                    message: message.to_owned(),
                    kind,
                };
            }
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            Cow::Owned(format!("upstream provider returned HTTP {status}"))
        } else {
            Cow::Borrowed(truncate(text, MAX_RAW_MESSAGE))
        };
        Self {
            message: message.into_owned(),
            kind: None,
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

impl TranslateError {
    /// This error as an OpenAI error body (`param` is the field's path).
    pub fn to_openai_body(&self) -> Value {
        openai_error_body(self.status(), &self.to_string(), Some(self.path()), None)
    }

    /// This error as an Anthropic error body.
    pub fn to_anthropic_body(&self) -> Value {
        anthropic_error_body(self.status(), &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let table = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ];
        for (status, kind) in table {
            assert_eq!(error_type_for_status(status), kind, "{status}");
        }
    }

    #[test]
    fn openai_error_for_anthropic_client() {
        let body = br#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            openai_error_to_anthropic(429, body),
            json!({"type": "error", "error": {"type": "rate_limit_error",
                   "message": "Rate limit reached for gpt-4o"}})
        );
    }

    #[test]
    fn anthropic_error_for_openai_client() {
        let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        assert_eq!(
            anthropic_error_to_openai(529, body),
            json!({"error": {"message": "Overloaded", "type": "overloaded_error",
                   "param": null, "code": "overloaded_error"}})
        );
    }

    #[test]
    fn other_body_shapes() {
        let cases: [(&[u8], &str); 6] = [
            (br#"{"error":"model not found"}"#, "model not found"),
            (br#"{"detail":"Not Found"}"#, "Not Found"),
            (br#"{"message":"bad thing","code":400}"#, "bad thing"),
            (br#"[{"error":{"code":400,"message":"gemini says no","status":"INVALID_ARGUMENT"}}]"#, "gemini says no"),
            (b"<html><body>502 Bad Gateway</body></html>", "<html><body>502 Bad Gateway</body></html>"),
            (b"", "upstream provider returned HTTP 400"),
        ];
        for (body, message) in cases {
            let v = openai_error_to_anthropic(400, body);
            assert_eq!(v["error"]["message"], message);
            let v = anthropic_error_to_openai(400, body);
            assert_eq!(v["error"]["message"], message);
            assert_eq!(v["error"]["type"], "invalid_request_error");
        }
    }

    #[test]
    fn long_and_invalid_utf8_bodies_are_bounded() {
        let body = "é".repeat(2000);
        let v = anthropic_error_to_openai(500, body.as_bytes());
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.len() <= MAX_RAW_MESSAGE && msg.starts_with('é'));
        let v = openai_error_to_anthropic(500, b"\xff\xfe oops");
        assert_eq!(v["error"]["message"], "\u{FFFD}\u{FFFD} oops");
    }

    #[test]
    fn stream_error_type_mapping() {
        let cases = [
            (json!({"message": "x", "type": "server_error"}), "api_error"),
            (
                json!({"message": "x", "type": "tokens", "code": "rate_limit_exceeded"}),
                "rate_limit_error",
            ),
            (
                json!({"message": "x", "type": "invalid_request_error"}),
                "invalid_request_error",
            ),
            (json!({"message": "x", "code": 429}), "rate_limit_error"),
            (
                json!({"message": "x", "type": "insufficient_quota"}),
                "billing_error",
            ),
            (json!({"message": "x"}), "api_error"),
        ];
        for (err, kind) in cases {
            assert_eq!(anthropic_type_for_openai_error(&err), kind, "{err}");
        }
        assert_eq!(
            openai_type_for_anthropic_error("overloaded_error"),
            "overloaded_error"
        );
        assert_eq!(openai_type_for_anthropic_error("weird"), "api_error");
    }

    #[test]
    fn translate_error_bodies_name_the_field() {
        let err =
            TranslateError::invalid("messages[2].content[0].type", "unknown content part type");
        let v = err.to_openai_body();
        assert_eq!(v["error"]["param"], "messages[2].content[0].type");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let v = err.to_anthropic_body();
        assert_eq!(v["type"], "error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("messages[2].content[0].type")
        );
    }
}
