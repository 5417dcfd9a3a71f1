//! Starling benchmark and test tooling.
//!
//! The main piece is [`mock`], a faithful in-process (or stand-alone, see the `starling-mock`
//! binary) imitation of the OpenAI, Azure OpenAI and Anthropic HTTP APIs. The gateway's
//! integration tests, the Python SDK suite and the benchmarks all run against it, and its
//! [`mock::Ledger`] is the ground truth of every upstream call and its cost.
//!
//! The rest is the `starling-bench` harness: an open-loop load generator ([`load`]), the
//! processes under test ([`procs`], [`targets`]), the scenarios ([`scenarios`]) and their
//! outputs ([`report`]); and the cluster-scale scenarios ([`scale`]): replication latency,
//! convergence and bandwidth of in-process `starling-cluster` clusters as they grow.

#![warn(missing_docs)]

pub mod load;
pub mod mock;
pub mod procs;
pub mod report;
pub mod scale;
pub mod scenarios;
pub mod targets;

pub use mock::{
    Fault, FaultEffect, Ledger, LedgerEntry, LedgerSummary, MockConfig, MockServer, ModelTotals,
    Outcome, PriceTable,
};
