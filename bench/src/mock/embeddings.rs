//! Embeddings: `POST /v1/embeddings`.
//!
//! Vectors are unit-length and seeded by a hash of each input, so equal inputs always embed
//! equally. `encoding_format: "base64"` (which the official Python SDK requests by default)
//! returns the little-endian f32 bytes in base64, as the real API does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;

use super::call::{Abort, Call, Usage};
use super::detrand::{SplitMix, fnv1a};
use super::fields::{FieldError, Fields, type_name};
use super::http::{Resp, to_json};
use super::tokens::{Encoding, encoding_for};

/// The API's limit on inputs per request.
const MAX_INPUTS: usize = 2048;
/// Upper bound on `dimensions` (text-embedding-3-large has 3072).
const MAX_DIMS: u64 = 16_384;

/// One input: text, or token ids.
#[derive(Debug, Clone, PartialEq)]
enum Input {
    Text(String),
    Tokens(Vec<u64>),
}

impl Input {
    fn tokens(&self, encoding: Encoding) -> u64 {
        match self {
            Input::Text(s) => encoding.count(s),
            Input::Tokens(t) => t.len() as u64,
        }
    }

    fn seed(&self) -> u64 {
        match self {
            Input::Text(s) => fnv1a(s.as_bytes()),
            Input::Tokens(t) => {
                let bytes: Vec<u8> = t.iter().flat_map(|x| x.to_le_bytes()).collect();
                // Different domain from text so "1" and [1] differ.
                fnv1a(&bytes) ^ 0x5bd1_e995
            }
        }
    }
}

/// A deterministic unit vector for `seed`.
pub(crate) fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut rng = SplitMix::new(seed);
    let raw: Vec<f64> = (0..dims).map(|_| rng.next_signed_unit()).collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return vec![0.0; dims];
    }
    raw.iter().map(|x| (x / norm) as f32).collect()
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Datum {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

#[derive(Serialize)]
struct EmbUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Response<'a> {
    object: &'static str,
    data: Vec<Datum>,
    model: &'a str,
    usage: EmbUsage,
}

/// Serves an embeddings request. `deployment` is set for Azure and names the model.
pub(crate) async fn create(
    call: &mut Call,
    headers: &HeaderMap,
    body: Incoming,
    deployment: Option<&str>,
) -> Result<Resp, Abort> {
    let obj = call.begin(headers, body).await?;
    let f = Fields::new(&obj, "");
    let model = f.model_or_deployment(deployment)?;
    let inputs = inputs(f.req("input")?)?;
    let base64 = match f.str_opt("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(FieldError::Invalid {
                field: "encoding_format".into(),
                message: format!(
                    "Invalid value: '{other}'. Supported values are: 'float' and 'base64'."
                ),
            }
            .into());
        }
    };
    let default_dims = if model.contains("3-large") {
        3072
    } else {
        call.state.cfg.embedding_dims as u64
    };
    let dims = f
        .uint_opt("dimensions", 1, MAX_DIMS)?
        .unwrap_or(default_dims) as usize;
    call.gate(&model, false, None).await?;

    let encoding = encoding_for(&model);
    let tokens: u64 = inputs.iter().map(|i| i.tokens(encoding)).sum();
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let v = vector(input.seed(), dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Embedding::Base64(B64.encode(bytes))
            } else {
                Embedding::Float(v)
            };
            Datum {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let body = to_json(&Response {
        object: "list",
        data,
        model: &model,
        usage: EmbUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    });
    let usage = Usage {
        input: tokens,
        cached: 0,
        output: 0,
    };
    call.respond_json(usage, body).await
}

fn inputs(v: &Value) -> Result<Vec<Input>, FieldError> {
    let invalid = || {
        FieldError::Invalid {
        field: "input".into(),
        message: "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.".into(),
    }
    };
    let wrong = |v: &Value| FieldError::WrongType {
        field: "input".into(),
        expected: "string",
        got: type_name(v),
    };
    let token_ids = |a: &[Value]| -> Result<Vec<u64>, FieldError> {
        a.iter()
            .map(|t| t.as_u64().ok_or_else(|| wrong(t)))
            .collect()
    };
    let out = match v {
        Value::String(s) if s.is_empty() => return Err(invalid()),
        Value::String(s) => vec![Input::Text(s.clone())],
        Value::Array(a) if a.is_empty() => return Err(invalid()),
        Value::Array(a) if a.iter().all(Value::is_number) => vec![Input::Tokens(token_ids(a)?)],
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) if s.is_empty() => Err(invalid()),
                Value::String(s) => Ok(Input::Text(s.clone())),
                Value::Array(t) if !t.is_empty() => Ok(Input::Tokens(token_ids(t)?)),
                Value::Array(_) => Err(invalid()),
                other => Err(wrong(other)),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(wrong(other)),
    };
    if out.len() > MAX_INPUTS {
        return Err(FieldError::Invalid {
            field: "input".into(),
            message: format!("array too long. Expected an array with maximum length {MAX_INPUTS}."),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unit_and_deterministic() {
        let a = vector(42, 64);
        assert_eq!(a, vector(42, 64));
        assert_ne!(a, vector(43, 64));
        let norm: f64 = a
            .iter()
            .map(|x| f64::from(*x) * f64::from(*x))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn input_shapes() {
        assert_eq!(inputs(&json!("a")).map(|v| v.len()).ok(), Some(1));
        assert_eq!(inputs(&json!(["a", "b"])).map(|v| v.len()).ok(), Some(2));
        assert_eq!(
            inputs(&json!([1, 2, 3])).ok(),
            Some(vec![Input::Tokens(vec![1, 2, 3])])
        );
        assert_eq!(inputs(&json!([[1], [2]])).map(|v| v.len()).ok(), Some(2));
        for bad in [
            json!(""),
            json!([]),
            json!([""]),
            json!([[]]),
            json!(3),
            json!([{}]),
            json!([-1]),
        ] {
            assert!(inputs(&bad).is_err(), "{bad}");
        }
        assert_ne!(
            Input::Text("1".into()).seed(),
            Input::Tokens(vec![1]).seed()
        );
    }
}
