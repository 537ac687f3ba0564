//! What goes into a call and what comes out: [`CallRequest`] and [`CallOutcome`].
//!
//! These are the types every way in (library, socket, CLI) shares. They carry data only;
//! deciding and running happen in [`crate::runtime`]. The outcome is meant to be a clear
//! success signal for an agent loop: `status` says in one word whether the tool ran and
//! succeeded, and why not otherwise.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::policy::OnTamper;

/// One tool call, as the caller asks for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRequest {
    /// Who asks: a caller name from `policies/callers.toml` (unknown names get the default
    /// designation, or are refused when there is none).
    pub caller: String,
    /// The tool's name, as in `policies/tools/NAME.toml`.
    pub tool: String,
    /// The tool's arguments: a JSON object checked against the tool's input schema.
    #[serde(default = "empty_object")]
    pub arguments: serde_json::Value,
    /// The directory the call works in; file grants are relative to it.
    pub workspace: PathBuf,
    /// The session the call belongs to (budgets and tripwires count per session).
    #[serde(default)]
    pub session: Option<String>,
    /// How long the caller will wait, in milliseconds, for a human to decide when the call
    /// needs approval; `None` or 0: return [`Status::NeedsApproval`] at once. The wait
    /// never outlasts the approval's expiry.
    #[serde(default)]
    pub approval_wait_ms: Option<u64>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl CallRequest {
    /// A request with no arguments and no session.
    pub fn new(caller: impl Into<String>, tool: impl Into<String>, workspace: impl Into<PathBuf>) -> Self {
        Self {
            caller: caller.into(),
            tool: tool.into(),
            arguments: empty_object(),
            workspace: workspace.into(),
            session: None,
            approval_wait_ms: None,
        }
    }

    /// Sets the arguments (a JSON object).
    pub fn arguments(mut self, arguments: serde_json::Value) -> Self {
        self.arguments = arguments;
        self
    }

    /// Sets the session id.
    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// Sets how long to wait for a human's decision when the call needs approval.
    pub fn approval_wait(mut self, wait: std::time::Duration) -> Self {
        self.approval_wait_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        self
    }
}

/// How a call ended, in one word (plus the detail that word needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Status {
    /// The tool ran and exited 0.
    Ok,
    /// The tool ran and exited non-zero: its own failure, not the sandbox's.
    ToolError,
    /// The call did not run: policy, validation, or set-up refused it.
    Denied { reason: String },
    /// The tool was stopped because it hit a limit.
    LimitExceeded { limit: Limit },
    /// The guest trapped (a wasm trap, or a process killed by a signal).
    Trapped { trap: String },
    /// The caller withdrew the call while it ran (MCP `notifications/cancelled`, a client
    /// that disconnected, a service shutting down): the tool was stopped.
    Cancelled,
    /// The call did not run: it needs a human's approval, and the pending approval
    /// `approval_id` waits for one until `expires_at` (RFC 3339 UTC). Once a human has
    /// approved it, the same call (same tool, arguments, workspace and caller) runs.
    NeedsApproval { approval_id: String, expires_at: String },
    /// A protected path (tests, evals, benchmarks: the evaluation criteria) changed, or
    /// could not be checked, whatever the tool's exit code: its result must not be trusted.
    /// `changed` lists the paths (`tests/test_x.py (modified)`); `ran` is false when the
    /// change was found before the tool started (made between calls, by another route:
    /// the call was not run). `on_tamper` is the caller's designation's rule for the
    /// calls after this one (`suspend`: a session layer refuses them).
    Tampered { changed: Vec<String>, ran: bool, on_tamper: OnTamper },
}

impl Status {
    /// The status's name as it appears in JSON and in the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::ToolError => "tool-error",
            Status::Denied { .. } => "denied",
            Status::LimitExceeded { .. } => "limit-exceeded",
            Status::Trapped { .. } => "trapped",
            Status::Cancelled => "cancelled",
            Status::NeedsApproval { .. } => "needs-approval",
            Status::Tampered { .. } => "tampered",
        }
    }
}

/// Which limit stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// Wall-clock time.
    Wall,
    /// Wasm fuel (the CPU bound of the wasm backend).
    Fuel,
    /// CPU time of a process.
    Cpu,
    /// Linear memory, or a process's memory.
    Memory,
    /// Table elements.
    Table,
    /// Instances, tables or memories per store.
    Instances,
    /// Bytes written to stdout or stderr.
    Output,
    /// Processes alive at once (a process jail's pids limit).
    Pids,
    /// The largest file a process may write (RLIMIT_FSIZE).
    FileSize,
}

impl Limit {
    /// The limit's name as it appears in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Wall => "wall",
            Limit::Fuel => "fuel",
            Limit::Cpu => "cpu",
            Limit::Memory => "memory",
            Limit::Table => "table",
            Limit::Instances => "instances",
            Limit::Output => "output",
            Limit::Pids => "pids",
            Limit::FileSize => "file-size",
        }
    }
}

/// A captured output stream: at most the grant's cap is kept; truncation is reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedOutput {
    /// The bytes kept (at most the cap), as written by the tool.
    #[serde(with = "lossy_text")]
    pub bytes: Vec<u8>,
    /// How many bytes the tool tried to write in all (kept + dropped).
    pub total_bytes: u64,
    /// True when bytes were dropped because the cap was reached.
    pub truncated: bool,
}

impl CapturedOutput {
    /// The kept bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Output bytes travel in JSON as text; invalid UTF-8 is replaced (the audit log keeps the
/// sha256 of the exact bytes).
mod lossy_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}

/// What a call used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Wall-clock time of the run, in microseconds.
    pub wall_us: u64,
    /// CPU time, in microseconds, where the backend measures it (process backend).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpu_us: Option<u64>,
    /// Fuel consumed (wasm backend).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fuel: Option<u64>,
    /// Peak memory in bytes (wasm: linear memories; process: cgroup or rusage peak).
    pub peak_memory_bytes: u64,
}

/// The result of one call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallOutcome {
    /// How the call ended.
    pub status: Status,
    /// The tool's exit code, when it ran to an exit.
    pub exit_code: Option<i32>,
    /// The signal that ended the tool's process, when one did (process backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// What the tool wrote to stdout (capped).
    pub stdout: CapturedOutput,
    /// What the tool wrote to stderr (capped).
    pub stderr: CapturedOutput,
    /// What the call used.
    pub usage: Usage,
    /// The sequence number of this call's audit record.
    pub audit_seq: u64,
    /// Isolation violations observed during the call (attempts the sandbox stopped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
}

impl CallOutcome {
    /// True when the tool ran and succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// `Some(rule)` when a protected path changed during (or before) this call: what the
    /// session layer must do next ([`OnTamper::Suspend`]: refuse the session's further
    /// calls).
    pub fn tampered(&self) -> Option<OnTamper> {
        match &self.status {
            Status::Tampered { on_tamper, .. } => Some(*on_tamper),
            _ => None,
        }
    }
}
