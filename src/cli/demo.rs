//! `airlock demo`: the whole pipeline on the built-in policies, in a temporary workspace.
//!
//! Every layer once, on real tools: through the library, a wasm tool cleans a messy CSV,
//! a read-only reviewer is denied by its designation, a wasm tool is stopped by its output
//! limit, another cannot leave its preopen; a Python script runs in the process jail and
//! reports that the host, the network and the rest of the workspace are out of its reach;
//! an edit of the protected tests made behind airlock's back marks the next call tampered;
//! a deployment waits for a human's approval bound to its exact arguments, then runs. Then
//! the same runtime serves a Unix socket and an MCP client lists and calls tools over
//! it. Last, the audit log's hash chain is verified.

use std::{fmt::Write as _, path::Path, process::ExitCode};

use anyhow::Context;
use clap::Args;
use serde_json::json;

use airlock::{
    CallOutcome, CallRequest, Runtime, Status,
    approvals::Verdict,
    audit,
    service::{ServeConfig, client::AsyncClient, server::Server},
};

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
    let approvals_dir = temp.path().join("approvals");
    let runtime = Runtime::builder(&policies).audit_path(&audit_path).approvals_dir(&approvals_dir).build()?;

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
        (
            "5. jail: a Python script summarises the clean CSV in the process jail and probes its walls",
            CallRequest::new("agent", "python", &workspace).arguments(json!({ "script": "analyze.py" })),
        ),
    ];
    for (title, request) in calls {
        println!("\n== {title}");
        let outcome = runtime.call(request).await?;
        print!("{}", describe(&outcome));
    }

    println!("\n== 6. tamper: between calls, something outside airlock edits tests/; the next call says so");
    std::fs::write(workspace.join("tests/test_people.py"), "def test_people_are_deduplicated():\n    pass\n")?;
    let outcome = runtime
        .call(CallRequest::new("agent", "python", &workspace).arguments(json!({ "script": "analyze.py" })))
        .await?;
    print!("{}", describe(&outcome));

    println!("\n== 7. approval: the agent asks to ship build/app-1.0.0.txt (release is `deploy`: a human decides)");
    let release =
        || CallRequest::new("agent", "release", &workspace).arguments(json!({ "artifact": "build/app-1.0.0.txt" }));
    let outcome = runtime.call(release()).await?;
    print!("{}", describe(&outcome));
    if let Status::NeedsApproval { approval_id, .. } = &outcome.status {
        println!("-- the operator approves {approval_id} once (`airlock approvals approve {approval_id}`)");
        runtime.approvals().decide(approval_id, "operator", Verdict::Approve { uses: 1 })?;
        let outcome = runtime.call(release()).await?;
        print!("{}", describe(&outcome));
        println!("dist/ now holds: {}", list_dir(&workspace.join("dist")));
        println!("-- the agent retries with another artifact: the approval does not carry over");
        let other = CallRequest::new("agent", "release", &workspace).arguments(json!({ "artifact": "notes.txt" }));
        print!("{}", describe(&runtime.call(other).await?));
    }
    runtime.close().await?;

    println!("\n== 8. socket: the runtime serves a Unix socket; a client lists and calls tools over JSON-RPC (MCP)");
    let runtime = Runtime::builder(&policies).audit_path(&audit_path).approvals_dir(&approvals_dir).build()?;
    serve_and_call(runtime, &temp.path().join("airlock.sock"), &workspace).await?;

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

/// Serves `runtime` on `socket` and, as a client of it, initializes, lists the tools this
/// peer's uid may see and calls one; then stops the service in order.
async fn serve_and_call(runtime: Runtime, socket: &Path, workspace: &Path) -> anyhow::Result<()> {
    let mut config = ServeConfig::new(socket);
    config.service.workspace = Some(workspace.to_path_buf());
    let server = Server::bind(runtime, config)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let session = client_session(socket).await;
    let _ = stop.send(());
    serving.await.context("the service task failed")??;
    session
}

/// One client connection of the demo's step 8.
async fn client_session(socket: &Path) -> anyhow::Result<()> {
    let mut client = AsyncClient::connect(socket).await?;
    client.set_timeout(Some(std::time::Duration::from_secs(60)));
    let init = client.initialize(json!({})).await?;
    println!(
        "initialize: {} (protocol {}); this peer is caller {} with designation {}",
        init["serverInfo"]["name"],
        init["protocolVersion"],
        init["_meta"]["airlock/caller"],
        init["_meta"]["airlock/designation"]
    );
    let listed = client.call("tools/list", json!({})).await?;
    let names: Vec<&str> =
        listed["tools"].as_array().into_iter().flatten().filter_map(|tool| tool["name"].as_str()).collect();
    println!("tools/list: {}", names.join(", "));
    let result = client
        .call("tools/call", json!({ "name": "sha256sum", "arguments": { "paths": ["data/people.clean.csv"] } }))
        .await?;
    let text = result["content"][0]["text"].as_str().unwrap_or_default().trim_end();
    println!(
        "tools/call sha256sum: isError {}, status {}, audit record #{}\n  | {text}",
        result["isError"], result["structuredContent"]["status"]["kind"], result["structuredContent"]["audit_seq"]
    );
    let refused = client.call("tools/call", json!({ "name": "apply-patch", "arguments": { "patch": "" } })).await?;
    println!(
        "tools/call apply-patch: isError {}, status {}, audit record #{}\n  | {}",
        refused["isError"],
        refused["structuredContent"]["status"]["kind"],
        refused["structuredContent"]["audit_seq"],
        refused["structuredContent"]["status"]["reason"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// The names in `dir`, sorted, comma-separated.
fn list_dir(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.join(", ")
}

/// The Python script of step 5: it does its job (a summary in out/) and then tries what a
/// misbehaving script would, printing what stopped each attempt.
const ANALYZE_PY: &str = r#"import csv, os, socket

with open("data/people.clean.csv", newline="") as f:
    rows = list(csv.DictReader(f))
domains = sorted({row["email"].split("@")[1] for row in rows})
with open("out/summary.txt", "w") as out:
    out.write(f"{len(rows)} people from {', '.join(domains)}\n")
print(f"summary: {len(rows)} people from {', '.join(domains)} (written to out/summary.txt)")

def probe(what, attempt):
    try:
        attempt()
        print(f"NOT BLOCKED: {what}")
    except OSError as error:
        print(f"blocked: {what}: {error.strerror or error}")

probe("edit the tests (tests/test_people.py)", lambda: open("tests/test_people.py", "a").write("assert True\n"))
probe("read /etc/shadow", lambda: open("/etc/shadow").read())
probe("write to the host's /var/tmp", lambda: open("/var/tmp/airlock-demo-escape", "w").write("x"))
probe("connect to 1.1.1.1:443", lambda: socket.create_connection(("1.1.1.1", 443), timeout=2))
pids = [name for name in os.listdir("/proc") if name.isdigit()]
print(f"/proc shows {len(pids)} process(es); this script is pid {os.getpid()}: the host's processes are out of sight")
"#;

/// A workspace with a messy CSV, a note, a large log, tests, a build artifact and a Python
/// script.
fn write_workspace(workspace: &Path) -> anyhow::Result<()> {
    for dir in ["data", "logs", "tests", "build", "dist", "out"] {
        std::fs::create_dir_all(workspace.join(dir))?;
    }
    std::fs::write(workspace.join("analyze.py"), ANALYZE_PY)?;
    std::fs::write(
        workspace.join("tests/test_people.py"),
        "def test_people_are_deduplicated():\n    assert open(\"out/summary.txt\").read().startswith(\"3 people\")\n",
    )?;
    std::fs::write(workspace.join("build/app-1.0.0.txt"), "app 1.0.0\n")?;
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
        Status::Tampered { changed, ran, .. } => {
            let ran = if *ran { "the tool ran" } else { "the tool did not run" };
            format!("tampered ({ran}); changed: {}", changed.join(", "))
        }
        Status::NeedsApproval { approval_id, expires_at } => {
            format!("needs-approval: pending approval {approval_id}, expires {expires_at}")
        }
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
        // A short output whole, a long one by its first lines.
        let shown = if stream.total_bytes <= 1024 { 10 } else { 3 };
        for line in lines.by_ref().take(shown) {
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
