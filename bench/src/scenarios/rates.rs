//! Fixed-rate runs against one target, up a ladder of rates until it saturates, and the search
//! for the highest rate a target sustains under a p99 bound.

use serde::{Deserialize, Serialize};

use crate::load::{self, Added, ApiFormat, LoadResult, LoadSpec};
use crate::targets::{Target, TargetError};

use super::{RunSettings, ScenarioError};

/// One target at one rate, in one mode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RateRow {
    /// Which target (`direct` is the baseline).
    pub target: String,
    /// The client API.
    pub format: ApiFormat,
    /// Streaming or not.
    pub stream: bool,
    /// What the load generator measured.
    pub load: LoadResult,
    /// The target's CPU time over the run divided by the requests it completed, µs (for
    /// `direct`, the mock's own cost).
    pub cpu_us_per_request: Option<f64>,
    /// The target's peak resident memory so far, bytes (summed over a cluster's nodes).
    pub peak_rss_bytes: Option<u64>,
    /// Latency added to `direct` at the same rate and mode, per percentile.
    pub added: Option<Added>,
    /// Time to first token added to `direct`.
    pub added_ttft: Option<Added>,
    /// Gap between tokens added to `direct`.
    pub added_inter_token: Option<Added>,
}

impl RateRow {
    /// Whether the target kept up: nearly all requests served, at nearly the offered rate.
    pub fn kept_up(&self) -> bool {
        let l = &self.load;
        l.achieved_rps >= 0.9 * l.offered_rps && l.errors() * 100 <= l.due
    }

    /// Fills the `added_*` figures against the baseline row of the same rate and mode.
    pub fn compare_with(&mut self, baseline: &RateRow) {
        let diff = |a: Option<load::Percentiles>, b: Option<load::Percentiles>| Some(a?.minus(&b?));
        self.added = diff(self.load.latency, baseline.load.latency);
        self.added_ttft = diff(self.load.ttft, baseline.load.ttft);
        self.added_inter_token = diff(self.load.inter_token, baseline.load.inter_token);
    }
}

/// Runs one load at `rate` against `target`, with the target's CPU time measured around it.
pub async fn measure(
    target: &Target,
    settings: &RunSettings,
    format: ApiFormat,
    stream: bool,
    rate: f64,
) -> Result<RateRow, ScenarioError> {
    let spec = LoadSpec {
        endpoints: target.endpoints(format, stream, settings.max_tokens)?,
        format,
        stream,
        rate,
        warmup: settings.warmup,
        duration: settings.duration,
        connections: connections_for(settings.connections, stream, rate),
        drain: settings.drain,
    };
    let before = target.usage().map_err(TargetError::from)?;
    let result = load::run(&spec).await?;
    let after = target.usage().map_err(TargetError::from)?;
    let cpu_us_per_request = (result.completed_all > 0)
        .then(|| (after.cpu_us - before.cpu_us) as f64 / result.completed_all as f64);
    Ok(RateRow {
        target: target.kind.label(),
        format,
        stream,
        load: result,
        cpu_us_per_request,
        peak_rss_bytes: Some(after.peak_rss_bytes),
        added: None,
        added_ttft: None,
        added_inter_token: None,
    })
}

/// Streams hold their connection for their whole length, so a rate of streams needs more
/// connections than the same rate of short requests: enough for streams of up to 100 ms, or
/// the generator's connection limit, not the target, would set the ceiling.
fn connections_for(configured: usize, stream: bool, rate: f64) -> usize {
    if stream {
        configured.max((rate / 10.0).ceil() as usize)
    } else {
        configured
    }
}

/// Runs `rates` in order, stopping after the first rate the target does not keep up with.
pub async fn ladder(
    target: &Target,
    settings: &RunSettings,
    format: ApiFormat,
    stream: bool,
    rates: &[f64],
) -> Result<Vec<RateRow>, ScenarioError> {
    let mut rows = Vec::new();
    for &rate in rates {
        let row = measure(target, settings, format, stream, rate).await?;
        let kept_up = row.kept_up();
        eprintln!("{}", progress_line(&row));
        rows.push(row);
        if !kept_up {
            break;
        }
    }
    Ok(rows)
}

/// The highest rate found at which `target` keeps up with p99 under `p99_bound_us`: doubling
/// from `start` until a rate fails, then bisecting `steps` times between the last pass and the
/// first failure. Returns the best passing row, if any rate passed.
pub async fn max_sustainable(
    target: &Target,
    settings: &RunSettings,
    format: ApiFormat,
    start: f64,
    p99_bound_us: u64,
    steps: usize,
) -> Result<Option<RateRow>, ScenarioError> {
    let passes =
        |row: &RateRow| row.kept_up() && row.load.latency.is_some_and(|p| p.p99_us < p99_bound_us);
    let mut best: Option<RateRow> = None;
    let mut failed_at: Option<f64> = None;
    let mut rate = start;
    // Doubling: at most 2^12 × start, far past any machine.
    for _ in 0..12 {
        let row = measure(target, settings, format, false, rate).await?;
        eprintln!("{}", progress_line(&row));
        if passes(&row) {
            best = Some(row);
            rate *= 2.0;
        } else {
            failed_at = Some(rate);
            break;
        }
    }
    let Some(mut high) = failed_at else {
        return Ok(best);
    };
    let mut low = best.as_ref().map_or(0.0, |r| r.load.offered_rps);
    for _ in 0..steps {
        let mid = ((low + high) / 2.0).round();
        if mid <= low || mid >= high {
            break;
        }
        let row = measure(target, settings, format, false, mid).await?;
        eprintln!("{}", progress_line(&row));
        if passes(&row) {
            low = mid;
            best = Some(row);
        } else {
            high = mid;
        }
    }
    Ok(best)
}

/// One line per run on stderr, so a long bench shows where it is.
fn progress_line(row: &RateRow) -> String {
    let l = &row.load;
    let p = l.latency.unwrap_or_default();
    format!(
        "{:<18} {:>9} {:<6} offered {:>7.0}/s achieved {:>7.0}/s p50 {:>6} µs p99 {:>7} µs errors {:>5} cpu/req {:>6.1} µs",
        row.target,
        format!("{:?}", row.format).to_lowercase(),
        if row.stream { "stream" } else { "plain" },
        l.offered_rps,
        l.achieved_rps,
        p.p50_us,
        p.p99_us,
        l.errors(),
        row.cpu_us_per_request.unwrap_or(f64::NAN),
    )
}
