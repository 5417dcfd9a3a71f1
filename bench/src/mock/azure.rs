//! Azure OpenAI routing: `/openai/deployments/{deployment}/{operation}?api-version=…`.
//!
//! The bodies are OpenAI's; the differences (the deployment names the model, the `api-key`
//! header, the mandatory `api-version`, content-filter annotations, error shapes) are handled
//! by the OpenAI modules through [`super::errors::Flavor::Azure`].

use super::errors::ApiError;
use super::http::query_param;

/// The operation addressed under a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Chat,
    Completions,
    Embeddings,
}

/// Splits an Azure path into deployment and operation.
pub(crate) fn route(path: &str) -> Option<(String, Op)> {
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (deployment, op) = rest.split_once('/')?;
    if deployment.is_empty() {
        return None;
    }
    let op = match op {
        "chat/completions" => Op::Chat,
        "completions" => Op::Completions,
        "embeddings" => Op::Embeddings,
        _ => return None,
    };
    Some((deployment.to_owned(), op))
}

/// Azure rejects requests without `api-version` before anything else.
pub(crate) fn check(query: Option<&str>) -> Result<(), ApiError> {
    match query_param(query, "api-version") {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(ApiError::new(
            400,
            "Missing API version parameter. The api-version query parameter (?api-version=) is \
             required for all requests.",
        )
        .code("MissingApiVersionParameter")),
    }
}

/// Azure's content-filter verdict, attached to prompts and choices.
pub(crate) fn filter_results() -> serde_json::Value {
    let safe = serde_json::json!({"filtered": false, "severity": "safe"});
    serde_json::json!({
        "hate": safe, "self_harm": safe, "sexual": safe, "violence": safe,
    })
}

/// `prompt_filter_results` for a request with one prompt.
pub(crate) fn prompt_filter_results() -> serde_json::Value {
    serde_json::json!([{"prompt_index": 0, "content_filter_results": filter_results()}])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/openai/deployments/my-gpt/chat/completions"),
            Some(("my-gpt".to_owned(), Op::Chat))
        );
        assert_eq!(
            route("/openai/deployments/e/embeddings"),
            Some(("e".to_owned(), Op::Embeddings))
        );
        assert_eq!(route("/openai/deployments//chat/completions"), None);
        assert_eq!(route("/openai/deployments/x/other"), None);
        assert!(check(Some("api-version=2024-10-21")).is_ok());
        assert_eq!(check(None).map_err(|e| e.status), Err(400));
        assert!(check(Some("api-version=")).is_err());
    }
}
