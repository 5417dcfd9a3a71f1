//! Issuing operations at a steady rate.

use std::time::{Duration, Instant};

use super::ScaleError;

/// What a paced run did.
pub(crate) struct Paced {
    /// Operations issued.
    pub(crate) issued: u64,
    /// How long it ran.
    pub(crate) elapsed: Duration,
}

impl Paced {
    /// Operations per second actually issued.
    pub(crate) fn rate(&self) -> f64 {
        self.issued as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Calls `op(i)` for i = 0, 1, ... so that `rate` calls per second are made on average over
/// `window`, then stops. Calls are due by elapsed time (`rate × elapsed` of them by now) and
/// made on ticks of 1-10 ms, so a high rate goes out in small bursts rather than needing a
/// timer per call, and a slow call is caught up on the next tick rather than lost. A rate
/// of 0 makes no call and just lets the window pass.
pub(crate) async fn paced(
    rate: u64,
    window: Duration,
    mut op: impl AsyncFnMut(u64) -> Result<(), ScaleError>,
) -> Result<Paced, ScaleError> {
    let started = Instant::now();
    if rate == 0 {
        tokio::time::sleep(window).await;
        return Ok(Paced {
            issued: 0,
            elapsed: started.elapsed(),
        });
    }
    let period = Duration::from_secs_f64(1.0 / rate as f64)
        .clamp(Duration::from_millis(1), Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut issued = 0u64;
    loop {
        tick.tick().await;
        let elapsed = started.elapsed();
        if elapsed >= window {
            break;
        }
        let due = (rate as f64 * elapsed.as_secs_f64()) as u64;
        while issued < due && started.elapsed() < window {
            op(issued).await?;
            issued += 1;
        }
    }
    Ok(Paced {
        issued,
        elapsed: started.elapsed(),
    })
}
