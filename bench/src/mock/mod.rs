//! A faithful mock of the OpenAI, Azure OpenAI and Anthropic HTTP APIs.
//!
//! The mock speaks the public wire formats (bodies, SSE streams, errors, headers) closely enough
//! that the official Python SDKs parse everything it sends. Its behaviour is deterministic and
//! scriptable from inside the prompt (see [`directives`]), so tests that go through a gateway,
//! which forwards bodies but not custom headers, can still steer it. Every call it serves is
//! recorded in a [`Ledger`] with token counts and cost: the ground truth for billing checks.
//!
//! Layout, one concern per module:
//! - [`server`]: the listener, connection handling and [`MockServer`] handle;
//! - `router`: path dispatch and the `/_mock/*` control API;
//! - `call`: the per-request flow shared by all APIs (auth, ledger ticket, faults, pacing);
//! - `openai`, `completions`, `embeddings`, `models`, `azure`, `anthropic`: the APIs;
//! - `script`: what to answer (text, tool calls, thinking) from a neutral request;
//! - [`directives`], [`faults`], [`ledger`], [`pricing`], [`tokens`]: the scripting inputs and
//!   the accounting;
//! - `sse`, `http`, `errors`, `fields`, `jsonfill`, `ids`, `detrand`: helpers.

mod anthropic;
mod azure;
mod call;
mod completions;
mod config;
mod detrand;
pub mod directives;
mod embeddings;
mod errors;
pub mod faults;
mod fields;
mod http;
mod ids;
mod jsonfill;
pub mod ledger;
mod models;
mod openai;
pub mod pricing;
mod router;
mod script;
pub mod server;
mod sse;
pub mod tokens;

pub use config::MockConfig;
pub use faults::{Fault, FaultEffect};
pub use ledger::{Ledger, LedgerEntry, LedgerSummary, ModelTotals, Outcome};
pub use pricing::{ModelPrice, PriceError, PriceTable};
pub use server::MockServer;
