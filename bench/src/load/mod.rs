//! The open-loop load generator.
//!
//! Requests are due at a fixed rate (request `i` at `start + i / rate`), whether or not earlier
//! ones have completed, and each latency is measured from when its request was *due*, not from
//! when a connection was free to send it. A slow target therefore shows its queueing in the
//! latencies instead of quietly lowering the offered rate (coordinated omission).
//!
//! One dispatcher hands due tickets to a pool of connection workers over a channel; each
//! worker owns one HTTP/1.1 keep-alive connection (with `TCP_NODELAY`) and its own histograms,
//! merged at the end, so recording takes no lock.

mod latency;
mod request;
mod tokens;
mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use latency::{Added, Latencies, Percentiles};
pub use request::{ApiFormat, RequestTemplate};
use worker::{Ticket, WorkerStats};

/// Where one connection sends its requests.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The request to send there.
    pub template: RequestTemplate,
}

/// One run at one rate.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Connections are spread over these in turn (round-robin across a cluster's nodes).
    pub endpoints: Vec<Endpoint>,
    /// The API spoken, to recognise token events in streams.
    pub format: ApiFormat,
    /// Whether requests stream (time to first token and gaps between tokens are measured).
    pub stream: bool,
    /// Requests per second offered.
    pub rate: f64,
    /// Sent before measuring starts, to warm connections, pools and caches up; not recorded.
    pub warmup: Duration,
    /// The measured part of the run.
    pub duration: Duration,
    /// Keep-alive connections (the most requests in flight at once).
    pub connections: usize,
    /// How long, after the last request was due, stragglers may still complete.
    pub drain: Duration,
}

/// Errors that stop a run before it starts.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The spec cannot run.
    #[error("invalid load spec: {0}")]
    Spec(&'static str),
}

/// What a run measured. Latencies are of the measured part only.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Requests per second offered.
    pub offered_rps: f64,
    /// Successful measured responses per second, over the measured window (longer than the
    /// nominal one when the target fell behind).
    pub achieved_rps: f64,
    /// Measured requests that were due.
    pub due: u64,
    /// Of those, answered 2xx and read to the end.
    pub ok: u64,
    /// Answered with another status.
    pub status_errors: u64,
    /// Failed on the connection (refused, reset, malformed).
    pub io_errors: u64,
    /// Not completed when the run ended (queued or in flight past the drain).
    pub unfinished: u64,
    /// Every request that completed, warm-up included: what the target's CPU time over the
    /// run is divided by.
    pub completed_all: u64,
    /// End-to-end latency from when the request was due to its last byte.
    pub latency: Option<Percentiles>,
    /// Streams: from when the request was due to the first token event.
    pub ttft: Option<Percentiles>,
    /// Streams: gaps between consecutive token events of a response.
    pub inter_token: Option<Percentiles>,
    /// The measured window, seconds.
    pub window_s: f64,
}

impl LoadResult {
    /// Every measured request that did not succeed.
    pub fn errors(&self) -> u64 {
        self.status_errors + self.io_errors + self.unfinished
    }
}

/// Runs `spec` to completion and returns what it measured.
pub async fn run(spec: &LoadSpec) -> Result<LoadResult, LoadError> {
    if spec.endpoints.is_empty() {
        return Err(LoadError::Spec("no endpoints"));
    }
    if !(spec.rate.is_finite() && spec.rate > 0.0) {
        return Err(LoadError::Spec("the rate must be positive"));
    }
    if spec.connections == 0 {
        return Err(LoadError::Spec("at least one connection is needed"));
    }
    let period = Duration::from_secs_f64(1.0 / spec.rate);
    let total = ((spec.warmup + spec.duration).as_secs_f64() * spec.rate).round() as u64;
    let measured_from = (spec.warmup.as_secs_f64() * spec.rate).round() as u64;
    // Give the workers a moment to connect before the first request is due.
    let start = Instant::now() + Duration::from_millis(50);
    let measure_start = start + spec.warmup;
    let deadline = start + spec.warmup + spec.duration + spec.drain;

    // Two seconds of requests can queue; beyond that the dispatcher waits, which only delays
    // the handing-out, never the due times the latencies count from.
    let capacity = ((spec.rate * 2.0) as usize).clamp(1024, 1 << 20);
    let (tx, rx) = async_channel::bounded::<Ticket>(capacity);

    let workers: Vec<_> = (0..spec.connections)
        .map(|i| {
            let endpoint = spec.endpoints[i % spec.endpoints.len()].clone();
            let rx = rx.clone();
            let (format, stream) = (spec.format, spec.stream);
            tokio::spawn(worker::run(endpoint, rx, format, stream, deadline))
        })
        .collect();
    drop(rx);

    let rate = spec.rate;
    let dispatcher = tokio::spawn(async move {
        let mut next = 0u64;
        while next < total {
            let now = Instant::now();
            let due_by_now = if now < start {
                0
            } else {
                (((now - start).as_secs_f64() * rate).floor() as u64 + 1).min(total)
            };
            while next < due_by_now {
                let ticket = Ticket {
                    due: start + period.mul_f64(next as f64),
                    measured: next >= measured_from,
                };
                if tx.send(ticket).await.is_err() {
                    return;
                }
                next += 1;
            }
            if next < total {
                tokio::time::sleep_until(start + period.mul_f64(next as f64)).await;
            }
        }
    });

    let mut stats = WorkerStats::default();
    for w in workers {
        // A worker that panicked loses its own figures only; the others still count.
        if let Ok(s) = w.await {
            stats.merge(&s);
        }
    }
    dispatcher.abort();

    let due = total - measured_from;
    let finished = stats.ok + stats.status_errors + stats.io_errors;
    let window_end = stats
        .last_completion
        .map_or(measure_start + spec.duration, |t| {
            t.max(measure_start + spec.duration)
        });
    let window_s = (window_end - measure_start).as_secs_f64();
    Ok(LoadResult {
        offered_rps: spec.rate,
        achieved_rps: if window_s > 0.0 {
            stats.ok as f64 / window_s
        } else {
            0.0
        },
        due,
        ok: stats.ok,
        status_errors: stats.status_errors,
        io_errors: stats.io_errors,
        unfinished: due.saturating_sub(finished),
        completed_all: stats.completed_all,
        latency: stats.latency.percentiles(),
        ttft: stats.ttft.percentiles(),
        inter_token: stats.inter_token.percentiles(),
        window_s,
    })
}
