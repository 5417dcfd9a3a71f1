//! Authentication and admission: the gate every request passes before it is routed.
//!
//! This is where governance plugs in. Today it checks the client key against the static list
//! in the config; virtual keys, rate limits and budget reservations replace [`Admission`]'s
//! internals without changing its callers: `authenticate` once, `admit` before the upstream
//! call, and [`Permit::settle`] with the real usage afterwards.

use std::collections::HashSet;
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::api::validate::RequestMeta;
use crate::api::{ApiError, ErrorKind};
use crate::translate::Usage;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// A short, non-secret name for the key (its first characters), for logs.
    pub key_label: Option<Arc<str>>,
}

/// Decides whether requests may proceed.
#[derive(Debug)]
pub struct Admission {
    keys: HashSet<String>,
}

impl Admission {
    /// Admission against a static key list; an empty list admits everyone.
    pub fn with_static_keys(keys: &[String]) -> Self {
        Self {
            keys: keys.iter().cloned().collect(),
        }
    }

    /// Whether any key is accepted.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Finds and checks the client's key: `Authorization: Bearer KEY` or `x-api-key: KEY`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let presented = client_key(headers);
        if self.is_open() {
            return Ok(Principal { key_label: None });
        }
        let Some(key) = presented else {
            return Err(ApiError::new(
                ErrorKind::Authentication,
                "Missing API key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`",
            )
            .with_code("missing_api_key"));
        };
        if !self.keys.contains(key) {
            return Err(
                ApiError::new(ErrorKind::Authentication, "Incorrect API key provided")
                    .with_code("invalid_api_key"),
            );
        }
        Ok(Principal {
            key_label: Some(Arc::from(crate::config::secrets::redact(key))),
        })
    }

    /// Admits a request for `meta`, reserving what it may consume.
    pub fn admit(&self, principal: &Principal, _meta: &RequestMeta) -> Result<Permit, ApiError> {
        Ok(Permit {
            _principal: principal.clone(),
        })
    }
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
#[derive(Debug)]
pub struct Permit {
    _principal: Principal,
}

impl Permit {
    /// Settles the request at its real usage and cost, releasing what was reserved.
    pub fn settle(self, _usage: &Usage, _cost_micros: u64) {}
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
        let a = Admission::with_static_keys(&["sk-1".to_owned()]);
        assert!(
            a.authenticate(&headers(&[("authorization", "Bearer sk-1")]))
                .is_ok()
        );
        assert!(a.authenticate(&headers(&[("x-api-key", "sk-1")])).is_ok());
    }

    #[test]
    fn rejects_missing_and_unknown_keys_with_401() {
        let a = Admission::with_static_keys(&["sk-1".to_owned()]);
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

    #[test]
    fn empty_list_is_open_access() {
        let a = Admission::with_static_keys(&[]);
        assert!(a.is_open());
        assert!(a.authenticate(&headers(&[])).is_ok());
    }
}
