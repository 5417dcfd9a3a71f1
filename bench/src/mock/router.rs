//! Path dispatch and the `/_mock/*` control API.

use std::sync::Arc;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::call::Call;
use super::errors::{ApiError, Flavor};
use super::faults::Fault;
use super::http::{BodyReadError, DropConnection, Resp, json, read_body, to_json};
use super::server::State;
use super::{anthropic, azure, completions, embeddings, models, openai};

/// The generation endpoints, which go through [`Call`] and the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Messages,
    CountTokens,
}

/// Serves one request. An `Err` makes hyper close the connection without a response.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Resp, DropConnection> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let method = &parts.method;
    tracing::debug!(%method, path, "request");

    if let Some(rest) = path.strip_prefix("/_mock/") {
        return Ok(control(&state, method, rest, body).await);
    }

    let (endpoint, flavor, deployment) = match (method, path) {
        (&Method::POST, "/v1/chat/completions") => (Endpoint::Chat, Flavor::OpenAi, None),
        (&Method::POST, "/v1/completions") => (Endpoint::Completions, Flavor::OpenAi, None),
        (&Method::POST, "/v1/embeddings") => (Endpoint::Embeddings, Flavor::OpenAi, None),
        (&Method::POST, "/v1/messages") => (Endpoint::Messages, Flavor::Anthropic, None),
        (&Method::POST, "/v1/messages/count_tokens") => {
            (Endpoint::CountTokens, Flavor::Anthropic, None)
        }
        (&Method::GET, "/v1/models") => return Ok(models::list(&parts.headers)),
        (&Method::GET, p) if p.starts_with("/v1/models/") => {
            return Ok(models::get(&parts.headers, &p["/v1/models/".len()..]));
        }
        (m, p) => match azure::route(p) {
            Some((dep, op)) if m == Method::POST => {
                let endpoint = match op {
                    azure::Op::Chat => Endpoint::Chat,
                    azure::Op::Completions => Endpoint::Completions,
                    azure::Op::Embeddings => Endpoint::Embeddings,
                };
                (endpoint, Flavor::Azure, Some(dep))
            }
            _ => return Ok(not_found(method, path)),
        },
    };

    let api = match (flavor, endpoint) {
        (Flavor::Azure, Endpoint::Chat) => "azure.chat",
        (Flavor::Azure, Endpoint::Completions) => "azure.completions",
        (Flavor::Azure, _) => "azure.embeddings",
        (_, Endpoint::Chat) => "openai.chat",
        (_, Endpoint::Completions) => "openai.completions",
        (_, Endpoint::Embeddings) => "openai.embeddings",
        (_, Endpoint::Messages) => "anthropic.messages",
        (_, Endpoint::CountTokens) => "anthropic.count_tokens",
    };
    let mut call = Call::start(Arc::clone(&state), flavor, api, &parts.headers);
    let result = async {
        if let Some(dep) = &deployment {
            call.set_model(dep);
            azure::check(parts.uri.query())?;
        }
        let dep = deployment.as_deref();
        match endpoint {
            Endpoint::Chat => openai::chat(&mut call, &parts.headers, body, dep).await,
            Endpoint::Completions => {
                completions::create(&mut call, &parts.headers, body, dep).await
            }
            Endpoint::Embeddings => embeddings::create(&mut call, &parts.headers, body, dep).await,
            Endpoint::Messages => anthropic::messages(&mut call, &parts.headers, body).await,
            Endpoint::CountTokens => anthropic::count_tokens(&mut call, &parts.headers, body).await,
        }
    }
    .await;
    call.conclude(result).ok_or(DropConnection)
}

fn not_found(method: &Method, path: &str) -> Resp {
    ApiError::new(404, format!("Invalid URL ({method} {path})")).render(Flavor::OpenAi, "")
}

fn control_json<T: serde::Serialize>(status: StatusCode, v: &T) -> Resp {
    json(status, Default::default(), to_json(v))
}

async fn control(state: &State, method: &Method, rest: &str, body: Incoming) -> Resp {
    match (method, rest) {
        (&Method::GET, "health") => control_json(
            StatusCode::OK,
            &json!({"status": "ok", "in_flight": state.ledger.in_flight()}),
        ),
        (&Method::GET, "ledger") => control_json(StatusCode::OK, &state.ledger.snapshot()),
        (&Method::DELETE, "ledger") => {
            state.ledger.clear();
            control_json(StatusCode::OK, &json!({"cleared": true}))
        }
        (&Method::GET, "ledger/summary") => control_json(StatusCode::OK, &state.ledger.summary()),
        (&Method::GET, "faults") => control_json(StatusCode::OK, &state.faults.list()),
        (&Method::DELETE, "faults") => {
            state.faults.clear();
            control_json(StatusCode::OK, &json!({"cleared": true}))
        }
        (&Method::POST, "faults") => {
            let bytes = match read_body(body, 1024 * 1024).await {
                Ok(b) => b,
                Err(BodyReadError::TooLarge | BodyReadError::Io) => {
                    return control_json(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": "unreadable body"}),
                    );
                }
            };
            // One fault or an array of faults.
            let parsed = serde_json::from_slice::<Fault>(&bytes)
                .map(|f| vec![f])
                .or_else(|_| serde_json::from_slice::<Vec<Fault>>(&bytes));
            match parsed {
                Ok(faults) => {
                    if let Some(e) = faults.iter().find_map(|f| f.validate().err()) {
                        return control_json(StatusCode::BAD_REQUEST, &json!({"error": e}));
                    }
                    let n = faults.len();
                    for f in faults {
                        state.faults.add(f);
                    }
                    control_json(StatusCode::OK, &json!({"added": n}))
                }
                Err(e) => control_json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": format!("invalid fault: {e}")}),
                ),
            }
        }
        _ => control_json(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no control route {method} /_mock/{rest}")}),
        ),
    }
}
