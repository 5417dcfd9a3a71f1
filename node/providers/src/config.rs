//! Provider configuration: the `[[providers]]` entries of the config file, and the error
//! every configuration section reports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
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

/// `gen_ai.provider.name` of a provider (OpenTelemetry's GenAI semantic conventions): a well-known value where the conventions list one,
/// else the preset's name, else `openai_compatible`.
pub fn genai_provider_name(kind: ProviderKind, preset: Option<Preset>) -> &'static str {
    match (kind, preset) {
        (ProviderKind::Openai, _) => "openai",
        (ProviderKind::Anthropic, _) => "anthropic",
        (ProviderKind::Azure, _) => "azure.ai.openai",
        (ProviderKind::Demo, _) => "starling.demo",
        (ProviderKind::OpenaiCompatible, Some(preset)) => match preset {
            Preset::Groq => "groq",
            Preset::Mistral => "mistral_ai",
            Preset::Deepseek => "deepseek",
            Preset::Vllm => "vllm",
            Preset::Ollama => "ollama",
            Preset::Together => "together",
            Preset::Openrouter => "openrouter",
            Preset::Fireworks => "fireworks",
        },
        (ProviderKind::OpenaiCompatible, None) => "openai_compatible",
    }
}
