//! The client-facing edge of the request path: reading a request's body, and writing an
//! error back as an HTTP response in the dialect of the API the client called. The
//! dialects themselves (endpoints, error shapes, validation) are `starling_wire::api`'s.

pub mod request;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use starling_wire::api::{ApiError, ApiFormat};

/// An error on its way to a client, in the dialect of the API it called.
#[derive(Debug)]
pub struct ClientError {
    /// What went wrong.
    pub error: ApiError,
    /// The dialect to write it in.
    pub format: ApiFormat,
}

impl ClientError {
    /// `error` for a client of `format`.
    pub fn new(error: ApiError, format: ApiFormat) -> Self {
        Self { error, format }
    }
}

impl IntoResponse for ClientError {
    fn into_response(self) -> Response {
        self.error.into_http_response(self.format).map(Body::from)
    }
}
