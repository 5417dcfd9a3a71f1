//! Resident memory of a governed node against the number of virtual keys it holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::targets::{ADMIN_TOKEN, Target, TargetError};

use super::ScenarioError;

/// Keys created at once: enough to fill the node's group commit, few enough not to queue.
const CONCURRENCY: usize = 64;

/// A node's memory with a number of keys loaded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryRow {
    /// Virtual keys in the catalog.
    pub keys: usize,
    /// Resident memory once they are loaded, bytes.
    pub rss_bytes: u64,
    /// Peak resident memory while loading, bytes.
    pub peak_rss_bytes: u64,
    /// How fast the admin API created them, keys per second.
    pub create_rate: f64,
}

/// Creates keys on `target` (a governed node) up to each count in `counts` (ascending),
/// reading its memory at each.
pub async fn keys_ladder(
    target: &Target,
    counts: &[usize],
) -> Result<Vec<MemoryRow>, ScenarioError> {
    let addr = target.addrs[0];
    let http = reqwest::Client::new();
    let mut rows = Vec::new();
    let mut have = 0usize;
    for &count in counts {
        let started = Instant::now();
        let created = count.saturating_sub(have);
        create_keys(&http, addr, have, count).await?;
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        have = count.max(have);
        // Let the node's flush and snapshot settle so RSS is not read mid-burst.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let usage = target.usage().map_err(TargetError::from)?;
        let row = MemoryRow {
            keys: have,
            rss_bytes: usage.rss_bytes,
            peak_rss_bytes: usage.peak_rss_bytes,
            create_rate: created as f64 / elapsed,
        };
        eprintln!(
            "memory: {:>8} keys  rss {:>7.1} MB  peak {:>7.1} MB  ({:.0} keys/s created)",
            row.keys,
            row.rss_bytes as f64 / 1e6,
            row.peak_rss_bytes as f64 / 1e6,
            row.create_rate
        );
        rows.push(row);
    }
    Ok(rows)
}

/// Creates keys `from..to`, `CONCURRENCY` at a time, each with a budget and limits like a
/// real tenant's.
async fn create_keys(
    http: &reqwest::Client,
    addr: SocketAddr,
    from: usize,
    to: usize,
) -> Result<(), ScenarioError> {
    let next = Arc::new(AtomicUsize::new(from));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, next) = (http.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return Ok(());
                }
                let body = serde_json::json!({
                    "name": format!("tenant-{i}"),
                    "models": ["gpt-*"],
                    "budgets": [{"amount_usd": 100, "period": "monthly", "mode": "strict"}],
                    "rpm": 600,
                    "tpm": 100_000,
                });
                let response = http
                    .post(format!("http://{addr}/admin/v1/keys"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| format!("creating key {i}: {e}"))?;
                if !response.status().is_success() {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    return Err(format!("creating key {i}: {status} {text}"));
                }
            }
        }));
    }
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(detail)) => return Err(ScenarioError::Memory(detail)),
            Err(e) => return Err(ScenarioError::Memory(format!("key creator: {e}"))),
        }
    }
    Ok(())
}
