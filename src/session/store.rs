//! The sessions directory on disk: one JSON file per suspended session, written
//! atomically under a lock.
//!
//! Owns: the directory (created 0700 by the first suspension; refused when anyone may
//! write it), file names (`<sha256 of the session id>.json`, so any id is a safe name),
//! reading one file with its checks, writing (temp file, fsync, rename, fsync of the
//! directory) and removing, under an in-process mutex plus `flock(LOCK_EX)` on `.lock`, so
//! that a service and a CLI on one directory never interleave.
//! Must not: decide when a session is suspended; the module root does.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use sha2::{Digest, Sha256};

use super::{Result, SessionError, Suspension};

/// Caps one suspension file, so a huge file planted there cannot exhaust memory.
const MAX_SUSPENSION_FILE_BYTES: u64 = 64 * 1024;

/// The lock file's name inside the directory.
const LOCK_FILE: &str = ".lock";

#[derive(Debug)]
pub(super) struct Store {
    dir: PathBuf,
    mutex: Mutex<()>,
}

/// Holds the store's lock until dropped.
struct Locked<'a> {
    file: File,
    _mutex: MutexGuard<'a, ()>,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Store {
    pub(super) fn new(dir: &Path) -> Store {
        Store { dir: dir.to_path_buf(), mutex: Mutex::new(()) }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, session: &str) -> PathBuf {
        self.dir.join(format!("{}.json", hex::encode(Sha256::digest(session.as_bytes()))))
    }

    /// The suspension of `session`, if it is suspended. A missing directory is no
    /// suspension; any other failure to read is an error (the caller fails closed).
    pub(super) fn load(&self, session: &str) -> Result<Option<Suspension>> {
        let path = self.path_of(session);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The file is absent, but a directory that is not one (or not ours) must
                // not read as "nothing suspended".
                return match fs::metadata(&self.dir) {
                    Ok(meta) if !meta.is_dir() => Err(SessionError::Read {
                        path: self.dir.clone(),
                        source: std::io::Error::other("the sessions directory is not a directory"),
                    }),
                    _ => Ok(None),
                };
            }
            Err(source) => return Err(SessionError::Read { path, source }),
        };
        let suspension = read_file(file, &path)?;
        if suspension.session != session {
            return Err(SessionError::Corrupt {
                path,
                reason: format!("it names session {:?}, not {session:?}: it was renamed or copied", suspension.session),
            });
        }
        Ok(Some(suspension))
    }

    /// Every suspension in the directory.
    pub(super) fn all(&self) -> Result<Vec<Suspension>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(SessionError::Read { path: self.dir.clone(), source }),
        };
        let mut all = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SessionError::Read { path: self.dir.clone(), source })?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            if stem.len() != 64 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let path = entry.path();
            let file = File::open(&path).map_err(|source| SessionError::Read { path: path.clone(), source })?;
            all.push(read_file(file, &path)?);
        }
        all.sort_by(|a, b| a.session.cmp(&b.session));
        Ok(all)
    }

    /// Writes `suspension` unless its session is suspended already; returns the
    /// suspension in force, and whether it is the one just written.
    pub(super) fn save_new(&self, suspension: &Suspension) -> Result<(Suspension, bool)> {
        let _locked = self.locked()?;
        if let Some(existing) = self.load(&suspension.session)? {
            return Ok((existing, false));
        }
        let path = self.path_of(&suspension.session);
        let temp = path.with_extension("json.tmp");
        let write_err = |source| SessionError::Write { path: temp.clone(), source };
        let mut bytes = serde_json::to_vec_pretty(suspension).map_err(|e| write_err(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp).map_err(write_err)?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(write_err)?;
        fs::rename(&temp, &path).map_err(|source| SessionError::Write { path: path.clone(), source })?;
        self.sync_dir()?;
        Ok((suspension.clone(), true))
    }

    /// Removes the suspension of `session`; returns it.
    pub(super) fn remove(&self, session: &str) -> Result<Suspension> {
        let _locked = self.locked()?;
        let Some(suspension) = self.load(session)? else {
            return Err(SessionError::NotSuspended { session: session.to_string() });
        };
        let path = self.path_of(session);
        fs::remove_file(&path).map_err(|source| SessionError::Write { path, source })?;
        self.sync_dir()?;
        Ok(suspension)
    }

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| SessionError::Write { path: self.dir.clone(), source })
    }

    /// Creates the directory if needed, checks it, and takes the lock.
    fn locked(&self) -> Result<Locked<'_>> {
        let guard = self.mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| SessionError::CreateDir { path: self.dir.clone(), source })?;
        let meta = fs::metadata(&self.dir).map_err(|source| SessionError::Read { path: self.dir.clone(), source })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o002 != 0 {
            return Err(SessionError::InsecureDir { path: self.dir.clone(), mode });
        }
        let lock_path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| SessionError::Lock { path: lock_path.clone(), source })?;
        loop {
            match file.lock() {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(SessionError::Lock { path: lock_path, source }),
            }
        }
        Ok(Locked { file, _mutex: guard })
    }
}

/// Reads and parses one suspension file (size-capped).
fn read_file(file: File, path: &Path) -> Result<Suspension> {
    let mut bytes = Vec::new();
    file.take(MAX_SUSPENSION_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SessionError::Read { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > MAX_SUSPENSION_FILE_BYTES {
        return Err(SessionError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("it is larger than {MAX_SUSPENSION_FILE_BYTES} bytes"),
        });
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| SessionError::Corrupt { path: path.to_path_buf(), reason: format!("not a suspension: {e}") })
}
