//! `airlock audit verify | tail | query`.

use std::process::ExitCode;

use clap::Subcommand;

use airlock::{
    audit::{self, AuditRecord, Filter},
    policy::Decision,
};

use super::AuditArg;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain. Exit 0 when it is intact; otherwise name the first bad
    /// record and why (edited, deleted, reordered, truncated, not JSON) and exit 1.
    Verify {
        #[command(flatten)]
        audit: AuditArg,
    },
    /// Print the last records.
    Tail {
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Print each record as its JSON line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        audit: AuditArg,
    },
    /// Print the records that match every filter given.
    Query {
        /// Only this tool.
        #[arg(long)]
        tool: Option<String>,
        /// Only this decision: allow, needs-approval or deny.
        #[arg(long, value_parser = parse_decision)]
        decision: Option<Decision>,
        /// Only this caller.
        #[arg(long)]
        caller: Option<String>,
        /// Only calls that ended with this status.
        #[arg(long, value_parser = ["ok", "tool-error", "denied", "limit-exceeded", "trapped"])]
        status: Option<String>,
        /// Only records since TIME: RFC 3339 (2026-11-27T10:00:00Z) or an age (10m, 2h, 3d).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Print each record as its JSON line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        audit: AuditArg,
    },
}

fn parse_decision(text: &str) -> Result<Decision, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("{text:?} is not a decision; use allow, needs-approval or deny"))
}

pub fn audit(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { audit } => {
            let path = audit.path();
            let report = audit::verify(&path)?;
            println!("{}: {report}", path.display());
            Ok(if report.first_bad.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        AuditCommand::Tail { lines, json, audit } => {
            print_records(&audit::tail(&audit.path(), lines)?, json)?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Query { tool, decision, caller, status, since, json, audit } => {
            let since = since.as_deref().map(audit::parse_since).transpose()?;
            let filter = Filter { tool, decision, caller, since, status };
            print_records(&audit::query(&audit.path(), &filter)?, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_records(records: &[AuditRecord], json: bool) -> anyhow::Result<()> {
    for record in records {
        if json {
            println!("{}", serde_json::to_string(record)?);
        } else {
            println!("{record}");
        }
    }
    Ok(())
}
