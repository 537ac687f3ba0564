//! The chained writer: a thread writes the log file; appenders hand it records and wait
//! for their record to be as durable as the log's [`Fsync`] mode promises.
//!
//! Owns: opening the log (parent directories, `O_APPEND`, mode 0600), recovering its tail
//! (a torn last line is cut off and noted in the next record; an invalid last record
//! refuses the open), numbering and chaining records, group commit, the `flock` that lets
//! several processes append to one log, and failing closed.
//! Must not: build record content (see `record`), or ever acknowledge a record that is
//! not written. After a write or fdatasync error the log is poisoned: that append and
//! every later one fail, so the pipeline refuses calls it cannot audit.
//!
//! Modes: `always` writes and fdatasyncs each record before answering it; `batch` writes
//! everything queued when the thread wakes in one `write` and one `fdatasync`, then
//! answers every waiter; `off` writes on the appender's own thread (under the same lock)
//! and answers without fdatasync: there is nothing to wait for, so no hand-off.
//!
//! Several writers (processes, or several [`AuditLog`]s in one process) share a log by
//! taking `flock(LOCK_EX)` around each batch; a writer that finds the file longer than it
//! left it re-reads the tail and chains onto the newest record.

use std::{
    collections::VecDeque,
    fs::{DirBuilder, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::SystemTime,
};

use serde_json::Value;
use tokio::sync::oneshot;

use super::{
    AuditConfig, AuditEntry, AuditError, Fsync, GENESIS_PREV, Redactor, Result,
    record::{LineFault, PreparedRecord, check_line, format_time, short},
    scan::{count_lines, read_tail, retry_interrupted},
    sign::CheckpointSigner,
};

/// Caps the records written in one group commit, so a flood of appenders cannot make one
/// write (and the memory behind it) unbounded; the rest go in the next batch.
const MAX_BATCH: usize = 1024;

/// Mode of a new log file: the log names callers, tools and arguments, so only its owner
/// may read it.
const LOG_FILE_MODE: u32 = 0o600;

/// Mode of directories created for the log.
const LOG_DIR_MODE: u32 = 0o700;

/// What the writer thread has done so far (for tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records written and acknowledged.
    pub records: u64,
    /// `write` calls that carried records (one per batch in `batch` and `off` modes).
    pub writes: u64,
    /// fdatasync calls.
    pub syncs: u64,
}

/// State shared by the handle and the writer thread.
#[derive(Debug, Default)]
struct Shared {
    poisoned: AtomicBool,
    cause: Mutex<Option<String>>,
    records: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
}

impl Shared {
    fn poison(&self, cause: String) {
        if let Ok(mut slot) = self.cause.lock()
            && slot.is_none()
        {
            *slot = Some(cause);
        }
        self.poisoned.store(true, Ordering::Release);
    }

    fn cause(&self) -> Option<String> {
        if !self.poisoned.load(Ordering::Acquire) {
            return None;
        }
        let cause = self.cause.lock().ok().and_then(|c| c.clone());
        Some(cause.unwrap_or_else(|| "unknown".into()))
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

enum Command {
    Append { record: PreparedRecord, reply: Reply<u64> },
    Flush { reply: Reply<()> },
}

/// The append-only, hash-chained audit log. Cheap to share behind an `Arc`; every method
/// takes `&self`.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    fsync: Fsync,
    redact: Redactor,
    shared: Arc<Shared>,
    /// The writer state; the thread locks it per batch, and in `off` mode appenders lock
    /// it and write inline (no hand-off to the thread, no wake-up to wait for).
    writer: Arc<Mutex<Writer>>,
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl AuditLog {
    /// Opens (or creates, 0600, with its parent directories) the log at `path`, recovers
    /// its tail and starts the writer thread.
    ///
    /// A partial last line (a write that was torn by a crash and never acknowledged) is cut
    /// off with a warning, and the next record carries a `note` saying so. A last complete
    /// line that is not a valid record of the chain (not JSON, hash mismatch, not linked to
    /// the record before it) is an [`AuditError::CorruptTail`]: run `airlock audit verify`.
    pub fn open(path: &Path, config: AuditConfig) -> Result<AuditLog> {
        Self::open_signed(path, config, None)
    }

    /// [`AuditLog::open`], with checkpoints signed by `signer` (see [`super::sign`]): one
    /// after every `signer.every` records, and one when the log closes (or is dropped) with
    /// records after the last checkpoint.
    pub fn open_signed(path: &Path, config: AuditConfig, signer: Option<CheckpointSigner>) -> Result<AuditLog> {
        let path = path.to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            DirBuilder::new()
                .recursive(true)
                .mode(LOG_DIR_MODE)
                .create(parent)
                .map_err(|source| AuditError::CreateDir { path: parent.to_path_buf(), source })?;
        }
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(LOG_FILE_MODE)
            .open(&path)
            .map_err(|source| AuditError::Open { path: path.clone(), source })?;
        if !existed && config.fsync != Fsync::Off {
            // The new file's directory entry must be durable too, or a crash loses the log.
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)
                    .and_then(|dir| dir.sync_all())
                    .map_err(|source| AuditError::Sync { path: parent.to_path_buf(), source })?;
            }
        }
        let shared = Arc::new(Shared::default());
        let mut writer = Writer {
            path: path.clone(),
            file,
            fsync: config.fsync,
            shared: shared.clone(),
            head_seq: 0,
            head_hash: GENESIS_PREV.to_owned(),
            known_len: 0,
            pending_note: None,
            signer,
            last_checkpoint: 0,
            scratch: Vec::with_capacity(4096),
            line: Vec::with_capacity(4096),
        };
        writer.lock()?;
        let recovered = writer.current_len().and_then(|len| writer.resync(len));
        writer.unlock();
        recovered?;

        let writer = Arc::new(Mutex::new(writer));
        let (tx, rx) = mpsc::channel();
        let thread = {
            let writer = writer.clone();
            thread::Builder::new()
                .name("airlock-audit".into())
                .spawn(move || Writer::run(&writer, rx))
                .map_err(|source| AuditError::Spawn { path: path.clone(), source })?
        };
        Ok(AuditLog {
            path,
            fsync: config.fsync,
            redact: config.redact,
            shared,
            writer,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log's fsync mode.
    pub fn fsync(&self) -> Fsync {
        self.fsync
    }

    /// Is the writer healthy? Cheap (two atomic loads): call it before running a call, and
    /// refuse the call when it fails, since its record could not be written.
    pub fn check(&self) -> Result<()> {
        if let Some(cause) = self.shared.cause() {
            return Err(AuditError::Poisoned { path: self.path.clone(), cause });
        }
        match &self.thread {
            Some(t) if !t.is_finished() => Ok(()),
            _ => Err(self.gone()),
        }
    }

    /// Appends one record; returns its sequence number once it is as durable as the log's
    /// [`Fsync`] mode promises. Redaction, the outcome summary and the argument digest are
    /// computed here, on the caller's task; the writer thread only numbers, hashes and
    /// writes. If this future is dropped after the record was handed over, the record is
    /// still written.
    pub async fn append(&self, entry: AuditEntry) -> Result<u64> {
        self.check()?;
        let record = PreparedRecord::new(entry, &self.redact, self.fsync)?;
        if self.fsync == Fsync::Off {
            // Nothing to wait for: write on the caller's thread (two syscalls under the
            // flock), which saves two thread wake-ups per call.
            let mut writer = self.writer.lock().map_err(|_| self.gone())?;
            return writer.commit(vec![record]).pop().unwrap_or_else(|| Err(self.gone()));
        }
        let (reply, answer) = oneshot::channel();
        self.send(Command::Append { record, reply })?;
        answer.await.map_err(|_| self.gone())?
    }

    /// Waits until every record handed over before this call is written, then fdatasyncs
    /// the file (whatever the mode).
    pub async fn flush(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Flush { reply })?;
        answer.await.map_err(|_| self.gone())?
    }

    /// Flushes, then stops the writer thread. Use at shutdown.
    pub async fn close(mut self) -> Result<()> {
        let flushed = self.flush().await;
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            // The queue is empty (we own the only sender and flushed), so this is quick.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        flushed
    }

    /// What the writer thread has done so far.
    pub fn stats(&self) -> AuditStats {
        AuditStats {
            records: self.shared.records.load(Ordering::Relaxed),
            writes: self.shared.writes.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
        }
    }

    fn send(&self, command: Command) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| self.gone())?;
        tx.send(command).map_err(|_| self.gone())
    }

    fn gone(&self) -> AuditError {
        AuditError::WriterGone { path: self.path.clone() }
    }
}

impl Drop for AuditLog {
    /// Closes the queue and waits for the writer thread to write (and, except in `off`
    /// mode, sync) every record already handed over, so none is lost. This blocks the
    /// dropping thread for at most one batch; call [`AuditLog::close`] in async code.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer's state: the file and the head of the chain.
#[derive(Debug)]
struct Writer {
    path: PathBuf,
    file: File,
    fsync: Fsync,
    shared: Arc<Shared>,
    /// seq and hash of the newest record on disk (0 and genesis for an empty log).
    head_seq: u64,
    head_hash: String,
    /// The file's length after this writer's last write or tail read; a different length
    /// under the lock means another writer appended (or something cut the file).
    known_len: u64,
    /// Goes in the next record (e.g. a torn tail was cut off).
    pending_note: Option<String>,
    /// Signs checkpoints, when the log is signed.
    signer: Option<CheckpointSigner>,
    /// seq of the newest checkpoint record this writer knows of (0: none).
    last_checkpoint: u64,
    /// Reused buffers: canonical bytes for hashing, and the batch's lines.
    scratch: Vec<u8>,
    line: Vec<u8>,
}

impl Writer {
    fn run(writer: &Mutex<Writer>, rx: mpsc::Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut records: Vec<PreparedRecord> = Vec::new();
            let mut replies: VecDeque<Reply<u64>> = VecDeque::new();
            let mut flushes: Vec<Reply<()>> = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next {
                match command {
                    Command::Append { record, reply } => {
                        records.push(record);
                        replies.push_back(reply);
                    }
                    Command::Flush { reply } => flushes.push(reply),
                }
                next = if records.len() < MAX_BATCH { rx.try_recv().ok() } else { None };
            }
            // A panic while the lock was held cannot leave a half-written batch behind
            // unnoticed: the file is re-read under flock before the next write.
            let mut this = writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !records.is_empty() {
                for (reply, result) in replies.into_iter().zip(this.commit(records)) {
                    // The appender may have stopped waiting; its record is written all the same.
                    let _ = reply.send(result);
                }
            }
            if !flushes.is_empty() {
                let synced = this.sync_for_flush();
                for reply in flushes {
                    let _ = reply.send(match &synced {
                        Ok(()) => Ok(()),
                        Err(e) => Err(this.replicate(e)),
                    });
                }
            }
        }
        // Every sender is gone: the queue is drained. Sign what the last checkpoint does not
        // cover, then make `off`-mode records durable too.
        let mut this = writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = this.final_checkpoint() {
            tracing::error!(path = %this.path.display(), %error, "could not write the closing audit checkpoint");
        }
        if this.shared.cause().is_none() && this.fsync == Fsync::Off {
            let _ = this.file.sync_data();
        }
    }

    /// Writes the records under the lock; returns one result per record, in order. On any
    /// failure poisons the log, and every record not yet written gets the error.
    fn commit(&mut self, records: Vec<PreparedRecord>) -> Vec<Result<u64>> {
        let count = records.len();
        if let Some(cause) = self.shared.cause() {
            return (0..count)
                .map(|_| Err(AuditError::Poisoned { path: self.path.clone(), cause: cause.clone() }))
                .collect();
        }
        let mut results = Vec::with_capacity(count);
        let outcome = match self.lock() {
            Ok(()) => {
                let r = self.commit_locked(records, &mut results);
                self.unlock();
                r
            }
            Err(e) => Err(e),
        };
        if let Err(error) = outcome {
            tracing::error!(path = %self.path.display(), %error, "audit log failed; refusing further records");
            self.shared.poison(error.to_string());
            let mut first = Some(error);
            while results.len() < count {
                let e = match first.take() {
                    Some(e) => e,
                    None => self.replicate_cause(),
                };
                results.push(Err(e));
            }
        }
        results
    }

    /// Chains onto the newest record on disk, writes, syncs per mode, and pushes (onto
    /// `results`) the result of each record written. On error returns it; the records
    /// after those in `results` were not written.
    fn commit_locked(&mut self, records: Vec<PreparedRecord>, results: &mut Vec<Result<u64>>) -> Result<()> {
        let len = self.current_len()?;
        if len != self.known_len {
            self.resync(len)?;
        }
        if self.fsync == Fsync::Always {
            for record in records {
                self.line.clear();
                let prev = self.head_hash.clone();
                match self.seal(record, self.head_seq, &prev) {
                    Ok((seq, hash)) => {
                        let (head, head_hash) = self.checkpoint_if_due(seq, hash)?;
                        self.write_line_batch(true)?;
                        self.advance(head, head_hash, head - seq + 1);
                        results.push(Ok(seq));
                    }
                    Err(e) => results.push(Err(e)),
                }
            }
            return Ok(());
        }
        self.line.clear();
        let mut seq = self.head_seq;
        let mut hash = self.head_hash.clone();
        let mut answers: Vec<Result<u64>> = Vec::with_capacity(records.len());
        for record in records {
            match self.seal(record, seq, &hash) {
                Ok((s, h)) => {
                    answers.push(Ok(s));
                    (seq, hash) = self.checkpoint_if_due(s, h)?;
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        if seq > self.head_seq {
            self.write_line_batch(self.fsync == Fsync::Batch)?;
            let written = seq - self.head_seq;
            self.advance(seq, hash, written);
        }
        results.extend(answers);
        Ok(())
    }

    /// Seals `record` after (`seq`, `prev`) into `self.line`; returns its seq and hash.
    /// The head moves only once the line is written ([`Writer::advance`]).
    fn seal(&mut self, record: PreparedRecord, seq: u64, prev: &str) -> Result<(u64, String)> {
        let seq = seq + 1;
        let time = format_time(SystemTime::now());
        let note = self.pending_note.as_deref();
        let hash = record.seal_into(seq, &time, note, prev, &mut self.scratch, &mut self.line)?;
        self.pending_note = None;
        Ok((seq, hash))
    }

    /// After record (`seq`, `hash`) was sealed into `self.line`: seals a checkpoint after
    /// it when one is due. Returns the new head.
    fn checkpoint_if_due(&mut self, seq: u64, hash: String) -> Result<(u64, String)> {
        match &self.signer {
            Some(signer) if seq.saturating_sub(self.last_checkpoint) >= signer.every => self.seal_checkpoint(seq, hash),
            _ => Ok((seq, hash)),
        }
    }

    /// Seals a checkpoint over the chain up to (`seq`, `hash`) into `self.line`.
    fn seal_checkpoint(&mut self, seq: u64, hash: String) -> Result<(u64, String)> {
        let Some(signer) = &self.signer else {
            return Ok((seq, hash));
        };
        let checkpoint = signer.sign(self.last_checkpoint + 1, seq, &hash);
        let record = PreparedRecord::checkpoint(checkpoint, self.fsync)?;
        let time = format_time(SystemTime::now());
        let sealed = record.seal_into(seq + 1, &time, None, &hash, &mut self.scratch, &mut self.line)?;
        self.last_checkpoint = seq + 1;
        Ok((seq + 1, sealed))
    }

    /// At close: a checkpoint over the records after the last one, if any, written and
    /// synced under the lock.
    fn final_checkpoint(&mut self) -> Result<()> {
        if self.signer.is_none() || self.shared.cause().is_some() {
            return Ok(());
        }
        self.lock()?;
        let result = (|| {
            let len = self.current_len()?;
            if len != self.known_len {
                self.resync(len)?;
            }
            if self.head_seq <= self.last_checkpoint {
                return Ok(());
            }
            self.line.clear();
            let (seq, hash) = self.seal_checkpoint(self.head_seq, self.head_hash.clone())?;
            self.write_line_batch(true)?;
            self.advance(seq, hash, 1);
            Ok(())
        })();
        self.unlock();
        result
    }

    fn advance(&mut self, seq: u64, hash: String, records: u64) {
        self.head_seq = seq;
        self.head_hash = hash;
        self.known_len += self.line.len() as u64;
        self.shared.records.fetch_add(records, Ordering::Relaxed);
    }

    /// One `write` of `self.line` (appended by `O_APPEND`), then fdatasync if `sync`.
    /// On failure, cuts the file back to where it was (best effort) so no unacknowledged
    /// bytes stay in it.
    fn write_line_batch(&mut self, sync: bool) -> Result<()> {
        let before = self.known_len;
        self.shared.writes.fetch_add(1, Ordering::Relaxed);
        if let Err(source) = (&self.file).write_all(&self.line) {
            self.cut_back(before);
            return Err(AuditError::Write { path: self.path.clone(), source });
        }
        if sync {
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
            if let Err(source) = self.file.sync_data() {
                self.cut_back(before);
                return Err(AuditError::Sync { path: self.path.clone(), source });
            }
        }
        Ok(())
    }

    fn cut_back(&self, len: u64) {
        let is_file = self.file.metadata().map(|m| m.is_file()).unwrap_or(false);
        if is_file && let Err(error) = self.file.set_len(len) {
            tracing::warn!(path = %self.path.display(), %error, "could not cut a failed audit write back; `airlock audit verify` will report it");
        }
    }

    /// A flush syncs whatever mode the log is in (records are already written).
    fn sync_for_flush(&mut self) -> Result<()> {
        if let Some(cause) = self.shared.cause() {
            return Err(AuditError::Poisoned { path: self.path.clone(), cause });
        }
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_data().map_err(|source| {
            let error = AuditError::Sync { path: self.path.clone(), source };
            self.shared.poison(error.to_string());
            error
        })
    }

    fn lock(&self) -> Result<()> {
        retry_interrupted(|| self.file.lock()).map_err(|source| AuditError::Lock { path: self.path.clone(), source })
    }

    fn unlock(&self) {
        let _ = self.file.unlock();
    }

    fn current_len(&self) -> Result<u64> {
        self.file.metadata().map(|m| m.len()).map_err(|source| AuditError::Read { path: self.path.clone(), source })
    }

    /// Re-reads the tail of a file of `len` bytes (under the lock): cuts a torn last line
    /// off, checks the last record, and makes it the head of the chain.
    fn resync(&mut self, len: u64) -> Result<()> {
        if len < self.known_len {
            return Err(AuditError::Shrunk { path: self.path.clone(), expected: self.known_len, found: len });
        }
        let path = self.path.clone();
        let read_err = |source| AuditError::Read { path: path.clone(), source };
        let tail = read_tail(&self.file, len, 2).map_err(read_err)?;
        if tail.complete_end < len {
            let torn = len - tail.complete_end;
            self.file
                .set_len(tail.complete_end)
                .map_err(|source| AuditError::CutTornTail { path: self.path.clone(), source })?;
            if self.fsync != Fsync::Off {
                self.file.sync_data().map_err(|source| AuditError::Sync { path: self.path.clone(), source })?;
            }
            tracing::warn!(
                path = %self.path.display(),
                bytes = torn,
                offset = tail.complete_end,
                "cut a torn last line off the audit log (a write interrupted by a crash; it was never acknowledged)"
            );
            self.pending_note = Some(format!(
                "cut a torn last line of {torn} bytes at offset {} off the log before this record \
                 (a write interrupted by a crash; never acknowledged)",
                tail.complete_end
            ));
        }
        match self.check_tail(&tail) {
            Ok((seq, hash)) => {
                self.head_seq = seq;
                self.head_hash = hash;
                self.known_len = tail.complete_end;
                Ok(())
            }
            Err(reason) => {
                let before = count_lines(&self.file, tail.first_offset).map_err(read_err)?;
                let line = before + tail.lines.len() as u64;
                Err(AuditError::CorruptTail { path: self.path.clone(), line, reason })
            }
        }
    }

    /// The head (seq, hash) of the chain from its last two lines, or why the last line is
    /// not a valid record of the chain.
    fn check_tail(&mut self, tail: &super::scan::Tail) -> std::result::Result<(u64, String), String> {
        let Some(last) = tail.lines.last() else {
            return Ok((0, GENESIS_PREV.to_owned()));
        };
        let link = check_line(last, &mut self.scratch).map_err(|fault| match fault {
            LineFault::NotJson(reason) => format!("the last line is not a record: {reason}"),
            LineFault::Edited { seq, reason } => format!("the last record (seq {seq}): {reason}"),
        })?;
        let (want_seq, want_prev) = if tail.lines.len() >= 2 {
            let before = &tail.lines[tail.lines.len() - 2];
            let value: Value = serde_json::from_slice(before)
                .map_err(|e| format!("the line before the last record is not JSON ({e})"))?;
            let seq = value.get("seq").and_then(Value::as_u64);
            let hash = value.get("hash").and_then(Value::as_str);
            match (seq, hash) {
                (Some(seq), Some(hash)) => (seq + 1, hash.to_owned()),
                _ => return Err("the line before the last record has no seq or hash".into()),
            }
        } else {
            (1, GENESIS_PREV.to_owned())
        };
        if link.checkpoint.is_some() {
            self.last_checkpoint = link.seq;
        }
        if link.seq != want_seq || link.prev != want_prev {
            return Err(format!(
                "the last record (seq {}, prev {}) does not follow the record before it (expected \
                 seq {want_seq}, prev {})",
                link.seq,
                short(&link.prev),
                short(&want_prev)
            ));
        }
        Ok((link.seq, link.hash))
    }

    /// A copy of `error` for another waiter of the same failed batch.
    fn replicate(&self, error: &AuditError) -> AuditError {
        match error {
            AuditError::Write { path, source } => {
                AuditError::Write { path: path.clone(), source: io::Error::new(source.kind(), source.to_string()) }
            }
            AuditError::Sync { path, source } => {
                AuditError::Sync { path: path.clone(), source: io::Error::new(source.kind(), source.to_string()) }
            }
            other => AuditError::Poisoned { path: self.path.clone(), cause: other.to_string() },
        }
    }

    fn replicate_cause(&self) -> AuditError {
        AuditError::Poisoned {
            path: self.path.clone(),
            cause: self.shared.cause().unwrap_or_else(|| "an earlier record in the batch failed".into()),
        }
    }
}
