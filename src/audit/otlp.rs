//! Export: audit records as OpenTelemetry log records in OTLP/JSON, for log pipelines
//! that already take OpenTelemetry (a collector's `otlpjsonfile` receiver, an OTLP/HTTP
//! endpoint that accepts JSON).
//!
//! Owns: the mapping of one [`AuditRecord`] to one OTLP `LogRecord`, and the
//! `ExportLogsServiceRequest` envelope (`resourceLogs` / `scopeLogs` / `logRecords`).
//! Must not: read or write files (the CLI does), or change what a record says: the export
//! is a view of the log, the log stays the record of truth (its chain and signatures do not
//! survive the export).
//!
//! Mapping, following the OTLP/JSON encoding (lowerCamelCase field names, 64-bit integers
//! as decimal strings, enum values as numbers): `timeUnixNano` and `observedTimeUnixNano`
//! from `time`; `severityNumber`/`severityText` INFO (9) for calls that ran and succeeded,
//! waited for approval, checkpoints and resumptions, WARN (13) for denials, tool errors,
//! limits and cancellations, ERROR (17) for traps and calls with isolation violations;
//! `body` the record's one-line summary; attributes `airlock.*` for the fields (seq, caller,
//! designation, session, tool, decision, rule, status, exit code, usage, output sizes,
//! digests, reasons and violations as arrays, the chain's `prev` and `hash`).

use serde_json::{Value, json};

use super::record::AuditRecord;

/// The instrumentation scope's name in the export.
pub const OTLP_SCOPE: &str = "airlock.audit";

/// An OTLP/JSON `ExportLogsServiceRequest` holding `records`, in order.
pub fn otlp_logs<'a>(records: impl IntoIterator<Item = &'a AuditRecord>) -> Value {
    let logs: Vec<Value> = records.into_iter().map(log_record).collect();
    json!({
        "resourceLogs": [{
            "resource": { "attributes": [
                string("service.name", "airlock"),
                string("service.version", env!("CARGO_PKG_VERSION")),
            ] },
            "scopeLogs": [{
                "scope": { "name": OTLP_SCOPE, "version": env!("CARGO_PKG_VERSION") },
                "logRecords": logs,
            }],
        }]
    })
}

/// One record as an OTLP `LogRecord`.
pub fn log_record(record: &AuditRecord) -> Value {
    let nanos = record
        .timestamp()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
        .to_string();
    let (number, text) = severity(record);
    let mut attributes = vec![
        int("airlock.seq", record.seq),
        string("airlock.caller", &record.caller),
        string("airlock.tool", &record.tool),
        string("airlock.decision", record.decision.name()),
        string("airlock.rule", &record.rule),
        string("airlock.arguments_sha256", &record.arguments_sha256),
        string("airlock.arguments", &record.arguments.to_string()),
        string("airlock.durability", record.durability.name()),
        string("airlock.prev", &record.prev),
        string("airlock.hash", &record.hash),
    ];
    let optional = [
        ("airlock.designation", &record.designation),
        ("airlock.session", &record.session),
        ("airlock.tool_sha256", &record.tool_sha256),
        ("airlock.policy_digest", &record.policy_digest),
        ("airlock.workspace", &record.workspace),
        ("airlock.backend", &record.backend),
        ("airlock.note", &record.note),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            attributes.push(string(key, value));
        }
    }
    if let Some(outcome) = &record.outcome {
        attributes.push(string("airlock.status", outcome.status.name()));
        if let crate::outcome::Status::Denied { reason } = &outcome.status {
            attributes.push(string("airlock.denied_reason", reason));
        }
        if let Some(code) = outcome.exit_code {
            attributes.push(json!({ "key": "airlock.exit_code", "value": { "intValue": code.to_string() } }));
        }
        attributes.push(int("airlock.usage.wall_us", outcome.usage.wall_us));
        if let Some(cpu) = outcome.usage.cpu_us {
            attributes.push(int("airlock.usage.cpu_us", cpu));
        }
        if let Some(fuel) = outcome.usage.fuel {
            attributes.push(int("airlock.usage.fuel", fuel));
        }
        attributes.push(int("airlock.usage.peak_memory_bytes", outcome.usage.peak_memory_bytes));
        attributes.push(int("airlock.stdout.bytes", outcome.stdout.bytes));
        attributes.push(int("airlock.stderr.bytes", outcome.stderr.bytes));
        attributes.push(string("airlock.stdout.sha256", &outcome.stdout.sha256));
    }
    if let Some(approval) = &record.approval {
        attributes.push(string("airlock.approval.id", &approval.id));
        attributes.push(string("airlock.approval.approver", &approval.approver));
    }
    if !record.reasons.is_empty() {
        attributes.push(strings("airlock.reasons", &record.reasons));
    }
    if !record.violations.is_empty() {
        attributes.push(strings("airlock.violations", &record.violations));
    }
    if !record.isolation.is_empty() {
        attributes.push(strings("airlock.isolation", &record.isolation));
    }
    if let Some(checkpoint) = &record.checkpoint {
        attributes.push(json!({ "key": "airlock.checkpoint", "value": { "boolValue": true } }));
        attributes.push(int("airlock.checkpoint.to_seq", checkpoint.to_seq));
    }
    json!({
        "timeUnixNano": nanos,
        "observedTimeUnixNano": nanos,
        "severityNumber": number,
        "severityText": text,
        "body": { "stringValue": record.to_string() },
        "attributes": attributes,
    })
}

/// OTLP severity: INFO 9, WARN 13, ERROR 17.
fn severity(record: &AuditRecord) -> (u8, &'static str) {
    if !record.violations.is_empty() || record.status() == Some("trapped") {
        return (17, "ERROR");
    }
    match record.status() {
        Some("denied" | "tool-error" | "limit-exceeded" | "cancelled") => (13, "WARN"),
        None if record.decision == crate::policy::Decision::Deny => (13, "WARN"),
        _ => (9, "INFO"),
    }
}

fn string(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn int(key: &str, value: u64) -> Value {
    json!({ "key": key, "value": { "intValue": value.to_string() } })
}

fn strings(key: &str, values: &[String]) -> Value {
    let values: Vec<Value> = values.iter().map(|v| json!({ "stringValue": v })).collect();
    json!({ "key": key, "value": { "arrayValue": { "values": values } } })
}
