//! Session budgets and the denial tripwire: `[designations.NAME.budgets]`, checked by
//! `Runtime::call` per session, suspension (durable) and its resumption through the
//! library and through `airlock sessions resume` on the socket.
//!
//! Each test builds a policy directory in a temp dir: the shipped designations with the
//! `standard` designation's budgets replaced, the shipped callers, and two tools: `wc`
//! (the shipped guest, `read`) and `secret-wc` (the same module in category `secrets`,
//! which `standard` denies: the way to provoke denials).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use airlock::{
    CallOutcome, CallRequest, Runtime, Status,
    audit::{self, AuditRecord, Fsync},
    policy::{Decision, PolicySet},
};
use serde_json::json;

use crate::common;

/// A temp dir with policies, a workspace and airlock's state.
struct Setup {
    root: tempfile::TempDir,
}

impl Setup {
    /// `budgets`: the lines of the `standard` designation's budgets table.
    fn new(budgets: &str) -> Setup {
        let root = tempfile::Builder::new().prefix("airlock-budgets-").tempdir().unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let policies = root.path().join("policies");
        fs::create_dir_all(policies.join("tools")).unwrap();
        let shipped = common::shipped_policies();
        let designations = fs::read_to_string(shipped.join("designations.toml")).unwrap();
        fs::write(policies.join("designations.toml"), replace_standard_budgets(&designations, budgets)).unwrap();
        fs::copy(shipped.join("callers.toml"), policies.join("callers.toml")).unwrap();
        let modules = common::repo().join("guest-tools/wasm").canonicalize().unwrap();
        let wc = fs::read_to_string(shipped.join("tools/wc.toml"))
            .unwrap()
            .replace("../guest-tools/wasm/", &format!("{}/", modules.display()));
        fs::write(policies.join("tools/wc.toml"), &wc).unwrap();
        let secret = wc
            .replace("name = \"wc\"", "name = \"secret-wc\"")
            .replace("categories = [\"read\"]", "categories = [\"secrets\"]");
        fs::write(policies.join("tools/secret-wc.toml"), secret).unwrap();
        let ws = root.path().join("ws");
        fs::create_dir_all(&ws).unwrap();
        fs::write(ws.join("a.txt"), "one two\nthree\n").unwrap();
        Setup { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn audit_path(&self) -> PathBuf {
        self.path("state/audit.jsonl")
    }

    fn sessions_dir(&self) -> PathBuf {
        self.path("state/sessions")
    }

    fn runtime(&self) -> Runtime {
        Runtime::builder(self.path("policies"))
            .audit_path(self.audit_path())
            .fsync(Fsync::Off)
            .cache_dir(Some(shared_cache()))
            .approvals_dir(self.path("state/approvals"))
            .sessions_dir(self.sessions_dir())
            .build()
            .unwrap()
    }

    fn wc(&self, session: &str) -> CallRequest {
        CallRequest::new("agent", "wc", self.path("ws")).arguments(json!({ "path": "a.txt" })).session(session)
    }

    fn secret(&self, session: &str) -> CallRequest {
        CallRequest::new("agent", "secret-wc", self.path("ws")).arguments(json!({ "path": "a.txt" })).session(session)
    }

    fn records(&self) -> Vec<AuditRecord> {
        audit::read_records(&self.audit_path()).unwrap().map(Result::unwrap).collect()
    }
}

/// The module cache shared by these tests: compiling a module in a debug build is slow,
/// and a fresh cache per test would compile it again each time.
pub(crate) fn shared_cache() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sessions-signing-cache");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// The shipped designations with the `standard` budgets table's lines replaced.
fn replace_standard_budgets(text: &str, budgets: &str) -> String {
    let header = "[designations.standard.budgets]\n";
    let start = text.find(header).expect("the shipped standard designation has budgets") + header.len();
    let end = start + text[start..].find("\n\n").unwrap_or(text.len() - start);
    format!("{}{}{}", &text[..start], budgets.trim_end(), &text[end..])
}

async fn call(runtime: &Runtime, request: CallRequest) -> CallOutcome {
    runtime.call(request).await.unwrap()
}

fn denial(outcome: &CallOutcome) -> String {
    match &outcome.status {
        Status::Denied { reason } => reason.clone(),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn calls_per_minute_is_enforced_per_session_and_named() {
    let setup = Setup::new("calls_per_minute = 2\n");
    let runtime = setup.runtime();
    for _ in 0..2 {
        assert_eq!(call(&runtime, setup.wc("s1")).await.status, Status::Ok);
    }
    let third = call(&runtime, setup.wc("s1")).await;
    let reason = denial(&third);
    assert!(reason.contains("budget exceeded: calls_per_minute 2 (session s1"), "{reason}");
    // Another session has its own budget.
    assert_eq!(call(&runtime, setup.wc("s2")).await.status, Status::Ok);
    runtime.close().await.unwrap();
    let record = setup.records().into_iter().find(|r| r.seq == third.audit_seq).unwrap();
    assert_eq!(record.decision, Decision::Deny);
    assert_eq!(record.session.as_deref(), Some("s1"));
    assert!(record.rule.contains("budgets"), "{}", record.rule);
    assert_eq!(record.status(), Some("denied"));
}

#[tokio::test]
async fn output_bytes_budget_is_charged_and_enforced() {
    let setup = Setup::new("output_bytes = 10\n");
    let runtime = setup.runtime();
    let first = call(&runtime, setup.wc("s")).await;
    assert_eq!(first.status, Status::Ok);
    assert!(first.stdout.total_bytes > 10);
    let reason = denial(&call(&runtime, setup.wc("s")).await);
    assert!(reason.contains("budget exceeded: output_bytes 10 (session s"), "{reason}");
    let usage = runtime.sessions().show("s").unwrap().usage.unwrap();
    assert_eq!(usage.output_bytes, first.stdout.total_bytes + first.stderr.total_bytes);
    assert_eq!(usage.calls, 1);
}

#[tokio::test]
async fn wall_and_cpu_second_budgets_are_charged_and_enforced() {
    for (budget, line) in [("wall_seconds", "wall_seconds = 0.000001\n"), ("cpu_seconds", "cpu_seconds = 0.000001\n")] {
        let setup = Setup::new(line);
        let runtime = setup.runtime();
        assert_eq!(call(&runtime, setup.wc("s")).await.status, Status::Ok);
        let reason = denial(&call(&runtime, setup.wc("s")).await);
        assert!(reason.contains(&format!("budget exceeded: {budget} 0.000001 (session s")), "{reason}");
        let usage = runtime.sessions().show("s").unwrap().usage.unwrap();
        assert!(usage.wall_us > 0 && usage.cpu_us > 0, "{usage:?}");
    }
}

#[tokio::test]
async fn a_call_without_a_session_is_counted_in_its_callers_default_session() {
    let setup = Setup::new("calls_per_minute = 1\n");
    let runtime = setup.runtime();
    let request = || CallRequest::new("agent", "wc", setup.path("ws")).arguments(json!({ "path": "a.txt" }));
    assert_eq!(call(&runtime, request()).await.status, Status::Ok);
    let reason = denial(&call(&runtime, request()).await);
    assert!(reason.contains("calls_per_minute 1 (session caller:agent"), "{reason}");
}

/// Trips the tripwire of `session` (3 denials) and checks that it is suspended.
async fn trip(setup: &Setup, runtime: &Runtime, session: &str) {
    for _ in 0..3 {
        let reason = denial(&call(runtime, setup.secret(session)).await);
        assert!(!reason.contains("suspended"), "{reason}");
    }
    let reason = denial(&call(runtime, setup.wc(session)).await);
    assert!(reason.contains(&format!("session {session} is suspended after 3 denials")), "{reason}");
    assert!(reason.contains(&format!("airlock sessions resume {session}")), "{reason}");
}

#[tokio::test]
async fn repeated_denials_suspend_the_session_until_resumed_through_the_library() {
    let setup = Setup::new("denials_before_suspend = 3\n");
    let runtime = setup.runtime();
    trip(&setup, &runtime, "probe").await;
    // Other sessions are not affected.
    assert_eq!(call(&runtime, setup.wc("other")).await.status, Status::Ok);
    let listed = runtime.sessions().list().unwrap();
    assert!(listed.iter().any(|s| s.session == "probe" && s.suspension.is_some()), "{listed:?}");

    let lifted = runtime.resume_session("probe", "operator").await.unwrap();
    assert_eq!(lifted.cause, "denials");
    assert_eq!(call(&runtime, setup.wc("probe")).await.status, Status::Ok);
    assert!(runtime.resume_session("probe", "operator").await.is_err(), "resuming twice must fail");
    runtime.close().await.unwrap();

    let records = setup.records();
    let suspended = records.iter().find(|r| r.tool == "airlock/sessions.suspend").unwrap();
    assert_eq!(suspended.session.as_deref(), Some("probe"));
    assert_eq!(suspended.decision, Decision::Deny);
    let resumed = records.iter().find(|r| r.tool == "airlock/sessions.resume").unwrap();
    assert_eq!((resumed.caller.as_str(), resumed.session.as_deref()), ("operator", Some("probe")));
    assert!(resumed.seq > suspended.seq);
    assert!(audit::verify(&setup.audit_path()).unwrap().is_intact());
}

#[tokio::test]
async fn a_suspension_survives_a_runtime_restart() {
    let setup = Setup::new("denials_before_suspend = 3\n");
    let runtime = setup.runtime();
    trip(&setup, &runtime, "probe").await;
    runtime.close().await.unwrap();

    let runtime = setup.runtime();
    let reason = denial(&call(&runtime, setup.wc("probe")).await);
    assert!(reason.contains("session probe is suspended after 3 denials"), "{reason}");
    runtime.resume_session("probe", "operator").await.unwrap();
    assert_eq!(call(&runtime, setup.wc("probe")).await.status, Status::Ok);
}

#[tokio::test]
async fn the_guard_can_suspend_a_session_for_tampering() {
    let setup = Setup::new("calls_per_minute = 100\n");
    let runtime = setup.runtime();
    runtime.suspend_session("s", "for tampering with tests/", "tamper").await.unwrap();
    let reason = denial(&call(&runtime, setup.wc("s")).await);
    assert!(reason.contains("session s is suspended for tampering with tests/"), "{reason}");
}

#[tokio::test]
async fn an_unreadable_session_store_fails_closed() {
    let setup = Setup::new("calls_per_minute = 100\n");
    fs::create_dir_all(setup.path("state")).unwrap();
    // A file where the sessions directory should be: nothing can be known about suspensions.
    fs::write(setup.sessions_dir(), "not a directory").unwrap();
    let runtime = setup.runtime();
    let outcome = call(&runtime, setup.wc("s")).await;
    let reason = denial(&outcome);
    assert!(reason.contains("cannot tell whether session s is suspended"), "{reason}");
    runtime.close().await.unwrap();
    let record = setup.records().into_iter().find(|r| r.seq == outcome.audit_seq).unwrap();
    assert_eq!(record.decision, Decision::Deny);
}

#[test]
fn bad_budgets_are_refused_with_file_and_line() {
    let setup = Setup::new("calls_per_minute = 0\nwall_seconds = -1.5\n");
    let errors = PolicySet::load(&setup.path("policies")).unwrap_err().to_string();
    assert!(errors.contains("designations.toml:"), "{errors}");
    assert!(errors.contains("budget `calls_per_minute` is 0"), "{errors}");
    assert!(errors.contains("budget `wall_seconds` is -1.5"), "{errors}");
    let setup = Setup::new("calls_per_minute = 5\nhourly = 3\n");
    let errors = PolicySet::load(&setup.path("policies")).unwrap_err().to_string();
    assert!(errors.contains("hourly"), "{errors}");
}

/// A running `airlock serve` on the setup's policies; uid 0 (we run as root) is the admin
/// caller `operator` here, with the `standard` designation.
struct Served {
    child: std::process::Child,
    socket: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(setup: &Setup) -> Served {
    let callers = fs::read_to_string(setup.path("policies/callers.toml")).unwrap();
    if !callers.contains("uids = [0]") {
        // The operator's own calls get the standard designation here, whose budgets the
        // test sets.
        let callers = callers.replace(
            "[callers.operator]\ndesignation = \"elevated\"\n",
            "[callers.operator]\ndesignation = \"standard\"\nuids = [0]\n",
        );
        fs::write(setup.path("policies/callers.toml"), callers).unwrap();
    }
    let socket = setup.path("run/airlock.sock");
    let mut child = Command::new(common::airlock_bin())
        .arg("serve")
        .arg("--socket")
        .arg(&socket)
        .arg("--policies")
        .arg(setup.path("policies"))
        .arg("--audit")
        .arg(setup.audit_path())
        .arg("--workspace")
        .arg(setup.path("ws"))
        .env("XDG_CACHE_HOME", shared_cache().parent().unwrap().join("sessions-signing-xdg-cache"))
        .env("XDG_STATE_HOME", setup.path("xdg-state"))
        .env_remove("AIRLOCK_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "airlock serve exited before listening");
        assert!(started.elapsed() < Duration::from_secs(60), "airlock serve did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Served { child, socket }
}

fn sessions_cli(socket: &Path, args: &[&str]) -> std::process::Output {
    Command::new(common::airlock_bin()).arg("sessions").args(args).arg("--socket").arg(socket).output().unwrap()
}

#[test]
fn an_admin_resumes_a_suspended_session_over_the_socket() {
    let setup = Setup::new("denials_before_suspend = 3\n");
    let served = serve(&setup);
    let mut client = airlock::service::client::Client::connect(&served.socket).unwrap();
    client.initialize(serde_json::Value::Null).unwrap();
    let mut tool_call = |tool: &str| {
        let params =
            json!({ "name": tool, "arguments": { "path": "a.txt" }, "_meta": { "airlock/session": "sock-1" } });
        client.call("tools/call", params).unwrap()
    };
    for _ in 0..3 {
        assert_eq!(tool_call("secret-wc")["structuredContent"]["status"]["kind"], "denied");
    }
    let suspended = tool_call("wc");
    let text = suspended.to_string();
    assert!(text.contains("session sock-1 is suspended after 3 denials"), "{text}");

    let list = sessions_cli(&served.socket, &["list"]);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(listing.lines().any(|l| l.starts_with("sock-1") && l.contains("suspended")), "{listing}");
    let show = sessions_cli(&served.socket, &["show", "sock-1", "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(info["suspension"]["cause"], "denials");
    assert_eq!(info["usage"]["denials"], 3);

    let resume = sessions_cli(&served.socket, &["resume", "sock-1"]);
    assert!(resume.status.success(), "{}", String::from_utf8_lossy(&resume.stderr));
    assert!(String::from_utf8_lossy(&resume.stdout).contains("resumed session sock-1"));
    assert_eq!(tool_call("wc")["structuredContent"]["status"]["kind"], "ok");
    let again = sessions_cli(&served.socket, &["resume", "sock-1"]);
    assert_eq!(again.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not suspended"));

    let records = setup.records();
    let resumed = records.iter().find(|r| r.tool == "airlock/sessions.resume").unwrap();
    assert!(resumed.caller.starts_with("operator (uid 0)"), "{}", resumed.caller);
    assert_eq!(resumed.session.as_deref(), Some("sock-1"));
}
