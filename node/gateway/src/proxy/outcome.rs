//! How things end: an upstream attempt (an answer to hand on, or a failure that may be
//! retried) and the whole request (what the trace and the request log record).

use std::time::Duration;

use starling_providers::{UpstreamFailure, UpstreamResponse};
use starling_wire::api::{ApiError, Endpoint, ErrorKind};
use starling_wire::translate::Usage;
use tokio::time::Instant;

use super::prepare::Prepared;
use crate::routing::{Deployment, ModelRoute};

/// Why an attempt failed.
pub(crate) enum AttemptFailure {
    /// Another attempt may succeed: 429, 5xx, connection errors, timeouts.
    Retryable {
        error: ApiError,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: the client's request is at fault.
    Fatal(ApiError),
}

impl AttemptFailure {
    /// The error the client would get.
    pub fn error(&self) -> &ApiError {
        match self {
            AttemptFailure::Retryable { error, .. } | AttemptFailure::Fatal(error) => error,
        }
    }

    pub fn from_upstream(failure: &UpstreamFailure) -> Self {
        let kind = match failure {
            UpstreamFailure::Timeout { .. } => ErrorKind::Timeout,
            _ => ErrorKind::Upstream,
        };
        AttemptFailure::Retryable {
            error: ApiError::new(kind, failure.to_string()),
            retry_after: None,
        }
    }
}

/// What the attempt loop hands the response builders once an upstream answered well.
pub(crate) struct AttemptSuccess<'a> {
    pub route: &'a ModelRoute,
    pub deployment: &'a Deployment,
    pub prepared: Prepared,
    pub response: UpstreamResponse,
    pub deadline: Instant,
}

/// How a request ended.
#[derive(Debug)]
pub(crate) struct Outcome<'a> {
    pub request_id: &'a str,
    pub endpoint: Endpoint,
    pub started: Instant,
    pub status: u16,
    /// The public model that answered, or the resolved one for a failure after resolution.
    pub model: Option<&'a str>,
    /// The configured provider that answered and its GenAI name.
    pub provider: Option<(&'a str, &'static str)>,
    /// The provider's model that answered.
    pub response_model: Option<&'a str>,
    pub usage: Option<&'a Usage>,
    pub cost_micros: u64,
    pub error: Option<RequestFailure<'a>>,
}

impl<'a> Outcome<'a> {
    /// The outcome of a request that ended without settling: no provider, no usage.
    pub fn unsettled(
        request_id: &'a str,
        endpoint: Endpoint,
        started: Instant,
        status: u16,
        error: Option<RequestFailure<'a>>,
    ) -> Self {
        Self {
            request_id,
            endpoint,
            started,
            status,
            model: None,
            provider: None,
            response_model: None,
            usage: None,
            cost_micros: 0,
            error,
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RequestFailure<'a> {
    /// An error answered to the client.
    Api(&'a ApiError),
    /// A stream that failed or was cut short after it started: `error.type` and message.
    Stream(&'static str, &'a str),
}

impl RequestFailure<'_> {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RequestFailure::Api(e) => e.error_type(),
            RequestFailure::Stream(kind, _) => kind,
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            RequestFailure::Api(e) => e.message(),
            RequestFailure::Stream(_, message) => message,
        }
    }
}
