//! The listener loop and the [`MockServer`] handle used by in-process tests and the binary.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::config::MockConfig;
use super::faults::{Fault, FaultBook};
use super::ledger::{Ledger, LedgerEntry, LedgerSummary};
use super::router;

/// State shared by all connections.
pub(crate) struct State {
    pub cfg: MockConfig,
    pub ledger: Arc<Ledger>,
    pub faults: FaultBook,
    /// Turns true when the server shuts down; hanging requests watch it.
    pub shutdown: watch::Receiver<bool>,
}

/// A running mock provider. Dropping it aborts the server at once; [`MockServer::shutdown`]
/// stops it gracefully.
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Serves on `listener` (bind it to port 0 for an OS-assigned port) in a spawned task.
    pub async fn start(listener: TcpListener, cfg: MockConfig) -> MockServer {
        let addr = listener.local_addr().unwrap_or_else(|e| {
            tracing::error!(error = %e, "listener has no local address");
            SocketAddr::from(([0, 0, 0, 0], 0))
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = Arc::new(State {
            ledger: Arc::new(Ledger::new(cfg.ledger_limit)),
            cfg,
            faults: FaultBook::default(),
            shutdown: shutdown_rx,
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&state)));
        tracing::info!(%addr, "mock provider listening");
        MockServer {
            addr,
            state,
            shutdown_tx,
            task: Some(task),
        }
    }

    /// Binds `127.0.0.1:0` and starts serving there.
    pub async fn bind(cfg: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Ok(Self::start(listener, cfg).await)
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v1`: the base URL for OpenAI clients.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://ADDR`: the base URL for Anthropic and Azure clients.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the ledger, in arrival order.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.state.ledger.snapshot()
    }

    /// Totals over the ledger.
    pub fn ledger_summary(&self) -> LedgerSummary {
        self.state.ledger.summary()
    }

    /// Calls that arrived and are not finished yet (useful to wait for a request to be held).
    pub fn in_flight(&self) -> u64 {
        self.state.ledger.in_flight()
    }

    /// Empties the ledger.
    pub fn clear_ledger(&self) {
        self.state.ledger.clear();
    }

    /// Adds a fault, like `POST /_mock/faults`.
    pub fn inject(&self, fault: Fault) {
        self.state.faults.add(fault);
    }

    /// Removes all faults, like `DELETE /_mock/faults`.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Stops accepting, lets in-flight requests finish (up to `shutdown_grace`), then stops.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut shutdown = state.shutdown.clone();
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    // Connection tasks live in this set so that aborting the server task aborts them all.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Typically EMFILE under load: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Small SSE frames must not wait for delayed ACKs (Nagle).
                let _ = stream.set_nodelay(true);
                let st = Arc::clone(&state);
                let svc = service_fn(move |req| router::handle(Arc::clone(&st), req));
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                conns.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with error");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        }
    }
    drop(listener);
    let grace = state.cfg.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period; cutting them");
    }
    conns.shutdown().await;
}
