//! The admin API's error shape, `{"error":{"type","message"}}`, and its common cases.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

/// An admin API error with its status.
#[derive(Debug)]
pub(crate) struct AdminError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"type": self.kind, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// An error of any status and type.
pub(crate) fn error(
    status: StatusCode,
    kind: &'static str,
    message: impl Into<String>,
) -> AdminError {
    AdminError {
        status,
        kind,
        message: message.into(),
    }
}

impl AdminError {
    /// 400: the request is wrong; the message names the field.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 about one field: `field: message`.
    pub(crate) fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::invalid(format!("{field}: {message}"))
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        error(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the entity's state.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        error(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503: the replica could not persist the change.
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_error",
            e.to_string(),
        )
    }

    /// 413.
    pub(crate) fn too_large(limit: usize) -> Self {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("bodies are limited to {limit} bytes"),
        )
    }
}

/// The result of a handler.
pub(crate) type AdminResult = Result<Response, AdminError>;
