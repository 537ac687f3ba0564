//! The protected-path guard: digests of the protected trees of a workspace (tests, evals,
//! benchmarks, the policies), taken before and after every call that can write, so that a
//! change to them is seen whatever route made it.
//!
//! Owns: per-workspace [`TreeState`] (one entry per file, directory and symlink: kind, inode,
//! mode, owner, link count, and the sha256 of a file's bytes or a symlink's target) and
//! its upkeep. The first check of a workspace scans every protected tree (the cold check)
//! and puts an inotify watch on every directory and file in them, and on each directory
//! from the workspace down to a protected root (to see the root itself replaced). A later
//! check reads the inotify queue: no event and no overflow means nothing changed (the
//! kernel reports every change made through any path or mount to a watched inode, so a
//! tool cannot forge the silence); an event rescans and rehashes exactly the paths it
//! names, never reusing a digest there; an overflow, or any inotify error, rescans and
//! rehashes everything.
//!
//! Without inotify (no watches left, the call failed) every check is a full rescan: a
//! check after a call that could write rehashes every file; a check before a call reuses a
//! file's digest only when its device, inode, size, mtime and ctime are unchanged.
//!
//! Must not: trust a digest it cannot back (any error reading a tree is a [`GuardError`],
//! which the runtime turns into a refusal or a `tampered` outcome, never into a pass), or
//! follow a symlink: a protected path is digested as it is named.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    io::{self, Read},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use sha2::{Digest, Sha256};

use crate::inotify::{Drained, Inotify, WATCH_MASK};

/// Why the protected trees could not be digested. The call is refused (before) or its
/// outcome is `tampered` (after): a check that cannot be made is never a pass.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("cannot read protected path {path}: {source}; fix its permissions or remove it from `protected`")]
    Read { path: PathBuf, source: io::Error },
    #[error("the guard's state of workspace {workspace} was poisoned by a panic; restart airlock")]
    Poisoned { workspace: PathBuf },
}

/// How a check was made (for the audit record and the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// The first check of the workspace: every tree scanned and hashed, watches set.
    Cold,
    /// No inotify event since the last check: nothing changed.
    Quiet,
    /// Events named these many paths; only they were rescanned and rehashed.
    Partial(usize),
    /// Everything rescanned (inotify overflowed, failed, or is unavailable).
    Full,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardCheck {
    /// What changed since the last check, one line each: `tests/test_x.py (modified)`.
    pub changes: Vec<String>,
    /// How the check was made.
    pub kind: CheckKind,
    /// Why inotify is not used for this workspace, if it is not.
    pub note: Option<String>,
}

/// The guard: one [`TreeState`] per (workspace, protected paths), kept for the runtime's
/// life.
#[derive(Debug, Default)]
pub struct Guard {
    states: Mutex<HashMap<StateKey, Arc<Mutex<TreeState>>>>,
}

/// A workspace and its protected paths (sorted): one [`TreeState`] each.
type StateKey = (PathBuf, Vec<String>);

impl Guard {
    /// A guard that knows no workspace yet (each one's first check is cold).
    pub fn new() -> Guard {
        Guard::default()
    }

    fn state(&self, workspace: &Path, protected: &[String]) -> Arc<Mutex<TreeState>> {
        let mut roots: Vec<String> = protected.to_vec();
        roots.sort();
        roots.dedup();
        let key = (workspace.to_path_buf(), roots);
        let mut states = match self.states.lock() {
            Ok(states) => states,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Every call looks its state up twice: no key clone on a hit.
        if let Some(state) = states.get(&key) {
            return Arc::clone(state);
        }
        let state = Arc::new(Mutex::new(TreeState::new(key.0.clone(), &key.1)));
        states.insert(key, Arc::clone(&state));
        state
    }

    /// Checks the protected paths of `workspace` (relative to it, existing or not) against
    /// the last check: the changes since then. The first check of a workspace records the
    /// baseline and reports no change. `after_write`: the check follows a call that could
    /// write (without inotify, no digest is then reused).
    ///
    /// May scan and hash whole trees: call it where blocking is allowed, or try
    /// [`Guard::check_quiet`] first.
    pub fn check(&self, workspace: &Path, protected: &[String], after_write: bool) -> Result<GuardCheck, GuardError> {
        let state = self.state(workspace, protected);
        let mut state = state.lock().map_err(|_| GuardError::Poisoned { workspace: workspace.to_path_buf() })?;
        state.check(after_write)
    }

    /// The check when it needs no scan: `Some` when the workspace's trees are known and
    /// inotify reports no event (nothing changed); `None` when a scan is needed (call
    /// [`Guard::check`], where blocking is allowed). Never blocks on the file system.
    pub fn check_quiet(&self, workspace: &Path, protected: &[String]) -> Option<GuardCheck> {
        let state = self.state(workspace, protected);
        let mut state = state.lock().ok()?;
        state.check_quiet()
    }
}

/// What a path in a protected tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Absent,
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Absent => "nothing",
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Other => "special file",
        }
    }
}

/// One path's recorded state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// sha256 of a file's bytes; a symlink's target.
    content: Vec<u8>,
}

impl Entry {
    fn absent() -> Entry {
        Entry {
            kind: Kind::Absent,
            dev: 0,
            ino: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 0,
            size: 0,
            mtime: (0, 0),
            ctime: (0, 0),
            content: Vec::new(),
        }
    }

    fn of(kind: Kind, meta: &fs::Metadata) -> Entry {
        Entry {
            kind,
            dev: meta.dev(),
            ino: meta.ino(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            nlink: meta.nlink(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            content: Vec::new(),
        }
    }

    /// Same inode, same size and times: a digest taken of it may be reused where reuse is
    /// allowed.
    fn same_stat(&self, other: &Entry) -> bool {
        self.kind == other.kind
            && self.dev == other.dev
            && self.ino == other.ino
            && self.size == other.size
            && self.mtime == other.mtime
            && self.ctime == other.ctime
    }

    /// How `self` (before) differs from `new`, in a word or two; `None`: no difference
    /// that matters (times alone, or a directory's link count, do not).
    fn change_to(&self, new: &Entry) -> Option<String> {
        match (self.kind, new.kind) {
            (Kind::Absent, Kind::Absent) => None,
            (Kind::Absent, kind) => Some(format!("created: a {}", kind.name())),
            (_, Kind::Absent) => Some("deleted".to_string()),
            (old, kind) if old != kind => Some(format!("replaced: was a {}, now a {}", old.name(), kind.name())),
            _ if self.dev != new.dev || self.ino != new.ino => Some("replaced by another file".to_string()),
            (Kind::Symlink, _) if self.content != new.content => Some("symlink retargeted".to_string()),
            _ if self.content != new.content => Some("modified".to_string()),
            _ if self.mode != new.mode => Some(format!("mode changed {:o} -> {:o}", self.mode, new.mode)),
            _ if self.uid != new.uid || self.gid != new.gid => Some("owner changed".to_string()),
            (Kind::File, _) if self.nlink != new.nlink => {
                Some(format!("hard link count changed {} -> {}", self.nlink, new.nlink))
            }
            _ => None,
        }
    }
}

/// What an inotify watch descriptor stands for.
#[derive(Debug, Default)]
struct Watched {
    /// Paths in a protected tree with this inode (several for hard links).
    tree: BTreeSet<String>,
    /// An ancestor directory of protected roots: child name -> the roots below it.
    ancestor: BTreeMap<Vec<u8>, BTreeSet<String>>,
}

/// The recorded state of one workspace's protected trees.
#[derive(Debug)]
struct TreeState {
    workspace: PathBuf,
    /// The protected roots, relative, none inside another.
    roots: Vec<String>,
    inotify: Option<Inotify>,
    note: Option<String>,
    watches: HashMap<i32, Watched>,
    /// Every path of every tree (relative to the workspace), roots included (absent
    /// ones as [`Kind::Absent`]). `None` before the first check.
    entries: Option<BTreeMap<String, Entry>>,
    /// Events a quiet check read but could not handle without scanning.
    pending: Option<Drained>,
}

impl TreeState {
    fn new(workspace: PathBuf, protected: &[String]) -> TreeState {
        // A root inside another is covered by it.
        let mut roots: Vec<String> = Vec::new();
        for root in protected {
            let covered = protected.iter().any(|other| other != root && is_within(root, other));
            if !covered && !roots.contains(root) {
                roots.push(root.clone());
            }
        }
        let (inotify, note) = match Inotify::new() {
            Ok(inotify) => (Some(inotify), None),
            Err(e) => (None, Some(format!("inotify is unavailable ({e}): every check rescans the protected trees"))),
        };
        TreeState { workspace, roots, inotify, note, watches: HashMap::new(), entries: None, pending: None }
    }

    fn result(&self, changes: Vec<String>, kind: CheckKind) -> GuardCheck {
        GuardCheck { changes, kind, note: self.note.clone() }
    }

    fn check_quiet(&mut self) -> Option<GuardCheck> {
        self.entries.as_ref()?;
        let inotify = self.inotify.as_ref()?;
        match inotify.drain() {
            Ok(drained) if drained.events.is_empty() && !drained.overflow => {
                Some(self.result(Vec::new(), CheckKind::Quiet))
            }
            // Events (or an error) are handled by a full check; keep what was read.
            Ok(drained) => {
                self.pending = Some(drained);
                None
            }
            Err(_) => None,
        }
    }

    fn check(&mut self, after_write: bool) -> Result<GuardCheck, GuardError> {
        let Some(old) = self.entries.take() else {
            let entries = self.scan_all()?;
            self.entries = Some(entries);
            return Ok(self.result(Vec::new(), CheckKind::Cold));
        };
        let drained = match (self.pending.take(), &self.inotify) {
            (Some(drained), _) => Some(drained),
            (None, Some(inotify)) => match inotify.drain() {
                Ok(drained) => Some(drained),
                Err(e) => {
                    self.disable_inotify(format!("reading inotify events failed ({e})"));
                    None
                }
            },
            (None, None) => None,
        };
        let drained = match drained {
            Some(drained) if !drained.overflow && self.inotify.is_some() => drained,
            Some(_) if self.inotify.is_some() => {
                // The kernel dropped events: nothing can be concluded from the queue.
                let new = self.scan_all();
                return self.finish_full(old, new);
            }
            _ => {
                let new = self.scan_all_reusing(&old, !after_write);
                return self.finish_full(old, new);
            }
        };
        if drained.events.is_empty() {
            self.entries = Some(old);
            return Ok(self.result(Vec::new(), CheckKind::Quiet));
        }
        let dirty = self.dirty_paths(&drained);
        let mut entries = old;
        let mut changes = Vec::new();
        for rel in &dirty {
            let before: Vec<(String, Entry)> =
                entries.iter().filter(|(p, _)| is_within(p, rel)).map(|(p, e)| (p.clone(), e.clone())).collect();
            let mut fresh = BTreeMap::new();
            let scanned = self.watch_ancestors_of(rel).and_then(|()| self.scan(rel, None, &mut fresh));
            if let Err(e) = scanned {
                // Fail closed, and start again from a cold scan at the next check.
                self.entries = None;
                return Err(e);
            }
            let before: BTreeMap<String, Entry> = before.into_iter().collect();
            changes.extend(diff(&before, &fresh));
            entries.retain(|p, _| !is_within(p, rel));
            entries.extend(fresh);
        }
        self.entries = Some(entries);
        Ok(self.result(changes, CheckKind::Partial(dirty.len())))
    }

    fn finish_full(
        &mut self,
        old: BTreeMap<String, Entry>,
        new: Result<BTreeMap<String, Entry>, GuardError>,
    ) -> Result<GuardCheck, GuardError> {
        match new {
            Ok(new) => {
                let changes = diff(&old, &new);
                self.entries = Some(new);
                Ok(self.result(changes, CheckKind::Full))
            }
            Err(e) => {
                self.entries = None;
                Err(e)
            }
        }
    }

    fn disable_inotify(&mut self, why: String) {
        self.inotify = None;
        self.watches.clear();
        self.note = Some(format!("{why}: every check now rescans the protected trees"));
    }

    /// The paths the events name, none inside another: each is rescanned whole.
    fn dirty_paths(&self, drained: &Drained) -> Vec<String> {
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        for event in &drained.events {
            let Some(watched) = self.watches.get(&event.wd) else { continue };
            for rel in &watched.tree {
                match &event.name {
                    Some(name) => {
                        dirty.insert(join(rel, &String::from_utf8_lossy(name)));
                    }
                    None => {
                        dirty.insert(rel.clone());
                    }
                }
            }
            match &event.name {
                Some(name) => {
                    if let Some(roots) = watched.ancestor.get(name) {
                        dirty.extend(roots.iter().cloned());
                    }
                }
                None => {
                    for roots in watched.ancestor.values() {
                        dirty.extend(roots.iter().cloned());
                    }
                }
            }
        }
        let all: Vec<String> = dirty.into_iter().collect();
        all.iter().filter(|p| !all.iter().any(|q| q != *p && is_within(p, q))).cloned().collect()
    }

    fn scan_all(&mut self) -> Result<BTreeMap<String, Entry>, GuardError> {
        let mut entries = BTreeMap::new();
        for root in self.roots.clone() {
            self.watch_ancestors_of(&root)?;
            self.scan(&root, None, &mut entries)?;
        }
        Ok(entries)
    }

    /// A full rescan; a file's digest is reused from `old` when `reuse` and its stat is
    /// unchanged.
    fn scan_all_reusing(
        &mut self,
        old: &BTreeMap<String, Entry>,
        reuse: bool,
    ) -> Result<BTreeMap<String, Entry>, GuardError> {
        let mut entries = BTreeMap::new();
        for root in self.roots.clone() {
            self.scan(&root, reuse.then_some(old), &mut entries)?;
        }
        Ok(entries)
    }

    /// Adds `wd` -> `watched` (merged with what the descriptor already stands for).
    fn watch(&mut self, path: &Path, add: impl FnOnce(&mut Watched)) -> Result<(), GuardError> {
        let Some(inotify) = &self.inotify else { return Ok(()) };
        match inotify.add_watch(path, WATCH_MASK) {
            Ok(wd) => {
                add(self.watches.entry(wd).or_default());
                Ok(())
            }
            // Gone between listing and watching: the scan sees it gone too.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                self.disable_inotify(format!("an inotify watch on {} failed ({e})", path.display()));
                Ok(())
            }
        }
    }

    /// Watches each directory from the workspace down to the parent of the protected root
    /// `rel` lies in, for the name of the next step, so that replacing the root (or a
    /// directory above it) is seen.
    fn watch_ancestors_of(&mut self, rel: &str) -> Result<(), GuardError> {
        let Some(root) = self.roots.iter().find(|r| is_within(rel, r)).cloned() else {
            return Ok(());
        };
        let parts: Vec<&str> = root.split('/').collect();
        let mut dir = self.workspace.clone();
        for part in parts {
            let name = part.as_bytes().to_vec();
            let root = root.clone();
            self.watch(&dir.clone(), move |w| {
                w.ancestor.entry(name).or_default().insert(root);
            })?;
            dir.push(part);
            if !dir.is_dir() || dir.is_symlink() {
                break;
            }
        }
        Ok(())
    }

    /// Records `rel` and everything below it into `out`, watching each directory and file
    /// before reading it (so that a change after the read is an event). A file's digest is
    /// taken from `reuse` when its stat there is the same.
    fn scan(
        &mut self,
        rel: &str,
        reuse: Option<&BTreeMap<String, Entry>>,
        out: &mut BTreeMap<String, Entry>,
    ) -> Result<(), GuardError> {
        let path = self.workspace.join(rel);
        let read_error = |source: io::Error| GuardError::Read { path: path.clone(), source };
        let owned = rel.to_string();
        self.watch(&path, |w| {
            w.tree.insert(owned);
        })?;
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                out.insert(rel.to_string(), Entry::absent());
                return Ok(());
            }
            Err(e) => return Err(read_error(e)),
        };
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            let mut entry = Entry::of(Kind::Symlink, &meta);
            entry.content = fs::read_link(&path).map_err(read_error)?.into_os_string().into_encoded_bytes();
            out.insert(rel.to_string(), entry);
        } else if file_type.is_dir() {
            out.insert(rel.to_string(), Entry::of(Kind::Dir, &meta));
            let mut names: Vec<String> = Vec::new();
            for child in fs::read_dir(&path).map_err(read_error)? {
                let child = child.map_err(read_error)?;
                names.push(child.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            for name in names {
                self.scan(&join(rel, &name), reuse, out)?;
            }
        } else if file_type.is_file() {
            let stat = Entry::of(Kind::File, &meta);
            let previous = reuse.and_then(|old| old.get(rel)).filter(|old| old.same_stat(&stat));
            let entry = match previous {
                Some(previous) => {
                    Entry { nlink: stat.nlink, mode: stat.mode, uid: stat.uid, gid: stat.gid, ..previous.clone() }
                }
                None => hash_file(&path).map_err(read_error)?,
            };
            out.insert(rel.to_string(), entry);
        } else {
            out.insert(rel.to_string(), Entry::of(Kind::Other, &meta));
        }
        Ok(())
    }
}

/// Opens `path` without following a symlink or blocking on a FIFO, and digests what it
/// read: the entry is the opened file's own stat, so a swap between stat and read cannot
/// pair one file's stat with another's bytes.
fn hash_file(path: &Path) -> io::Result<Entry> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    let mut entry = Entry::of(if meta.is_file() { Kind::File } else { Kind::Other }, &meta);
    if meta.is_file() {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        entry.content = hasher.finalize().to_vec();
    }
    Ok(entry)
}

/// The changes from `old` to `new`, one line per path: `tests/x.py (modified)`.
fn diff(old: &BTreeMap<String, Entry>, new: &BTreeMap<String, Entry>) -> Vec<String> {
    let absent = Entry::absent();
    let paths: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let before = old.get(path).unwrap_or(&absent);
            let after = new.get(path).unwrap_or(&absent);
            before.change_to(after).map(|what| format!("{path} ({what})"))
        })
        .collect()
}

/// `rel` joined with a child name.
fn join(rel: &str, name: &str) -> String {
    if rel == "." || rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") }
}

/// Whether relative path `path` is `root` or lies below it.
fn is_within(path: &str, root: &str) -> bool {
    path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected() -> Vec<String> {
        vec!["tests".to_string(), "eval".to_string()]
    }

    #[test]
    fn first_check_is_cold_then_quiet_until_something_changes() {
        let ws = tempfile::tempdir().unwrap();
        fs::create_dir_all(ws.path().join("tests/unit")).unwrap();
        fs::write(ws.path().join("tests/unit/test_a.py"), b"assert 1").unwrap();
        let guard = Guard::new();
        let first = guard.check(ws.path(), &protected(), false).unwrap();
        assert_eq!(first.kind, CheckKind::Cold);
        assert_eq!(guard.check_quiet(ws.path(), &protected()).map(|c| c.kind), Some(CheckKind::Quiet));
        // A change elsewhere in the workspace is no change.
        fs::write(ws.path().join("main.py"), b"x").unwrap();
        let check = guard.check(ws.path(), &protected(), true).unwrap();
        assert!(check.changes.is_empty(), "{check:?}");

        fs::write(ws.path().join("tests/unit/test_a.py"), b"assert True").unwrap();
        assert!(guard.check_quiet(ws.path(), &protected()).is_none());
        let check = guard.check(ws.path(), &protected(), true).unwrap();
        assert_eq!(check.changes, vec!["tests/unit/test_a.py (modified)"]);
        // Reported once.
        assert!(guard.check(ws.path(), &protected(), true).unwrap().changes.is_empty());
    }

    #[test]
    fn creation_removal_rename_and_root_swap_are_changes() {
        let ws = tempfile::tempdir().unwrap();
        fs::create_dir_all(ws.path().join("tests")).unwrap();
        fs::write(ws.path().join("tests/t.py"), b"1").unwrap();
        let guard = Guard::new();
        guard.check(ws.path(), &protected(), false).unwrap();

        fs::create_dir(ws.path().join("eval")).unwrap();
        let check = guard.check(ws.path(), &protected(), true).unwrap();
        assert_eq!(check.changes, vec!["eval (created: a directory)"]);

        fs::rename(ws.path().join("tests/t.py"), ws.path().join("tests/u.py")).unwrap();
        let check = guard.check(ws.path(), &protected(), true).unwrap();
        assert_eq!(check.changes, vec!["tests/t.py (deleted)", "tests/u.py (created: a file)"]);

        fs::rename(ws.path().join("tests"), ws.path().join("old")).unwrap();
        std::os::unix::fs::symlink("old", ws.path().join("tests")).unwrap();
        let check = guard.check(ws.path(), &protected(), true).unwrap();
        assert!(check.changes.contains(&"tests (replaced: was a directory, now a symlink)".to_string()), "{check:?}");
        assert!(check.changes.contains(&"tests/u.py (deleted)".to_string()), "{check:?}");
    }

    #[test]
    fn a_write_through_a_hard_link_outside_the_tree_is_seen() {
        let ws = tempfile::tempdir().unwrap();
        fs::create_dir_all(ws.path().join("tests")).unwrap();
        fs::write(ws.path().join("tests/t.py"), b"1").unwrap();
        fs::hard_link(ws.path().join("tests/t.py"), ws.path().join("alias.py")).unwrap();
        let guard = Guard::new();
        guard.check(ws.path(), &protected(), false).unwrap();
        fs::write(ws.path().join("alias.py"), b"2").unwrap();
        let check = guard.check(ws.path(), &protected(), true).unwrap();
        assert_eq!(check.changes, vec!["tests/t.py (modified)"]);
    }

    #[test]
    fn without_inotify_a_full_rescan_finds_the_same_changes() {
        let ws = tempfile::tempdir().unwrap();
        fs::create_dir_all(ws.path().join("tests")).unwrap();
        fs::write(ws.path().join("tests/t.py"), b"1").unwrap();
        let mut state = TreeState::new(ws.path().to_path_buf(), &protected());
        state.disable_inotify("test".into());
        state.check(false).unwrap();
        std::fs::set_permissions(ws.path().join("tests/t.py"), std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let check = state.check(true).unwrap();
        assert_eq!(check.kind, CheckKind::Full);
        assert_eq!(check.changes.len(), 1, "{check:?}");
        assert!(check.changes[0].starts_with("tests/t.py (mode changed"), "{check:?}");
    }
}
