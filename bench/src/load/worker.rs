//! One connection worker: takes due tickets, sends each on its keep-alive connection, reads the
//! response to the end and records what it saw.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::latency::Latencies;
use super::request::ApiFormat;
use super::{Endpoint, tokens};

/// A request that is due.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ticket {
    /// When it was due: its latency counts from here.
    pub due: Instant,
    /// Whether it falls in the measured part of the run (not the warm-up).
    pub measured: bool,
}

/// One worker's figures, merged into the run's at the end.
#[derive(Clone, Debug, Default)]
pub(super) struct WorkerStats {
    pub ok: u64,
    pub status_errors: u64,
    pub io_errors: u64,
    pub completed_all: u64,
    pub latency: Latencies,
    pub ttft: Latencies,
    pub inter_token: Latencies,
    pub last_completion: Option<Instant>,
}

impl WorkerStats {
    pub fn merge(&mut self, other: &WorkerStats) {
        self.ok += other.ok;
        self.status_errors += other.status_errors;
        self.io_errors += other.io_errors;
        self.completed_all += other.completed_all;
        self.latency.merge(&other.latency);
        self.ttft.merge(&other.ttft);
        self.inter_token.merge(&other.inter_token);
        self.last_completion = self.last_completion.max(other.last_completion);
    }
}

/// How one request ended.
enum Outcome {
    Ok,
    Status,
    Io,
}

/// Serves tickets until the channel closes or `deadline` passes (a request still in flight
/// then is left unfinished; the run counts it).
pub(super) async fn run(
    endpoint: Endpoint,
    tickets: async_channel::Receiver<Ticket>,
    format: ApiFormat,
    stream: bool,
    deadline: Instant,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    while let Ok(Ok(ticket)) = timeout_at(deadline, tickets.recv()).await {
        let mut timing = Timing {
            format,
            stream,
            first_token: None,
            last_token: None,
            gaps: ticket.measured.then_some(&mut stats.inter_token),
        };
        let sent = timeout_at(deadline, send(&endpoint, &mut conn, &mut timing)).await;
        let first_token = timing.first_token;
        let Ok(outcome) = sent else {
            break;
        };
        stats.completed_all += 1;
        if !ticket.measured {
            continue;
        }
        let now = Instant::now();
        match outcome {
            Outcome::Ok => {
                stats.ok += 1;
                stats.latency.record(now - ticket.due);
                if let Some(first) = first_token {
                    stats.ttft.record(first - ticket.due);
                }
            }
            Outcome::Status => stats.status_errors += 1,
            Outcome::Io => stats.io_errors += 1,
        }
        stats.last_completion = Some(now);
    }
    stats
}

/// Sends one request, connecting first if needed, and reads the whole response.
async fn send(
    endpoint: &Endpoint,
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    timing: &mut Timing<'_>,
) -> Outcome {
    if conn.as_ref().is_none_or(SendRequest::is_closed) {
        *conn = connect(endpoint).await;
    }
    let Some(sender) = conn.as_mut() else {
        return Outcome::Io;
    };
    if sender.ready().await.is_err() {
        *conn = None;
        return Outcome::Io;
    }
    let response = match sender.send_request(endpoint.template.build()).await {
        Ok(r) => r,
        Err(_) => {
            *conn = None;
            return Outcome::Io;
        }
    };
    let success = response.status().is_success();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let (true, Some(data)) = (success, frame.data_ref()) {
                    timing.saw(data);
                }
            }
            Err(_) => {
                *conn = None;
                return Outcome::Io;
            }
        }
    }
    if success {
        Outcome::Ok
    } else {
        Outcome::Status
    }
}

async fn connect(endpoint: &Endpoint) -> Option<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(endpoint.addr).await.ok()?;
    // Small requests and responses: Nagle plus delayed ACKs would add tens of ms.
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// Token timings of one streamed response. Gaps go straight into the worker's histogram
/// (when the request is measured): a histogram per request would be a large allocation.
struct Timing<'a> {
    format: ApiFormat,
    stream: bool,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    gaps: Option<&'a mut Latencies>,
}

impl Timing<'_> {
    /// Notes a body read: tokens arriving together in one read count one gap, since the
    /// client could not have seen them apart.
    fn saw(&mut self, data: &Bytes) {
        if !self.stream || tokens::count(self.format, data) == 0 {
            return;
        }
        let now = Instant::now();
        match (self.last_token, self.gaps.as_deref_mut()) {
            (None, _) => self.first_token = Some(now),
            (Some(last), Some(gaps)) => gaps.record(now - last),
            (Some(_), None) => {}
        }
        self.last_token = Some(now);
    }
}
