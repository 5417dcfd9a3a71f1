//! Jepsen-style fault tests for Starling.
//!
//! The harness runs real `starling` processes, one per network namespace, sends client load
//! through them to the mock provider (whose ledger is the ground truth of every upstream call),
//! injects faults on a seeded schedule, records every client operation, and after a final heal
//! checks the guarantees of docs/guarantees.md against the ledger and the nodes' state.

pub mod check;
pub mod client;
pub mod history;
pub mod keys;
pub mod nemesis;
pub mod net;
pub mod nodes;
pub mod plot;
pub mod report;
pub mod run;
pub mod storage;
pub mod workload;
