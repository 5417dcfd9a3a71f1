//! Transport counters, read without locks, for metrics and tests.
//!
//! Every message the endpoint drops is counted under the reason it was dropped, so that an
//! operator can tell a misconfigured node (handshake rejections), a buggy or hostile peer
//! (malformed frames), an overloaded consumer (queue full) and a simulated partition apart.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::MessageKind;

/// Live counters of one endpoint. All are monotonic totals since the endpoint was bound.
#[derive(Debug)]
pub struct TransportStats {
    pub(crate) handshakes_accepted: AtomicU64,
    pub(crate) handshakes_rejected: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) retries_sent: AtomicU64,
    pub(crate) connects_ok: AtomicU64,
    pub(crate) connects_failed: AtomicU64,
    pub(crate) peers_unidentified: AtomicU64,
    pub(crate) peers_revoked: AtomicU64,
    pub(crate) gossip_spoofed: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) oversized: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) read_timeouts: AtomicU64,
    pub(crate) unknown_kind: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) gossip_inflation_refused: AtomicU64,
    pub(crate) stream_errors: AtomicU64,
    pub(crate) queue_full: AtomicU64,
    pub(crate) partition_dropped: AtomicU64,
    pub(crate) send_failures: AtomicU64,
    pub(crate) sends_dropped: AtomicU64,
    pub(crate) requests_failed: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    kinds: Box<[KindCounters]>,
}

#[derive(Debug, Default)]
struct KindCounters {
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    malformed: AtomicU64,
}

/// A point-in-time copy of [`TransportStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Inbound TLS handshakes that succeeded (the peer holds cluster credentials).
    pub handshakes_accepted: u64,
    /// Inbound handshakes that failed: wrong CA or secret, no client certificate, wrong ALPN,
    /// or a peer that rejected our certificate.
    pub handshakes_rejected: u64,
    /// Inbound connections refused: the endpoint had too many, or the attempt carried an
    /// invalid address-validation token.
    pub connections_refused: u64,
    /// QUIC Retry packets sent to validate a new peer's address before its handshake (one
    /// per connection attempt from an unvalidated address, see
    /// [`super::EndpointConfig::validate_addresses`]).
    pub retries_sent: u64,
    /// Outbound connections established.
    pub connects_ok: u64,
    /// Outbound connection attempts that failed: handshake rejected by either side, timeout,
    /// unreachable.
    pub connects_failed: u64,
    /// Connections (either direction) closed after a successful handshake because the peer's
    /// certificate names no Starling node id (e.g. a clientAuth certificate a shared CA issued
    /// for something else).
    pub peers_unidentified: u64,
    /// Connections (either direction) closed after the handshake because the peer's node id
    /// is in `revoked_nodes`.
    pub peers_revoked: u64,
    /// Gossip messages dropped because the sender claimed another node's id than its
    /// certificate names.
    pub gossip_spoofed: u64,
    /// Inbound messages dropped as malformed, all reasons (the next five fields, plus trailing
    /// bytes after the payload).
    pub malformed: u64,
    /// ... of which declared longer than the cap for their kind.
    pub oversized: u64,
    /// ... of which the stream ended early.
    pub truncated: u64,
    /// ... of which the rest of the frame did not arrive within the read timeout.
    pub read_timeouts: u64,
    /// ... of which nobody on this node handles the kind.
    pub unknown_kind: u64,
    /// ... of which the payload did not decode (reported by the consumer, e.g. gossip).
    pub decode_errors: u64,
    /// Gossip messages refused because their compressed blocks would inflate beyond
    /// [`super::gossip::GOSSIP_MAX_INFLATED`] (also counted in `decode_errors`).
    pub gossip_inflation_refused: u64,
    /// Streams that failed underneath (reset by the peer, connection lost mid-message).
    pub stream_errors: u64,
    /// Inbound messages dropped because the consumer's queue was full.
    pub queue_full: u64,
    /// Messages dropped by the simulated partition, either direction.
    pub partition_dropped: u64,
    /// Sends that failed after a connection was available (write error, timeout).
    pub send_failures: u64,
    /// Fire-and-forget sends dropped before trying: too many in flight, or no connection.
    pub sends_dropped: u64,
    /// Requests (`request`) that failed, any reason.
    pub requests_failed: u64,
    /// Messages sent (uni messages, requests and responses).
    pub messages_sent: u64,
    /// Messages received and handed to a consumer.
    pub messages_received: u64,
    /// Frame bytes sent, headers included.
    pub bytes_sent: u64,
    /// Frame bytes received in accepted messages, headers included.
    pub bytes_received: u64,
}

/// Per-kind counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindSnapshot {
    /// Messages of this kind sent.
    pub messages_sent: u64,
    /// Messages of this kind received and handed to a consumer.
    pub messages_received: u64,
    /// Frame bytes sent.
    pub bytes_sent: u64,
    /// Frame bytes received.
    pub bytes_received: u64,
    /// Messages of this kind dropped as malformed (once the kind byte was read).
    pub malformed: u64,
}

/// Why an inbound message was dropped as malformed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Malformed {
    Oversized,
    Truncated,
    Trailing,
    Timeout,
    UnknownKind,
    Decode,
}

impl Default for TransportStats {
    fn default() -> Self {
        Self {
            handshakes_accepted: AtomicU64::new(0),
            handshakes_rejected: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            retries_sent: AtomicU64::new(0),
            connects_ok: AtomicU64::new(0),
            connects_failed: AtomicU64::new(0),
            peers_unidentified: AtomicU64::new(0),
            peers_revoked: AtomicU64::new(0),
            gossip_spoofed: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            read_timeouts: AtomicU64::new(0),
            unknown_kind: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            gossip_inflation_refused: AtomicU64::new(0),
            stream_errors: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            partition_dropped: AtomicU64::new(0),
            send_failures: AtomicU64::new(0),
            sends_dropped: AtomicU64::new(0),
            requests_failed: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            kinds: (0..=u8::MAX).map(|_| KindCounters::default()).collect(),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl TransportStats {
    /// Copies every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            handshakes_accepted: get(&self.handshakes_accepted),
            handshakes_rejected: get(&self.handshakes_rejected),
            connections_refused: get(&self.connections_refused),
            retries_sent: get(&self.retries_sent),
            connects_ok: get(&self.connects_ok),
            connects_failed: get(&self.connects_failed),
            peers_unidentified: get(&self.peers_unidentified),
            peers_revoked: get(&self.peers_revoked),
            gossip_spoofed: get(&self.gossip_spoofed),
            malformed: get(&self.malformed),
            oversized: get(&self.oversized),
            truncated: get(&self.truncated),
            read_timeouts: get(&self.read_timeouts),
            unknown_kind: get(&self.unknown_kind),
            decode_errors: get(&self.decode_errors),
            gossip_inflation_refused: get(&self.gossip_inflation_refused),
            stream_errors: get(&self.stream_errors),
            queue_full: get(&self.queue_full),
            partition_dropped: get(&self.partition_dropped),
            send_failures: get(&self.send_failures),
            sends_dropped: get(&self.sends_dropped),
            requests_failed: get(&self.requests_failed),
            messages_sent: get(&self.messages_sent),
            messages_received: get(&self.messages_received),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
        }
    }

    /// Copies the counters of one kind.
    pub fn kind(&self, kind: MessageKind) -> KindSnapshot {
        let k = &self.kinds[usize::from(kind.0)];
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        KindSnapshot {
            messages_sent: get(&k.messages_sent),
            messages_received: get(&k.messages_received),
            bytes_sent: get(&k.bytes_sent),
            bytes_received: get(&k.bytes_received),
            malformed: get(&k.malformed),
        }
    }

    pub(crate) fn sent(&self, kind: MessageKind, frame_bytes: usize) {
        let k = &self.kinds[usize::from(kind.0)];
        let n = frame_bytes as u64;
        bump(&self.messages_sent);
        bump(&k.messages_sent);
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
        k.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, kind: MessageKind, frame_bytes: usize) {
        let k = &self.kinds[usize::from(kind.0)];
        let n = frame_bytes as u64;
        bump(&self.messages_received);
        bump(&k.messages_received);
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
        k.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn malformed(&self, kind: Option<MessageKind>, why: Malformed) {
        bump(&self.malformed);
        if let Some(kind) = kind {
            bump(&self.kinds[usize::from(kind.0)].malformed);
        }
        match why {
            Malformed::Oversized => bump(&self.oversized),
            Malformed::Truncated => bump(&self.truncated),
            Malformed::Trailing => {}
            Malformed::Timeout => bump(&self.read_timeouts),
            Malformed::UnknownKind => bump(&self.unknown_kind),
            Malformed::Decode => bump(&self.decode_errors),
        }
    }
}

/// Lets one log line through per interval and counts the ones it held back, so that a peer
/// hammering us with bad handshakes or frames cannot flood the log.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed since the last line)` when a line may be logged now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let Ok(mut state) = self.state.lock() else {
            return None;
        };
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_suppressed_lines() {
        let limiter = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        let zero = LogLimiter::new(Duration::ZERO);
        assert_eq!(zero.allow(), Some(0));
        assert_eq!(zero.allow(), Some(0));
    }

    #[test]
    fn per_kind_counters() {
        let stats = TransportStats::default();
        stats.sent(MessageKind(7), 10);
        stats.received(MessageKind::GOSSIP, 20);
        stats.malformed(Some(MessageKind(7)), Malformed::Oversized);
        let s = stats.snapshot();
        assert_eq!(
            (s.messages_sent, s.bytes_sent, s.bytes_received),
            (1, 10, 20)
        );
        assert_eq!((s.malformed, s.oversized), (1, 1));
        assert_eq!(stats.kind(MessageKind(7)).malformed, 1);
        assert_eq!(stats.kind(MessageKind(255)), KindSnapshot::default());
    }
}
