//! The preopens of a wasm call: the grant's mounts opened as directory descriptors, split
//! around the grant's protected paths so that none is writable, and the cache that keeps
//! a workspace's descriptors across calls while nothing they were opened from changed.
//!
//! Owns: the split ([`plan_mount`]), the opening of workspace directories one component at
//! a time without following symlinks ([`open_beneath`]), and [`PreopenCache`]: per
//! (workspace, mounts, protected paths), the descriptors of the mounts inside the
//! workspace, an inotify watch on every directory the split read or walked through (the
//! workspace root, each directory on the way to a mount or to a protected path) and the
//! root's device and inode. A cached plan is used only when its inotify queue is empty (no
//! entry of a watched directory created, deleted, moved or changed its attributes, no
//! watched directory moved or deleted, no overflow) and the workspace path still names the
//! same root; anything else (an event, an overflow, an inotify error, a failed stat)
//! drops the plan, and the call opens everything again.
//!
//! Must not: open a path inside the workspace by following a symlink (a concurrent jailed
//! call with a write grant could swap a checked directory for a symlink to `/`), read a
//! directory's entries before its watch is set (a change after the read must be an event),
//! or cache a mount outside the workspace (nothing watches the way to it: it is opened
//! again at every call, as the grant names it).

use std::{
    ffi::CString,
    fs::File,
    io,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::{Component, Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use super::WasmError;
use crate::{
    inotify::{ENTRIES_MASK, Watches},
    policy::{Grant, Mount},
};

/// Caps the cached plans (each holds descriptors and watches) so that calls in many
/// workspaces cannot exhaust the process's descriptors or the user's inotify watches.
const MAX_PLANS: usize = 32;

/// One preopen: directory `dir`, shown to the guest at `guest`.
#[derive(Debug)]
pub struct Preopen {
    /// The host path it was opened as (for errors).
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Read-write when true.
    pub writable: bool,
    /// The open directory; wasmtime-wasi reopens it through `/proc/self/fd`.
    pub dir: OwnedFd,
}

/// The preopens of one call, mount by mount in the grant's order (a mount split around
/// protected paths gives several). Holds the descriptors open until the context is built.
#[derive(Debug)]
pub struct CallPreopens {
    groups: Vec<Arc<[Preopen]>>,
}

impl CallPreopens {
    /// Every preopen, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Preopen> {
        self.groups.iter().flat_map(|group| group.iter())
    }
}

/// The cached plans of the workspaces calls were made in. One per backend.
#[derive(Debug)]
pub struct PreopenCache {
    state: Mutex<CacheState>,
}

#[derive(Debug)]
struct CacheState {
    /// `None`: inotify is unavailable or failed; nothing is cached.
    watches: Option<Watches>,
    /// Oldest first.
    plans: Vec<Plan>,
}

/// The opened mounts inside one workspace for one (mounts, protected) pair.
#[derive(Debug)]
struct Plan {
    workspace: PathBuf,
    mounts: Vec<Mount>,
    protected: Vec<Mount>,
    /// Device and inode of the root the plan was opened from.
    root: (u64, u64),
    /// Aligned with `mounts`: `None` for a mount outside the workspace.
    groups: Vec<Option<Arc<[Preopen]>>>,
    /// The watch of every directory the plan read or walked through (held once per time
    /// it was watched).
    watches: Vec<i32>,
}

impl Default for PreopenCache {
    fn default() -> Self {
        PreopenCache::new()
    }
}

impl PreopenCache {
    /// An empty cache with its own inotify instance (without one, nothing is cached and
    /// every call opens its preopens anew).
    pub fn new() -> PreopenCache {
        let state = CacheState { watches: Watches::new().ok(), plans: Vec::new() };
        PreopenCache { state: Mutex::new(state) }
    }

    /// The preopens of `grant`'s call: from the cached plan of its workspace when nothing
    /// it was opened from changed, otherwise opened now (and cached when the grant has
    /// protected paths, where the split makes opening cost several directory reads).
    pub fn preopens(&self, grant: &Grant) -> Result<CallPreopens, WasmError> {
        let workspace = match &grant.workspace {
            Some(workspace)
                if !grant.protected.is_empty() && grant.mounts.iter().any(|m| m.host.starts_with(workspace)) =>
            {
                workspace
            }
            _ => return open_now(grant),
        };
        let cached = self.cached_groups(workspace, grant)?;
        let mut groups = Vec::with_capacity(grant.mounts.len());
        for (mount, group) in grant.mounts.iter().zip(cached) {
            match group {
                Some(group) => groups.push(group),
                None => groups.push(plan_mount(mount, None, &grant.protected)?.into()),
            }
        }
        Ok(CallPreopens { groups })
    }

    /// The groups of the cached plan for `grant` in `workspace`, opening and caching a new
    /// plan when there is none or it is stale.
    fn cached_groups(&self, workspace: &Path, grant: &Grant) -> Result<Vec<Option<Arc<[Preopen]>>>, WasmError> {
        let mut state = self.lock();
        state.drop_stale();
        if state.watches.is_none() {
            return Ok(open_plan(workspace, grant, &mut |_| Ok(()))?.groups);
        }
        let root = match std::fs::metadata(workspace) {
            Ok(meta) => (meta.dev(), meta.ino()),
            Err(source) => return Err(WasmError::OpenMount { host: workspace.to_path_buf(), source }),
        };
        let found = state.plans.iter().position(|plan| {
            plan.workspace == workspace && plan.mounts == grant.mounts && plan.protected == grant.protected
        });
        if let Some(at) = found {
            if state.plans[at].root == root {
                return Ok(state.plans[at].groups.clone());
            }
            // The workspace path names another directory now.
            let plan = state.plans.remove(at);
            state.release(&plan);
        }
        state.open_and_cache(workspace, grant)
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => {
                // A panic mid-update: trust nothing that was cached.
                let mut state = poisoned.into_inner();
                state.disable();
                state
            }
        }
    }
}

impl CacheState {
    /// Drops every plan an event may concern: a plan that watches the event's directory,
    /// every plan on an overflow, and everything (for good) when inotify fails.
    fn drop_stale(&mut self) {
        let Some(watches) = &self.watches else { return };
        let drained = match watches.drain() {
            Ok(drained) => drained,
            Err(_) => return self.disable(),
        };
        if drained.overflow {
            let plans = std::mem::take(&mut self.plans);
            plans.iter().for_each(|plan| self.release(plan));
            return;
        }
        for event in &drained.events {
            let (stale, kept): (Vec<Plan>, Vec<Plan>) =
                std::mem::take(&mut self.plans).into_iter().partition(|plan| plan.watches.contains(&event.wd));
            self.plans = kept;
            stale.iter().for_each(|plan| self.release(plan));
        }
    }

    /// Opens `grant`'s mounts in `workspace`, watching every directory read on the way,
    /// and caches the plan. When a watch cannot be set (no watches left), the plan is used
    /// for this call only.
    fn open_and_cache(&mut self, workspace: &Path, grant: &Grant) -> Result<Vec<Option<Arc<[Preopen]>>>, WasmError> {
        let Some(watches) = self.watches.as_mut() else {
            return Ok(open_plan(workspace, grant, &mut |_| Ok(()))?.groups);
        };
        let mut held = Vec::new();
        let mut unwatched = false;
        let mut watch = |dir: BorrowedFd<'_>| -> io::Result<()> {
            match watches.hold_dir(dir, ENTRIES_MASK) {
                Ok(wd) => held.push(wd),
                Err(_) => unwatched = true,
            }
            Ok(())
        };
        let opened = open_plan(workspace, grant, &mut watch);
        let mut plan = match opened {
            Ok(plan) if !unwatched => plan,
            Ok(plan) => {
                watches.release(&held);
                return Ok(plan.groups);
            }
            Err(error) => {
                watches.release(&held);
                return Err(error);
            }
        };
        plan.watches = held;
        let groups = plan.groups.clone();
        if self.plans.len() >= MAX_PLANS {
            let oldest = self.plans.remove(0);
            self.release(&oldest);
        }
        self.plans.push(plan);
        Ok(groups)
    }

    /// Gives up a plan's watches (a watch no other plan holds is removed).
    fn release(&mut self, plan: &Plan) {
        if let Some(watches) = self.watches.as_mut() {
            watches.release(&plan.watches);
        }
    }

    /// Stops caching: drops every plan and the inotify instance (and with it every watch).
    fn disable(&mut self) {
        self.plans.clear();
        self.watches = None;
    }
}

/// The preopens of `grant` opened now, nothing cached.
fn open_now(grant: &Grant) -> Result<CallPreopens, WasmError> {
    let mut groups = Vec::with_capacity(grant.mounts.len());
    for mount in &grant.mounts {
        groups.push(plan_mount(mount, grant.workspace.as_deref(), &grant.protected)?.into());
    }
    Ok(CallPreopens { groups })
}

/// Opens the mounts of `grant` that lie inside `workspace` from one descriptor of its
/// root, calling `watch` on the root and on every directory read or walked through.
fn open_plan(
    workspace: &Path,
    grant: &Grant,
    watch: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
) -> Result<Plan, WasmError> {
    let open_error = |source| WasmError::OpenMount { host: workspace.to_path_buf(), source };
    let root = File::from(open_dir(libc::AT_FDCWD, workspace.as_os_str().as_bytes(), true).map_err(open_error)?);
    let meta = root.metadata().map_err(open_error)?;
    watch(root.as_fd()).map_err(open_error)?;
    let mut groups = Vec::with_capacity(grant.mounts.len());
    for mount in &grant.mounts {
        if !mount.host.starts_with(workspace) {
            groups.push(None);
            continue;
        }
        let dir = open_beneath(root.as_fd(), workspace, &mount.host, watch)
            .map_err(|source| WasmError::OpenMount { host: mount.host.clone(), source })?;
        let mut out = Vec::new();
        split_opened(mount, dir, &grant.protected, watch, &mut out)?;
        groups.push(Some(out.into()));
    }
    Ok(Plan {
        workspace: workspace.to_path_buf(),
        mounts: grant.mounts.clone(),
        protected: grant.protected.clone(),
        root: (meta.dev(), meta.ino()),
        groups,
        watches: Vec::new(),
    })
}

/// Opens `mount` now (beneath `workspace` when it lies inside it, else by its path) and
/// splits it around `protected`: see [`split`].
fn plan_mount(mount: &Mount, workspace: Option<&Path>, protected: &[Mount]) -> Result<Vec<Preopen>, WasmError> {
    let watch = &mut |_: BorrowedFd<'_>| Ok(());
    let metadata =
        std::fs::metadata(&mount.host).map_err(|source| WasmError::OpenMount { host: mount.host.clone(), source })?;
    if !metadata.is_dir() {
        return Err(WasmError::MountNotDirectory { host: mount.host.clone() });
    }
    let open_error = |source| WasmError::OpenMount { host: mount.host.clone(), source };
    let dir = match workspace {
        Some(workspace) if mount.host.starts_with(workspace) => {
            let root = open_dir(libc::AT_FDCWD, workspace.as_os_str().as_bytes(), true).map_err(open_error)?;
            if mount.host == workspace {
                root
            } else {
                open_beneath(root.as_fd(), workspace, &mount.host, watch).map_err(open_error)?
            }
        }
        // Outside the workspace the grant's canonical path is opened as named, as
        // wasmtime-wasi itself would.
        _ => open_dir(libc::AT_FDCWD, mount.host.as_os_str().as_bytes(), true).map_err(open_error)?,
    };
    let mut out = Vec::new();
    split_opened(mount, dir, protected, watch, &mut out)?;
    Ok(out)
}

/// The preopens of `mount`, open as `dir`: itself when read-only, else [`split`].
fn split_opened(
    mount: &Mount,
    dir: OwnedFd,
    protected: &[Mount],
    watch: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
    out: &mut Vec<Preopen>,
) -> Result<(), WasmError> {
    if !mount.writable {
        out.push(Preopen { host: mount.host.clone(), guest: mount.guest.clone(), writable: false, dir });
        return Ok(());
    }
    split(&mount.host, &mount.guest, dir, false, protected, watch, out)
}

/// Preopens writable directory `host` (open as `dir`, seen as `guest`), read-only where
/// `protected` requires.
///
/// A WASI preopen is one directory handle with one set of permissions for everything
/// beneath it (a guest may open any path below it, whatever its libc does), so a writable
/// directory cannot have a read-only hole. Instead, a writable mount that is, or lies
/// inside, a protected path is read-only; one that contains a protected path becomes a
/// read-only preopen of itself plus, for each subdirectory, the same split again: the
/// protected trees and the directories on the way to them stay read-only (through that
/// read-only preopen, which shows them; they get none of their own), every other
/// subdirectory is a writable preopen. The cost: files directly in a directory on the way
/// to a protected path (the workspace root, when `tests` is protected) are read-only to
/// wasm tools, and no entry can be created there.
///
/// `shown`: an ancestor is already a read-only preopen. Each directory whose entries are
/// read is passed to `watch` first; each subdirectory is opened from its parent's
/// descriptor without following a symlink.
fn split(
    host: &Path,
    guest: &str,
    dir: OwnedFd,
    shown: bool,
    protected: &[Mount],
    watch: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
    out: &mut Vec<Preopen>,
) -> Result<(), WasmError> {
    let covered = protected.iter().any(|p| host.starts_with(&p.host));
    let holds = protected.iter().any(|p| p.host.starts_with(host));
    if covered || !holds {
        if !(covered && shown) {
            out.push(Preopen { host: host.to_path_buf(), guest: guest.to_string(), writable: !covered, dir });
        }
        return Ok(());
    }
    let open_error = |source| WasmError::OpenMount { host: host.to_path_buf(), source };
    watch(dir.as_fd()).map_err(open_error)?;
    let mut children = Vec::new();
    for name in subdirectories(dir.as_fd()).map_err(open_error)? {
        let child = open_dir(dir.as_raw_fd(), name.as_bytes(), false)
            .map_err(|source| WasmError::OpenMount { host: host.join(&name), source })?;
        children.push((name, child));
    }
    if !shown {
        out.push(Preopen { host: host.to_path_buf(), guest: guest.to_string(), writable: false, dir });
    }
    for (name, child) in children {
        let child_guest = if guest == "." { name.clone() } else { format!("{}/{name}", guest.trim_end_matches('/')) };
        split(&host.join(&name), &child_guest, child, true, protected, watch, out)?;
    }
    Ok(())
}

/// The names of the real subdirectories of open directory `dir`, sorted (a symlink is left
/// out: it stays reachable through the read-only parent).
fn subdirectories(dir: BorrowedFd<'_>) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
        let entry = entry?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Opens directory `name` relative to `dir` (or `AT_FDCWD`), following a symlink only when
/// `follow`.
fn open_dir(dir: libc::c_int, name: &[u8], follow: bool) -> io::Result<OwnedFd> {
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let name = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: `name` is a valid C string; `dir` is AT_FDCWD or a descriptor the caller owns.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat just returned this descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens directory `host`, which lies inside `workspace` (open as `root`), from `root` one
/// component at a time, following no symlink below the workspace (`ELOOP` or `ENOTDIR` if
/// one is there). Each directory walked through is passed to `watch` before its next
/// step is opened.
pub(super) fn open_beneath(
    root: BorrowedFd<'_>,
    workspace: &Path,
    host: &Path,
    watch: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<OwnedFd> {
    let relative = host.strip_prefix(workspace).map_err(io::Error::other)?;
    let mut dir: Option<OwnedFd> = None;
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(io::Error::other(format!("{} is not a plain path below the workspace", host.display())));
        };
        let parent = dir.as_ref().map_or(root, |dir| dir.as_fd());
        watch(parent)?;
        dir = Some(open_dir(parent.as_raw_fd(), name.as_bytes(), false)?);
    }
    match dir {
        Some(dir) => Ok(dir),
        None => open_dir(root.as_raw_fd(), b".", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_beneath_path(ws: &Path, host: &Path) -> io::Result<OwnedFd> {
        let root = open_dir(libc::AT_FDCWD, ws.as_os_str().as_bytes(), true)?;
        open_beneath(root.as_fd(), ws, host, &mut |_| Ok(()))
    }

    /// A workspace with `src/`, `docs/` and `tests/unit/`, and a grant writing to all of it
    /// with `tests` protected.
    fn workspace() -> (tempfile::TempDir, Grant) {
        let temp = tempfile::tempdir().unwrap();
        let ws = temp.path().canonicalize().unwrap().join("ws");
        for dir in ["src", "docs", "tests/unit"] {
            std::fs::create_dir_all(ws.join(dir)).unwrap();
        }
        let mut grant =
            Grant::new("t", crate::policy::Program::Wasm { module: "t.wasm".into(), sha256: String::new() });
        grant.mounts = vec![Mount { host: ws.clone(), guest: ".".into(), writable: true }];
        grant.protected = vec![Mount { host: ws.join("tests"), guest: "tests".into(), writable: false }];
        grant.workspace = Some(ws);
        (temp, grant)
    }

    /// Each preopen as (guest, writable, device, inode).
    fn layout(preopens: &CallPreopens) -> Vec<(String, bool, u64, u64)> {
        preopens
            .iter()
            .map(|p| {
                let meta = std::fs::metadata(format!("/proc/self/fd/{}", p.dir.as_raw_fd())).unwrap();
                (p.guest.clone(), p.writable, meta.dev(), meta.ino())
            })
            .collect()
    }

    /// The cached preopens, checked against preopens opened now.
    fn cached_layout(cache: &PreopenCache, grant: &Grant) -> Vec<(String, bool, u64, u64)> {
        let cached = layout(&cache.preopens(grant).unwrap());
        assert_eq!(cached, layout(&open_now(grant).unwrap()), "the cache agrees with a fresh split");
        cached
    }

    fn guests(layout: &[(String, bool, u64, u64)]) -> Vec<(&str, bool)> {
        layout.iter().map(|(guest, writable, ..)| (guest.as_str(), *writable)).collect()
    }

    #[test]
    fn a_writable_workspace_is_split_around_its_protected_paths() {
        let (_temp, grant) = workspace();
        let preopens = open_now(&grant).unwrap();
        // `tests` is shown read-only through `.`; it needs no preopen of its own.
        assert_eq!(guests(&layout(&preopens)), [(".", false), ("docs", true), ("src", true)]);
    }

    #[test]
    fn the_cache_reuses_a_plan_until_a_directory_it_read_changes() {
        let (_temp, grant) = workspace();
        let ws = grant.workspace.clone().unwrap();
        let cache = PreopenCache::new();
        let first = cache.preopens(&grant).unwrap();
        let second = cache.preopens(&grant).unwrap();
        assert!(Arc::ptr_eq(&first.groups[0], &second.groups[0]), "nothing changed: the plan is reused");
        // Writes inside a writable preopen, and to files beside it, change no entry of a
        // directory the split read.
        std::fs::write(ws.join("src/main.py"), "x").unwrap();
        std::fs::write(ws.join("README"), "x").unwrap();
        std::fs::write(ws.join("README"), "y").unwrap();
        let third = cache.preopens(&grant).unwrap();
        assert!(!Arc::ptr_eq(&first.groups[0], &third.groups[0]), "an entry created in the root is a change");
        let fourth = cache.preopens(&grant).unwrap();
        assert!(Arc::ptr_eq(&third.groups[0], &fourth.groups[0]), "writes inside src or to README are none");
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_between_calls_is_not_a_preopen_the_next_call() {
        let (_temp, grant) = workspace();
        let ws = grant.workspace.clone().unwrap();
        let cache = PreopenCache::new();
        let before = cached_layout(&cache, &grant);
        assert_eq!(guests(&before), [(".", false), ("docs", true), ("src", true)]);
        std::fs::rename(ws.join("src"), ws.join("src_old")).unwrap();
        std::os::unix::fs::symlink("/", ws.join("src")).unwrap();
        let after = cached_layout(&cache, &grant);
        assert_eq!(guests(&after), [(".", false), ("docs", true), ("src_old", true)]);
        assert_eq!(after[2].3, before[2].3, "src_old is the directory that was src");
    }

    #[test]
    fn a_directory_on_the_way_to_a_protected_path_renamed_between_calls_is_seen() {
        let (_temp, mut grant) = workspace();
        let ws = grant.workspace.clone().unwrap();
        std::fs::create_dir_all(ws.join("pkg/fixtures")).unwrap();
        std::fs::create_dir_all(ws.join("pkg/lib")).unwrap();
        grant.protected.push(Mount { host: ws.join("pkg/fixtures"), guest: "pkg/fixtures".into(), writable: false });
        let cache = PreopenCache::new();
        let before = cached_layout(&cache, &grant);
        assert_eq!(guests(&before), [(".", false), ("docs", true), ("pkg/lib", true), ("src", true)]);
        // pkg is replaced by a new directory holding the same fixtures: pkg/lib is gone.
        std::fs::rename(ws.join("pkg"), ws.join("old")).unwrap();
        std::fs::create_dir(ws.join("pkg")).unwrap();
        std::fs::rename(ws.join("old/fixtures"), ws.join("pkg/fixtures")).unwrap();
        let after = cached_layout(&cache, &grant);
        assert_eq!(guests(&after), [(".", false), ("docs", true), ("old", true), ("src", true)]);
        // A directory created next to the protected one, deep down, is a change too.
        std::fs::create_dir(ws.join("pkg/new")).unwrap();
        let after = cached_layout(&cache, &grant);
        assert_eq!(guests(&after), [(".", false), ("docs", true), ("old", true), ("pkg/new", true), ("src", true)]);
        // So is a mode change of a directory in one that was read.
        let first = cache.preopens(&grant).unwrap();
        std::fs::set_permissions(ws.join("pkg/new"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let second = cache.preopens(&grant).unwrap();
        assert!(!Arc::ptr_eq(&first.groups[0], &second.groups[0]));
    }

    #[test]
    fn a_workspace_path_that_names_another_directory_is_a_new_plan() {
        let (temp, grant) = workspace();
        let ws = grant.workspace.clone().unwrap();
        let cache = PreopenCache::new();
        let before = cached_layout(&cache, &grant);
        // The workspace moves away and a new one takes its path (the old root's watch sees
        // a move of itself; the root's inode check would see it anyway).
        std::fs::rename(&ws, temp.path().join("moved")).unwrap();
        std::fs::create_dir_all(ws.join("tests")).unwrap();
        std::fs::create_dir_all(ws.join("lib")).unwrap();
        let after = cached_layout(&cache, &grant);
        assert_eq!(guests(&after), [(".", false), ("lib", true)]);
        assert_ne!(after[0].3, before[0].3);
    }

    #[test]
    fn open_beneath_follows_no_symlink_below_the_workspace() {
        let temp = tempfile::tempdir().unwrap();
        let ws = temp.path().canonicalize().unwrap();
        std::fs::create_dir_all(ws.join("src/deep")).unwrap();
        std::fs::create_dir_all(ws.join("real")).unwrap();
        std::os::unix::fs::symlink("/", ws.join("swapped")).unwrap();
        std::os::unix::fs::symlink(ws.join("real"), ws.join("inside")).unwrap();
        assert!(open_beneath_path(&ws, &ws.join("src/deep")).is_ok(), "a real directory opens");
        assert!(open_beneath_path(&ws, &ws).is_ok(), "the workspace itself opens");
        for link in ["swapped", "inside"] {
            let error = open_beneath_path(&ws, &ws.join(link)).unwrap_err();
            assert!(matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)), "{link}: {error}");
        }
        std::fs::create_dir_all(ws.join("real/sub")).unwrap();
        let error = open_beneath_path(&ws, &ws.join("inside/sub")).unwrap_err();
        assert!(matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)), "a symlinked step: {error}");
    }
}
