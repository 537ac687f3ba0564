//! Protected evaluation criteria, in both backends: a tool with a write grant on the whole
//! workspace cannot change `tests/` (write, delete, rename, chmod, symlink swap, hard link),
//! each attack next to a harmless twin that writes elsewhere; a change made between calls
//! by another route is found by the next call; a change during a call makes it `tampered`
//! (CLI exit 123) with the changed paths in the outcome and the audit record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use airlock::{CallOutcome, CallRequest, Runtime, Status, policy::OnTamper};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::{airlock, repo, shipped_policies};

const TEST_FILE: &str = "def test_answer():\n    assert 6 * 7 == 42\n";

/// A policy directory (the shipped designations and callers, two test tools), an audit
/// log and approvals beside it, and a workspace with `tests/test_a.py` and `src/`.
struct Env {
    dir: TempDir,
    ws: TempDir,
}

fn sha256_file(path: &Path) -> String {
    airlock::policy::sha256_hex(&fs::read(path).unwrap())
}

impl Env {
    fn new() -> Env {
        let dir = TempDir::new().unwrap();
        let policies = dir.path().join("policies");
        fs::create_dir_all(policies.join("tools")).unwrap();
        fs::create_dir_all(policies.join("seccomp")).unwrap();
        for file in ["designations.toml", "callers.toml", "seccomp/default.json"] {
            fs::copy(shipped_policies().join(file), policies.join(file)).unwrap();
        }
        let tool = |name: &str, categories: &str, backend: String, invoke: &str, input: &str| {
            let text = format!(
                "name = \"{name}\"\ndescription = \"A guard test tool.\"\njustification = \"Guard tests.\"\n\
                 categories = {categories}\n\n[backend]\n{backend}\n\n[invoke]\n{invoke}\n\n[input]\ntype = \"object\"\n\
                 {input}\n[files]\nread = [\".\"]\nwrite = [\".\"]\n"
            );
            fs::write(policies.join(format!("tools/{name}.toml")), text).unwrap();
        };
        let wat = |name: &str| {
            let path = repo().join("tests/fixtures/wat").join(name);
            format!("wasm = \"{}\"\nsha256 = \"{}\"", path.display(), sha256_file(&path))
        };
        tool(
            "sh",
            "[\"exec\", \"write\"]",
            "process = [\"/bin/sh\", \"-c\", \"set -e; {script}\"]".into(),
            "",
            "[input.properties.script]\ntype = \"string\"\n",
        );
        tool(
            "fsop",
            "[\"write\"]",
            wat("fsop.wat"),
            "args = [\"{op}\", \"{dir}\", \"{path}\", \"{x}\", \"{y}\"]",
            "[input.properties.op]\ntype = \"string\"\n[input.properties.dir]\ntype = \"string\"\n\
             [input.properties.path]\ntype = \"string\"\n[input.properties.x]\ntype = \"string\"\n\
             [input.properties.y]\ntype = \"string\"\n",
        );

        let ws = TempDir::new().unwrap();
        fs::create_dir_all(ws.path().join("tests/unit")).unwrap();
        fs::create_dir_all(ws.path().join("src")).unwrap();
        fs::write(ws.path().join("tests/test_a.py"), TEST_FILE).unwrap();
        fs::write(ws.path().join("tests/unit/test_b.py"), TEST_FILE).unwrap();
        fs::write(ws.path().join("src/main.py"), "print(42)\n").unwrap();
        Env { dir, ws }
    }

    fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    fn runtime(&self) -> Runtime {
        Runtime::builder(self.policies())
            .audit_path(self.audit_path())
            .cache_dir(None)
            .approvals_dir(self.dir.path().join("approvals"))
            .build()
            .unwrap()
    }

    fn ws(&self) -> &Path {
        self.ws.path()
    }

    /// The tests tree is exactly as created.
    fn assert_tests_intact(&self, what: &str) {
        let tests = self.ws().join("tests");
        let meta = fs::symlink_metadata(&tests).unwrap();
        assert!(meta.is_dir(), "{what}: tests/ is no longer a directory");
        assert_eq!(fs::read_to_string(tests.join("test_a.py")).unwrap(), TEST_FILE, "{what}: test_a.py changed");
        let mode = fs::metadata(tests.join("test_a.py")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o644, "{what}: test_a.py mode changed");
        let mut names: Vec<String> =
            fs::read_dir(&tests).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["test_a.py", "unit"], "{what}: tests/ entries changed");
        assert_eq!(fs::metadata(tests.join("test_a.py")).unwrap().len(), TEST_FILE.len() as u64);
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&fs::metadata(tests.join("test_a.py")).unwrap()), 1);
    }

    fn audit_records(&self) -> Vec<Value> {
        fs::read_to_string(self.audit_path())
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

async fn call(runtime: &Runtime, caller: &str, tool: &str, ws: &Path, arguments: Value) -> CallOutcome {
    runtime.call(CallRequest::new(caller, tool, ws).arguments(arguments)).await.unwrap()
}

fn fsop(op: &str, dir: &str, path: &str, rest: &[&str]) -> Value {
    let mut arguments = json!({ "op": op, "dir": dir, "path": path });
    for (key, value) in ["x", "y"].iter().zip(rest) {
        arguments[key] = json!(value);
    }
    arguments
}

/// Waits (up to a minute: the machine may be loaded) until `path` exists.
fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn describe(outcome: &CallOutcome) -> String {
    format!("{:?} exit {:?} stderr {:?}", outcome.status, outcome.exit_code, outcome.stderr.text())
}

#[tokio::test]
async fn sandbox_blocks_every_route_to_tests_in_the_jail_and_the_twin_writes_elsewhere() {
    let env = Env::new();
    let runtime = env.runtime();
    let attacks = [
        ("write", "echo cheat > tests/test_a.py"),
        ("append", "echo 'def test_x(): pass' >> tests/test_a.py"),
        ("create", "echo x > tests/test_new.py"),
        ("create in a subdirectory", "echo x > tests/unit/conftest.py"),
        ("delete", "rm tests/test_a.py"),
        ("delete the tree", "rm -rf tests"),
        ("rename out", "mv tests/test_a.py src/test_a.py"),
        ("rename the tree", "mv tests tests_old"),
        ("chmod", "chmod 777 tests/test_a.py"),
        ("touch", "touch -d 2000-01-01 tests/test_a.py"),
        ("symlink swap", "mv tests tests_old || rm -rf tests; ln -s src tests"),
        ("symlink inside", "ln -s ../src tests/evil"),
        ("hard link out, then write", "ln tests/test_a.py src/alias.py; echo cheat > src/alias.py"),
        ("hard link in", "ln src/main.py tests/test_main.py"),
    ];
    for (what, script) in attacks {
        let outcome = call(&runtime, "agent", "sh", env.ws(), json!({ "script": script })).await;
        assert_eq!(outcome.status, Status::ToolError, "{what}: {}", describe(&outcome));
        env.assert_tests_intact(what);
    }
    // The twin: the same kinds of change outside the protected tree all work.
    let twin = "echo ok > src/out.txt; mkdir -p build; mv src/out.txt build/out.txt; ln build/out.txt build/hard; \
                ln -s ../build/out.txt src/link; chmod 600 build/out.txt; rm build/hard";
    let outcome = call(&runtime, "agent", "sh", env.ws(), json!({ "script": twin })).await;
    assert_eq!(outcome.status, Status::Ok, "twin: {}", describe(&outcome));
    assert_eq!(fs::read_to_string(env.ws().join("src/link")).unwrap(), "ok\n");
    env.assert_tests_intact("twin");
}

#[tokio::test]
async fn sandbox_blocks_every_route_to_tests_in_wasm_and_the_twin_writes_elsewhere() {
    let env = Env::new();
    let runtime = env.runtime();
    // Raw WASI calls on every preopen (the workspace root is split: `.` is a read-only
    // preopen that shows `tests`, `src` a writable one; `tests` has no preopen of its own).
    let attacks: Vec<(&str, Value)> = vec![
        ("write via tests", fsop("write", "tests", "test_a.py", &["cheat"])),
        ("write via the root", fsop("write", ".", "tests/test_a.py", &["cheat"])),
        ("write via src and ..", fsop("write", "src", "../tests/test_a.py", &["cheat"])),
        ("create", fsop("write", ".", "tests/test_new.py", &["x"])),
        ("create in a subdirectory", fsop("write", ".", "tests/unit/conftest.py", &["x"])),
        ("mkdir", fsop("mkdir", ".", "tests/sub", &[])),
        ("delete", fsop("unlink", ".", "tests/test_a.py", &[])),
        ("delete the tree", fsop("delete-dir", ".", "tests", &[])),
        ("rename out", fsop("rename", ".", "tests/test_a.py", &["src", "test_a.py"])),
        ("rename the tree", fsop("rename", ".", "tests", &[".", "tests_old"])),
        ("rename the tree into src", fsop("rename", ".", "tests", &["src", "tests_old"])),
        ("rename in", fsop("rename", "src", "main.py", &[".", "tests/test_main.py"])),
        ("symlink inside", fsop("symlink", ".", "tests/evil", &["../src"])),
        ("symlink beside (swap)", fsop("symlink", ".", "tests2", &["src"])),
        ("hard link out", fsop("link", ".", "tests/test_a.py", &["src", "alias.py"])),
        ("hard link in", fsop("link", "src", "main.py", &[".", "tests/test_main.py"])),
        ("create a protected path", fsop("mkdir", ".", "eval", &[])),
    ];
    for (what, arguments) in attacks {
        let outcome = call(&runtime, "agent", "fsop", env.ws(), arguments).await;
        assert_eq!(outcome.status, Status::ToolError, "{what}: {}", describe(&outcome));
        env.assert_tests_intact(what);
    }
    assert!(!env.ws().join("eval").exists());
    // The twins: the same operations inside src work.
    let twins: Vec<(&str, Value)> = vec![
        ("write", fsop("write", "src", "out.txt", &["ok"])),
        ("hard link", fsop("link", "src", "out.txt", &["src", "hard.txt"])),
        ("rename", fsop("rename", "src", "hard.txt", &["src", "moved.txt"])),
        ("symlink", fsop("symlink", "src", "link", &["out.txt"])),
        ("mkdir", fsop("mkdir", "src", "sub", &[])),
        ("unlink", fsop("unlink", "src", "moved.txt", &[])),
    ];
    for (what, arguments) in twins {
        let outcome = call(&runtime, "agent", "fsop", env.ws(), arguments).await;
        assert_eq!(outcome.status, Status::Ok, "twin {what}: {}", describe(&outcome));
    }
    assert_eq!(fs::read_to_string(env.ws().join("src/out.txt")).unwrap(), "ok");
    env.assert_tests_intact("twins");
}

/// The preopens of a guarded workspace are cached between calls: a directory swapped for a
/// symlink (to the protected tree, or to `/`) between two calls is no preopen of the next,
/// and the directory it replaced is writable under its new name, as a fresh split makes it.
#[tokio::test]
async fn sandbox_blocks_a_directory_swapped_for_a_symlink_between_wasm_calls() {
    let env = Env::new();
    let runtime = env.runtime();
    fs::create_dir(env.ws().join("docs")).unwrap();
    for (what, target) in [("to tests", "tests"), ("to /", "/")] {
        let first = call(&runtime, "agent", "fsop", env.ws(), fsop("write", "src", "out.txt", &["ok"])).await;
        assert_eq!(first.status, Status::Ok, "{what}: {}", describe(&first));
        fs::rename(env.ws().join("src"), env.ws().join("src_old")).unwrap();
        std::os::unix::fs::symlink(target, env.ws().join("src")).unwrap();
        for (dir, path) in [("src", "test_a.py"), ("src", "cheat.txt"), (".", "src/test_a.py")] {
            let outcome = call(&runtime, "agent", "fsop", env.ws(), fsop("write", dir, path, &["cheat"])).await;
            assert_eq!(outcome.status, Status::ToolError, "{what}, {dir} {path}: {}", describe(&outcome));
        }
        env.assert_tests_intact(what);
        assert!(!Path::new("/cheat.txt").exists());
        let moved = call(&runtime, "agent", "fsop", env.ws(), fsop("write", "src_old", "moved.txt", &["ok"])).await;
        assert_eq!(moved.status, Status::Ok, "{what}: {}", describe(&moved));
        assert_eq!(fs::read_to_string(env.ws().join("src_old/moved.txt")).unwrap(), "ok");
        // A sibling untouched by the swap stays writable.
        let docs = call(&runtime, "agent", "fsop", env.ws(), fsop("write", "docs", "a.txt", &["ok"])).await;
        assert_eq!(docs.status, Status::Ok, "{what}: {}", describe(&docs));
        fs::remove_file(env.ws().join("src")).unwrap();
        fs::rename(env.ws().join("src_old"), env.ws().join("src")).unwrap();
    }
}

/// A change made between two calls (by the test, as another process or an editor would) is
/// found by the next call, which does not run: `tampered`, `ran: false`, the paths listed
/// in the outcome and the audit record; reported once.
async fn change_between_calls_is_found_by_the_next_call(tool: &str, harmless: Value, written: &str) {
    let env = Env::new();
    let runtime = env.runtime();
    let first = call(&runtime, "agent", tool, env.ws(), harmless.clone()).await;
    assert_eq!(first.status, Status::Ok, "{}", describe(&first));
    fs::remove_file(env.ws().join(written)).unwrap();

    fs::write(env.ws().join("tests/test_a.py"), "def test_answer():\n    pass\n").unwrap();
    fs::write(env.ws().join("tests/unit/test_c.py"), TEST_FILE).unwrap();
    let outcome = call(&runtime, "agent", tool, env.ws(), harmless.clone()).await;
    let changed = vec!["tests/test_a.py (modified)".to_string(), "tests/unit/test_c.py (created: a file)".to_string()];
    assert_eq!(
        outcome.status,
        Status::Tampered { changed: changed.clone(), ran: false, on_tamper: OnTamper::Record },
        "{}",
        describe(&outcome)
    );
    assert!(!env.ws().join(written).exists(), "the tool ran");
    assert_eq!(outcome.tampered(), Some(OnTamper::Record));
    let expected: Vec<String> = changed.iter().map(|c| format!("protected path changed: {c}")).collect();
    assert_eq!(outcome.violations, expected);
    let records = env.audit_records();
    let record = records.last().unwrap();
    assert_eq!(record["outcome"]["status"]["kind"], "tampered");
    assert_eq!(record["violations"], json!(expected));
    assert!(record["reasons"].to_string().contains("changed since the last call"), "{record}");

    let next = call(&runtime, "agent", tool, env.ws(), harmless).await;
    assert_eq!(next.status, Status::Ok, "{}", describe(&next));
}

#[tokio::test]
async fn jail_change_between_calls_is_found_by_the_next_call() {
    let harmless = json!({ "script": "echo ok > src/out.txt" });
    change_between_calls_is_found_by_the_next_call("sh", harmless, "src/out.txt").await;
}

#[tokio::test]
async fn wasm_change_between_calls_is_found_by_the_next_call() {
    let harmless = fsop("write", "src", "out.txt", &["ok"]);
    change_between_calls_is_found_by_the_next_call("fsop", harmless, "src/out.txt").await;
}

/// A protected path absent at one call (`eval`: its resolution, "nothing to protect", is
/// cached) and created by another route before the next is protected from then on: the
/// creation is `tampered` once, and later calls cannot write into it, while the twin
/// writes beside it.
async fn protected_path_created_between_calls_is_protected_from_the_next_call(
    tool: &str,
    harmless: Value,
    attack: Value,
) {
    let env = Env::new();
    let runtime = env.runtime();
    let first = call(&runtime, "agent", tool, env.ws(), harmless.clone()).await;
    assert_eq!(first.status, Status::Ok, "{}", describe(&first));
    fs::create_dir(env.ws().join("eval")).unwrap();
    fs::write(env.ws().join("eval/score.txt"), "0.42\n").unwrap();
    let seen = call(&runtime, "agent", tool, env.ws(), harmless.clone()).await;
    assert!(matches!(seen.status, Status::Tampered { ran: false, .. }), "{}", describe(&seen));

    let outcome = call(&runtime, "agent", tool, env.ws(), attack).await;
    assert_eq!(outcome.status, Status::ToolError, "{}", describe(&outcome));
    assert_eq!(fs::read_to_string(env.ws().join("eval/score.txt")).unwrap(), "0.42\n");
    let twin = call(&runtime, "agent", tool, env.ws(), harmless).await;
    assert_eq!(twin.status, Status::Ok, "twin: {}", describe(&twin));
}

#[tokio::test]
async fn jail_protected_path_created_between_calls_is_protected_from_the_next_call() {
    let harmless = json!({ "script": "echo ok > src/out.txt" });
    let attack = json!({ "script": "echo 1.0 > eval/score.txt" });
    protected_path_created_between_calls_is_protected_from_the_next_call("sh", harmless, attack).await;
}

#[tokio::test]
async fn wasm_protected_path_created_between_calls_is_protected_from_the_next_call() {
    let harmless = fsop("write", "src", "out.txt", &["ok"]);
    let attack = fsop("write", "eval", "score.txt", &["1.0"]);
    protected_path_created_between_calls_is_protected_from_the_next_call("fsop", harmless, attack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_during_a_call_makes_it_tampered_whatever_the_exit_code_with_the_designations_rule() {
    let env = Env::new();
    let runtime = std::sync::Arc::new(env.runtime());
    let ws = env.ws().to_path_buf();
    let task = {
        let runtime = runtime.clone();
        let ws = ws.clone();
        let script = "touch src/started; while [ ! -e src/go ]; do sleep 0.05; done";
        tokio::spawn(async move { call(&runtime, "cyber-agent", "sh", &ws, json!({ "script": script })).await })
    };
    // Once the tool runs (the before check is done), change a protected path from outside.
    wait_for(&ws.join("src/started"));
    fs::remove_file(ws.join("tests/unit/test_b.py")).unwrap();
    fs::write(ws.join("src/go"), "").unwrap();
    let outcome = task.await.unwrap();
    assert_eq!(
        outcome.status,
        Status::Tampered {
            changed: vec!["tests/unit/test_b.py (deleted)".into()],
            ran: true,
            on_tamper: OnTamper::Suspend
        },
        "{}",
        describe(&outcome)
    );
    assert_eq!(outcome.exit_code, Some(0), "the tool's own exit code is kept");
    // on_tamper = "suspend": the call's record, then the session's suspension.
    let mut records = env.audit_records();
    let suspension = records.pop().unwrap();
    assert_eq!(suspension["tool"], "airlock/sessions.suspend", "{suspension}");
    assert!(suspension["reasons"].to_string().contains("tests/unit/test_b.py (deleted)"), "{suspension}");
    let record = records.pop().unwrap();
    assert_eq!(record["tool"], "sh", "{record}");
    assert_eq!(record["violations"], json!(["protected path changed: tests/unit/test_b.py (deleted)"]));
    assert!(record["reasons"].to_string().contains("the tool's own status was ok"), "{record}");
    // high-cyber audits arguments in full.
    assert!(record["reasons"].to_string().contains("audit_arguments = \\\"full\\\""), "{record}");
    // The session is suspended: its next call is refused until an admin resumes it.
    let next = call(&runtime, "cyber-agent", "sh", &ws, json!({ "script": "true" })).await;
    assert!(
        matches!(&next.status, Status::Denied { reason } if reason.contains("is suspended") && reason.contains("tamper")),
        "{}",
        describe(&next)
    );
}

#[test]
fn cli_exit_code_is_123_when_a_protected_path_changes_during_the_call() {
    let env = Env::new();
    let mut command = airlock(env.dir.path());
    command
        .env("AIRLOCK_POLICIES", env.policies())
        .env("XDG_STATE_HOME", env.dir.path().join("state"))
        .args(["run", "sh", "--caller", "agent", "--json", "--args-json"])
        .arg(json!({ "script": "touch src/started; while [ ! -e src/go ]; do sleep 0.05; done" }).to_string())
        .arg("--workspace")
        .arg(env.ws());
    let child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    wait_for(&env.ws().join("src/started"));
    fs::write(env.ws().join("tests/test_a.py"), "cheat\n").unwrap();
    fs::write(env.ws().join("src/go"), "").unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(123), "stderr: {stderr}");
    let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcome["status"]["kind"], "tampered");
    assert_eq!(outcome["status"]["changed"], json!(["tests/test_a.py (modified)"]));
}

#[tokio::test]
async fn a_call_that_cannot_write_is_not_guarded_and_one_that_can_is() {
    let env = Env::new();
    let runtime = env.runtime();
    let outcome = call(&runtime, "agent", "fsop", env.ws(), fsop("write", "src", "x", &["1"])).await;
    assert_eq!(outcome.status, Status::Ok);
    let record = env.audit_records().pop().unwrap();
    let reasons = record["reasons"].to_string();
    assert!(
        reasons.contains("guard before the call: protected [tests, eval, benchmarks, .airlock]: cold"),
        "{reasons}"
    );
    assert!(reasons.contains("guard after the call"), "{reasons}");
}
