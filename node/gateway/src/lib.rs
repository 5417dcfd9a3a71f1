//! Starling: an LLM gateway node. This crate is the gateway itself (the `starling` binary
//! and what it serves); the wire formats, providers and governance are crates of their own
//! (`starling_wire`, `starling_providers`, `starling_governance`; see docs/architecture.md).
//!
//! Module map: [`config`] loads and checks the TOML file; [`server`] binds listeners and
//! routes HTTP; [`listener`] accepts connections within the connection, header and body
//! limits ([`capacity`] counts connections and requests in flight); [`api`] reads request
//! bodies and answers errors in the client's dialect; [`admission`] authenticates;
//! [`routing`] resolves models to deployments; [`proxy`] runs the request path, a stage per
//! module; [`metrics`] exports Prometheus metrics; [`cluster`] starts the cluster member from
//! the config; [`admin`] serves `/admin/v1`; [`telemetry`] exports OpenTelemetry traces;
//! [`request_log`] keeps recent request records; `time` renders and reads RFC 3339 times.

pub mod admin;
pub mod admission;
pub mod api;
pub mod capacity;
pub mod cluster;
pub mod config;
pub mod listener;
pub mod metrics;
pub mod proxy;
pub mod request_log;
pub mod routing;
pub mod server;
pub mod telemetry;
mod time;
