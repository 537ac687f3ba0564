//! The cache of resolved protected paths: what [`resolve_protected`] made of a workspace's
//! protected paths, kept across calls while no directory it looked into changed.
//!
//! Owns: per (canonical workspace, protected paths), the resolved mounts and notes, and an
//! inotify watch on every directory the resolution looked up an entry of (the workspace,
//! and each directory on the way to a protected path). A cached resolution is used only
//! when the queue is empty: no entry of a watched directory created, deleted, moved or
//! changed its attributes, no watched directory moved or deleted, no overflow. Anything
//! else (an event, an overflow, an inotify error, a panic while the cache was held) drops
//! the resolutions it may concern, and the call resolves again.
//!
//! Must not: cache a resolution that took a symlink or an error (those go through the full
//! `canonicalize`, at every call), or look up an entry of a directory before its watch is
//! set (a change after the lookup must be an event). A mount made on the host over a
//! watched directory is no inotify event; only the host's root can make one, which no
//! tool call can (a jailed tool's mounts stay in its own namespace).

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use super::grant::{
    FileGrants, GrantError, ResolvedMounts, WorkspacePath, resolve_protected, resolve_protected_watching,
};
use crate::inotify::{ENTRIES_MASK, Watches};

/// Caps the cached resolutions (each holds watches) so that calls in many workspaces
/// cannot exhaust the user's inotify watches.
const MAX_ENTRIES: usize = 64;

/// The resolutions of the workspaces calls were made in. One per policy set.
#[derive(Debug, Default)]
pub(super) struct ProtectedCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Made at the first resolution (a policy set used only to explain makes none).
    started: bool,
    /// `None`: inotify is unavailable or failed; nothing is cached.
    watches: Option<Watches>,
    /// Oldest first.
    entries: Vec<Entry>,
}

/// One workspace's resolved protected paths.
#[derive(Debug)]
struct Entry {
    workspace: PathBuf,
    protected: Vec<WorkspacePath>,
    resolved: ResolvedMounts,
    /// The watch of every directory the resolution looked into.
    watches: Vec<i32>,
}

impl ProtectedCache {
    /// [`resolve_protected`] of `files` in canonical `workspace`, from the cache when
    /// nothing it rests on changed.
    pub fn resolve(&self, files: &FileGrants, workspace: &Path) -> Result<ResolvedMounts, GrantError> {
        if files.protected.is_empty() {
            return Ok(ResolvedMounts::default());
        }
        let mut state = self.lock();
        state.drop_stale();
        let State { watches: Some(watches), entries, .. } = &mut *state else {
            return resolve_protected(files, workspace);
        };
        let found = entries.iter().find(|entry| entry.workspace == workspace && entry.protected == files.protected);
        if let Some(entry) = found {
            return Ok(entry.resolved.clone());
        }
        let mut held = Vec::new();
        let mut watch = |dir: &Path| match watches.hold_path(dir, ENTRIES_MASK) {
            Ok(wd) => {
                held.push(wd);
                true
            }
            Err(_) => false,
        };
        let (resolved, cacheable) = match resolve_protected_watching(files, workspace, &mut watch) {
            Ok(resolved) => resolved,
            Err(error) => {
                watches.release(&held);
                return Err(error);
            }
        };
        if !cacheable {
            watches.release(&held);
            return Ok(resolved);
        }
        if entries.len() >= MAX_ENTRIES {
            let oldest = entries.remove(0);
            watches.release(&oldest.watches);
        }
        entries.push(Entry {
            workspace: workspace.to_path_buf(),
            protected: files.protected.clone(),
            resolved: resolved.clone(),
            watches: held,
        });
        Ok(resolved)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => {
                // A panic mid-update: trust nothing that was cached, and cache no more.
                let mut state = poisoned.into_inner();
                state.entries.clear();
                state.watches = None;
                state
            }
        };
        if !state.started {
            state.started = true;
            state.watches = Watches::new().ok();
        }
        state
    }
}

impl State {
    /// Drops every entry an event may concern: one that watches the event's directory,
    /// every entry on an overflow, and everything (for good) when inotify fails.
    fn drop_stale(&mut self) {
        let Some(watches) = self.watches.as_mut() else { return };
        let drained = match watches.drain() {
            Ok(drained) => drained,
            Err(_) => {
                self.entries.clear();
                self.watches = None;
                return;
            }
        };
        if drained.events.is_empty() && !drained.overflow {
            return;
        }
        let (stale, kept): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|entry| drained.overflow || drained.events.iter().any(|e| entry.watches.contains(&e.wd)));
        self.entries = kept;
        for entry in stale {
            watches.release(&entry.watches);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(paths: &[&str]) -> FileGrants {
        FileGrants {
            protected: paths.iter().map(|p| WorkspacePath::parse(p).unwrap()).collect(),
            ..FileGrants::default()
        }
    }

    fn guests(resolved: &ResolvedMounts) -> Vec<&str> {
        resolved.mounts.iter().map(|m| m.guest.as_str()).collect()
    }

    /// Resolves through the cache and checks the result is what an uncached resolution
    /// finds now.
    fn resolve_both(cache: &ProtectedCache, files: &FileGrants, ws: &Path) -> ResolvedMounts {
        let cached = cache.resolve(files, ws).unwrap();
        assert_eq!(cached, resolve_protected(files, ws).unwrap());
        cached
    }

    fn cached_entries(cache: &ProtectedCache) -> usize {
        cache.state.lock().unwrap().entries.len()
    }

    #[test]
    fn a_resolution_is_reused_until_a_directory_it_looked_into_changes() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(ws.join("tests/unit")).unwrap();
        let files = protected(&["tests/unit", "eval", "a/b"]);
        let cache = ProtectedCache::default();
        let first = resolve_both(&cache, &files, &ws);
        assert_eq!(guests(&first), ["tests/unit"]);
        assert_eq!(first.notes.len(), 1, "one note names every missing path: {:?}", first.notes);
        assert!(first.notes[0].contains("\"eval\", \"a/b\""), "{:?}", first.notes);
        assert_eq!(cached_entries(&cache), 1);

        // A file written where nothing is looked up changes nothing.
        std::fs::write(ws.join("tests/unit/test_a.py"), b"x").unwrap();
        assert_eq!(resolve_both(&cache, &files, &ws), first);
        assert_eq!(cached_entries(&cache), 1);

        // A protected path created: seen.
        std::fs::create_dir(ws.join("eval")).unwrap();
        assert_eq!(guests(&resolve_both(&cache, &files, &ws)), ["tests/unit", "eval"]);
        // A directory on the way to one created, then the path itself.
        std::fs::create_dir(ws.join("a")).unwrap();
        assert_eq!(guests(&resolve_both(&cache, &files, &ws)), ["tests/unit", "eval"]);
        std::fs::create_dir(ws.join("a/b")).unwrap();
        assert_eq!(guests(&resolve_both(&cache, &files, &ws)), ["tests/unit", "eval", "a/b"]);
        // Deleted again.
        std::fs::remove_dir(ws.join("a/b")).unwrap();
        assert_eq!(guests(&resolve_both(&cache, &files, &ws)), ["tests/unit", "eval"]);
        assert_eq!(cached_entries(&cache), 1);
    }

    #[test]
    fn a_protected_directory_swapped_for_a_symlink_is_never_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("tests")).unwrap();
        std::fs::create_dir_all(ws.join("real/tests")).unwrap();
        let ws = ws.canonicalize().unwrap();
        let files = protected(&["tests"]);
        let cache = ProtectedCache::default();
        assert_eq!(guests(&resolve_both(&cache, &files, &ws)), ["tests"]);

        // Renamed away and replaced by a symlink into the workspace: the mount is where
        // the symlink leads, and such a resolution is not cached.
        std::fs::rename(ws.join("tests"), ws.join("old")).unwrap();
        std::os::unix::fs::symlink("real/tests", ws.join("tests")).unwrap();
        assert_eq!(guests(&resolve_both(&cache, &files, &ws)), ["real/tests"]);
        assert_eq!(cached_entries(&cache), 0);
        // A symlink out of the workspace is an error, every time.
        std::fs::remove_file(ws.join("tests")).unwrap();
        std::os::unix::fs::symlink("/", ws.join("tests")).unwrap();
        assert!(matches!(cache.resolve(&files, &ws), Err(GrantError::Escapes { .. })));
        assert!(matches!(cache.resolve(&files, &ws), Err(GrantError::Escapes { .. })));
        assert_eq!(cached_entries(&cache), 0);
    }

    #[test]
    fn a_workspace_moved_away_and_replaced_is_resolved_again() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("tests")).unwrap();
        let ws = ws.canonicalize().unwrap();
        let files = protected(&["tests"]);
        let cache = ProtectedCache::default();
        assert_eq!(guests(&resolve_both(&cache, &files, &ws)), ["tests"]);
        std::fs::rename(&ws, dir.path().join("moved")).unwrap();
        std::fs::create_dir(&ws).unwrap();
        assert!(guests(&resolve_both(&cache, &files, &ws)).is_empty());
    }

    #[test]
    fn workspaces_and_path_lists_are_cached_apart() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        std::fs::create_dir_all(one.join("tests")).unwrap();
        std::fs::create_dir_all(two.join("eval")).unwrap();
        let (one, two) = (one.canonicalize().unwrap(), two.canonicalize().unwrap());
        let cache = ProtectedCache::default();
        let both = protected(&["tests", "eval"]);
        let tests = protected(&["tests"]);
        assert_eq!(guests(&resolve_both(&cache, &both, &one)), ["tests"]);
        assert_eq!(guests(&resolve_both(&cache, &both, &two)), ["eval"]);
        assert!(guests(&resolve_both(&cache, &tests, &two)).is_empty());
        assert_eq!(cached_entries(&cache), 3);
        // A change in one workspace drops only what looked into it.
        std::fs::create_dir(two.join("tests")).unwrap();
        assert_eq!(guests(&resolve_both(&cache, &both, &two)), ["tests", "eval"]);
        assert_eq!(guests(&resolve_both(&cache, &tests, &two)), ["tests"]);
        assert_eq!(guests(&resolve_both(&cache, &both, &one)), ["tests"]);
        assert_eq!(cached_entries(&cache), 3);
    }
}
