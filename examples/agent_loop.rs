//! Embedding airlock in an agent loop: build a [`Runtime`] on the shipped policies, show
//! the tools a caller may see, run a few calls the way an agent would, act on each
//! outcome's status, and verify the audit log at the end.
//!
//! Run it with `cargo run --example agent_loop`. It works in a temporary directory (a
//! workspace with a messy CSV file, and the audit log next to it, never inside it: a
//! workspace that contains the log is refused) and removes it when done.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use airlock::{CallOutcome, CallRequest, Runtime, Status, audit};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let workspace = temp.path().join("workspace");
    let audit_path = temp.path().join("audit.jsonl");
    std::fs::create_dir_all(&workspace)?;
    std::fs::write(
        workspace.join("users.csv"),
        "id,name,email\n\
         1,Ada,ada@example.org\n\
         2,Alan,alan@example.org\n\
         1,Ada,ada@example.org\n\
         3,\"Hopper, Grace\",grace@example.org\n\
         4,too,few,fields,here\n",
    )?;

    // One runtime for the whole process: it holds the policies, the wasm engine and its
    // module cache, and the audit log writer. Calls may run concurrently through `&self`.
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let runtime = Runtime::builder(&policies)
        .audit_path(&audit_path)
        .build()
        .with_context(|| format!("cannot start airlock on {}", policies.display()))?;

    // What to offer the model: only the tools this caller may run (MCP `tools/list`).
    for caller in ["agent", "reviewer"] {
        let names: Vec<String> = runtime.tools_for(caller).into_iter().map(|tool| tool.name).collect();
        println!("tools for {caller}: {}", names.join(", "));
    }

    // The calls an agent might make: clean the CSV, then size the result; then one the
    // reviewer is not allowed to make.
    let calls = [
        CallRequest::new("agent", "csv-dedupe", &workspace)
            .arguments(json!({ "input": "users.csv", "output": "users.clean.csv", "key": "email" })),
        CallRequest::new("agent", "wc", &workspace).arguments(json!({ "path": "users.clean.csv" })),
        CallRequest::new("reviewer", "csv-dedupe", &workspace)
            .arguments(json!({ "input": "users.csv", "output": "users.csv" })),
    ];
    for request in calls {
        println!("\n{} -> {} {}", request.caller, request.tool, request.arguments);
        // `Err` means the call could not be audited: its outcome is withheld, stop here.
        let outcome = runtime.call(request).await.context("a call could not be audited")?;
        print_outcome(&outcome);
    }

    // Flush the log, then check its hash chain.
    runtime.close().await?;
    let report = audit::verify(&audit_path)?;
    println!("\naudit log: {report}");
    anyhow::ensure!(report.is_intact(), "the audit log does not verify");
    Ok(())
}

/// What an agent loop does with an outcome: feed the output back on success, and the
/// reason otherwise, so the model can correct itself.
fn print_outcome(outcome: &CallOutcome) {
    match &outcome.status {
        Status::Ok => print!("ok: {}", outcome.stdout.text()),
        Status::ToolError => {
            print!("the tool failed (exit {:?}): {}", outcome.exit_code, outcome.stderr.text());
        }
        Status::Denied { reason } => println!("denied: {reason}"),
        Status::LimitExceeded { limit } => println!("stopped: the {} limit was reached", limit.name()),
        Status::Trapped { trap } => println!("the tool crashed: {trap}"),
        Status::Cancelled => println!("cancelled before it finished"),
        Status::NeedsApproval { approval_id, expires_at } => {
            println!("waiting for a human: approval {approval_id}, until {expires_at}; make the same call again later")
        }
        Status::Tampered { changed, .. } => {
            println!("tampered: protected paths changed ({}); the result does not count", changed.join("; "))
        }
    }
    println!(
        "  audit record #{}, {} us, fuel {}",
        outcome.audit_seq,
        outcome.usage.wall_us,
        outcome.usage.fuel.map_or_else(|| "-".to_string(), |fuel| fuel.to_string())
    );
}
