//! `airlock mcp`: an MCP server on stdio, in process or relaying to `airlock serve`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Args;

use airlock::{
    Runtime,
    service::{
        peer::{Identity, PeerCred},
        stdio,
    },
};

use super::{AuditArg, PoliciesArg};

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Relay to the `airlock serve` listening on this socket instead of running tools in
    /// this process (the service then knows the caller by this process's uid).
    #[arg(long, value_name = "SOCKET", conflicts_with_all = ["policies", "audit", "caller"])]
    connect: Option<PathBuf>,
    #[command(flatten)]
    policies: PoliciesArg,
    #[command(flatten)]
    audit: AuditArg,
    /// The workspace of the calls [default: the current directory in process; with
    /// --connect, the service's own default unless given, and then it must be inside one of
    /// the service's --workspace-root].
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Who calls [default: the caller callers.toml maps this uid to, else `uid:N`].
    #[arg(long, value_name = "NAME")]
    caller: Option<String>,
}

/// Runs on a runtime of its own: a stdin read blocks a thread that only the end of stdin
/// frees, so the runtime is shut down without waiting for it.
pub fn mcp(args: McpArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(run(args));
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    if let Some(socket) = args.connect {
        let workspace = args
            .workspace
            .map(|dir| dir.canonicalize().with_context(|| format!("--workspace {}", dir.display())))
            .transpose()?;
        stdio::relay_stdio(&socket, workspace).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let workspace = match args.workspace {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory; pass --workspace")?,
    };
    let runtime = Runtime::builder(args.policies.dir()).audit_path(args.audit.path()).build()?;
    let identity = match args.caller {
        Some(name) => Identity::Named(name),
        None => Identity::Peer(PeerCred::own()),
    };
    stdio::serve_stdio(runtime, identity, workspace).await?;
    Ok(ExitCode::SUCCESS)
}
