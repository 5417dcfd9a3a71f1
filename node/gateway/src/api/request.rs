//! Reading a request body: bounded in size and JSON nesting depth before it is parsed.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use starling_wire::api::{ApiError, ErrorKind};

use crate::listener::BodyDeadlineElapsed;

/// Reads the whole body, refusing more than `limit` bytes with a 413, and one that did not
/// arrive within the listener's body deadline with a 408 that closes the connection.
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::RequestTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        )
        .with_code("request_too_large")
    };
    // An honest client declares its size: refuse before reading a byte of it.
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) if BodyDeadlineElapsed::caused(e.as_ref()) => Err(body_timed_out()),
        Err(e) => Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!("could not read the request body: {e}"),
        )),
    }
}

/// The answer to a body that did not arrive in time. The rest of the body may still be on
/// its way, so the connection cannot carry another request: `connection: close` ends it.
fn body_timed_out() -> ApiError {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    ApiError::new(
        ErrorKind::RequestTimeout,
        "the request body did not arrive within the server's body read timeout",
    )
    .with_code("request_timeout")
    .with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn body_over_limit_is_413_even_without_content_length() {
        let e = read_body(Body::from(vec![b'x'; 100]), &HeaderMap::new(), 10)
            .await
            .expect_err("too large");
        assert_eq!(e.kind(), ErrorKind::RequestTooLarge);
        let ok = read_body(Body::from(vec![b'x'; 10]), &HeaderMap::new(), 10)
            .await
            .expect("fits");
        assert_eq!(ok.len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn body_past_its_deadline_is_408_closing_the_connection() {
        let (_tx, rx) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
        let stalled = http_body_util::StreamBody::new(Box::pin(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        )));
        let body = Body::new(crate::listener::DeadlineBody::new(
            stalled,
            std::time::Duration::from_secs(1),
        ));
        let e = read_body(body, &HeaderMap::new(), 10)
            .await
            .expect_err("deadline");
        assert_eq!(e.kind(), ErrorKind::RequestTimeout);
        let response = e.into_http_response(starling_wire::api::ApiFormat::Anthropic);
        assert_eq!(response.status(), http::StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            response
                .headers()
                .get(header::CONNECTION)
                .map(|v| v.as_bytes()),
            Some(&b"close"[..])
        );
    }
}
