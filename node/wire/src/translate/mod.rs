//! Wire-format translation between the OpenAI Chat Completions API and the
//! Anthropic Messages API, in both directions, for requests, responses, SSE
//! streams and error bodies.
//!
//! The gateway speaks both APIs to clients and calls providers that speak
//! either. When the client's format differs from the provider's:
//!
//! | client    | provider  | module                                | request                      | response                      | stream                      |
//! |-----------|-----------|---------------------------------------|------------------------------|-------------------------------|-----------------------------|
//! | OpenAI    | Anthropic | [`openai_client_anthropic_provider`]  | [`chat_request_to_messages`] | [`messages_response_to_chat`] | [`AnthropicToOpenAiStream`] |
//! | Anthropic | OpenAI    | [`anthropic_client_openai_provider`]  | [`messages_request_to_chat`] | [`chat_response_to_messages`] | [`OpenAiToAnthropicStream`] |
//!
//! A module per pairing of client and provider dialects; in it, `request.rs` translates the
//! client's request, `response.rs` and `stream.rs` the provider's answers.
//!
//! Everything here treats its input as untrusted: no panics, no indexing,
//! every malformed client field is reported as a [`TranslateError`] that
//! names the JSON path of the field, so the gateway can answer 400 with it.
//! Inputs are borrowed (`&Value`, `&SseEvent`) and outputs are built
//! directly; the stream translators serialize borrowed structs into a reused
//! buffer rather than building `Value` trees per chunk.

use std::borrow::Cow;

use bytes::Bytes;

pub mod anthropic_client_openai_provider;
pub mod errors;
pub mod openai_client_anthropic_provider;
pub mod sse;
pub mod usage;
mod util;

#[cfg(test)]
mod tests;

pub use anthropic_client_openai_provider::{
    OpenAiToAnthropicStream, chat_response_to_messages, messages_request_to_chat,
};
pub use errors::{anthropic_error_to_openai, openai_error_to_anthropic};
pub use openai_client_anthropic_provider::{
    AnthropicToOpenAiStream, chat_request_to_messages, messages_response_to_chat,
};
pub use sse::{
    FrameEncoder, SseError, SseEvent, SseParser, anthropic_event_frame, openai_data_frame,
    openai_done_frame,
};
pub use usage::{Usage, merge_anthropic_stream_usage, usage_from_anthropic, usage_from_openai};

/// A stateful converter of one provider's SSE events into the client's frames. Both
/// directions implement it, so the gateway drives either through one code path.
pub trait StreamTranslator: Send {
    /// Translates one upstream event, appending zero or more ready-to-send frames to `out`
    /// (a caller-owned vector, reusable across events).
    fn on_event_into(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError>;

    /// Call when the upstream stream ended without its terminal event: emits the closing
    /// frames if the stream had in fact finished its content, else nothing (the caller then
    /// reports the truncation, e.g. with [`Self::error_frame`]).
    fn finish(&mut self) -> Vec<Bytes>;

    /// An error frame in the client's dialect for a failure the gateway detects mid-stream.
    /// Ends the stream.
    fn error_frame(&mut self, status: u16, message: &str) -> Bytes;

    /// Usage so far; complete once finished.
    fn usage(&self) -> Usage;

    /// Whether the client's stream is complete.
    fn finished(&self) -> bool;

    /// Like [`Self::on_event_into`], returning the frames.
    fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<Bytes>, TranslateError> {
        let mut out = Vec::new();
        self.on_event_into(ev, &mut out)?;
        Ok(out)
    }
}

/// Why a translation failed.
///
/// Every variant carries the JSON path of the offending field (for example
/// `messages[2].content[0].type`; `$` is the whole body), so the caller can
/// return it to the client. [`TranslateError::status`] gives the HTTP status
/// the gateway should answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A field of the client's request is missing, has the wrong type or an
    /// invalid value. Maps to HTTP 400.
    #[error("invalid request field `{path}`: {reason}")]
    InvalidRequest {
        /// JSON path of the field.
        path: String,
        /// What is wrong with it.
        reason: Cow<'static, str>,
    },
    /// The client's request is valid in its own API but uses a feature the
    /// provider's API cannot express. Maps to HTTP 400.
    #[error("unsupported request field `{path}`: {reason}")]
    Unsupported {
        /// JSON path of the field.
        path: String,
        /// Why it cannot be translated.
        reason: Cow<'static, str>,
    },
    /// The provider sent a response or stream event that cannot be
    /// translated. Maps to HTTP 502 (or an error event mid-stream).
    #[error("invalid upstream response at `{path}`: {reason}")]
    InvalidUpstream {
        /// JSON path of the field (for streams, within the event's data).
        path: String,
        /// What is wrong with it.
        reason: Cow<'static, str>,
    },
}

impl TranslateError {
    /// The JSON path of the offending field.
    pub fn path(&self) -> &str {
        match self {
            Self::InvalidRequest { path, .. }
            | Self::Unsupported { path, .. }
            | Self::InvalidUpstream { path, .. } => path,
        }
    }

    /// The HTTP status the gateway should answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest { .. } | Self::Unsupported { .. } => 400,
            Self::InvalidUpstream { .. } => 502,
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidRequest {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(
        path: impl Into<String>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Unsupported {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn upstream(path: impl Into<String>, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidUpstream {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
