//! `airlock serve`: the socket service (see `airlock::service` for the protocol).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;

use airlock::{
    Runtime,
    service::{ServeConfig, ServiceConfig, default_socket_path, framing, server::Server},
};

use super::{AuditArg, PoliciesArg};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The socket [default: $AIRLOCK_SOCKET, else $XDG_RUNTIME_DIR/airlock/airlock.sock, else
    /// /run/airlock/airlock.sock as root, /tmp/airlock-UID/airlock.sock otherwise].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(flatten)]
    policies: PoliciesArg,
    #[command(flatten)]
    audit: AuditArg,
    /// The socket file's mode, in octal: who may connect (each peer is then known by its uid).
    #[arg(long, value_name = "OCTAL", default_value = "0660", value_parser = parse_mode)]
    mode: u32,
    /// Connections open at once; more are refused with a JSON-RPC error.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,
    /// Calls of one caller that run at once (over all its connections); more wait their turn.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_concurrent_per_caller: usize,
    /// Requests open at once on one connection; more are refused with a JSON-RPC error.
    #[arg(long, value_name = "N", default_value_t = 128)]
    max_in_flight_per_connection: usize,
    /// The workspace of calls that do not choose one. Without it (and without
    /// --workspace-root) every call is refused: the service never defaults to its own
    /// working directory.
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// A directory inside which a client may choose its workspace
    /// (`_meta["airlock/workspace"]` on initialize or tools/call). Repeatable.
    #[arg(long = "workspace-root", value_name = "DIR")]
    workspace_roots: Vec<PathBuf>,
    /// On SIGTERM/SIGINT, how long running calls may take to finish before they are
    /// cancelled (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// How long a request line may take to arrive once it has started.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    line_timeout: Duration,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode such as 0660"))
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::builder(args.policies.dir()).audit_path(args.audit.path()).build()?;
    let mut config = ServeConfig::new(args.socket.unwrap_or_else(default_socket_path));
    config.mode = args.mode;
    config.max_connections = args.max_connections;
    config.grace = args.grace;
    config.service = ServiceConfig {
        workspace: args.workspace,
        workspace_roots: args.workspace_roots,
        max_concurrent_per_caller: args.max_concurrent_per_caller,
        max_in_flight_per_connection: args.max_in_flight_per_connection,
        max_line_bytes: framing::MAX_LINE_BYTES,
        line_timeout: args.line_timeout,
        respond_to_cancelled: true,
    };
    let server = Server::bind(runtime, config)?;
    eprintln!(
        "airlock serve: listening on {} (pid {}); SIGHUP reloads the policies, SIGTERM stops",
        server.socket().display(),
        std::process::id()
    );
    server.run().await?;
    eprintln!("airlock serve: stopped");
    Ok(ExitCode::SUCCESS)
}
