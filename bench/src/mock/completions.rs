//! Legacy text completions: `POST /v1/completions`.

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::azure;
use super::call::{Abort, Call, Usage};
use super::directives;
use super::errors::Flavor;
use super::fields::{FieldError, Fields, string_list, type_name};
use super::http::{Resp, to_json};
use super::ids::{openai_id, unix_secs};
use super::openai::{FINGERPRINT, logprob_of};
use super::script::{self, GenRequest, Output, Plan};
use super::sse::{self, DONE, Frame, Kind};
use super::tokens::encoding_for;

/// The API's documented default for `max_tokens`.
const DEFAULT_MAX_TOKENS: u64 = 16;

#[derive(Debug, Clone, Copy)]
struct Opts {
    stream: bool,
    include_usage: bool,
    echo: bool,
    logprobs: Option<usize>,
    azure: bool,
}

/// Serves a text completion. `deployment` is set for Azure and names the model.
pub(crate) async fn create(
    call: &mut Call,
    headers: &HeaderMap,
    body: Incoming,
    deployment: Option<&str>,
) -> Result<Resp, Abort> {
    let obj = call.begin(headers, body).await?;
    let f = Fields::new(&obj, "");
    let model = f.model_or_deployment(deployment)?;
    let (prompts, n, base, mut opts) = parse(&obj, &model)?;
    opts.azure = call.flavor == Flavor::Azure;
    let all: Vec<&str> = prompts.iter().map(|p| p.text.as_str()).collect();
    let (d, _) = directives::parse(&all.join("\n"));
    let drop_after = call.gate(&model, opts.stream, Some(&d)).await?;

    // One plan per prompt; choice index = prompt index × n + j, as the API numbers them.
    let default_tokens = call.state.cfg.default_output_tokens;
    let mut plans = Vec::with_capacity(prompts.len());
    let encoding = encoding_for(&model);
    let mut input = 0;
    for p in &prompts {
        let mut req = base.clone();
        req.user_text = p.text.clone();
        req.n = n;
        // Token ids are billed one each, as given.
        req.input_tokens = p.token_ids.unwrap_or_else(|| encoding.count(&p.text));
        input += req.input_tokens;
        let (pd, stripped) = directives::parse(&p.text);
        plans.push(script::plan(&req, &pd, &stripped, default_tokens));
    }
    let output: u64 = plans.iter().map(Plan::output_tokens).sum();
    let usage = Usage {
        input,
        cached: 0,
        output,
    };
    let id = openai_id("cmpl-");
    let created = unix_secs();
    let texts: Vec<(usize, String, Vec<String>, &'static str)> = plans
        .iter()
        .enumerate()
        .flat_map(|(pi, plan)| {
            let prompt = &prompts[pi].text;
            plan.choices.iter().map(move |c| {
                let pieces = match &c.output {
                    Output::Text(p) => p.clone(),
                    Output::Tools(_) => Vec::new(),
                };
                (pi, prompt.clone(), pieces, c.finish.openai())
            })
        })
        .collect();
    let usage_json = json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output});
    if opts.stream {
        Ok(call.respond_stream(
            usage,
            frames(&texts, &model, opts, &id, created, &usage_json),
            drop_after,
        ))
    } else {
        let choices: Vec<Value> = texts
            .iter()
            .enumerate()
            .map(|(i, (_, prompt, pieces, finish))| {
                let mut text = if opts.echo {
                    prompt.clone()
                } else {
                    String::new()
                };
                text.push_str(&pieces.concat());
                let mut c = json!({
                    "text": text,
                    "index": i,
                    "logprobs": opts.logprobs.map_or(Value::Null, |k| legacy_logprobs(pieces, k)),
                    "finish_reason": finish,
                });
                if opts.azure {
                    c["content_filter_results"] = azure::filter_results();
                }
                c
            })
            .collect();
        let body = json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
            "usage": usage_json,
        });
        call.respond_json(usage, to_json(&body)).await
    }
}

type Parsed = (Vec<Prompt>, usize, GenRequest, Opts);

/// One prompt.
#[derive(Debug, Clone, PartialEq)]
struct Prompt {
    /// Its text; token ids are written out as `"<id> "` each (for directives and echo).
    text: String,
    /// How many token ids it was given as, if it was.
    token_ids: Option<u64>,
}

impl Prompt {
    fn text(s: &str) -> Self {
        Self {
            text: s.to_owned(),
            token_ids: None,
        }
    }
}

fn parse(obj: &Map<String, Value>, model: &str) -> Result<Parsed, FieldError> {
    let f = Fields::new(obj, "");
    let prompts = prompts(f.req("prompt")?)?;
    let mut base = GenRequest::new(model);
    base.max_tokens = Some(
        f.uint_opt("max_tokens", 0, u64::MAX)?
            .unwrap_or(DEFAULT_MAX_TOKENS),
    );
    base.stop = string_list(f.get("stop"), "stop", 4)?;
    let n = f.uint_opt("n", 1, 128)?.map_or(1, |n| n as usize);
    let (stream, include_usage) = f.stream_and_usage()?;
    let opts = Opts {
        stream,
        include_usage,
        echo: f.bool_opt("echo")?.unwrap_or(false),
        logprobs: f.uint_opt("logprobs", 0, 5)?.map(|k| k as usize),
        azure: false,
    };
    Ok((prompts, n, base, opts))
}

/// `prompt` may be a string, strings, a token array or token arrays.
fn prompts(v: &Value) -> Result<Vec<Prompt>, FieldError> {
    let wrong = |v: &Value| FieldError::WrongType {
        field: "prompt".into(),
        expected: "string",
        got: type_name(v),
    };
    let tokens = |a: &[Value]| -> Result<Prompt, FieldError> {
        // Token ids stand for themselves: one token each, text "<id>".
        let text = a
            .iter()
            .map(|t| {
                t.as_u64()
                    .map(|id| format!("{id} "))
                    .ok_or_else(|| wrong(t))
            })
            .collect::<Result<String, _>>()?;
        Ok(Prompt {
            text,
            token_ids: Some(a.len() as u64),
        })
    };
    match v {
        Value::String(s) => Ok(vec![Prompt::text(s)]),
        Value::Array(a) if a.is_empty() => Err(FieldError::Invalid {
            field: "prompt".into(),
            message: "empty array.".into(),
        }),
        Value::Array(a) if a.iter().all(Value::is_number) => Ok(vec![tokens(a)?]),
        Value::Array(a) => a
            .iter()
            .map(|p| match p {
                Value::String(s) => Ok(Prompt::text(s)),
                Value::Array(t) => tokens(t),
                other => Err(wrong(other)),
            })
            .collect(),
        other => Err(wrong(other)),
    }
}

fn legacy_logprobs(pieces: &[String], k: usize) -> Value {
    let mut offset = 0;
    let mut offsets = Vec::with_capacity(pieces.len());
    for p in pieces {
        offsets.push(offset);
        offset += p.len();
    }
    json!({
        "tokens": pieces,
        "token_logprobs": pieces.iter().map(|p| logprob_of(p)).collect::<Vec<_>>(),
        "top_logprobs": pieces.iter().map(|p| {
            let mut m = Map::new();
            if k > 0 {
                m.insert(p.clone(), json!(logprob_of(p)));
            }
            Value::Object(m)
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

fn frames(
    texts: &[(usize, String, Vec<String>, &'static str)],
    model: &str,
    opts: Opts,
    id: &str,
    created: u64,
    usage: &Value,
) -> Vec<Frame> {
    let chunk = |i: usize, text: &str, finish: Option<&str>, logprobs: Value| -> Bytes {
        let mut v = json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"text": text, "index": i, "logprobs": logprobs, "finish_reason": finish}],
        });
        if opts.include_usage {
            v["usage"] = Value::Null;
        }
        sse::data(&v)
    };
    let mut frames = Vec::new();
    for (i, (_, prompt, pieces, _)) in texts.iter().enumerate() {
        if opts.echo {
            frames.push(Frame::new(
                Kind::Preamble,
                chunk(i, prompt, None, Value::Null),
            ));
        }
        for p in pieces {
            let lp = opts
                .logprobs
                .map_or(Value::Null, |k| legacy_logprobs(std::slice::from_ref(p), k));
            frames.push(Frame::new(
                Kind::Content { tokens: 1 },
                chunk(i, p, None, lp),
            ));
        }
    }
    for (i, (_, _, _, finish)) in texts.iter().enumerate() {
        frames.push(Frame::new(
            Kind::Finish,
            chunk(i, "", Some(finish), Value::Null),
        ));
    }
    if opts.include_usage {
        let v = json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [],
            "usage": usage,
        });
        frames.push(Frame::new(Kind::Finish, sse::data(&v)));
    }
    frames.push(Frame::new(Kind::Finish, Bytes::from_static(DONE)));
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_shapes() {
        assert_eq!(prompts(&json!("a")).ok(), Some(vec![Prompt::text("a")]));
        assert_eq!(prompts(&json!(["a", "b"])).map(|v| v.len()).ok(), Some(2));
        assert_eq!(
            prompts(&json!([1, 2])).ok(),
            Some(vec![Prompt {
                text: "1 2 ".to_owned(),
                token_ids: Some(2)
            }])
        );
        assert_eq!(prompts(&json!([[1], [2]])).map(|v| v.len()).ok(), Some(2));
        assert!(prompts(&json!([])).is_err());
        assert!(prompts(&json!([{}])).is_err());
        assert!(prompts(&json!(5)).is_err());
    }
}
