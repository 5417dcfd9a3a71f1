//! The writes the scenarios make: catalog entries (one at a time or in batches) and usage
//! counter updates.

use starling_cluster::crdt::{CounterKey, Period, PeriodUnit, Usage};
use starling_cluster::runtime::ClusterNode;
use starling_cluster::state::Delta;

use super::ScaleError;
use super::cluster::{BenchCluster, Value};

/// A catalog value for entry `i`: a JSON-ish string padded to `bytes` (at least the JSON).
pub(crate) fn catalog_value(i: usize, bytes: usize) -> Value {
    let mut value = format!("{{\"i\":{i},\"pad\":\"");
    let pad = bytes.saturating_sub(value.len() + 2);
    value.extend(std::iter::repeat_n('x', pad));
    value.push_str("\"}");
    value
}

/// Puts one catalog entry on `node`, durably (waits for the fsync), as an admin write does.
pub(crate) async fn put(
    node: &ClusterNode<Value>,
    id: &str,
    value: Value,
) -> Result<(), ScaleError> {
    node.catalog_put(id, value)
        .await
        .map_err(|source| write_error(node, source))
}

/// Loads `entries` catalog entries `key-0000000`... in batches of `batch`, each batch one
/// write (one delta, one fsync, one push per peer), taking the nodes in turn.
pub(crate) async fn load_catalog(
    cluster: &BenchCluster,
    entries: usize,
    batch: usize,
    value_bytes: usize,
) -> Result<(), ScaleError> {
    let batch = batch.max(1);
    for (b, first) in (0..entries).step_by(batch).enumerate() {
        let node = cluster.node(b);
        let last = (first + batch).min(entries);
        node.mutate(|replica| {
            // One delta for the whole batch: the union of the puts' dots and their entries,
            // which is exactly what the puts would have shipped one by one.
            let mut delta = Delta::<Value>::default();
            for i in first..last {
                let put = replica.put(&format!("key-{i:07}"), catalog_value(i, value_bytes));
                delta.context.union(&put.context);
                delta.items.catalog.extend(put.items.catalog);
            }
            (delta, ())
        })
        .await
        .map_err(|source| write_error(node, source))?;
    }
    Ok(())
}

/// The counter keys usage updates are spread over: `count` scopes in the lifetime period
/// (never dropped, so no update is refused for its period).
pub(crate) fn counter_keys(count: usize) -> Vec<CounterKey> {
    (0..count.max(1))
        .map(|i| {
            CounterKey::new(
                format!("key:bench-{i}"),
                Period::new(PeriodUnit::Lifetime, 0),
            )
        })
        .collect()
}

/// One usage update (one request of one token costing one micro-dollar) on `node`, as its
/// own delta, queued for disk and pushed to peers once fsynced (`mutate_nowait`, the
/// request path's API). The gateway batches the updates of one flush into a single delta,
/// so this is the unbatched upper bound of the bytes per update.
pub(crate) async fn add_usage(
    node: &ClusterNode<Value>,
    key: &CounterKey,
) -> Result<(), ScaleError> {
    let usage = Usage {
        spend_micros: 1,
        tokens: 1,
        requests: 1,
    };
    node.mutate_nowait(|replica| match replica.add_usage(key, usage) {
        Ok(delta) => (delta, Ok(())),
        Err(dropped) => (Delta::default(), Err(dropped)),
    })
    .await
    .map_err(|source| write_error(node, source))??;
    Ok(())
}

fn write_error(
    node: &ClusterNode<Value>,
    source: starling_cluster::runtime::ClusterError,
) -> ScaleError {
    ScaleError::Write {
        node: node.writer().node.to_string(),
        source,
    }
}
