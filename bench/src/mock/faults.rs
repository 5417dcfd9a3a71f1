//! Injected faults: the next matching requests fail in a chosen way.
//!
//! JSON form (`POST /_mock/faults`), one object per fault:
//! ```json
//! {"kind":"status","status":500,"count":2,"retry_after_s":1,"model":null}
//! {"kind":"drop","after_chunks":3}
//! {"kind":"slow_first_byte","delay_ms":2000,"model":"gpt-4o-mini"}
//! {"kind":"hang","api":"anthropic.messages"}
//! ```
//! `count` (default 1) is how many of the next matching requests the fault affects; `0` means
//! every matching request until the faults are cleared. `model` and `api` (the ledger's api
//! names) filter which requests match. Faults are checked in the order they were added and the
//! first match is consumed.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What an injected fault does to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultEffect {
    /// Answer with this HTTP error status, in the provider's error format.
    Status {
        /// 400–599.
        #[serde(default = "default_status")]
        status: u16,
        /// Adds a `retry-after` header with this many seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_s: Option<u64>,
    },
    /// Streams: send this many content chunks, then cut the connection without a terminating
    /// frame. Non-streaming requests: cut the connection before any response.
    Drop {
        /// Content chunks sent before the cut.
        #[serde(default)]
        after_chunks: u32,
    },
    /// Wait this long before sending the response headers.
    SlowFirstByte {
        /// Delay in milliseconds.
        delay_ms: u64,
    },
    /// Never answer (until the client gives up or the mock shuts down).
    Hang,
}

fn default_status() -> u16 {
    500
}

fn default_count() -> u32 {
    1
}

/// A fault and which requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// What happens.
    #[serde(flatten)]
    pub effect: FaultEffect,
    /// How many matching requests it affects; 0 = all until cleared.
    #[serde(default = "default_count")]
    pub count: u32,
    /// Only requests for this model (exact match; the deployment name for Azure).
    #[serde(default)]
    pub model: Option<String>,
    /// Only requests to this API (`openai.chat`, `anthropic.messages`, ...).
    #[serde(default)]
    pub api: Option<String>,
}

impl Fault {
    fn new(effect: FaultEffect) -> Self {
        Self {
            effect,
            count: 1,
            model: None,
            api: None,
        }
    }

    /// Answer with an HTTP error status.
    pub fn status(status: u16) -> Self {
        Self::new(FaultEffect::Status {
            status,
            retry_after_s: None,
        })
    }

    /// Cut streams after `after_chunks` content chunks (non-streams before any response).
    pub fn drop_after(after_chunks: u32) -> Self {
        Self::new(FaultEffect::Drop { after_chunks })
    }

    /// Delay the response headers.
    pub fn slow_first_byte(delay_ms: u64) -> Self {
        Self::new(FaultEffect::SlowFirstByte { delay_ms })
    }

    /// Never answer.
    pub fn hang() -> Self {
        Self::new(FaultEffect::Hang)
    }

    /// Affect the next `count` matching requests (0 = all until cleared).
    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    /// Only requests for this model.
    pub fn for_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Only requests to this API (ledger api name).
    pub fn for_api(mut self, api: impl Into<String>) -> Self {
        self.api = Some(api.into());
        self
    }

    /// With a `retry-after` header (status faults only).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        if let FaultEffect::Status { retry_after_s, .. } = &mut self.effect {
            *retry_after_s = Some(seconds);
        }
        self
    }

    /// Checks what JSON cannot express as types.
    pub fn validate(&self) -> Result<(), String> {
        match self.effect {
            FaultEffect::Status { status, .. } if !(400..=599).contains(&status) => {
                Err(format!("status must be between 400 and 599, got {status}"))
            }
            _ => Ok(()),
        }
    }

    fn matches(&self, api: &str, model: &str) -> bool {
        self.model.as_deref().is_none_or(|m| m == model)
            && self.api.as_deref().is_none_or(|a| a == api)
    }
}

/// The active faults.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    faults: Mutex<Vec<Fault>>,
}

impl FaultBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Fault>> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add(&self, fault: Fault) {
        self.lock().push(fault);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    pub(crate) fn list(&self) -> Vec<Fault> {
        self.lock().clone()
    }

    /// Consumes one use of the first fault matching this request.
    pub(crate) fn take(&self, api: &str, model: &str) -> Option<FaultEffect> {
        let mut faults = self.lock();
        if faults.is_empty() {
            return None;
        }
        let i = faults.iter().position(|f| f.matches(api, model))?;
        let effect = faults[i].effect.clone();
        match faults[i].count {
            0 => {}
            1 => {
                faults.remove(i);
            }
            _ => faults[i].count -= 1,
        }
        Some(effect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let f: Fault = serde_json::from_str(
            r#"{"kind":"status","status":500,"count":2,"retry_after_s":1,"model":null}"#,
        )
        .expect("parses");
        assert_eq!(f, Fault::status(500).times(2).retry_after(1));
        let d: Fault = serde_json::from_str(r#"{"kind":"drop","after_chunks":3}"#).expect("ok");
        assert_eq!(d, Fault::drop_after(3));
        let h: Fault = serde_json::from_str(r#"{"kind":"hang","model":"m"}"#).expect("ok");
        assert_eq!(h, Fault::hang().for_model("m"));
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"nope"}"#).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"slow_first_byte"}"#).is_err());
        assert!(Fault::status(200).validate().is_err());
    }

    #[test]
    fn counting_and_filters() {
        let b = FaultBook::default();
        b.add(Fault::status(503).times(2).for_model("a"));
        b.add(Fault::hang().times(0).for_api("anthropic.messages"));
        assert_eq!(b.take("openai.chat", "b"), None);
        assert!(matches!(
            b.take("openai.chat", "a"),
            Some(FaultEffect::Status { status: 503, .. })
        ));
        assert!(b.take("openai.chat", "a").is_some());
        assert_eq!(b.take("openai.chat", "a"), None);
        for _ in 0..3 {
            assert_eq!(b.take("anthropic.messages", "x"), Some(FaultEffect::Hang));
        }
        b.clear();
        assert!(b.list().is_empty());
    }
}
