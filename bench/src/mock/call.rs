//! The per-request flow shared by every API: authentication, body parsing, the ledger ticket,
//! injected faults and directives, latency, and the final JSON or SSE response.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::directives::Directives;
use super::errors::{ApiError, Flavor};
use super::faults::FaultEffect;
use super::fields::FieldError;
use super::http::{BodyReadError, Resp, build, header, json, put, read_body};
use super::ids::{anthropic_id, openai_id};
use super::ledger::{Outcome, Ticket};
use super::server::State;
use super::sse::{self, Frame, Pacing};

/// Why a handler stops early.
#[derive(Debug)]
pub(crate) enum Abort {
    /// Answer with this error.
    Api(ApiError),
    /// Answer with a 400 for this field.
    Field(FieldError),
    /// Close the connection without answering (the ticket says why).
    Drop,
}

impl From<ApiError> for Abort {
    fn from(e: ApiError) -> Self {
        Abort::Api(e)
    }
}

impl From<FieldError> for Abort {
    fn from(e: FieldError) -> Self {
        Abort::Field(e)
    }
}

/// Usage to bill for a successful answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub input: u64,
    pub cached: u64,
    pub output: u64,
}

/// One API request being served.
pub(crate) struct Call {
    pub state: Arc<State>,
    pub flavor: Flavor,
    pub api: &'static str,
    pub request_id: String,
    ticket: Ticket,
}

impl Call {
    /// Opens the ledger ticket for a request that just arrived.
    pub(crate) fn start(
        state: Arc<State>,
        flavor: Flavor,
        api: &'static str,
        headers: &HeaderMap,
    ) -> Self {
        let request_id = match flavor {
            Flavor::Anthropic => anthropic_id("req_"),
            Flavor::OpenAi | Flavor::Azure => openai_id("req_"),
        };
        let ticket = state
            .ledger
            .open(api, &request_id, header(headers, "x-starling-request-id"));
        Self {
            state,
            flavor,
            api,
            request_id,
            ticket,
        }
    }

    /// Turns an early stop into the response (or the dropped connection).
    pub(crate) fn conclude(mut self, result: Result<Resp, Abort>) -> Option<Resp> {
        let err = match result {
            Ok(resp) => return Some(resp),
            Err(Abort::Drop) => return None,
            Err(Abort::Field(e)) => ApiError::field(self.flavor, &e),
            Err(Abort::Api(e)) => e,
        };
        self.ticket.set_status(err.status);
        self.ticket.finish(Outcome::Error);
        Some(err.render(self.flavor, &self.request_id))
    }

    /// Sets the model recorded in the ledger (before validation, so errors carry it too).
    pub(crate) fn set_model(&mut self, model: &str) {
        self.ticket.set_model(model);
    }

    /// Any non-empty key is accepted, except keys containing `invalid`, which get the
    /// provider's "wrong key" error so that bad-credential paths can be tested.
    fn check_auth(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let non_empty = |name| {
            header(headers, name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let bearer = header(headers, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty());
        let key = match self.flavor {
            Flavor::OpenAi => bearer,
            Flavor::Azure => non_empty("api-key").or(bearer),
            // The API takes the key as `x-api-key` or, as the 2.x Python SDK sends it,
            // `Authorization: Bearer`.
            Flavor::Anthropic => non_empty("x-api-key").or(bearer),
        };
        let invalid = key.is_some_and(|k| k.contains("invalid"));
        match (self.flavor, key) {
            (Flavor::OpenAi, None) => Err(ApiError::new(
                401,
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
            .code("invalid_api_key")),
            (Flavor::OpenAi, Some(k)) if invalid => Err(ApiError::new(
                401,
                format!(
                    "Incorrect API key provided: {}***. You can find your API key at \
                     https://platform.openai.com/account/api-keys.",
                    k.chars().take(8).collect::<String>()
                ),
            )
            .code("invalid_api_key")),
            (Flavor::Azure, None) => Err(ApiError::new(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure \
                 to provide a valid key for an active subscription and use a correct regional \
                 API endpoint for your resource.",
            )),
            (Flavor::Azure, Some(_)) if invalid => Err(ApiError::new(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint.",
            )),
            (Flavor::Anthropic, None) => Err(ApiError::new(401, "x-api-key header is required")),
            (Flavor::Anthropic, Some(_)) if invalid => Err(ApiError::new(401, "invalid x-api-key")),
            (Flavor::Anthropic, Some(_)) if non_empty("anthropic-version").is_none() => {
                Err(ApiError::new(400, "anthropic-version: header is required"))
            }
            _ => Ok(()),
        }
    }

    /// Authenticates, reads and parses the body as a JSON object, and records its model.
    pub(crate) async fn begin(
        &mut self,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Result<Map<String, Value>, Abort> {
        // Read the body first even when auth fails, so the ledger can name the model.
        let bytes = match read_body(body, self.state.cfg.max_body_bytes).await {
            Ok(b) => b,
            Err(BodyReadError::TooLarge) => {
                return Err(ApiError::new(413, "Request body too large.").into());
            }
            // The client went away mid-body: the ticket records `client_gone` when dropped.
            Err(BodyReadError::Io) => return Err(Abort::Drop),
        };
        let parsed = serde_json::from_slice::<Value>(&bytes);
        if let Ok(Value::Object(o)) = &parsed
            && let Some(Value::String(m)) = o.get("model")
        {
            self.ticket.set_model(m);
        }
        if let Ok(Value::Object(o)) = &parsed {
            // OpenAI's `user`, Anthropic's `metadata.user_id`: the client's end-user tag, which
            // lets a test attribute every upstream call to the operation that caused it.
            let user = o
                .get("user")
                .or_else(|| o.get("metadata").and_then(|m| m.get("user_id")));
            if let Some(Value::String(user)) = user {
                self.ticket.set_user(user);
            }
        }
        self.check_auth(headers)?;
        match parsed {
            Ok(Value::Object(o)) => Ok(o),
            Ok(_) => Err(ApiError::malformed(self.flavor, "the body must be a JSON object").into()),
            Err(e) => Err(ApiError::malformed(self.flavor, &e.to_string()).into()),
        }
    }

    async fn sleep_ms(&self, ms: u64) -> Result<(), Abort> {
        if ms == 0 {
            return Ok(());
        }
        let mut shutdown = self.state.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(()),
            () = async { let _ = shutdown.wait_for(|s| *s).await; } => Err(Abort::Drop),
        }
    }

    /// Applies the first matching injected fault and the prompt's directives (faults win).
    /// Returns after which content chunk a stream must be cut, if any.
    pub(crate) async fn gate(
        &mut self,
        model: &str,
        stream: bool,
        d: Option<&Directives>,
    ) -> Result<Option<u32>, Abort> {
        self.ticket.set_model(model);
        self.ticket.set_stream(stream);
        let mut delay = d.and_then(|d| d.slow_first_byte_ms).unwrap_or(0);
        let mut drop_after = d.and_then(|d| d.drop_after);
        let mut error = d.and_then(|d| d.error);
        let mut hang = false;
        match self.state.faults.take(self.api, model) {
            Some(FaultEffect::Status {
                status,
                retry_after_s,
            }) => error = Some((status, retry_after_s)),
            Some(FaultEffect::Drop { after_chunks }) => drop_after = Some(after_chunks),
            Some(FaultEffect::SlowFirstByte { delay_ms }) => delay = delay_ms,
            Some(FaultEffect::Hang) => hang = true,
            None => {}
        }
        self.sleep_ms(delay).await?;
        if hang {
            // Hold the request until the client gives up (the ticket then records
            // `client_gone`) or the mock shuts down.
            let mut shutdown = self.state.shutdown.clone();
            let _ = shutdown.wait_for(|s| *s).await;
            self.ticket.finish(Outcome::Dropped);
            return Err(Abort::Drop);
        }
        if let Some((status, retry_after)) = error {
            return Err(ApiError::injected(self.flavor, status, retry_after).into());
        }
        if drop_after.is_some() && !stream {
            self.ticket.finish(Outcome::Dropped);
            return Err(Abort::Drop);
        }
        Ok(drop_after)
    }

    /// Sends a complete JSON answer after the configured latency.
    pub(crate) async fn respond_json(
        &mut self,
        usage: Usage,
        body: Vec<u8>,
    ) -> Result<Resp, Abort> {
        self.sleep_ms(self.state.cfg.latency_ms).await?;
        self.ticket
            .set_usage(usage.input, usage.cached, usage.output);
        self.ticket.set_status(200);
        self.ticket.finish(Outcome::Ok);
        Ok(json(
            StatusCode::OK,
            self.flavor.headers(&self.request_id),
            body,
        ))
    }

    /// Starts streaming `frames`; the ledger entry is completed when the stream ends.
    pub(crate) fn respond_stream(
        &mut self,
        usage: Usage,
        frames: Vec<Frame>,
        drop_after: Option<u32>,
    ) -> Resp {
        self.ticket
            .set_usage(usage.input, usage.cached, usage.output);
        self.ticket.set_status(200);
        let cfg = &self.state.cfg;
        let pacing = Pacing {
            ttft: Duration::from_millis(cfg.ttft_ms),
            inter_token: Duration::from_millis(cfg.inter_token_ms),
        };
        let body = sse::spawn(frames, pacing, drop_after, self.ticket.detach());
        let mut headers = self.flavor.headers(&self.request_id);
        put(&mut headers, "cache-control", "no-cache");
        build(
            StatusCode::OK,
            headers,
            "text/event-stream; charset=utf-8",
            body,
        )
    }
}
