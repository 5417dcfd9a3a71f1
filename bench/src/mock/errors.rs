//! Provider-specific error bodies and response headers.

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::fields::FieldError;
use super::http::{Resp, json as json_resp, put, to_json};

/// Which provider's conventions a response follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    OpenAi,
    Azure,
    Anthropic,
}

impl Flavor {
    /// Headers every response of this provider carries: request id and rate-limit info.
    pub(crate) fn headers(self, request_id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        match self {
            Flavor::OpenAi => {
                put(&mut h, "x-request-id", request_id);
                put(&mut h, "openai-version", "2020-10-01");
                put(&mut h, "openai-organization", "mock-org");
                put(&mut h, "openai-processing-ms", "1");
                put(&mut h, "x-ratelimit-limit-requests", "10000");
                put(&mut h, "x-ratelimit-remaining-requests", "9999");
                put(&mut h, "x-ratelimit-reset-requests", "6ms");
                put(&mut h, "x-ratelimit-limit-tokens", "30000000");
                put(&mut h, "x-ratelimit-remaining-tokens", "29999000");
                put(&mut h, "x-ratelimit-reset-tokens", "0s");
            }
            Flavor::Azure => {
                put(&mut h, "x-request-id", request_id);
                put(&mut h, "apim-request-id", request_id);
                put(&mut h, "x-ms-region", "Mock Region");
                put(&mut h, "x-ratelimit-remaining-requests", "9999");
                put(&mut h, "x-ratelimit-remaining-tokens", "29999000");
            }
            Flavor::Anthropic => {
                put(&mut h, "request-id", request_id);
                put(&mut h, "anthropic-organization-id", "mock-org");
                put(&mut h, "anthropic-ratelimit-requests-limit", "4000");
                put(&mut h, "anthropic-ratelimit-requests-remaining", "3999");
                put(&mut h, "anthropic-ratelimit-input-tokens-limit", "2000000");
                put(
                    &mut h,
                    "anthropic-ratelimit-input-tokens-remaining",
                    "1999000",
                );
                put(&mut h, "anthropic-ratelimit-output-tokens-limit", "400000");
                put(
                    &mut h,
                    "anthropic-ratelimit-output-tokens-remaining",
                    "399000",
                );
            }
        }
        h
    }
}

/// An error to send in the caller's provider format.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code: None,
            retry_after_s: None,
        }
    }

    pub(crate) fn code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    pub(crate) fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    pub(crate) fn retry_after(mut self, s: Option<u64>) -> Self {
        self.retry_after_s = s;
        self
    }

    /// A 400 for a bad field, worded like the provider words it.
    pub(crate) fn field(flavor: Flavor, e: &FieldError) -> Self {
        match flavor {
            Flavor::Anthropic => Self::new(400, e.anthropic_message()),
            Flavor::OpenAi | Flavor::Azure => {
                let (msg, code) = e.openai_message();
                Self::new(400, msg).param(e.field()).code(code)
            }
        }
    }

    /// A 400 for a body that is not JSON (or not a JSON object).
    pub(crate) fn malformed(flavor: Flavor, detail: &str) -> Self {
        match flavor {
            Flavor::Anthropic => Self::new(
                400,
                format!("There was an issue with your request body: invalid JSON: {detail}"),
            ),
            Flavor::OpenAi | Flavor::Azure => Self::new(
                400,
                format!(
                    "We could not parse the JSON body of your request. (HINT: This likely means \
                     you aren't using your HTTP library correctly. The OpenAI API expects a JSON \
                     payload, but what was sent was not valid JSON: {detail})"
                ),
            ),
        }
    }

    /// An error requested by a fault or directive, with the provider's usual message.
    pub(crate) fn injected(flavor: Flavor, status: u16, retry_after_s: Option<u64>) -> Self {
        let e = match (flavor, status) {
            (Flavor::Anthropic, 429) => Self::new(
                429,
                "Number of request tokens has exceeded your per-minute rate limit (mock)",
            ),
            (Flavor::Anthropic, 529) => Self::new(529, "Overloaded"),
            (Flavor::Anthropic, s) if s >= 500 => Self::new(s, "Internal server error"),
            (Flavor::Azure, 429) => Self::new(
                429,
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API have \
                 exceeded token rate limit of your current pricing tier (mock). Please retry \
                 after the time in the retry-after header.",
            ),
            (_, 429) => Self::new(
                429,
                "Rate limit reached for requests (mock). Please try again later.",
            )
            .code("rate_limit_exceeded"),
            (_, 401) => {
                Self::new(401, "Incorrect API key provided (mock).").code("invalid_api_key")
            }
            (_, 503) => Self::new(503, "The server is overloaded or not ready yet (mock)."),
            (_, s) if s >= 500 => Self::new(
                s,
                "The server had an error while processing your request. Sorry about that! (mock)",
            ),
            (_, s) => Self::new(s, format!("Injected error {s} (mock)")),
        };
        e.retry_after(retry_after_s)
    }

    fn openai_type(&self) -> &'static str {
        match self.status {
            429 => "requests",
            s if s >= 500 => "server_error",
            _ => "invalid_request_error",
        }
    }

    fn anthropic_type(&self) -> &'static str {
        match self.status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            s if s >= 500 => "api_error",
            _ => "invalid_request_error",
        }
    }

    fn body(&self, flavor: Flavor, request_id: &str) -> Value {
        match flavor {
            Flavor::OpenAi => json!({"error": {
                "message": self.message,
                "type": self.openai_type(),
                "param": self.param,
                "code": self.code,
            }}),
            // Azure's own errors (auth, throttling, routing) carry a string code and message;
            // validation errors are passed through from the model service in OpenAI's shape.
            Flavor::Azure
                if self.status == 400
                    && self.code.as_deref() != Some("MissingApiVersionParameter") =>
            {
                json!({"error": {
                    "message": self.message,
                    "type": self.openai_type(),
                    "param": self.param,
                    "code": self.code,
                }})
            }
            Flavor::Azure => json!({"error": {
                "code": self.code.clone().unwrap_or_else(|| self.status.to_string()),
                "message": self.message,
            }}),
            Flavor::Anthropic => json!({
                "type": "error",
                "error": {"type": self.anthropic_type(), "message": self.message},
                "request_id": request_id,
            }),
        }
    }

    /// Renders the error response with the provider's headers.
    pub(crate) fn render(&self, flavor: Flavor, request_id: &str) -> Resp {
        let mut headers = flavor.headers(request_id);
        if let Some(s) = self.retry_after_s {
            put(&mut headers, "retry-after", &s.to_string());
        }
        if self.status == 429 {
            match flavor {
                Flavor::Anthropic => {
                    put(&mut headers, "anthropic-ratelimit-requests-remaining", "0")
                }
                Flavor::OpenAi | Flavor::Azure => {
                    put(&mut headers, "x-ratelimit-remaining-requests", "0");
                }
            }
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_resp(status, headers, to_json(&self.body(flavor, request_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let e = ApiError::injected(Flavor::OpenAi, 429, Some(1));
        let b = e.body(Flavor::OpenAi, "req");
        assert_eq!(b["error"]["type"], "requests");
        assert_eq!(b["error"]["code"], "rate_limit_exceeded");
        let a = ApiError::injected(Flavor::Anthropic, 529, None).body(Flavor::Anthropic, "req_x");
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "overloaded_error");
        assert_eq!(a["request_id"], "req_x");
        let z = ApiError::injected(Flavor::Azure, 429, None).body(Flavor::Azure, "r");
        assert_eq!(z["error"]["code"], "429");
        let r = e.render(Flavor::OpenAi, "req_1");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(r.headers()["x-request-id"], "req_1");
    }
}
