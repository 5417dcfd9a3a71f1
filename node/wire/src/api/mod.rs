//! The client-facing API surface: which endpoints exist, in which provider dialect, and how
//! request bodies are parsed and checked and errors are written in that dialect.

pub mod error;
pub mod json;
pub mod validate;

pub use error::{ApiError, ErrorKind};

/// The API dialect a client speaks; errors and streams are written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFormat {
    /// OpenAI's REST API.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

/// A client-facing endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
}

impl Endpoint {
    /// The dialect of this endpoint.
    pub fn format(self) -> ApiFormat {
        match self {
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Embeddings => {
                ApiFormat::OpenAi
            }
            Endpoint::Messages | Endpoint::CountTokens => ApiFormat::Anthropic,
        }
    }

    /// A short, bounded label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
        }
    }

    /// The path below the provider's base URL (OpenAI-style bases include `/v1`).
    pub fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Messages => "/v1/messages",
            Endpoint::CountTokens => "/v1/messages/count_tokens",
        }
    }

    /// Whether the endpoint generates output tokens (and so has a `max_tokens` to bound).
    pub fn has_output(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Messages
        )
    }

    /// Whether the request body may ask for a stream.
    pub fn can_stream(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Messages
        )
    }
}
