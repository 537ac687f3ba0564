//! Human approvals: the gate in `Runtime::call`, the durable store behind
//! `Runtime::approvals()`, and `airlock approvals --state-dir`.
//!
//! Each test builds a policy directory in a temp dir: the shipped designations and
//! callers (the `standard` designation of caller `agent` and the `elevated` one of `ci`
//! both put `deploy` under `approve`), and one tool, `wc-deploy`: the shipped `wc` guest
//! module (pinned by its sha256) declared as `read` + `deploy`, so every call of it needs a
//! human. Its schema also takes an unused `api_token`, to see it redacted in the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use airlock::{
    CallOutcome, CallRequest, Runtime, Status,
    approvals::{Approval, ApprovalError, ApprovalFilter, ApprovalState, Verdict},
    audit::{self, AuditRecord, Fsync},
    policy::Decision,
};
use serde_json::{Value, json};

use crate::common;

/// The shipped wc tool file's pinned module digest.
fn wc_sha256() -> String {
    let text = fs::read_to_string(common::shipped_policies().join("tools/wc.toml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("sha256 = ")).unwrap();
    line.trim_start_matches("sha256 = ").trim_matches('"').to_string()
}

fn wc_deploy_tool() -> String {
    let module = common::shipped_policies().join("../guest-tools/wasm/wc.wasm");
    format!(
        r#"name = "wc-deploy"
description = "wc, declared as a deployment step so that every call needs a human's approval."
justification = "Test tool: reads one file; the deploy category sends it to a human."
categories = ["read", "deploy"]

[backend]
wasm = {module:?}
sha256 = "{sha}"

[input]
type = "object"
additionalProperties = false
required = ["path"]

[input.properties.path]
type = "string"
minLength = 1
pattern = "^[^/]"

[input.properties.api_token]
type = "string"

[invoke]
args = ["--json", "--", "{{path}}"]

[files]
read = ["."]
"#,
        module = module.to_string_lossy(),
        sha = wc_sha256()
    )
}

/// A temp dir with policies, two workspaces and airlock's state (audit log, approvals).
struct Setup {
    root: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let root = tempfile::tempdir().unwrap();
        let policies = root.path().join("policies");
        fs::create_dir_all(policies.join("tools")).unwrap();
        for file in ["designations.toml", "callers.toml"] {
            fs::copy(common::shipped_policies().join(file), policies.join(file)).unwrap();
        }
        fs::write(policies.join("tools/wc-deploy.toml"), wc_deploy_tool()).unwrap();
        for ws in ["ws", "ws2"] {
            fs::create_dir_all(root.path().join(ws)).unwrap();
            fs::write(root.path().join(ws).join("a.txt"), "one two\nthree\n").unwrap();
            fs::write(root.path().join(ws).join("b.txt"), "four\n").unwrap();
        }
        Setup { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// airlock's state directory (`--state-dir`); the approvals are in `approvals/` in it.
    fn state_dir(&self) -> PathBuf {
        self.path("state/airlock")
    }

    fn approvals_dir(&self) -> PathBuf {
        self.state_dir().join("approvals")
    }

    fn audit_path(&self) -> PathBuf {
        self.path("audit.jsonl")
    }

    fn runtime(&self) -> Runtime {
        self.runtime_with_ttl(Duration::from_secs(3600))
    }

    fn runtime_with_ttl(&self, ttl: Duration) -> Runtime {
        Runtime::builder(self.path("policies"))
            .audit_path(self.audit_path())
            .fsync(Fsync::Off)
            .cache_dir(Some(self.path("cache")))
            .approvals_dir(self.approvals_dir())
            .approval_ttl(ttl)
            .build()
            .unwrap()
    }

    fn request(&self, caller: &str, workspace: &str, path: &str) -> CallRequest {
        CallRequest::new(caller, "wc-deploy", self.path(workspace)).arguments(json!({ "path": path }))
    }

    fn last_record(&self) -> AuditRecord {
        audit::tail(&self.audit_path(), 1).unwrap().pop().unwrap()
    }
}

async fn call(runtime: &Runtime, request: CallRequest) -> CallOutcome {
    runtime.call(request).await.unwrap()
}

/// The pending approval's id of an outcome that needs approval.
fn pending_id(outcome: &CallOutcome) -> String {
    match &outcome.status {
        Status::NeedsApproval { approval_id, expires_at } => {
            assert!(!expires_at.is_empty());
            approval_id.clone()
        }
        other => panic!("expected needs-approval, got {other:?}"),
    }
}

fn assert_ran(outcome: &CallOutcome) {
    assert_eq!(outcome.status, Status::Ok, "stderr: {}", outcome.stderr.text());
    let counts: Value = serde_json::from_slice(&outcome.stdout.bytes).unwrap();
    assert!(counts["lines"].is_u64(), "stdout: {}", outcome.stdout.text());
}

fn assert_denied(outcome: &CallOutcome, part: &str) {
    match &outcome.status {
        Status::Denied { reason } => assert!(reason.contains(part), "reason {reason:?} lacks {part:?}"),
        other => panic!("expected a denial containing {part:?}, got {other:?}"),
    }
}

fn approve(runtime: &Runtime, id: &str, uses: u32) -> Approval {
    runtime.approvals().decide(id, "operator", Verdict::Approve { uses }).unwrap()
}

/// The file of approval `id` in the store.
fn approval_file(setup: &Setup, id: &str) -> PathBuf {
    fs::read_dir(setup.approvals_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(&format!("-{id}.json")))
        .unwrap()
}

#[tokio::test]
async fn pending_then_approve_then_the_retried_call_runs_and_is_audited() {
    let setup = Setup::new();
    let runtime = setup.runtime();
    let outcome = call(&runtime, setup.request("agent", "ws", "a.txt")).await;
    let id = pending_id(&outcome);
    assert_eq!(outcome.exit_code, None);
    assert!(outcome.stdout.bytes.is_empty(), "the call must not have run");

    let record = setup.last_record();
    assert_eq!(record.seq, outcome.audit_seq);
    assert_eq!(record.decision, Decision::NeedsApproval);
    assert_eq!(record.status(), Some("needs-approval"));
    let status = serde_json::to_value(&record.outcome.as_ref().unwrap().status).unwrap();
    assert_eq!(status["approval_id"], id.as_str());
    assert_eq!(record.approval, None);

    let pending = runtime.approvals().list(ApprovalFilter::Pending);
    assert_eq!(pending.len(), 1);
    let approval = &pending[0];
    assert_eq!(approval.id, id);
    assert_eq!((approval.tool.as_str(), approval.caller.as_str()), ("wc-deploy", "agent"));
    assert_eq!(approval.workspace, setup.path("ws").canonicalize().unwrap());
    assert_eq!(approval.arguments, json!({"path": "a.txt"}));
    assert_eq!(approval.arguments_sha256, record.arguments_sha256);
    assert!(approval.rule.contains("deploy"), "rule: {}", approval.rule);
    assert_eq!(runtime.approvals().get(&id).unwrap().state, ApprovalState::Pending);

    let decided = approve(&runtime, &id, 1);
    assert_eq!((decided.state, decided.uses_left), (ApprovalState::Approved, 1));

    let outcome = call(&runtime, setup.request("agent", "ws", "a.txt")).await;
    assert_ran(&outcome);
    let record = setup.last_record();
    assert_eq!(record.decision, Decision::NeedsApproval);
    assert_eq!(record.status(), Some("ok"));
    let stamp = record.approval.expect("the record names the approval");
    assert_eq!(stamp.id, id);
    assert_eq!(stamp.approver, "operator");
    assert_eq!(Some(stamp.time), decided.decided);

    // The one use is gone: the same call asks again, with a new approval.
    let used = runtime.approvals().get(&id).unwrap();
    assert_eq!((used.state, used.uses_left), (ApprovalState::Used, 0));
    let again = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    assert_ne!(again, id);
    runtime.close().await.unwrap();
    assert!(audit::verify(&setup.audit_path()).unwrap().first_bad.is_none());
}

#[tokio::test]
async fn denial_refuses_the_call_with_the_humans_reason_until_it_expires() {
    let setup = Setup::new();
    let runtime = setup.runtime();
    let id = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    assert!(matches!(
        runtime.approvals().decide(&id, "operator", Verdict::Deny { reason: "  ".into() }),
        Err(ApprovalError::MissingReason)
    ));
    let denied = runtime.approvals().decide(&id, "operator", Verdict::Deny { reason: "not during the freeze".into() });
    assert_eq!(denied.unwrap().state, ApprovalState::Denied);

    let outcome = call(&runtime, setup.request("agent", "ws", "a.txt")).await;
    assert_denied(&outcome, "not during the freeze");
    assert_denied(&outcome, "operator");
    assert_eq!(setup.last_record().status(), Some("denied"));
    // Asking again at once gets the same answer, not a fresh request to the human.
    assert_denied(&call(&runtime, setup.request("agent", "ws", "a.txt")).await, "not during the freeze");
    assert!(runtime.approvals().list(ApprovalFilter::Pending).is_empty());
    // A decided approval cannot be decided again.
    assert!(matches!(
        runtime.approvals().decide(&id, "operator", Verdict::Approve { uses: 1 }),
        Err(ApprovalError::NotPending { state: ApprovalState::Denied, .. })
    ));
}

#[tokio::test]
async fn expired_approvals_cannot_be_decided_and_deny_the_call_once() {
    let setup = Setup::new();
    let runtime = setup.runtime_with_ttl(Duration::from_millis(400));
    let id = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runtime.approvals().get(&id).unwrap().state, ApprovalState::Expired);
    assert_eq!(runtime.approvals().list(ApprovalFilter::Expired).len(), 1);
    assert!(runtime.approvals().list(ApprovalFilter::Pending).is_empty());
    assert!(matches!(
        runtime.approvals().decide(&id, "operator", Verdict::Approve { uses: 1 }),
        Err(ApprovalError::Expired { .. })
    ));
    let outcome = call(&runtime, setup.request("agent", "ws", "a.txt")).await;
    assert_denied(&outcome, "approval expired");
    assert_denied(&outcome, &id);
    // Told once; the next identical call asks a human again.
    let fresh = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    assert_ne!(fresh, id);

    // Approved but not used in time: expired too.
    approve(&runtime, &fresh, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcome = call(&runtime, setup.request("agent", "ws", "a.txt")).await;
    assert_denied(&outcome, "approval expired");
    assert_denied(&outcome, "before this call used it");
    assert_eq!(runtime.approvals().get(&fresh).unwrap().state, ApprovalState::Expired);
}

#[tokio::test]
async fn an_approval_is_only_for_its_exact_call() {
    let setup = Setup::new();
    let runtime = setup.runtime();
    let id = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    // The identical call reuses its pending approval: no pile of duplicates.
    assert_eq!(pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await), id);
    assert_eq!(runtime.approvals().list(ApprovalFilter::Pending).len(), 1);
    approve(&runtime, &id, 1);

    // Changed arguments, another workspace, another caller: none of them runs on it.
    let others = [
        setup.request("agent", "ws", "b.txt"),
        setup.request("agent", "ws2", "a.txt"),
        setup.request("ci", "ws", "a.txt"),
        setup.request("agent", "ws", "a.txt").arguments(json!({"path": "a.txt", "api_token": "s3cret"})),
    ];
    let mut ids = vec![id.clone()];
    for request in others {
        let other = pending_id(&call(&runtime, request).await);
        assert!(!ids.contains(&other), "a different call shares approval {other}");
        ids.push(other);
    }
    // The approval was not touched by them: the exact call still runs.
    assert_eq!(runtime.approvals().get(&id).unwrap().uses_left, 1);
    assert_ran(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);

    // Secrets are stored redacted, yet still bound: another token is another call.
    let with_token = runtime.approvals().get(&ids[4]).unwrap();
    assert!(with_token.arguments["api_token"].as_str().unwrap().starts_with("[redacted sha256:"));
    assert!(!fs::read_to_string(approval_file(&setup, &ids[4])).unwrap().contains("s3cret"));
    let request = setup.request("agent", "ws", "a.txt").arguments(json!({"path": "a.txt", "api_token": "other"}));
    assert!(!ids.contains(&pending_id(&call(&runtime, request).await)));
}

#[tokio::test]
async fn uses_count_down_then_the_call_needs_approval_again() {
    let setup = Setup::new();
    let runtime = setup.runtime();
    let id = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    assert!(matches!(
        runtime.approvals().decide(&id, "operator", Verdict::Approve { uses: 0 }),
        Err(ApprovalError::BadUses { uses: 0 })
    ));
    approve(&runtime, &id, 2);
    assert_ran(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    assert_eq!(runtime.approvals().get(&id).unwrap().uses_left, 1);
    assert_ran(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    let third = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    assert_ne!(third, id);
    let used = runtime.approvals().get(&id).unwrap();
    assert_eq!((used.state, used.uses_granted, used.uses_left), (ApprovalState::Used, 2, 0));
    assert_eq!(runtime.approvals().list(ApprovalFilter::Used).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_racing_for_the_last_use_run_exactly_once() {
    let setup = Setup::new();
    let runtime = Arc::new(setup.runtime());
    let id = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    approve(&runtime, &id, 1);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let runtime = Arc::clone(&runtime);
            let request = setup.request("agent", "ws", "a.txt");
            tokio::spawn(async move { runtime.call(request).await.unwrap() })
        })
        .collect();
    let mut ran = 0;
    let mut pending = Vec::new();
    for task in tasks {
        let outcome = task.await.unwrap();
        if outcome.status == Status::Ok {
            ran += 1;
        } else {
            pending.push(pending_id(&outcome));
        }
    }
    assert_eq!(ran, 1, "exactly one call may take the last use");
    // The losers all wait on one new approval, not seven.
    pending.sort();
    pending.dedup();
    assert_eq!(pending.len(), 1);
    assert_ne!(pending[0], id);
    assert_eq!(runtime.approvals().list(ApprovalFilter::Pending).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_is_woken_by_the_decision() {
    let setup = Setup::new();
    let runtime = Arc::new(setup.runtime());
    let waiting = |path: &str, wait_ms: u64| {
        let runtime = Arc::clone(&runtime);
        let request = setup.request("agent", "ws", path).approval_wait(Duration::from_millis(wait_ms));
        tokio::spawn(async move { runtime.call(request).await.unwrap() })
    };
    let pending_for = |path: &str| {
        runtime.approvals().list(ApprovalFilter::Pending).into_iter().find(|a| a.arguments["path"] == path)
    };
    async fn until<T>(mut f: impl FnMut() -> Option<T>) -> T {
        for _ in 0..200 {
            if let Some(t) = f() {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out");
    }

    // Approve: the waiting call runs.
    let started = Instant::now();
    let task = waiting("a.txt", 30_000);
    let approval = until(|| pending_for("a.txt")).await;
    approve(&runtime, &approval.id, 1);
    assert_ran(&task.await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(20), "woken, not timed out");
    assert_eq!(setup.last_record().approval.unwrap().id, approval.id);

    // Deny: the waiting call is refused with the reason.
    let task = waiting("b.txt", 30_000);
    let approval = until(|| pending_for("b.txt")).await;
    runtime.approvals().decide(&approval.id, "operator", Verdict::Deny { reason: "no".into() }).unwrap();
    assert_denied(&task.await.unwrap(), "denied this call");

    // Nobody decides: after the wait, the pending id comes back.
    let started = Instant::now();
    let outcome = waiting("a.txt", 300).await.unwrap();
    pending_id(&outcome);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_store_survives_a_restart() {
    let setup = Setup::new();
    let runtime = setup.runtime();
    let id = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    let other = pending_id(&call(&runtime, setup.request("agent", "ws", "b.txt")).await);
    approve(&runtime, &other, 1);
    runtime.close().await.unwrap();

    let runtime = setup.runtime();
    let pending = runtime.approvals().list(ApprovalFilter::Pending);
    assert_eq!(pending.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert_eq!(runtime.approvals().list(ApprovalFilter::All).len(), 2);
    // The approval given before the restart still lets its call run.
    assert_ran(&call(&runtime, setup.request("agent", "ws", "b.txt")).await);
    // The pending one is the same approval, decidable now.
    assert_eq!(pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await), id);
    approve(&runtime, &id, 1);
    assert_ran(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    runtime.close().await.unwrap();
    assert!(audit::verify(&setup.audit_path()).unwrap().first_bad.is_none());
}

#[tokio::test]
async fn a_corrupted_approval_file_fails_closed_with_a_clear_error() {
    let setup = Setup::new();
    let runtime = setup.runtime();
    let id = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    approve(&runtime, &id, 5);
    let file = approval_file(&setup, &id);

    // A careless edit (valid JSON, more uses) fails the checksum.
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, text.replace("\"uses_left\": 5", "\"uses_left\": 4")).unwrap();
    let outcome = call(&runtime, setup.request("agent", "ws", "a.txt")).await;
    assert_denied(&outcome, "is corrupt");
    assert_denied(&outcome, "checksum");
    assert_denied(&outcome, &file.display().to_string());
    assert!(outcome.stdout.bytes.is_empty());

    // Garbage: the call is refused; list and get name the problem.
    fs::write(&file, b"{\"id\": \"trunc").unwrap();
    assert_denied(&call(&runtime, setup.request("agent", "ws", "a.txt")).await, "not JSON");
    assert!(matches!(runtime.approvals().load(&id), Err(ApprovalError::Corrupt { .. })));
    assert_eq!(runtime.approvals().get(&id), None);
    let list = runtime.approvals().list_checked(ApprovalFilter::All);
    assert!(list.approvals.is_empty());
    assert_eq!(list.unreadable.len(), 1);
    assert!(list.unreadable[0].to_string().contains("move it out of the directory"));

    // Moved aside, the call asks for a new approval.
    fs::rename(&file, setup.path("moved-aside.json")).unwrap();
    assert_ne!(pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await), id);
}

#[tokio::test]
async fn an_approval_copied_under_another_calls_name_is_refused() {
    let setup = Setup::new();
    let runtime = setup.runtime();
    let id = pending_id(&call(&runtime, setup.request("agent", "ws", "a.txt")).await);
    approve(&runtime, &id, 1);
    let workspace = setup.path("ws").canonicalize().unwrap();
    let other = airlock::approvals::binding("wc-deploy", &json!({"path": "b.txt"}), &workspace, "agent");
    fs::copy(approval_file(&setup, &id), setup.approvals_dir().join(format!("{other}-{id}.json"))).unwrap();
    let outcome = call(&runtime, setup.request("agent", "ws", "b.txt")).await;
    assert_denied(&outcome, "renamed or copied");
}

#[test]
fn malformed_ids_never_reach_the_file_system() {
    let setup = Setup::new();
    let approvals = airlock::approvals::Approvals::open(
        setup.approvals_dir(),
        Duration::from_secs(60),
        airlock::audit::Redactor::default(),
    )
    .unwrap();
    for id in ["../../etc/passwd", "", "ABCDEF0123456789ABCDEF0123456789", "*"] {
        assert!(matches!(approvals.load(id), Err(ApprovalError::BadId { .. })), "{id}");
        assert!(matches!(approvals.decide(id, "op", Verdict::Approve { uses: 1 }), Err(ApprovalError::BadId { .. })));
    }
    let missing = "0123456789abcdef0123456789abcdef";
    assert!(matches!(approvals.load(missing), Err(ApprovalError::NotFound { .. })));
}

// ---- CLI, on the store directly (--state-dir) ----

fn airlock_cli(setup: &Setup) -> std::process::Command {
    let mut command = common::airlock(setup.root.path());
    command
        .env("AIRLOCK_AUDIT", setup.audit_path())
        .env("AIRLOCK_POLICIES", setup.path("policies"))
        .env("XDG_STATE_HOME", setup.path("state"));
    command
}

fn run_cli(setup: &Setup, path: &str) -> std::process::Output {
    airlock_cli(setup)
        .args(["run", "wc-deploy", "--caller", "agent", "--arg"])
        .arg(format!("path={path}"))
        .arg("--workspace")
        .arg(setup.path("ws"))
        .output()
        .unwrap()
}

fn approvals_cli(setup: &Setup, args: &[&str]) -> std::process::Output {
    airlock_cli(setup).arg("approvals").args(args).arg("--state-dir").arg(setup.state_dir()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The approval id in `airlock run`'s needs-approval message.
fn id_in(stderr: &str) -> String {
    let at = stderr.find("pending approval ").unwrap() + "pending approval ".len();
    stderr[at..at + 32].to_string()
}

#[test]
fn cli_pending_approve_run_and_deny_with_state_dir() {
    let setup = Setup::new();
    let out = run_cli(&setup, "a.txt");
    assert_eq!(out.status.code(), Some(75), "stderr: {}", text(&out.stderr));
    let id = id_in(&text(&out.stderr));

    let out = approvals_cli(&setup, &["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&id));
    let out = approvals_cli(&setup, &["list", "--json"]);
    let listed: Vec<Approval> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].arguments, json!({"path": "a.txt"}));
    let out = approvals_cli(&setup, &["show", &id]);
    assert!(text(&out.stdout).contains("state      pending"), "{}", text(&out.stdout));

    let out = approvals_cli(&setup, &["approve", &id, "--uses", "2", "--approver", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("decided    by alice"));

    let out = run_cli(&setup, "a.txt");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"lines\""));
    let record = audit::tail(&setup.audit_path(), 1).unwrap().pop().unwrap();
    let stamp = record.approval.unwrap();
    assert_eq!((stamp.id.as_str(), stamp.approver.as_str()), (id.as_str(), "alice"));
    let out = approvals_cli(&setup, &["list", "--state", "approved", "--json"]);
    let listed: Vec<Approval> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0].uses_left, 1);

    // Deny: the reason is required, and the call is refused with it.
    let id = id_in(&text(&run_cli(&setup, "b.txt").stderr));
    let out = approvals_cli(&setup, &["deny", &id]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("--reason"));
    let out = approvals_cli(&setup, &["deny", &id, "--reason", "wrong file"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run_cli(&setup, "b.txt");
    assert_eq!(out.status.code(), Some(126));
    assert!(text(&out.stderr).contains("wrong file"), "{}", text(&out.stderr));

    // Deciding twice, an unknown id, a bad id: errors that say so.
    let out = approvals_cli(&setup, &["approve", &id]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("is denied, not pending"), "{}", text(&out.stderr));
    let out = approvals_cli(&setup, &["show", "0123456789abcdef0123456789abcdef"]);
    assert!(text(&out.stderr).contains("there is no approval"), "{}", text(&out.stderr));
    let out = approvals_cli(&setup, &["show", "../x"]);
    assert!(text(&out.stderr).contains("is not an approval id"), "{}", text(&out.stderr));

    let out = approvals_cli(&setup, &["list", "--all", "--json"]);
    let listed: Vec<Approval> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);
}

#[test]
fn cli_list_names_a_corrupt_file_and_exits_1() {
    let setup = Setup::new();
    let id = id_in(&text(&run_cli(&setup, "a.txt").stderr));
    fs::write(approval_file(&setup, &id), "garbage").unwrap();
    let out = approvals_cli(&setup, &["list", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is corrupt"), "{}", text(&out.stderr));
    // And the call does not run on it.
    let out = run_cli(&setup, "a.txt");
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
}

#[test]
fn cli_state_dir_must_exist_and_socket_errors_say_what_to_do() {
    let setup = Setup::new();
    let out =
        airlock_cli(&setup).args(["approvals", "list", "--state-dir"]).arg(setup.path("nowhere")).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("there is no approvals directory"), "{}", text(&out.stderr));
    let out = airlock_cli(&setup).args(["approvals", "list", "--socket"]).arg(setup.path("no.sock")).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("is it running?"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_sees_a_decision_made_by_another_process() {
    let setup = Setup::new();
    let runtime = Arc::new(setup.runtime());
    let task = {
        let runtime = Arc::clone(&runtime);
        let request = setup.request("agent", "ws", "a.txt").approval_wait(Duration::from_secs(30));
        tokio::spawn(async move { runtime.call(request).await.unwrap() })
    };
    let mut pending = Vec::new();
    for _ in 0..200 {
        pending = runtime.approvals().list(ApprovalFilter::Pending);
        if !pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let id = pending[0].id.clone();
    let out = approvals_cli(&setup, &["approve", &id, "--approver", "bob"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let outcome = tokio::time::timeout(Duration::from_secs(20), task).await.unwrap().unwrap();
    assert_ran(&outcome);
    assert_eq!(setup.last_record().approval.unwrap().approver, "bob");
}

/// `--socket`: the CLI speaks JSON-RPC to the service with the params the approvals module
/// defines (`DecideParams`), after the MCP handshake. A stand-in service answers here; the
/// real one is tested with `airlock serve`.
#[test]
fn cli_socket_sends_the_agreed_params() {
    use std::io::{BufRead, BufReader, Write};
    let setup = Setup::new();
    let socket = setup.path("airlock.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let id = "0123456789abcdef0123456789abcdef";
    let served = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut methods = Vec::new();
        for line in BufReader::new(stream).lines() {
            let message: Value = serde_json::from_str(&line.unwrap()).unwrap();
            let method = message["method"].as_str().unwrap().to_string();
            methods.push((method.clone(), message["params"].clone()));
            let result = match method.as_str() {
                "initialize" => json!({"protocolVersion": "2025-11-25", "capabilities": {}}),
                "airlock/approvals.decide" => json!({"approval": {
                    "id": id, "state": "denied", "binding": "b".repeat(64), "tool": "wc-deploy",
                    "caller": "agent", "workspace": "/w", "session": null, "arguments": {"path": "a"},
                    "arguments_sha256": "c".repeat(64), "rule": "r", "created": "2026-11-27T10:00:00Z",
                    "expires": "2026-11-27T11:00:00Z", "uses_granted": 0, "uses_left": 0,
                    "approver": "operator", "decided": "2026-11-27T10:01:00Z", "reason": "not now"}}),
                _ => continue,
            };
            let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": result});
            writeln!(writer, "{reply}").unwrap();
            if method != "initialize" {
                break;
            }
        }
        methods
    });
    let out = airlock_cli(&setup)
        .args(["approvals", "deny", id, "--reason", "not now", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("decided    by operator"));
    let methods = served.join().unwrap();
    let names: Vec<&str> = methods.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["initialize", "notifications/initialized", "airlock/approvals.decide"]);
    assert_eq!(methods[2].1, json!({"id": id, "verdict": "deny", "reason": "not now"}));
}

/// The shipped `release` tool (a `deploy` step in the jail): it runs only once a human
/// approved that exact artifact, copies it into `dist/`, and copies a symlink as a link,
/// never the host file it points at.
#[tokio::test]
async fn tool_release_ships_only_the_approved_artifact_and_never_follows_a_link() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("ws");
    for dir in ["build", "dist"] {
        fs::create_dir_all(ws.join(dir)).unwrap();
    }
    fs::write(ws.join("build/app.txt"), "app 1.0\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", ws.join("build/link")).unwrap();
    let runtime = Runtime::builder(common::shipped_policies())
        .audit_path(root.path().join("audit.jsonl"))
        .approvals_dir(root.path().join("approvals"))
        .build()
        .unwrap();
    let release = |artifact: &str| CallRequest::new("agent", "release", &ws).arguments(json!({ "artifact": artifact }));
    let approve = |outcome: &CallOutcome| {
        let Status::NeedsApproval { approval_id, .. } = &outcome.status else { panic!("{outcome:?}") };
        runtime.approvals().decide(approval_id, "operator", Verdict::Approve { uses: 1 }).unwrap();
    };

    let pending = runtime.call(release("build/app.txt")).await.unwrap();
    assert!(!ws.join("dist/app.txt").exists(), "nothing ships before the approval");
    approve(&pending);
    let shipped = runtime.call(release("build/app.txt")).await.unwrap();
    assert_eq!(shipped.status, Status::Ok, "{shipped:?}");
    assert_eq!(fs::read_to_string(ws.join("dist/app.txt")).unwrap(), "app 1.0\n");
    let again = runtime.call(release("build/app.txt")).await.unwrap();
    assert!(matches!(again.status, Status::NeedsApproval { .. }), "one use only: {again:?}");

    // The attack: an approved "artifact" that is a link to a host file.
    approve(&runtime.call(release("build/link")).await.unwrap());
    let linked = runtime.call(release("build/link")).await.unwrap();
    assert_eq!(linked.status, Status::Ok, "{linked:?}");
    let copied = fs::symlink_metadata(ws.join("dist/link")).unwrap();
    assert!(copied.file_type().is_symlink(), "the link itself is copied, not the host's file");
    assert_eq!(fs::read_link(ws.join("dist/link")).unwrap(), PathBuf::from("/etc/hostname"));
    runtime.close().await.unwrap();
}
