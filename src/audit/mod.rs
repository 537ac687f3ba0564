//! The audit log: append-only JSON Lines, one record per call (allowed or not), each
//! chained to the previous one by sha256, written with a stated durability.
//!
//! Owns: the record format, its canonical bytes and the chain hash ([`record`], whose
//! header is the format's specification), redaction of secrets (`redact`), the chained
//! writer (`writer`), verification (`verify`) and queries (`query`).
//! Must not: decide anything about a call; it records what the pipeline tells it in an
//! [`AuditEntry`]. It never drops a record silently: a record that cannot be written is an
//! error, and after one such error the log refuses every later record (fail closed), so
//! the pipeline can refuse calls it could not audit ([`AuditLog::check`]).
//!
//! The file is shared: several processes (a service and the CLI) may append to one log;
//! each batch is written under `flock(LOCK_EX)` and chained onto the newest record on disk.
//! Readers take `flock(LOCK_SH)` only long enough to read the file's length.

mod otlp;
mod query;
pub mod record;
mod redact;
mod scan;
pub mod sign;
mod verify;
mod writer;

pub use otlp::{OTLP_SCOPE, log_record, otlp_logs};
pub use query::{Filter, Records, parse_since, parse_since_at, query, read_records, tail};
pub use record::{
    AuditRecord, GENESIS_PREV, OutcomeSummary, StreamSummary, arguments_sha256, canonical_json, chain_hash,
    format_time, write_canonical,
};
pub use redact::{DEFAULT_REDACT_PATTERNS, Redactor};
pub use sign::{CHECKPOINT_TOOL, Checkpoint, CheckpointSigner, DEFAULT_CHECKPOINT_EVERY, keygen, load_public_key};
pub use verify::{BadKind, BadRecord, VerifyReport, verify, verify_signed};
pub use writer::{AuditLog, AuditStats};

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::{outcome::CallOutcome, policy::Decision};

/// Errors of the audit log. A call whose record cannot be written is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "cannot open audit log {path}: {source}; check that the path is a file you may \
         read and write (the log is created 0600, with its parent directories)"
    )]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot create the directory {path} for the audit log: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot start the audit writer thread for {path}: {source}")]
    Spawn { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot lock audit log {path}: {source}; another process may hold it, or the file \
         system does not support flock"
    )]
    Lock { path: PathBuf, source: std::io::Error },
    #[error("cannot read audit log {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "audit log {path} does not end with a valid record of its chain (line {line}: \
         {reason}); refusing to append to it: run `airlock audit verify --audit {path}` to find the \
         first bad record, and move the damaged log aside"
    )]
    CorruptTail { path: PathBuf, line: u64, reason: String },
    #[error(
        "audit log {path} shrank from {expected} to {found} bytes while open: records were \
         removed by something else; refusing to append: run `airlock audit verify --audit {path}`"
    )]
    Shrunk { path: PathBuf, expected: u64, found: u64 },
    #[error(
        "cannot cut the torn last line off audit log {path}: {source}; check that the file \
         is writable"
    )]
    CutTornTail { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot write to audit log {path}: {source}; the record was not written and the log \
         accepts no more records (fail closed): free disk space or fix the file, run \
         `airlock audit verify --audit {path}`, then restart"
    )]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot make audit log {path} durable (fdatasync): {source}; the record may not \
         have reached the disk, it was not acknowledged and the log accepts no more records \
         (fail closed): check the disk, run `airlock audit verify --audit {path}`, then restart"
    )]
    Sync { path: PathBuf, source: std::io::Error },
    #[error(
        "audit log {path} accepts no more records after an earlier failure ({cause}); \
         calls cannot be audited, so none run: fix the cause, run `airlock audit verify --audit \
         {path}`, then restart"
    )]
    Poisoned { path: PathBuf, cause: String },
    #[error(
        "the audit writer for {path} has stopped (its thread exited); calls cannot be \
         audited, so none run: restart airlock"
    )]
    WriterGone { path: PathBuf },
    #[error("cannot encode an audit record as JSON: {source}")]
    Encode { source: serde_json::Error },
    #[error(
        "audit log {path}, line {line}: not a readable audit record ({reason}); run \
         `airlock audit verify --audit {path}` to see whether the log was damaged"
    )]
    BadLine { path: PathBuf, line: u64, reason: String },
    #[error("redaction pattern {pattern:?} is not a valid regex: {source}")]
    BadRedactPattern { pattern: String, source: Box<regex::Error> },
    #[error("audit signing key {path}: {reason}")]
    SigningKey { path: PathBuf, reason: String },
    #[error("cannot read audit settings {path}: {reason}")]
    Settings { path: PathBuf, reason: String },
    #[error(
        "cannot understand the time {input:?}: {reason}; give an RFC 3339 time \
         (2026-11-27T10:00:00Z) or an age such as 10m, 2h, 3d"
    )]
    BadSince { input: String, reason: String },
}

/// The audit module's result alias.
pub type Result<T, E = AuditError> = std::result::Result<T, E>;

/// When records reach the disk. Every record states the mode it was written with
/// (`durability`), so a record written without fsync says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Fsync {
    /// fdatasync after every record before `append` returns.
    Always,
    /// Group commit: the records queued when the writer wakes share one write and one
    /// fdatasync; `append` returns only once its record is durable.
    #[default]
    Batch,
    /// Left to the OS (development only); every record says so.
    Off,
}

impl Fsync {
    /// The mode's name as in `audit.toml` and in records (`always`, `batch`, `off`).
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Batch => "batch",
            Fsync::Off => "off",
        }
    }
}

/// Who approved a call that needed approval (recorded as the record's `approval`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// The approval's id.
    pub id: String,
    /// Who decided.
    pub approver: String,
    /// When they decided, RFC 3339 UTC (see [`format_time`]).
    pub time: String,
}

/// What the pipeline tells the log about one call. A plain data struct: the runtime fills
/// it, the log redacts, summarises, numbers and chains it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub caller: String,
    pub designation: Option<String>,
    pub session: Option<String>,
    pub tool: String,
    pub tool_sha256: Option<String>,
    pub policy_digest: Option<String>,
    /// The arguments exactly as given; the log records them redacted, plus the sha256 of
    /// their canonical JSON unredacted.
    pub arguments: serde_json::Value,
    /// The grant's environment; values whose names match a redaction pattern are redacted.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub workspace: Option<PathBuf>,
    pub decision: Decision,
    /// The rule that made the decision.
    pub rule: String,
    pub reasons: Vec<String>,
    /// Who approved the call, when it needed approval and got it.
    #[serde(default)]
    pub approval: Option<ApprovalRecord>,
    /// The backend that ran the call (`wasm`, `jail`), if it ran.
    pub backend: Option<String>,
    /// The isolation layers that were active for the call (process jail: `user-namespace`,
    /// `landlock`, `seccomp`, ...); empty when it did not run in the jail.
    #[serde(default)]
    pub isolation: Vec<String>,
    /// How the call ended. The log keeps a summary (status, exit code, output sizes and
    /// digests, usage), never the output text.
    pub outcome: Option<CallOutcome>,
    /// Isolation violations; merged with `outcome.violations` (duplicates dropped).
    pub violations: Vec<String>,
    /// Record the arguments unredacted (the caller's designation says
    /// `audit_arguments = "full"`).
    #[serde(default)]
    pub full_arguments: bool,
}

impl AuditEntry {
    /// An entry with the given essentials and nothing else: no designation, session,
    /// digests, env, workspace, reasons, approval, backend, isolation layers, outcome or
    /// violations.
    pub fn new(
        caller: impl Into<String>,
        tool: impl Into<String>,
        arguments: serde_json::Value,
        decision: Decision,
        rule: impl Into<String>,
    ) -> AuditEntry {
        AuditEntry {
            caller: caller.into(),
            designation: None,
            session: None,
            tool: tool.into(),
            tool_sha256: None,
            policy_digest: None,
            arguments,
            env: BTreeMap::new(),
            workspace: None,
            decision,
            rule: rule.into(),
            reasons: Vec::new(),
            approval: None,
            backend: None,
            isolation: Vec::new(),
            outcome: None,
            violations: Vec::new(),
            full_arguments: false,
        }
    }
}

/// How the log is written: durability and redaction.
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    /// When records reach the disk.
    pub fsync: Fsync,
    /// Which argument keys and env names are redacted.
    pub redact: Redactor,
}
