//! The admission stage: what a request may spend and where it may go. A virtual key is
//! admitted by governance against the dearest price and the tightest tokenizer among every
//! deployment that may serve it (fallbacks included), which may clamp its output cap and so
//! rewrite its body; a static key or open access holds an unlimited permit.

use std::sync::Arc;

use bytes::Bytes;
use starling_governance::estimate::{Tokenizer, tokenizer_for};
use starling_governance::{AdmitRequest, Governance, ReservePrice};
use starling_wire::api::{ApiError, Endpoint, ErrorKind};

use super::ingress::ClientRequest;
use crate::admission::{Permit, Principal};
use crate::routing::{ModelRoute, Router};
use crate::telemetry::RequestSpan;

/// What admission grants a request.
pub(super) struct Admitted {
    /// Held until the request settles.
    pub permit: Permit,
    /// Providers the key restricts the request to (empty: any).
    pub allowed_providers: Vec<String>,
}

/// Admits `request` for `route`. Governance's refusal (429, 403, 503) is the error.
pub(super) async fn admit(
    principal: &Principal,
    governance: Option<&Arc<Governance>>,
    router: &Router,
    endpoint: Endpoint,
    route: &Arc<ModelRoute>,
    request: &mut ClientRequest,
    span: &RequestSpan,
) -> Result<Admitted, ApiError> {
    let admission = span.child("starling.admission");
    admission.set_bool("starling.governed", principal.virtual_key.is_some());
    let (Some(key), Some(governance)) = (&principal.virtual_key, governance) else {
        return Ok(Admitted {
            permit: Permit::unlimited(),
            allowed_providers: Vec::new(),
        });
    };
    let candidates = candidates(router, route);
    let providers: Vec<&str> = route
        .deployments
        .iter()
        .map(|d| d.provider.name.as_ref())
        .collect();
    let admitted = governance
        .admit(
            key,
            AdmitRequest {
                endpoint,
                requested_model: &request.meta.model,
                route_name: &route.name,
                route_providers: &providers,
                price: reserve_price(&candidates),
                tokenizer: tokenizer_of(&candidates),
                body: &mut request.object,
            },
        )
        .await
        .inspect_err(|e| admission.fail(e.error_type(), e.message()))?;
    if admitted.body_changed {
        request.raw = Bytes::from(serde_json::to_vec(&request.object).map_err(|e| {
            ApiError::new(
                ErrorKind::Internal,
                format!("cannot encode the request: {e}"),
            )
        })?);
    }
    Ok(Admitted {
        permit: Permit::governed(admitted.permit),
        allowed_providers: admitted.allowed_providers,
    })
}

/// The route and its configured fallbacks: every deployment that may serve the request.
fn candidates(router: &Router, route: &Arc<ModelRoute>) -> Vec<Arc<ModelRoute>> {
    std::iter::once(route.clone())
        .chain(
            route
                .fallbacks
                .iter()
                .filter_map(|name| router.resolve(name).ok()),
        )
        .collect()
}

/// The dearest prices among the candidates: a reservation must cover whichever serves.
fn reserve_price(candidates: &[Arc<ModelRoute>]) -> ReservePrice {
    let mut price = ReservePrice::default();
    for d in candidates.iter().flat_map(|r| r.deployments.iter()) {
        let p = d.price;
        price.input_nanos = price
            .input_nanos
            .max(p.input)
            .max(p.cached_input)
            .max(p.cache_write);
        price.output_nanos = price.output_nanos.max(p.output);
    }
    price
}

/// The tokenizer to bound input with: a real one only if every candidate uses it, else the
/// byte bound, which holds for any byte-level tokenizer.
fn tokenizer_of(candidates: &[Arc<ModelRoute>]) -> Tokenizer {
    let mut chosen = None;
    for d in candidates.iter().flat_map(|r| r.deployments.iter()) {
        let t = tokenizer_for(&d.upstream_model);
        match chosen {
            None => chosen = Some(t),
            Some(c) if c == t => {}
            Some(_) => return Tokenizer::Bytes,
        }
    }
    chosen.unwrap_or(Tokenizer::Bytes)
}
