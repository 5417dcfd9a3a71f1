//! Authentication and admission: the gate every request passes before it is routed.
//!
//! A presented key is first looked up as a virtual key (when governance runs, i.e. clustering
//! is on), then in the config's static list. Virtual keys are admitted by
//! [`starling_governance`]: models, providers, rate limits and budget reservations; static keys
//! and open access carry no limits. Open access is the default only for a single node with no
//! static keys (a laptop); with clustering on it must be configured (`auth.open = true`).
//! Callers `authenticate` once, admit before the upstream call, and [`Permit::settle`] with
//! the real usage afterwards.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::AuthConfig;
use starling_governance::usage::UsageReceipt;
use starling_governance::{GovPermit, Governance, KeyEntry, secret};
use starling_wire::api::{ApiError, ErrorKind};
use starling_wire::translate::Usage;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// A short, non-secret name for the key (its first characters), for logs.
    pub key_label: Option<Arc<str>>,
    /// The virtual key, when the caller presented one.
    pub virtual_key: Option<Arc<KeyEntry>>,
}

/// Decides whether requests may proceed.
#[derive(Debug)]
pub struct Admission {
    keys: HashSet<String>,
    /// `auth.open` as configured; unset, access is open only with no static keys and no
    /// virtual keys (see [`Admission::is_open`]).
    open: Option<bool>,
    governance: OnceLock<Arc<Governance>>,
}

impl Admission {
    /// Admission as `[auth]` configures it.
    pub fn new(auth: &AuthConfig) -> Self {
        Self {
            keys: auth.keys.iter().cloned().collect(),
            open: auth.open,
            governance: OnceLock::new(),
        }
    }

    /// Turns on virtual keys (once the cluster member runs).
    pub fn enable_governance(&self, governance: Arc<Governance>) {
        if self.governance.set(governance).is_err() {
            tracing::warn!("governance was already enabled");
        }
    }

    /// The governance engine, when virtual keys are on.
    pub fn governance(&self) -> Option<&Arc<Governance>> {
        self.governance.get()
    }

    /// Whether requests without a known key are admitted: when `auth.open` says so, or,
    /// with `auth.open` unset, when there are neither static keys nor virtual keys (once the
    /// cluster runs, governance is on and a key is required).
    pub fn is_open(&self) -> bool {
        self.open
            .unwrap_or_else(|| self.keys.is_empty() && self.governance.get().is_none())
    }

    /// Finds and checks the client's key: `Authorization: Bearer KEY` or `x-api-key: KEY`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let presented = client_key(headers);
        if let (Some(governance), Some(key)) = (self.governance.get(), presented) {
            if let Some(entry) = governance.lookup(key) {
                // A revoked, disabled or expired key opens no route, `/v1/models` included.
                starling_governance::admit::key_in_force(
                    &entry.key,
                    starling_governance::now_ms(),
                )?;
                return Ok(Principal {
                    key_label: Some(Arc::from(entry.key.id.as_str())),
                    virtual_key: Some(entry),
                });
            }
            if key.starts_with(secret::SECRET_PREFIX) {
                return Err(unknown_key());
            }
        }
        if self.is_open() {
            return Ok(Principal {
                key_label: None,
                virtual_key: None,
            });
        }
        let Some(key) = presented else {
            return Err(ApiError::new(
                ErrorKind::Authentication,
                "Missing API key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`",
            )
            .with_code("missing_api_key"));
        };
        if !self.keys.contains(key) {
            return Err(unknown_key());
        }
        Ok(Principal {
            key_label: Some(Arc::from(crate::config::secrets::redact(key))),
            virtual_key: None,
        })
    }
}

fn unknown_key() -> ApiError {
    ApiError::new(ErrorKind::Authentication, "Incorrect API key provided")
        .with_code("invalid_api_key")
}

/// The key from the request headers, if any.
pub fn client_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if let Some(key) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            let key = key.trim();
            if !key.is_empty() {
                return Some(key);
            }
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// What an admitted request holds until it settles.
pub struct Permit {
    governed: Option<GovPermit>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("governed", &self.governed.is_some())
            .finish()
    }
}

impl Permit {
    /// A permit with nothing to enforce (static keys, open access).
    pub fn unlimited() -> Self {
        Self { governed: None }
    }

    /// A permit holding a virtual key's reservations.
    pub fn governed(permit: GovPermit) -> Self {
        Self {
            governed: Some(permit),
        }
    }

    /// Headers the response carries for a virtual key: rate-limit and budget figures.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.governed.as_ref().map(GovPermit::headers)
    }

    /// Settles the request at its real usage and cost, releasing what was reserved.
    pub fn settle(self, usage: &Usage, cost_micros: u64) -> Option<UsageReceipt> {
        self.governed
            .and_then(|permit| permit.settle(usage.total(), cost_micros))
    }

    /// Settles a response that was cut short (the client left, or the upstream broke off):
    /// the usage seen is recorded, but the upstream may have generated more than reached
    /// the gateway, so budgets keep the whole reservation.
    pub fn settle_cut_short(self, usage: &Usage, cost_micros: u64) -> Option<UsageReceipt> {
        self.governed
            .and_then(|permit| permit.settle_cut_short(usage.total(), cost_micros))
    }

    /// Ends a request that no upstream billed (every attempt was refused with an error
    /// status or could not connect): nothing was spent.
    pub fn release_unbilled(self) {
        // Nothing was billed, so there is nothing to wait for.
        let _ = self.settle(&Usage::default(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("valid"));
        }
        h
    }

    #[test]
    fn accepts_bearer_and_x_api_key() {
        let a = Admission::new(&auth(&["sk-1"], None));
        assert!(
            a.authenticate(&headers(&[("authorization", "Bearer sk-1")]))
                .is_ok()
        );
        assert!(a.authenticate(&headers(&[("x-api-key", "sk-1")])).is_ok());
    }

    #[test]
    fn rejects_missing_and_unknown_keys_with_401() {
        let a = Admission::new(&auth(&["sk-1"], None));
        for h in [
            headers(&[]),
            headers(&[("authorization", "Bearer sk-2")]),
            headers(&[("authorization", "Basic sk-1")]),
            headers(&[("x-api-key", "")]),
        ] {
            let e = a.authenticate(&h).expect_err("rejected");
            assert_eq!(e.kind(), ErrorKind::Authentication);
        }
    }

    fn auth(keys: &[&str], open: Option<bool>) -> AuthConfig {
        AuthConfig {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            open,
        }
    }

    #[test]
    fn a_single_node_without_keys_is_open_unless_told_otherwise() {
        let a = Admission::new(&auth(&[], None));
        assert!(a.is_open());
        assert!(a.authenticate(&headers(&[])).is_ok());
        let closed = Admission::new(&auth(&[], Some(false)));
        assert!(!closed.is_open());
        let e = closed.authenticate(&headers(&[])).expect_err("no key");
        assert_eq!(e.kind(), ErrorKind::Authentication);
    }
}
