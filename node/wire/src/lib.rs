//! Starling's wire formats: the APIs clients and providers speak, as data.
//!
//! [`api`] names the client-facing endpoints and their dialects, validates request bodies and
//! writes errors in each dialect; [`translate`] converts requests, responses, streams and
//! error bodies between the OpenAI and Anthropic APIs, parses SSE and reads usage;
//! [`model_pattern`] matches model names against `*` patterns; [`tiktoken_models`] says which
//! models bill with which tiktoken encoding.
//!
//! This crate is pure: no runtime, no HTTP client, no configuration. Every API the gateway
//! learns to speak lands here first, with its tests.

pub mod api;
pub mod model_pattern;
pub mod tiktoken_models;
pub mod translate;

#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
