//! HTTP plumbing: the response body type, request helpers and the "drop the connection" signal.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;

/// Returned by a handler to make the server close the connection without any response, the way
/// a provider's load balancer sometimes does. hyper closes the connection when the service
/// future fails, which is exactly that.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose by the mock")]
pub(crate) struct DropConnection;

/// Sent as the last item of a stream to abort it mid-way: hyper then closes the connection
/// without the terminating chunk, so the client sees a truncated body.
#[derive(Debug, thiserror::Error)]
#[error("stream aborted on purpose by the mock")]
pub(crate) struct StreamAborted;

/// One item of a streamed body.
pub(crate) type Chunk = Result<Bytes, StreamAborted>;

/// Polls a cut stream survives before failing, giving hyper that many chances to flush.
const FLUSH_ROUNDS: u8 = 3;

/// Response body: either a complete buffer or a channel fed by a stream producer task.
pub(crate) enum MockBody {
    Full(Option<Bytes>),
    Channel {
        rx: mpsc::Receiver<Chunk>,
        /// Non-zero once the producer asked for a cut: polls left before failing.
        aborting: u8,
    },
}

impl MockBody {
    pub(crate) fn channel(rx: mpsc::Receiver<Chunk>) -> Self {
        MockBody::Channel { rx, aborting: 0 }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = StreamAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamAborted>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Channel { rx, aborting } => {
                if *aborting == 0 {
                    match rx.poll_recv(cx) {
                        Poll::Ready(Some(Err(StreamAborted))) => *aborting = FLUSH_ROUNDS,
                        other => return other.map(|o| o.map(|r| r.map(Frame::data))),
                    }
                }
                // hyper drops its unflushed write buffer when a body fails, but flushes
                // whenever the body is pending: so stay pending (waking ourselves) for a few
                // polls before failing, or the chunks sent before the cut would be lost.
                *aborting -= 1;
                if *aborting == 0 {
                    return Poll::Ready(Some(Err(StreamAborted)));
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MockBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Channel { .. } => SizeHint::default(),
        }
    }
}

pub(crate) type Resp = Response<MockBody>;

/// Builds a response with the given status, headers and content type.
pub(crate) fn build(
    status: StatusCode,
    headers: HeaderMap,
    content_type: &'static str,
    body: MockBody,
) -> Resp {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, headers: HeaderMap, body: Vec<u8>) -> Resp {
    build(
        status,
        headers,
        "application/json",
        MockBody::Full(Some(Bytes::from(body))),
    )
}

/// Serializes a value to JSON bytes; serde_json cannot fail on `Value` or our plain structs.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

/// Inserts a header whose value comes from the mock itself (ids, numbers).
pub(crate) fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// The value of a header as text, if present and valid UTF-8.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of a query parameter (percent-decoded), if present.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a request body could not be read.
#[derive(Debug)]
pub(crate) enum BodyReadError {
    /// Larger than the configured limit.
    TooLarge,
    /// The client went away or sent a broken body.
    Io,
}

/// Reads the whole request body, bounded by `limit` bytes.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyReadError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyReadError::TooLarge),
        Err(_) => Err(BodyReadError::Io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        let q = Some("api-version=2024-10-21&x=a%20b+c&flag");
        assert_eq!(query_param(q, "api-version").as_deref(), Some("2024-10-21"));
        assert_eq!(query_param(q, "x").as_deref(), Some("a b c"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(None, "x"), None);
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41"), "A");
    }
}
