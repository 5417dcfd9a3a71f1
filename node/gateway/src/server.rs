//! HTTP listeners and routes: the OpenAI and Anthropic APIs (also under `/openai` and
//! `/anthropic`), health, readiness and metrics.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use http::{HeaderMap, StatusCode, Uri};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::AdminState;
use crate::api::ClientError;
use crate::cluster::Cluster;
use crate::listener::{self, ConnectionLimits};
use crate::proxy::Gateway;
use starling_wire::api::{ApiError, ApiFormat, Endpoint, ErrorKind};

#[derive(Clone)]
struct AppState {
    gateway: Arc<Gateway>,
    metrics: MetricsSource,
}

/// Renders `/metrics`, refreshing the cluster's figures first.
#[derive(Clone)]
struct MetricsSource {
    handle: PrometheusHandle,
    cluster: Option<Cluster>,
}

impl MetricsSource {
    async fn render(&self) -> String {
        if let Some(cluster) = &self.cluster {
            crate::cluster::export_metrics(cluster).await;
        }
        self.handle.render()
    }
}

/// The API and admin routes, plus `/metrics` unless it is served on its own listener.
pub fn app(
    gateway: Arc<Gateway>,
    metrics: PrometheusHandle,
    serve_metrics: bool,
    admin: AdminState,
) -> Router {
    let metrics = MetricsSource {
        handle: metrics,
        cluster: admin.cluster.clone(),
    };
    let logs = crate::admin::log_routes(admin.clone(), gateway.request_log.clone());
    let state = AppState { gateway, metrics };
    let mut router = Router::new();
    for prefix in ["", "/openai", "/anthropic"] {
        router = router
            .route(
                &format!("{prefix}/v1/chat/completions"),
                api(Endpoint::ChatCompletions),
            )
            .route(
                &format!("{prefix}/v1/completions"),
                api(Endpoint::Completions),
            )
            .route(
                &format!("{prefix}/v1/embeddings"),
                api(Endpoint::Embeddings),
            )
            .route(&format!("{prefix}/v1/messages"), api(Endpoint::Messages))
            .route(
                &format!("{prefix}/v1/messages/count_tokens"),
                api(Endpoint::CountTokens),
            );
    }
    // OpenAI SDKs configured with a base URL lacking `/v1` call these.
    for prefix in ["", "/openai"] {
        router = router
            .route(
                &format!("{prefix}/chat/completions"),
                api(Endpoint::ChatCompletions),
            )
            .route(&format!("{prefix}/completions"), api(Endpoint::Completions))
            .route(&format!("{prefix}/embeddings"), api(Endpoint::Embeddings));
    }
    router = router
        .route("/v1/models", get(models_openai))
        .route("/openai/v1/models", get(models_openai))
        .route("/anthropic/v1/models", get(models_anthropic))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz));
    if serve_metrics {
        router = router.route("/metrics", get(render_metrics));
    }
    router
        .fallback(not_found)
        .with_state(state)
        .merge(crate::admin::routes(admin))
        .merge(logs)
}

/// The metrics-only app for a separate metrics listener.
fn metrics_app(metrics: MetricsSource) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render().await }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

fn api(endpoint: Endpoint) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>, request: Request| async move {
            state.gateway.handle(endpoint, request).await
        },
    )
    .fallback(move || async move {
        let error = ApiError::new(ErrorKind::InvalidRequest, "method not allowed: use POST");
        ClientError::new(error, endpoint.format())
            .into_response()
            .map_status(StatusCode::METHOD_NOT_ALLOWED)
    })
}

trait MapStatus {
    fn map_status(self, status: StatusCode) -> Response;
}

impl MapStatus for Response {
    fn map_status(mut self, status: StatusCode) -> Response {
        *self.status_mut() = status;
        self
    }
}

async fn models_openai(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.gateway.admission.authenticate(&headers) {
        return ClientError::new(e, ApiFormat::OpenAi).into_response();
    }
    let data: Vec<_> = state
        .gateway
        .router
        .listed_models()
        .into_iter()
        .map(|(id, provider)| json!({"id": id, "object": "model", "created": 0, "owned_by": &*provider}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn models_anthropic(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.gateway.admission.authenticate(&headers) {
        return ClientError::new(e, ApiFormat::Anthropic).into_response();
    }
    let data: Vec<_> = state
        .gateway
        .router
        .listed_models()
        .into_iter()
        .map(|(id, _)| json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"}))
        .collect();
    let first = data.first().and_then(|m| m.get("id")).cloned();
    let last = data.last().and_then(|m| m.get("id")).cloned();
    axum::Json(json!({"data": data, "has_more": false, "first_id": first, "last_id": last}))
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.gateway.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    // A node whose disk failed takes no writes and ships no rows: take it out of rotation.
    if let Some(reason) = state
        .metrics
        .cluster
        .as_ref()
        .and_then(|c| c.store_failure())
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store failed: {reason}"),
        )
            .into_response();
    }
    "ready".into_response()
}

async fn render_metrics(State(state): State<AppState>) -> String {
    state.metrics.render().await
}

async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    let format = if path.starts_with("/anthropic") || path.contains("/messages") {
        ApiFormat::Anthropic
    } else {
        ApiFormat::OpenAi
    };
    ClientError::new(
        ApiError::new(ErrorKind::NotFound, format!("no route for {path}")),
        format,
    )
    .into_response()
}

/// A running node's listeners.
pub struct RunningServer {
    /// The API address actually bound.
    pub addr: SocketAddr,
    /// The separate metrics address, if any.
    pub metrics_addr: Option<SocketAddr>,
    gateway: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Serves `gateway` on `listener` (and `/metrics` on `metrics_listener` if given), with
    /// the admin API off.
    pub fn start(
        gateway: Arc<Gateway>,
        listener: TcpListener,
        metrics_listener: Option<TcpListener>,
    ) -> std::io::Result<Self> {
        Self::start_with_admin(gateway, listener, metrics_listener, AdminState::default())
    }

    /// Like [`Self::start`], with the admin API and cluster given by `admin`.
    pub fn start_with_admin(
        gateway: Arc<Gateway>,
        listener: TcpListener,
        metrics_listener: Option<TcpListener>,
        admin: AdminState,
    ) -> std::io::Result<Self> {
        let metrics = crate::metrics::install();
        // With a cluster member, virtual keys, budgets and rate limits are enforced.
        if let Some(cluster) = &admin.cluster
            && gateway.admission.governance().is_none()
        {
            let config = &gateway.config;
            let governance = starling_governance::Governance::start(
                cluster.clone(),
                config.governance.clone(),
                !config.cluster.seeds.is_empty(),
            );
            gateway.admission.enable_governance(governance);
        }
        let addr = listener.local_addr()?;
        let metrics_addr = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let (shutdown, watch_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let metrics_source = MetricsSource {
            handle: metrics.clone(),
            cluster: admin.cluster.clone(),
        };
        let app = app(
            gateway.clone(),
            metrics.clone(),
            metrics_listener.is_none(),
            admin,
        );
        let limits = ConnectionLimits::from_config(&gateway.config.server);
        tasks.push(tokio::spawn(listener::serve(
            listener,
            app,
            limits,
            "api",
            watch_rx.clone(),
        )));
        if let Some(listener) = metrics_listener {
            let app = metrics_app(metrics_source);
            tasks.push(tokio::spawn(listener::serve(
                listener,
                app,
                limits,
                "metrics",
                watch_rx.clone(),
            )));
        }
        let mut rx = watch_rx;
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                () = crate::metrics::upkeep(metrics) => {}
                _ = rx.wait_for(|stop| *stop) => {}
            }
        }));
        Ok(Self {
            addr,
            metrics_addr,
            gateway,
            shutdown,
            tasks,
        })
    }

    /// Writes the bound addresses as JSON to `path`, atomically, for tests and supervisors.
    pub fn write_ready_file(&self, path: &Path, gossip: Option<SocketAddr>) -> std::io::Result<()> {
        let body = json!({
            "http": self.addr.to_string(),
            "metrics": self.metrics_addr.map(|a| a.to_string()),
            "gossip": gossip.map(|a| a.to_string()),
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body.to_string())?;
        std::fs::rename(&tmp, path)
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then returns.
    pub async fn shutdown(self, grace: Duration) {
        self.gateway.draining.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("in-flight requests did not finish within {grace:?}; exiting anyway");
            for task in aborts {
                task.abort();
            }
        }
    }
}
