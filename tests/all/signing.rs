//! Signed audit checkpoints and the OTLP export: a signed log verifies with its public key;
//! an edited record, a truncated log, appended unsigned records, a forged re-chained
//! history and another key's signatures all fail, naming the first bad record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use airlock::{
    CallRequest, Decision, Runtime, Status,
    audit::{
        self, AuditConfig, AuditEntry, AuditLog, BadKind, CheckpointSigner, Fsync, Redactor, VerifyReport, chain_hash,
        load_public_key, verify, verify_signed,
    },
};
use serde_json::{Map, Value, json};

use crate::common;

/// A key pair in `dir`: (private, public).
fn keys(dir: &Path) -> (PathBuf, PathBuf) {
    let private = dir.join("audit.key");
    let public = audit::keygen(&private).unwrap();
    assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
    (private, public)
}

/// A signed log of 7 calls, a checkpoint every 3 records, closed: seqs 1 2 3 [4] 5 6 7 [8]
/// 9 [10], checkpoints in brackets.
async fn signed_log(dir: &Path, key: &Path) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let config = AuditConfig { fsync: Fsync::Off, redact: Redactor::default() };
    let log = AuditLog::open_signed(&path, config, Some(CheckpointSigner::load(key, 3).unwrap())).unwrap();
    for i in 1..=7 {
        let decision = if i == 2 { Decision::Deny } else { Decision::Allow };
        let mut entry = AuditEntry::new("agent", "wc", json!({ "n": i }), decision, "designation standard");
        entry.session = Some("s".into());
        log.append(entry).await.unwrap();
    }
    log.close().await.unwrap();
    path
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

fn first_bad(report: &VerifyReport) -> (u64, BadKind, String) {
    let bad = report.first_bad.as_ref().unwrap_or_else(|| panic!("expected a bad record: {report}"));
    (bad.line, bad.kind, bad.reason.clone())
}

#[tokio::test]
async fn a_signed_log_verifies_with_its_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys(dir.path());
    let path = signed_log(dir.path(), &private).await;
    let records: Vec<_> = audit::read_records(&path).unwrap().map(Result::unwrap).collect();
    let checkpoints: Vec<u64> = records.iter().filter(|r| r.checkpoint.is_some()).map(|r| r.seq).collect();
    assert_eq!(checkpoints, [4, 8, 10]);
    assert_eq!(records[3].tool, audit::CHECKPOINT_TOOL);

    let report = verify_signed(&path, &load_public_key(&public).unwrap(), false).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.signed_through, report.checkpoints, report.unsigned_tail), (Some(10), 3, 0));
    assert!(verify(&path).unwrap().is_intact());

    let out = common::airlock(dir.path())
        .args(["audit", "verify", "--audit"])
        .arg(&path)
        .arg("--public-key")
        .arg(&public)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("signed through seq 10 (3 checkpoints); 0 unsigned records"), "{stdout}");
}

#[tokio::test]
async fn an_edited_record_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys(dir.path());
    let path = signed_log(dir.path(), &private).await;
    let mut text = lines(&path);
    text[4] = text[4].replacen("\"tool\":\"wc\"", "\"tool\":\"rm\"", 1);
    write_lines(&path, &text);
    let report = verify_signed(&path, &load_public_key(&public).unwrap(), false).unwrap();
    let (line, kind, _) = first_bad(&report);
    assert_eq!((line, kind), (5, BadKind::Edited));

    let out = common::airlock(dir.path())
        .args(["audit", "verify", "--audit"])
        .arg(&path)
        .arg("--public-key")
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("broken at line 5 (seq 5): edited"));
}

#[tokio::test]
async fn a_truncated_signed_log_fails_naming_the_first_unsigned_record() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys(dir.path());
    let key = load_public_key(&public).unwrap();
    let path = signed_log(dir.path(), &private).await;
    // Cut within signed history: the checkpoints at 8 and 10 are gone, 5..7 unsigned.
    write_lines(&path, &lines(&path)[..7]);
    assert!(verify(&path).unwrap().is_intact(), "the chain alone cannot see a clean cut");
    let report = verify_signed(&path, &key, false).unwrap();
    let (line, kind, reason) = first_bad(&report);
    assert_eq!((line, kind), (5, BadKind::Unsigned), "{reason}");
    assert!(reason.contains("the last valid checkpoint is seq 4"), "{reason}");
    // A log still being written may have an unsigned tail: reported, not failed.
    let live = verify_signed(&path, &key, true).unwrap();
    assert!(live.is_intact(), "{live}");
    assert_eq!((live.signed_through, live.unsigned_tail), (Some(4), 3));
    // A torn last line is still named as such.
    let mut torn = fs::read(&path).unwrap();
    torn.extend_from_slice(b"{\"seq\":8,\"ti");
    fs::write(&path, torn).unwrap();
    assert_eq!(first_bad(&verify_signed(&path, &key, true).unwrap()).1, BadKind::Truncated);
}

/// Rewrites the log from line `from` (1-based) on with recomputed `prev` and `hash`.
fn rechain(lines: &mut [String], from: usize) {
    let mut prev = if from == 1 {
        audit::GENESIS_PREV.to_string()
    } else {
        serde_json::from_str::<Value>(&lines[from - 2]).unwrap()["hash"].as_str().unwrap().to_string()
    };
    let mut scratch = Vec::new();
    for line in &mut lines[from - 1..] {
        let mut record: Map<String, Value> = serde_json::from_str(line).unwrap();
        record.insert("prev".into(), Value::from(prev.as_str()));
        let hash = chain_hash(&prev, &record, &mut scratch);
        record.insert("hash".into(), Value::from(hash.as_str()));
        *line = serde_json::to_string(&record).unwrap();
        prev = hash;
    }
}

#[tokio::test]
async fn a_forged_rechained_history_fails_the_signature_check() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys(dir.path());
    let key = load_public_key(&public).unwrap();
    let path = signed_log(dir.path(), &private).await;
    let mut text = lines(&path);
    // The attacker turns the denial at seq 2 into an allow and recomputes every hash after.
    text[1] = text[1].replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
    rechain(&mut text, 2);
    write_lines(&path, &text);
    assert!(verify(&path).unwrap().is_intact(), "a re-chained log passes the chain check");
    let (line, kind, reason) = first_bad(&verify_signed(&path, &key, false).unwrap());
    assert_eq!((line, kind), (4, BadKind::BadSignature), "{reason}");
    assert!(reason.contains("follows seq 3"), "{reason}");

    // Also rewriting the checkpoint's claimed head does not help: the signature fails.
    let mut text = lines(&path);
    let mut checkpoint: Map<String, Value> = serde_json::from_str(&text[3]).unwrap();
    let prev = checkpoint["prev"].clone();
    checkpoint["checkpoint"]["head_hash"] = prev;
    text[3] = serde_json::to_string(&checkpoint).unwrap();
    rechain(&mut text, 4);
    write_lines(&path, &text);
    let (line, kind, reason) = first_bad(&verify_signed(&path, &key, false).unwrap());
    assert_eq!((line, kind), (4, BadKind::BadSignature), "{reason}");
    assert!(reason.contains("signature does not verify") && reason.contains("seq 1 to 3"), "{reason}");
}

#[tokio::test]
async fn records_appended_without_the_key_or_signed_by_another_key_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys(dir.path());
    let key = load_public_key(&public).unwrap();
    let path = signed_log(dir.path(), &private).await;
    // Appended without the key (an AuditLog with no signer chains onto it correctly).
    let log = AuditLog::open(&path, AuditConfig::default()).unwrap();
    log.append(AuditEntry::new("agent", "wc", json!({}), Decision::Allow, "r")).await.unwrap();
    log.close().await.unwrap();
    let (line, kind, _) = first_bad(&verify_signed(&path, &key, false).unwrap());
    assert_eq!((line, kind), (11, BadKind::Unsigned));

    let other = tempfile::tempdir().unwrap();
    let (_, other_public) = keys(other.path());
    let (line, kind, reason) =
        first_bad(&verify_signed(&path, &load_public_key(&other_public).unwrap(), true).unwrap());
    assert_eq!((line, kind), (4, BadKind::BadSignature));
    assert!(reason.contains("not by the public key given"), "{reason}");
}

/// Policies with a signed audit log (key outside them), the shipped callers and wc.
fn signed_policies(root: &Path, key: &Path, every: u64) -> PathBuf {
    let policies = root.join("policies");
    fs::create_dir_all(policies.join("tools")).unwrap();
    let shipped = common::shipped_policies();
    for file in ["designations.toml", "callers.toml"] {
        fs::copy(shipped.join(file), policies.join(file)).unwrap();
    }
    let modules = common::repo().join("guest-tools/wasm").canonicalize().unwrap();
    let wc = fs::read_to_string(shipped.join("tools/wc.toml"))
        .unwrap()
        .replace("../guest-tools/wasm/", &format!("{}/", modules.display()));
    fs::write(policies.join("tools/wc.toml"), wc).unwrap();
    fs::write(
        policies.join("audit.toml"),
        format!("fsync = \"off\"\nsigning_key = {:?}\ncheckpoint_every = {every}\n", key.display().to_string()),
    )
    .unwrap();
    policies
}

#[tokio::test]
async fn the_runtime_signs_its_log_and_guards_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let keydir = dir.path().join("keys");
    fs::create_dir_all(&keydir).unwrap();
    let (private, public) = keys(&keydir);
    let policies = signed_policies(dir.path(), &private, 2);
    let ws = dir.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    fs::write(ws.join("a.txt"), "x\n").unwrap();
    let audit_path = dir.path().join("state/audit.jsonl");
    let build = || {
        Runtime::builder(&policies)
            .audit_path(&audit_path)
            .cache_dir(Some(crate::budgets::shared_cache()))
            .approvals_dir(dir.path().join("state/approvals"))
    };
    let runtime = build().build().unwrap();
    for _ in 0..3 {
        let request = CallRequest::new("agent", "wc", &ws).arguments(json!({ "path": "a.txt" }));
        assert_eq!(runtime.call(request).await.unwrap().status, Status::Ok);
    }
    // A workspace holding the key is refused: a tool that could read it could forge history.
    let request = CallRequest::new("agent", "wc", &keydir).arguments(json!({ "path": "audit.key" }));
    match runtime.call(request).await.unwrap().status {
        Status::Denied { reason } => assert!(reason.contains("audit.key"), "{reason}"),
        other => panic!("a grant exposing the signing key ran: {other:?}"),
    }
    runtime.close().await.unwrap();
    let report = verify_signed(&audit_path, &load_public_key(&public).unwrap(), false).unwrap();
    assert!(report.is_intact(), "{report}");
    assert!(report.checkpoints >= 2, "{report}");

    // A key others may read is refused when the runtime starts.
    fs::set_permissions(&private, fs::Permissions::from_mode(0o644)).unwrap();
    let error = build().build().err().expect("a world-readable key must be refused").to_string();
    assert!(error.contains("chmod 600"), "{error}");
}

#[tokio::test]
async fn otlp_export_maps_records_to_log_records() {
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = keys(dir.path());
    let path = signed_log(dir.path(), &private).await;
    let out = dir.path().join("otlp.json");
    let status = common::airlock(dir.path())
        .args(["audit", "export", "--format", "otlp-json", "--audit"])
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let export: Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    let resource = &export["resourceLogs"][0];
    assert!(
        resource["resource"]["attributes"]
            .as_array()
            .unwrap()
            .contains(&json!({ "key": "service.name", "value": { "stringValue": "airlock" } }))
    );
    let scope = &resource["scopeLogs"][0];
    assert_eq!(scope["scope"]["name"], "airlock.audit");
    let logs = scope["logRecords"].as_array().unwrap();
    assert_eq!(logs.len(), 10);
    let attribute = |log: &Value, key: &str| -> Value {
        log["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key).map(|a| a["value"].clone()).unwrap()
    };
    let first = &logs[0];
    let nanos = first["timeUnixNano"].as_str().unwrap();
    assert!(nanos.len() >= 19 && nanos.bytes().all(|b| b.is_ascii_digit()), "{nanos}");
    assert_eq!(attribute(first, "airlock.seq"), json!({ "intValue": "1" }));
    assert_eq!(attribute(first, "airlock.tool"), json!({ "stringValue": "wc" }));
    assert_eq!(attribute(first, "airlock.session"), json!({ "stringValue": "s" }));
    assert_eq!((first["severityNumber"].as_u64(), first["severityText"].as_str()), (Some(9), Some("INFO")));
    assert!(first["body"]["stringValue"].as_str().unwrap().starts_with("#1 "));
    // The denied record is a warning; the checkpoint is marked.
    assert_eq!(logs[1]["severityNumber"], 13);
    assert_eq!(attribute(&logs[1], "airlock.decision"), json!({ "stringValue": "deny" }));
    assert_eq!(attribute(&logs[3], "airlock.checkpoint"), json!({ "boolValue": true }));
}

#[test]
fn a_stopped_service_leaves_a_fully_signed_log() {
    let dir = tempfile::tempdir().unwrap();
    let keydir = dir.path().join("keys");
    fs::create_dir_all(&keydir).unwrap();
    let private = keydir.join("audit.key");
    let keygen = common::airlock(dir.path()).args(["audit", "keygen", "--out"]).arg(&private).output().unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let public = audit::sign::pub_path(&private);
    assert!(String::from_utf8_lossy(&keygen.stdout).contains(&public.display().to_string()));
    // A second keygen never overwrites the key.
    let again = common::airlock(dir.path()).args(["audit", "keygen", "--out"]).arg(&private).output().unwrap();
    assert_eq!(again.status.code(), Some(125));

    // checkpoint_every is large: only the shutdown checkpoint signs the call's record.
    let policies = signed_policies(dir.path(), &private, 1000);
    let ws = dir.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    fs::write(ws.join("a.txt"), "x\n").unwrap();
    let audit_path = dir.path().join("state/audit.jsonl");
    let socket = dir.path().join("run/airlock.sock");
    let mut child = std::process::Command::new(common::airlock_bin())
        .arg("serve")
        .arg("--socket")
        .arg(&socket)
        .arg("--policies")
        .arg(&policies)
        .arg("--audit")
        .arg(&audit_path)
        .arg("--workspace")
        .arg(&ws)
        .env("XDG_CACHE_HOME", crate::budgets::shared_cache().parent().unwrap().join("sessions-signing-xdg-cache"))
        .env("XDG_STATE_HOME", dir.path().join("xdg-state"))
        .env_remove("AIRLOCK_SOCKET")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "airlock serve exited before listening");
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "airlock serve did not listen");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut client = airlock::service::client::Client::connect(&socket).unwrap();
    client.initialize(Value::Null).unwrap();
    let result = client.call("tools/call", json!({ "name": "wc", "arguments": { "path": "a.txt" } })).unwrap();
    assert_eq!(result["structuredContent"]["status"]["kind"], "ok");
    drop(client);
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());

    let report = verify_signed(&audit_path, &load_public_key(&public).unwrap(), false).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.records, report.signed_through, report.checkpoints), (2, Some(2), 1));
}
