//! The node's configuration: the TOML schema, loading, and validation.
//!
//! Loading is strict: unknown fields are errors, and every error names the field path and the
//! problem, so an operator's typo fails at start instead of silently doing something else.
//! Secrets never live in this structure; providers name an environment variable or a file
//! (see [`secrets`]).

mod observability;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use observability::{RequestLogConfig, TracingConfig};
pub use starling_governance::config::{FailClosed, GovernanceConfig, UsageDurability};
pub use starling_providers::config::{
    ConfigError, Preset, ProviderConfig, ProviderKind, TimeoutConfig,
};
pub use starling_providers::secrets;
pub use validate::{validate, validate_open_access};

/// The embedded default configuration, used when `starling serve` gets no `--config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and request limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Client authentication.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Upstream providers: where requests go and with which credentials.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Public model names with their deployments and fallbacks.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Retries, backoff, cooldown and aliases.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Overrides and additions to the built-in price table.
    #[serde(default)]
    pub pricing: PricingConfig,
    /// Log output.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Clustering: gossip, replication, the data dir. Off unless `node_id` is set.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// The admin API.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Virtual keys, budgets and rate limits (active when clustering is on).
    #[serde(default)]
    pub governance: GovernanceConfig,
    /// OpenTelemetry traces over OTLP (off unless an endpoint is set).
    #[serde(default)]
    pub tracing: TracingConfig,
    /// Recent request records: the admin API's ring and optional JSON-lines files.
    #[serde(default)]
    pub request_log: RequestLogConfig,
}

/// Clustering settings. The node joins a cluster when `node_id` is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// This node's id, stable across restarts (`[A-Za-z0-9._-]`, at most 64 bytes).
    pub node_id: Option<String>,
    /// Cluster name; nodes of another cluster are refused by gossip.
    pub cluster_id: String,
    /// QUIC address for gossip and replication.
    pub gossip_listen: SocketAddr,
    /// The address peers reach this node at, if not `gossip_listen` (e.g. behind NAT).
    pub gossip_advertise: Option<SocketAddr>,
    /// Seeds, `ip:port` or `host:port`; DNS names are re-resolved every 5 s.
    pub seeds: Vec<String>,
    /// How many nodes the cluster is meant to have. `1` declares a one-node cluster (no
    /// seeds): it never fails closed and refuses to start on damaged data. More than one makes
    /// the node a member from its first start, even without seeds, and holds its automatic
    /// reclaim of a wiped life's budget rights until it has caught up with that many nodes.
    /// Unset, a node is a member once it has seeds, has heard from a peer, or holds another
    /// node's writes.
    pub expect_nodes: Option<usize>,
    /// Where the replica is kept.
    pub data_dir: PathBuf,
    /// Environment variable holding the shared cluster secret (`starling cluster keygen`).
    pub secret_env: Option<String>,
    /// File holding the shared cluster secret.
    pub secret_file: Option<PathBuf>,
    /// Directory with `ca.pem`, `node.pem`, `node.key` (operator CA mode, instead of a secret).
    pub ca_dir: Option<PathBuf>,
    /// Gossip round interval.
    pub gossip_interval_ms: u64,
    /// Anti-entropy interval.
    pub sync_interval_ms: u64,
    /// Snapshot the replica after this many logged deltas (once the log has also grown to
    /// half the last snapshot's size), which bounds replay time on restart.
    pub snapshot_every: u64,
    /// How long gossip remembers a dead member (its counts stay in the replica regardless).
    pub dead_node_grace_secs: u64,
    /// Deleted catalog entries are forgotten only once every member has seen the delete and
    /// it is at least this old.
    pub tombstone_min_age_secs: u64,
    /// Node ids cut off from the cluster although their certificates verify (a lost or
    /// compromised node, without re-keying): their connections are refused in both
    /// directions after the handshake. Same rules as `node_id`; not this node's own id.
    pub revoked_nodes: Vec<String>,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            node_id: None,
            cluster_id: "starling".to_owned(),
            gossip_listen: SocketAddr::from(([0, 0, 0, 0], 7946)),
            gossip_advertise: None,
            seeds: Vec::new(),
            expect_nodes: None,
            data_dir: PathBuf::from("starling-data"),
            secret_env: None,
            secret_file: None,
            ca_dir: None,
            gossip_interval_ms: 100,
            sync_interval_ms: 500,
            snapshot_every: 10_000,
            dead_node_grace_secs: 3_600,
            tombstone_min_age_secs: 86_400,
            revoked_nodes: Vec::new(),
        }
    }
}

/// The admin API (`/admin/v1`), guarded by a bearer token. With neither field set, the token
/// is read from `STARLING_ADMIN_TOKEN`; with no token at all, the admin API is off.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Environment variable holding the admin token.
    pub token_env: Option<String>,
    /// File holding the admin token.
    pub token_file: Option<PathBuf>,
}

/// Listeners and request limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Serve `/metrics` on this separate address instead of the main one.
    pub metrics_listen: Option<SocketAddr>,
    /// Largest accepted request body, in bytes (larger gets 413).
    pub max_body_bytes: usize,
    /// Deepest accepted JSON nesting in a request body (deeper gets 400).
    pub max_json_depth: usize,
    /// Largest upstream non-streaming response body the gateway buffers, in bytes.
    pub max_upstream_body_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGTERM before the node exits.
    pub shutdown_grace_secs: u64,
    /// A connection must deliver a request's headers within this many milliseconds (also the
    /// longest an idle keep-alive connection is kept), else it is closed.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive whole within this many milliseconds of its headers, else
    /// it gets a 408 and its connection is closed.
    pub body_read_timeout_ms: u64,
    /// Most connections open at once per listener; more are closed as they are accepted.
    pub max_connections: usize,
    /// Most API requests served at once; more get a 503 with `retry-after` at once.
    pub max_requests_in_flight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            max_body_bytes: 32 * 1024 * 1024,
            max_json_depth: 64,
            max_upstream_body_bytes: 64 * 1024 * 1024,
            shutdown_grace_secs: 30,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            max_connections: 10_000,
            max_requests_in_flight: 4_096,
        }
    }
}

/// Client authentication.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Static client keys.
    pub keys: Vec<String>,
    /// Open access: admit requests that present no key, or a key that is neither a virtual
    /// key nor a static one, with no budget or limit. Unset, access is open only on a single
    /// node (no `[cluster]`, so no virtual keys) with no static keys, and only on a loopback
    /// address: a node listening anywhere else refuses to start unless this is `true`.
    pub open: Option<bool>,
}

impl AuthConfig {
    /// Whether the config leaves access open without saying so: no static keys, no cluster
    /// (hence no virtual keys), and `open` unset.
    pub fn open_by_default(&self, clustered: bool) -> bool {
        self.open.is_none() && self.keys.is_empty() && !clustered
    }
}

/// A public model name and where it is served.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients send.
    pub name: String,
    /// Where the model runs; traffic is split by weight.
    pub deployments: Vec<DeploymentConfig>,
    /// Other public model names to try, in order, when every attempt at this one failed.
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

/// One place a model runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Name of a configured provider.
    pub provider: String,
    /// The model name the provider knows (for Azure, the deployment name).
    pub model: String,
    /// Relative share of traffic.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// Retries, backoff, cooldown and aliases.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Retries per model after the first attempt, on 429, 5xx and connection errors.
    pub retries: u32,
    /// First backoff delay; it doubles per retry, with full jitter.
    pub backoff_initial_ms: u64,
    /// Largest backoff delay, and the largest upstream `retry-after` the gateway waits out.
    pub backoff_max_ms: u64,
    /// How long a failing deployment is skipped when others are available.
    pub cooldown_ms: u64,
    /// `max_tokens` sent to Anthropic when an OpenAI-format client gave none (Anthropic
    /// requires one). Also read as `default_max_tokens`, its earlier name.
    #[serde(alias = "default_max_tokens")]
    pub anthropic_default_max_tokens: u32,
    /// Alternative names for public model names, e.g. `fast = "gpt-4o-mini"`.
    pub aliases: BTreeMap<String, String>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff_initial_ms: 100,
            backoff_max_ms: 5_000,
            cooldown_ms: 5_000,
            anthropic_default_max_tokens: 4_096,
            aliases: BTreeMap::new(),
        }
    }
}

/// Price overrides, in USD per million tokens.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    /// Per model name (exact or prefix, like the built-in table).
    pub models: BTreeMap<String, starling_governance::pricing::PriceEntry>,
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `starling=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Parses and validates a configuration from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::de::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
            field: "(file)".to_owned(),
            problem: describe_toml_error(text, &e),
        })?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ConfigError::Parse {
                field,
                problem: describe_toml_error(text, e.inner()),
            }
        })?;
        validate(&config)?;
        Ok(config)
    }

    /// Reads, parses and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::from_toml(DEFAULT_CONFIG_TOML)
    }

    /// The configuration as TOML, with client keys redacted, for `--print-config`.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        let mut shown = self.clone();
        for key in &mut shown.auth.keys {
            *key = secrets::redact(key);
        }
        // Export headers usually carry a vendor's API key. Plain ASCII, so that the output
        // still loads as a config.
        for value in shown.tracing.headers.values_mut() {
            "[redacted]".clone_into(value);
        }
        toml::to_string_pretty(&shown)
    }
}

/// The error's message with the line it points at, without toml's multi-line source excerpt.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    match error.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(1, |before| before.matches('\n').count() + 1);
            format!("{message} (line {line})")
        }
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod generated_tests;
#[cfg(test)]
mod tests;
