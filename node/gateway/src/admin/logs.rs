//! `GET /admin/v1/logs`: recent request records from this node's request log, newest first,
//! filtered by key, model, status and time.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::error::{AdminError, AdminResult};
use super::{AdminState, authorize, body, page_limit};
use crate::request_log::{Filter, RequestLog, StatusFilter};

/// The query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogQuery {
    /// The virtual key's id.
    key: Option<String>,
    /// The public model.
    model: Option<String>,
    /// A status (`429`) or class (`5xx`).
    status: Option<String>,
    /// RFC 3339 time or epoch milliseconds.
    since: Option<String>,
    /// At most this many records (1 to 1000, default 100).
    limit: Option<usize>,
}

/// The route, behind the admin token guard. `log` is `None` when the node keeps no records;
/// the route then answers with an empty list and says so.
pub fn routes(admin: AdminState, log: Option<Arc<RequestLog>>) -> Router {
    Router::new()
        .route("/admin/v1/logs", get(list))
        .with_state(log)
        .layer(middleware::from_fn_with_state(admin, authorize))
}

async fn list(
    State(log): State<Option<Arc<RequestLog>>>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> AdminResult {
    let query = body::query(query)?;
    let filter = filter(query)?;
    let (records, capacity) = match &log {
        Some(log) => (log.query(&filter), log.capacity()),
        None => (Vec::new(), 0),
    };
    Ok(axum::Json(json!({"data": records, "capacity": capacity})).into_response())
}

fn filter(query: LogQuery) -> Result<Filter, AdminError> {
    let status = match &query.status {
        Some(text) => Some(
            StatusFilter::parse(text)
                .ok_or_else(|| AdminError::field("status", "a status such as 429, or 4xx"))?,
        ),
        None => None,
    };
    let since_ms = match &query.since {
        Some(text) => Some(
            text.parse::<u64>()
                .ok()
                .or_else(|| crate::time::parse_rfc3339(text))
                .ok_or_else(|| {
                    AdminError::field("since", "an RFC 3339 time or epoch milliseconds")
                })?,
        ),
        None => None,
    };
    Ok(Filter {
        key_id: query.key,
        model: query.model,
        status,
        since_ms,
        limit: page_limit(query.limit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_become_filters() {
        let f = filter(LogQuery {
            key: Some("vk_1".to_owned()),
            status: Some("5xx".to_owned()),
            since: Some("1970-01-01T00:00:01Z".to_owned()),
            limit: Some(5_000),
            ..LogQuery::default()
        })
        .expect("valid");
        assert_eq!(f.key_id.as_deref(), Some("vk_1"));
        assert_eq!(f.status, Some(StatusFilter::Class(5)));
        assert_eq!(f.since_ms, Some(1_000));
        assert_eq!(f.limit, 1_000, "capped");
        let e = filter(LogQuery {
            status: Some("teapot".to_owned()),
            ..LogQuery::default()
        })
        .expect_err("refused");
        assert!(e.message.starts_with("status:"), "{}", e.message);
        let e = filter(LogQuery {
            since: Some("yesterday".to_owned()),
            ..LogQuery::default()
        })
        .expect_err("refused");
        assert!(e.message.starts_with("since:"), "{}", e.message);
    }
}
