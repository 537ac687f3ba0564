//! One connection: read lines, answer each request once, run tool calls concurrently,
//! write responses as they finish, and withdraw every running call when the client goes.
//!
//! Owns: the connection's state (initialized or not, its workspace, the calls it has in
//! flight and how to cancel each), the reading loop and the writer task.
//! Must not: handle a method itself (that is `mcp`), or let one connection's trouble (a
//! bad line, a slow reader, a disconnect) touch any other connection.
//!
//! Works over any byte stream pair, so the socket server and `airlock mcp` on stdio run the
//! same code.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde_json::{Map, Value};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    sync::{mpsc, oneshot},
    task::JoinSet,
};

use super::{
    Phase, Service,
    framing::LineReader,
    peer::Identity,
    protocol::{self, BUSY, INVALID_REQUEST, Incoming, RequestId, Response, RpcError},
};

/// A client that does not read its responses for this long is disconnected: its writer
/// would otherwise hold the connection's calls and memory forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Response lines queued for the writer before a finished call waits to hand in its own.
const WRITE_QUEUE: usize = 256;

/// One connection's state, shared by its reading loop and its call tasks.
pub(super) struct Connection {
    pub(super) service: Arc<Service>,
    pub(super) identity: Identity,
    /// The connection's id: the default session of its calls.
    pub(super) id: String,
    out: mpsc::Sender<String>,
    pub(super) state: Mutex<ConnectionState>,
    /// How to cancel each tool call in flight: dropping or firing the sender cancels it.
    cancels: Mutex<HashMap<RequestId, oneshot::Sender<()>>>,
    /// Calls the client cancelled (their response may be withheld, see
    /// `ServiceConfig::respond_to_cancelled`).
    cancelled: Mutex<HashSet<RequestId>>,
}

/// What `initialize` settled.
#[derive(Debug, Default)]
pub(super) struct ConnectionState {
    pub(super) initialized: bool,
    pub(super) protocol_version: Option<String>,
    /// The workspace the client chose for the connection, if it chose one.
    pub(super) workspace: Option<PathBuf>,
}

/// Serves one connection until the client leaves or the service closes. Every tool call
/// still running then is cancelled and audited before this returns.
pub async fn serve_connection<R, W>(service: Arc<Service>, identity: Identity, reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, lines_out) = mpsc::channel(WRITE_QUEUE);
    let writer = tokio::spawn(write_lines(writer, lines_out));
    let connection = Arc::new(Connection {
        id: service.connection_id(),
        identity,
        out,
        state: Mutex::new(ConnectionState::default()),
        cancels: Mutex::new(HashMap::new()),
        cancelled: Mutex::new(HashSet::new()),
        service: Arc::clone(&service),
    });
    tracing::debug!(connection = %connection.id, identity = ?connection.identity, "connection opened");
    let mut lines = LineReader::new(reader, service.config.max_line_bytes, service.config.line_timeout);
    let mut phase = service.phase.subscribe();
    let mut generation = service.generation.subscribe();
    let mut tasks = JoinSet::new();
    loop {
        let now = *phase.borrow_and_update();
        if now == Phase::Closed || (now >= Phase::Draining && tasks.is_empty()) {
            break;
        }
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => connection.handle_line(&line, &mut tasks).await,
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(connection = %connection.id, %error, "closing the connection");
                    connection.send(Response::error(None, RpcError::new(INVALID_REQUEST, error.to_string()))).await;
                    break;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = phase.changed() => {}
            Ok(()) = generation.changed() => {
                if connection.state().initialized {
                    connection.send_line(protocol::notification_line("notifications/tools/list_changed", None)).await;
                }
            }
            () = connection.out.closed() => break,
        }
    }
    // The client is gone (or we are closing): withdraw whatever still runs; each call is
    // audited as cancelled by its own task.
    connection.cancels.lock().unwrap_or_else(PoisonError::into_inner).clear();
    while tasks.join_next().await.is_some() {}
    tracing::debug!(connection = %connection.id, "connection closed");
    drop(connection);
    let _ = writer.await;
}

impl Connection {
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, ConnectionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a response for the writer (dropped if the client is gone).
    pub(super) async fn send(&self, response: Response) {
        self.send_line(response.to_line()).await;
    }

    async fn send_line(&self, line: String) {
        let _ = self.out.send(line).await;
    }

    async fn handle_line(self: &Arc<Self>, line: &[u8], tasks: &mut JoinSet<()>) {
        match protocol::parse_line(line) {
            Incoming::Blank | Incoming::Response => {}
            Incoming::Invalid(response) => self.send(response).await,
            Incoming::Notification { method, params } => self.notification(&method, &params),
            Incoming::Request { id, method, params } => self.request(id, method, params, tasks).await,
        }
    }

    fn notification(&self, method: &str, params: &Map<String, Value>) {
        // `notifications/initialized` and unknown notifications need nothing done. A
        // notification gets no answer, so a bad one is ignored (logged).
        if method != "notifications/cancelled" {
            return;
        }
        let Some(id) = params.get("requestId").and_then(RequestId::from_value) else {
            tracing::debug!(connection = %self.id, "notifications/cancelled without a valid requestId");
            return;
        };
        let cancel = self.cancels.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        if let Some(cancel) = cancel {
            self.cancelled.lock().unwrap_or_else(PoisonError::into_inner).insert(id);
            let _ = cancel.send(());
        }
    }

    async fn request(
        self: &Arc<Self>,
        id: RequestId,
        method: String,
        params: Map<String, Value>,
        tasks: &mut JoinSet<()>,
    ) {
        // Handled in line, in order: `initialize` must be settled before the next line.
        if let Some(response) = self.immediate(&id, &method, &params) {
            self.send(response).await;
            return;
        }
        if tasks.len() >= self.service.config.max_in_flight_per_connection {
            let error = RpcError::new(
                BUSY,
                format!(
                    "{} requests are already open on this connection; wait for some to finish, or open another connection",
                    tasks.len()
                ),
            );
            self.send(Response::error(Some(&id), error)).await;
            return;
        }
        let connection = Arc::clone(self);
        if method == "tools/call" {
            if self.service.phase() >= Phase::Draining {
                let error = RpcError::new(BUSY, "the service is shutting down; retry against its next start");
                self.send(Response::error(Some(&id), error)).await;
                return;
            }
            let (cancel, cancelled) = oneshot::channel();
            let duplicate = {
                let mut cancels = self.cancels.lock().unwrap_or_else(PoisonError::into_inner);
                let duplicate = cancels.contains_key(&id);
                if !duplicate {
                    cancels.insert(id.clone(), cancel);
                }
                duplicate
            };
            if duplicate {
                let error =
                    RpcError::new(INVALID_REQUEST, format!("request id {id} is already in use by a call in flight"));
                self.send(Response::error(Some(&id), error)).await;
                return;
            }
            let guard = self.service.call_started();
            let mut phase = self.service.phase.subscribe();
            let stop = async move {
                tokio::select! {
                    _ = cancelled => {}
                    _ = phase.wait_for(|phase| *phase >= Phase::Cancelling) => {}
                }
            };
            tasks.spawn(async move {
                let response = connection.call_tool(&id, params, stop).await;
                drop(guard);
                connection.cancels.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                let was_cancelled = connection.cancelled.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                if !was_cancelled || connection.service.config.respond_to_cancelled {
                    connection.send(response).await;
                }
            });
        } else {
            tasks.spawn(async move {
                let response = connection.method(&id, &method, params).await;
                connection.send(response).await;
            });
        }
    }
}

/// Writes response lines as they come; stops when every sender is gone, or the client
/// stops reading for [`WRITE_TIMEOUT`] or the stream fails.
async fn write_lines<W: AsyncWrite + Unpin>(mut writer: W, mut lines: mpsc::Receiver<String>) {
    while let Some(line) = lines.recv().await {
        let mut batch = line;
        // Whatever else is ready goes out in the same write.
        while batch.len() < 64 << 10 {
            match lines.try_recv() {
                Ok(more) => batch.push_str(&more),
                Err(_) => break,
            }
        }
        let write = async {
            writer.write_all(batch.as_bytes()).await?;
            writer.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "cannot write to the client; closing");
                return;
            }
            Err(_) => {
                tracing::debug!("the client did not read its responses for {WRITE_TIMEOUT:?}; closing");
                return;
            }
        }
    }
    let _ = writer.shutdown().await;
}
