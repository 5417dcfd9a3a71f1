//! `starling cluster status`: a node's view of the cluster, as a table.

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Fetches `/admin/v1/cluster` from `node` and prints it.
pub async fn print(node: &str, token: &str) -> Result<()> {
    starling::providers::ensure_crypto_provider();
    let url = format!("{}/admin/v1/cluster", node.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("cannot read {url}"))?;
    let body: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("unknown error");
        bail!("{url}: HTTP {status}: {message}");
    }
    println!(
        "node {} (incarnation {}), digest {}",
        body["node_id"].as_str().unwrap_or("?"),
        body["incarnation"],
        short(&body["digest"])
    );
    println!(
        "{:<20} {:<22} {:<6} {:<22} {:<10} {:<10} {:>8}",
        "NODE", "GOSSIP", "LIVE", "HTTP", "VERSION", "DIGEST", "LAG_MS"
    );
    for m in body["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        println!(
            "{:<20} {:<22} {:<6} {:<22} {:<10} {:<10} {:>8}",
            m["node_id"].as_str().unwrap_or("?"),
            m["gossip_addr"].as_str().unwrap_or("?"),
            if m["live"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            m["http"].as_str().unwrap_or("-"),
            m["version"].as_str().unwrap_or("-"),
            short(&m["digest"]),
            m["replication_lag_ms"]
                .as_u64()
                .map_or("-".to_owned(), |v| v.to_string()),
        );
    }
    Ok(())
}

fn short(digest: &Value) -> String {
    digest
        .as_str()
        .map_or("-".to_owned(), |d| d.chars().take(8).collect())
}
