//! Shapes the upstream request body for one deployment: pass it through untouched where the
//! client and provider speak the same dialect, or translate it where they do not.

use bytes::Bytes;
use serde_json::{Value, json};

use super::context::RequestCtx;
use crate::routing::Deployment;
use starling_wire::api::{ApiError, ApiFormat, Endpoint, ErrorKind};
use starling_wire::translate;

/// How the response must be converted on its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// Same dialect both ways.
    None,
    /// OpenAI chat client, Anthropic provider.
    ChatViaMessages,
    /// Anthropic messages client, OpenAI-compatible provider.
    MessagesViaChat,
}

/// An upstream request ready to send.
#[derive(Debug)]
pub struct Prepared {
    /// The provider endpoint to call.
    pub endpoint: Endpoint,
    /// The body to send.
    pub body: Bytes,
    /// How to convert the response.
    pub translation: Translation,
    /// The gateway asked for `stream_options.include_usage` on the client's behalf, so the
    /// usage-only chunk must not reach a client that did not ask for it.
    pub strip_usage_chunk: bool,
}

/// Builds the upstream request for `deployment`.
pub fn prepare(
    ctx: &RequestCtx,
    raw: &Bytes,
    body: &Value,
    deployment: &Deployment,
    default_max_tokens: u32,
) -> Result<Prepared, ApiError> {
    let provider = &deployment.provider;
    let model = deployment.upstream_model.as_str();
    if provider.supports(ctx.endpoint) {
        let wants_usage =
            ctx.meta.stream && provider.wire == ApiFormat::OpenAi && !ctx.meta.include_usage;
        let body = if model == ctx.meta.model && !wants_usage {
            // The common case: forward the client's bytes exactly, unknown fields and all.
            raw.clone()
        } else {
            let mut rewritten = body.clone();
            if let Some(object) = rewritten.as_object_mut() {
                object.insert("model".to_owned(), Value::String(model.to_owned()));
                if wants_usage {
                    let options = object.entry("stream_options").or_insert_with(|| json!({}));
                    if let Some(options) = options.as_object_mut() {
                        options.insert("include_usage".to_owned(), Value::Bool(true));
                    } else {
                        *options = json!({"include_usage": true});
                    }
                }
            }
            Bytes::from(serde_json::to_vec(&rewritten).map_err(internal)?)
        };
        return Ok(Prepared {
            endpoint: ctx.endpoint,
            body,
            translation: Translation::None,
            strip_usage_chunk: wants_usage,
        });
    }
    let (endpoint, translated, translation) = match ctx.endpoint {
        Endpoint::ChatCompletions => (
            Endpoint::Messages,
            translate::chat_request_to_messages(body, model, default_max_tokens),
            Translation::ChatViaMessages,
        ),
        Endpoint::Messages => (
            Endpoint::ChatCompletions,
            translate::messages_request_to_chat(body, model),
            Translation::MessagesViaChat,
        ),
        other => {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "model `{}` is served by provider `{}`, which has no {} endpoint",
                    ctx.meta.model,
                    provider.name,
                    other.label()
                ),
            )
            .with_param("model"));
        }
    };
    let translated = translated.map_err(|e| {
        let kind = if e.status() == 400 {
            ErrorKind::InvalidRequest
        } else {
            ErrorKind::Upstream
        };
        ApiError::new(kind, e.to_string()).with_param(e.path())
    })?;
    Ok(Prepared {
        endpoint,
        body: Bytes::from(serde_json::to_vec(&translated).map_err(internal)?),
        translation,
        strip_usage_chunk: false,
    })
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::new(
        ErrorKind::Internal,
        format!("could not encode the upstream request: {e}"),
    )
}
