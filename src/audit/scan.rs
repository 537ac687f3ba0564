//! Reading the log file as lines without racing its writers: a length snapshot taken
//! under a brief shared lock, and a backward scan for the last few lines.
//!
//! Owns: the byte-level line reading shared by the writer (tail recovery), `verify` and
//! `query`.
//! Must not: interpret records (see `record`) or write anything.

use std::{fs::File, io, os::unix::fs::FileExt, path::Path};

use super::{AuditError, Result};

/// First chunk read backwards from the end of the file; doubled until enough lines are
/// found, so a huge record costs O(size), not O(size²).
const TAIL_CHUNK: u64 = 64 * 1024;

/// Opens the log for reading and returns it with the length to read up to. The length is
/// taken under `flock(LOCK_SH)`, which waits for a writer's batch in progress, so it ends
/// on a batch boundary; the lock is released at once and reading goes on without it.
pub(crate) fn open_snapshot(path: &Path) -> Result<(File, u64)> {
    let read_err = |source| AuditError::Read { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(read_err)?;
    retry_interrupted(|| file.lock_shared()).map_err(|source| AuditError::Lock { path: path.to_path_buf(), source })?;
    let len = file.metadata().map(|m| m.len());
    let _ = file.unlock();
    Ok((file, len.map_err(read_err)?))
}

/// Runs a blocking lock call again when a signal interrupts it.
pub(crate) fn retry_interrupted(mut lock: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    loop {
        match lock() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The last lines of the first `len` bytes of a file.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// Offset just after the last `\n`; bytes from here to `len` are a partial line.
    pub complete_end: u64,
    /// Up to `n` last complete lines, oldest first, without their `\n`.
    pub lines: Vec<Vec<u8>>,
    /// Offset where `lines[0]` starts.
    pub first_offset: u64,
}

/// Reads backwards from `len` until the last `n` complete lines (or all there are) and the
/// partial line after them, if any, are known.
pub(crate) fn read_tail(file: &File, len: u64, n: usize) -> io::Result<Tail> {
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = TAIL_CHUNK;
    // n complete lines need n + 1 newlines in view (the one before the first line), or
    // the start of the file.
    while start > 0 && memchr_count(&buf) < n + 1 {
        let from = start.saturating_sub(chunk);
        let mut piece = vec![0u8; (start - from) as usize];
        file.read_exact_at(&mut piece, from)?;
        piece.extend_from_slice(&buf);
        buf = piece;
        start = from;
        chunk = chunk.saturating_mul(2);
    }
    let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
        // No complete line in view; since we read until n + 1 newlines or the start,
        // this means the file has no newline at all.
        return Ok(Tail { complete_end: start, lines: Vec::new(), first_offset: start });
    };
    let complete_end = start + last_nl as u64 + 1;
    let body = &buf[..last_nl];
    let mut segments: Vec<(usize, &[u8])> = Vec::new();
    let mut seg_start = 0usize;
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            segments.push((seg_start, &body[seg_start..i]));
            seg_start = i + 1;
        }
    }
    segments.push((seg_start, &body[seg_start..]));
    // Unless we reached the start of the file, the first segment may begin mid-line.
    if start > 0 {
        segments.remove(0);
    }
    let skip = segments.len().saturating_sub(n);
    let kept = &segments[skip..];
    let first_offset = kept.first().map_or(complete_end, |(off, _)| start + *off as u64);
    Ok(Tail { complete_end, lines: kept.iter().map(|(_, s)| s.to_vec()).collect(), first_offset })
}

/// Number of `\n` in the first `upto` bytes: the 1-based line number of the line that
/// starts at `upto` is this plus one.
pub(crate) fn count_lines(file: &File, upto: u64) -> io::Result<u64> {
    let mut count = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let mut offset = 0u64;
    while offset < upto {
        let want = ((upto - offset) as usize).min(buf.len());
        let got = file.read_at(&mut buf[..want], offset)?;
        if got == 0 {
            break;
        }
        count += memchr_count(&buf[..got]) as u64;
        offset += got as u64;
    }
    Ok(count)
}

fn memchr_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tail_of(content: &[u8], n: usize) -> Tail {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        read_tail(&f, content.len() as u64, n).unwrap()
    }

    #[test]
    fn finds_the_last_lines_and_the_partial_tail() {
        let t = tail_of(b"a\nbb\nccc\ndd", 2);
        assert_eq!(t.lines, vec![b"bb".to_vec(), b"ccc".to_vec()]);
        assert_eq!(t.complete_end, 9);
        assert_eq!(t.first_offset, 2);
        let t = tail_of(b"a\nbb\n", 5);
        assert_eq!(t.lines, vec![b"a".to_vec(), b"bb".to_vec()]);
        assert_eq!(t.complete_end, 5);
        let t = tail_of(b"torn", 2);
        assert!(t.lines.is_empty());
        assert_eq!(t.complete_end, 0);
        let t = tail_of(b"", 2);
        assert!(t.lines.is_empty());
    }

    #[test]
    fn long_lines_across_chunks() {
        let long = vec![b'x'; (TAIL_CHUNK as usize) * 3 + 7];
        let mut content = b"first\n".to_vec();
        content.extend_from_slice(&long);
        content.push(b'\n');
        content.extend_from_slice(b"last\n");
        let t = tail_of(&content, 2);
        assert_eq!(t.lines.len(), 2);
        assert_eq!(t.lines[0], long);
        assert_eq!(t.lines[1], b"last");
        assert_eq!(t.first_offset, 6);
    }

    #[test]
    fn counts_lines() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"a\nb\nc\n").unwrap();
        assert_eq!(count_lines(&f, 4).unwrap(), 2);
        assert_eq!(count_lines(&f, 6).unwrap(), 3);
    }
}
