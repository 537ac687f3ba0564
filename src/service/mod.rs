//! The socket service (`airlock serve`) and MCP over stdio (`airlock mcp`): JSON-RPC 2.0,
//! one object per line, with MCP's method names and shapes (revision 2025-11-25), in front
//! of one shared [`Runtime`].
//!
//! Owns: line framing with its caps (`framing`), JSON-RPC parsing and error codes
//! ([`protocol`]), peer identity from `SO_PEERCRED` ([`peer`]), the workspace rules
//! ([`workspace`]), the per-connection loop (`connection`), the methods (`mcp`), the
//! listening socket, signals and shutdown (`server`), the stdio server and relay
//! ([`stdio`]) and a small blocking client ([`client`]).
//! Must not: decide policy, run tools or write audit records itself: every tool call goes
//! through [`Runtime::call_until`]. Must never take a caller's identity from what the
//! client sends.
//!
//! # The protocol
//!
//! Methods: `initialize`, `notifications/initialized`, `ping`, `tools/list`, `tools/call`,
//! `notifications/cancelled`, and for admin callers (callers.toml `admin = true`)
//! `airlock/approvals.list`, `airlock/approvals.get`, `airlock/approvals.decide`,
//! `airlock/audit.tail`, `airlock/policy.reload`, `airlock/sessions.list`,
//! `airlock/sessions.show` (`{session}`), `airlock/sessions.resume` (`{session}`; audited,
//! the resumer is the connection's caller and uid). The service sends
//! `notifications/tools/list_changed` after a policy reload.
//!
//! - **Identity**: the socket peer's uid (kernel credentials), mapped by callers.toml
//!   `uids`; unmapped uids are `uid:N` under the default designation, or refused. A
//!   `caller` in params is rejected (-32602). The `initialize` result's `_meta` says what
//!   the service settled on: `airlock/caller`, `airlock/designation`, `airlock/admin`,
//!   `airlock/session`, `airlock/workspace`.
//! - **Workspace**: the service's `--workspace`, or one the client chooses with
//!   `_meta["airlock/workspace"]` (on `initialize` for the connection, on `tools/call` for
//!   one call) inside a `--workspace-root` (see [`workspace`]).
//! - **Session**: the connection's id, unless `tools/call` sets `_meta["airlock/session"]`.
//!   Budgets (`[designations.NAME.budgets]`) and the denial tripwire count per session
//!   (see [`crate::session`]).
//! - **Approvals**: a call that needs a human's approval returns at once with status
//!   `needs-approval` and the pending approval's id, unless `tools/call` sets
//!   `_meta["airlock/approvalWaitMs"]`: then it waits that long for the decision (and holds
//!   one of its caller's slots meanwhile). Admins decide with `airlock/approvals.decide`;
//!   the approver recorded is the deciding connection's caller and uid.
//! - **Concurrency**: requests on one connection run concurrently and are answered as they
//!   finish. At most [`ServiceConfig::max_in_flight_per_connection`] requests may be open
//!   on a connection (more get `BUSY` at once); at most
//!   [`ServiceConfig::max_concurrent_per_caller`] calls of one caller run at once, over all
//!   its connections: further calls *wait* for a slot, in arrival order (a waiting call can
//!   be cancelled like a running one).
//! - **Cancellation**: `notifications/cancelled` (by `requestId`), a client that closes
//!   its connection, or shutdown after its grace period stop the call; it is audited with
//!   status `cancelled`. On the socket the cancelled call still gets its response (the
//!   outcome, with its audit record's number); on stdio, as MCP asks, it gets none.
//! - **Errors**: see the codes in [`protocol`].

pub mod client;
mod connection;
pub mod framing;
mod mcp;
pub mod peer;
pub mod protocol;
pub mod server;
pub mod stdio;
pub mod workspace;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Semaphore, watch};

pub use connection::serve_connection;
pub use server::{ServeConfig, default_socket_path, serve};

use crate::{Runtime, policy::PolicyErrors};
use workspace::WorkspacePolicy;

/// Errors that stop the service from starting or from shutting down cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("another airlock service is already listening on {path}; stop it first, or pass another --socket")]
    AlreadyServing { path: PathBuf },
    #[error("{path} exists and is not a socket; refusing to replace it: remove it or pass another --socket")]
    NotASocket { path: PathBuf },
    #[error("cannot remove the stale socket {path}: {source}")]
    RemoveStale { path: PathBuf, source: std::io::Error },
    #[error("cannot create the socket's directory {path}: {source}")]
    SocketDir { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {path}: {source}; check that its directory is writable")]
    Bind { path: PathBuf, source: std::io::Error },
    #[error("cannot set mode {mode:o} on socket {path}: {source}")]
    Chmod { path: PathBuf, mode: u32, source: std::io::Error },
    #[error("cannot install the {signal} handler: {source}")]
    Signal { signal: &'static str, source: std::io::Error },
    #[error("workspace {path} cannot be used: {source}; pass an existing directory")]
    Workspace { path: PathBuf, source: std::io::Error },
    #[error("cannot read or write the standard streams: {0}")]
    Stdio(std::io::Error),
    #[error("cannot connect to the airlock service at {path}: {source}; is `airlock serve` running there?")]
    Connect { path: PathBuf, source: std::io::Error },
}

/// The service module's result alias.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// How a service treats its clients. [`ServiceConfig::default`] lists the defaults.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The default workspace of calls.
    pub workspace: Option<PathBuf>,
    /// Where a client may choose its own workspace (`_meta["airlock/workspace"]`).
    pub workspace_roots: Vec<PathBuf>,
    /// Calls of one caller that run at once, over all its connections; more wait.
    pub max_concurrent_per_caller: usize,
    /// Requests open at once on one connection; more are refused with `BUSY`. Guards
    /// against a client that pipelines without bound (each open request holds memory).
    pub max_in_flight_per_connection: usize,
    /// The longest request line ([`framing::MAX_LINE_BYTES`]).
    pub max_line_bytes: usize,
    /// How long a started line may take to finish ([`framing::LINE_TIMEOUT`]).
    pub line_timeout: Duration,
    /// Whether a call cancelled by `notifications/cancelled` still gets a response: yes on
    /// the socket (the client learns the audit record), no on stdio (as MCP asks).
    pub respond_to_cancelled: bool,
}

impl Default for ServiceConfig {
    /// No default workspace and no roots (calls are refused until one is configured), 16
    /// concurrent calls per caller, 128 open requests per connection, 1 MiB lines finished
    /// within 10 s, responses to cancelled calls.
    fn default() -> Self {
        ServiceConfig {
            workspace: None,
            workspace_roots: Vec::new(),
            max_concurrent_per_caller: 16,
            max_in_flight_per_connection: 128,
            max_line_bytes: framing::MAX_LINE_BYTES,
            line_timeout: framing::LINE_TIMEOUT,
            respond_to_cancelled: true,
        }
    }
}

/// Where the service is in its life; only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Serving.
    Running,
    /// Shutting down: no new calls; running calls may finish.
    Draining,
    /// The grace period is over: running calls are cancelled.
    Cancelling,
    /// Connections close.
    Closed,
}

/// The state every connection shares: the runtime, the rules, the caps, the phase.
pub struct Service {
    runtime: Arc<Runtime>,
    config: ServiceConfig,
    workspaces: WorkspacePolicy,
    caller_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    phase: watch::Sender<Phase>,
    /// Tool calls running (or waiting for a caller slot) over all connections.
    calls: watch::Sender<usize>,
    /// Bumped by every successful policy reload (connections then send `list_changed`).
    generation: watch::Sender<u64>,
    next_connection: AtomicU64,
    /// Makes connection ids unique across restarts of the service.
    epoch: u64,
}

impl Service {
    /// A service over `runtime`; checks the workspace settings.
    pub fn new(runtime: Arc<Runtime>, config: ServiceConfig) -> Result<Service> {
        let workspaces = WorkspacePolicy::new(config.workspace.as_deref(), &config.workspace_roots)?;
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Ok(Service {
            runtime,
            config,
            workspaces,
            caller_slots: Mutex::new(HashMap::new()),
            phase: watch::Sender::new(Phase::Running),
            calls: watch::Sender::new(0),
            generation: watch::Sender::new(0),
            next_connection: AtomicU64::new(1),
            epoch,
        })
    }

    /// The runtime behind the service.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Reloads the policies ([`Runtime::reload`]); on success, open connections are told
    /// that the tool list may have changed. On error the old set stays in force.
    pub fn reload(&self) -> Result<(), PolicyErrors> {
        self.runtime.reload()?;
        self.generation.send_modify(|generation| *generation += 1);
        Ok(())
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Moves to `phase` (never backwards).
    pub fn advance(&self, phase: Phase) {
        self.phase.send_if_modified(|now| {
            let later = phase > *now;
            if later {
                *now = phase;
            }
            later
        });
    }

    /// Tool calls running or waiting now.
    pub fn calls_in_flight(&self) -> usize {
        *self.calls.borrow()
    }

    /// Waits until no tool call is running or waiting, at most `limit`; true if none is.
    pub async fn wait_for_calls(&self, limit: Duration) -> bool {
        let mut calls = self.calls.subscribe();
        tokio::time::timeout(limit, calls.wait_for(|n| *n == 0)).await.is_ok()
    }

    /// A fresh connection id (`c<epoch>-<n>`): the default session of its calls.
    fn connection_id(&self) -> String {
        format!("c{:x}-{}", self.epoch, self.next_connection.fetch_add(1, Ordering::Relaxed))
    }

    /// The semaphore that caps `caller`'s concurrent calls.
    fn caller_slots(&self, caller: &str) -> Arc<Semaphore> {
        let mut slots = self.caller_slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            slots
                .entry(caller.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_concurrent_per_caller.max(1)))),
        )
    }

    /// Counts one tool call in flight until the guard is dropped.
    fn call_started(self: &Arc<Self>) -> CallGuard {
        self.calls.send_modify(|n| *n += 1);
        CallGuard(Arc::clone(self))
    }
}

/// One tool call in flight (see [`Service::calls_in_flight`]).
struct CallGuard(Arc<Service>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.calls.send_modify(|n| *n = n.saturating_sub(1));
    }
}
