//! `airlock serve`: the listening socket, its connections, signals, and an orderly stop.
//!
//! Owns: creating the socket (mode set before anyone can connect, never over a live
//! service, a stale one replaced, a non-socket never removed), the connection cap, peer
//! credentials at accept, SIGHUP (reload) and SIGTERM/SIGINT (stop).
//! Must not: read anything a client sends (that is `connection`), or leave the audit log
//! unflushed or the socket file behind when it stops normally.
//!
//! Stopping (SIGTERM or SIGINT): stop accepting; new calls are refused with `BUSY`;
//! running calls have the grace period to finish, then are cancelled (and audited as
//! such); a second SIGTERM/SIGINT cancels at once. Then connections close, the audit log is
//! flushed and closed ([`Runtime::close`]), and the socket file is removed.

use std::{
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::AsyncWriteExt,
    net::{UnixListener, UnixSocket, UnixStream},
    signal::unix::{Signal, SignalKind, signal},
    task::JoinSet,
};

use super::{
    Phase, Result, Service, ServiceConfig, ServiceError,
    connection::serve_connection,
    peer::{Identity, PeerCred},
    protocol::{BUSY, FORBIDDEN, Response, RpcError},
};
use crate::Runtime;

/// The listen backlog: connections the kernel queues before `accept`. Large enough for a
/// burst of a thousand clients; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// After the grace period, cancelled calls must be recorded within this time.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Connections must close within this time once their calls are done.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A refusal (too many connections, unknown uid) must be written within this time.
const REFUSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `airlock serve` was asked for. [`ServeConfig::new`] lists the defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The socket's path.
    pub socket: PathBuf,
    /// The socket file's mode: who may connect (the peers are then told apart by uid).
    pub mode: u32,
    /// Connections open at once; more are told `BUSY` and closed. Guards against a local
    /// client opening connections until the service runs out of file descriptors.
    pub max_connections: usize,
    /// How long running calls may take to finish once a stop is asked for.
    pub grace: Duration,
    /// How connections are served.
    pub service: ServiceConfig,
}

impl ServeConfig {
    /// A config for `socket` with these defaults: mode 0660, 1024 connections, 10 s grace,
    /// [`ServiceConfig::default`].
    pub fn new(socket: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            socket: socket.into(),
            mode: 0o660,
            max_connections: 1024,
            grace: Duration::from_secs(10),
            service: ServiceConfig::default(),
        }
    }
}

/// The socket's default path: `$AIRLOCK_SOCKET`, else `$XDG_RUNTIME_DIR/airlock/airlock.sock`,
/// else `/run/airlock/airlock.sock` for root and `/tmp/airlock-UID/airlock.sock` for others.
pub fn default_socket_path() -> PathBuf {
    if let Some(path) = std::env::var_os("AIRLOCK_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("airlock/airlock.sock");
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    match unsafe { libc::getuid() } {
        0 => PathBuf::from("/run/airlock/airlock.sock"),
        uid => PathBuf::from(format!("/tmp/airlock-{uid}/airlock.sock")),
    }
}

/// Why [`Server::run_until`] stopped when its future completed.
const STOP_REQUESTED: &str = "stop requested";

/// Binds the socket and serves until SIGTERM or SIGINT.
pub async fn serve(runtime: Runtime, config: ServeConfig) -> crate::Result<()> {
    Server::bind(runtime, config)?.run().await
}

/// A bound service, not yet accepting.
pub struct Server {
    listener: UnixListener,
    config: ServeConfig,
    service: Arc<Service>,
    /// The socket file's device and inode, so that only our own file is removed at the end.
    socket_file: (u64, u64),
}

impl Server {
    /// Checks the settings, raises the open-file limit, installs nothing yet, and binds the
    /// socket (see the module header for how an existing path is treated).
    pub fn bind(runtime: Runtime, config: ServeConfig) -> Result<Server> {
        let service = Arc::new(Service::new(Arc::new(runtime), config.service.clone())?);
        raise_open_file_limit();
        let listener = bind(&config.socket, config.mode)?;
        let meta = std::fs::symlink_metadata(&config.socket)
            .map_err(|source| ServiceError::Bind { path: config.socket.clone(), source })?;
        Ok(Server { listener, service, socket_file: (meta.dev(), meta.ino()), config })
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.config.socket
    }

    /// The shared service state.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// Accepts connections until SIGTERM or SIGINT, then stops in order (module header).
    pub async fn run(self) -> crate::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Like [`Server::run`], and also stops in order when `stop` completes (an embedder's
    /// own shutdown signal).
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> crate::Result<()> {
        let Server { listener, config, service, socket_file } = self;
        let mut stop_requested = std::pin::pin!(stop);
        let mut term = install(SignalKind::terminate(), "SIGTERM")?;
        let mut int = install(SignalKind::interrupt(), "SIGINT")?;
        let mut hup = install(SignalKind::hangup(), "SIGHUP")?;
        let open = Arc::new(AtomicUsize::new(0));
        let mut connections = JoinSet::new();
        let stop = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => accept(&service, &config, &open, &mut connections, stream),
                    Err(error) => {
                        // Out of descriptors or memory: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                () = &mut stop_requested => break STOP_REQUESTED,
                _ = hup.recv() => {
                    let service = Arc::clone(&service);
                    tokio::spawn(async move { reload_on_signal(service).await });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        };
        drop(listener);
        service.advance(Phase::Draining);
        let in_flight = service.calls_in_flight();
        if stop == STOP_REQUESTED {
            // The embedder's own, expected stop: not worth a warning.
            tracing::info!("{stop}: stopping; {in_flight} call(s) in flight get {:?} to finish", config.grace);
        } else {
            tracing::warn!("{stop}: stopping; {in_flight} call(s) in flight get {:?} to finish", config.grace);
        }
        let finished = tokio::select! {
            finished = service.wait_for_calls(config.grace) => finished,
            _ = term.recv() => false,
            _ = int.recv() => false,
        };
        if !finished {
            tracing::warn!("cancelling {} call(s) still running", service.calls_in_flight());
            service.advance(Phase::Cancelling);
            if !service.wait_for_calls(CANCEL_WAIT).await {
                tracing::error!("{} cancelled call(s) did not finish recording", service.calls_in_flight());
            }
        }
        service.advance(Phase::Closed);
        let closed = tokio::time::timeout(CLOSE_WAIT, async { while connections.join_next().await.is_some() {} }).await;
        if closed.is_err() {
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
        let runtime = Arc::clone(service.runtime());
        drop(service);
        let flushed = match Arc::try_unwrap(runtime) {
            Ok(runtime) => runtime.close().await,
            Err(runtime) => runtime.audit().flush().await.map_err(Into::into),
        };
        remove_socket(&config.socket, socket_file);
        flushed
    }
}

/// Hands an accepted stream to a connection task, or refuses it.
fn accept(
    service: &Arc<Service>,
    config: &ServeConfig,
    open: &Arc<AtomicUsize>,
    connections: &mut JoinSet<()>,
    stream: UnixStream,
) {
    if open.load(Ordering::Relaxed) >= config.max_connections {
        let message = format!(
            "too many connections ({} open, the service's --max-connections); close idle ones or retry later",
            config.max_connections
        );
        tokio::spawn(refuse(stream, RpcError::new(BUSY, message)));
        return;
    }
    let peer = match PeerCred::of(&stream) {
        Ok(peer) => peer,
        Err(error) => {
            tracing::warn!(%error, "cannot read the peer's credentials (SO_PEERCRED); connection dropped");
            return;
        }
    };
    let identity = Identity::Peer(peer);
    if let Err(reason) = identity.caller(&service.runtime().policies()) {
        tracing::info!(uid = peer.uid, pid = ?peer.pid, "refused: {reason}");
        tokio::spawn(refuse(stream, RpcError::new(FORBIDDEN, reason)));
        return;
    }
    open.fetch_add(1, Ordering::Relaxed);
    let (service, open) = (Arc::clone(service), Arc::clone(open));
    connections.spawn(async move {
        let (reader, writer) = stream.into_split();
        serve_connection(service, identity, reader, writer).await;
        open.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Writes one error (id null) and closes.
async fn refuse(mut stream: UnixStream, error: RpcError) {
    let line = Response::error(None, error).to_line();
    let _ = tokio::time::timeout(REFUSE_WRITE_TIMEOUT, async {
        stream.write_all(line.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

async fn reload_on_signal(service: Arc<Service>) {
    let reloaded = {
        let service = Arc::clone(&service);
        tokio::task::spawn_blocking(move || service.reload()).await
    };
    match reloaded {
        Ok(Ok(())) => tracing::info!(digest = %service.runtime().policies().digest(), "SIGHUP: policies reloaded"),
        Ok(Err(errors)) => tracing::error!("SIGHUP: policy reload rejected; the old set stays in force:\n{errors}"),
        Err(join) => tracing::error!("SIGHUP: policy reload failed: {join}"),
    }
}

fn install(kind: SignalKind, name: &'static str) -> Result<Signal> {
    signal(kind).map_err(|source| ServiceError::Signal { signal: name, source })
}

/// Binds `path` with `mode`; see the module header for existing paths.
fn bind(path: &Path, mode: u32) -> Result<UnixListener> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        std::fs::create_dir_all(parent)
            .map_err(|source| ServiceError::SocketDir { path: parent.to_path_buf(), source })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(ServiceError::NotASocket { path: path.to_path_buf() }),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(ServiceError::AlreadyServing { path: path.to_path_buf() }),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!("removing the stale socket {}", path.display());
                std::fs::remove_file(path)
                    .map_err(|source| ServiceError::RemoveStale { path: path.to_path_buf(), source })?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ServiceError::Bind { path: path.to_path_buf(), source }),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ServiceError::Bind { path: path.to_path_buf(), source }),
    }
    let socket = UnixSocket::new_stream().map_err(|source| ServiceError::Bind { path: path.to_path_buf(), source })?;
    // The socket file is created by bind(2) with the umask's mode; owner-only until the
    // chmod below, so that no one connects through a wider mode in between.
    // SAFETY: umask has no preconditions; it changes a process-wide setting, restored at
    // once (no other thread creates files while the service starts).
    let old = unsafe { libc::umask(0o177) };
    let bound = socket.bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    bound.map_err(|source| ServiceError::Bind { path: path.to_path_buf(), source })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| ServiceError::Chmod {
        path: path.to_path_buf(),
        mode,
        source,
    })?;
    socket.listen(LISTEN_BACKLOG).map_err(|source| ServiceError::Bind { path: path.to_path_buf(), source })
}

/// Removes the socket file if it is still the one we bound.
fn remove_socket(path: &Path, (dev, ino): (u64, u64)) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.dev() == dev && meta.ino() == ino => {
            if let Err(error) = std::fs::remove_file(path) {
                tracing::warn!(%error, "cannot remove the socket {}", path.display());
            }
        }
        _ => {}
    }
}

/// Raises the soft limit of open files to the hard limit: each connection is a descriptor.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= limit.rlim_max {
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit; raising the soft limit up to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        tracing::warn!("cannot raise the open-file limit: {}", std::io::Error::last_os_error());
    }
}
