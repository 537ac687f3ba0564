//! Verification: walk the chain from the first line and name the first record that
//! breaks it, and how.
//!
//! Owns: the classification of a broken chain ([`BadKind`]) and the sentence that
//! explains it to a person.
//! Must not: change the file, or stop at anything but the FIRST bad record: everything
//! before it is intact, nothing after it is trusted.
//!
//! A line is checked in this order: it must end with `\n` (else [`BadKind::Truncated`]),
//! be a JSON object with `seq`, `prev` and `hash` ([`BadKind::NotJson`]), and hash to its
//! own `hash` ([`BadKind::Edited`]); then it must follow the last good record: `seq` one
//! more and `prev` equal to that record's `hash` (the first line: seq 1 and 64 zeros). A
//! line that does not follow is classified by its `seq`: a forward jump is
//! [`BadKind::Reordered`] when a skipped seq appears later in the file, else
//! [`BadKind::Deleted`] (on line 1: [`BadKind::BadGenesis`]); the right seq with the wrong
//! `prev` is [`BadKind::Inserted`] (a record from another log, or its predecessor was
//! rewritten with a recomputed hash); a seq already seen is [`BadKind::Duplicated`] when it
//! is a copy of that record, else [`BadKind::Inserted`].
//!
//! With a public key ([`verify_signed`]) every checkpoint record must also hold (see
//! [`super::sign`]): follow the record it signs and carry a valid signature by that key
//! ([`BadKind::BadSignature`]: e.g. an attacker edited a record and recomputed every hash
//! after it). Records after the last valid checkpoint are an unsigned tail: the log was
//! truncated within signed history (and the checkpoints after the cut removed), or records
//! were appended without the key, or the writer is still running. That fails
//! ([`BadKind::Unsigned`], naming the first unsigned record) unless the caller allows an
//! unsigned tail, as for a log still being written. A log cut exactly after a checkpoint
//! cannot be told from a shorter one by the log alone: compare `signed_through` with a
//! seq you kept.

use std::{
    fmt,
    io::{BufRead, BufReader, Read},
    path::Path,
};

use serde::Serialize;
use serde_json::Value;

use ed25519_dalek::VerifyingKey;

use super::{
    AuditError, GENESIS_PREV, Result,
    record::{LineFault, check_line, short},
    scan::open_snapshot,
    sign::Checkpoint,
};

/// How a record breaks the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadKind {
    /// The line is not a JSON audit record.
    NotJson,
    /// The record's content does not match its hash: changed after it was written.
    Edited,
    /// Records are missing before this one (its seq jumps forward).
    Deleted,
    /// Records are out of order (a skipped seq appears later).
    Reordered,
    /// The record does not belong to this chain at this point (wrong `prev`).
    Inserted,
    /// The record is a copy of one already in the log.
    Duplicated,
    /// The last line is partial: a torn write.
    Truncated,
    /// The first record does not start a chain (seq 1, prev of 64 zeros).
    BadGenesis,
    /// A checkpoint whose signature (or what it claims to sign) does not hold.
    BadSignature,
    /// The record is not covered by any valid checkpoint signature.
    Unsigned,
}

impl BadKind {
    /// The kind's name (`not-json`, `edited`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BadKind::NotJson => "not-json",
            BadKind::Edited => "edited",
            BadKind::Deleted => "deleted",
            BadKind::Reordered => "reordered",
            BadKind::Inserted => "inserted",
            BadKind::Duplicated => "duplicated",
            BadKind::Truncated => "truncated",
            BadKind::BadGenesis => "bad-genesis",
            BadKind::BadSignature => "bad-signature",
            BadKind::Unsigned => "unsigned",
        }
    }
}

impl fmt::Display for BadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The first record that breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRecord {
    /// 1-based line number in the file.
    pub line: u64,
    /// The record's seq, when the line has one.
    pub seq: Option<u64>,
    pub kind: BadKind,
    /// A sentence naming the record and why it breaks the chain.
    pub reason: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records that verified, from the start up to the first bad one.
    pub records: u64,
    /// seq of the last record that verified (0 when none).
    pub last_seq: u64,
    /// hash of the last record that verified (64 zeros when none).
    pub last_hash: String,
    /// The first record that breaks the chain, if any.
    pub first_bad: Option<BadRecord>,
    /// With a public key: the seq of the last valid checkpoint record (0: none); `None`
    /// when signatures were not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_through: Option<u64>,
    /// With a public key: valid checkpoints met.
    pub checkpoints: u64,
    /// With a public key: verified records after the last valid checkpoint.
    pub unsigned_tail: u64,
}

impl VerifyReport {
    /// True when every line verified.
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

impl fmt::Display for VerifyReport {
    /// `intact: N records, last seq S, last hash H`, or `broken at line L (seq S): KIND:
    /// REASON` followed by how much of the log verified before it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(through) = self.signed_through
            && self.first_bad.as_ref().is_none_or(|bad| bad.kind == BadKind::Unsigned)
        {
            write!(
                f,
                "signed through seq {through} ({} checkpoints); {} unsigned records after it; ",
                self.checkpoints, self.unsigned_tail
            )?;
        }
        match &self.first_bad {
            None => {
                write!(f, "intact: {} records, last seq {}, last hash {}", self.records, self.last_seq, self.last_hash)
            }
            Some(bad) => {
                let seq = bad.seq.map_or_else(|| "?".to_owned(), |s| s.to_string());
                write!(f, "broken at line {} (seq {}): {}: {}", bad.line, seq, bad.kind, bad.reason)?;
                write!(
                    f,
                    "\n{} records before it verified (last seq {}, last hash {})",
                    self.records, self.last_seq, self.last_hash
                )
            }
        }
    }
}

/// Walks the chain of the log at `path` and names its first bad record. Errors only when
/// the file cannot be read; a damaged log is a report with `first_bad` set. Holds the
/// writers' lock only to read the file's length; records appended after that are not
/// checked.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    walk_file(path, Walk::default())
}

/// [`verify`], and every checkpoint's signature against `key`; an unsigned tail fails
/// unless `allow_unsigned_tail` (see the module header).
pub fn verify_signed(path: &Path, key: &VerifyingKey, allow_unsigned_tail: bool) -> Result<VerifyReport> {
    walk_file(path, Walk { key: Some(*key), allow_unsigned_tail, ..Walk::default() })
}

fn walk_file(path: &Path, mut walk: Walk) -> Result<VerifyReport> {
    let (file, len) = open_snapshot(path)?;
    let read_err = |source| AuditError::Read { path: path.to_path_buf(), source };
    let mut reader = BufReader::with_capacity(1 << 16, file.take(len));
    let mut buf = Vec::with_capacity(4096);
    let mut scratch = Vec::with_capacity(4096);
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(read_err)?;
        if n == 0 {
            return Ok(walk.report(None));
        }
        line += 1;
        let bad = if buf.last() != Some(&b'\n') {
            Some(walk.truncated(line, &buf))
        } else {
            walk.check(line, &buf[..n - 1], &mut scratch, &mut reader).map_err(read_err)?
        };
        if let Some(bad) = bad {
            return Ok(walk.report(Some(bad)));
        }
    }
}

/// The good prefix of the chain so far.
#[derive(Default)]
struct Walk {
    /// Hashes of the good records; `hashes[i]` is the record with seq `i + 1`.
    hashes: Vec<[u8; 32]>,
    last_hash: Option<String>,
    /// Checks checkpoint signatures when set.
    key: Option<VerifyingKey>,
    allow_unsigned_tail: bool,
    /// seq of the last valid checkpoint record.
    signed_through: u64,
    checkpoints: u64,
}

impl Walk {
    fn expected_seq(&self) -> u64 {
        self.hashes.len() as u64 + 1
    }

    fn expected_prev(&self) -> &str {
        self.last_hash.as_deref().unwrap_or(GENESIS_PREV)
    }

    fn report(self, mut first_bad: Option<BadRecord>) -> VerifyReport {
        let records = self.hashes.len() as u64;
        let unsigned_tail = if self.key.is_some() { records - self.signed_through } else { 0 };
        if self.key.is_some() && first_bad.is_none() && unsigned_tail > 0 && !self.allow_unsigned_tail {
            let seq = self.signed_through + 1;
            let why = if self.checkpoints == 0 {
                "the log has no checkpoint signed by this key".to_string()
            } else {
                format!("the last valid checkpoint is seq {}", self.signed_through)
            };
            first_bad = Some(BadRecord {
                line: seq,
                seq: Some(seq),
                kind: BadKind::Unsigned,
                reason: format!(
                    "line {seq} (seq {seq}) and the {} records after it are not covered by a signature ({why}): the log \
                     was truncated within signed history, or records were appended without the key; for a log still \
                     being written, pass --allow-unsigned-tail",
                    unsigned_tail - 1
                ),
            });
        }
        VerifyReport {
            records,
            last_seq: records,
            last_hash: self.last_hash.unwrap_or_else(|| GENESIS_PREV.to_owned()),
            first_bad,
            signed_through: self.key.map(|_| self.signed_through),
            checkpoints: self.checkpoints,
            unsigned_tail,
        }
    }

    fn truncated(&self, line: u64, partial: &[u8]) -> BadRecord {
        let seq = lenient_seq(partial);
        BadRecord {
            line,
            seq,
            kind: BadKind::Truncated,
            reason: format!(
                "line {line}{} is the last line and has no newline ({} bytes): a write torn by a \
                 crash, never acknowledged; the writer cuts it off when it next opens the log",
                seq.map_or_else(String::new, |s| format!(" (seq {s})")),
                partial.len()
            ),
        }
    }

    /// Checks one complete line; `Some` when it is the first bad record. `rest` is the
    /// unread remainder of the file, read only to tell a reordering from a deletion.
    fn check(
        &mut self,
        line: u64,
        body: &[u8],
        scratch: &mut Vec<u8>,
        rest: &mut impl BufRead,
    ) -> std::io::Result<Option<BadRecord>> {
        let link = match check_line(body, scratch) {
            Ok(link) => link,
            Err(LineFault::NotJson(why)) => {
                return Ok(Some(BadRecord {
                    line,
                    seq: lenient_seq(body),
                    kind: BadKind::NotJson,
                    reason: format!("line {line} is not an audit record: {why}"),
                }));
            }
            Err(LineFault::Edited { seq, reason }) => {
                return Ok(Some(BadRecord {
                    line,
                    seq: Some(seq),
                    kind: BadKind::Edited,
                    reason: format!("line {line} (seq {seq}) was edited: {reason}"),
                }));
            }
        };
        let (seq, want_seq) = (link.seq, self.expected_seq());
        let want_prev = self.expected_prev().to_owned();
        if seq == want_seq && link.prev == want_prev {
            if let (Some(key), Some(value)) = (&self.key, &link.checkpoint) {
                let checked = serde_json::from_value::<Checkpoint>(value.clone())
                    .map_err(|e| format!("its checkpoint is not readable ({e})"))
                    .and_then(|checkpoint| checkpoint.check(seq, &link.prev, key));
                if let Err(reason) = checked {
                    return Ok(Some(BadRecord {
                        line,
                        seq: Some(seq),
                        kind: BadKind::BadSignature,
                        reason: format!("line {line} (seq {seq}) is a checkpoint that does not hold: {reason}"),
                    }));
                }
                self.signed_through = seq;
                self.checkpoints += 1;
            }
            let mut raw = [0u8; 32];
            // check_line proved `hash` is the hex sha256 it recomputed.
            let _ = hex::decode_to_slice(&link.hash, &mut raw);
            self.hashes.push(raw);
            self.last_hash = Some(link.hash);
            return Ok(None);
        }
        let at = format!("line {line} (seq {seq})");
        let bad = |kind, reason| Some(BadRecord { line, seq: Some(seq), kind, reason });
        if seq > want_seq {
            if let Some((later_line, later_seq)) = find_seq_later(rest, want_seq, seq, line)? {
                return Ok(bad(
                    BadKind::Reordered,
                    format!(
                        "{at} is out of order: seq {want_seq} was expected here, and seq {later_seq} \
                         appears later, at line {later_line}"
                    ),
                ));
            }
            if want_seq == 1 {
                return Ok(bad(
                    BadKind::BadGenesis,
                    format!("{at} should start the log with seq 1: the first {} record(s) were deleted", seq - 1),
                ));
            }
            let missing = if seq - want_seq == 1 {
                format!("seq {want_seq} is")
            } else {
                format!("seqs {want_seq} to {} are", seq - 1)
            };
            return Ok(bad(
                BadKind::Deleted,
                format!("{at} follows seq {}: {missing} missing (deleted)", want_seq - 1),
            ));
        }
        if seq == want_seq {
            if want_seq == 1 {
                return Ok(bad(
                    BadKind::BadGenesis,
                    format!(
                        "{at} does not start a chain: its prev is {}, not 64 zeros (a first record \
                         from another log?)",
                        short(&link.prev)
                    ),
                ));
            }
            return Ok(bad(
                BadKind::Inserted,
                format!(
                    "{at} does not link to the record before it: its prev is {} but seq {} has hash \
                     {}; it comes from another log or was inserted (or the record before it was \
                     rewritten with a recomputed hash)",
                    short(&link.prev),
                    want_seq - 1,
                    short(&want_prev)
                ),
            ));
        }
        // seq < want_seq: a seq already seen.
        let earlier = usize::try_from(seq.saturating_sub(1)).ok().and_then(|i| self.hashes.get(i));
        let mut raw = [0u8; 32];
        let same = hex::decode_to_slice(&link.hash, &mut raw).is_ok() && earlier == Some(&raw);
        if same {
            return Ok(bad(
                BadKind::Duplicated,
                format!("{at} is a copy of the record with seq {seq} earlier in the log (line {seq})"),
            ));
        }
        Ok(bad(
            BadKind::Inserted,
            format!(
                "{at} goes back (seq {want_seq} was expected) and is not the earlier record with seq \
                 {seq}: it was inserted or comes from another log"
            ),
        ))
    }
}

/// The `seq` of a line, if it has one, without checking anything else. A partial line
/// still shows its seq when it starts the way the writer starts every record.
fn lenient_seq(line: &[u8]) -> Option<u64> {
    if let Ok(value) = serde_json::from_slice::<Value>(line) {
        return value.get("seq")?.as_u64();
    }
    let digits = line.strip_prefix(br#"{"seq":"#)?;
    let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// Reads the rest of the file for a line whose seq is in `[from, to)`; returns its line
/// number and seq.
fn find_seq_later(rest: &mut impl BufRead, from: u64, to: u64, line: u64) -> std::io::Result<Option<(u64, u64)>> {
    let mut buf = Vec::new();
    let mut line = line;
    loop {
        buf.clear();
        if rest.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        line += 1;
        if let Some(seq) = lenient_seq(buf.strip_suffix(b"\n").unwrap_or(&buf))
            && (from..to).contains(&seq)
        {
            return Ok(Some((line, seq)));
        }
    }
}
