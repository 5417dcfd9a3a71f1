//! Starling benchmark and test tooling.
//!
//! The main piece is [`mock`], a faithful in-process (or stand-alone, see the `starling-mock`
//! binary) imitation of the OpenAI, Azure OpenAI and Anthropic HTTP APIs. The gateway's
//! integration tests, the Python SDK suite and the benchmarks all run against it, and its
//! [`mock::Ledger`] is the ground truth of every upstream call and its cost.

#![warn(missing_docs)]

pub mod mock;

pub use mock::{
    Fault, FaultEffect, Ledger, LedgerEntry, LedgerSummary, MockConfig, MockServer, ModelTotals,
    Outcome, PriceTable,
};
