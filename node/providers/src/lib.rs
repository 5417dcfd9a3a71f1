//! Upstream providers: how to reach each one, authenticate, and shape its URLs.

pub mod config;
pub mod demo;
pub mod secrets;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use starling_wire::api::{ApiFormat, Endpoint};
use starling_wire::model_pattern::glob_match;

use crate::config::{ConfigError, ProviderConfig, ProviderKind, TimeoutConfig};
use crate::secrets::Secret;

/// The `anthropic-version` sent when neither the client nor the config names one.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// A response body arriving from upstream, chunk by chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamFailure>> + Send>>;

/// An upstream response whose headers have arrived.
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, not yet read.
    pub body: ByteStream,
}

/// Why an upstream call failed without an HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamFailure {
    /// No connection could be made.
    #[error("could not connect to {provider}: {detail}")]
    Connect {
        /// Provider name.
        provider: Arc<str>,
        /// What the client library said.
        detail: String,
    },
    /// A timeout expired.
    #[error("{provider} timed out waiting for {stage}")]
    Timeout {
        /// Provider name.
        provider: Arc<str>,
        /// What was awaited: `first byte` or `completion`.
        stage: &'static str,
    },
    /// The connection broke or the response could not be read.
    #[error("{provider} broke the connection: {detail}")]
    Broken {
        /// Provider name.
        provider: Arc<str>,
        /// What happened.
        detail: String,
    },
}

impl UpstreamFailure {
    /// A short name for the failure (`error.type` in traces).
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamFailure::Connect { .. } => "connect_error",
            UpstreamFailure::Timeout { .. } => "timeout",
            UpstreamFailure::Broken { .. } => "connection_broken",
        }
    }
}

/// A configured provider, ready to send requests.
pub struct Provider {
    /// Unique name from the config.
    pub name: Arc<str>,
    /// The configured kind.
    pub kind: ProviderKind,
    /// The dialect it speaks.
    pub wire: ApiFormat,
    /// Model name patterns it serves without a `[[models]]` entry.
    pub patterns: Vec<String>,
    /// Upstream timeouts.
    pub timeouts: TimeoutConfig,
    /// Its `gen_ai.provider.name` for traces.
    pub genai_name: &'static str,
    base_url: String,
    api_key: Option<Secret>,
    api_version: Option<String>,
    extra_headers: HeaderMap,
    client: reqwest::Client,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Builds a provider from its config and its resolved key.
    pub fn build(
        index: usize,
        config: &ProviderConfig,
        api_key: Option<Secret>,
    ) -> Result<Self, ConfigError> {
        let wire = match config.kind {
            ProviderKind::Anthropic => ApiFormat::Anthropic,
            _ => ApiFormat::OpenAi,
        };
        let base_url = match (&config.base_url, config.kind, config.preset) {
            (Some(url), _, _) => url.clone(),
            (None, ProviderKind::Openai, _) => "https://api.openai.com/v1".to_owned(),
            (None, ProviderKind::Anthropic, _) => "https://api.anthropic.com".to_owned(),
            (None, ProviderKind::OpenaiCompatible, Some(preset)) => preset.base_url().to_owned(),
            (None, ProviderKind::Demo, _) => String::new(),
            (None, _, _) => {
                return Err(ConfigError::invalid(
                    format!("providers[{index}].base_url"),
                    "this provider kind needs a base_url",
                ));
            }
        };
        let mut extra_headers = HeaderMap::new();
        for (name, value) in &config.headers {
            // Validated at load; skip rather than panic if that ever changes.
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                extra_headers.insert(n, v);
            }
        }
        ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.timeouts.connect_ms))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| {
                ConfigError::invalid(
                    format!("providers[{index}]"),
                    format!("cannot build an HTTP client: {e}"),
                )
            })?;
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            kind: config.kind,
            wire,
            patterns: config.models.clone(),
            timeouts: config.timeouts,
            genai_name: crate::config::genai_provider_name(config.kind, config.preset),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            api_version: config.api_version.clone(),
            extra_headers,
            client,
        })
    }

    /// The base URL requests go to (empty for the demo provider).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Whether a pattern of this provider matches `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, model))
    }

    /// Whether this provider implements `endpoint` natively.
    pub fn supports(&self, endpoint: Endpoint) -> bool {
        match self.wire {
            ApiFormat::OpenAi => !matches!(endpoint, Endpoint::Messages | Endpoint::CountTokens),
            ApiFormat::Anthropic => matches!(endpoint, Endpoint::Messages | Endpoint::CountTokens),
        }
    }

    /// The upstream URL of `endpoint` for `model`.
    pub fn url(&self, endpoint: Endpoint, model: &str) -> String {
        match self.kind {
            ProviderKind::Azure => format!(
                "{}/openai/deployments/{}{}?api-version={}",
                self.base_url,
                model,
                endpoint.upstream_path(),
                self.api_version.as_deref().unwrap_or_default()
            ),
            _ => format!("{}{}", self.base_url, endpoint.upstream_path()),
        }
    }

    /// Sends `body` to `endpoint` and waits for the response headers, within the first-byte
    /// timeout. The body is left unread. `trace_headers` (W3C trace context, empty when
    /// tracing is off) go along.
    pub async fn send(
        &self,
        endpoint: Endpoint,
        model: &str,
        body: Bytes,
        client_headers: &HeaderMap,
        request_id: &str,
        trace_headers: &HeaderMap,
    ) -> Result<UpstreamResponse, UpstreamFailure> {
        if self.kind == ProviderKind::Demo {
            return Ok(demo::respond(endpoint, model, &body));
        }
        let mut request = self
            .client
            .post(self.url(endpoint, model))
            .headers(self.extra_headers.clone());
        if !trace_headers.is_empty() {
            request = request.headers(trace_headers.clone());
        }
        let mut request = request
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-starling-request-id", request_id)
            .body(body);
        request = self.authenticate(request, client_headers);
        let first_byte = Duration::from_millis(self.timeouts.first_byte_ms);
        let response = match tokio::time::timeout(first_byte, request.send()).await {
            Err(_) => {
                return Err(UpstreamFailure::Timeout {
                    provider: self.name.clone(),
                    stage: "first byte",
                });
            }
            Ok(Err(e)) => return Err(self.classify(&e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let headers = response.headers().clone();
        let provider = self.name.clone();
        let body = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| UpstreamFailure::Broken {
                provider: provider.clone(),
                detail: e.to_string(),
            })
        });
        Ok(UpstreamResponse {
            status,
            headers,
            body: Box::pin(body),
        })
    }

    fn authenticate(
        &self,
        request: reqwest::RequestBuilder,
        client_headers: &HeaderMap,
    ) -> reqwest::RequestBuilder {
        let key = self.api_key.as_ref().map(Secret::expose);
        match self.kind {
            ProviderKind::Anthropic => {
                let version = client_headers
                    .get("anthropic-version")
                    .and_then(|v| v.to_str().ok())
                    .or(self.api_version.as_deref())
                    .unwrap_or(DEFAULT_ANTHROPIC_VERSION);
                let mut request = request.header("anthropic-version", version);
                if let Some(beta) = client_headers.get("anthropic-beta") {
                    request = request.header("anthropic-beta", beta.clone());
                }
                match key {
                    Some(key) => request.header("x-api-key", key),
                    None => request,
                }
            }
            ProviderKind::Azure => match key {
                Some(key) => request.header("api-key", key),
                None => request,
            },
            _ => match key {
                Some(key) => request.bearer_auth(key),
                None => request,
            },
        }
    }

    fn classify(&self, error: &reqwest::Error) -> UpstreamFailure {
        if error.is_timeout() {
            UpstreamFailure::Timeout {
                provider: self.name.clone(),
                stage: "first byte",
            }
        } else if error.is_connect() {
            UpstreamFailure::Connect {
                provider: self.name.clone(),
                detail: error_chain(error),
            }
        } else {
            UpstreamFailure::Broken {
                provider: self.name.clone(),
                detail: error_chain(error),
            }
        }
    }
}

/// Installs ring as rustls' process-wide crypto provider, once. reqwest is built without a
/// provider of its own so that only ring is compiled in (see docs/architecture.md).
pub fn ensure_crypto_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// reqwest's top-level message hides the cause ("error sending request"); include it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderConfig;

    /// The providers of a config file's text.
    #[derive(serde::Deserialize)]
    struct File {
        providers: Vec<ProviderConfig>,
    }

    fn provider(toml: &str) -> Provider {
        let file: File = toml::from_str(toml).expect("valid");
        let p = file.providers.first().expect("one provider");
        Provider::build(0, p, None).expect("builds")
    }

    #[test]
    fn urls_per_kind() {
        let openai = provider("[[providers]]\nname = \"o\"\nkind = \"openai\"\n");
        assert_eq!(
            openai.url(Endpoint::ChatCompletions, "gpt-4o"),
            "https://api.openai.com/v1/chat/completions"
        );
        let anthropic = provider("[[providers]]\nname = \"a\"\nkind = \"anthropic\"\n");
        assert_eq!(
            anthropic.url(Endpoint::Messages, "claude"),
            "https://api.anthropic.com/v1/messages"
        );
        let azure = provider(
            "[[providers]]\nname = \"z\"\nkind = \"azure\"\nbase_url = \"https://r.openai.azure.com/\"\napi_version = \"2024-10-21\"\n",
        );
        assert_eq!(
            azure.url(Endpoint::Embeddings, "emb-deploy"),
            "https://r.openai.azure.com/openai/deployments/emb-deploy/embeddings?api-version=2024-10-21"
        );
        let groq = provider(
            "[[providers]]\nname = \"g\"\nkind = \"openai_compatible\"\npreset = \"groq\"\n",
        );
        assert_eq!(
            groq.url(Endpoint::ChatCompletions, "llama"),
            "https://api.groq.com/openai/v1/chat/completions"
        );
        assert_eq!(groq.wire, ApiFormat::OpenAi);
        assert!(!groq.supports(Endpoint::Messages));
        assert!(anthropic.supports(Endpoint::CountTokens));
    }
}
