//! A small client for a node's admin API, shared by the CLI commands that talk to a running
//! node (`cluster status`, `keys`, `teams`, `customers`, `usage`).

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{Method, Url};
use serde_json::Value;

/// A node's admin API.
pub struct AdminClient {
    base: Url,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client of the node at `node` (an HTTP base URL) with the admin `token`.
    pub fn new(node: &str, token: &str) -> Result<Self> {
        starling_providers::ensure_crypto_provider();
        let base = Url::parse(node).with_context(|| format!("--node {node:?} is not a URL"))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            bail!("--node {node:?}: use an http:// or https:// URL");
        }
        Ok(Self {
            base,
            token: token.to_owned(),
            http: reqwest::Client::new(),
        })
    }

    /// `GET /admin/v1/<path…>`.
    pub async fn get(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Value> {
        self.call(Method::GET, path, query, None).await
    }

    /// Calls `/admin/v1/<path…>` (each part percent-encoded) and returns the JSON answer. An
    /// error answer becomes an error carrying the API's message.
    pub async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("{} cannot take a path", self.base))?
            .pop_if_empty()
            .extend(["admin", "v1"])
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("cannot read the answer of {url}"))?;
        let body: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{url} answered HTTP {status} without JSON"))?;
        if !status.is_success() {
            match body["error"]["message"].as_str() {
                Some(message) => bail!("{message}"),
                None => bail!("{url} answered HTTP {status}"),
            }
        }
        Ok(body)
    }
}
