//! Accepting and serving connections with bounds on what a client can hold: a cap on open
//! connections, a deadline on request headers, and a deadline on request bodies.
//!
//! `axum::serve` sets no timer, so hyper's header-read timeout never fires under it and a
//! client sending a byte a second holds its connection (and its buffers) for ever. This loop
//! serves each connection with hyper-util's builder and a Tokio timer instead.

use std::error::Error as StdError;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use metrics::{Counter, Gauge, counter, gauge};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::capacity::{Capacity, Place};
use crate::config::ServerConfig;
use crate::metrics as m;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The bounds every connection on a listener is served with.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request's head must arrive within this; also how long an idle connection is kept.
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this of its head.
    pub body_read_timeout: Duration,
    /// Most connections open at once on the listener.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits `[server]` configures.
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(server.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(server.body_read_timeout_ms),
            max_connections: server.max_connections,
        }
    }
}

/// A listener's metric handles, registered once so that a connection costs no lookups.
#[derive(Clone)]
struct ListenerMetrics {
    open: Gauge,
    refused: Counter,
    header_timeouts: Counter,
}

impl ListenerMetrics {
    fn new(listener: &'static str) -> Self {
        Self {
            open: gauge!(m::CONNECTIONS_OPEN, "listener" => listener),
            refused: counter!(m::CONNECTIONS_REFUSED, "listener" => listener),
            header_timeouts: counter!(m::HEADER_READ_TIMEOUTS, "listener" => listener),
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets open connections finish their
/// requests and returns once all are closed. `name` labels the listener's metrics.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    name: &'static str,
    stop: watch::Receiver<bool>,
) {
    let metrics = ListenerMetrics::new(name);
    let open = Capacity::new(limits.max_connections);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    // Every connection task holds a receiver; all are gone when the last connection closes.
    let (all_closed_tx, all_closed_rx) = watch::channel(());
    let mut stop_accepting = stop.clone();
    let mut stopping = pin!(async move {
        let _ = stop_accepting.wait_for(|stop| *stop).await;
    });
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        let Some(slot) = ConnectionSlot::acquire(&open, &metrics.open) else {
            // Closed before reading a byte: the client sees the connection end at once.
            metrics.refused.increment(1);
            drop(stream);
            continue;
        };
        // Small responses must not wait out Nagle's algorithm against delayed ACKs.
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(Connection {
            stream,
            app: app.clone(),
            builder: builder.clone(),
            limits,
            header_timeouts: metrics.header_timeouts.clone(),
            stop: stop.clone(),
            _slot: slot,
            _open: all_closed_rx.clone(),
        }));
    }
    drop(listener);
    drop(all_closed_rx);
    all_closed_tx.closed().await;
}

/// Like hyper's own loop: errors of one connection are skipped; others (out of file
/// descriptors) pause accepting for a moment instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One accepted connection and what serving it needs.
struct Connection {
    stream: TcpStream,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: ConnectionLimits,
    header_timeouts: Counter,
    stop: watch::Receiver<bool>,
    _slot: ConnectionSlot,
    _open: watch::Receiver<()>,
}

async fn serve_connection(connection: Connection) {
    let Connection {
        stream,
        app,
        builder,
        limits,
        header_timeouts,
        mut stop,
        _slot,
        _open,
    } = connection;
    // hyper times out HTTP/1 heads, but not the protocol sniffing before them (a client can
    // trickle a prefix of the HTTP/2 preface) nor an HTTP/2 handshake: the first request must
    // start within the same timeout, whatever the protocol.
    let started = Arc::new(AtomicBool::new(false));
    let service = {
        let started = started.clone();
        let body_timeout = limits.body_read_timeout;
        hyper::service::service_fn(move |request: Request<Incoming>| {
            started.store(true, Ordering::Relaxed);
            let mut app = app.clone();
            app.call(request.map(|body| DeadlineBody::new(body, body_timeout)))
        })
    };
    let mut served = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut first_request_deadline = pin!(tokio::time::sleep(limits.header_read_timeout));
    let mut watching_first_request = true;
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result
                    && is_timeout(e.as_ref())
                {
                    header_timeouts.increment(1);
                }
                break;
            }
            () = &mut first_request_deadline, if watching_first_request => {
                watching_first_request = false;
                if !started.load(Ordering::Relaxed) {
                    header_timeouts.increment(1);
                    break;
                }
            }
            _ = stop.wait_for(|stop| *stop), if !shutting_down => {
                shutting_down = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

fn is_timeout(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// A place among a listener's open connections, shown in its gauge, given back when dropped.
struct ConnectionSlot {
    _place: Place,
    gauge: Gauge,
}

impl ConnectionSlot {
    fn acquire(open: &Capacity, gauge: &Gauge) -> Option<Self> {
        let place = open.try_take()?;
        gauge.increment(1.0);
        Some(Self {
            _place: place,
            gauge: gauge.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// A request body that fails with [`BodyDeadlineElapsed`] if it has not arrived whole by its
/// deadline. The timer is set only once the body has to wait for the network, so a body that
/// came with its head costs no timer.
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    expired: bool,
}

impl<B> DeadlineBody<B> {
    /// `inner`, due within `timeout` from now.
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Instant::now() + timeout,
            timer: None,
            expired: false,
        }
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired = true;
                counter!(m::BODY_READ_TIMEOUTS).increment(1);
                Poll::Ready(Some(Err(Box::new(BodyDeadlineElapsed))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body did not arrive whole within `server.body_read_timeout_ms`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within the body read timeout")]
pub struct BodyDeadlineElapsed;

impl BodyDeadlineElapsed {
    /// Whether `error`, or an error it wraps, is a body deadline.
    pub fn caused(error: &(dyn StdError + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.is::<BodyDeadlineElapsed>() {
                return true;
            }
            next = e.source();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_at_its_deadline() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = tokio_stream_from(rx);
        let body = DeadlineBody::new(StreamBody::new(stream), Duration::from_secs(5));
        tx.send(Ok(Frame::data(Bytes::from_static(b"{"))))
            .await
            .ok();
        let error = body.collect().await.expect_err("deadline");
        assert!(BodyDeadlineElapsed::caused(error.as_ref()));
        drop(tx);
    }

    #[tokio::test]
    async fn a_whole_body_is_read_without_a_timer() {
        let body = DeadlineBody::new(
            http_body_util::Full::new(Bytes::from_static(b"{}")),
            Duration::from_millis(1),
        );
        let bytes = body.collect().await.expect("read").to_bytes();
        assert_eq!(&bytes[..], b"{}");
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Unpin {
        Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
