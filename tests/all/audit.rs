//! The audit log: chain, tamper detection, redaction, durability modes, recovery, several
//! writers, fail-closed writes, queries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use airlock::{
    CallOutcome, CapturedOutput, Decision, Status, Usage,
    audit::{
        AuditConfig, AuditEntry, AuditError, AuditLog, AuditRecord, BadKind, Filter, Fsync, GENESIS_PREV, Redactor,
        VerifyReport, arguments_sha256, parse_since, query, read_records, tail, verify,
    },
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn config(fsync: Fsync) -> AuditConfig {
    AuditConfig { fsync, redact: Redactor::default() }
}

fn outcome(status: Status, exit_code: Option<i32>, stdout: &[u8]) -> CallOutcome {
    CallOutcome {
        status,
        exit_code,
        signal: None,
        stdout: CapturedOutput { bytes: stdout.to_vec(), total_bytes: stdout.len() as u64 + 10, truncated: true },
        stderr: CapturedOutput::default(),
        usage: Usage { wall_us: 1200, cpu_us: None, fuel: Some(42), peak_memory_bytes: 65536 },
        audit_seq: 0,
        violations: vec!["wrote to protected path tests/x".into()],
    }
}

/// Entry `i`: tool `echo` (odd) or `csv-dedupe` (even), caller `agent` or `ci`, allowed and
/// ok, except every third is denied.
fn entry(i: u64) -> AuditEntry {
    let tool = if i % 2 == 1 { "echo" } else { "csv-dedupe" };
    let caller = if i % 2 == 1 { "agent" } else { "ci" };
    let denied = i.is_multiple_of(3);
    let decision = if denied { Decision::Deny } else { Decision::Allow };
    let mut e = AuditEntry::new(caller, tool, json!({"n": i, "text": "hello"}), decision, "designation standard");
    e.session = Some("s1".into());
    e.designation = Some("standard".into());
    e.workspace = Some(PathBuf::from("/tmp/ws"));
    e.backend = (!denied).then(|| "wasm".to_owned());
    e.outcome = Some(if denied {
        outcome(Status::Denied { reason: "category secrets is denied".into() }, None, b"")
    } else {
        outcome(Status::Ok, Some(0), format!("SECRET-OUTPUT-{i}\n").as_bytes())
    });
    e
}

async fn write_log(path: &Path, n: u64, fsync: Fsync) {
    let log = AuditLog::open(path, config(fsync)).unwrap();
    for i in 1..=n {
        assert_eq!(log.append(entry(i)).await.unwrap(), i);
    }
    log.close().await.unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

/// A tampered copy of a 6-record log: `tamper` edits its lines.
async fn tampered(dir: &Path, name: &str, tamper: impl FnOnce(&mut Vec<String>)) -> VerifyReport {
    let path = dir.join(format!("{name}.jsonl"));
    write_log(&path, 6, Fsync::Off).await;
    assert!(verify(&path).unwrap().is_intact());
    let mut ls = lines(&path);
    tamper(&mut ls);
    write_lines(&path, &ls);
    verify(&path).unwrap()
}

fn first_bad(report: &VerifyReport) -> (u64, Option<u64>, BadKind) {
    let bad = report.first_bad.as_ref().unwrap_or_else(|| panic!("expected a bad record: {report}"));
    (bad.line, bad.seq, bad.kind)
}

#[tokio::test]
async fn chain_is_written_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/audit.jsonl");
    write_log(&path, 5, Fsync::Batch).await;

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    let report = verify(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 5);
    let records: Vec<AuditRecord> = read_records(&path).unwrap().map(Result::unwrap).collect();
    assert_eq!(report.last_hash, records[4].hash);
    assert_eq!(records[0].prev, GENESIS_PREV);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.durability, Fsync::Batch);
        assert!(r.note.is_none());
        assert!(r.time.ends_with('Z') && r.time.len() == "2026-11-27T10:00:00.000000Z".len(), "{}", r.time);
        if i > 0 {
            assert_eq!(r.prev, records[i - 1].hash);
        }
    }
    // The outcome is summarised: sizes and digest, never the text.
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains("SECRET-OUTPUT"), "output text leaked into the log");
    let out = records[0].outcome.as_ref().unwrap();
    assert_eq!(out.status, Status::Ok);
    assert_eq!(out.stdout.kept, 16);
    assert_eq!(out.stdout.bytes, 26);
    assert!(out.stdout.truncated);
    assert_eq!(out.stdout.sha256, hex::encode(Sha256::digest(b"SECRET-OUTPUT-1\n")));
    assert_eq!(out.usage.fuel, Some(42));
    assert_eq!(records[0].violations, ["wrote to protected path tests/x"]);
    assert_eq!(records[2].decision, Decision::Deny);
    assert_eq!(records[0].workspace.as_deref(), Some("/tmp/ws"));
    // Field order on disk is the documented one.
    let first: serde_json::Map<String, Value> = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(keys.first(), Some(&"seq"));
    assert_eq!(&keys[keys.len() - 2..], ["prev", "hash"]);
}

#[tokio::test]
async fn reopening_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 2, Fsync::Always).await;
    let log = AuditLog::open(&path, config(Fsync::Always)).unwrap();
    assert_eq!(log.append(entry(3)).await.unwrap(), 3);
    drop(log);
    let report = verify(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 3);
}

#[tokio::test]
async fn verify_names_an_edited_record() {
    let dir = tempfile::tempdir().unwrap();
    let report = tampered(dir.path(), "edit", |ls| {
        let mut v: serde_json::Map<String, Value> = serde_json::from_str(&ls[2]).unwrap();
        v.insert("tool".into(), json!("rm-rf"));
        ls[2] = serde_json::to_string(&v).unwrap();
    })
    .await;
    assert_eq!(first_bad(&report), (3, Some(3), BadKind::Edited));
    assert_eq!(report.records, 2);
    let reason = &report.first_bad.as_ref().unwrap().reason;
    assert!(reason.contains("line 3") && reason.contains("seq 3"), "{reason}");
}

#[tokio::test]
async fn verify_names_a_deleted_middle_record() {
    let dir = tempfile::tempdir().unwrap();
    let report = tampered(dir.path(), "delete-middle", |ls| {
        ls.remove(2);
    })
    .await;
    assert_eq!(first_bad(&report), (3, Some(4), BadKind::Deleted));
    assert!(report.to_string().contains("seq 3 is missing"), "{report}");
}

#[tokio::test]
async fn verify_names_a_deleted_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let report = tampered(dir.path(), "delete-first", |ls| {
        ls.remove(0);
    })
    .await;
    assert_eq!(first_bad(&report), (1, Some(2), BadKind::BadGenesis));
    assert_eq!(report.records, 0);
    assert!(report.to_string().contains("deleted"), "{report}");
}

#[tokio::test]
async fn verify_names_reordered_records() {
    let dir = tempfile::tempdir().unwrap();
    let report = tampered(dir.path(), "reorder", |ls| ls.swap(1, 2)).await;
    assert_eq!(first_bad(&report), (2, Some(3), BadKind::Reordered));
    let report = tampered(dir.path(), "reorder-first", |ls| ls.swap(0, 1)).await;
    assert_eq!(first_bad(&report), (1, Some(2), BadKind::Reordered));
}

#[tokio::test]
async fn verify_names_a_duplicated_record() {
    let dir = tempfile::tempdir().unwrap();
    let report = tampered(dir.path(), "dup", |ls| {
        let copy = ls[1].clone();
        ls.insert(2, copy);
    })
    .await;
    assert_eq!(first_bad(&report), (3, Some(2), BadKind::Duplicated));
}

#[tokio::test]
async fn verify_names_a_truncated_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trunc.jsonl");
    write_log(&path, 6, Fsync::Off).await;
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
    let report = verify(&path).unwrap();
    assert_eq!(first_bad(&report), (6, Some(6), BadKind::Truncated));
    assert_eq!(report.records, 5);
}

#[tokio::test]
async fn verify_names_appended_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let report = tampered(dir.path(), "garbage", |ls| ls.push("this is not json".into())).await;
    assert_eq!(first_bad(&report), (7, None, BadKind::NotJson));
    assert_eq!(report.records, 6);
    let report = tampered(dir.path(), "object", |ls| ls.push("{\"seq\": 7}".into())).await;
    assert_eq!(first_bad(&report), (7, Some(7), BadKind::NotJson));
    // Garbage without a newline is a partial last line.
    let path = dir.path().join("garbage-nonl.jsonl");
    write_log(&path, 2, Fsync::Off).await;
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(b"garbage");
    fs::write(&path, bytes).unwrap();
    assert_eq!(first_bad(&verify(&path).unwrap()), (3, None, BadKind::Truncated));
}

#[tokio::test]
async fn verify_names_a_record_swapped_in_from_another_log() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.jsonl");
    write_log(&other, 6, Fsync::Off).await;
    let foreign = lines(&other)[3].clone();
    let report = tampered(dir.path(), "swap", |ls| ls[3] = foreign).await;
    assert_eq!(first_bad(&report), (4, Some(4), BadKind::Inserted));
    assert_eq!(report.records, 3);
    // The foreign first record does not start this log's chain... it starts its own, so a
    // foreign record 1 is only caught at the next link.
    let foreign_first = lines(&other)[0].clone();
    let report = tampered(dir.path(), "swap-first", |ls| ls[0] = foreign_first).await;
    assert_eq!(first_bad(&report), (2, Some(2), BadKind::Inserted));
}

#[tokio::test]
async fn verify_an_empty_or_missing_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.jsonl");
    fs::write(&path, "").unwrap();
    let report = verify(&path).unwrap();
    assert!(report.is_intact());
    assert_eq!(report.records, 0);
    assert!(matches!(verify(&dir.path().join("missing")), Err(AuditError::Read { .. })));
}

#[tokio::test]
async fn redaction_hides_values_and_keeps_digests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, config(Fsync::Batch)).unwrap();
    let arguments = json!({"input": "a.csv", "auth": {"user": "bob", "nested": [{"api_key": "sk-live-123"}]}, "opts": [{"client_secret": "hunter2"}]});
    let mut e = AuditEntry::new("agent", "fetch", arguments.clone(), Decision::Allow, "r");
    e.env = BTreeMap::from([("LANG".to_owned(), "C".to_owned()), ("GITHUB_TOKEN".to_owned(), "ghp_abcdef".to_owned())]);
    log.append(e).await.unwrap();
    log.close().await.unwrap();

    let text = fs::read_to_string(&path).unwrap();
    for secret in ["sk-live-123", "hunter2", "ghp_abcdef", "bob"] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    let r = &tail(&path, 1).unwrap()[0];
    assert_eq!(r.arguments["input"], "a.csv");
    let digest =
        |v: &Value| format!("[redacted sha256:{}]", hex::encode(Sha256::digest(airlock::audit::canonical_json(v))));
    assert_eq!(r.arguments["auth"], digest(&arguments["auth"]));
    assert_eq!(r.arguments["opts"][0]["client_secret"], digest(&json!("hunter2")));
    assert_eq!(r.env["LANG"], "C");
    assert_eq!(r.env["GITHUB_TOKEN"], digest(&json!("ghp_abcdef")));
    // The digest of the arguments is over the unredacted arguments.
    assert_eq!(r.arguments_sha256, arguments_sha256(&arguments));
    assert!(verify(&path).unwrap().is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_mode_gives_64_concurrent_appenders_consecutive_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = Arc::new(AuditLog::open(&path, config(Fsync::Batch)).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let log = log.clone();
        tasks.spawn(async move { log.append(entry(i + 1)).await.unwrap() });
    }
    let mut seqs: Vec<u64> = tasks.join_all().await;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=64).collect::<Vec<_>>());
    let stats = log.stats();
    assert_eq!(stats.records, 64);
    assert!(stats.syncs <= stats.writes && stats.writes <= 64, "{stats:?}");
    let report = verify(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_mode_groups_queued_records_into_one_write_and_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = Arc::new(AuditLog::open(&path, config(Fsync::Batch)).unwrap());
    // Hold the writers' lock, as another process would, while 64 appends queue up.
    let holder = fs::File::open(&path).unwrap();
    holder.lock().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let log = log.clone();
        tasks.spawn(async move { log.append(entry(i + 1)).await.unwrap() });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log.stats().records, 0, "nothing may be acknowledged while the lock is held");
    holder.unlock().unwrap();
    let seqs = tasks.join_all().await;
    assert_eq!(seqs.len(), 64);
    let stats = log.stats();
    // The first append woke the writer, which then waited for the lock; the other 63
    // queued meanwhile and went in the next batch.
    assert!(stats.writes <= 3, "{stats:?}");
    assert_eq!(stats.syncs, stats.writes);
    assert!(verify(&path).unwrap().is_intact());
}

#[tokio::test]
async fn always_mode_syncs_every_record_and_off_mode_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let always = dir.path().join("always.jsonl");
    let log = AuditLog::open(&always, config(Fsync::Always)).unwrap();
    for i in 1..=3 {
        log.append(entry(i)).await.unwrap();
    }
    assert_eq!(log.stats(), airlock::audit::AuditStats { records: 3, writes: 3, syncs: 3 });
    log.close().await.unwrap();
    assert!(read_records(&always).unwrap().all(|r| r.unwrap().durability == Fsync::Always));

    let off = dir.path().join("off.jsonl");
    let log = AuditLog::open(&off, config(Fsync::Off)).unwrap();
    for i in 1..=3 {
        log.append(entry(i)).await.unwrap();
    }
    assert_eq!(log.stats().syncs, 0);
    drop(log);
    let records: Vec<AuditRecord> = read_records(&off).unwrap().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.durability == Fsync::Off));
    assert!(fs::read_to_string(&off).unwrap().contains("\"durability\":\"off\""));
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_on_reopen_and_noted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 3, Fsync::Batch).await;
    let intact_len = fs::metadata(&path).unwrap().len();
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"seq":4,"time":"2026-"#);
    fs::write(&path, bytes).unwrap();
    assert_eq!(first_bad(&verify(&path).unwrap()).2, BadKind::Truncated);

    let log = AuditLog::open(&path, config(Fsync::Batch)).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), intact_len, "the torn line is cut off at open");
    assert_eq!(log.append(entry(4)).await.unwrap(), 4);
    assert_eq!(log.append(entry(5)).await.unwrap(), 5);
    log.close().await.unwrap();

    let report = verify(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    let records = tail(&path, 2).unwrap();
    let note = records[0].note.as_deref().unwrap_or_default();
    assert!(note.contains("torn") && note.contains("22 bytes"), "{note}");
    assert!(records[1].note.is_none(), "only the next record carries the note");
}

#[tokio::test]
async fn a_corrupted_last_record_refuses_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 3, Fsync::Off).await;
    let mut ls = lines(&path);
    ls[2] = ls[2].replace("\"caller\":\"agent\"", "\"caller\":\"admin\"");
    write_lines(&path, &ls);
    let err = AuditLog::open(&path, config(Fsync::Batch)).unwrap_err();
    assert!(matches!(err, AuditError::CorruptTail { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("airlock audit verify"), "{err}");

    // Not JSON at all.
    ls[2] = "{not json".into();
    write_lines(&path, &ls);
    assert!(matches!(AuditLog::open(&path, config(Fsync::Batch)), Err(AuditError::CorruptTail { line: 3, .. })));

    // A valid record that does not follow the one before it (line 2 deleted).
    let path = dir.path().join("gap.jsonl");
    write_log(&path, 3, Fsync::Off).await;
    let mut ls = lines(&path);
    ls.remove(1);
    write_lines(&path, &ls);
    assert!(matches!(AuditLog::open(&path, config(Fsync::Batch)), Err(AuditError::CorruptTail { line: 2, .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_on_one_file_interleave_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // Two logs on one file stand for two processes: separate open files, flock between them.
    let a = Arc::new(AuditLog::open(&path, config(Fsync::Batch)).unwrap());
    let b = Arc::new(AuditLog::open(&path, config(Fsync::Off)).unwrap());
    assert_eq!(a.append(entry(1)).await.unwrap(), 1);
    assert_eq!(b.append(entry(2)).await.unwrap(), 2);
    assert_eq!(a.append(entry(3)).await.unwrap(), 3);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { log.append(entry(i)).await.unwrap() });
    }
    let mut seqs = tasks.join_all().await;
    seqs.sort_unstable();
    assert_eq!(seqs, (4..=43).collect::<Vec<_>>());
    drop((a, b));
    let report = verify(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 43);
}

#[tokio::test]
async fn a_failed_write_poisons_the_log() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let log = AuditLog::open(Path::new("/dev/full"), config(Fsync::Batch)).unwrap();
    log.check().unwrap();
    let err = log.append(entry(1)).await.unwrap_err();
    assert!(matches!(&err, AuditError::Write { source, .. } if source.raw_os_error() == Some(libc::ENOSPC)), "{err}");
    assert!(err.to_string().contains("fail closed"), "{err}");
    let again = log.append(entry(2)).await.unwrap_err();
    assert!(matches!(again, AuditError::Poisoned { .. }), "{again}");
    assert!(matches!(log.check(), Err(AuditError::Poisoned { .. })));
    assert!(log.flush().await.is_err());
}

#[tokio::test]
async fn a_log_cut_short_behind_the_writers_back_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, config(Fsync::Off)).unwrap();
    log.append(entry(1)).await.unwrap();
    log.append(entry(2)).await.unwrap();
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(10).unwrap();
    let err = log.append(entry(3)).await.unwrap_err();
    assert!(matches!(err, AuditError::Shrunk { .. }), "{err}");
    assert!(log.check().is_err());
}

#[tokio::test]
async fn query_filters_and_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let before = SystemTime::now() - Duration::from_secs(1);
    write_log(&path, 9, Fsync::Off).await;

    let seqs = |f: &Filter| query(&path, f).unwrap().iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&Filter::default()), (1..=9).collect::<Vec<_>>());
    assert_eq!(seqs(&Filter { tool: Some("echo".into()), ..Filter::default() }), [1, 3, 5, 7, 9]);
    assert_eq!(seqs(&Filter { caller: Some("ci".into()), ..Filter::default() }), [2, 4, 6, 8]);
    assert_eq!(seqs(&Filter { decision: Some(Decision::Deny), ..Filter::default() }), [3, 6, 9]);
    assert_eq!(seqs(&Filter { status: Some("denied".into()), ..Filter::default() }), [3, 6, 9]);
    assert_eq!(seqs(&Filter { status: Some("ok".into()), tool: Some("echo".into()), ..Filter::default() }), [1, 5, 7]);
    assert_eq!(seqs(&Filter { since: Some(before), ..Filter::default() }).len(), 9);
    assert_eq!(seqs(&Filter { since: Some(parse_since("1h").unwrap()), ..Filter::default() }).len(), 9);
    let future = SystemTime::now() + Duration::from_secs(3600);
    assert!(seqs(&Filter { since: Some(future), ..Filter::default() }).is_empty());
    assert!(
        seqs(&Filter { since: Some(parse_since("2999-01-01T00:00:00Z").unwrap()), ..Filter::default() }).is_empty()
    );

    let last = tail(&path, 3).unwrap();
    assert_eq!(last.iter().map(|r| r.seq).collect::<Vec<_>>(), [7, 8, 9]);
    assert_eq!(tail(&path, 100).unwrap().len(), 9);
    assert!(tail(&path, 0).unwrap().is_empty());
    // The summary line names the record.
    let line = last[2].to_string();
    assert!(line.starts_with("#9 ") && line.contains("echo") && line.contains("deny"), "{line}");
}

#[tokio::test]
async fn query_reports_a_line_that_is_not_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 2, Fsync::Off).await;
    let mut ls = lines(&path);
    ls.push("oops".into());
    write_lines(&path, &ls);
    assert!(matches!(query(&path, &Filter::default()), Err(AuditError::BadLine { line: 3, .. })));
    assert!(matches!(tail(&path, 2), Err(AuditError::BadLine { line: 3, .. })));
}
