//! The node's configuration: the TOML schema, loading, and validation.
//!
//! Loading is strict: unknown fields are errors, and every error names the field path and the
//! problem, so an operator's typo fails at start instead of silently doing something else.
//! Secrets never live in this structure; providers name an environment variable or a file
//! (see [`secrets`]).

mod observability;
pub mod secrets;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use observability::{RequestLogConfig, TracingConfig};
pub use validate::{validate, validate_open_access};

/// The embedded default configuration, used when `starling serve` gets no `--config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

/// A configuration problem, naming the field it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a field has the wrong type or is unknown.
    #[error("invalid config at `{field}`: {problem}")]
    Parse {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The file parsed, but a value is not acceptable.
    #[error("invalid config at `{field}`: {problem}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

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

/// When a governed request's usage is made durable (see `governance::usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageDurability {
    /// On disk before the response completes: no acknowledged spend is lost in a crash. Adds
    /// one group-committed fsync to each governed response.
    Acknowledged,
    /// Flushed every `usage_flush_ms` without waiting: a crash may lose the last interval of
    /// billing figures (never the budget enforcement figure).
    Batched,
}

/// Which virtual keys a member of a cluster refuses once it has heard from no peer for
/// `governance.stale_after_ms` (see docs/guarantees.md, "Revocation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailClosed {
    /// Keys in strict mode (the default): every key but those whose budgets (its own, its
    /// team's, its customer's) are all in `available` mode; a key without budgets is in strict
    /// mode. Keys in available mode stay served, so a revocation reaches an isolated node only
    /// when it reconnects.
    #[default]
    Strict,
    /// Every virtual key: nothing is admitted on state that may be out of date, so a revoked
    /// key is refused on an isolated node within `stale_after_ms`, at the price of serving no
    /// virtual key there.
    All,
}

/// How virtual keys, budgets and rate limits are enforced (see docs/governance.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// A member of a cluster that has not heard from any peer for this long (or since it
    /// started) refuses the keys `fail_closed` names, so that revocations and budgets it
    /// cannot see are not bypassed.
    pub stale_after_ms: u64,
    /// Which keys a node cut off from its peers refuses: `strict` (keys with a strict budget)
    /// or `all`.
    pub fail_closed: FailClosed,
    /// The `max_tokens` a request gets when it sets none and a budget applies: its reservation
    /// needs an output bound. Lower if the budget's remainder allows less.
    pub default_max_tokens: u64,
    /// How far ahead, in spend time, a node keeps budget rights debited for its own use.
    pub refill_horizon_ms: u64,
    /// Smallest debit of budget rights, in micro-dollars (fewer, larger durable writes).
    pub min_chunk_micros: u64,
    /// A node hands its unused debited rights back after this long without traffic on them.
    pub idle_refund_ms: u64,
    /// How long before a period starts its budget is minted.
    pub mint_lead_ms: u64,
    /// How long a request waits at most for rights from peers on a cold start.
    pub rights_wait_ms: u64,
    /// How often nodes exchange rate-limit demand and shares.
    pub rate_report_interval_ms: u64,
    /// How often usage counters are flushed into the replica (`batched` durability), and the
    /// longest a flush waits in any mode.
    pub usage_flush_ms: u64,
    /// When a request's usage (the billing figure) must be on disk: `acknowledged` (before
    /// its response completes) or `batched` (within `usage_flush_ms`, lost in a crash).
    pub usage_durability: UsageDurability,
    /// Label budget metrics per key, team and customer (unbounded label cardinality).
    pub per_key_metrics: bool,
    /// **Breaks the strict-budget guarantee; for fault tests only.** Admits strict-budget
    /// requests without holding rights, so the Jepsen harness can show that its budget
    /// checker catches an overspend. Undocumented on purpose: a node with this set refuses to
    /// start unless its cluster secret is a test secret (`starling cluster keygen --test`),
    /// so it can never join a production cluster, and it logs an error at start.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_skip_rights_check: bool,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            stale_after_ms: 10_000,
            fail_closed: FailClosed::Strict,
            default_max_tokens: 4_096,
            refill_horizon_ms: 2_000,
            min_chunk_micros: 10_000,
            idle_refund_ms: 10_000,
            mint_lead_ms: 300_000,
            rights_wait_ms: 500,
            rate_report_interval_ms: 100,
            usage_flush_ms: 100,
            usage_durability: UsageDurability::Acknowledged,
            per_key_metrics: false,
            unsafe_skip_rights_check: false,
        }
    }
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

/// Which wire protocol and URL scheme a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// api.openai.com.
    Openai,
    /// api.anthropic.com.
    Anthropic,
    /// Azure OpenAI: deployment URLs, `api-key` header, `api-version` query.
    Azure,
    /// Any server speaking the OpenAI API (vLLM, Ollama, Groq, ...).
    OpenaiCompatible,
    /// A local provider that answers from inside the gateway; needs no account.
    Demo,
}

/// Base URL presets for well-known OpenAI-compatible servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// vLLM's OpenAI server on its default port.
    Vllm,
    /// Ollama's OpenAI-compatible endpoint on its default port.
    Ollama,
    /// Groq.
    Groq,
    /// Together AI.
    Together,
    /// Mistral La Plateforme.
    Mistral,
    /// DeepSeek.
    Deepseek,
    /// OpenRouter.
    Openrouter,
    /// Fireworks AI.
    Fireworks,
}

impl Preset {
    /// The preset's base URL, including the API version path.
    pub fn base_url(self) -> &'static str {
        match self {
            Preset::Vllm => "http://localhost:8000/v1",
            Preset::Ollama => "http://localhost:11434/v1",
            Preset::Groq => "https://api.groq.com/openai/v1",
            Preset::Together => "https://api.together.xyz/v1",
            Preset::Mistral => "https://api.mistral.ai/v1",
            Preset::Deepseek => "https://api.deepseek.com/v1",
            Preset::Openrouter => "https://openrouter.ai/api/v1",
            Preset::Fireworks => "https://api.fireworks.ai/inference/v1",
        }
    }
}

/// One upstream provider account or endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name, used in `provider/model` names, deployments and metrics.
    pub name: String,
    /// Wire protocol.
    pub kind: ProviderKind,
    /// For `openai_compatible`: a well-known server whose base URL to use.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// Base URL. OpenAI-style URLs include `/v1`; Anthropic's and Azure's do not.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File holding the API key (surrounding whitespace is trimmed).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Azure `api-version`, or the `anthropic-version` header for Anthropic.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Model name patterns this provider serves without a `[[models]]` entry (`*` wildcards).
    #[serde(default)]
    pub models: Vec<String>,
    /// Skip this provider (with a log line) when its key is not set, instead of failing.
    #[serde(default)]
    pub optional: bool,
    /// Extra non-secret headers sent upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Timeouts for this provider.
    #[serde(default)]
    pub timeouts: TimeoutConfig,
}

/// Upstream timeouts, in milliseconds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConfig {
    /// TCP and TLS connection set-up.
    pub connect_ms: u64,
    /// From sending the request to the first byte of the response body.
    pub first_byte_ms: u64,
    /// The whole upstream call, including streaming the body.
    pub total_ms: u64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            connect_ms: 5_000,
            first_byte_ms: 120_000,
            total_ms: 600_000,
        }
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
    /// `max_tokens` sent to Anthropic when an OpenAI-format client gave none.
    pub default_max_tokens: u32,
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
            default_max_tokens: 4_096,
            aliases: BTreeMap::new(),
        }
    }
}

/// Price overrides, in USD per million tokens.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    /// Per model name (exact or prefix, like the built-in table).
    pub models: BTreeMap<String, crate::pricing::PriceEntry>,
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
