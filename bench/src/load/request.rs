//! The requests the load generator sends: one fixed body per run, in the client dialect under
//! test, built once and shared, so the generator allocates nothing per request but the
//! request head.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::Full;
use serde::{Deserialize, Serialize};

/// The client API a run speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ApiFormat {
    /// `POST /v1/chat/completions`, as the OpenAI SDKs send it.
    Openai,
    /// `POST /v1/messages`, as the Anthropic SDKs send it.
    Anthropic,
}

impl ApiFormat {
    /// The request path, below the target's base path.
    pub fn path(self) -> &'static str {
        match self {
            ApiFormat::Openai => "/v1/chat/completions",
            ApiFormat::Anthropic => "/v1/messages",
        }
    }

    /// The model asked for: one the mock serves in this dialect and prices.
    pub fn model(self) -> &'static str {
        match self {
            ApiFormat::Openai => "gpt-4o-mini",
            ApiFormat::Anthropic => "claude-3-5-haiku-20241022",
        }
    }
}

/// Everything needed to build each request of a run.
#[derive(Clone, Debug)]
pub struct RequestTemplate {
    format: ApiFormat,
    /// `http://host:port` plus the base path, without a trailing slash.
    path: String,
    host: HeaderValue,
    auth: Option<HeaderValue>,
    body: Bytes,
}

impl RequestTemplate {
    /// A template for `format` against a target whose API is at `base_path` on `host`
    /// (`host:port`), authenticated with `api_key` if any. `max_tokens` bounds the reply.
    pub fn new(
        format: ApiFormat,
        host: &str,
        base_path: &str,
        api_key: Option<&str>,
        stream: bool,
        max_tokens: u32,
    ) -> Result<Self, http::header::InvalidHeaderValue> {
        let auth = api_key
            .map(|key| match format {
                ApiFormat::Openai => HeaderValue::from_str(&format!("Bearer {key}")),
                ApiFormat::Anthropic => HeaderValue::from_str(key),
            })
            .transpose()?;
        Ok(Self {
            format,
            path: format!("{}{}", base_path.trim_end_matches('/'), format.path()),
            host: HeaderValue::from_str(host)?,
            auth,
            body: Bytes::from(body(format, stream, max_tokens).to_string()),
        })
    }

    /// The next request; cheap, the body is shared.
    pub fn build(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = Method::POST;
        // A path this module built from a valid base path always parses; the fallback only
        // keeps a bad operator-given base path from panicking mid-run (it 404s instead).
        *request.uri_mut() = self.path.parse().unwrap_or_default();
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.host.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(auth) = &self.auth {
            let name = match self.format {
                ApiFormat::Openai => header::AUTHORIZATION,
                ApiFormat::Anthropic => header::HeaderName::from_static("x-api-key"),
            };
            headers.insert(name, auth.clone());
        }
        if self.format == ApiFormat::Anthropic {
            headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
        request
    }
}

/// A short chat turn, the shape real SDK traffic has.
fn body(format: ApiFormat, stream: bool, max_tokens: u32) -> serde_json::Value {
    let messages = serde_json::json!([
        {"role": "user", "content": "Summarise the benefits of a gateway in one short sentence."}
    ]);
    match format {
        ApiFormat::Openai => {
            let mut body = serde_json::json!({
                "model": format.model(),
                "messages": messages,
                "max_tokens": max_tokens,
                "stream": stream,
            });
            if stream {
                body["stream_options"] = serde_json::json!({"include_usage": true});
            }
            body
        }
        ApiFormat::Anthropic => serde_json::json!({
            "model": format.model(),
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": stream,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_dialects_auth_and_path() {
        let openai = RequestTemplate::new(
            ApiFormat::Openai,
            "127.0.0.1:1",
            "/openai/",
            Some("k"),
            true,
            8,
        )
        .expect("template");
        let r = openai.build();
        assert_eq!(r.uri().path(), "/openai/v1/chat/completions");
        assert_eq!(r.headers()[header::AUTHORIZATION], "Bearer k");

        let anthropic =
            RequestTemplate::new(ApiFormat::Anthropic, "127.0.0.1:1", "", Some("k"), false, 8)
                .expect("template");
        let r = anthropic.build();
        assert_eq!(r.uri().path(), "/v1/messages");
        assert_eq!(r.headers()["x-api-key"], "k");
        assert_eq!(r.headers()["anthropic-version"], "2023-06-01");
    }
}
