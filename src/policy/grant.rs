//! The resolved capabilities of one call. A backend sees only this.
//!
//! Owns: [`Grant`] and its parts, the workspace-relative paths tools are granted
//! ([`WorkspacePath`], validated at load) and their resolution against one call's
//! workspace into [`Mount`]s ([`resolve_mounts`]), and the tool's environment
//! ([`resolve_env`]).
//! Must not: decide whether a call may run (that is the designation's job) or run
//! anything. Resolution never widens a grant: a path that escapes the workspace is an
//! error (the call is denied), a path that does not exist is left out.

use std::{
    collections::BTreeMap,
    io,
    path::{Component, Path, PathBuf},
};

use serde::Serialize;

/// What the program is and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Program {
    /// A WebAssembly module or component, checked against its pinned sha256 before use.
    Wasm {
        /// Absolute path of the `.wasm` file.
        module: PathBuf,
        /// The sha256 (lowercase hex) the module must have.
        sha256: String,
    },
    /// A native executable, run in the process jail (`backend.process`). Its arguments are
    /// [`Grant::args`]; argv[0] is `executable`.
    Process {
        /// Absolute path of the executable, as the jail sees it (system directories are
        /// bound at their host paths).
        executable: PathBuf,
        /// When pinned: the sha256 (lowercase hex) the executable must have; the jail then
        /// runs exactly the file it checked (by descriptor).
        sha256: Option<String>,
    },
}

/// One isolation layer of the process jail. The audit record lists the layers that were
/// active for a call; a policy may list some in `best_effort` (then a kernel that cannot
/// apply them does not stop the call, and the record says they were missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// A new user namespace: the jail's ids map to the caller's own, no host capability.
    UserNamespace,
    /// A new mount namespace: the jail's mounts are its own.
    MountNamespace,
    /// A new pid namespace: the tool is PID 1 and sees only its own processes.
    PidNamespace,
    /// A new network namespace with only loopback.
    NetNamespace,
    /// A new IPC namespace (System V IPC, POSIX message queues).
    IpcNamespace,
    /// A new UTS namespace (host name).
    UtsNamespace,
    /// A new cgroup namespace rooted at the call's cgroup.
    CgroupNamespace,
    /// A minimal root of bind mounts on a fresh tmpfs, `pivot_root`, fresh /proc, minimal
    /// /dev, private /tmp.
    MinimalRoot,
    /// Landlock: a second file-system layer, enforced by the kernel's LSM.
    Landlock,
    /// Resource limits (rlimits): CPU, file size, open files, processes, no core dumps.
    Rlimits,
    /// Cgroup limits: memory, processes, CPU accounting of the whole process tree.
    Cgroups,
    /// Every capability dropped (bounding, ambient, effective, permitted, inheritable).
    Capabilities,
    /// `no_new_privs`: exec can never gain privileges (setuid bits, file capabilities).
    NoNewPrivs,
    /// Only file descriptors 0-2 reach the tool.
    CloseFds,
    /// A seccomp filter from the policy's profile.
    Seccomp,
}

impl Layer {
    /// Every layer, in the order the jail sets them up.
    pub const ALL: [Layer; 15] = [
        Layer::UserNamespace,
        Layer::MountNamespace,
        Layer::PidNamespace,
        Layer::NetNamespace,
        Layer::IpcNamespace,
        Layer::UtsNamespace,
        Layer::CgroupNamespace,
        Layer::MinimalRoot,
        Layer::Landlock,
        Layer::Rlimits,
        Layer::Cgroups,
        Layer::Capabilities,
        Layer::NoNewPrivs,
        Layer::CloseFds,
        Layer::Seccomp,
    ];

    /// The layers a kernel may lack without the jail losing its footing; only these may be
    /// listed in `best_effort`. The others are what the jail is built on.
    pub const OPTIONAL: [Layer; 4] = [Layer::Landlock, Layer::Cgroups, Layer::CgroupNamespace, Layer::Seccomp];

    /// The layer's name as in policies and the audit log (`net-namespace`, `landlock`).
    pub fn name(self) -> &'static str {
        match self {
            Layer::UserNamespace => "user-namespace",
            Layer::MountNamespace => "mount-namespace",
            Layer::PidNamespace => "pid-namespace",
            Layer::NetNamespace => "net-namespace",
            Layer::IpcNamespace => "ipc-namespace",
            Layer::UtsNamespace => "uts-namespace",
            Layer::CgroupNamespace => "cgroup-namespace",
            Layer::MinimalRoot => "minimal-root",
            Layer::Landlock => "landlock",
            Layer::Rlimits => "rlimits",
            Layer::Cgroups => "cgroups",
            Layer::Capabilities => "capabilities",
            Layer::NoNewPrivs => "no-new-privs",
            Layer::CloseFds => "close-fds",
            Layer::Seccomp => "seccomp",
        }
    }

    /// The layer called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|layer| layer.name() == name)
    }
}

/// A seccomp profile a process tool runs under: `policies/seccomp/NAME.json`, digested at
/// load. The jail backend compiles each profile once and caches it by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeccompGrant {
    /// The profile's name (`default`).
    pub name: String,
    /// The profile file.
    pub path: PathBuf,
    /// The file's sha256 when the policy was loaded.
    pub sha256: String,
}

/// How the process jail isolates one call (the wasm backend ignores it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JailGrant {
    /// The seccomp profile. `None`: no profile, which the jail refuses unless `best_effort`
    /// lists [`Layer::Seccomp`].
    pub seccomp: Option<SeccompGrant>,
    /// Layers that may be missing on this kernel without refusing the call. Empty: every
    /// layer is required.
    pub best_effort: Vec<Layer>,
    /// The working directory as the tool sees it (`None`: `/workspace`).
    pub cwd: Option<String>,
}

/// One directory made visible to the tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Absolute, canonical host path.
    pub host: PathBuf,
    /// Where the tool sees it: `.` is the working directory (the workspace root),
    /// a relative path is relative to it, an absolute path is taken as is.
    pub guest: String,
    /// Read-write when true, read-only otherwise.
    pub writable: bool,
}

/// Resource limits of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Wall-clock time, in milliseconds.
    pub wall_ms: u64,
    /// Wasm fuel (roughly, instructions executed).
    pub fuel: u64,
    /// Linear memory per instance, in MiB.
    pub memory_mib: u64,
    /// Bytes kept of stdout and of stderr, each.
    pub output_bytes: u64,
    /// Table elements per table.
    pub table_elements: u64,
    /// Instances per store (also caps tables and memories per store).
    pub instances: u64,
    /// CPU time of the whole process tree, in seconds (process jail).
    pub cpu_seconds: u64,
    /// Processes and threads alive at once (process jail).
    pub pids: u64,
    /// The largest file the tool may write, in MiB (process jail).
    pub file_size_mib: u64,
    /// Open file descriptors per process (process jail).
    pub open_files: u64,
    /// Size of the jail's private /tmp, in MiB (process jail).
    pub tmp_mib: u64,
}

impl Default for Limits {
    /// Tight defaults: 10 s wall, 10^10 fuel (seconds of compute), 64 MiB memory, 1 MiB of
    /// output per stream, 10,000 table elements, 10 instances; for processes 10 s of CPU,
    /// 64 processes, 64 MiB files, 256 open files and a 64 MiB /tmp.
    fn default() -> Self {
        Limits {
            wall_ms: 10_000,
            fuel: 10_000_000_000,
            memory_mib: 64,
            output_bytes: 1 << 20,
            table_elements: 10_000,
            instances: 10,
            cpu_seconds: 10,
            pids: 64,
            file_size_mib: 64,
            open_files: 256,
            tmp_mib: 64,
        }
    }
}

/// The resolved capabilities of one call.
#[derive(Debug, Clone, Serialize)]
pub struct Grant {
    /// The tool's name (for messages and the audit log).
    pub tool: String,
    /// What to run.
    pub program: Program,
    /// Arguments after argv[0] (argv[0] is the tool's name).
    pub args: Vec<String>,
    /// Bytes given on stdin (empty: stdin is empty).
    #[serde(skip)]
    pub stdin: Vec<u8>,
    /// Directories the tool sees, each read-only or read-write (for a process: workspace
    /// paths under /workspace, then granted host paths at their own absolute paths).
    pub mounts: Vec<Mount>,
    /// Paths inside the workspace that stay read-only however the workspace is mounted
    /// (process jail: re-bound read-only after `mounts`).
    pub protected: Vec<Mount>,
    /// Exactly the environment the tool gets.
    pub env: BTreeMap<String, String>,
    /// `host:port` entries the tool may connect to (empty: no network).
    pub network: Vec<String>,
    /// Resource limits.
    pub limits: Limits,
    /// How the process jail isolates the call.
    pub jail: JailGrant,
    /// The call's canonical workspace: the process jail's `/workspace` and working
    /// directory (`None`: an empty, read-only `/workspace`). Relative mounts lie inside it.
    pub workspace: Option<PathBuf>,
}

impl Grant {
    /// A grant that can do nothing: no files, no protected paths, no env, no network, no
    /// stdin, the default (tight) limits, no seccomp profile and no best-effort layer (so a
    /// process jail refuses it until a profile is set: every layer is required).
    pub fn new(tool: impl Into<String>, program: Program) -> Self {
        Grant {
            tool: tool.into(),
            program,
            args: Vec::new(),
            stdin: Vec::new(),
            mounts: Vec::new(),
            protected: Vec::new(),
            env: BTreeMap::new(),
            network: Vec::new(),
            limits: Limits::default(),
            jail: JailGrant::default(),
            workspace: None,
        }
    }
}

/// Why a grant's files could not be resolved for a call (the call is denied with this).
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("workspace {path} cannot be opened: {source}; pass an existing directory")]
    Workspace { path: PathBuf, source: io::Error },
    #[error("workspace {path} is not a directory; pass a directory")]
    WorkspaceNotDirectory { path: PathBuf },
    #[error(
        "files.{list} \"{path}\" resolves to {resolved}, outside the workspace {workspace} \
         (a symlink pointing out?); remove the link or fix the grant"
    )]
    Escapes { list: &'static str, path: String, resolved: PathBuf, workspace: PathBuf },
    #[error("files.{list} \"{path}\" cannot be resolved in the workspace: {source}")]
    Resolve { list: &'static str, path: String, source: io::Error },
    #[error("files.host_read \"{path}\": {reason}; fix the variable or the grant")]
    HostPath { path: String, reason: String },
}

/// Why a path cannot be granted (a load error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspacePathError {
    #[error("\"{0}\" is absolute; grants are relative to the call's workspace")]
    Absolute(String),
    #[error("\"{0}\" contains `..`, which could leave the workspace")]
    ParentDir(String),
    #[error("\"{0}\" starts with `~`; grants are relative to the call's workspace, not a home directory")]
    Home(String),
    #[error("\"{0}\" is empty or has control characters")]
    Malformed(String),
}

/// A path relative to the call's workspace, normalised (`./out/` is `out`, the workspace
/// itself is `.`): never absolute, never with `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct WorkspacePath(String);

impl WorkspacePath {
    /// Validates and normalises a path from a policy file.
    pub fn parse(path: &str) -> Result<WorkspacePath, WorkspacePathError> {
        if path.is_empty() || path.chars().any(char::is_control) {
            return Err(WorkspacePathError::Malformed(path.to_string()));
        }
        if path.starts_with('~') {
            return Err(WorkspacePathError::Home(path.to_string()));
        }
        let mut parts = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::CurDir => {}
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    return Err(WorkspacePathError::ParentDir(path.to_string()));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(WorkspacePathError::Absolute(path.to_string()));
                }
            }
        }
        if parts.is_empty() {
            return Ok(WorkspacePath(".".to_string()));
        }
        Ok(WorkspacePath(parts.join("/")))
    }

    /// The normalised path (`.` for the workspace itself).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How many components deep it is (0 for `.`); parents sort before children.
    fn depth(&self) -> usize {
        if self.0 == "." { 0 } else { self.0.split('/').count() }
    }
}

/// A tool's file grants: read-only and read-write paths in the workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileGrants {
    /// Read-only paths.
    pub read: Vec<WorkspacePath>,
    /// Read-write paths (a path in both lists is writable).
    pub write: Vec<WorkspacePath>,
    /// Paths in the workspace that stay read-only even inside a writable mount (process
    /// tools).
    pub protected: Vec<WorkspacePath>,
    /// Host paths outside the workspace, read-only, at their own paths (process tools).
    pub host_read: Vec<HostPath>,
}

/// A host path from a policy (`files.host_read`): absolute, without `..`, and it may start
/// with or contain environment references expanded when a call is evaluated: `$NAME`,
/// `${NAME}`, `${NAME:-DEFAULT}` (DEFAULT may itself contain references).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct HostPath(String);

impl HostPath {
    /// Checks the syntax (references well-formed; absolute once expanded).
    pub fn parse(text: &str) -> Result<HostPath, String> {
        if text.is_empty() || text.chars().any(char::is_control) {
            return Err(format!("\"{text}\" is empty or has control characters"));
        }
        // Expanding every reference to an absolute-looking value checks the syntax; the
        // result must then be absolute (a bare `$NAME` is, whatever NAME holds).
        let probe = expand_references(text, &|_| Some("/probe".to_string()))?
            .ok_or_else(|| format!("\"{text}\" cannot be expanded"))?;
        check_host_path(text, &probe)?;
        Ok(HostPath(text.to_string()))
    }

    /// The path as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path with its references expanded by `lookup`: `Ok(None)` when a referenced
    /// variable is unset (and has no default); an error when the result is not an
    /// absolute path without `..`.
    pub fn expand(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<PathBuf>, String> {
        match expand_references(&self.0, lookup)? {
            None => Ok(None),
            Some(expanded) => {
                check_host_path(&self.0, &expanded)?;
                Ok(Some(PathBuf::from(expanded)))
            }
        }
    }
}

/// An expanded host path must be absolute, without `..`, and not the root itself.
fn check_host_path(text: &str, expanded: &str) -> Result<(), String> {
    let path = Path::new(expanded);
    if !path.is_absolute() {
        return Err(format!("\"{text}\" expands to \"{expanded}\", which is not an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("\"{text}\" expands to \"{expanded}\", which contains `..`"));
    }
    if path.components().all(|c| c == Component::RootDir) {
        return Err(format!("\"{text}\" expands to the root directory; grant the directories the tool needs"));
    }
    Ok(())
}

/// Expands `$NAME`, `${NAME}` and `${NAME:-DEFAULT}` in `text`. `Ok(None)`: a variable is
/// unset and has no default. `$$` is a literal `$`.
fn expand_references(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            // The matching `}`: DEFAULT may contain `${...}` itself.
            let mut depth = 1usize;
            let mut end = None;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                return Err(format!("\"{text}\" has a `${{` without its `}}`"));
            };
            let body = &inner[..end];
            let (name, default) = match body.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (body, None),
            };
            if name.is_empty() || !name.chars().all(is_name_char) || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("\"{text}\" refers to \"{name}\", which is not a variable name"));
            }
            match lookup(name).filter(|v| !v.is_empty()) {
                Some(value) => out.push_str(&value),
                None => match default {
                    Some(default) => match expand_references(default, lookup)? {
                        Some(value) => out.push_str(&value),
                        None => return Ok(None),
                    },
                    None => return Ok(None),
                },
            }
            rest = &inner[end + 1..];
        } else {
            let len = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
            let name = &after[..len];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("\"{text}\" has a `$` that starts no variable name (write `$$` for a `$`)"));
            }
            match lookup(name).filter(|v| !v.is_empty()) {
                Some(value) => out.push_str(&value),
                None => return Ok(None),
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// Resolves `files.protected` against a canonical workspace: each existing path (file or
/// directory) becomes a read-only [`Mount`] whose `guest` is its canonical path relative
/// to the workspace (no symlinks left in it); one that escapes is an error; those that do
/// not exist are left out, named in one note.
pub fn resolve_protected(files: &FileGrants, workspace: &Path) -> Result<ResolvedMounts, GrantError> {
    resolve_protected_watching(files, workspace, &mut |_| true).map(|(resolved, _)| resolved)
}

/// [`resolve_protected`], calling `watch` on each directory just before one of its entries
/// is looked up (the workspace first). Also says whether the result rests on those lookups
/// alone: true when every lookup was a watched `lstat` (`watch` returned true), false when
/// a symlink or an error took the full `canonicalize`, or a watch failed.
pub(crate) fn resolve_protected_watching(
    files: &FileGrants,
    workspace: &Path,
    watch: &mut dyn FnMut(&Path) -> bool,
) -> Result<(ResolvedMounts, bool), GrantError> {
    let mut resolved = ResolvedMounts::default();
    let mut watched = true;
    let mut missing = Vec::new();
    for path in &files.protected {
        let (host, by_lookups) = canonical_within(workspace, path, watch);
        watched &= by_lookups;
        let host = match host {
            Ok(host) => host,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(format!("\"{}\"", path.as_str()));
                continue;
            }
            Err(source) => {
                return Err(GrantError::Resolve { list: "protected", path: path.as_str().to_string(), source });
            }
        };
        let Ok(relative) = host.strip_prefix(workspace) else {
            return Err(GrantError::Escapes {
                list: "protected",
                path: path.as_str().to_string(),
                resolved: host,
                workspace: workspace.to_path_buf(),
            });
        };
        let guest =
            if relative.as_os_str().is_empty() { ".".to_string() } else { relative.to_string_lossy().into_owned() };
        resolved.mounts.push(Mount { host: host.clone(), guest, writable: false });
    }
    match missing.len() {
        0 => {}
        1 => resolved
            .notes
            .push(format!("files.protected {} does not exist in this workspace; nothing to protect", missing[0])),
        _ => resolved.notes.push(format!(
            "files.protected {} do not exist in this workspace; nothing to protect there",
            missing.join(", ")
        )),
    }
    Ok((resolved, watched))
}

/// `path` in canonical `workspace`, canonicalised: the same result (or error kind) as
/// `fs::canonicalize(workspace.join(path))`, for one `lstat` per component of `path` when
/// none of them is a symlink (realpath would re-walk every component of the workspace
/// too, once per component). A symlink, or any error but a missing component, takes the
/// full `fs::canonicalize`. Runs on every guarded call, so it is kept cheap.
///
/// `watch` is called on each directory before an entry of it is looked up; the flag is
/// true when the result rests on watched `lstat`s alone (see [`resolve_protected_watching`]).
fn canonical_within(
    workspace: &Path,
    path: &WorkspacePath,
    watch: &mut dyn FnMut(&Path) -> bool,
) -> (io::Result<PathBuf>, bool) {
    let full = || std::fs::canonicalize(workspace.join(path.as_str()));
    if path.as_str() == "." {
        return (full(), false);
    }
    let mut host = workspace.to_path_buf();
    let mut watched = true;
    for part in path.as_str().split('/') {
        watched &= watch(&host);
        host.push(part);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if !meta.file_type().is_symlink() => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (Err(e), watched),
            _ => return (full(), false),
        }
    }
    (Ok(host), watched)
}

/// Resolves `files.host_read` with this process's environment: each expanded, existing
/// path becomes a read-only [`Mount`] at its expanded path; unset variables and missing
/// paths are left out with a note.
pub fn resolve_host_paths(files: &FileGrants) -> Result<ResolvedMounts, GrantError> {
    let lookup = |name: &str| std::env::var(name).ok();
    let mut resolved = ResolvedMounts::default();
    for path in &files.host_read {
        let expanded = match path.expand(&lookup) {
            Ok(Some(expanded)) => expanded,
            Ok(None) => {
                resolved.notes.push(format!(
                    "files.host_read \"{}\" refers to a variable that is not set in airlock's environment; not mounted",
                    path.as_str()
                ));
                continue;
            }
            Err(reason) => {
                return Err(GrantError::HostPath { path: path.as_str().to_string(), reason });
            }
        };
        match std::fs::canonicalize(&expanded) {
            Ok(host) => {
                resolved.mounts.push(Mount { host, guest: expanded.to_string_lossy().into_owned(), writable: false })
            }
            Err(e) => resolved.notes.push(format!(
                "files.host_read \"{}\" ({}) cannot be resolved: {e}; not mounted",
                path.as_str(),
                expanded.display()
            )),
        }
    }
    Ok(resolved)
}

/// Mounts for one call, and notes about grants left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedMounts {
    /// One mount per granted path that exists, parents before children.
    pub mounts: Vec<Mount>,
    /// Why a granted path was not mounted (it does not exist, or is not a directory).
    pub notes: Vec<String>,
}

/// Canonicalises `workspace`, which must be an existing directory.
pub fn canonical_workspace(workspace: &Path) -> Result<PathBuf, GrantError> {
    let canonical = std::fs::canonicalize(workspace)
        .map_err(|source| GrantError::Workspace { path: workspace.to_path_buf(), source })?;
    if !canonical.is_dir() {
        return Err(GrantError::WorkspaceNotDirectory { path: workspace.to_path_buf() });
    }
    Ok(canonical)
}

/// Resolves `files` against a canonical workspace: each path is joined to it and
/// canonicalised (following symlinks); one that lands outside the workspace is an error,
/// one that does not exist or is not a directory is left out with a note.
pub fn resolve_mounts(files: &FileGrants, workspace: &Path) -> Result<ResolvedMounts, GrantError> {
    let mut wanted: BTreeMap<(usize, &WorkspacePath), bool> = BTreeMap::new();
    for path in &files.read {
        wanted.entry((path.depth(), path)).or_insert(false);
    }
    for path in &files.write {
        wanted.insert((path.depth(), path), true);
    }
    let mut resolved = ResolvedMounts::default();
    for ((_, path), writable) in wanted {
        let list = if writable { "write" } else { "read" };
        let joined = if path.as_str() == "." { workspace.to_path_buf() } else { workspace.join(path.as_str()) };
        let host = match std::fs::canonicalize(&joined) {
            Ok(host) => host,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                resolved
                    .notes
                    .push(format!("files.{list} \"{}\" does not exist in this workspace; not mounted", path.as_str()));
                continue;
            }
            Err(source) => {
                return Err(GrantError::Resolve { list, path: path.as_str().to_string(), source });
            }
        };
        if !host.starts_with(workspace) {
            return Err(GrantError::Escapes {
                list,
                path: path.as_str().to_string(),
                resolved: host,
                workspace: workspace.to_path_buf(),
            });
        }
        if !host.is_dir() {
            resolved
                .notes
                .push(format!("files.{list} \"{}\" is not a directory; only directories are mounted", path.as_str()));
            continue;
        }
        resolved.mounts.push(Mount { host, guest: path.as_str().to_string(), writable });
    }
    Ok(resolved)
}

/// A tool's environment grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EnvGrants {
    /// Names copied from airlock's own environment when set there.
    pub pass: Vec<String>,
    /// Literal values.
    pub set: BTreeMap<String, String>,
}

/// The tool's environment: `pass` names read from this process's environment now (unset
/// or non-UTF-8 ones left out with a note), then the `set` literals.
pub fn resolve_env(env: &EnvGrants) -> (BTreeMap<String, String>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut notes = Vec::new();
    for name in &env.pass {
        match std::env::var(name) {
            Ok(value) => {
                out.insert(name.clone(), value);
            }
            Err(std::env::VarError::NotPresent) => {
                notes.push(format!("env.pass {name} is not set in airlock's environment; not passed"));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                notes.push(format!("env.pass {name} is not valid UTF-8; not passed"));
            }
        }
    }
    for (name, value) in &env.set {
        out.insert(name.clone(), value.clone());
    }
    (out, notes)
}

impl Grant {
    /// The sha256 the program is pinned to, if it is pinned.
    pub fn program_sha256(&self) -> Option<&str> {
        match &self.program {
            Program::Wasm { sha256, .. } => Some(sha256),
            Program::Process { sha256, .. } => sha256.as_deref(),
        }
    }
}

/// The sha256 of `bytes` as lowercase hex (how modules are pinned).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_path_normalises_and_rejects_escapes() {
        assert_eq!(WorkspacePath::parse(".").map(|p| p.0), Ok(".".to_string()));
        assert_eq!(WorkspacePath::parse("./").map(|p| p.0), Ok(".".to_string()));
        assert_eq!(WorkspacePath::parse("./out/").map(|p| p.0), Ok("out".to_string()));
        assert_eq!(WorkspacePath::parse("a/./b").map(|p| p.0), Ok("a/b".to_string()));
        assert!(matches!(WorkspacePath::parse("/etc"), Err(WorkspacePathError::Absolute(_))));
        assert!(matches!(WorkspacePath::parse("a/../b"), Err(WorkspacePathError::ParentDir(_))));
        assert!(matches!(WorkspacePath::parse(".."), Err(WorkspacePathError::ParentDir(_))));
        assert!(matches!(WorkspacePath::parse("~/x"), Err(WorkspacePathError::Home(_))));
        assert!(matches!(WorkspacePath::parse(""), Err(WorkspacePathError::Malformed(_))));
    }

    #[test]
    fn grant_new_is_deny_all() {
        let grant = Grant::new("t", Program::Wasm { module: PathBuf::from("/m.wasm"), sha256: String::new() });
        assert!(grant.args.is_empty() && grant.stdin.is_empty() && grant.mounts.is_empty());
        assert!(grant.env.is_empty() && grant.network.is_empty());
        assert!(grant.protected.is_empty() && grant.workspace.is_none());
        assert!(grant.jail.seccomp.is_none() && grant.jail.best_effort.is_empty());
        assert_eq!(grant.limits, Limits::default());
    }

    #[test]
    fn host_paths_expand_references_with_defaults() {
        let env = |name: &str| match name {
            "CARGO_HOME" => Some("/opt/cargo".to_string()),
            "HOME" => Some("/home/u".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let expand = |text: &str| HostPath::parse(text).map(|p| p.expand(&env));
        assert_eq!(expand("$CARGO_HOME"), Ok(Ok(Some(PathBuf::from("/opt/cargo")))));
        assert_eq!(expand("${CARGO_HOME}/bin"), Ok(Ok(Some(PathBuf::from("/opt/cargo/bin")))));
        assert_eq!(expand("${RUSTUP_HOME:-$HOME/.rustup}"), Ok(Ok(Some(PathBuf::from("/home/u/.rustup")))));
        assert_eq!(expand("${RUSTUP_HOME:-${NOPE:-/x}}"), Ok(Ok(Some(PathBuf::from("/x")))));
        assert_eq!(expand("$NOPE/x"), Ok(Ok(None)));
        assert_eq!(expand("${EMPTY:-/e}"), Ok(Ok(Some(PathBuf::from("/e")))));
        assert_eq!(expand("/usr/share/$$x"), Ok(Ok(Some(PathBuf::from("/usr/share/$x")))));
        for bad in ["relative", "/a/../b", "${X", "$1", "/x/$", "/", "${A-B}"] {
            assert!(HostPath::parse(bad).is_err(), "{bad}");
        }
        // A variable that holds a relative path or `..` is refused when the call is evaluated.
        let odd = |_: &str| Some("rel/x".to_string());
        assert!(HostPath::parse("$X").map(|p| p.expand(&odd).is_err()).unwrap_or(false));
    }

    #[test]
    fn canonical_within_agrees_with_canonicalize() {
        let outer = tempfile::tempdir().unwrap();
        let ws = outer.path().canonicalize().unwrap().join("ws");
        std::fs::create_dir_all(ws.join("tests/unit")).unwrap();
        std::fs::create_dir_all(outer.path().join("elsewhere")).unwrap();
        std::fs::write(ws.join("file"), b"x").unwrap();
        std::os::unix::fs::symlink("tests", ws.join("inside")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", ws.join("outside")).unwrap();
        std::os::unix::fs::symlink("missing", ws.join("dangling")).unwrap();
        for path in [
            ".",
            "tests",
            "tests/unit",
            "tests/none",
            "none",
            "none/deeper",
            "file",
            "file/below",
            "inside",
            "inside/unit",
            "outside",
            "dangling",
        ] {
            let rel = WorkspacePath::parse(path).unwrap();
            let fast = canonical_within(&ws, &rel, &mut |_| true).0.map_err(|e| e.kind());
            let full = std::fs::canonicalize(ws.join(path)).map_err(|e| e.kind());
            assert_eq!(fast, full, "{path}");
        }
    }
}
