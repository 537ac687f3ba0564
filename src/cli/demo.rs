//! `airlock demo`: the whole pipeline on the built-in policies, in a temporary workspace.
//!
//! Four calls, each through policy, the wasm backend and the audit log: one allowed (a
//! messy CSV cleaned), one denied by the caller's designation, one stopped by a limit, one
//! that tries to leave its preopen; then the audit chain is verified.

use std::{fmt::Write as _, path::Path, process::ExitCode};

use anyhow::Context;
use clap::Args;
use serde_json::json;

use airlock::{CallOutcome, CallRequest, Runtime, Status, audit};

use super::PoliciesArg;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    policies: PoliciesArg,
    /// Keep the temporary workspace and audit log (their path is printed).
    #[arg(long)]
    keep: bool,
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temp = tempfile::Builder::new().prefix("airlock-demo-").tempdir()?;
    let workspace = temp.path().join("workspace");
    let audit_path = temp.path().join("audit.jsonl");
    write_workspace(&workspace)?;
    let policies = args.policies.dir();
    println!("airlock demo: policies {}, workspace {}", policies.display(), workspace.display());
    let runtime = Runtime::builder(&policies).audit_path(&audit_path).build()?;

    let calls = [
        (
            "1. allowed: the agent cleans a messy CSV (csv-dedupe, designation standard)",
            CallRequest::new("agent", "csv-dedupe", &workspace)
                .arguments(json!({ "input": "data/people.csv", "output": "data/people.clean.csv" })),
        ),
        (
            "2. denied: a read-only reviewer tries to apply a patch (apply-patch needs `write`)",
            CallRequest::new("reviewer", "apply-patch", &workspace)
                .arguments(json!({ "patch": "--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1 @@\n-draft\n+final\n" })),
        ),
        (
            "3. limit: a grep that matches every line of a large log floods its output cap",
            CallRequest::new("agent", "grep", &workspace).arguments(json!({ "pattern": "request", "paths": ["logs"] })),
        ),
        (
            "4. escape: wc is asked for a file outside the workspace preopen",
            CallRequest::new("agent", "wc", &workspace).arguments(json!({ "path": "../../../../etc/passwd" })),
        ),
    ];
    for (title, request) in calls {
        println!("\n== {title}");
        let outcome = runtime.call(request).await?;
        print!("{}", describe(&outcome));
    }
    runtime.close().await?;

    println!("\n== audit verify {}", audit_path.display());
    let report = audit::verify(&audit_path)?;
    let intact = report.first_bad.is_none();
    println!("{report}");
    if args.keep {
        let kept = temp.keep();
        println!("\nkept {}", kept.display());
    }
    Ok(if intact { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A workspace with a messy CSV, a note and a large log.
fn write_workspace(workspace: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(workspace.join("data"))?;
    std::fs::create_dir_all(workspace.join("logs"))?;
    std::fs::write(
        workspace.join("data/people.csv"),
        "id,name,email\n\
         1,Ada Lovelace,ada@example.org\n\
         2,Alan Turing,alan@example.org\n\
         1,Ada Lovelace,ada@example.org\n\
         3,\"Hopper, Grace\",grace@example.org\n\
         4,broken row with too few fields\n\
         2,Alan Turing,alan@example.org\n\
         5,\"Unterminated,quote@example.org\n",
    )
    .context("cannot write the demo workspace")?;
    std::fs::write(workspace.join("notes.txt"), "draft\n")?;
    let mut log = String::new();
    for i in 0..100_000 {
        let _ = writeln!(log, "2026-11-27T10:00:{:02}Z request id={i} path=/api/items status=200", i % 60);
    }
    std::fs::write(workspace.join("logs/access.log"), log)?;
    Ok(())
}

/// A few lines on one outcome.
fn describe(outcome: &CallOutcome) -> String {
    let mut text = String::new();
    let status = match &outcome.status {
        Status::Denied { reason } => format!("denied: {reason}"),
        Status::LimitExceeded { limit } => format!("limit-exceeded: {}", limit.name()),
        Status::Trapped { trap } => format!("trapped: {trap}"),
        other => other.name().to_string(),
    };
    let _ = writeln!(text, "status: {status}");
    if let Some(code) = outcome.exit_code {
        let _ = writeln!(text, "exit code: {code}");
    }
    for (name, stream) in [("stdout", &outcome.stdout), ("stderr", &outcome.stderr)] {
        if stream.total_bytes == 0 {
            continue;
        }
        let body = stream.text();
        let mut lines = body.lines();
        let _ = writeln!(
            text,
            "{name}: {} bytes{}",
            stream.total_bytes,
            if stream.truncated { format!(" (truncated: kept {})", stream.bytes.len()) } else { String::new() }
        );
        for line in lines.by_ref().take(3) {
            let _ = writeln!(text, "  | {}", line.chars().take(120).collect::<String>());
        }
        if lines.next().is_some() {
            let _ = writeln!(text, "  | ...");
        }
    }
    let usage = &outcome.usage;
    let _ = writeln!(
        text,
        "usage: wall {} us, fuel {}, peak memory {} KiB; audit record #{}",
        usage.wall_us,
        usage.fuel.map_or_else(|| "-".into(), |f| f.to_string()),
        usage.peak_memory_bytes / 1024,
        outcome.audit_seq
    );
    text
}
