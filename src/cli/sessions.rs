//! `airlock sessions list | show ID | resume ID`: the sessions of a running `airlock serve`.
//!
//! Through the service's socket only: its `airlock/sessions.*` methods admit admin callers
//! (callers.toml `admin = true`), it knows the live counters, and it audits a resume with
//! the admin's name and uid.
//!
//! Exit codes: 0; 125 on any error (no service, not an admin, the session is not
//! suspended, ...).

use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use airlock::{
    service::{client::Client, default_socket_path},
    session::{SessionInfo, Suspension},
};

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    command: SessionsCommand,
    /// The socket of a running `airlock serve` [default: the service's default socket].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// List the sessions the service has counted, and every suspended session.
    List,
    /// Show one session: what it has spent, and why it is suspended if it is.
    Show {
        /// The session's id.
        id: String,
    },
    /// Lift a session's suspension (audited): its calls run again, its denial count starts
    /// over.
    Resume {
        /// The session's id.
        id: String,
    },
}

pub fn sessions(args: SessionsArgs) -> anyhow::Result<ExitCode> {
    let socket = args.socket.clone().unwrap_or_else(default_socket_path);
    let mut client = Client::connect(&socket)?;
    match args.command {
        SessionsCommand::List => {
            let result = client.call("airlock/sessions.list", json!({}))?;
            let list: Vec<SessionInfo> = serde_json::from_value(result.get("sessions").cloned().unwrap_or(result))
                .context("the service's session list is not readable")?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", table(&list));
            }
        }
        SessionsCommand::Show { id } => {
            let result = client.call("airlock/sessions.show", json!({ "session": id }))?;
            let info: SessionInfo = serde_json::from_value(result.get("session").cloned().unwrap_or(result))
                .context("the service's answer is not a session")?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{}", describe(&info));
            }
        }
        SessionsCommand::Resume { id } => {
            let result = client.call("airlock/sessions.resume", json!({ "session": id }))?;
            let lifted: Suspension = serde_json::from_value(result.get("resumed").cloned().unwrap_or(result))
                .context("the service's answer is not a suspension")?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&lifted)?);
            } else {
                println!(
                    "resumed session {} (it was suspended {} since {})",
                    lifted.session, lifted.reason, lifted.suspended_at
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per session: id, state, calls, CPU, wall, output, denials.
fn table(list: &[SessionInfo]) -> String {
    let mut text = String::new();
    if list.is_empty() {
        return text;
    }
    let _ = writeln!(
        text,
        "{:<28}  {:<9}  {:>6}  {:>10}  {:>10}  {:>12}  {:>7}",
        "SESSION", "STATE", "CALLS", "CPU S", "WALL S", "OUTPUT B", "DENIALS"
    );
    for info in list {
        let state = if info.suspension.is_some() { "suspended" } else { "active" };
        let usage = info.usage.clone().unwrap_or_default();
        let _ = writeln!(
            text,
            "{:<28}  {:<9}  {:>6}  {:>10.3}  {:>10.3}  {:>12}  {:>7}",
            info.session,
            state,
            usage.calls,
            usage.cpu_us as f64 / 1e6,
            usage.wall_us as f64 / 1e6,
            usage.output_bytes,
            usage.denials
        );
    }
    text
}

/// One session, for people.
fn describe(info: &SessionInfo) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "session    {}", info.session);
    match &info.suspension {
        Some(s) => {
            let _ = writeln!(text, "state      suspended {} (since {}, cause {})", s.reason, s.suspended_at, s.cause);
        }
        None => {
            let _ = writeln!(text, "state      active");
        }
    }
    if let Some(u) = &info.usage {
        let _ = writeln!(text, "calls      {} ({} in the last minute)", u.calls, u.calls_last_minute);
        let _ = writeln!(text, "cpu        {:.3} s", u.cpu_us as f64 / 1e6);
        let _ = writeln!(text, "wall       {:.3} s", u.wall_us as f64 / 1e6);
        let _ = writeln!(text, "output     {} bytes", u.output_bytes);
        let _ = writeln!(text, "denials    {}", u.denials);
        if let Some(caller) = &u.caller {
            let _ = writeln!(text, "caller     {caller}");
        }
    }
    text
}
