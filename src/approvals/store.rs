//! The approvals directory on disk: one file per approval, replaced atomically, and the
//! lock that serialises every change.
//!
//! Owns: the directory (created 0700 when the first approval is written, so a runtime that
//! never needs one leaves no trace; refused when anyone may write it), reading one file
//! with its checks, writing one file durably (temp file, fsync, rename, fsync of the
//! directory), listing files by binding or by id, the lock (an in-process mutex plus
//! `flock(LOCK_EX)` on `.lock`, so that the service and a CLI on the same directory never
//! interleave a read-modify-write), and new ids.
//! Must not: decide anything about an approval's state; the module root does, inside
//! [`Store::locked`].

use std::{
    ffi::OsStr,
    fs::{self, DirBuilder, File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, OnceLock},
    time::{Duration, SystemTime},
};

use super::{
    ApprovalError, Result,
    record::{self, Approval, is_hex},
};

/// Caps the size of one approval file, so that a huge or runaway file cannot exhaust
/// memory when the store reads it (the arguments a human must read fit well within it).
pub const MAX_APPROVAL_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Temporary files older than this were left by a writer that crashed mid-write; younger
/// ones may belong to a writer in another process that is still working.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// The lock file's name inside the directory.
const LOCK_FILE: &str = ".lock";

/// The approvals directory.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    /// Opened (and the directory created) by the first [`Store::locked`].
    lock_file: OnceLock<File>,
    /// `flock` is per open file, so threads of one process would all "hold" it: this
    /// mutex serialises them first.
    mutex: Mutex<()>,
}

/// Proof that the caller holds the store's lock; every write takes one.
pub(crate) struct Locked<'a> {
    lock_file: &'a File,
    _mutex: MutexGuard<'a, ()>,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.lock_file.unlock();
    }
}

impl Store {
    /// The store in `dir`. An existing `dir` is checked now (a directory nobody else may
    /// write) and cleared of temporary files that crashed writers left behind; a missing
    /// one is created by the first write.
    pub(crate) fn open(dir: &Path) -> Result<Store> {
        let store = Store { dir: dir.to_path_buf(), lock_file: OnceLock::new(), mutex: Mutex::new(()) };
        match fs::metadata(dir) {
            Ok(_) => {
                store.check_dir()?;
                store.remove_stale_temps();
            }
            // Not there yet, or not ours to look at (e.g. a tool runner whose HOME is
            // another user's): nothing to check now. A call that needs an approval fails
            // closed at its first use of the store, with the reason; every other call runs.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) => {}
            Err(source) => return Err(ApprovalError::Read { path: dir.to_path_buf(), source }),
        }
        Ok(store)
    }

    /// Refuses a `dir` that is not a directory, or that everyone may write (whoever can
    /// write here can approve anything).
    fn check_dir(&self) -> Result<()> {
        let meta = fs::metadata(&self.dir).map_err(|source| ApprovalError::Read { path: self.dir.clone(), source })?;
        if !meta.is_dir() {
            return Err(ApprovalError::NotADirectory { path: self.dir.clone() });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o002 != 0 {
            return Err(ApprovalError::InsecureDir { path: self.dir.clone(), mode });
        }
        Ok(())
    }

    /// The lock file, creating the directory (0700, with its parents) and the file on the
    /// first call. Called with the mutex held, so only one thread creates them.
    fn lock_file(&self) -> Result<&File> {
        if self.lock_file.get().is_none() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|source| ApprovalError::CreateDir { path: self.dir.clone(), source })?;
            self.check_dir()?;
            let lock_path = self.dir.join(LOCK_FILE);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&lock_path)
                .map_err(|source| ApprovalError::Open { path: lock_path, source })?;
            let _ = self.lock_file.set(file);
        }
        self.lock_file.get().ok_or_else(|| ApprovalError::Lock {
            path: self.dir.join(LOCK_FILE),
            source: std::io::Error::other("the lock file was not kept"),
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the lock: the mutex, then `flock(LOCK_EX)`.
    pub(crate) fn locked(&self) -> Result<Locked<'_>> {
        let guard = self.mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let lock_file = self.lock_file()?;
        loop {
            match lock_file.lock() {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ApprovalError::Lock { path: self.dir.join(LOCK_FILE), source }),
            }
        }
        Ok(Locked { lock_file, _mutex: guard })
    }

    /// The files of every approval (`<binding>-<id>.json`), in no particular order.
    pub(crate) fn all_files(&self) -> Result<Vec<PathBuf>> {
        self.files_where(|_, _| true)
    }

    /// The files of the approvals of one binding.
    pub(crate) fn binding_files(&self, binding: &str) -> Result<Vec<PathBuf>> {
        self.files_where(|b, _| b == binding)
    }

    /// The file of the approval `id` (already checked to be 32 hex digits), if any.
    pub(crate) fn id_file(&self, id: &str) -> Result<Option<PathBuf>> {
        Ok(self.files_where(|_, i| i == id)?.into_iter().next())
    }

    /// Files whose name is `<64 hex>-<32 hex>.json` and whose parts pass `keep`. Other
    /// names (the lock, temporary files, whatever else) are ignored.
    fn files_where(&self, keep: impl Fn(&str, &str) -> bool) -> Result<Vec<PathBuf>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            // No directory yet: no approvals yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ApprovalError::Read { path: self.dir.clone(), source }),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ApprovalError::Read { path: self.dir.clone(), source })?;
            let name = entry.file_name();
            if let Some((binding, id)) = split_name(&name)
                && keep(binding, id)
            {
                files.push(entry.path());
            }
        }
        Ok(files)
    }

    /// Reads and checks one approval file: size cap, format, checksum, invariants, and
    /// that the name matches the content (a file copied under another binding's name
    /// would otherwise let one call use another's approval).
    pub(crate) fn read(&self, path: &Path) -> Result<Approval> {
        let corrupt = |reason: String| ApprovalError::Corrupt { path: path.to_path_buf(), reason };
        let file = File::open(path).map_err(|source| ApprovalError::Read { path: path.to_path_buf(), source })?;
        let mut bytes = Vec::new();
        file.take(MAX_APPROVAL_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ApprovalError::Read { path: path.to_path_buf(), source })?;
        if bytes.len() as u64 > MAX_APPROVAL_FILE_BYTES {
            return Err(corrupt(format!("it is larger than {MAX_APPROVAL_FILE_BYTES} bytes")));
        }
        let approval = record::decode(&bytes).map_err(corrupt)?;
        let expected = approval.file_name();
        if path.file_name() != Some(OsStr::new(&expected)) {
            return Err(corrupt(format!(
                "its name does not match its content, which belongs in {expected}: it was renamed or copied"
            )));
        }
        Ok(approval)
    }

    /// Writes `approval` durably under the lock: a temporary file in the directory,
    /// fsync, rename over `<binding>-<id>.json`, fsync of the directory. A crash at any
    /// point leaves either the old file or the new one, never a mix; once this returns,
    /// the new one survives a power loss.
    pub(crate) fn write(&self, _locked: &Locked<'_>, approval: &Approval) -> Result<()> {
        let path = self.dir.join(approval.file_name());
        let bytes =
            record::encode(approval).map_err(|source| ApprovalError::Encode { id: approval.id.clone(), source })?;
        if bytes.len() as u64 > MAX_APPROVAL_FILE_BYTES {
            return Err(ApprovalError::TooLarge { tool: approval.tool.clone(), bytes: bytes.len() as u64 });
        }
        let temp = self.dir.join(format!(".tmp-{}-{}", approval.id, random_hex(8)?));
        let write_err = |source| ApprovalError::Write { path: path.clone(), source };
        let result = (|| {
            let mut file =
                OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).map_err(write_err)?;
            file.write_all(&bytes).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
            fs::rename(&temp, &path).map_err(write_err)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result?;
        sync_dir(&self.dir)
    }

    /// Removes temporary files older than [`STALE_TEMP_AGE`]; errors are ignored (a left
    /// temporary file is never read as an approval).
    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| now.duration_since(modified).is_ok_and(|age| age > STALE_TEMP_AGE));
            if entry.file_name().as_encoded_bytes().starts_with(b".tmp-") && stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// `(binding, id)` of a name `<64 hex>-<32 hex>.json`.
fn split_name(name: &OsStr) -> Option<(&str, &str)> {
    let stem = name.to_str()?.strip_suffix(".json")?;
    let (binding, id) = stem.split_once('-')?;
    (is_hex(binding, 64) && is_hex(id, 32)).then_some((binding, id))
}

/// fsync of a directory, so that a rename in it survives a power loss.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| ApprovalError::Sync { path: dir.to_path_buf(), source })
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|source| ApprovalError::Random { source })?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_binding_dash_id_json() {
        let binding = "a".repeat(64);
        let id = "b".repeat(32);
        assert_eq!(split_name(OsStr::new(&format!("{binding}-{id}.json"))), Some((binding.as_str(), id.as_str())));
        assert_eq!(split_name(OsStr::new(".lock")), None);
        assert_eq!(split_name(OsStr::new(&format!(".tmp-{id}-0011"))), None);
        assert_eq!(split_name(OsStr::new(&format!("{binding}-{id}.json.bak"))), None);
        assert_eq!(split_name(OsStr::new(&format!("{binding}-../{id}.json"))), None);
    }

    #[test]
    fn random_ids_are_hex_and_differ() {
        let a = random_hex(16).unwrap();
        assert!(is_hex(&a, 32));
        assert_ne!(a, random_hex(16).unwrap());
    }

    #[test]
    fn world_writable_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(Store::open(dir.path()), Err(ApprovalError::InsecureDir { .. })));
    }

    #[test]
    fn the_directory_is_created_0700_by_the_first_lock() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state/approvals");
        let store = Store::open(&dir).unwrap();
        assert!(!dir.exists());
        assert!(store.all_files().unwrap().is_empty());
        drop(store.locked().unwrap());
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(dir.join(LOCK_FILE).is_file());
    }
}
