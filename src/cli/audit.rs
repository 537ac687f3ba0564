//! `airlock audit verify | tail | query | keygen | export`.

use std::{io::Write, path::PathBuf, process::ExitCode};

use anyhow::Context;

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
    ///
    /// With --public-key, every checkpoint's signature is checked too, and records after
    /// the last valid checkpoint fail (truncated or unsigned history) unless
    /// --allow-unsigned-tail.
    Verify {
        /// The public key (FILE.pub of `airlock audit keygen`) the checkpoints must be
        /// signed with.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// With --public-key: accept records after the last checkpoint (a log still being
        /// written); they are reported, not failed.
        #[arg(long, requires = "public_key")]
        allow_unsigned_tail: bool,
        #[command(flatten)]
        audit: AuditArg,
    },
    /// Make an Ed25519 key pair for signed checkpoints: the private key at FILE (0600; put
    /// it outside every workspace and name it in audit.toml `signing_key`) and the public
    /// key at FILE.pub (for `audit verify --public-key`).
    Keygen {
        /// Where to write the private key (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write the records in another format: `otlp-json`, OpenTelemetry logs (one
    /// ExportLogsServiceRequest) for existing log pipelines.
    Export {
        /// The format.
        #[arg(long, value_parser = ["otlp-json"])]
        format: String,
        /// Where to write [default: stdout].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
        AuditCommand::Verify { public_key, allow_unsigned_tail, audit } => {
            let path = audit.path();
            let report = match public_key {
                Some(key) => audit::verify_signed(&path, &audit::load_public_key(&key)?, allow_unsigned_tail)?,
                None => audit::verify(&path)?,
            };
            println!("{}: {report}", path.display());
            Ok(if report.first_bad.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        AuditCommand::Keygen { out } => {
            let public = audit::keygen(&out)?;
            println!("private key: {} (0600)\npublic key:  {}", out.display(), public.display());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { format: _, out, audit } => {
            let path = audit.path();
            let records = audit::read_records(&path)?.collect::<Result<Vec<_>, _>>()?;
            let mut text = serde_json::to_string(&audit::otlp_logs(&records))?;
            text.push('\n');
            match out {
                Some(out) => std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
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
