//! `airlock mcp`: MCP's stdio transport (newline-delimited JSON-RPC on stdin/stdout),
//! either served in process by a [`Runtime`] of its own, or relayed to a running
//! `airlock serve`.
//!
//! Owns: the two stdio modes. In process, the same connection code as the socket runs over
//! stdin/stdout, with the caller named by the operator (`--caller`) or mapped from this
//! process's uid, and the workspace given (default: the current directory). As a relay,
//! every line is passed through unchanged except two things: `--workspace` is added to
//! `initialize` as `_meta["airlock/workspace"]` (the service checks it against its roots),
//! and responses to requests the client cancelled are dropped (MCP: a cancelled request
//! gets no response; the socket sends one).
//! Must not: write anything but JSON-RPC messages to stdout (logs go to stderr), or
//! pick an identity on the relay path: there the service reads it from the socket.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use super::{
    Result, Service, ServiceConfig, ServiceError, connection::serve_connection, peer::Identity, protocol::RequestId,
    workspace::WORKSPACE_META,
};
use crate::Runtime;

/// After stdin ends, how long the relay waits for the service to finish and close.
const RELAY_DRAIN: Duration = Duration::from_secs(10);

/// Serves MCP on stdin/stdout in process until stdin ends; then cancels what still runs
/// and closes the runtime (flushing the audit log).
pub async fn serve_stdio(runtime: Runtime, identity: Identity, workspace: PathBuf) -> crate::Result<()> {
    let config = ServiceConfig { workspace: Some(workspace), respond_to_cancelled: false, ..ServiceConfig::default() };
    let service = Arc::new(Service::new(Arc::new(runtime), config)?);
    serve_connection(Arc::clone(&service), identity, tokio::io::stdin(), tokio::io::stdout()).await;
    let runtime = Arc::clone(service.runtime());
    drop(service);
    match Arc::try_unwrap(runtime) {
        Ok(runtime) => runtime.close().await,
        Err(runtime) => Ok(runtime.audit().flush().await?),
    }
}

/// Relays stdin/stdout to the service at `socket` until either side ends.
pub async fn relay_stdio(socket: &Path, workspace: Option<PathBuf>) -> Result<()> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ServiceError::Connect { path: socket.to_path_buf(), source })?;
    let (from_service, mut to_service) = stream.into_split();
    let cancelled = Arc::new(Mutex::new(HashSet::new()));

    let up = {
        let cancelled = Arc::clone(&cancelled);
        async move {
            let mut stdin = BufReader::new(tokio::io::stdin());
            let mut line = Vec::new();
            loop {
                line.clear();
                if stdin.read_until(b'\n', &mut line).await.map_err(ServiceError::Stdio)? == 0 {
                    break;
                }
                let forwarded = rewrite_up(&line, workspace.as_deref(), &cancelled);
                if to_service.write_all(forwarded.as_deref().unwrap_or(&line)).await.is_err() {
                    // The service closed the connection; what it said last is relayed below.
                    break;
                }
            }
            // The client is done: the service sees the end, cancels what still runs, closes.
            let _ = to_service.shutdown().await;
            Ok::<(), ServiceError>(())
        }
    };
    let down = async move {
        let mut service = BufReader::new(from_service);
        let mut stdout = tokio::io::stdout();
        let mut line = Vec::new();
        loop {
            line.clear();
            if service.read_until(b'\n', &mut line).await.map_err(ServiceError::Stdio)? == 0 {
                break;
            }
            if withheld(&line, &cancelled) {
                continue;
            }
            stdout.write_all(&line).await.map_err(ServiceError::Stdio)?;
            stdout.flush().await.map_err(ServiceError::Stdio)?;
        }
        Ok::<(), ServiceError>(())
    };
    tokio::pin!(down);
    tokio::select! {
        // The service closed: nothing more can be answered.
        result = &mut down => result,
        result = up => {
            result?;
            match tokio::time::timeout(RELAY_DRAIN, down).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
    }
}

/// The line to send instead of `line`, if it changes: `initialize` gains the workspace.
/// Also notes the ids of cancelled requests.
fn rewrite_up(line: &[u8], workspace: Option<&Path>, cancelled: &Mutex<HashSet<RequestId>>) -> Option<Vec<u8>> {
    let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    match message.get("method").and_then(Value::as_str) {
        Some("notifications/cancelled") => {
            if let Some(id) = message.get("params").and_then(|p| p.get("requestId")).and_then(RequestId::from_value) {
                cancelled.lock().unwrap_or_else(PoisonError::into_inner).insert(id);
            }
            None
        }
        Some("initialize") => {
            let workspace = workspace?;
            let params = message.entry("params").or_insert_with(|| Value::Object(Default::default()));
            let meta = params.as_object_mut()?.entry("_meta").or_insert_with(|| Value::Object(Default::default()));
            let meta = meta.as_object_mut()?;
            if meta.contains_key(WORKSPACE_META) {
                return None;
            }
            meta.insert(WORKSPACE_META.into(), Value::String(workspace.to_string_lossy().into_owned()));
            let mut bytes = serde_json::to_vec(&message).ok()?;
            bytes.push(b'\n');
            Some(bytes)
        }
        _ => None,
    }
}

/// Whether `line` answers a request the client cancelled (it is then dropped).
fn withheld(line: &[u8], cancelled: &Mutex<HashSet<RequestId>>) -> bool {
    let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(line) else {
        return false;
    };
    if message.contains_key("method") {
        return false;
    }
    match message.get("id").and_then(RequestId::from_value) {
        Some(id) => cancelled.lock().unwrap_or_else(PoisonError::into_inner).remove(&id),
        None => false,
    }
}
