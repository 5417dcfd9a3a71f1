//! Waiting for a state of the cluster: poll a check until it holds or a deadline passes.

use std::time::{Duration, Instant};

use super::ScaleError;

/// What a check found.
pub(crate) enum Check {
    /// The awaited state holds.
    Done,
    /// Not yet; the text says how far it got (it ends up in the timeout error).
    Waiting(String),
}

/// Polls `check` until it reports [`Check::Done`] and returns the instant it did, or fails with
/// [`ScaleError::Timeout`] once `deadline` has passed.
///
/// The pause between polls is twice the time the last check took (at least 1 ms): cheap
/// checks (a few small digests) are polled at millisecond resolution, while expensive ones
/// (the digests of 100,000 entries on every node) take at most a third of the CPU the
/// cluster being measured needs.
pub(crate) async fn wait_until(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Result<Check, ScaleError>,
) -> Result<Instant, ScaleError> {
    let started = Instant::now();
    loop {
        let polled = Instant::now();
        let progress = match check()? {
            Check::Done => return Ok(Instant::now()),
            Check::Waiting(progress) => progress,
        };
        if started.elapsed() >= deadline {
            return Err(ScaleError::Timeout {
                what: what.to_owned(),
                waited: started.elapsed(),
                progress,
            });
        }
        let pause = (polled.elapsed() * 2).max(Duration::from_millis(1));
        tokio::time::sleep(pause).await;
    }
}
