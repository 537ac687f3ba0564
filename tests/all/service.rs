//! The socket service (`airlock serve`) and MCP over stdio (`airlock mcp`), tested against
//! real processes: identity from SO_PEERCRED (a second uid through `setpriv`), tools/list
//! filtering, tools/call outcomes, cancellation, approvals over the socket, SIGHUP and
//! SIGTERM, every kind of bad input, a fuzz of the framing and parser, a load test, and a
//! real MCP client (the Python `mcp` package).
//!
//! The test process is root (as in CI); the second uid is 65534 (nobody).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::{BufRead, BufReader, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use airlock::{
    Runtime,
    audit::{AuditRecord, read_records},
    service::{
        Service, ServiceConfig,
        client::{AsyncClient, ClientError},
        peer::Identity,
        protocol::{
            APPROVAL_FAILED, BUSY, FORBIDDEN, INVALID_PARAMS, INVALID_REQUEST, Incoming, METHOD_NOT_FOUND,
            NOT_INITIALIZED, PARSE_ERROR, POLICY_REJECTED, parse_line,
        },
        serve_connection,
    },
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::common::{airlock_bin, repo, shipped_policies};

/// Callers of most tests: root (this process) is an admin agent, 65534 a reviewer.
const CALLERS: &str = r#"
default = "restricted"

[callers.root-agent]
designation = "standard"
uids = [0]
admin = true

[callers.nobody]
designation = "restricted"
uids = [65534]
"#;

/// A trivial module: `_start` returns at once.
const NOOP_WAT: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

// ---------------------------------------------------------------------------------------
// Fixture: a policy directory, a workspace, an audit log; a running service.

struct Fixture {
    root: tempfile::TempDir,
    policies: PathBuf,
    workspace: PathBuf,
    audit: PathBuf,
    socket: PathBuf,
}

impl Fixture {
    fn new(callers: &str) -> Fixture {
        let root = tempfile::Builder::new().prefix("airlock-service-").tempdir().unwrap();
        // uid 65534 must reach the socket inside.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let policies = root.path().join("policies");
        write_policies(&policies, root.path(), callers);
        let workspace = root.path().join("ws");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::write(workspace.join("notes.txt"), "hello world\nsecond line\n").unwrap();
        Fixture {
            policies,
            workspace,
            audit: root.path().join("audit.jsonl"),
            socket: root.path().join("run/airlock.sock"),
            root,
        }
    }

    fn serve(&self, extra: &[&str]) -> Served {
        Served::start(self, extra)
    }

    fn records(&self) -> Vec<AuditRecord> {
        match read_records(&self.audit) {
            Ok(records) => records.map(Result::unwrap).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Waits until a record matches, at most `limit`.
    fn wait_for_record(&self, limit: Duration, matches: impl Fn(&AuditRecord) -> bool) -> AuditRecord {
        let started = Instant::now();
        loop {
            if let Some(record) = self.records().into_iter().find(|r| matches(r)) {
                return record;
            }
            assert!(started.elapsed() < limit, "no matching audit record within {limit:?}: {:#?}", self.records());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The cache of compiled modules shared by every test (compiling in a debug build is slow).
fn shared_cache() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("service-cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn write_policies(dir: &Path, root: &Path, callers: &str) {
    std::fs::create_dir_all(dir.join("tools")).unwrap();
    let shipped = shipped_policies();
    std::fs::copy(shipped.join("designations.toml"), dir.join("designations.toml")).unwrap();
    std::fs::write(dir.join("callers.toml"), callers).unwrap();
    std::fs::write(dir.join("audit.toml"), "fsync = \"batch\"\n").unwrap();
    std::fs::create_dir_all(dir.join("seccomp")).unwrap();
    for entry in std::fs::read_dir(shipped.join("seccomp")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join("seccomp").join(path.file_name().unwrap())).unwrap();
    }
    let modules = repo().join("guest-tools/wasm").canonicalize().unwrap();
    for name in ["wc", "apply-patch"] {
        let text = std::fs::read_to_string(shipped.join(format!("tools/{name}.toml"))).unwrap();
        let text = text.replace("../guest-tools/wasm/", &format!("{}/", modules.display()));
        std::fs::write(dir.join(format!("tools/{name}.toml")), text).unwrap();
    }
    let sleep = repo().join("tests/fixtures/wat/sleep.wat");
    std::fs::write(
        dir.join("tools/sleep.toml"),
        format!(
            "name = \"sleep\"\n\
             description = \"Sleeps `ms` milliseconds.\"\n\
             justification = \"Test tool: no files, no env, no network.\"\n\
             categories = [\"read\"]\n\
             [backend]\nwasm = \"{}\"\nsha256 = \"{}\"\n\
             [input]\ntype = \"object\"\nadditionalProperties = false\nrequired = [\"ms\"]\n\
             [input.properties.ms]\ntype = \"integer\"\nminimum = 0\n\
             [invoke]\nargs = [\"{{ms}}\"]\n\
             [limits]\nwall_ms = 120000\n",
            sleep.display(),
            airlock::policy::sha256_hex(&std::fs::read(&sleep).unwrap())
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("tools/jailed-sleep.toml"),
        "name = \"jailed-sleep\"\n\
         description = \"Sleeps 4242 seconds in the process jail.\"\n\
         justification = \"Test tool: a long-running process to cancel.\"\n\
         categories = [\"read\"]\n\
         [backend]\nprocess = [\"/bin/sleep\", \"4242\"]\n\
         [input]\ntype = \"object\"\nadditionalProperties = false\n\
         [limits]\nwall_ms = 120000\n",
    )
    .unwrap();
    let noop = root.join("noop.wat");
    std::fs::write(&noop, NOOP_WAT).unwrap();
    for (name, category) in [("deploy-noop", "deploy"), ("secret-noop", "secrets")] {
        std::fs::write(
            dir.join(format!("tools/{name}.toml")),
            format!(
                "name = \"{name}\"\n\
                 description = \"Does nothing, in category {category}.\"\n\
                 justification = \"Test tool: no files, no env, no network.\"\n\
                 categories = [\"{category}\"]\n\
                 [backend]\nwasm = \"{}\"\nsha256 = \"{}\"\n\
                 [input]\ntype = \"object\"\n",
                noop.display(),
                airlock::policy::sha256_hex(NOOP_WAT.as_bytes())
            ),
        )
        .unwrap();
    }
}

/// A running `airlock serve`.
struct Served {
    child: Child,
    socket: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    fn start(fixture: &Fixture, extra: &[&str]) -> Served {
        let mut command = Command::new(airlock_bin());
        command
            .arg("serve")
            .arg("--socket")
            .arg(&fixture.socket)
            .arg("--policies")
            .arg(&fixture.policies)
            .arg("--audit")
            .arg(&fixture.audit)
            .arg("--workspace")
            .arg(&fixture.workspace)
            .args(["--mode", "0666"])
            .args(extra)
            .env("XDG_CACHE_HOME", shared_cache())
            .env("XDG_STATE_HOME", fixture.root.path().join("state"))
            .env("AIRLOCK_LOG", "airlock=info")
            .env_remove("AIRLOCK_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(&fixture.socket).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("airlock serve exited ({status}) before listening:\n{}", stderr.lock().unwrap());
            }
            assert!(started.elapsed() < Duration::from_secs(60), "airlock serve did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Served { child, socket: fixture.socket.clone(), stderr }
    }

    async fn client(&self) -> AsyncClient {
        let mut client = AsyncClient::connect(&self.socket).await.unwrap();
        client.set_timeout(Some(Duration::from_secs(60)));
        client.initialize(Value::Null).await.unwrap();
        client
    }

    async fn raw(&self) -> AsyncClient {
        let mut client = AsyncClient::connect(&self.socket).await.unwrap();
        client.set_timeout(Some(Duration::from_secs(30)));
        client
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < limit, "airlock serve did not exit within {limit:?}:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_for_stderr(&self, needle: &str, limit: Duration) {
        let started = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(started.elapsed() < limit, "{needle:?} not logged within {limit:?}:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The service's peak resident set (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rpc_code(result: Result<Value, ClientError>) -> i64 {
    match result {
        Err(ClientError::Rpc { code, .. }) => code,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

fn tool_names(list: &Value) -> HashSet<String> {
    list["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

fn status_kind(result: &Value) -> &str {
    result["structuredContent"]["status"]["kind"].as_str().unwrap()
}

async fn call(client: &mut AsyncClient, tool: &str, arguments: Value) -> Result<Value, ClientError> {
    client.call("tools/call", json!({ "name": tool, "arguments": arguments })).await
}

// ---------------------------------------------------------------------------------------
// A second uid: `airlock mcp --connect` run as 65534 (a relay; the service sees its uid).

/// Runs `airlock mcp --connect SOCKET` as uid/gid 65534, sends `messages` and returns the
/// responses by id (and id-less messages under `null`).
fn as_nobody(socket: &Path, messages: &[Value], responses: usize) -> HashMap<String, Value> {
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(airlock_bin())
        .args(["mcp", "--connect"])
        .arg(socket)
        .env("HOME", "/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) is needed to run a client as uid 65534");
    let mut stdin = child.stdin.take().unwrap();
    for message in messages {
        writeln!(stdin, "{message}").unwrap();
    }
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut by_id = HashMap::new();
    while by_id.len() < responses {
        let line = match lines_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let output = child.wait_with_output().unwrap();
                panic!(
                    "the relay run as 65534 answered {} of {responses}: {by_id:?}\nstderr: {}",
                    by_id.len(),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        };
        let message: Value = serde_json::from_str(&line).unwrap();
        if message.get("method").is_none() {
            by_id.insert(message["id"].to_string(), message);
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success() || by_id.contains_key("null"), "the relay failed: {status}");
    by_id
}

fn request(id: i64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

fn initialize_request(id: i64) -> Value {
    request(
        id,
        "initialize",
        json!({ "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } }),
    )
}

// ---------------------------------------------------------------------------------------
// Identity.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_comes_from_the_peer_uid_and_decides_the_tool_list() {
    let fixture = Fixture::new(CALLERS);
    let served = fixture.serve(&[]);

    let mut root = served.client().await;
    let meta = &root.server_info().unwrap()["_meta"];
    assert_eq!(meta["airlock/caller"], "root-agent");
    assert_eq!(meta["airlock/designation"], "standard");
    let root_tools = tool_names(&root.call("tools/list", json!({})).await.unwrap());
    assert!(root_tools.contains("apply-patch") && root_tools.contains("wc") && root_tools.contains("deploy-noop"));
    assert!(!root_tools.contains("secret-noop"), "a denied tool is not listed: {root_tools:?}");

    let answers = as_nobody(
        &served.socket,
        &[
            initialize_request(1),
            json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
            request(2, "tools/list", json!({})),
            request(3, "tools/call", json!({ "name": "apply-patch", "arguments": { "patch": "x" } })),
            request(4, "tools/call", json!({ "name": "wc", "arguments": { "path": "notes.txt" } })),
            request(5, "airlock/audit.tail", json!({})),
            request(
                6,
                "tools/call",
                json!({ "name": "wc", "arguments": { "path": "notes.txt" }, "caller": "root-agent" }),
            ),
            request(7, "airlock/approvals.decide", json!({ "id": "x", "verdict": "approve" })),
        ],
        7,
    );
    let meta = &answers["1"]["result"]["_meta"];
    assert_eq!(meta["airlock/caller"], "nobody", "{answers:?}");
    assert_eq!(meta["airlock/designation"], "restricted");
    let nobody_tools = tool_names(&answers["2"]["result"]);
    assert!(nobody_tools.contains("wc"));
    assert!(!nobody_tools.contains("apply-patch") && !nobody_tools.contains("deploy-noop"));
    assert_ne!(root_tools, nobody_tools, "the two uids see different tools");
    // A tool the designation denies: an ordinary denied outcome, audited.
    assert_eq!(answers["3"]["result"]["isError"], true);
    assert_eq!(status_kind(&answers["3"]["result"]), "denied");
    assert_eq!(status_kind(&answers["4"]["result"]), "ok");
    assert_eq!(answers["5"]["error"]["code"], FORBIDDEN, "audit.tail is for admins: {:?}", answers["5"]);
    assert_eq!(answers["6"]["error"]["code"], INVALID_PARAMS, "a caller cannot be claimed: {:?}", answers["6"]);
    assert_eq!(answers["7"]["error"]["code"], FORBIDDEN);

    let records = fixture.records();
    let denied = records.iter().find(|r| r.tool == "apply-patch").unwrap();
    assert_eq!(denied.caller, "nobody");
    assert_eq!(denied.status(), Some("denied"));
    assert!(records.iter().all(|r| r.caller != "root-agent" || r.tool != "wc"), "the claimed caller was not used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_uids_get_the_default_designation_or_are_refused() {
    let with_default =
        Fixture::new("default = \"restricted\"\n[callers.root-agent]\ndesignation = \"standard\"\nuids = [0]\n");
    let served = with_default.serve(&[]);
    let answers = as_nobody(&served.socket, &[initialize_request(1), request(2, "tools/list", json!({}))], 2);
    assert_eq!(answers["1"]["result"]["_meta"]["airlock/caller"], "uid:65534");
    assert_eq!(answers["1"]["result"]["_meta"]["airlock/designation"], "restricted");
    assert!(!tool_names(&answers["2"]["result"]).contains("apply-patch"));
    drop(served);

    let without_default = Fixture::new("[callers.root-agent]\ndesignation = \"standard\"\nuids = [0]\n");
    let served = without_default.serve(&[]);
    let answers = as_nobody(&served.socket, &[initialize_request(1)], 1);
    let refusal = &answers["null"];
    assert_eq!(refusal["error"]["code"], FORBIDDEN, "{answers:?}");
    assert!(refusal["error"]["message"].as_str().unwrap().contains("uid 65534"));
    // Root is still served.
    let root = served.client().await;
    assert_eq!(root.server_info().unwrap()["_meta"]["airlock/caller"], "root-agent");
}

// ---------------------------------------------------------------------------------------
// tools/call.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_call_reports_success_tool_errors_denials_and_bad_calls() {
    let fixture = Fixture::new(CALLERS);
    let roots = fixture.root.path().join("roots");
    std::fs::create_dir_all(roots.join("project")).unwrap();
    std::fs::write(roots.join("project/a.txt"), "one\n").unwrap();
    let served = fixture.serve(&["--workspace-root", roots.to_str().unwrap()]);
    let mut client = served.client().await;
    let session = client.server_info().unwrap()["_meta"]["airlock/session"].as_str().unwrap().to_string();

    let ok = call(&mut client, "wc", json!({ "path": "notes.txt" })).await.unwrap();
    assert_eq!(ok["isError"], false);
    assert_eq!(status_kind(&ok), "ok");
    assert!(ok["content"][0]["text"].as_str().unwrap().contains("\"lines\":2"), "{ok}");
    assert_eq!(ok["content"][0]["type"], "text");

    let failed = call(&mut client, "wc", json!({ "path": "missing.txt" })).await.unwrap();
    assert_eq!(failed["isError"], true);
    assert_eq!(status_kind(&failed), "tool-error");
    assert_ne!(failed["structuredContent"]["exit_code"], 0);

    let denied = call(&mut client, "secret-noop", json!({})).await.unwrap();
    assert_eq!(denied["isError"], true);
    assert_eq!(status_kind(&denied), "denied");
    assert!(denied["content"][0]["text"].as_str().unwrap().contains("denied"));

    // Unknown tool and arguments that fail the schema: -32602, and still audited.
    let unknown = call(&mut client, "no-such-tool", json!({})).await;
    let Err(ClientError::Rpc { code, data, .. }) = unknown else { panic!("{unknown:?}") };
    assert_eq!(code, INVALID_PARAMS);
    let seq = data.unwrap()["auditSeq"].as_u64().unwrap();
    assert!(fixture.records().iter().any(|r| r.seq == seq && r.tool == "no-such-tool" && r.status() == Some("denied")));
    let bad = call(&mut client, "wc", json!({ "paths": ["a"] })).await;
    let Err(ClientError::Rpc { code, message, .. }) = bad else { panic!("{bad:?}") };
    assert_eq!(code, INVALID_PARAMS);
    assert!(message.contains("input schema"), "{message}");

    // The workspace: a choice inside a root works; outside is refused before the pipeline.
    let inside = client
        .call(
            "tools/call",
            json!({ "name": "wc", "arguments": { "path": "a.txt" },
                    "_meta": { "airlock/workspace": roots.join("project"), "airlock/session": "s-42" } }),
        )
        .await
        .unwrap();
    assert_eq!(status_kind(&inside), "ok", "{inside}");
    let outside = client
        .call(
            "tools/call",
            json!({ "name": "wc", "arguments": { "path": "notes.txt" }, "_meta": { "airlock/workspace": "/etc" } }),
        )
        .await;
    let Err(ClientError::Rpc { code, message, .. }) = outside else { panic!("{outside:?}") };
    assert_eq!(code, INVALID_PARAMS);
    assert!(message.contains("not inside a root"), "{message}");

    // Sessions: the connection's id by default, else the one named.
    let records = fixture.records();
    assert!(records.iter().filter(|r| r.tool == "wc").any(|r| r.session.as_deref() == Some(session.as_str())));
    assert!(records.iter().any(|r| r.session.as_deref() == Some("s-42")));
}

// ---------------------------------------------------------------------------------------
// Cancellation and the per-caller cap.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_is_stopped_and_audited_as_cancelled() {
    let fixture = Fixture::new(CALLERS);
    let served = fixture.serve(&[]);

    // notifications/cancelled.
    let mut client = served.client().await;
    let started = Instant::now();
    let id = client.send("tools/call", json!({ "name": "sleep", "arguments": { "ms": 60000 } })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.notify("notifications/cancelled", json!({ "requestId": id.to_value(), "reason": "test" })).await.unwrap();
    let result = client.wait(&id).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "the call was not stopped: {:?}", started.elapsed());
    assert_eq!(status_kind(&result), "cancelled");
    assert_eq!(result["isError"], true);
    let seq = result["structuredContent"]["audit_seq"].as_u64().unwrap();
    let record = fixture.records().into_iter().find(|r| r.seq == seq).unwrap();
    assert_eq!(record.status(), Some("cancelled"));
    assert_eq!(record.tool, "sleep");
    // The connection goes on.
    assert_eq!(client.call("ping", json!({})).await.unwrap(), json!({}));

    // A client that disconnects mid-call.
    let mut leaving = served.client().await;
    let session = leaving.server_info().unwrap()["_meta"]["airlock/session"].as_str().unwrap().to_string();
    leaving.send("tools/call", json!({ "name": "sleep", "arguments": { "ms": 60000 } })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gone = Instant::now();
    drop(leaving);
    let record = fixture.wait_for_record(Duration::from_secs(10), |r| r.session.as_deref() == Some(session.as_str()));
    assert_eq!(record.status(), Some("cancelled"));
    assert!(gone.elapsed() < Duration::from_secs(10));
}

/// Pids of processes running `sleep 4242` (the jailed test tool).
fn jailed_sleepers() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"/bin/sleep\x004242\x00"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_jailed_process_is_killed_and_audited() {
    let fixture = Fixture::new(CALLERS);
    let served = fixture.serve(&[]);
    let mut client = served.client().await;
    let id = client.send("tools/call", json!({ "name": "jailed-sleep", "arguments": {} })).await.unwrap();
    let started = Instant::now();
    while jailed_sleepers().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the jailed process never started: {:?}",
            fixture.records()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.notify("notifications/cancelled", json!({ "requestId": id.to_value() })).await.unwrap();
    let result = client.wait(&id).await.unwrap();
    assert_eq!(status_kind(&result), "cancelled", "{result}");
    let record = fixture.records().into_iter().find(|r| r.tool == "jailed-sleep").unwrap();
    assert_eq!((record.status(), record.backend.as_deref()), (Some("cancelled"), Some("jail")));
    let gone = Instant::now();
    while !jailed_sleepers().is_empty() {
        assert!(gone.elapsed() < Duration::from_secs(5), "the jailed process outlived its cancelled call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_per_caller_cap_wait_their_turn_and_can_be_cancelled_while_waiting() {
    let fixture = Fixture::new(CALLERS);
    let served = fixture.serve(&["--max-concurrent-per-caller", "1"]);
    let mut first = served.client().await;
    let mut second = served.client().await;
    let started = Instant::now();
    let long = first.send("tools/call", json!({ "name": "sleep", "arguments": { "ms": 1500 } })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let short = second.send("tools/call", json!({ "name": "sleep", "arguments": { "ms": 10 } })).await.unwrap();
    assert_eq!(status_kind(&second.wait(&short).await.unwrap()), "ok");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1400), "the second call did not wait for the first: {waited:?}");
    assert_eq!(status_kind(&first.wait(&long).await.unwrap()), "ok");

    // A waiting call can be cancelled; it never runs but is audited.
    let running = first.send("tools/call", json!({ "name": "sleep", "arguments": { "ms": 60000 } })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = second.send("tools/call", json!({ "name": "sleep", "arguments": { "ms": 5 } })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    second.notify("notifications/cancelled", json!({ "requestId": waiting.to_value() })).await.unwrap();
    let result = second.wait(&waiting).await.unwrap();
    assert_eq!(status_kind(&result), "cancelled");
    assert_eq!(result["structuredContent"]["usage"]["wall_us"], 0, "the waiting call never ran");
    first.notify("notifications/cancelled", json!({ "requestId": running.to_value() })).await.unwrap();
    assert_eq!(status_kind(&first.wait(&running).await.unwrap()), "cancelled");
}

// ---------------------------------------------------------------------------------------
// Approvals over the socket.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_needing_approval_runs_after_an_admin_approves_it_over_the_socket() {
    let fixture = Fixture::new(CALLERS);
    let served = fixture.serve(&[]);
    let mut agent = served.client().await;
    let pending = call(&mut agent, "deploy-noop", json!({ "target": "staging" })).await.unwrap();
    assert_eq!(status_kind(&pending), "needs-approval", "{pending}");
    assert_eq!(pending["isError"], true);
    let approval_id = pending["structuredContent"]["status"]["approval_id"].as_str().unwrap().to_string();

    // The admin (root) decides through the CLI, which talks to the socket.
    let cli = |args: &[&str]| {
        Command::new(airlock_bin()).arg("approvals").arg("--socket").arg(&served.socket).args(args).output().unwrap()
    };
    let listed = cli(&["--json", "list"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&approval_id));
    let approved = cli(&["approve", &approval_id]);
    assert!(approved.status.success(), "{}", String::from_utf8_lossy(&approved.stderr));

    let ran = call(&mut agent, "deploy-noop", json!({ "target": "staging" })).await.unwrap();
    assert_eq!(status_kind(&ran), "ok", "{ran}");
    let seq = ran["structuredContent"]["audit_seq"].as_u64().unwrap();
    let record = fixture.records().into_iter().find(|r| r.seq == seq).unwrap();
    let approval = record.approval.unwrap();
    assert_eq!(approval.id, approval_id);
    assert_eq!(approval.approver, "root-agent (uid 0)");

    // Other arguments are not covered by it; a bad decision is an error.
    let other = call(&mut agent, "deploy-noop", json!({ "target": "production" })).await.unwrap();
    assert_eq!(status_kind(&other), "needs-approval");
    let got = agent.call("airlock/approvals.get", json!({ "id": approval_id })).await.unwrap();
    assert_eq!(got["approval"]["state"], "used");
    assert_eq!(
        rpc_code(agent.call("airlock/approvals.decide", json!({ "id": approval_id, "verdict": "maybe" })).await),
        INVALID_PARAMS
    );
    assert_eq!(rpc_code(agent.call("airlock/approvals.get", json!({ "id": "no-such" })).await), APPROVAL_FAILED);

    // A caller may wait for the decision (`_meta.airlock/approvalWaitMs`): approved meanwhile,
    // the call runs; cancelled meanwhile, it is recorded as cancelled and the approval stays.
    let waiting = agent
        .send("tools/call", json!({ "name": "deploy-noop", "arguments": { "target": "qa" }, "_meta": { "airlock/approvalWaitMs": 60000 } }))
        .await
        .unwrap();
    let mut admin = served.client().await;
    let pending = loop {
        let list = admin.call("airlock/approvals.list", json!({ "state": "pending" })).await.unwrap();
        let found = list["approvals"].as_array().unwrap().iter().find(|a| a["arguments"]["target"] == "qa").cloned();
        if let Some(found) = found {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let decided = admin
        .call("airlock/approvals.decide", json!({ "id": pending["id"], "verdict": "approve", "uses": 1 }))
        .await
        .unwrap();
    assert_eq!(decided["approval"]["state"], "approved");
    assert_eq!(status_kind(&agent.wait(&waiting).await.unwrap()), "ok", "the waiting call ran once approved");

    let waiting = agent
        .send("tools/call", json!({ "name": "deploy-noop", "arguments": { "target": "dev" }, "_meta": { "airlock/approvalWaitMs": 60000 } }))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.notify("notifications/cancelled", json!({ "requestId": waiting.to_value() })).await.unwrap();
    let cancelled = agent.wait(&waiting).await.unwrap();
    assert_eq!(status_kind(&cancelled), "cancelled");
    let list = admin.call("airlock/approvals.list", json!({})).await.unwrap();
    assert!(list["approvals"].as_array().unwrap().iter().any(|a| a["arguments"]["target"] == "dev"), "{list}");
}

// ---------------------------------------------------------------------------------------
// Signals.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_old_policies_on_error_and_picks_up_a_good_change() {
    let fixture = Fixture::new(CALLERS);
    let served = fixture.serve(&[]);
    let mut client = served.client().await;
    assert!(tool_names(&client.call("tools/list", json!({})).await.unwrap()).contains("wc"));

    // A broken set: rejected, logged, the old one stays.
    let designations = fixture.policies.join("designations.toml");
    let good = std::fs::read_to_string(&designations).unwrap();
    std::fs::write(&designations, "this is [not toml").unwrap();
    served.signal(libc::SIGHUP);
    served.wait_for_stderr("policy reload rejected", Duration::from_secs(20));
    assert!(tool_names(&client.call("tools/list", json!({})).await.unwrap()).contains("wc"));
    assert_eq!(status_kind(&call(&mut client, "wc", json!({ "path": "notes.txt" })).await.unwrap()), "ok");

    // A good change: picked up, and open connections are told.
    std::fs::write(&designations, good).unwrap();
    let wc = std::fs::read_to_string(fixture.policies.join("tools/wc.toml")).unwrap();
    std::fs::remove_file(fixture.policies.join("tools/wc.toml")).unwrap();
    served.signal(libc::SIGHUP);
    served.wait_for_stderr("SIGHUP: policies reloaded", Duration::from_secs(20));
    assert!(!tool_names(&client.call("tools/list", json!({})).await.unwrap()).contains("wc"));
    let told = client.take_notifications();
    assert!(told.iter().any(|n| n["method"] == "notifications/tools/list_changed"), "{told:?}");

    // The same through airlock/policy.reload (admins only).
    std::fs::write(fixture.policies.join("tools/wc.toml"), &wc).unwrap();
    let reloaded = client.call("airlock/policy.reload", json!({})).await.unwrap();
    assert!(reloaded["digest"].as_str().unwrap().len() == 64);
    assert!(tool_names(&client.call("tools/list", json!({})).await.unwrap()).contains("wc"));
    std::fs::write(fixture.policies.join("tools/wc.toml"), "name = 3\n").unwrap();
    let rejected = client.call("airlock/policy.reload", json!({})).await;
    let Err(ClientError::Rpc { code, data, .. }) = rejected else { panic!("{rejected:?}") };
    assert_eq!(code, POLICY_REJECTED);
    assert!(!data.unwrap()["errors"].as_array().unwrap().is_empty());
    assert!(tool_names(&client.call("tools/list", json!({})).await.unwrap()).contains("wc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_calls_finish_within_grace_then_cancels_flushes_and_removes_the_socket() {
    let fixture = Fixture::new(CALLERS);
    let mut served = fixture.serve(&["--grace", "2s"]);
    let mut quick = served.client().await;
    let mut slow = served.client().await;
    let quick_id = quick.send("tools/call", json!({ "name": "sleep", "arguments": { "ms": 700 } })).await.unwrap();
    let slow_id = slow.send("tools/call", json!({ "name": "sleep", "arguments": { "ms": 60000 } })).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    served.signal(libc::SIGTERM);

    assert_eq!(status_kind(&quick.wait(&quick_id).await.unwrap()), "ok", "a call that fits the grace finishes");
    let cancelled = slow.wait(&slow_id).await.unwrap();
    assert_eq!(status_kind(&cancelled), "cancelled", "a call past the grace is cancelled");
    assert!(stopping.elapsed() >= Duration::from_millis(1800), "cancelled before the grace: {:?}", stopping.elapsed());
    // Its calls done, the connection is closed by the service.
    assert!(matches!(slow.next_message().await, Err(ClientError::Closed | ClientError::Io(_))));

    let status = served.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status}:\n{}", served.stderr());
    assert!(stopping.elapsed() < Duration::from_secs(10));
    assert!(!fixture.socket.exists(), "the socket file is removed");
    let statuses: Vec<_> = fixture.records().iter().filter(|r| r.tool == "sleep").filter_map(|r| r.status()).collect();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.contains(&"ok") && statuses.contains(&"cancelled"));
    let verify = Command::new(airlock_bin()).args(["audit", "verify", "--audit"]).arg(&fixture.audit).output().unwrap();
    assert!(
        verify.status.success(),
        "{}{}\nthe log:\n{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr),
        std::fs::read_to_string(&fixture.audit).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_service_does_not_start_over_a_live_socket_and_a_stale_one_is_replaced() {
    let fixture = Fixture::new(CALLERS);
    let mut served = fixture.serve(&[]);
    let second = Command::new(airlock_bin())
        .args(["serve", "--socket"])
        .arg(&fixture.socket)
        .arg("--policies")
        .arg(&fixture.policies)
        .arg("--audit")
        .arg(&fixture.audit)
        .env("XDG_CACHE_HOME", shared_cache())
        .env("XDG_STATE_HOME", fixture.root.path().join("state"))
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already listening"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // The socket's mode is the one asked for.
    let mode = std::fs::metadata(&fixture.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
    // Killed hard, the service leaves a stale socket; the next start replaces it.
    served.signal(libc::SIGKILL);
    served.wait_exit(Duration::from_secs(10));
    assert!(fixture.socket.exists());
    let again = fixture.serve(&[]);
    let mut client = again.client().await;
    assert_eq!(client.call("ping", json!({})).await.unwrap(), json!({}));
    // A path that is not a socket is never removed.
    let file = fixture.root.path().join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let refused = Command::new(airlock_bin())
        .args(["serve", "--socket"])
        .arg(&file)
        .arg("--policies")
        .arg(&fixture.policies)
        .arg("--audit")
        .arg(&fixture.audit)
        .env("XDG_CACHE_HOME", shared_cache())
        .env("XDG_STATE_HOME", fixture.root.path().join("state"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

// ---------------------------------------------------------------------------------------
// Bad input.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_error_or_a_close_and_others_are_still_served() {
    let fixture = Fixture::new(CALLERS);
    let served = fixture.serve(&["--line-timeout", "500ms"]);

    // Malformed JSON: -32700; the connection stays usable.
    let mut client = served.raw().await;
    client.send_raw(b"{\"jsonrpc\": \"2.0\", \"id\": 1,").await.unwrap();
    let error = client.next_message().await.unwrap();
    assert_eq!(error["error"]["code"], PARSE_ERROR);
    assert_eq!(error["id"], Value::Null);
    client.send_raw(b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]").await.unwrap();
    assert_eq!(client.next_message().await.unwrap()["error"]["code"], INVALID_REQUEST, "batches are refused");
    client.send_raw(b"{\"jsonrpc\":\"1.0\",\"id\":9,\"method\":\"ping\"}").await.unwrap();
    let error = client.next_message().await.unwrap();
    assert_eq!((error["error"]["code"].as_i64(), error["id"].as_i64()), (Some(INVALID_REQUEST), Some(9)));

    // A call before initialize.
    let id = client.send("tools/list", json!({})).await.unwrap();
    assert_eq!(rpc_code(client.wait(&id).await), NOT_INITIALIZED);
    let id = client.send("tools/call", json!({ "name": "wc", "arguments": { "path": "notes.txt" } })).await.unwrap();
    assert_eq!(rpc_code(client.wait(&id).await), NOT_INITIALIZED);
    // ping is allowed before initialize; wrong param types get -32602.
    let id = client.send("ping", json!({})).await.unwrap();
    assert_eq!(client.wait(&id).await.unwrap(), json!({}));
    let id = client.send("initialize", json!({ "protocolVersion": 2025 })).await.unwrap();
    assert_eq!(rpc_code(client.wait(&id).await), INVALID_PARAMS);
    client.initialize(Value::Null).await.unwrap();
    assert_eq!(rpc_code(client.call("initialize", json!({ "protocolVersion": "2025-11-25" })).await), INVALID_REQUEST);
    assert_eq!(rpc_code(client.call("tools/call", json!({ "name": 5 })).await), INVALID_PARAMS);
    assert_eq!(rpc_code(client.call("tools/call", json!({ "name": "wc", "arguments": [1] })).await), INVALID_PARAMS);
    assert_eq!(rpc_code(client.call("tools/list", json!({ "cursor": 1 })).await), INVALID_PARAMS);
    assert_eq!(rpc_code(client.call("airlock/audit.tail", json!({ "n": "ten" })).await), INVALID_PARAMS);
    client.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"ping\",\"params\":[1]}").await.unwrap();
    assert_eq!(client.next_message().await.unwrap()["error"]["code"], INVALID_PARAMS);
    // Unknown method.
    assert_eq!(rpc_code(client.call("tools/frobnicate", json!({})).await), METHOD_NOT_FOUND);
    // A notification never gets an answer, even a bad one; the next request does.
    client.notify("notifications/cancelled", json!({ "requestId": [1] })).await.unwrap();
    client.notify("no/such/notification", json!({})).await.unwrap();
    assert_eq!(client.call("ping", json!({})).await.unwrap(), json!({}));
    // The service's protocol version is offered when the client's is unknown.
    let mut old = served.raw().await;
    let id = old.send("initialize", json!({ "protocolVersion": "1999-01-01" })).await.unwrap();
    assert_eq!(old.wait(&id).await.unwrap()["protocolVersion"], "2025-11-25");

    // A line over the cap: an error, then the connection is closed.
    let mut long = served.raw().await;
    let mut line = vec![b' '; (1 << 20) + 16];
    line[0] = b'"';
    // The service may close before the last bytes are written: the write can fail.
    let _ = long.send_raw(&line).await;
    let error = long.next_message().await.unwrap();
    assert_eq!(error["error"]["code"], INVALID_REQUEST);
    assert!(error["error"]["message"].as_str().unwrap().contains("longer than"));
    assert!(matches!(long.next_message().await, Err(ClientError::Closed | ClientError::Io(_))));

    // A line never finished: closed after the line timeout.
    let started = Instant::now();
    let stream = tokio::net::UnixStream::connect(&served.socket).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    writer.write_all(b"{\"jsonrpc\":\"2.0\",").await.unwrap();
    let mut reader = tokio::io::BufReader::new(reader);
    let mut answer = String::new();
    reader.read_line(&mut answer).await.unwrap();
    let error: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(error["error"]["code"], INVALID_REQUEST);
    assert!(error["error"]["message"].as_str().unwrap().contains("not finished"), "{error}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    answer.clear();
    assert_eq!(reader.read_line(&mut answer).await.unwrap(), 0, "closed after the timeout");

    // Through it all, others are served.
    let mut other = served.client().await;
    assert_eq!(status_kind(&call(&mut other, "wc", json!({ "path": "notes.txt" })).await.unwrap()), "ok");
    assert_eq!(client.call("ping", json!({})).await.unwrap(), json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_and_a_freed_slot_is_reused() {
    let fixture = Fixture::new(CALLERS);
    let served = fixture.serve(&["--max-connections", "4"]);
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(served.client().await);
    }
    let mut extra = served.raw().await;
    let refusal = extra.next_message().await.unwrap();
    assert_eq!(refusal["error"]["code"], BUSY, "{refusal}");
    assert!(refusal["error"]["message"].as_str().unwrap().contains("too many connections"));
    assert!(matches!(extra.next_message().await, Err(ClientError::Closed | ClientError::Io(_))));
    // The open ones still work.
    assert_eq!(idle[0].call("ping", json!({})).await.unwrap(), json!({}));
    // Closing one frees a slot.
    idle.pop();
    let started = Instant::now();
    loop {
        let mut client = served.raw().await;
        if let Ok(result) = client.call("ping", json!({})).await {
            assert_eq!(result, json!({}));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no slot was freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Fuzz: the framing and the parser, with arbitrary bytes.

/// xorshift64*: a fixed-seed generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const TEMPLATES: [&str; 10] = [
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#,
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"wc","arguments":{"path":"notes.txt"}}}"#,
    r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":20}}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}"#,
    r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
    r#"[{"jsonrpc":"2.0","id":6,"method":"ping"}]"#,
    r#"{"jsonrpc":"2.0","id":7,"method":"airlock/audit.tail","params":{"n":1}}"#,
];

fn random_json(rng: &mut Rng, depth: u32) -> Value {
    const KEYS: [&str; 12] = [
        "jsonrpc",
        "id",
        "method",
        "params",
        "result",
        "error",
        "name",
        "arguments",
        "_meta",
        "protocolVersion",
        "requestId",
        "x",
    ];
    const STRINGS: [&str; 8] =
        ["2.0", "ping", "tools/call", "tools/list", "initialize", "wc", "", "notifications/cancelled"];
    match rng.below(if depth > 3 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.next() as i64 >> rng.below(64)),
        3 => json!(f64::from(rng.below(1000) as u32) / 7.0),
        4 => Value::String(rng.pick(&STRINGS).to_string()),
        5 => Value::Array((0..rng.below(4)).map(|_| random_json(rng, depth + 1)).collect()),
        _ => Value::Object(
            (0..rng.below(6)).map(|_| (rng.pick(&KEYS).to_string(), random_json(rng, depth + 1))).collect(),
        ),
    }
}

fn random_line(rng: &mut Rng) -> Vec<u8> {
    let mut line = match rng.below(4) {
        0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        1 => serde_json::to_vec(&random_json(rng, 0)).unwrap(),
        _ => {
            let mut bytes = rng.pick(&TEMPLATES).as_bytes().to_vec();
            for _ in 0..rng.below(4) {
                let at = rng.below(bytes.len() as u64 + 1) as usize;
                match rng.below(3) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 if at < bytes.len() => bytes[at] = rng.next() as u8,
                    _ => bytes.insert(at, *rng.pick(b"{}[]\":,0a\\ \r\t\x00\xff")),
                }
            }
            bytes
        }
    };
    line.retain(|&b| b != b'\n');
    line
}

/// Every line of a response stream is one well-formed JSON-RPC response (or a
/// notification of the service's).
fn check_response(line: &str) -> Value {
    let message: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    assert_eq!(message["jsonrpc"], "2.0", "{line}");
    if message.get("method").is_some() {
        assert_eq!(message["method"], "notifications/tools/list_changed");
        return message;
    }
    let id = &message["id"];
    assert!(id.is_null() || id.is_string() || id.is_i64(), "{line}");
    let (result, error) = (message.get("result"), message.get("error"));
    assert!(result.is_some() != error.is_some(), "exactly one of result and error: {line}");
    if let Some(error) = error {
        assert!(error["code"].is_i64() && error["message"].is_string(), "{line}");
    }
    message
}

#[test]
fn the_parser_never_panics_and_always_has_an_answer() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..100_000 {
        let line = random_line(&mut rng);
        match parse_line(&line) {
            Incoming::Invalid(response) => {
                let text = response.to_line();
                assert_eq!(text.matches('\n').count(), 1);
                check_response(text.trim_end());
            }
            Incoming::Request { .. } | Incoming::Notification { .. } | Incoming::Response | Incoming::Blank => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_connections_get_exactly_one_answer_per_request_line() {
    let fixture = Fixture::new(CALLERS);
    let runtime = Runtime::builder(&fixture.policies)
        .audit_path(&fixture.audit)
        .cache_dir(Some(shared_cache().join("airlock/modules")))
        .approvals_dir(fixture.root.path().join("approvals"))
        .build()
        .unwrap();
    let config = ServiceConfig { workspace: Some(fixture.workspace.clone()), ..ServiceConfig::default() };
    let service = Arc::new(Service::new(Arc::new(runtime), config).unwrap());
    let mut rng = Rng(0xfeed_beef_0042_0007);
    let cases = 400;
    let mut answered = 0usize;
    for case in 0..cases {
        let mut input = Vec::new();
        let mut expected = 0usize;
        if rng.below(2) == 0 {
            input.extend_from_slice(TEMPLATES[0].as_bytes());
            input.push(b'\n');
            expected += 1;
        }
        for _ in 0..rng.below(12) {
            let line = random_line(&mut rng);
            if matches!(parse_line(&line), Incoming::Request { .. } | Incoming::Invalid(_)) {
                expected += 1;
            }
            input.extend_from_slice(&line);
            input.push(if rng.below(8) == 0 { b'\r' } else { b' ' });
            input.push(b'\n');
        }
        input.extend_from_slice(br#"{"jsonrpc":"2.0","id":"final","method":"ping"}"#);
        input.extend_from_slice(b"\n");
        expected += 1;

        let (client, server) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server);
        let connection = tokio::spawn(serve_connection(
            Arc::clone(&service),
            Identity::Named("root-agent".into()),
            server_read,
            server_write,
        ));
        let (client_read, mut client_write) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            client_write.write_all(&input).await.unwrap();
            client_write.shutdown().await.unwrap();
            client_write
        });
        let mut lines = tokio::io::BufReader::new(client_read).lines();
        let mut responses = Vec::new();
        let read_all = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                responses.push(check_response(&line));
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read_all).await.unwrap_or_else(|_| panic!("case {case} hung"));
        tokio::time::timeout(Duration::from_secs(10), connection).await.unwrap().unwrap();
        let _ = writer.await.unwrap();
        let answers = responses.iter().filter(|r| r.get("method").is_none()).count();
        assert_eq!(answers, expected, "case {case}: {responses:#?}");
        assert!(responses.iter().any(|r| r["id"] == "final"), "case {case}");
        answered += answers;
    }
    assert!(answered > cases, "the fuzz exercised little: {answered} answers");
}

// ---------------------------------------------------------------------------------------
// Load.

fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill, then to pass to setrlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.max(limit.rlim_cur);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_1000_concurrent_connections_each_get_one_call_and_one_audit_record() {
    const CONNECTIONS: usize = 1000;
    raise_open_file_limit();
    let fixture = Fixture::new(CALLERS);
    let mut served = fixture.serve(&["--max-connections", "2000", "--max-concurrent-per-caller", "64"]);
    // Warm the module cache so the first calls do not all wait for one compile.
    let mut warm = served.client().await;
    assert_eq!(status_kind(&call(&mut warm, "wc", json!({ "path": "notes.txt" })).await.unwrap()), "ok");
    drop(warm);
    let before = fixture.records().len();

    let started = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(CONNECTIONS));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (socket, barrier) = (served.socket.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let mut client = AsyncClient::connect(&socket).await.unwrap();
            client.set_timeout(Some(Duration::from_secs(60)));
            let info = client.initialize(Value::Null).await.unwrap();
            let session = info["_meta"]["airlock/session"].as_str().unwrap().to_string();
            barrier.wait().await;
            let sent = Instant::now();
            let result = call(&mut client, "wc", json!({ "path": "notes.txt" })).await.unwrap();
            let latency = sent.elapsed();
            assert_eq!(status_kind(&result), "ok", "{result}");
            (session, result["structuredContent"]["audit_seq"].as_u64().unwrap(), latency)
        }));
    }
    let mut latencies = Vec::new();
    let mut by_session = BTreeMap::new();
    for task in tasks {
        let (session, seq, latency) = task.await.unwrap();
        latencies.push(latency);
        assert!(by_session.insert(session, seq).is_none(), "two connections shared a session id");
    }
    let elapsed = started.elapsed();
    let peak_kib = served.peak_rss_kib();
    served.signal(libc::SIGTERM);
    assert!(served.wait_exit(Duration::from_secs(30)).success());

    let records = fixture.records();
    assert_eq!(records.len() - before, CONNECTIONS, "one record per call");
    let mut per_session: HashMap<&str, Vec<u64>> = HashMap::new();
    for record in &records[before..] {
        per_session.entry(record.session.as_deref().unwrap()).or_default().push(record.seq);
    }
    for (session, seq) in &by_session {
        assert_eq!(per_session.get(session.as_str()), Some(&vec![*seq]), "session {session}");
    }
    let verify = Command::new(airlock_bin()).args(["audit", "verify", "--audit"]).arg(&fixture.audit).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    let (p50, p99) = (percentile(&mut latencies, 0.50), percentile(&mut latencies, 0.99));
    println!(
        "load: {CONNECTIONS} concurrent connections x 1 wc call in {:.2} s: call latency p50 {:.1} ms, p99 {:.1} ms; \
         service peak RSS (VmHWM) {:.1} MiB",
        elapsed.as_secs_f64(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        peak_kib as f64 / 1024.0
    );
    assert!(elapsed < Duration::from_secs(60), "the load test took {elapsed:?}");
}

/// Runs `airlock mcp ARGS` on pipes: initialize, a long call, its cancellation, a ping;
/// returns every message it wrote before stdin was closed.
fn stdio_cancel_round(fixture: &Fixture, args: &[&str]) -> Vec<Value> {
    let mut child = Command::new(airlock_bin())
        .arg("mcp")
        .args(args)
        .current_dir(&fixture.workspace)
        .env("XDG_CACHE_HOME", shared_cache())
        .env("XDG_STATE_HOME", fixture.root.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(serde_json::from_str::<Value>(&line).unwrap());
        }
    });
    let mut seen = Vec::new();
    let until = |id: i64, seen: &mut Vec<Value>| loop {
        let message = lines_rx.recv_timeout(Duration::from_secs(60)).expect("airlock mcp answered in time");
        let done = message["id"] == id;
        seen.push(message);
        if done {
            break;
        }
    };
    writeln!(stdin, "{}", initialize_request(1)).unwrap();
    until(1, &mut seen);
    writeln!(stdin, "{}", json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).unwrap();
    writeln!(stdin, "{}", request(2, "tools/call", json!({ "name": "sleep", "arguments": { "ms": 60000 } }))).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    writeln!(
        stdin,
        "{}",
        json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 2 } })
    )
    .unwrap();
    // Give the cancelled call time to be recorded (and, wrongly, answered) before the ping.
    std::thread::sleep(Duration::from_millis(500));
    writeln!(stdin, "{}", request(3, "ping", json!({}))).unwrap();
    until(3, &mut seen);
    drop(stdin);
    assert!(child.wait().unwrap().success());
    seen
}

#[test]
fn over_stdio_a_cancelled_call_gets_no_response_as_mcp_asks_in_process_and_relayed() {
    let fixture = Fixture::new(CALLERS);
    let (policies, audit) = (fixture.policies.to_str().unwrap(), fixture.audit.to_str().unwrap());
    let seen = stdio_cancel_round(&fixture, &["--policies", policies, "--audit", audit, "--caller", "root-agent"]);
    assert!(seen.iter().all(|m| m["id"] != 2), "in process: {seen:?}");
    let record = fixture.wait_for_record(Duration::from_secs(10), |r| r.tool == "sleep");
    assert_eq!(record.status(), Some("cancelled"));

    let served = fixture.serve(&[]);
    let seen = stdio_cancel_round(&fixture, &["--connect", served.socket.to_str().unwrap()]);
    assert!(seen.iter().all(|m| m["id"] != 2), "relayed: {seen:?}");
    let cancelled = fixture.records().iter().filter(|r| r.tool == "sleep" && r.status() == Some("cancelled")).count();
    assert_eq!(cancelled, 2);
}

// ---------------------------------------------------------------------------------------
// A real MCP client: the Python `mcp` package.

/// The virtualenv with the `mcp` package, made once under target/ (by .ci/run, or here).
fn mcp_python() -> PathBuf {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mcp-venv");
        let python = venv.join("bin/python");
        let ready = |python: &Path| {
            Command::new(python).args(["-c", "import mcp.client.stdio"]).status().is_ok_and(|s| s.success())
        };
        if ready(&python) {
            return Ok(python);
        }
        let made =
            Command::new("python3").args(["-m", "venv"]).arg(&venv).output().map_err(|e| format!("python3: {e}"))?;
        if !made.status.success() {
            return Err(format!("python3 -m venv failed: {}", String::from_utf8_lossy(&made.stderr)));
        }
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "mcp"])
            .output()
            .map_err(|e| format!("pip: {e}"))?;
        if !pip.status.success() {
            return Err(format!("pip install mcp failed: {}", String::from_utf8_lossy(&pip.stderr)));
        }
        if ready(&python) { Ok(python) } else { Err("the venv has no importable mcp package".into()) }
    })
    .clone()
    .unwrap_or_else(|reason| panic!("cannot make the Python MCP client's virtualenv: {reason}"))
}

fn run_python_client(fixture: &Fixture, server: &[&str]) -> Value {
    let output = Command::new(mcp_python())
        .arg(repo().join("tests/fixtures/mcp/client.py"))
        .args(["wc", r#"{"path": "notes.txt"}"#, "--"])
        .args(server)
        .current_dir(&fixture.workspace)
        .env("XDG_CACHE_HOME", shared_cache())
        .env("XDG_STATE_HOME", fixture.root.path().join("state"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the Python MCP client failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn check_python_report(report: &Value, caller: &str) {
    assert_eq!(report["initialize"]["serverInfo"]["name"], "airlock");
    assert_eq!(report["initialize"]["_meta"]["airlock/caller"], caller);
    let tools: Vec<&str> = report["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(tools.contains(&"wc"), "{tools:?}");
    let wc = report["tools"].as_array().unwrap().iter().find(|t| t["name"] == "wc").unwrap();
    assert_eq!(wc["annotations"]["readOnlyHint"], true);
    assert_eq!(wc["inputSchema"]["type"], "object");
    let call = &report["call"];
    assert_eq!(call["isError"], false, "{call}");
    assert!(call["content"][0]["text"].as_str().unwrap().contains("\"words\":4"), "{call}");
    assert_eq!(call["structuredContent"]["status"]["kind"], "ok");
}

#[test]
fn the_python_mcp_client_lists_and_calls_tools_through_airlock_mcp_in_process() {
    let fixture = Fixture::new(CALLERS);
    let (policies, audit) = (fixture.policies.to_str().unwrap(), fixture.audit.to_str().unwrap());
    let report = run_python_client(
        &fixture,
        &[airlock_bin(), "mcp", "--policies", policies, "--audit", audit, "--caller", "root-agent"],
    );
    check_python_report(&report, "root-agent");
    assert_eq!(
        report["initialize"]["_meta"]["airlock/workspace"],
        fixture.workspace.canonicalize().unwrap().to_str().unwrap()
    );
    let records = fixture.records();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].tool.as_str(), records[0].status()), ("wc", Some("ok")));
}

#[test]
fn the_python_mcp_client_works_through_airlock_mcp_relaying_to_the_socket() {
    let fixture = Fixture::new(CALLERS);
    let served = fixture.serve(&["--workspace-root", fixture.root.path().to_str().unwrap()]);
    let other = fixture.root.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "four words are here\n").unwrap();
    let report = run_python_client(
        &fixture,
        &[airlock_bin(), "mcp", "--connect", served.socket.to_str().unwrap(), "--workspace", other.to_str().unwrap()],
    );
    check_python_report(&report, "root-agent");
    let records = fixture.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].workspace.as_deref(), Some(other.canonicalize().unwrap().to_str().unwrap()));
}
