//! Cluster-wide rate limits enforced by node-local buckets whose shares follow demand.
//!
//! N identical nodes serve one scope (a virtual key, a team...) behind a load balancer. Each
//! limit of the scope (requests or tokens per window, requests in flight) is a
//! [`SharedLimit`] on every node. Admission is local and takes microseconds; a few numbers
//! gossiped every report interval move each node's share of the limit towards where the
//! demand is, without ever letting the shares in force add up to more than the limit. The
//! design follows "Cloud Control with Distributed Rate Limiting" (Raghavan et al., SIGCOMM
//! 2007) and YouTube's Doorman, with the demarcation protocol (Barbará and Garcia-Molina) for
//! moving shares safely.
//!
//! # The algorithm
//!
//! * **Bucket** (`bucket.rs`). A node admits against a token bucket (equivalent to GCRA)
//!   refilled at `share / window`. It holds the largest recent request (at least one unit, at
//!   most the share) plus 1 % of the share: room for one whole request, so that a node whose
//!   requests come a little less often than its refill does not lose the tokens accruing in
//!   between, and a burst tolerance of 1 % on top. A request larger than that is admitted when
//!   the bucket is full and leaves a debt; true-ups after settlement charge more (debt) or give
//!   back (up to the capacity). A rejected request is told when the bucket will hold it.
//! * **Demand** (`demand.rs`, `surprise.rs`). Offered load, rejected attempts included, over
//!   the most recent report periods spanning at least 1 s and 5 arrivals (at most 10 s): a
//!   busy node is measured over a second, a lightly loaded one over enough arrivals to be
//!   steady. When the latest periods are wildly unlikely under the older rate (a Poisson test
//!   at 10⁻⁴), the older periods are forgotten, so a collapse or surge of load shows within
//!   about a second instead of waiting for the evidence to age out.
//! * **Target** (`allocation.rs`). Every node computes the same max-min fair split of the
//!   limit over the demands in the latest reports: a node asking for less than an even split
//!   gets its demand plus 10 %; the rest is split evenly among the others; leftover is spread
//!   evenly. Each node keeps a floor of `min(limit / (5 n), max(0.5 % of the limit, 1 unit))`
//!   (floors never take more than 20 % of the limit). With equal demand the split is
//!   `limit / n`. Concurrency splits whole slots, the spare ones going to the nodes with the
//!   lowest tiebreak, so that the floors of the shares add up to the limit.
//! * **Demarcation** (`demarcation.rs`, `view.rs`). A node lowers its share to its target at
//!   once. It raises it only to the least of: its target; `limit − Σ max(share, intent)` over
//!   the latest reports of all other counted nodes; and the smallest `max(share, intent)` it
//!   has itself published since its last report that is at least `D` old (so every peer
//!   already leaves it that much room). A peer with no report yet counts at the initial even
//!   split; a peer whose latest report is older than `P + D` is held at `max(share, intent)`;
//!   no node raises while any counted peer is stale or missing.
//!
//! `P` is [`Tuning::report_interval_ms`] (default 100 ms) and `D`
//! [`Tuning::max_delivery_delay_ms`] (default 200 ms). A report ([`ShareReport`]) is five
//! numbers: demand, share (for concurrency, the larger of the share and the slots in use),
//! intent, a sequence number and the sender's tiebreak.
//!
//! # The guarantee
//!
//! Under the conditions below, at every instant the shares in force add up to at most the
//! limit `L`: `Σ sᵢ(t) ≤ L`, where for concurrency `sᵢ` is the larger of node i's share and
//! its slots in use. A node raises to `v` only if every report a peer may still hold promises
//! at least `v`, and only into room left by what every peer may hold by its own reports; so a
//! peer's view of a node never understates it, and every raise keeps the sum under `L`.
//! Lowering never breaks it. Hence:
//!
//! * **Concurrency**: the slots in use across the cluster never exceed `L`.
//! * **Rates**: in any window of length `W`, each node admits at most what its share refilled
//!   during the window plus what its bucket held at the start (plus a debt it runs up with its
//!   last request, if larger than the bucket). The cluster admits at most
//!   `L + Σᵢ max(Cᵢ, xᵢ)` units, where `Cᵢ ≤ min(largest request, sᵢ) + 1 % sᵢ` is node i's
//!   bucket and `xᵢ` its largest request in the window; refunds (negative true-ups) credited
//!   during the window add to this. For requests of one unit (RPM) that is under
//!   `1.01 L + n`: at most 610 for 600 per minute on five nodes.
//! * **Tokens with true-ups**: the true tokens of the requests admitted in a window exceed the
//!   above by at most the under-estimates of those settled after the window ends plus the
//!   refunds credited in it for requests admitted before it; both are bounded by the
//!   settlement delay times the share rate times the estimate error.
//!
//! # Conditions
//!
//! 1. **Delivery**: every report returned by [`SharedLimit::report`] reaches
//!    [`SharedLimit::update_share`] on every other counted node within `D` (measured on the
//!    sender's clock from the `report` call), and the transport keeps only the newest report
//!    of each peer (highest `seq`). A lost report counts as late. Reports arriving later void
//!    the guarantee for as long as they are late; the staleness rule (no raise while a peer is
//!    silent for `P + D`) limits the damage when delays are symmetric.
//! 2. **Stable membership**: every node that admits is counted by every other node, either with
//!    its latest report or, before its first one arrives, in `live_nodes` (held at the initial
//!    even split, which is what a node created with the same `live_nodes` starts at). A node
//!    that joins a running cluster calls [`SharedLimit::lower_to_floor`] right after creating
//!    its limits (a restart counts as joining). A node is dropped from
//!    the peer list and `live_nodes` only once it can no longer admit (crashed or stopped):
//!    keep passing its last report for a grace period after the failure detector gives up on
//!    it. During a partition, each side eventually drops the other and uses the whole limit:
//!    at most `L` per side.
//! 3. **Same configuration**: all nodes use the same limit, window and [`Tuning`]. A limit
//!    change reaches nodes one by one; a decrease applies at once on each node, an increase
//!    through the exchange; until all nodes have it, the bound holds for the larger of the two
//!    limits (and slots in use above a lowered limit drain as they are released).
//! 4. **Time**: `now_ms` is one millisecond clock per node (nodes' clocks need not agree, only
//!    tick at the same rate); it should not go backwards (if it does, nothing breaks, refills
//!    just pause).
//! 5. **Slots** are released with `adjust(-1)` exactly once per admitted slot.
//!
//! # Wiring
//!
//! Every report interval, for each limit: `update_share(latest reports of the other counted
//! nodes, live_nodes, now)`, then `report(now)` and send it to every other node. `report`
//! records what peers are told, so a report that will not be sent must not be asked for (not
//! asking is safe: the node just cannot raise). Keep each peer's report with the highest
//! `seq`. Create limits with the number of live nodes, or call
//! [`SharedLimit::lower_to_floor`] when peers may already be using the whole limit. Give each
//! node's limits a stable tiebreak ([`SharedLimit::with_tiebreak`], e.g. a hash of the node id).
//! [`Admitted::remaining`] and [`LimitStatus::remaining`] are this node's figures, not scaled to
//! the cluster: a conservative "you may send this many right now".
//!
//! # Measured
//!
//! In simulation (`tests/`: five nodes, reports every 100 ms delivered after 50 ms or 20–150 ms,
//! arrivals evenly spread, five simulated minutes, every sliding window checked):
//!
//! * 600 RPM at 2×, 10× and 100× overload, even or 90 % on one node: at most 608 per 60 s
//!   window (bound asserted: 612). After the first window, at least 600 per window at 10×
//!   and 100× (even or skewed), 586 (97.7 %) at 2× skewed.
//! * 90 % of a 2× overload moving from one node to another: the shares usable by the load are
//!   back above 95 % of the limit 0.96 s after the move (1.5 s after a cold start).
//! * 100 000 TPM at 10×, estimates 200–2 000 tokens trued up by −50..+20 % after 0.5–5 s:
//!   at most 102 711 true tokens per window (+2.7 %). Utilisation is 97 % with even load but
//!   75 % with 90 % of it on one node: the light nodes get a request every few seconds,
//!   larger than their one-request bucket can smooth, and lose part of their share to it.
//! * 10 slots, 90 % of a 3× overload on one node, 2–4 s holds: never more than 10 in use,
//!   89 % utilisation.

mod allocation;
mod bucket;
mod demand;
mod demarcation;
mod limit;
mod report;
mod surprise;
mod tuning;
mod view;

pub use limit::{Admitted, LimitKind, LimitStatus, Rejected, SharedLimit};
pub use report::{PeerReport, ShareReport};
pub use tuning::Tuning;

#[cfg(test)]
mod tests;
