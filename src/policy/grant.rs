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
}

impl Default for Limits {
    /// Tight defaults: 10 s wall, 10^10 fuel (seconds of compute), 64 MiB memory, 1 MiB of
    /// output per stream, 10,000 table elements, 10 instances.
    fn default() -> Self {
        Limits {
            wall_ms: 10_000,
            fuel: 10_000_000_000,
            memory_mib: 64,
            output_bytes: 1 << 20,
            table_elements: 10_000,
            instances: 10,
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
    /// Directories the tool sees, each read-only or read-write.
    pub mounts: Vec<Mount>,
    /// Exactly the environment the tool gets.
    pub env: BTreeMap<String, String>,
    /// `host:port` entries the tool may connect to (empty: no network).
    pub network: Vec<String>,
    /// Resource limits.
    pub limits: Limits,
}

impl Grant {
    /// A grant that can do nothing: no files, no env, no network, no stdin, the default
    /// (tight) limits.
    pub fn new(tool: impl Into<String>, program: Program) -> Self {
        Grant {
            tool: tool.into(),
            program,
            args: Vec::new(),
            stdin: Vec::new(),
            mounts: Vec::new(),
            env: BTreeMap::new(),
            network: Vec::new(),
            limits: Limits::default(),
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
        assert_eq!(grant.limits, Limits::default());
    }
}

impl Grant {
    /// The sha256 the program is pinned to, if it is pinned.
    pub fn program_sha256(&self) -> Option<&str> {
        match &self.program {
            Program::Wasm { sha256, .. } => Some(sha256),
        }
    }
}

/// The sha256 of `bytes` as lowercase hex (how modules are pinned).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
