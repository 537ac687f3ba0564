//! `airlock approvals list [--all | --state S] | show ID | approve ID [--uses N] | deny ID --reason TEXT`.
//!
//! Two ways to reach the approvals:
//! - `--socket PATH` (the default, at the service's default socket): through a running
//!   `airlock serve`, whose `airlock/approvals.*` methods admit admin callers only; the
//!   service knows who we are from the socket's peer credentials and records that as the
//!   approver.
//! - `--state-dir DIR`: on the approvals directory itself (`DIR/approvals`; the service
//!   and `airlock run` keep theirs in `$XDG_STATE_HOME/airlock/approvals`), without a
//!   service, like `git` on a repository: whoever can write the directory decides. The
//!   approver is `--approver NAME`, else the local user and uid. A running service sees
//!   such a decision within its poll interval.
//!
//! Exit codes: 0; 1 when `list` met approval files it cannot read (they are named on
//! stderr); 125 on any error (unknown id, not pending, no service, ...).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use airlock::{
    approvals::{
        Approval, ApprovalFilter, Approvals, DEFAULT_APPROVAL_TTL, DecideParams, GetParams, ListParams, Verdict,
    },
    audit::Redactor,
};

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    command: ApprovalsCommand,
    /// The socket of a running `airlock serve` [default: the service's default socket].
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "state_dir")]
    socket: Option<PathBuf>,
    /// Work on the approvals in DIR/approvals directly, without a service (DIR is airlock's
    /// state directory, by default ~/.local/state/airlock).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// With --state-dir: the name recorded as the approver [default: the local user and uid].
    #[arg(long, global = true, value_name = "NAME", requires = "state_dir")]
    approver: Option<String>,
    /// Print approvals as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// List the pending approvals (or those in another state), oldest first.
    List {
        /// Every approval, whatever its state.
        #[arg(long, conflicts_with = "state")]
        all: bool,
        /// Only approvals in this state: pending, approved, denied, expired, used, all.
        #[arg(long, value_name = "STATE")]
        state: Option<ApprovalFilter>,
    },
    /// Show one approval: the exact call it is for (arguments redacted), its state, who
    /// decided and why.
    Show {
        /// The approval's id.
        id: String,
    },
    /// Approve a pending approval: the call it is bound to may then run N times before it
    /// expires.
    Approve {
        /// The approval's id.
        id: String,
        /// How many runs of that exact call to allow.
        #[arg(long, default_value_t = 1, value_name = "N")]
        uses: u32,
    },
    /// Deny a pending approval: the call is refused with the reason (which the agent and
    /// the audit log see).
    Deny {
        /// The approval's id.
        id: String,
        /// Why (required).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

pub fn approvals(args: ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let mut target = match &args.state_dir {
        Some(dir) => Target::open_store(dir, args.approver.clone())?,
        None => {
            let socket = args.socket.clone().unwrap_or_else(service_client::default_socket_path);
            Target::Socket(service_client::Client::connect(&socket)?)
        }
    };
    match args.command {
        ApprovalsCommand::List { all, state } => {
            let filter = if all { ApprovalFilter::All } else { state.unwrap_or_default() };
            let (approvals, unreadable) = target.list(filter)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&approvals)?);
            } else {
                print!("{}", table(&approvals));
            }
            for problem in &unreadable {
                eprintln!("airlock: {problem}");
            }
            Ok(if unreadable.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        ApprovalsCommand::Show { id } => {
            print_one(&target.get(&id)?, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCommand::Approve { id, uses } => {
            print_one(&target.decide(&id, Verdict::Approve { uses })?, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCommand::Deny { id, reason } => {
            print_one(&target.decide(&id, Verdict::Deny { reason })?, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where the approvals are: the directory itself, or a service.
enum Target {
    Store { approvals: Approvals, approver: String },
    Socket(service_client::Client),
}

impl Target {
    /// The store in `state_dir/approvals`, which must exist (a mistyped directory is an
    /// error, not a new empty store).
    fn open_store(state_dir: &Path, approver: Option<String>) -> anyhow::Result<Target> {
        let dir = state_dir.join("approvals");
        if !dir.is_dir() {
            bail!(
                "there is no approvals directory {}: airlock keeps approvals in STATE_DIR/approvals \
                 (by default ~/.local/state/airlock/approvals); check --state-dir",
                dir.display()
            );
        }
        let approvals = Approvals::open(&dir, DEFAULT_APPROVAL_TTL, Redactor::default())?;
        Ok(Target::Store { approvals, approver: approver.unwrap_or_else(local_user) })
    }

    fn list(&mut self, filter: ApprovalFilter) -> anyhow::Result<(Vec<Approval>, Vec<String>)> {
        match self {
            Target::Store { approvals, .. } => {
                let list = approvals.list_checked(filter);
                Ok((list.approvals, list.unreadable.iter().map(ToString::to_string).collect()))
            }
            Target::Socket(client) => {
                let result =
                    client.call("airlock/approvals.list", serde_json::to_value(ListParams { state: filter })?)?;
                let list = result.get("approvals").cloned().unwrap_or(result);
                let approvals = serde_json::from_value(list).context("the service's approval list is not readable")?;
                Ok((approvals, Vec::new()))
            }
        }
    }

    fn get(&mut self, id: &str) -> anyhow::Result<Approval> {
        match self {
            Target::Store { approvals, .. } => Ok(approvals.load(id)?),
            Target::Socket(client) => {
                let params = serde_json::to_value(GetParams { id: id.to_string() })?;
                approval_of(client.call("airlock/approvals.get", params)?)
            }
        }
    }

    fn decide(&mut self, id: &str, verdict: Verdict) -> anyhow::Result<Approval> {
        match self {
            Target::Store { approvals, approver } => Ok(approvals.decide(id, approver, verdict)?),
            Target::Socket(client) => {
                let params = serde_json::to_value(DecideParams { id: id.to_string(), verdict })?;
                approval_of(client.call("airlock/approvals.decide", params)?)
            }
        }
    }
}

/// The approval in a service's result (`{"approval": ...}`, or the approval itself).
fn approval_of(result: Value) -> anyhow::Result<Approval> {
    let value = result.get("approval").cloned().unwrap_or(result);
    serde_json::from_value(value).context("the service's answer is not an approval")
}

/// The approver's name in `--state-dir` mode: `$USER (uid N)`.
fn local_user() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    match std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        Ok(user) if !user.is_empty() => format!("{user} (uid {uid}, local store)"),
        _ => format!("uid {uid} (local store)"),
    }
}

/// One line per approval: id, state, tool, caller, expiry, uses, arguments.
fn table(approvals: &[Approval]) -> String {
    let mut text = String::new();
    if approvals.is_empty() {
        return text;
    }
    let _ = writeln!(
        text,
        "{:<32}  {:<8}  {:<16}  {:<12}  {:<27}  USES  ARGUMENTS",
        "ID", "STATE", "TOOL", "CALLER", "EXPIRES"
    );
    for a in approvals {
        let mut arguments = a.arguments.to_string();
        if arguments.chars().count() > 60 {
            arguments = arguments.chars().take(59).collect::<String>() + "…";
        }
        let _ = writeln!(
            text,
            "{:<32}  {:<8}  {:<16}  {:<12}  {:<27}  {:>4}  {arguments}",
            a.id,
            a.state.name(),
            a.tool,
            a.caller,
            a.expires,
            format!("{}/{}", a.uses_left, a.uses_granted)
        );
    }
    text
}

/// One approval, for people or as JSON.
fn print_one(a: &Approval, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(a)?);
        return Ok(());
    }
    println!("approval   {}", a.id);
    println!("state      {}", a.state);
    println!("tool       {}", a.tool);
    println!("caller     {}", a.caller);
    println!("workspace  {}", a.workspace.display());
    if let Some(session) = &a.session {
        println!("session    {session}");
    }
    println!("arguments  {}", serde_json::to_string_pretty(&a.arguments)?.replace('\n', "\n           "));
    println!("rule       {}", a.rule);
    println!("created    {}", a.created);
    println!("expires    {}", a.expires);
    println!("uses       {} left of {} granted", a.uses_left, a.uses_granted);
    if let (Some(approver), Some(decided)) = (&a.approver, &a.decided) {
        println!("decided    by {approver} at {decided}");
    }
    if let Some(reason) = &a.reason {
        println!("reason     {reason}");
    }
    println!("binding    {}", a.binding);
    Ok(())
}

/// The client of `airlock serve` and its default socket.
mod service_client {
    pub use airlock::service::{client::Client, default_socket_path};
}
