//! `starling cluster status`: a node's view of the cluster, as a table.

use anyhow::Result;
use serde_json::Value;

use crate::admin_client::AdminClient;

/// Fetches `/admin/v1/cluster` from `node` and prints it.
pub async fn print(node: &str, token: &str) -> Result<()> {
    let body = AdminClient::new(node, token)?
        .get(&["cluster"], &[])
        .await?;
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
