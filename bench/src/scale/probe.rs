//! When did each node see a catalog write? Timestamps taken by the cluster's catalog
//! observer, at the moment each replica applies the write, rather than by polling (whose
//! resolution would be the timer's millisecond or worse).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::ScaleError;
use super::cluster::{BenchCluster, Value};

/// Arrival times of tracked catalog ids on every node of a cluster.
pub(crate) struct Arrivals {
    nodes: usize,
    /// Only ids registered with [`Self::track`] are recorded, so loads of other entries cost
    /// one map lookup each and no memory.
    tracked: Mutex<HashMap<Box<str>, Arrival>>,
    /// Bumped whenever a tracked id has reached every node.
    completed: watch::Sender<u64>,
}

/// Where one id has arrived so far.
struct Arrival {
    first_seen: Vec<Option<Instant>>,
    nodes_seen: usize,
}

impl Arrivals {
    /// Installs an observer on every node of `cluster` (replacing any other).
    pub(crate) fn install(cluster: &BenchCluster) -> Arc<Self> {
        let arrivals = Arc::new(Self {
            nodes: cluster.len(),
            tracked: Mutex::new(HashMap::new()),
            completed: watch::Sender::new(0),
        });
        for (index, node) in cluster.nodes().iter().enumerate() {
            let arrivals = arrivals.clone();
            // Runs under the node's replica lock: a map lookup and at most one notification.
            node.set_catalog_observer(Arc::new(move |id: &str, value: Option<&Value>| {
                if value.is_some() {
                    arrivals.observe(index, id);
                }
            }));
        }
        arrivals
    }

    /// Starts recording when `id` reaches each node. Call before writing it.
    pub(crate) fn track(&self, id: &str) {
        self.lock().insert(
            id.into(),
            Arrival {
                first_seen: vec![None; self.nodes],
                nodes_seen: 0,
            },
        );
    }

    fn observe(&self, node: usize, id: &str) {
        let now = Instant::now();
        let complete = {
            let mut tracked = self.lock();
            let Some(arrival) = tracked.get_mut(id) else {
                return;
            };
            match arrival.first_seen.get_mut(node) {
                Some(slot @ None) => {
                    *slot = Some(now);
                    arrival.nodes_seen += 1;
                    arrival.nodes_seen == self.nodes
                }
                _ => false,
            }
        };
        if complete {
            self.completed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Waits until every node has seen every id of `ids` (all tracked first), stops tracking
    /// them and returns the latest arrival: the instant the last of them reached the last
    /// node.
    pub(crate) async fn wait_everywhere(
        &self,
        ids: &[String],
        deadline: Duration,
    ) -> Result<Instant, ScaleError> {
        let give_up = tokio::time::Instant::now() + deadline;
        // Subscribed before the first look, so a completion between the look and the wait
        // still wakes us.
        let mut completed = self.completed.subscribe();
        loop {
            completed.borrow_and_update();
            let progress = {
                let mut tracked = self.lock();
                match latest_arrival(&tracked, ids, self.nodes) {
                    Ok(latest) => {
                        for id in ids {
                            tracked.remove(id.as_str());
                        }
                        return Ok(latest);
                    }
                    Err(progress) => progress,
                }
            };
            match tokio::time::timeout_at(give_up, completed.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives in `self`, so it cannot be gone; a timeout it is.
                Ok(Err(_)) | Err(_) => {
                    return Err(ScaleError::Timeout {
                        what: format!("{} catalog write(s) to reach every node", ids.len()),
                        waited: deadline,
                        progress,
                    });
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arrival>> {
        // A panic elsewhere cannot leave the map half-updated in a way that matters here.
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The latest first-arrival over `ids` and all nodes, or a description of what is missing.
fn latest_arrival(
    tracked: &HashMap<Box<str>, Arrival>,
    ids: &[String],
    nodes: usize,
) -> Result<Instant, String> {
    let mut latest: Option<Instant> = None;
    for id in ids {
        let Some(arrival) = tracked.get(id.as_str()) else {
            return Err(format!("{id} is not tracked"));
        };
        if arrival.nodes_seen < nodes {
            return Err(format!(
                "{id} has reached {} of {nodes} nodes",
                arrival.nodes_seen
            ));
        }
        latest = arrival
            .first_seen
            .iter()
            .flatten()
            .copied()
            .chain(latest)
            .max();
    }
    latest.ok_or_else(|| "no ids to wait for".to_owned())
}
