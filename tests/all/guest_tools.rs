//! Host tests of the guest tools: every tool in `guest-tools/` run on real files through
//! the public runtime API (`airlock::Runtime`), with its policy from `policies/tools/`.
//!
//! NOT YET COMPILED: written against the runtime API the integrator is adding
//! (`Runtime::builder(dir).audit_path(p).fsync(Fsync::Off).build()`, `Runtime::call`).
//! Add `mod guest_tools;` to `tests/all/main.rs` once `src/runtime.rs` exists, and adjust
//! the two calls marked `RUNTIME API` if the final signatures differ.
//!
//! Each test builds its own policy directory in a temp dir: the repository's tool files
//! (with the module path made absolute, so the pinned digest is still checked against the
//! real build output), a `designations.toml` whose `tester` designation allows `read` and
//! `write`, and a `callers.toml` mapping the caller `agent` to it. The modules themselves
//! are built by `build.rs` before any test runs.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::common;
use airlock::{CallOutcome, CallRequest, Runtime, Status};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DESIGNATIONS: &str = r#"
[categories]
read = "Reads files in the workspace."
write = "Creates, changes or deletes files in the workspace."
exec = "Runs programs or code supplied by the caller."
network = "Talks to hosts over the network."
deploy = "Changes a deployed system or ships an artifact."
secrets = "Reads or handles credentials."
security-testing = "Probes or attacks systems: scanners, exploit tooling."
training = "Starts or changes model training runs."

[designations.tester]
justification = "The guest-tool tests run every tool; all of them only read and write the workspace."
allow = ["read", "write"]
approve = []
deny = ["exec", "network", "deploy", "secrets", "security-testing", "training"]
"#;

const CALLERS: &str = r#"
[callers.agent]
designation = "tester"
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A policy directory with every repository wasm tool file, the module paths made absolute.
fn policy_dir(root: &Path) -> PathBuf {
    let dir = root.join("policies");
    fs::create_dir_all(dir.join("tools")).unwrap();
    fs::write(dir.join("designations.toml"), DESIGNATIONS).unwrap();
    fs::write(dir.join("callers.toml"), CALLERS).unwrap();
    let repo_policies = repo().join("policies");
    for entry in fs::read_dir(repo_policies.join("tools")).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        if !text.contains("\nwasm = \"") {
            continue; // a process tool: tests/all/jail.rs covers those
        }
        let rewritten: String = text
            .lines()
            .map(|line| match line.strip_prefix("wasm = \"").and_then(|l| l.strip_suffix('"')) {
                Some(rel) => {
                    format!("wasm = {:?}\n", repo_policies.join(rel).to_string_lossy())
                }
                None => format!("{line}\n"),
            })
            .collect();
        fs::write(dir.join("tools").join(path.file_name().unwrap()), rewritten).unwrap();
    }
    dir
}

/// A workspace and a runtime over the test policy directory.
struct Harness {
    _root: tempfile::TempDir,
    workspace: PathBuf,
    runtime: Runtime,
}

impl Harness {
    async fn new() -> Harness {
        let root = tempfile::tempdir().unwrap();
        let policies = policy_dir(root.path());
        let workspace = root.path().join("workspace");
        fs::create_dir_all(&workspace).unwrap();
        // RUNTIME API: the builder as agreed with the integrator.
        let runtime = Runtime::builder(&policies)
            .audit_path(root.path().join("audit.jsonl"))
            .fsync(airlock::audit::Fsync::Off)
            .build()
            .unwrap();
        Harness { _root: root, workspace, runtime }
    }

    fn write(&self, path: &str, bytes: impl AsRef<[u8]>) {
        let path = self.workspace.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn read(&self, path: &str) -> String {
        fs::read_to_string(self.workspace.join(path)).unwrap()
    }

    async fn call(&self, tool: &str, arguments: Value) -> CallOutcome {
        // RUNTIME API: `Runtime::call` returns the outcome (denials are outcomes too).
        self.runtime.call(CallRequest::new("agent", tool, &self.workspace).arguments(arguments)).await.unwrap()
    }
}

fn assert_ok(outcome: &CallOutcome) {
    assert_eq!(outcome.status, Status::Ok, "stdout: {}\nstderr: {}", outcome.stdout.text(), outcome.stderr.text());
    assert_eq!(outcome.exit_code, Some(0));
}

fn assert_tool_error(outcome: &CallOutcome, code: i32) {
    assert_eq!(outcome.status, Status::ToolError, "stderr: {}", outcome.stderr.text());
    assert_eq!(outcome.exit_code, Some(code), "stderr: {}", outcome.stderr.text());
}

fn assert_denied(outcome: &CallOutcome, reason_part: &str) {
    match &outcome.status {
        Status::Denied { reason } => assert!(reason.contains(reason_part), "reason: {reason}"),
        other => panic!("expected a denial containing {reason_part:?}, got {other:?}"),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn every_policy_pins_the_built_module() {
    let policies = repo().join("policies");
    let mut checked = 0;
    for entry in fs::read_dir(policies.join("tools")).unwrap() {
        let path = entry.unwrap().path();
        let policy: toml::Table = toml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let backend = policy["backend"].as_table().unwrap();
        let Some(wasm) = backend.get("wasm") else { continue };
        let module = policies.join(wasm.as_str().unwrap());
        let bytes = fs::read(&module).unwrap_or_else(|e| panic!("{}: {e}", module.display()));
        assert_eq!(
            backend["sha256"].as_str().unwrap(),
            sha256_hex(&bytes),
            "{}: the pin is stale; run guest-tools/update-pins.sh",
            path.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 7, "one policy per tool, plus sha256sum-p2");
}

#[tokio::test]
async fn wc_counts_a_file() {
    let h = Harness::new().await;
    h.write("src/b.txt", "héllo wörld\nsecond line\n");
    let outcome = h.call("wc", json!({"path": "src/b.txt"})).await;
    assert_ok(&outcome);
    assert_eq!(
        json_lines(&outcome.stdout.text()),
        vec![json!({"path": "src/b.txt", "lines": 2, "words": 4, "chars": 24, "bytes": 26})]
    );
}

#[tokio::test]
async fn wc_reports_a_missing_file_and_schema_errors() {
    let h = Harness::new().await;
    h.write("a.txt", "x\n");
    let outcome = h.call("wc", json!({"path": "missing.txt"})).await;
    assert_tool_error(&outcome, 1);
    assert!(outcome.stderr.text().contains("missing.txt"));
    assert_denied(&h.call("wc", json!({})).await, "required property");
    assert_denied(&h.call("wc", json!({"path": "a.txt", "bogus": 1})).await, "Additional properties");
    assert_denied(&h.call("wc", json!({"path": "/etc/passwd"})).await, "does not match");
}

#[tokio::test]
async fn grep_searches_recursively_in_order() {
    let h = Harness::new().await;
    h.write("src/main.rs", "fn main() {\n    // TODO: greet\n}\n");
    h.write("src/lib/util.rs", "// todo later\npub fn f() {}\n");
    h.write("notes.md", "TODO in markdown\n");
    h.write("blob.bin", b"TODO\0binary");
    let outcome =
        h.call("grep", json!({"pattern": "todo", "ignore_case": true, "line_numbers": true, "include": "*.rs"})).await;
    assert_ok(&outcome);
    assert_eq!(outcome.stdout.text(), "src/lib/util.rs:1:// todo later\nsrc/main.rs:2:    // TODO: greet\n");
    let outcome = h.call("grep", json!({"pattern": "TODO", "files_with_matches": true})).await;
    assert_ok(&outcome);
    assert_eq!(outcome.stdout.text(), "notes.md\nsrc/main.rs\n");
}

#[tokio::test]
async fn grep_exit_codes_say_no_match_and_bad_pattern() {
    let h = Harness::new().await;
    h.write("a.txt", "alpha\n");
    assert_tool_error(&h.call("grep", json!({"pattern": "omega"})).await, 1);
    let bad = h.call("grep", json!({"pattern": "(unclosed"})).await;
    assert_tool_error(&bad, 2);
    assert!(bad.stderr.text().contains("invalid pattern"));
    assert_denied(&h.call("grep", json!({"paths": ["a.txt"]})).await, "required property");
}

#[tokio::test]
async fn jq_filters_a_file_and_inline_input() {
    let h = Harness::new().await;
    h.write("data.json", r#"{"items":[{"name":"a","size":5},{"name":"b","size":20}]}"#);
    let outcome = h
        .call("jq", json!({"filter": ".items | map(select(.size > 10) | .name)", "file": "data.json", "compact": true}))
        .await;
    assert_ok(&outcome);
    assert_eq!(outcome.stdout.text(), "[\"b\"]\n");
    let outcome = h.call("jq", json!({"filter": ".[] | .k", "input": [{"k": "x"}, {"k": "y"}], "raw": true})).await;
    assert_ok(&outcome);
    assert_eq!(outcome.stdout.text(), "x\ny\n");
    let outcome = h.call("jq", json!({"filter": "{b: .a, a}", "input": "{\"a\": 1}"})).await;
    assert_ok(&outcome);
    assert_eq!(outcome.stdout.text(), "{\n  \"b\": 1,\n  \"a\": 1\n}\n");
}

#[tokio::test]
async fn jq_parse_and_runtime_errors_have_their_exit_codes() {
    let h = Harness::new().await;
    let parse = h.call("jq", json!({"filter": ".a | map(", "input": {}})).await;
    assert_tool_error(&parse, 3);
    assert!(parse.stderr.text().contains("column"), "{}", parse.stderr.text());
    let runtime = h.call("jq", json!({"filter": ".a[]", "input": {"a": 5}})).await;
    assert_tool_error(&runtime, 5);
    assert!(runtime.stderr.text().contains("Cannot iterate over number (5)"));
    let missing = h.call("jq", json!({"filter": ".", "file": "nope.json"})).await;
    assert_tool_error(&missing, 2);
}

#[tokio::test]
async fn sha256sum_digests_and_checks_files() {
    let h = Harness::new().await;
    h.write("data/b.txt", "abc");
    h.write("data/a.txt", "");
    let outcome = h.call("sha256sum", json!({"paths": ["data"], "recursive": true})).await;
    assert_ok(&outcome);
    let listing = format!("{}  data/a.txt\n{}  data/b.txt\n", sha256_hex(b""), sha256_hex(b"abc"));
    assert_eq!(outcome.stdout.text(), listing);
    h.write("SUMS", &listing);
    assert_ok(&h.call("sha256sum", json!({"paths": ["SUMS"], "check": true})).await);
    h.write("data/b.txt", "changed");
    let check = h.call("sha256sum", json!({"paths": ["SUMS"], "check": true})).await;
    assert_tool_error(&check, 1);
    assert_eq!(check.stdout.text(), "data/a.txt: OK\ndata/b.txt: FAILED\n");
}

#[tokio::test]
async fn sha256sum_p2_component_gives_the_same_digests() {
    let h = Harness::new().await;
    h.write("abc.txt", "abc");
    let outcome = h.call("sha256sum-p2", json!({"paths": ["abc.txt"]})).await;
    assert_ok(&outcome);
    assert_eq!(outcome.stdout.text(), format!("{}  abc.txt\n", sha256_hex(b"abc")));
    // A preview2 component exits only with success or failure.
    assert_tool_error(&h.call("sha256sum-p2", json!({"paths": ["missing"]})).await, 1);
}

#[tokio::test]
async fn csv_dedupe_cleans_a_messy_file_with_exact_counts() {
    let h = Harness::new().await;
    h.write(
        "raw/users.csv",
        b"id,name,city\r\n\
1,Ann,Paris\r\n\
2,Bob,\"Lyon, FR\"\r\n\
1,Ann,Paris\r\n\
\r\n\
3,Cy\r\n\
\"1\",\"Ann\",\"Paris\"\r\n\
4,\"unterminated,Oslo\r\n\
5,D\xffn,Rome\r\n\
6,\"Multi\r\nLine\",Nice\r\n\
2,Bob,\"Lyon, FR\"\r\n\
7,Eve,Paris,extra\r\n",
    );
    let outcome = h.call("csv-dedupe", json!({"input": "raw/users.csv", "output": "clean/users.csv"})).await;
    assert_ok(&outcome);
    let report: Value = serde_json::from_str(outcome.stdout.text().trim()).unwrap();
    assert_eq!(
        report,
        json!({"rows_in": 10, "kept": 3, "duplicates": 3, "malformed": 4, "malformed_lines": [6, 8, 9, 13]})
    );
    assert_eq!(
        h.read("clean/users.csv"),
        "id,name,city\r\n1,Ann,Paris\r\n2,Bob,\"Lyon, FR\"\r\n6,\"Multi\r\nLine\",Nice\r\n"
    );
    let by_city = h.call("csv-dedupe", json!({"input": "raw/users.csv", "output": "by_city.csv", "key": "city"})).await;
    assert_ok(&by_city);
    assert!(by_city.stdout.text().contains("\"kept\":3"));
}

#[tokio::test]
async fn csv_dedupe_rejects_an_unknown_key_and_writes_nothing() {
    let h = Harness::new().await;
    h.write("a.csv", "id,name\n1,a\n");
    let outcome = h.call("csv-dedupe", json!({"input": "a.csv", "output": "b.csv", "key": "email"})).await;
    assert_tool_error(&outcome, 2);
    assert!(outcome.stderr.text().contains("no column `email`"));
    assert!(!h.workspace.join("b.csv").exists());
    assert_denied(&h.call("csv-dedupe", json!({"input": "a.csv"})).await, "required property");
}

#[tokio::test]
async fn sandbox_blocks_csv_dedupe_writing_outside_the_workspace() {
    let h = Harness::new().await;
    h.write("a.csv", "id\n1\n");
    let outcome = h.call("csv-dedupe", json!({"input": "a.csv", "output": "../escaped.csv"})).await;
    assert_tool_error(&outcome, 1);
    assert!(!h.workspace.parent().unwrap().join("escaped.csv").exists());
}

const GOOD_PATCH: &str = "\
diff --git a/src/main.rs b/src/main.rs
--- a/src/main.rs
+++ b/src/main.rs
@@ -1,3 +1,4 @@
 fn main() {
-    println!(\"hi\");
+    println!(\"hello\");
+    println!(\"world\");
 }
diff --git a/docs/new.md b/docs/new.md
new file mode 100644
--- /dev/null
+++ b/docs/new.md
@@ -0,0 +1 @@
+# New
diff --git a/old.txt b/old.txt
deleted file mode 100644
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
";

#[tokio::test]
async fn apply_patch_applies_a_git_diff() {
    let h = Harness::new().await;
    h.write("src/main.rs", "fn main() {\n    println!(\"hi\");\n}\n");
    h.write("old.txt", "bye\n");
    let check = h.call("apply-patch", json!({"patch": GOOD_PATCH, "check": true})).await;
    assert_ok(&check);
    assert_eq!(h.read("src/main.rs"), "fn main() {\n    println!(\"hi\");\n}\n");
    let outcome = h.call("apply-patch", json!({"patch": GOOD_PATCH})).await;
    assert_ok(&outcome);
    assert!(outcome.stdout.text().contains("applied: 3 file(s)"), "{}", outcome.stdout.text());
    assert_eq!(h.read("src/main.rs"), "fn main() {\n    println!(\"hello\");\n    println!(\"world\");\n}\n");
    assert_eq!(h.read("docs/new.md"), "# New\n");
    assert!(!h.workspace.join("old.txt").exists());
}

#[tokio::test]
async fn apply_patch_that_does_not_apply_changes_nothing() {
    let h = Harness::new().await;
    h.write("src/main.rs", "fn main() {\n    println!(\"bonjour\");\n}\n");
    h.write("old.txt", "bye\n");
    let outcome = h.call("apply-patch", json!({"patch": GOOD_PATCH})).await;
    assert_tool_error(&outcome, 1);
    assert!(outcome.stderr.text().contains("hunk #1"), "{}", outcome.stderr.text());
    assert_eq!(h.read("src/main.rs"), "fn main() {\n    println!(\"bonjour\");\n}\n");
    assert!(!h.workspace.join("docs/new.md").exists());
    assert_eq!(h.read("old.txt"), "bye\n");
    assert_tool_error(&h.call("apply-patch", json!({"patch": "not a diff\n"})).await, 2);
}

#[tokio::test]
async fn sandbox_blocks_apply_patch_escaping_with_dotdot() {
    let h = Harness::new().await;
    h.write("a.txt", "one\n");
    let escape = "\
--- a/a.txt
+++ b/a.txt
@@ -1 +1 @@
-one
+two
--- /dev/null
+++ b/../outside.txt
@@ -0,0 +1 @@
+pwned
";
    let outcome = h.call("apply-patch", json!({"patch": escape})).await;
    assert_tool_error(&outcome, 2);
    assert!(outcome.stderr.text().contains(".."), "{}", outcome.stderr.text());
    assert_eq!(h.read("a.txt"), "one\n", "nothing is written when any path is refused");
    assert!(!h.workspace.parent().unwrap().join("outside.txt").exists());
}

#[cfg(unix)]
#[tokio::test]
async fn sandbox_blocks_apply_patch_through_a_symlink() {
    let h = Harness::new().await;
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), h.workspace.join("link")).unwrap();
    let patch = "--- /dev/null\n+++ b/link/planted.txt\n@@ -0,0 +1 @@\n+pwned\n";
    let outcome = h.call("apply-patch", json!({"patch": patch})).await;
    assert_tool_error(&outcome, 2);
    assert!(outcome.stderr.text().contains("symbolic link"), "{}", outcome.stderr.text());
    assert!(!outside.path().join("planted.txt").exists());
}

/// The guest tools' own unit tests (their logic, on the host target), so that the one
/// test command covers them too.
#[test]
fn guest_tool_unit_tests_pass() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["test", "--locked", "--quiet", "--manifest-path"])
        .arg(common::repo().join("guest-tools/Cargo.toml"))
        .env("CARGO_TARGET_DIR", std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-tools-host"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "guest-tools unit tests failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
