//! Reading records back: every record in order, the last few, or those matching a
//! filter; and the `--since` syntax.
//!
//! Owns: parsing lines into [`AuditRecord`]s, [`Filter`], [`parse_since`].
//! Must not: check the chain (see `verify`: a query trusts the file; verify it first when
//! it matters) or hold the writers' lock while reading (the length to read is taken under
//! a brief shared lock, then the lock is released).

use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Take},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use super::{
    AuditError, AuditRecord, Result,
    scan::{count_lines, open_snapshot, read_tail},
};
use crate::policy::Decision;

/// Every record of a log, in file order (see [`read_records`]).
#[derive(Debug)]
pub struct Records {
    path: PathBuf,
    reader: BufReader<Take<File>>,
    line: u64,
    buf: Vec<u8>,
}

impl Iterator for Records {
    type Item = Result<AuditRecord>;

    /// The next record; an error for a line that is not a record. A partial last line (a
    /// torn write the writer will cut off) is skipped with a warning.
    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        let n = match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(n) => n,
            Err(source) => {
                return Some(Err(AuditError::Read { path: self.path.clone(), source }));
            }
        };
        if n == 0 {
            return None;
        }
        self.line += 1;
        if self.buf.last() != Some(&b'\n') {
            tracing::warn!(path = %self.path.display(), line = self.line, "skipping a torn last line of the audit log");
            return None;
        }
        Some(parse_record(&self.path, self.line, &self.buf[..n - 1]))
    }
}

fn parse_record(path: &Path, line: u64, bytes: &[u8]) -> Result<AuditRecord> {
    serde_json::from_slice(bytes).map_err(|e| AuditError::BadLine {
        path: path.to_path_buf(),
        line,
        reason: e.to_string(),
    })
}

/// Every record of the log at `path`, oldest first, up to its length when this is called.
pub fn read_records(path: &Path) -> Result<Records> {
    let (file, len) = open_snapshot(path)?;
    Ok(Records {
        path: path.to_path_buf(),
        reader: BufReader::with_capacity(1 << 16, file.take(len)),
        line: 0,
        buf: Vec::with_capacity(4096),
    })
}

/// Which records a query returns. Every field set must match; an empty filter matches
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The tool's name, exactly.
    pub tool: Option<String>,
    /// The decision.
    pub decision: Option<Decision>,
    /// The caller, exactly.
    pub caller: Option<String>,
    /// Records at or after this time.
    pub since: Option<SystemTime>,
    /// The outcome's status name (`ok`, `tool-error`, `denied`, `limit-exceeded`,
    /// `trapped`); records without an outcome never match.
    pub status: Option<String>,
}

impl Filter {
    /// Does `record` match every field set?
    pub fn matches(&self, record: &AuditRecord) -> bool {
        self.tool.as_ref().is_none_or(|t| *t == record.tool)
            && self.decision.is_none_or(|d| d == record.decision)
            && self.caller.as_ref().is_none_or(|c| *c == record.caller)
            && self.since.is_none_or(|since| record.timestamp().is_some_and(|t| t >= since))
            && self.status.as_ref().is_none_or(|s| record.status() == Some(s.as_str()))
    }
}

/// The records of the log at `path` that match `filter`, oldest first. Fails on the first
/// line that is not a record.
pub fn query(path: &Path, filter: &Filter) -> Result<Vec<AuditRecord>> {
    let mut out = Vec::new();
    for record in read_records(path)? {
        let record = record?;
        if filter.matches(&record) {
            out.push(record);
        }
    }
    Ok(out)
}

/// The last `n` records of the log at `path`, oldest first. Reads only the end of the
/// file. A partial last line is skipped.
pub fn tail(path: &Path, n: usize) -> Result<Vec<AuditRecord>> {
    let (file, len) = open_snapshot(path)?;
    let read_err = |source| AuditError::Read { path: path.to_path_buf(), source };
    if n == 0 {
        return Ok(Vec::new());
    }
    let tail = read_tail(&file, len, n).map_err(read_err)?;
    let mut out = Vec::with_capacity(tail.lines.len());
    for (i, bytes) in tail.lines.iter().enumerate() {
        match serde_json::from_slice(bytes) {
            Ok(record) => out.push(record),
            Err(e) => {
                let line = count_lines(&file, tail.first_offset).map_err(read_err)? + i as u64 + 1;
                return Err(AuditError::BadLine { path: path.to_path_buf(), line, reason: e.to_string() });
            }
        }
    }
    Ok(out)
}

/// Parses a `--since` value relative to now: an RFC 3339 time (`2026-11-27T10:00:00Z`) or
/// an age (`10m`, `2h`, `3d`, `1h30m`: see humantime's duration syntax).
pub fn parse_since(input: &str) -> Result<SystemTime> {
    parse_since_at(input, SystemTime::now())
}

/// [`parse_since`] relative to `now`.
pub fn parse_since_at(input: &str, now: SystemTime) -> Result<SystemTime> {
    let input = input.trim();
    let bad = |reason: String| AuditError::BadSince { input: input.to_owned(), reason };
    if input.contains('-') || input.contains(':') {
        let (local, offset) = split_utc_offset(input);
        let time = humantime::parse_rfc3339_weak(local).map_err(|e| bad(e.to_string()))?;
        // `local` is the wall time at `offset` east of UTC: UTC is that much earlier.
        return match offset {
            Some(east) if east >= 0 => time.checked_sub(Duration::from_secs(east.unsigned_abs())),
            Some(west) => time.checked_add(Duration::from_secs(west.unsigned_abs())),
            None => Some(time),
        }
        .ok_or_else(|| bad("the time is out of range".into()));
    }
    let age: Duration = humantime::parse_duration(input).map_err(|e| bad(e.to_string()))?;
    now.checked_sub(age).ok_or_else(|| bad("that is before the start of time".into()))
}

/// Splits a trailing RFC 3339 numeric offset (`+01:00`, `-05:30`) off a time, giving the
/// rest and the offset in seconds east of UTC (humantime reads only `Z` or no zone).
fn split_utc_offset(input: &str) -> (&str, Option<i64>) {
    let Some(split) = input.len().checked_sub(6) else { return (input, None) };
    let (rest, zone) = input.split_at(split);
    let bytes = zone.as_bytes();
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return (input, None),
    };
    let digits =
        |a: u8, b: u8| (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')));
    match (digits(bytes[1], bytes[2]), bytes[3], digits(bytes[4], bytes[5])) {
        (Some(hours), b':', Some(minutes)) if rest.contains('T') || rest.contains(' ') => {
            (rest, Some(sign * (hours * 3600 + minutes * 60)))
        }
        _ => (input, None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_and_ages() {
        let now = humantime::parse_rfc3339("2026-11-27T12:00:00Z").unwrap();
        let at = |s| parse_since_at(s, now).unwrap();
        assert_eq!(at("2026-11-27T10:00:00Z"), humantime::parse_rfc3339("2026-11-27T10:00:00Z").unwrap());
        assert_eq!(at("2026-11-27T11:00:00+01:00"), humantime::parse_rfc3339("2026-11-27T10:00:00Z").unwrap());
        assert_eq!(at("2026-11-27T04:30:00-05:30"), humantime::parse_rfc3339("2026-11-27T10:00:00Z").unwrap());
        assert_eq!(at("10m"), now - Duration::from_secs(600));
        assert_eq!(at("2h"), now - Duration::from_secs(7200));
        assert_eq!(at("3d"), now - Duration::from_secs(3 * 86400));
        assert!(matches!(parse_since_at("yesterday", now), Err(AuditError::BadSince { .. })));
        assert!(matches!(parse_since_at("2026-13-40T00:00:00Z", now), Err(AuditError::BadSince { .. })));
    }
}
