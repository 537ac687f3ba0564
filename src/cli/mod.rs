//! The `airlock` subcommands: argument parsing (clap) and printing, nothing else.
//!
//! Every subcommand goes through the library (`airlock::Runtime`, `airlock::policy`,
//! `airlock::audit`); this module only turns flags into library calls and results into
//! text and exit codes. `anyhow` is used here, at the edge, and nowhere in the library.
//!
//! Exit codes of `airlock run` and `airlock run-wasm`: the tool's own code when it ran to
//! an exit; [`EXIT_LIMIT`] when a limit stopped it; [`EXIT_AIRLOCK`] when airlock itself
//! failed (bad usage, policies that do not load, an audit log that cannot be written);
//! [`EXIT_DENIED`] when the call was refused (by policy, or because the jail could not be
//! set up: the reason names the step); [`EXIT_TRAPPED`] when a wasm guest trapped; 128+N
//! when a process was killed by signal N (`airlock run-jail` and process tools);
//! [`EXIT_NEEDS_APPROVAL`] when the call waits for a human's approval.

mod approvals;
mod audit;
mod demo;
mod mcp;
mod policy;
mod run;
mod serve;
mod sessions;

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

/// A limit (wall time, fuel, memory, table, output) stopped the tool (as `timeout(1)`).
pub const EXIT_LIMIT: u8 = 124;
/// airlock itself failed: bad usage, policies that do not load, an unwritable audit log.
pub const EXIT_AIRLOCK: u8 = 125;
/// Policy (or sandbox set-up) refused the call; it did not run.
pub const EXIT_DENIED: u8 = 126;
/// The guest trapped (as a process killed by SIGABRT would).
pub const EXIT_TRAPPED: u8 = 134;
/// The call needs a human's approval and did not run yet: try again later (`EX_TEMPFAIL`).
pub const EXIT_NEEDS_APPROVAL: u8 = 75;
/// A protected path (tests, evals, benchmarks) changed during the call or since the last
/// one, or could not be checked: whatever the tool's exit code, its result is not to be
/// trusted (the audit record lists the changed paths).
pub const EXIT_TAMPERED: u8 = 123;

/// The exit codes of `airlock run` and `airlock run-wasm`, as `--help` shows them.
const EXIT_CODES_HELP: &str = "\
Exit codes of `run` and `run-wasm`:
  the tool's own  the tool ran to an exit (0 ok, 1..=255 its own failure)
  124             a limit (wall time, fuel, memory, table, output) stopped the tool
  125             airlock itself failed: bad usage, policies that do not load, an unwritable audit log
  126             the call was denied (policy, bad arguments, unknown tool); it did not run
  134             the guest trapped
  123             tampered: a protected path (tests, eval, benchmarks) changed; the result is not trusted
  75              the call needs a human's approval and did not run yet
Other subcommands: 0 success; 1 a check failed (`policy check`, `audit verify`); 125 airlock failed.";

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "Runs AI agents' tools in a sandbox, under declarative policies, with a hash-chained audit log.",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a tool defined in the policies, as a caller, in a workspace.
    ///
    /// Exit code: the tool's own; 124 a limit stopped it; 125 airlock failed; 126 the call
    /// was denied; 134 the guest trapped; 123 a protected path changed (tampered); 75 the call
    /// waits for a human's approval.
    Run(run::RunArgs),
    /// Run any wasm module under an ad-hoc grant of exactly the given capabilities (still
    /// audited), like `wasmtime run`.
    ///
    /// Exit code: the guest's own; 124 a limit stopped it; 125 airlock failed; 126 the
    /// call was denied (the module could not be started); 134 the guest trapped.
    RunWasm(run::RunWasmArgs),
    /// Run a command in the process jail under an ad-hoc grant of exactly the given
    /// capabilities (still audited), like `bwrap` or `nsjail`.
    ///
    /// Exit code: the command's own; 128+N when signal N killed it; 124 a limit stopped it;
    /// 125 airlock failed; 126 the jail refused or could not be set up.
    RunJail(run::RunJailArgs),
    /// On the built-in policies, in a temporary workspace: an allowed call, a denied call,
    /// a call that hits a limit, a call that tries to leave its preopen, then `audit verify`.
    Demo(demo::DemoArgs),
    /// Check, explain, or describe policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Verify (with signatures), tail, query or export the audit log; make a signing key.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Serve tools on a Unix socket: JSON-RPC 2.0 with MCP's methods, one object per line,
    /// callers known by their uid (SO_PEERCRED).
    Serve(serve::ServeArgs),
    /// Serve MCP on stdin/stdout: in this process, or relayed to `airlock serve`.
    Mcp(mcp::McpArgs),
    /// List, show, approve or deny the approvals calls are waiting for: through a running
    /// `airlock serve` (--socket), or on the approvals directory itself (--state-dir).
    Approvals(approvals::ApprovalsArgs),
    /// List or show the sessions of a running `airlock serve`, and resume a suspended one
    /// (admin callers only).
    Sessions(sessions::SessionsArgs),
}

/// Where the policies are.
#[derive(Debug, Clone, Args)]
pub struct PoliciesArg {
    /// The policy directory [default: $AIRLOCK_POLICIES, else ./policies, else the
    /// policies this binary was built with].
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
}

impl PoliciesArg {
    /// The directory to load.
    pub fn dir(&self) -> PathBuf {
        if let Some(dir) = &self.policies {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("AIRLOCK_POLICIES") {
            return PathBuf::from(dir);
        }
        let local = PathBuf::from("policies");
        if local.join("designations.toml").is_file() {
            return local;
        }
        builtin_policies()
    }
}

/// The policies shipped with this build (the source tree's `policies/`).
pub fn builtin_policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// Where the audit log is.
#[derive(Debug, Clone, Args)]
pub struct AuditArg {
    /// The audit log [default: $AIRLOCK_AUDIT, else ~/.local/state/airlock/audit.jsonl].
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
}

impl AuditArg {
    /// The log's path.
    pub fn path(&self) -> PathBuf {
        self.audit.clone().unwrap_or_else(airlock::runtime::default_audit_path)
    }
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_AIRLOCK } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Run(args) => with_tokio(run::run(args)),
        Command::RunWasm(args) => with_tokio(run::run_wasm(args)),
        Command::RunJail(args) => with_tokio(run::run_jail(args)),
        Command::Demo(args) => with_tokio(demo::demo(args)),
        Command::Policy(command) => with_tokio(policy::policy(command)),
        Command::Audit(command) => audit::audit(command),
        Command::Serve(args) => with_tokio(serve::serve(args)),
        Command::Mcp(args) => mcp::mcp(args),
        Command::Approvals(args) => approvals::approvals(args),
        Command::Sessions(args) => sessions::sessions(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("airlock: {}", error_text(&error));
            ExitCode::from(EXIT_AIRLOCK)
        }
    }
}

/// The error and its causes, each cause left out when the text before it already says it
/// (the library's errors put their source in their own message; `{:#}` would repeat it).
fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn with_tokio(future: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(future)
}

/// Logs to stderr, filtered by `AIRLOCK_LOG` (default: warnings).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
