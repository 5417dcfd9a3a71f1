//! Errors returned to clients, written in the dialect of the API they called.
//!
//! OpenAI clients get `{"error":{"message","type","param","code"}}`, Anthropic clients get
//! `{"type":"error","error":{"type","message"}}`; the official SDKs map these to their
//! exception classes by status code, so the status matters as much as the body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use super::ApiFormat;
use crate::translate;

/// The class of an error, which fixes its status and its type string in each dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: malformed JSON, wrong field types, unsupported parameters.
    InvalidRequest,
    /// 401: missing or unknown key.
    Authentication,
    /// 403: the key may not do this.
    Permission,
    /// 404: unknown model or route.
    NotFound,
    /// 408: the request body did not arrive in time.
    RequestTimeout,
    /// 413: body over the configured limit.
    RequestTooLarge,
    /// 429: a limit was hit.
    RateLimit,
    /// 502: the upstream failed or could not be reached.
    Upstream,
    /// 504: the upstream did not answer in time.
    Timeout,
    /// 500: a bug in the gateway.
    Internal,
    /// 503: the gateway is shutting down or has no usable provider.
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::Permission => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::NotFound
            | ErrorKind::RequestTooLarge
            | ErrorKind::RequestTimeout => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Internal => "server_error",
            ErrorKind::Unavailable => "service_unavailable",
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Upstream | ErrorKind::Internal => "api_error",
            ErrorKind::Timeout | ErrorKind::RequestTimeout => "timeout_error",
            ErrorKind::Unavailable => "overloaded_error",
        }
    }
}

/// An error on its way to a client. Boxed: errors are rare, and a small `Result` keeps the
/// happy path's moves cheap.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Inner>);

/// Response header carrying the error's code (e.g. `budget_exceeded`), in every dialect.
pub const ERROR_CODE_HEADER: &str = "x-starling-error-code";

#[derive(Debug, Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    /// OpenAI's `code`, e.g. `invalid_api_key` or `model_not_found`.
    code: Option<&'static str>,
    /// OpenAI's `param`: the offending field.
    param: Option<String>,
    retry_after_secs: Option<u64>,
    /// Extra response headers (e.g. `x-ratelimit-*` on a 429).
    headers: Option<http::HeaderMap>,
    /// An upstream error body, passed through with its status (translated if dialects differ).
    upstream: Option<UpstreamErrorBody>,
}

#[derive(Debug, Clone)]
struct UpstreamErrorBody {
    status: StatusCode,
    format: ApiFormat,
    body: Bytes,
}

impl ApiError {
    /// An error of `kind` with a message for the client.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            message: message.into(),
            code: None,
            param: None,
            retry_after_secs: None,
            headers: None,
            upstream: None,
        }))
    }

    /// Adds response headers.
    pub fn with_headers(mut self, headers: http::HeaderMap) -> Self {
        match &mut self.0.headers {
            Some(existing) => existing.extend(headers),
            None => self.0.headers = Some(headers),
        }
        self
    }

    /// A 400 naming the offending field.
    pub fn invalid_field(param: impl Into<String>, message: impl Into<String>) -> Self {
        let param = param.into();
        let message = format!("{param}: {}", message.into());
        Self::new(ErrorKind::InvalidRequest, message).with_param(param)
    }

    /// Sets OpenAI's `code`.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.0.code = Some(code);
        self
    }

    /// Sets OpenAI's `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.0.param = Some(param.into());
        self
    }

    /// Adds a `retry-after` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.0.retry_after_secs = Some(secs);
        self
    }

    /// An upstream error response to pass through with its own status and message.
    pub fn from_upstream(
        status: StatusCode,
        format: ApiFormat,
        body: Bytes,
        retry_after_secs: Option<u64>,
    ) -> Self {
        let kind = match status.as_u16() {
            400 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            408 => ErrorKind::RequestTimeout,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            504 => ErrorKind::Timeout,
            _ => ErrorKind::Upstream,
        };
        Self(Box::new(Inner {
            kind,
            message: format!("upstream returned HTTP {}", status.as_u16()),
            code: None,
            param: None,
            retry_after_secs,
            headers: None,
            upstream: Some(UpstreamErrorBody {
                status,
                format,
                body,
            }),
        }))
    }

    /// OpenAI's `code`, when set.
    pub fn code(&self) -> Option<&'static str> {
        self.0.code
    }

    /// A short, bounded name for the error (its code, else its class), for traces and logs.
    pub fn error_type(&self) -> &'static str {
        self.0.code.unwrap_or_else(|| self.0.kind.openai_type())
    }

    /// The error class.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The status the client will see.
    pub fn status(&self) -> StatusCode {
        self.0
            .upstream
            .as_ref()
            .map_or(self.0.kind.status(), |u| u.status)
    }

    /// The message for the client.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The body in `format`, and its status.
    pub fn body(&self, format: ApiFormat) -> (StatusCode, Bytes) {
        if let Some(upstream) = &self.0.upstream {
            let body = match (upstream.format, format) {
                (from, to) if from == to => upstream.body.clone(),
                (ApiFormat::OpenAi, ApiFormat::Anthropic) => Bytes::from(
                    translate::errors::openai_error_to_anthropic(
                        upstream.status.as_u16(),
                        &upstream.body,
                    )
                    .to_string(),
                ),
                (ApiFormat::Anthropic, ApiFormat::OpenAi) => Bytes::from(
                    translate::errors::anthropic_error_to_openai(
                        upstream.status.as_u16(),
                        &upstream.body,
                    )
                    .to_string(),
                ),
                _ => upstream.body.clone(),
            };
            return (upstream.status, body);
        }
        (
            self.0.kind.status(),
            Bytes::from(self.json(format).to_string()),
        )
    }

    /// The error as a JSON value in `format` (also used for errors inside streams).
    pub fn json(&self, format: ApiFormat) -> serde_json::Value {
        match format {
            ApiFormat::OpenAi => json!({
                "error": {
                    "message": self.0.message,
                    "type": self.0.kind.openai_type(),
                    "param": self.0.param,
                    "code": self.0.code,
                }
            }),
            ApiFormat::Anthropic => json!({
                "type": "error",
                "error": {
                    "type": self.0.kind.anthropic_type(),
                    "message": self.0.message,
                }
            }),
        }
    }

    /// The full HTTP response in `format`.
    pub fn into_http_response(self, format: ApiFormat) -> Response<Bytes> {
        let (status, body) = self.body(format);
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.0.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(code) = self.0.code {
            // Anthropic's error body has no `code`; the header carries it in both dialects.
            headers.insert(ERROR_CODE_HEADER, HeaderValue::from_static(code));
        }
        if let Some(extra) = self.0.headers {
            headers.extend(extra);
        }
        if format == ApiFormat::Anthropic && status == StatusCode::UNAUTHORIZED {
            // Anthropic answers 401 with this header too; SDKs ignore it, curl users read it.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("x-api-key"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shape_names_param_and_code() {
        let e = ApiError::invalid_field("messages[0].role", "expected a string");
        let v = e.json(ApiFormat::OpenAi);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "messages[0].role");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("messages[0].role"))
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn anthropic_shape() {
        let e = ApiError::new(ErrorKind::NotFound, "model x not found");
        let v = e.json(ApiFormat::Anthropic);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "not_found_error");
        assert_eq!(v["error"]["message"], "model x not found");
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let r = ApiError::new(ErrorKind::RateLimit, "slow down")
            .with_retry_after(3)
            .into_http_response(ApiFormat::OpenAi);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            r.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("3")
        );
    }

    #[test]
    fn upstream_error_passes_through_in_same_dialect() {
        let body = Bytes::from_static(br#"{"error":{"message":"bad thing","type":"x"}}"#);
        let e = ApiError::from_upstream(
            StatusCode::UNPROCESSABLE_ENTITY,
            ApiFormat::OpenAi,
            body.clone(),
            None,
        );
        let (status, out) = e.body(ApiFormat::OpenAi);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(out, body);
    }
}
