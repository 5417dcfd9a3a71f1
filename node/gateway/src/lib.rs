//! Starling: an LLM gateway node.
//!
//! Module map (see docs/architecture.md): [`config`] loads and checks the TOML file;
//! [`server`] binds listeners and routes HTTP; [`listener`] accepts connections within the
//! connection, header and body limits ([`capacity`] counts connections and requests in flight); [`api`] owns the client dialects (request
//! reading, validation, error shapes); [`admission`] authenticates and admits; [`routing`]
//! resolves models to deployments; [`providers`] talks to upstreams; [`proxy`] runs the request
//! path; [`translate`] converts between OpenAI and Anthropic formats; [`pricing`] prices usage;
//! [`metrics`] exports Prometheus metrics; [`cluster`] starts the cluster member from the config;
//! [`admin`] serves `/admin/v1`; [`governance`] owns virtual keys, budgets and rate limits;
//! [`telemetry`] exports OpenTelemetry traces; [`request_log`] keeps recent request records.

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
