//! Runtime knobs of the mock.

use std::time::Duration;

/// How the mock paces and sizes its answers.
///
/// The defaults are fast (no artificial delay) so that functional tests run quickly; the
/// benchmarks set latencies to imitate a real provider.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Delay before the response headers of a non-streaming answer.
    pub latency_ms: u64,
    /// Delay before the first content chunk of a stream (headers go out at once).
    pub ttft_ms: u64,
    /// Delay between two content chunks of a stream.
    pub inter_token_ms: u64,
    /// Output length, in tokens, when the prompt has no `[mock:tokens N]` directive.
    pub default_output_tokens: u32,
    /// Embedding size when the request has no `dimensions`.
    pub embedding_dims: usize,
    /// Largest request body accepted; bigger ones get a 413 in the provider's format.
    pub max_body_bytes: usize,
    /// Keep at most this many ledger entries (oldest dropped first). The summary totals stay
    /// exact regardless, so long benchmarks do not grow memory without bound.
    pub ledger_limit: Option<usize>,
    /// How long a graceful shutdown waits for in-flight requests before cutting them.
    pub shutdown_grace: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            ttft_ms: 0,
            inter_token_ms: 0,
            default_output_tokens: 16,
            embedding_dims: 1536,
            max_body_bytes: 32 * 1024 * 1024,
            ledger_limit: None,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}
