//! One audit record: its fields, its canonical bytes and its chain hash.
//!
//! Owns: the record's field list and order, the summary kept of a call's outcome, the
//! canonical JSON encoding and the hash that chains a record to the one before it.
//! Must not: touch files (see `writer`, `verify`, `query`) or decide what is redacted
//! (see `redact`).
//!
//! # Record
//!
//! One JSON object per line, fields in this order: `seq` (1, 2, ...), `time` (RFC 3339 UTC
//! with microseconds), `caller`, `designation`, `session`, `tool`, `tool_sha256`,
//! `policy_digest`, `arguments` (redacted), `arguments_sha256`, `env` (redacted),
//! `workspace`, `decision`, `rule`, `reasons`, `approval`, `backend`, `isolation` (the
//! process jail's active layers; `[]` otherwise, absent in records written before it
//! existed), `outcome`, `violations`, `durability`, `note`, `prev`, `hash`. Absent values
//! are `null`. The order is for people reading the file; the hash does not depend on it.
//!
//! # Canonical form
//!
//! `canonical(v)` is the JSON text of the value `v` with no insignificant whitespace:
//! - `null`, `true`, `false` as is;
//! - numbers as serde_json 1.x writes them: integers in decimal, floats in the shortest
//!   form that reads back to the same `f64` (`1.0`, `0.1`, `1e30`);
//! - strings in UTF-8 between `"`: `"` and `\` are escaped as `\"` and `\\`; U+0008,
//!   U+0009, U+000A, U+000C, U+000D as `\b`, `\t`, `\n`, `\f`, `\r`; the other characters
//!   below U+0020 as `\u00xx` (lowercase hex); everything else (`/`, non-ASCII, U+007F)
//!   as is;
//! - arrays as `[` elements joined by `,` `]`;
//! - objects as `{` `"key":value` pairs joined by `,` `}`, keys sorted by their UTF-8
//!   bytes, ascending, at every depth.
//!
//! # Chain
//!
//! `hash = hex(sha256(prev || canonical(record without its "hash" key)))`, where `prev` is
//! the 64 ASCII bytes of the previous record's `hash` (lowercase hex), and
//! [`GENESIS_PREV`] (64 zeros) for the first record. The record's own `prev` field holds
//! the same value, so the hash covers it too.
//!
//! `arguments_sha256` is `hex(sha256(canonical(arguments)))` of the arguments before
//! redaction, so an approval bound to exact arguments can be matched to the record.

use std::{collections::BTreeMap, fmt, time::SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    ApprovalRecord, AuditEntry, AuditError, Fsync, Redactor, Result,
    sign::{CHECKPOINT_TOOL, Checkpoint},
};
use crate::{
    outcome::{CallOutcome, CapturedOutput, Status, Usage},
    policy::Decision,
};

/// The `prev` of the first record of a log: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One record of the log as read back (see the module header for the format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    /// RFC 3339 UTC with microseconds.
    pub time: String,
    pub caller: String,
    pub designation: Option<String>,
    pub session: Option<String>,
    pub tool: String,
    pub tool_sha256: Option<String>,
    pub policy_digest: Option<String>,
    /// The arguments, secrets redacted.
    pub arguments: Value,
    /// sha256 of the canonical JSON of the arguments before redaction.
    pub arguments_sha256: String,
    /// The grant's environment, secret values redacted.
    pub env: BTreeMap<String, String>,
    pub workspace: Option<String>,
    pub decision: Decision,
    pub rule: String,
    pub reasons: Vec<String>,
    pub approval: Option<ApprovalRecord>,
    pub backend: Option<String>,
    /// The isolation layers that were active (process jail).
    #[serde(default)]
    pub isolation: Vec<String>,
    pub outcome: Option<OutcomeSummary>,
    pub violations: Vec<String>,
    /// Set on a checkpoint record only (see [`super::sign`]); absent from every other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// The fsync mode the record was written with.
    pub durability: Fsync,
    /// What the writer noticed when writing this record (e.g. a torn tail it cut off).
    pub note: Option<String>,
    pub prev: String,
    pub hash: String,
}

impl AuditRecord {
    /// The record's time, if it parses.
    pub fn timestamp(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(&self.time).ok()
    }

    /// The outcome's status name (`ok`, `tool-error`, `denied`, ...), if the call has an
    /// outcome.
    pub fn status(&self) -> Option<&'static str> {
        self.outcome.as_ref().map(|o| o.status.name())
    }
}

impl fmt::Display for AuditRecord {
    /// One line for people: `seq time caller tool decision status [exit N] [rule]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decision = match self.decision {
            Decision::Allow => "allow",
            Decision::NeedsApproval => "needs-approval",
            Decision::Deny => "deny",
        };
        write!(
            f,
            "#{} {} {} {} {} {}",
            self.seq,
            self.time,
            self.caller,
            self.tool,
            decision,
            self.status().unwrap_or("-")
        )?;
        if let Some(code) = self.outcome.as_ref().and_then(|o| o.exit_code) {
            write!(f, " exit={code}")?;
        }
        write!(f, " rule={}", self.rule)?;
        if !self.violations.is_empty() {
            write!(f, " violations={}", self.violations.len())?;
        }
        Ok(())
    }
}

/// What the log keeps of a call's outcome: never the output text itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeSummary {
    pub status: Status,
    pub exit_code: Option<i32>,
    /// The signal that ended the process, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub stdout: StreamSummary,
    pub stderr: StreamSummary,
    pub usage: Usage,
}

impl OutcomeSummary {
    /// Summarises an outcome.
    pub fn of(outcome: &CallOutcome) -> OutcomeSummary {
        OutcomeSummary {
            status: outcome.status.clone(),
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            stdout: StreamSummary::of(&outcome.stdout),
            stderr: StreamSummary::of(&outcome.stderr),
            usage: outcome.usage.clone(),
        }
    }
}

/// Sizes and digest of one captured output stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// Bytes the tool wrote in all (kept + dropped).
    pub bytes: u64,
    /// Bytes kept.
    pub kept: u64,
    /// sha256 of the kept bytes, exactly as written.
    pub sha256: String,
    /// True when bytes were dropped at the cap.
    pub truncated: bool,
}

impl StreamSummary {
    /// Summarises one stream.
    pub fn of(output: &CapturedOutput) -> StreamSummary {
        StreamSummary {
            bytes: output.total_bytes,
            kept: output.bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&output.bytes)),
            truncated: output.truncated,
        }
    }
}

/// RFC 3339 UTC with microseconds, the format of every time in the log.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// Appends the canonical JSON of `value` (see the module header) to `out`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // serde_json's own number format; writing to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(key, out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
    }
}

/// A JSON string exactly as serde_json escapes it.
fn write_json_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaping is the documented one; writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The canonical JSON of `value` (see the module header).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

/// `hex(sha256(canonical(arguments)))`: the digest of the exact arguments of a call.
pub fn arguments_sha256(arguments: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(arguments)))
}

/// The chain hash of a record object: `hex(sha256(prev || canonical(record - "hash")))`.
/// `record` may contain a `hash` key; it is left out.
pub fn chain_hash(prev: &str, record: &Map<String, Value>, scratch: &mut Vec<u8>) -> String {
    scratch.clear();
    scratch.extend_from_slice(prev.as_bytes());
    let mut keys: Vec<&String> = record.keys().filter(|k| k.as_str() != "hash").collect();
    keys.sort_unstable();
    scratch.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            scratch.push(b',');
        }
        write_json_string(key, scratch);
        scratch.push(b':');
        if let Some(v) = record.get(key) {
            write_canonical(v, scratch);
        }
    }
    scratch.push(b'}');
    hex::encode(Sha256::digest(scratch.as_slice()))
}

/// A record built from an entry, redacted and summarised, waiting for the writer to give
/// it a `seq`, `time`, `note` and `prev` and seal it with its `hash`. Built on the
/// appending task so the writer thread only numbers, hashes and writes.
#[derive(Debug)]
pub(crate) struct PreparedRecord {
    /// The record's fields in file order, with placeholders for the writer's four.
    fields: Map<String, Value>,
}

impl PreparedRecord {
    /// Redacts and summarises `entry` into a record to be written with `durability`.
    pub(crate) fn new(entry: AuditEntry, redactor: &Redactor, durability: Fsync) -> Result<Self> {
        let arguments_sha256 = arguments_sha256(&entry.arguments);
        let arguments =
            if entry.full_arguments { entry.arguments.clone() } else { redactor.redact_arguments(&entry.arguments) };
        let env = redactor.redact_env(entry.env);
        let mut violations = entry.violations;
        if let Some(outcome) = &entry.outcome {
            for v in &outcome.violations {
                if !violations.contains(v) {
                    violations.push(v.clone());
                }
            }
        }
        let record = AuditRecord {
            seq: 0,
            time: String::new(),
            caller: entry.caller,
            designation: entry.designation,
            session: entry.session,
            tool: entry.tool,
            tool_sha256: entry.tool_sha256,
            policy_digest: entry.policy_digest,
            arguments,
            arguments_sha256,
            env,
            workspace: entry.workspace.map(|w| w.to_string_lossy().into_owned()),
            decision: entry.decision,
            rule: entry.rule,
            reasons: entry.reasons,
            approval: entry.approval,
            backend: entry.backend,
            isolation: entry.isolation,
            outcome: entry.outcome.as_ref().map(OutcomeSummary::of),
            violations,
            checkpoint: None,
            durability,
            note: None,
            prev: String::new(),
            hash: String::new(),
        };
        Self::of(record)
    }

    /// A checkpoint record carrying `checkpoint` (see [`super::sign`]).
    pub(crate) fn checkpoint(checkpoint: Checkpoint, durability: Fsync) -> Result<Self> {
        let rule = format!("audit checkpoint: signs the chain up to seq {}", checkpoint.to_seq);
        let entry = AuditEntry::new("airlock", CHECKPOINT_TOOL, Value::Object(Map::new()), Decision::Allow, rule);
        let mut prepared = Self::new(entry, &Redactor::none(), durability)?;
        let value = serde_json::to_value(checkpoint).map_err(|source| AuditError::Encode { source })?;
        // Before `durability`, where AuditRecord puts it (the hash does not depend on it).
        let at = prepared.fields.keys().position(|k| k == "durability").unwrap_or(prepared.fields.len());
        prepared.fields.shift_insert(at, "checkpoint".into(), value);
        Ok(prepared)
    }

    fn of(record: AuditRecord) -> Result<Self> {
        let fields = match serde_json::to_value(record) {
            Ok(Value::Object(mut fields)) => {
                // `hash` is the last field: shift_remove keeps the others in file order.
                fields.shift_remove("hash");
                fields
            }
            Ok(_) => {
                return Err(AuditError::Encode {
                    source: serde::ser::Error::custom("an audit record did not encode as an object"),
                });
            }
            Err(source) => return Err(AuditError::Encode { source }),
        };
        Ok(PreparedRecord { fields })
    }

    /// Numbers, stamps, chains and hashes the record, and appends its line (with `\n`) to
    /// `line`. Returns the record's hash.
    pub(crate) fn seal_into(
        mut self,
        seq: u64,
        time: &str,
        note: Option<&str>,
        prev: &str,
        scratch: &mut Vec<u8>,
        line: &mut Vec<u8>,
    ) -> Result<String> {
        // Inserting an existing key keeps its position (preserve_order), so the file
        // order set by AuditRecord stays.
        self.fields.insert("seq".into(), Value::from(seq));
        self.fields.insert("time".into(), Value::from(time));
        self.fields.insert("note".into(), note.map_or(Value::Null, Value::from));
        self.fields.insert("prev".into(), Value::from(prev));
        let hash = chain_hash(prev, &self.fields, scratch);
        self.fields.insert("hash".into(), Value::from(hash.as_str()));
        let start = line.len();
        if let Err(source) = serde_json::to_writer(&mut *line, &self.fields) {
            // Never leave half a record in the batch.
            line.truncate(start);
            return Err(AuditError::Encode { source });
        }
        line.push(b'\n');
        Ok(hash)
    }
}

/// The chain fields of one well-formed line whose hash matches its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainLink {
    pub seq: u64,
    pub prev: String,
    pub hash: String,
    /// The record's `checkpoint` object, when it is a checkpoint record.
    pub checkpoint: Option<Value>,
}

/// Why a line is not a well-formed, self-consistent record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineFault {
    /// Not JSON, or JSON without the chain fields.
    NotJson(String),
    /// Well-formed, but its hash does not match its content: edited after writing.
    Edited { seq: u64, reason: String },
}

/// Parses one line (without its `\n`) and checks its own hash.
pub(crate) fn check_line(line: &[u8], scratch: &mut Vec<u8>) -> std::result::Result<ChainLink, LineFault> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(LineFault::NotJson("the line is empty".into()));
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| LineFault::NotJson(format!("it is not JSON ({e})")))?;
    let Value::Object(fields) = value else {
        return Err(LineFault::NotJson("it is JSON but not an object".into()));
    };
    let seq = fields
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| LineFault::NotJson("it has no numeric `seq`".into()))?;
    let text = |name: &str| -> std::result::Result<String, LineFault> {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| LineFault::NotJson(format!("record seq {seq} has no string `{name}`")))
    };
    let prev = text("prev")?;
    let hash = text("hash")?;
    let actual = chain_hash(&prev, &fields, scratch);
    if actual != hash {
        return Err(LineFault::Edited {
            seq,
            reason: format!(
                "its content does not match its hash (stored {}, computed {}): the record was \
                 changed after it was written",
                short(&hash),
                short(&actual)
            ),
        });
    }
    Ok(ChainLink { seq, prev, hash, checkpoint: fields.get("checkpoint").cloned() })
}

/// The first 12 characters of a hash, for messages.
pub(crate) fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_at_every_depth_without_whitespace() {
        let v = json!({"b": 1, "a": {"z": [true, null, {"y": 1.5, "x": "q"}], "c": -3}});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"c":-3,"z":[true,null,{"x":"q","y":1.5}]},"b":1}"#
        );
    }

    #[test]
    fn canonical_escapes_strings_as_documented() {
        let v = json!({"k": "a\"b\\c\n\u{1}é/\u{7f}"});
        assert_eq!(String::from_utf8(canonical_json(&v)).unwrap(), "{\"k\":\"a\\\"b\\\\c\\n\\u0001é/\u{7f}\"}");
    }

    #[test]
    fn canonical_sorts_by_utf8_bytes() {
        let v = json!({"é": 1, "z": 2, "Z": 3, "a": 4});
        assert_eq!(String::from_utf8(canonical_json(&v)).unwrap(), r#"{"Z":3,"a":4,"z":2,"é":1}"#);
    }

    #[test]
    fn floats_survive_a_round_trip_through_the_line() {
        for f in [0.1, 1.0 / 3.0, 1e300, 5e-324, -0.0, 123_456_789.123_456_79] {
            let v = json!({ "f": f });
            let text = serde_json::to_string(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(canonical_json(&v), canonical_json(&back), "{f}");
        }
    }

    #[test]
    fn chain_hash_ignores_the_hash_key_and_field_order() {
        let a = json!({"seq": 1, "prev": GENESIS_PREV, "tool": "t"});
        let b = json!({"tool": "t", "hash": "x", "prev": GENESIS_PREV, "seq": 1});
        let mut s = Vec::new();
        let ha = chain_hash(GENESIS_PREV, a.as_object().unwrap(), &mut s);
        let hb = chain_hash(GENESIS_PREV, b.as_object().unwrap(), &mut s);
        assert_eq!(ha, hb);
        let mut expect = GENESIS_PREV.as_bytes().to_vec();
        expect.extend_from_slice(&canonical_json(&a));
        assert_eq!(ha, hex::encode(Sha256::digest(&expect)));
    }

    #[test]
    fn sealed_line_has_the_documented_field_order_and_checks() {
        let entry = AuditEntry::new("agent", "echo", json!({"b": 1, "a": 2}), Decision::Allow, "r");
        let prepared = PreparedRecord::new(entry, &Redactor::default(), Fsync::Batch).unwrap();
        let (mut scratch, mut line) = (Vec::new(), Vec::new());
        let hash =
            prepared.seal_into(1, "2026-01-01T00:00:00.000000Z", None, GENESIS_PREV, &mut scratch, &mut line).unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        let value: Map<String, Value> = serde_json::from_slice(body).unwrap();
        let keys: Vec<&str> = value.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "seq",
                "time",
                "caller",
                "designation",
                "session",
                "tool",
                "tool_sha256",
                "policy_digest",
                "arguments",
                "arguments_sha256",
                "env",
                "workspace",
                "decision",
                "rule",
                "reasons",
                "approval",
                "backend",
                "isolation",
                "outcome",
                "violations",
                "durability",
                "note",
                "prev",
                "hash"
            ]
        );
        let link = check_line(body, &mut scratch).unwrap();
        assert_eq!(link, ChainLink { seq: 1, prev: GENESIS_PREV.into(), hash, checkpoint: None });
        let record: AuditRecord = serde_json::from_slice(body).unwrap();
        assert_eq!(record.arguments_sha256, arguments_sha256(&json!({"a": 2, "b": 1})));
        assert_eq!(record.durability, Fsync::Batch);
    }
}
