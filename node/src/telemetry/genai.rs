//! Names from the OpenTelemetry GenAI semantic conventions
//! (<https://opentelemetry.io/docs/specs/semconv/gen-ai/>).

use crate::api::Endpoint;
use crate::config::{Preset, ProviderKind};

/// `gen_ai.operation.name` of an endpoint. Token counting has no conventional name; it gets
/// a custom one, as the conventions allow.
pub fn operation(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages => "chat",
        Endpoint::Completions => "text_completion",
        Endpoint::Embeddings => "embeddings",
        Endpoint::CountTokens => "count_tokens",
    }
}

/// `gen_ai.provider.name` of a provider: a well-known value where the conventions list one,
/// else the preset's name, else `openai_compatible`.
pub fn provider_name(kind: ProviderKind, preset: Option<Preset>) -> &'static str {
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
