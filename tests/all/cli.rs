//! The ways in of issue 2, end to end: every `airlock` subcommand run as the real binary
//! (`run`, `run-wasm`, `policy`, `audit`, `demo`, help and usage errors), then the library
//! API the CLI is built on (`Runtime::call`, `tools_for`, the guarded-path check, an audit
//! log that cannot be written, the fsync modes, concurrent calls).
//!
//! Every CLI test gets its own temp dir (workspace, audit log) through
//! [`common::airlock`]; all of them share one module cache under cargo's target tmp dir, so
//! each guest tool is compiled once for the whole run, not once per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::Arc,
    time::{Duration, SystemTime},
};

use airlock::{
    CallOutcome, CallRequest, Decision, Error, Limit, Runtime, Status,
    audit::{AuditError, AuditRecord, Fsync, read_records, verify},
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common;

/// The module cache every test shares (the CLI's `$XDG_CACHE_HOME`; the library's
/// `cache_dir` is `airlock/modules` under it, the same place).
fn shared_cache_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-module-cache")
}

fn shared_module_cache() -> PathBuf {
    shared_cache_home().join("airlock/modules")
}

const A_TXT: &str = "hello world\nfoo bar baz\n";

/// One test's scene: a temp dir holding a workspace `ws/` (with `a.txt`) and the audit log.
struct Scene {
    dir: TempDir,
}

/// What one run of the binary did.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn of(output: Output) -> Ran {
        Ran {
            code: output.status.code().expect("airlock was killed by a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    fn json_lines(&self) -> Vec<Value> {
        self.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Scene {
    fn new() -> Scene {
        let scene = Scene { dir: tempfile::tempdir().unwrap() };
        fs::create_dir_all(scene.ws()).unwrap();
        fs::write(scene.ws().join("a.txt"), A_TXT).unwrap();
        scene
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn audit(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// The binary with this scene's audit log, the shipped policies and the shared cache.
    fn command(&self) -> Command {
        let mut command = common::airlock(self.dir.path());
        command.env("XDG_CACHE_HOME", shared_cache_home()).env_remove("AIRLOCK_LOG").stdin(Stdio::null());
        command
    }

    fn airlock(&self, args: &[&str]) -> Ran {
        Ran::of(self.command().args(args).output().unwrap())
    }

    /// `airlock run TOOL --workspace WS --caller CALLER ARGS...`
    fn run(&self, tool: &str, caller: &str, args: &[&str]) -> Ran {
        let ws = self.ws();
        let mut command = self.command();
        command.args(["run", tool, "--caller", caller, "--workspace"]).arg(&ws).args(args);
        Ran::of(command.output().unwrap())
    }

    /// `airlock run-wasm MODULE ARGS...` with `stdin` on its standard input.
    fn run_wasm(&self, module: &Path, args: &[&str], stdin: &[u8]) -> Ran {
        let mut child = self
            .command()
            .arg("run-wasm")
            .arg(module)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        Ran::of(child.wait_with_output().unwrap())
    }

    fn records(&self) -> Vec<AuditRecord> {
        read_records(&self.audit()).unwrap().map(Result::unwrap).collect()
    }

    /// A log big enough that grep printing every line floods its 1 MiB output cap.
    fn write_big_log(&self) {
        let mut log = String::new();
        for i in 0..60_000 {
            writeln!(log, "request id={i} path=/api/items status=200").unwrap();
        }
        fs::write(self.ws().join("big.log"), log).unwrap();
    }
}

fn guest_module(name: &str) -> PathBuf {
    common::repo().join("guest-tools/wasm").join(name)
}

fn wat_fixture(name: &str) -> PathBuf {
    common::repo().join("tests/fixtures/wat").join(name)
}

/// The grep tool's output cap (policies/tools/grep.toml).
const GREP_OUTPUT_BYTES: usize = 1_048_576;

const WC_OF_A_TXT: &str = "{\"path\":\"a.txt\",\"lines\":2,\"words\":5,\"chars\":24,\"bytes\":24}\n";

// ---- airlock run ----

#[test]
fn run_passes_the_tools_stdout_through_and_exits_0() {
    let scene = Scene::new();
    let ran = scene.run("wc", "agent", &["--arg", "path=a.txt"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout, WC_OF_A_TXT);
    assert_eq!(ran.stderr, "");
}

#[test]
fn run_exits_1_when_grep_finds_no_match() {
    let scene = Scene::new();
    let ran = scene.run("grep", "agent", &["--arg", "pattern=no such text"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.stdout, "");
    assert_eq!(ran.stderr, "");
}

#[test]
fn run_mirrors_the_tools_own_failure_code_and_passes_its_stderr_through() {
    let scene = Scene::new();
    let ran = scene.run("wc", "agent", &["--arg", "path=missing.txt"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.stdout, "");
    assert!(ran.stderr.starts_with("wc: missing.txt: No such file or directory"), "{ran:?}");
    // A code other than 0 and 1: jq exits 3 when the filter does not parse.
    let ran = scene.run("jq", "agent", &["--arg", "filter=.[", "--arg", "input=1"]);
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stderr.starts_with("jq: error: "), "{ran:?}");
}

#[test]
fn run_types_arg_values_by_the_tools_schema() {
    let scene = Scene::new();
    fs::write(scene.ws().join("123"), "one two three\n").unwrap();
    // wc's `path` is a string: "123" stays a string (as a number it would fail the schema).
    let ran = scene.run("wc", "agent", &["--arg", "path=123"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout, "{\"path\":\"123\",\"lines\":1,\"words\":3,\"chars\":14,\"bytes\":14}\n");
    // grep's `count` is a boolean and `paths` an array: both parse as JSON; `pattern` is a
    // string, so `true` stays text.
    let ran = scene.run("grep", "agent", &["--arg", "pattern=o", "--arg", "count=true", "--arg", r#"paths=["a.txt"]"#]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout, "a.txt:2\n");
    let ran = scene.run("grep", "agent", &["--arg", "pattern=true", "--arg", "max_count=1"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let arguments: Vec<Value> = scene.records().into_iter().map(|r| r.arguments).collect();
    assert_eq!(
        arguments,
        [
            json!({ "path": "123" }),
            json!({ "pattern": "o", "count": true, "paths": ["a.txt"] }),
            json!({ "pattern": "true", "max_count": 1 }),
        ]
    );
}

#[test]
fn run_takes_args_json_and_arg_overrides_it() {
    let scene = Scene::new();
    let ran = scene.run("wc", "agent", &["--args-json", r#"{"path": "a.txt"}"#]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, WC_OF_A_TXT), "{ran:?}");
    let ran = scene.run("wc", "agent", &["--args-json", r#"{"path": "missing.txt"}"#, "--arg", "path=a.txt"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, WC_OF_A_TXT), "{ran:?}");
    // Not an object: airlock's own failure, nothing runs.
    let ran = scene.run("wc", "agent", &["--args-json", "[1]"]);
    assert_eq!(ran.code, 125, "{ran:?}");
    assert!(ran.stderr.contains("--args-json must be a JSON object"), "{ran:?}");
    assert_eq!(scene.records().len(), 2);
}

#[test]
fn run_json_prints_the_whole_outcome_and_the_exit_code_still_mirrors() {
    let scene = Scene::new();
    let ran = scene.run("wc", "agent", &["--arg", "path=a.txt", "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let outcome = ran.json();
    assert_eq!(outcome["status"], json!({ "kind": "ok" }));
    assert_eq!(outcome["exit_code"], 0);
    assert_eq!(outcome["stdout"], json!({ "bytes": WC_OF_A_TXT, "total_bytes": 59, "truncated": false }));
    assert_eq!(outcome["stderr"], json!({ "bytes": "", "total_bytes": 0, "truncated": false }));
    let usage = &outcome["usage"];
    assert!(usage["wall_us"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["fuel"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["peak_memory_bytes"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(outcome["audit_seq"], 1);
    // The whole outcome is the library's CallOutcome.
    let parsed: CallOutcome = serde_json::from_value(outcome).unwrap();
    assert!(parsed.is_ok());

    let ran = scene.run("wc", "agent", &["--arg", "path=missing.txt", "--json"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let outcome = ran.json();
    assert_eq!(outcome["status"], json!({ "kind": "tool-error" }));
    assert_eq!(outcome["exit_code"], 1);
    assert!(outcome["stderr"]["bytes"].as_str().unwrap().starts_with("wc: missing.txt: "), "{outcome}");
    assert_eq!(outcome["audit_seq"], 2);
    assert_eq!(ran.stderr, "", "with --json the tool's stderr is in the JSON, not passed through");

    let ran = scene.run("apply-patch", "reviewer", &["--arg", "patch=x", "--json"]);
    assert_eq!(ran.code, 126, "{ran:?}");
    let outcome = ran.json();
    assert_eq!(outcome["status"]["kind"], "denied");
    assert!(outcome["status"]["reason"].as_str().unwrap().contains("\"restricted\""), "{outcome}");
    assert_eq!(outcome["exit_code"], Value::Null);
    assert_eq!(outcome["audit_seq"], 3);
    assert_eq!(scene.records().iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
}

fn assert_denied(ran: &Ran, reason_part: &str) {
    assert_eq!(ran.code, 126, "{ran:?}");
    assert_eq!(ran.stdout, "", "{ran:?}");
    assert!(ran.stderr.starts_with("airlock: denied: "), "{ran:?}");
    assert!(ran.stderr.contains(reason_part), "expected {reason_part:?} in {ran:?}");
}

#[test]
fn run_exits_126_when_a_reviewer_calls_apply_patch() {
    let scene = Scene::new();
    let patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n-hello world\n+goodbye world\n foo bar baz\n";
    let ran = scene.run("apply-patch", "reviewer", &["--arg", &format!("patch={patch}")]);
    assert_denied(&ran, "designation \"restricted\" does not list category \"write\"");
    assert_eq!(fs::read_to_string(scene.ws().join("a.txt")).unwrap(), A_TXT, "the patch must not be applied");
    // The twin: the agent may apply it.
    let ran = scene.run("apply-patch", "agent", &["--arg", &format!("patch={patch}")]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(fs::read_to_string(scene.ws().join("a.txt")).unwrap(), "goodbye world\nfoo bar baz\n");
}

#[test]
fn run_exits_126_for_an_unknown_tool() {
    let scene = Scene::new();
    let ran = scene.run("no-such-tool", "agent", &[]);
    assert_denied(&ran, "there is no tool \"no-such-tool\"");
}

#[test]
fn run_exits_126_for_arguments_that_do_not_match_the_schema() {
    let scene = Scene::new();
    let ran = scene.run("wc", "agent", &["--arg", "paths=a.txt"]);
    assert_denied(&ran, "Additional properties are not allowed ('paths' was unexpected)");
    let ran = scene.run("wc", "agent", &["--arg", "path=/etc/passwd"]);
    assert_denied(&ran, "does not match");
}

#[test]
fn run_exits_124_when_grep_floods_its_output_cap() {
    let scene = Scene::new();
    scene.write_big_log();
    let ran = scene.run("grep", "agent", &["--arg", "pattern=request", "--arg", r#"paths=["big.log"]"#]);
    assert_eq!(ran.code, 124, "{}", ran.stderr);
    assert_eq!(ran.stdout.len(), GREP_OUTPUT_BYTES, "exactly the cap is passed through");
    assert!(ran.stdout.starts_with("big.log:request id=0 "), "{}", &ran.stdout[..100]);
    assert!(ran.stderr.contains("airlock: stdout truncated: kept 1048576 of "), "{}", ran.stderr);
    assert!(ran.stderr.ends_with("airlock: stopped: output limit exceeded\n"), "{}", ran.stderr);
    let ran = scene.run("grep", "agent", &["--arg", "pattern=request", "--arg", r#"paths=["big.log"]"#, "--json"]);
    assert_eq!(ran.code, 124);
    let outcome = ran.json();
    assert_eq!(outcome["status"], json!({ "kind": "limit-exceeded", "limit": "output" }));
    assert_eq!(outcome["stdout"]["truncated"], true);
    // The twin: a pattern that matches one line stays under the cap.
    let ran = scene.run("grep", "agent", &["--arg", "pattern=id=59999 ", "--arg", r#"paths=["big.log"]"#]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "big.log:request id=59999 path=/api/items status=200\n"));
}

/// A policy dir with 3 errors in 2 files: callers.toml names an undeclared designation;
/// tools/wc.toml has an unknown category and a wrong sha256.
fn broken_policies(root: &Path) -> PathBuf {
    let dir = root.join("broken-policies");
    fs::create_dir_all(dir.join("tools")).unwrap();
    fs::copy(common::shipped_policies().join("designations.toml"), dir.join("designations.toml")).unwrap();
    fs::write(dir.join("callers.toml"), "default = \"restricted\"\n\n[callers.agent]\ndesignation = \"nope\"\n")
        .unwrap();
    let wc = fs::read_to_string(common::shipped_policies().join("tools/wc.toml")).unwrap();
    let module = common::repo().join("guest-tools/wasm/wc.wasm");
    let wc: Vec<String> = wc
        .lines()
        .map(|line| match line {
            "wasm = \"../guest-tools/wasm/wc.wasm\"" => format!("wasm = {:?}", module.display().to_string()),
            "categories = [\"read\"]" => "categories = [\"reed\"]".to_string(),
            _ if line.starts_with("sha256 = ") => format!("sha256 = \"{}\"", "0".repeat(64)),
            _ => line.to_string(),
        })
        .collect();
    fs::write(dir.join("tools/wc.toml"), wc.join("\n") + "\n").unwrap();
    dir
}

#[test]
fn run_exits_125_with_file_and_line_when_the_policies_do_not_load() {
    let scene = Scene::new();
    let broken = broken_policies(scene.dir.path());
    let ran = scene.run("wc", "agent", &["--arg", "path=a.txt", "--policies", broken.to_str().unwrap()]);
    assert_eq!(ran.code, 125, "{ran:?}");
    assert_eq!(ran.stdout, "");
    assert!(ran.stderr.starts_with("airlock: "), "{ran:?}");
    assert!(ran.stderr.contains("broken-policies/callers.toml:4:15: "), "{ran:?}");
    assert!(ran.stderr.contains("broken-policies/tools/wc.toml:8:15: unknown category \"reed\""), "{ran:?}");
    assert!(ran.stderr.contains("3 policy error(s); the policy was not loaded"), "{ran:?}");
    assert!(!scene.audit().exists(), "nothing ran, so nothing was audited");
}

#[test]
fn run_gives_an_unknown_caller_the_default_designation() {
    let scene = Scene::new();
    let ran = scene.run("wc", "stranger", &["--arg", "path=a.txt"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, WC_OF_A_TXT), "{ran:?}");
    let ran = scene.run("csv-dedupe", "stranger", &["--arg", "input=a.txt", "--arg", "output=b.txt"]);
    assert_denied(&ran, "the default designation \"restricted\" applies");
    assert!(!scene.ws().join("b.txt").exists());
    let designations: Vec<_> = scene.records().into_iter().map(|r| (r.caller, r.designation, r.decision)).collect();
    assert_eq!(
        designations,
        [
            ("stranger".to_string(), Some("restricted".to_string()), Decision::Allow),
            ("stranger".to_string(), Some("restricted".to_string()), Decision::Deny),
        ]
    );
}

#[test]
fn run_without_caller_asks_as_the_uid_under_the_default_designation() {
    let scene = Scene::new();
    let mut command = scene.command();
    command.args(["run", "wc", "--arg", "path=a.txt", "--workspace"]).arg(scene.ws());
    let ran = Ran::of(command.output().unwrap());
    assert_eq!(ran.code, 0, "{ran:?}");
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let record = scene.records().pop().unwrap();
    assert_eq!(record.caller, format!("uid:{uid}"));
    assert_eq!(record.designation.as_deref(), Some("restricted"));
}

#[test]
fn run_records_the_workspace_as_an_absolute_path() {
    let scene = Scene::new();
    let mut command = scene.command();
    command.current_dir(scene.dir.path()).args(["run", "wc", "--caller", "agent", "--arg", "path=a.txt"]);
    let ran = Ran::of(command.args(["--workspace", "ws"]).output().unwrap());
    assert_eq!(ran.code, 0, "{ran:?}");
    let record = scene.records().pop().unwrap();
    assert_eq!(record.workspace.map(PathBuf::from), Some(scene.ws()));
}

#[test]
fn run_exits_125_and_passes_nothing_through_when_the_audit_log_cannot_be_written() {
    let scene = Scene::new();
    // /dev/full opens, and fails every write: the call runs, its record cannot be written,
    // so its output is withheld.
    let mut command = scene.command();
    command.env("AIRLOCK_AUDIT", "/dev/full").args(["run", "wc", "--caller", "agent", "--arg", "path=a.txt"]);
    let ran = Ran::of(command.arg("--workspace").arg(scene.ws()).output().unwrap());
    assert_eq!(ran.code, 125, "{ran:?}");
    assert_eq!(ran.stdout, "", "no tool output without an audit record");
    let line = ran.stderr.lines().find(|l| l.starts_with("airlock: ")).unwrap_or_else(|| panic!("{ran:?}"));
    assert!(line.starts_with("airlock: cannot write to audit log /dev/full: No space left on device"), "{line}");
    // The cause is said once, not repeated after the message that already holds it.
    assert_eq!(line.matches("No space left on device").count(), 1, "{line}");
    assert!(!ran.stderr.contains('\x1b'), "no terminal colours on a pipe: {ran:?}");
}

#[test]
fn run_takes_the_caller_from_airlock_caller() {
    let scene = Scene::new();
    let mut command = scene.command();
    command.env("AIRLOCK_CALLER", "reviewer").args(["run", "csv-dedupe", "--arg", "input=a.txt"]);
    let ran = Ran::of(command.args(["--arg", "output=b.txt", "--workspace"]).arg(scene.ws()).output().unwrap());
    assert_denied(&ran, "designation \"restricted\"");
    assert_eq!(scene.records()[0].caller, "reviewer");
}

// ---- airlock run-wasm ----

#[test]
fn run_wasm_runs_a_guest_tool_with_the_dirs_given() {
    let scene = Scene::new();
    let ws = format!("{}::.", scene.ws().display());
    let ran = scene.run_wasm(&guest_module("wc.wasm"), &["--dir", &ws, "--", "--json", "a.txt"], b"");
    assert_eq!((ran.code, ran.stdout.as_str(), ran.stderr.as_str()), (0, WC_OF_A_TXT, ""), "{ran:?}");
}

#[test]
fn run_wasm_passes_stdin_through() {
    let scene = Scene::new();
    let ran = scene.run_wasm(&guest_module("jq.wasm"), &["--", "-c", ".a | map(. * 10)"], br#"{"a": [1, 2]}"#);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "[10,20]\n"), "{ran:?}");
}

#[test]
fn run_wasm_exits_with_the_guests_code() {
    let scene = Scene::new();
    // jq: 3 for a filter that does not parse.
    let ran = scene.run_wasm(&guest_module("jq.wasm"), &["--", "-c", ".["], b"1");
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stderr.starts_with("jq: error: "), "{ran:?}");
}

#[test]
fn run_wasm_exits_124_on_a_limit_and_134_on_a_trap() {
    let scene = Scene::new();
    let ran = scene.run_wasm(&wat_fixture("spin.wat"), &["--fuel", "100000"], b"");
    assert_eq!(ran.code, 124, "{ran:?}");
    assert_eq!(ran.stderr, "airlock: stopped: fuel limit exceeded\n");
    let ran = scene.run_wasm(&wat_fixture("sleep.wat"), &["--wall-ms", "100", "--", "5000"], b"");
    assert_eq!(ran.code, 124, "{ran:?}");
    assert_eq!(ran.stderr, "airlock: stopped: wall limit exceeded\n");
    let ran = scene.run_wasm(&wat_fixture("recurse.wat"), &["--", "100000000"], b"");
    assert_eq!(ran.code, 134, "{ran:?}");
    assert!(ran.stderr.starts_with("airlock: the tool trapped: "), "{ran:?}");
    // The twins: within the limits they finish.
    let ran = scene.run_wasm(&wat_fixture("spin.wat"), &["--fuel", "100000", "--", "10"], b"");
    assert_eq!(ran.code, 0, "{ran:?}");
    let ran = scene.run_wasm(&wat_fixture("recurse.wat"), &["--", "100"], b"");
    assert_eq!(ran.code, 0, "{ran:?}");
    let statuses: Vec<_> = scene.records().iter().map(|r| r.status().unwrap()).collect();
    assert_eq!(statuses, ["limit-exceeded", "limit-exceeded", "trapped", "ok", "ok"]);
}

#[test]
fn run_wasm_without_dir_the_guest_cannot_open_files() {
    let scene = Scene::new();
    let cat = wat_fixture("cat.wat");
    // cat.wat opens its argument under fd 3 and exits with the errno: with no preopen
    // there is no fd 3 (EBADF, 8 in WASI).
    let ran = scene.run_wasm(&cat, &["--", "a.txt"], b"");
    assert_eq!((ran.code, ran.stdout.as_str()), (8, ""), "{ran:?}");
    // The twin: with the dir it reads the file.
    let ws = format!("{}::.", scene.ws().display());
    let ran = scene.run_wasm(&cat, &["--dir", &ws, "--", "a.txt"], b"");
    assert_eq!((ran.code, ran.stdout.as_str()), (0, A_TXT), "{ran:?}");
    // wc too: no dir, no file.
    let ran = scene.run_wasm(&guest_module("wc.wasm"), &["--", "--json", "a.txt"], b"");
    assert_eq!((ran.code, ran.stdout.as_str()), (1, ""), "{ran:?}");
}

#[test]
fn run_wasm_ro_dir_is_read_only_and_dir_is_writable() {
    let scene = Scene::new();
    let write = wat_fixture("write.wat");
    let ws = format!("{}::.", scene.ws().display());
    // write.wat creates its first argument under fd 3 and writes the second into it; it
    // exits with the errno on failure (63: EPERM).
    let ran = scene.run_wasm(&write, &["--ro-dir", &ws, "--", "out.txt", "hi"], b"");
    assert_eq!(ran.code, 63, "{ran:?}");
    assert!(!scene.ws().join("out.txt").exists());
    let ran = scene.run_wasm(&write, &["--dir", &ws, "--", "../escape.txt", "hi"], b"");
    assert_eq!(ran.code, 63, "{ran:?}");
    assert!(!scene.dir.path().join("escape.txt").exists());
    // The twin: a read-write dir takes the write.
    let ran = scene.run_wasm(&write, &["--dir", &ws, "--", "out.txt", "hi"], b"");
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(fs::read_to_string(scene.ws().join("out.txt")).unwrap(), "hi");
}

#[test]
fn run_wasm_gives_exactly_the_env_given() {
    let scene = Scene::new();
    let echo = wat_fixture("echo.wat");
    // echo.wat prints argv, `--`, each env entry, `--`, then stdin. airlock's own
    // environment (here with a secret in it) must not reach the guest.
    let mut command = scene.command();
    command.env("AIRLOCK_TEST_HOST_SECRET", "hunter2").arg("run-wasm").arg(&echo).args(["--", "x"]);
    let ran = Ran::of(command.output().unwrap());
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "echo.wat\nx\n--\n--\n"), "{ran:?}");
    let ran = scene.run_wasm(&echo, &["--env", "A=1", "--env", "B=two words", "--", "x"], b"in");
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "echo.wat\nx\n--\nA=1\nB=two words\n--\nin"), "{ran:?}");
}

#[test]
fn run_wasm_is_audited_as_the_operator() {
    let scene = Scene::new();
    let echo = wat_fixture("echo.wat");
    let ran = scene.run_wasm(&echo, &["--env", "A=1", "--", "x"], b"");
    assert_eq!(ran.code, 0, "{ran:?}");
    let ran = scene.airlock(&["audit", "tail", "-n", "1"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.starts_with("#1 "), "{ran:?}");
    assert!(ran.stdout.contains(" operator(cli) echo.wat allow ok exit=0 "), "{ran:?}");
    let record = &scene.airlock(&["audit", "tail", "-n", "1", "--json"]).json_lines()[0];
    assert_eq!(record["caller"], "operator(cli)");
    assert_eq!(record["arguments"]["args"], json!(["x"]));
    assert_eq!(record["arguments"]["env"], json!({ "A": "1" }));
    assert_eq!(record["env"], json!({ "A": "1" }));
    assert_eq!(record["tool_sha256"], file_sha256(&echo));
    assert_eq!(scene.airlock(&["audit", "verify"]).code, 0);
}

fn file_sha256(path: &Path) -> String {
    airlock::policy::sha256_hex(&fs::read(path).unwrap())
}

#[test]
fn concurrent_cli_processes_share_one_log() {
    let scene = Scene::new();
    let children: Vec<_> = (0..8)
        .map(|_| {
            let mut command = scene.command();
            command.args(["run", "wc", "--caller", "agent", "--arg", "path=a.txt", "--workspace"]).arg(scene.ws());
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for child in children {
        let ran = Ran::of(child.wait_with_output().unwrap());
        assert_eq!((ran.code, ran.stdout.as_str()), (0, WC_OF_A_TXT), "{ran:?}");
    }
    let ran = scene.airlock(&["audit", "verify"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains(": intact: 8 records, last seq 8, "), "{ran:?}");
}

// ---- airlock policy ----

#[test]
fn policy_check_passes_on_the_shipped_policies() {
    let scene = Scene::new();
    let ran = scene.airlock(&["policy", "check"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains(": ok: 12 tools, 4 designations, 6 callers; digest "), "{ran:?}");
}

#[test]
fn policy_check_reports_every_error_with_file_and_line() {
    let scene = Scene::new();
    let broken = broken_policies(scene.dir.path());
    let ran = scene.airlock(&["policy", "check", "--policies", broken.to_str().unwrap()]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let errors: Vec<&str> = ran.stderr.lines().filter(|l| !l.starts_with("  help: ")).collect();
    let b = broken.display();
    assert_eq!(errors.len(), 4, "{}", ran.stderr);
    assert_eq!(
        errors[0],
        format!("{b}/callers.toml:4:15: caller \"agent\": designation \"nope\" is not declared in designations.toml")
    );
    assert_eq!(errors[1], format!("{b}/tools/wc.toml:8:15: unknown category \"reed\""));
    assert!(errors[2].starts_with(&format!("{b}/tools/wc.toml:12:10: the sha256 of ")), "{}", errors[2]);
    assert_eq!(errors[3], format!("{b}: 3 error(s)"));
    // Each error says what to do.
    assert_eq!(ran.stderr.lines().filter(|l| l.starts_with("  help: ")).count(), 3, "{}", ran.stderr);
}

#[test]
fn policy_explain_prints_decision_rule_and_grant_without_running_anything() {
    let scene = Scene::new();
    let ws = scene.ws();
    let explain = |tool: &str, caller: &str, args: &str| {
        scene.airlock(&[
            "policy",
            "explain",
            tool,
            "--caller",
            caller,
            "--args",
            args,
            "--workspace",
            ws.to_str().unwrap(),
        ])
    };
    let ran = explain("wc", "reviewer", r#"{"path": "a.txt"}"#);
    assert_eq!(ran.code, 0, "{ran:?}");
    let explained = ran.json();
    assert_eq!(explained["decision"], "allow");
    assert_eq!(
        explained["rule"],
        "designations.toml: designation \"restricted\" allows every category of the tool (read)"
    );
    let grant = &explained["grant"];
    assert_eq!(grant["tool"], "wc");
    assert_eq!(grant["args"], json!(["--json", "--", "a.txt"]));
    let workspace = ws.canonicalize().unwrap();
    assert_eq!(grant["mounts"], json!([{ "host": workspace, "guest": ".", "writable": false }]));
    assert_eq!(grant["env"], json!({}));
    assert_eq!(grant["network"], json!([]));
    assert_eq!(grant["limits"]["output_bytes"], 65_536);

    let ran = explain("apply-patch", "reviewer", r#"{"patch": "x"}"#);
    assert_eq!(ran.code, 0, "{ran:?}");
    let explained = ran.json();
    assert_eq!(explained["decision"], "deny");
    assert!(explained["rule"].as_str().unwrap().contains("does not list category \"write\""), "{explained}");
    assert_eq!(explained["decided_by"], "designations.restricted (category write not listed: deny)");
    assert_eq!(explained["grant"], Value::Null);

    // The preset rule that decided, for the high-cyber presets.
    let ran = explain("apply-patch", "cyber-agent", r#"{"patch": "x"}"#);
    let explained = ran.json();
    assert_eq!(explained["decision"], "allow", "{explained}");
    assert_eq!(explained["decided_by"], "designations.high-cyber.allow[write]");
    assert_eq!(explained["on_tamper"], "suspend");
    assert_eq!(explained["audit_arguments"], "full");

    assert!(!scene.audit().exists(), "explain must not run or audit anything");
}

#[test]
fn policy_schema_is_a_json_schema_that_accepts_the_shipped_tool_files() {
    let scene = Scene::new();
    let ran = scene.airlock(&["policy", "schema"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let schema = ran.json();
    for key in ["backend", "categories", "limits"] {
        assert!(schema["properties"].get(key).is_some(), "no {key} in {schema}");
    }
    assert!(jsonschema::meta::is_valid(&schema), "not a valid JSON Schema: {schema}");
    let validator = jsonschema::validator_for(&schema).unwrap();
    for entry in fs::read_dir(common::shipped_policies().join("tools")).unwrap() {
        let path = entry.unwrap().path();
        let file: Value = toml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let errors: Vec<String> = validator.iter_errors(&file).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
    // And it rejects what the loader rejects: an unknown key.
    let mut file: Value =
        toml::from_str(&fs::read_to_string(common::shipped_policies().join("tools/wc.toml")).unwrap()).unwrap();
    file["colour"] = json!("blue");
    assert!(!validator.is_valid(&file));
}

// ---- airlock audit ----

#[test]
fn audit_verify_exits_0_on_an_intact_log_and_1_naming_the_first_bad_record() {
    let scene = Scene::new();
    for _ in 0..3 {
        assert_eq!(scene.run("wc", "agent", &["--arg", "path=a.txt"]).code, 0);
    }
    let ran = scene.airlock(&["audit", "verify"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains(": intact: 3 records, last seq 3, last hash "), "{ran:?}");

    let copy = scene.dir.path().join("edited.jsonl");
    let text = fs::read_to_string(scene.audit()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines[1].contains("\"caller\":\"agent\""));
    lines[1] = lines[1].replace("\"caller\":\"agent\"", "\"caller\":\"someone-else\"");
    fs::write(&copy, lines.join("\n") + "\n").unwrap();
    let ran = scene.airlock(&["audit", "verify", "--audit", copy.to_str().unwrap()]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stdout.contains("broken at line 2 (seq 2): edited: "), "{ran:?}");
    assert!(ran.stdout.contains("1 records before it verified (last seq 1, "), "{ran:?}");
    // The original is untouched and still verifies.
    assert_eq!(scene.airlock(&["audit", "verify"]).code, 0);
}

#[test]
fn audit_tail_prints_the_last_records_newest_last() {
    let scene = Scene::new();
    assert_eq!(scene.run("wc", "agent", &["--arg", "path=a.txt"]).code, 0);
    assert_eq!(scene.run("grep", "agent", &["--arg", "pattern=foo"]).code, 0);
    assert_eq!(scene.run("jq", "agent", &["--arg", "filter=.", "--arg", "input=1"]).code, 0);
    let ran = scene.airlock(&["audit", "tail", "-n", "2"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{ran:?}");
    assert!(lines[0].starts_with("#2 ") && lines[0].contains(" agent grep allow ok exit=0 "), "{}", lines[0]);
    assert!(lines[1].starts_with("#3 ") && lines[1].contains(" agent jq allow ok exit=0 "), "{}", lines[1]);
    let json = scene.airlock(&["audit", "tail", "-n", "2", "--json"]).json_lines();
    assert_eq!(json.iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 3]);
}

#[test]
fn audit_query_filters_work_together() {
    let scene = Scene::new();
    let before = SystemTime::now() - Duration::from_secs(1);
    // 1: reviewer, wc, deny (bad arguments)      <- the one the query wants
    // 2: reviewer, wc, allow
    // 3: agent, wc, deny (bad arguments)
    // 4: reviewer, grep, deny (bad arguments)
    // 5: reviewer, apply-patch, deny (designation)
    assert_eq!(scene.run("wc", "reviewer", &["--arg", "paths=a.txt"]).code, 126);
    assert_eq!(scene.run("wc", "reviewer", &["--arg", "path=a.txt"]).code, 0);
    assert_eq!(scene.run("wc", "agent", &["--arg", "paths=a.txt"]).code, 126);
    assert_eq!(scene.run("grep", "reviewer", &["--arg", "x=1"]).code, 126);
    assert_eq!(scene.run("apply-patch", "reviewer", &["--arg", "patch=x"]).code, 126);
    let query = |args: &[&str]| {
        let mut all = vec!["audit", "query", "--json"];
        all.extend_from_slice(args);
        let ran = scene.airlock(&all);
        assert_eq!(ran.code, 0, "{ran:?}");
        ran.json_lines().iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(query(&["--tool", "wc", "--decision", "deny", "--caller", "reviewer", "--since", "10m"]), [1]);
    assert_eq!(query(&["--tool", "wc"]), [1, 2, 3]);
    assert_eq!(query(&["--decision", "deny"]), [1, 3, 4, 5]);
    assert_eq!(query(&["--caller", "reviewer", "--decision", "allow"]), [2]);
    // --since as an RFC 3339 time.
    let past = humantime::format_rfc3339_seconds(before).to_string();
    let future = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600)).to_string();
    assert_eq!(query(&["--tool", "wc", "--decision", "deny", "--caller", "reviewer", "--since", &past]), [1]);
    assert_eq!(query(&["--since", &future]), Vec::<u64>::new());
    // Ages and times that do not parse are airlock errors that say what to give.
    let ran = scene.airlock(&["audit", "query", "--since", "yesterday"]);
    assert_eq!(ran.code, 125, "{ran:?}");
    assert!(ran.stderr.contains("give an RFC 3339 time"), "{ran:?}");
    // The text form prints one line per record.
    let ran = scene.airlock(&["audit", "query", "--caller", "agent"]);
    assert!(ran.stdout.starts_with("#3 ") && ran.stdout.lines().count() == 1, "{ran:?}");
}

#[test]
fn audit_query_since_takes_rfc3339_with_an_offset() {
    let scene = Scene::new();
    assert_eq!(scene.run("wc", "agent", &["--arg", "path=a.txt"]).code, 0);
    let ran = scene.airlock(&["audit", "query", "--since", "2000-01-01T00:00:00+01:00"]);
    assert_eq!((ran.code, ran.stdout.lines().count()), (0, 1), "{ran:?}");
}

#[test]
fn audit_query_filters_by_status() {
    let scene = Scene::new();
    scene.write_big_log();
    assert_eq!(scene.run("wc", "agent", &["--arg", "path=a.txt"]).code, 0);
    assert_eq!(scene.run("wc", "agent", &["--arg", "path=missing.txt"]).code, 1);
    assert_eq!(scene.run("wc", "agent", &["--arg", "paths=a.txt"]).code, 126);
    assert_eq!(scene.run("grep", "agent", &["--arg", "pattern=request", "--arg", r#"paths=["big.log"]"#]).code, 124);
    let seqs = |status: &str| {
        let ran = scene.airlock(&["audit", "query", "--json", "--status", status]);
        assert_eq!(ran.code, 0, "{ran:?}");
        ran.json_lines().iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(seqs("ok"), [1]);
    assert_eq!(seqs("tool-error"), [2]);
    assert_eq!(seqs("denied"), [3]);
    assert_eq!(seqs("limit-exceeded"), [4]);
    assert_eq!(seqs("trapped"), Vec::<u64>::new());
    let ran = scene.airlock(&["audit", "query", "--status", "tool-error", "--tool", "grep"]);
    assert_eq!((ran.code, ran.stdout.as_str()), (0, ""));
    let ran = scene.airlock(&["audit", "query", "--status", "fine"]);
    assert_eq!(ran.code, 125, "{ran:?}");
    assert!(ran.stderr.contains("possible values: ok, tool-error, denied, limit-exceeded, trapped"), "{ran:?}");
}

// ---- airlock demo, help, usage ----

#[test]
fn demo_goes_through_every_layer_and_leaves_an_intact_log() {
    let scene = Scene::new();
    let ran = scene.airlock(&["demo"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let sections: Vec<&str> = ran.stdout.split("\n== ").collect();
    assert_eq!(sections.len(), 10, "{}", ran.stdout);
    assert!(sections[1].starts_with("1. allowed") && sections[1].contains("\nstatus: ok\n"), "{}", sections[1]);
    assert!(sections[1].contains(r#""rows_in":7,"kept":3,"duplicates":2,"malformed":2"#), "{}", sections[1]);
    assert!(sections[2].starts_with("2. denied") && sections[2].contains("\nstatus: denied: "), "{}", sections[2]);
    assert!(sections[3].starts_with("3. limit"), "{}", sections[3]);
    assert!(sections[3].contains("\nstatus: limit-exceeded: output\n"), "{}", sections[3]);
    // The escape attempt: the tool ran, and the sandbox refused the open (WASI ENOTCAPABLE, 63).
    assert!(sections[4].starts_with("4. escape") && sections[4].contains("\nstatus: tool-error\n"), "{}", sections[4]);
    assert!(sections[4].contains("Operation not permitted (os error 63)"), "{}", sections[4]);
    // The jailed script did its job and every probe of the walls was stopped.
    let jail = sections[5];
    assert!(jail.starts_with("5. jail") && jail.contains("\nstatus: ok\n"), "{jail}");
    assert!(jail.contains("summary: 3 people from example.org"), "{jail}");
    assert_eq!(jail.matches("  | blocked: ").count(), 4, "{jail}");
    assert!(!jail.contains("NOT BLOCKED"), "{jail}");
    assert!(jail.contains("/proc shows 1 process(es); this script is pid 1"), "{jail}");
    // An edit of the protected tests made behind airlock's back: the next call is tampered.
    let tamper = sections[6];
    assert!(tamper.starts_with("6. tamper"), "{tamper}");
    assert!(
        tamper.contains("\nstatus: tampered (the tool did not run); changed: tests/test_people.py (modified)\n"),
        "{tamper}"
    );
    // Approval: pending, approved once, ran; other arguments need their own approval.
    let approval = sections[7];
    assert!(approval.starts_with("7. approval"), "{approval}");
    assert_eq!(approval.matches("\nstatus: needs-approval: pending approval ").count(), 2, "{approval}");
    assert!(approval.contains("\nstatus: ok\n") && approval.contains("dist/ now holds: app-1.0.0.txt\n"), "{approval}");
    // The socket: the peer's uid decides the caller; a read tool runs, a write tool is denied.
    let socket = sections[8];
    assert!(socket.starts_with("8. socket") && socket.contains(r#"designation "restricted""#), "{socket}");
    assert!(socket.contains("tools/list: git-diff, git-status, grep, jq, sha256sum, sha256sum-p2, wc\n"), "{socket}");
    assert!(socket.contains(r#"tools/call sha256sum: isError false, status "ok""#), "{socket}");
    assert!(socket.contains(r#"tools/call apply-patch: isError true, status "denied""#), "{socket}");
    assert!(
        sections[9].starts_with("audit verify ") && sections[9].contains("\nintact: 11 records"),
        "{}",
        sections[9]
    );
    assert!(!scene.audit().exists(), "the demo keeps its own audit log in its temp dir");
}

#[test]
fn help_documents_the_exit_codes() {
    let scene = Scene::new();
    for args in [&["--help"][..], &["run", "--help"], &["run-wasm", "--help"]] {
        let ran = scene.airlock(args);
        assert_eq!(ran.code, 0, "{ran:?}");
        for code in ["124", "125", "126", "134"] {
            assert!(ran.stdout.contains(code), "airlock {args:?} does not mention exit code {code}:\n{}", ran.stdout);
        }
        assert!(ran.stdout.contains("denied"), "{}", ran.stdout);
        assert!(ran.stdout.contains("limit"), "{}", ran.stdout);
    }
}

#[test]
fn a_usage_error_exits_125() {
    let scene = Scene::new();
    for args in [
        &["bogus"][..],
        &["run"],
        &["run", "wc", "--no-such-flag"],
        &["run", "wc", "--arg", "no-equals-sign"],
        &["run-wasm", wat_fixture("echo.wat").to_str().unwrap(), "--env", "=1"],
        &["audit", "query", "--decision", "maybe"],
    ] {
        let ran = scene.airlock(args);
        assert_eq!(ran.code, 125, "airlock {args:?}: {ran:?}");
        assert!(!ran.stderr.is_empty(), "airlock {args:?} says nothing");
    }
    assert!(!scene.audit().exists() || scene.records().is_empty(), "no usage error reaches the audit log");
}

// ---- the library: airlock::Runtime ----

/// A runtime on the shipped policies with its audit log at `audit`.
fn runtime(audit: &Path, fsync: Fsync) -> Runtime {
    Runtime::builder(common::shipped_policies())
        .audit_path(audit)
        .fsync(fsync)
        .cache_dir(Some(shared_module_cache()))
        .build()
        .unwrap()
}

fn request(scene: &Scene, caller: &str, tool: &str, arguments: Value) -> CallRequest {
    CallRequest::new(caller, tool, scene.ws()).arguments(arguments)
}

fn denial_reason(outcome: &CallOutcome) -> &str {
    match &outcome.status {
        Status::Denied { reason } => reason,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn runtime_call_ok() {
    let scene = Scene::new();
    let runtime = runtime(&scene.audit(), Fsync::Off);
    let outcome = runtime.call(request(&scene, "agent", "wc", json!({ "path": "a.txt" }))).await.unwrap();
    assert_eq!(outcome.status, Status::Ok);
    assert!(outcome.is_ok());
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.stdout.text(), WC_OF_A_TXT);
    assert!(!outcome.stdout.truncated);
    assert_eq!(outcome.stderr.total_bytes, 0);
    assert!(outcome.usage.wall_us > 0 && outcome.usage.fuel.unwrap() > 0 && outcome.usage.peak_memory_bytes > 0);
    assert_eq!(outcome.audit_seq, 1);
}

#[tokio::test]
async fn runtime_call_tool_error() {
    let scene = Scene::new();
    let runtime = runtime(&scene.audit(), Fsync::Off);
    let outcome =
        runtime.call(request(&scene, "agent", "grep", json!({ "pattern": "nothing like it" }))).await.unwrap();
    assert_eq!((outcome.status.clone(), outcome.exit_code), (Status::ToolError, Some(1)));
    assert!(!outcome.is_ok());
    let outcome = runtime.call(request(&scene, "agent", "wc", json!({ "path": "missing.txt" }))).await.unwrap();
    assert_eq!((outcome.status.clone(), outcome.exit_code), (Status::ToolError, Some(1)));
    assert!(
        outcome.stderr.text().starts_with("wc: missing.txt: No such file or directory"),
        "{}",
        outcome.stderr.text()
    );
}

#[tokio::test]
async fn runtime_call_denied() {
    let scene = Scene::new();
    let runtime = runtime(&scene.audit(), Fsync::Off);
    let patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-hello world\n+bye\n";
    let outcome = runtime.call(request(&scene, "reviewer", "apply-patch", json!({ "patch": patch }))).await.unwrap();
    assert!(denial_reason(&outcome).contains("designation \"restricted\" does not list category \"write\""));
    assert_eq!(outcome.exit_code, None);
    assert_eq!((outcome.stdout.total_bytes, outcome.stderr.total_bytes), (0, 0));
    assert_eq!(outcome.usage, airlock::Usage::default());
    assert_eq!(fs::read_to_string(scene.ws().join("a.txt")).unwrap(), A_TXT);
    let outcome = runtime.call(request(&scene, "agent", "no-such-tool", json!({}))).await.unwrap();
    assert!(denial_reason(&outcome).contains("there is no tool \"no-such-tool\""));
}

#[tokio::test]
async fn runtime_call_limit_exceeded() {
    let scene = Scene::new();
    scene.write_big_log();
    let runtime = runtime(&scene.audit(), Fsync::Off);
    let outcome = runtime
        .call(request(&scene, "agent", "grep", json!({ "pattern": "request", "paths": ["big.log"] })))
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::LimitExceeded { limit: Limit::Output });
    assert_eq!(outcome.exit_code, None);
    assert!(outcome.stdout.truncated);
    assert_eq!(outcome.stdout.bytes.len(), GREP_OUTPUT_BYTES);
    assert!(outcome.stdout.total_bytes > GREP_OUTPUT_BYTES as u64);
}

#[tokio::test]
async fn runtime_outcome_audit_seq_is_the_records_seq() {
    let scene = Scene::new();
    let runtime = runtime(&scene.audit(), Fsync::Batch);
    let calls = [
        ("agent", "wc", json!({ "path": "a.txt" })),
        ("reviewer", "apply-patch", json!({ "patch": "x" })),
        ("agent", "grep", json!({ "pattern": "zzz" })),
        ("stranger", "jq", json!({ "filter": ".", "input": 1 })),
    ];
    let mut outcomes = Vec::new();
    for (caller, tool, arguments) in calls.clone() {
        outcomes.push(runtime.call(request(&scene, caller, tool, arguments)).await.unwrap());
    }
    runtime.close().await.unwrap();
    let records = scene.records();
    assert_eq!(records.len(), calls.len());
    for ((outcome, record), (caller, tool, arguments)) in outcomes.iter().zip(&records).zip(&calls) {
        assert_eq!(outcome.audit_seq, record.seq);
        assert_eq!((record.caller.as_str(), record.tool.as_str(), &record.arguments), (*caller, *tool, arguments));
        assert_eq!(record.status(), Some(outcome.status.name()));
        assert_eq!(record.outcome.as_ref().unwrap().exit_code, outcome.exit_code);
    }
    assert_eq!(outcomes.iter().map(|o| o.audit_seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
}

#[tokio::test]
async fn runtime_audits_a_denied_call_with_decision_deny_and_its_rule() {
    let scene = Scene::new();
    let runtime = runtime(&scene.audit(), Fsync::Off);
    let arguments = json!({ "patch": "x" });
    let expected = runtime.policies().evaluate("reviewer", "apply-patch", &arguments, &scene.ws());
    let outcome = runtime.call(request(&scene, "reviewer", "apply-patch", arguments.clone())).await.unwrap();
    runtime.close().await.unwrap();
    let record = scene.records().pop().unwrap();
    assert_eq!(record.seq, outcome.audit_seq);
    assert_eq!(record.decision, Decision::Deny);
    assert_eq!(record.rule, expected.rule);
    assert!(record.rule.starts_with("designations.toml: designation \"restricted\""), "{}", record.rule);
    assert_eq!(record.reasons, expected.reasons);
    assert_eq!(record.designation.as_deref(), Some("restricted"));
    assert_eq!(record.backend, None, "a denied call never reaches a backend");
    assert_eq!(record.status(), Some("denied"));
    assert_eq!(record.arguments, arguments);
}

#[tokio::test]
async fn runtime_tools_for_lists_what_the_caller_may_see() {
    let scene = Scene::new();
    let runtime = runtime(&scene.audit(), Fsync::Off);
    let names = |caller: &str| runtime.tools_for(caller).into_iter().map(|t| t.name).collect::<BTreeSet<_>>();
    let read_only: BTreeSet<String> = ["git-diff", "git-status", "grep", "jq", "sha256sum", "sha256sum-p2", "wc"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names("reviewer"), read_only);
    for tool in runtime.tools_for("reviewer") {
        assert_eq!(tool.categories, ["read"], "{}", tool.name);
        assert_eq!(tool.decision, Decision::Allow);
        assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
        assert!(!tool.description.is_empty());
    }
    let agent = names("agent");
    assert!(agent.is_superset(&read_only), "{agent:?}");
    assert!(agent.contains("apply-patch") && agent.contains("csv-dedupe"), "{agent:?}");
    assert_eq!(agent.len(), 12, "every shipped tool: standard allows read, write and exec, and approves deploy");
    // Nobody listed: the default designation, read-only.
    assert_eq!(names("stranger"), read_only);
}

#[tokio::test]
async fn runtime_refuses_a_workspace_that_contains_the_policies() {
    let scene = Scene::new();
    let runtime = runtime(&scene.audit(), Fsync::Off);
    // The repository root holds policies/.
    let outcome = runtime
        .call(CallRequest::new("agent", "wc", common::repo()).arguments(json!({ "path": "Cargo.toml" })))
        .await
        .unwrap();
    let reason = denial_reason(&outcome);
    let policies = common::shipped_policies().canonicalize().unwrap();
    assert!(
        reason.contains(&format!("would expose {} (policies, audit log or module cache)", policies.display())),
        "{reason}"
    );
    assert_eq!((outcome.exit_code, outcome.stdout.total_bytes), (None, 0));
    // A workspace inside the policies is refused too.
    let outcome = runtime
        .call(CallRequest::new("agent", "wc", common::shipped_policies()).arguments(json!({ "path": "callers.toml" })))
        .await
        .unwrap();
    denial_reason(&outcome);
    runtime.close().await.unwrap();
    let records = scene.records();
    assert_eq!(
        records.iter().map(|r| (r.seq, r.status())).collect::<Vec<_>>(),
        [(1, Some("denied")), (2, Some("denied"))]
    );
    for record in &records {
        assert_eq!(record.decision, Decision::Deny, "a refused call is recorded as denied");
        assert!(record.rule.contains("policies, audit log or module cache"), "{}", record.rule);
    }
}

#[tokio::test]
async fn runtime_refuses_a_workspace_that_contains_the_audit_log() {
    let scene = Scene::new();
    // The audit log sits in the workspace itself.
    let audit = scene.ws().join("audit.jsonl");
    let runtime = runtime(&audit, Fsync::Off);
    let outcome = runtime.call(request(&scene, "agent", "wc", json!({ "path": "a.txt" }))).await.unwrap();
    let reason = denial_reason(&outcome);
    assert!(
        reason.contains(&format!("would expose {}", scene.ws().canonicalize().unwrap().join("audit.jsonl").display())),
        "{reason}"
    );
    runtime.close().await.unwrap();
    let records: Vec<_> = read_records(&audit).unwrap().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].seq, records[0].status()), (outcome.audit_seq, Some("denied")));
    assert!(verify(&audit).unwrap().is_intact());
}

#[tokio::test]
async fn runtime_build_fails_when_the_audit_log_cannot_be_opened() {
    let scene = Scene::new();
    // The log's parent is a file.
    let audit = scene.ws().join("a.txt").join("audit.jsonl");
    let error = Runtime::builder(common::shipped_policies()).audit_path(&audit).cache_dir(None).build().err().unwrap();
    assert!(matches!(error, Error::Audit(AuditError::Open { ref path, .. }) if *path == audit), "{error}");
    assert!(error.to_string().contains("cannot open audit log"), "{error}");
}

#[tokio::test]
async fn runtime_call_fails_when_its_record_cannot_be_written() {
    let scene = Scene::new();
    // /dev/full opens, and fails every write with ENOSPC.
    let runtime = runtime(Path::new("/dev/full"), Fsync::Batch);
    let error = runtime.call(request(&scene, "agent", "wc", json!({ "path": "a.txt" }))).await.unwrap_err();
    assert!(matches!(error, Error::Audit(AuditError::Write { .. })), "{error}");
    // The log is poisoned now: nothing runs, allowed or denied, and nothing is an outcome.
    let error = runtime.call(request(&scene, "agent", "wc", json!({ "path": "a.txt" }))).await.unwrap_err();
    assert!(matches!(error, Error::Audit(AuditError::Poisoned { .. })), "{error}");
    let error = runtime.call(request(&scene, "reviewer", "apply-patch", json!({ "patch": "x" }))).await.unwrap_err();
    assert!(matches!(error, Error::Audit(AuditError::Poisoned { .. })), "{error}");
    // csv-dedupe would write b.txt: refused before it runs.
    let error = runtime
        .call(request(&scene, "agent", "csv-dedupe", json!({ "input": "a.txt", "output": "b.txt" })))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Audit(AuditError::Poisoned { .. })), "{error}");
    assert!(!scene.ws().join("b.txt").exists(), "a call that cannot be audited must not run");
}

#[tokio::test]
async fn runtime_call_fails_when_the_log_is_cut_behind_its_back() {
    let scene = Scene::new();
    let runtime = runtime(&scene.audit(), Fsync::Off);
    runtime.call(request(&scene, "agent", "wc", json!({ "path": "a.txt" }))).await.unwrap();
    runtime.call(request(&scene, "agent", "wc", json!({ "path": "a.txt" }))).await.unwrap();
    fs::OpenOptions::new().write(true).open(scene.audit()).unwrap().set_len(10).unwrap();
    let error = runtime.call(request(&scene, "agent", "wc", json!({ "path": "a.txt" }))).await.unwrap_err();
    assert!(matches!(error, Error::Audit(AuditError::Shrunk { .. })), "{error}");
    assert!(runtime.call(request(&scene, "agent", "wc", json!({ "path": "a.txt" }))).await.is_err());
}

#[tokio::test]
async fn runtime_fsync_modes_all_write_verifiable_logs() {
    for fsync in [Fsync::Always, Fsync::Batch, Fsync::Off] {
        let scene = Scene::new();
        let runtime = runtime(&scene.audit(), fsync);
        assert_eq!(runtime.audit().fsync(), fsync);
        for caller in ["agent", "reviewer"] {
            runtime.call(request(&scene, caller, "wc", json!({ "path": "a.txt" }))).await.unwrap();
            runtime.call(request(&scene, caller, "apply-patch", json!({ "patch": "x" }))).await.unwrap();
        }
        runtime.close().await.unwrap();
        let report = verify(&scene.audit()).unwrap();
        assert!(report.is_intact(), "{}: {report}", fsync.name());
        assert_eq!(report.records, 4, "{}", fsync.name());
        assert!(scene.records().iter().all(|r| r.durability == fsync), "{}", fsync.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_64_concurrent_calls_get_distinct_seqs_and_a_verifying_chain() {
    let scene = Scene::new();
    for i in 0..4 {
        fs::write(scene.ws().join(format!("f{i}.txt")), "x\n".repeat(i + 1)).unwrap();
    }
    let runtime = Arc::new(runtime(&scene.audit(), Fsync::Batch));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64usize {
        let runtime = Arc::clone(&runtime);
        let request = request(&scene, "agent", "wc", json!({ "path": format!("f{}.txt", i % 4) }));
        tasks.spawn(async move { (i, runtime.call(request).await.unwrap()) });
    }
    let mut by_seq = std::collections::BTreeMap::new();
    for (i, outcome) in tasks.join_all().await {
        assert!(outcome.is_ok(), "{:?}", outcome.status);
        let lines: Value = serde_json::from_str(&outcome.stdout.text()).unwrap();
        assert_eq!(lines["lines"], i % 4 + 1);
        assert!(by_seq.insert(outcome.audit_seq, i).is_none(), "seq {} given twice", outcome.audit_seq);
    }
    assert_eq!(by_seq.keys().copied().collect::<Vec<_>>(), (1..=64).collect::<Vec<u64>>());
    Arc::into_inner(runtime).unwrap().close().await.unwrap();
    let report = verify(&scene.audit()).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 64);
    // Each record is the call whose outcome carries its seq.
    for record in scene.records() {
        let i = by_seq[&record.seq];
        assert_eq!(record.arguments, json!({ "path": format!("f{}.txt", i % 4) }), "seq {}", record.seq);
    }
}
