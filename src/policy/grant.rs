//! The resolved capabilities of one call. A backend sees only this.

use std::{collections::BTreeMap, path::PathBuf};

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
