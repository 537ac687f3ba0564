//! The module cache: compiled and pre-linked programs keyed by their sha256, in memory and
//! as precompiled artifacts on disk.
//!
//! A memory hit costs one map lookup: no file is read and nothing is relinked. On a miss
//! the module file is read and its sha256 checked against the grant's pin (a mismatch is
//! refused, never run); then the disk artifact is tried (header, digest and engine
//! compatibility checked before deserializing; anything wrong is deleted and rebuilt);
//! then the module is compiled and its artifact written atomically. Concurrent first calls
//! of one module compile it once. A cache I/O failure is logged and the call goes on
//! without the disk cache: it never fails a call.
//!
//! This module must not run guests; it hands out [`Compiled`] programs.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use wasmtime::{Engine, InstancePre, Module, component::Component};
use wasmtime_wasi::p2::bindings::CommandPre;

use super::{
    WasmError,
    artifact::{self, ArtifactId, ArtifactKind},
    engine::Linkers,
    store::CallState,
};

/// A program ready to instantiate: compiled, linked against WASI, exports checked.
pub enum Compiled {
    /// A WASI preview1 core module; the entry point is `_start`.
    Core(InstancePre<CallState>),
    /// A WASI preview2 command component; the entry point is `wasi:cli/run#run`.
    Component(CommandPre<CallState>),
}

/// Cache counters, to show what a call cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Modules compiled from source (memory and disk both missed).
    pub compiles: u64,
    /// Calls served from memory (no file read, no compile, no link).
    pub memory_hits: u64,
    /// Modules loaded from a disk artifact (no compile).
    pub disk_hits: u64,
    /// Disk artifacts rejected (corrupted, truncated, incompatible) and deleted.
    pub disk_rejected: u64,
}

#[derive(Default)]
struct Counters {
    compiles: AtomicU64,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    disk_rejected: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What a memory miss needs: the engine, the linkers, the disk cache.
struct Loader {
    engine: Engine,
    linkers: Linkers,
    cache_dir: Option<PathBuf>,
    compat: [u8; 32],
    counters: Counters,
}

/// The per-backend module cache.
pub struct ModuleCache {
    loader: Arc<Loader>,
    entries: Mutex<HashMap<String, Arc<OnceCell<Arc<Compiled>>>>>,
}

impl ModuleCache {
    /// A cache over `engine`, linking with `linkers`, keeping artifacts in `cache_dir`.
    pub fn new(engine: Engine, linkers: Linkers, cache_dir: Option<PathBuf>) -> Self {
        let compat = artifact::engine_compat_digest(&engine);
        ModuleCache {
            loader: Arc::new(Loader { engine, linkers, cache_dir, compat, counters: Counters::default() }),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.loader.counters;
        CacheStats {
            compiles: c.compiles.load(Ordering::Relaxed),
            memory_hits: c.memory_hits.load(Ordering::Relaxed),
            disk_hits: c.disk_hits.load(Ordering::Relaxed),
            disk_rejected: c.disk_rejected.load(Ordering::Relaxed),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<Arc<Compiled>>>>> {
        // The map holds only finished or empty cells; a panic elsewhere cannot leave it
        // half-updated.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The compiled program for `module`, which must have sha256 `pinned`.
    pub async fn get(&self, module: &Path, pinned: &str) -> Result<Arc<Compiled>, WasmError> {
        if !is_sha256_hex(pinned) {
            return Err(WasmError::BadPin { module: module.to_path_buf(), pinned: pinned.to_string() });
        }
        let cell = {
            let mut entries = self.entries();
            match entries.get(pinned) {
                Some(cell) => cell.clone(),
                None => entries.entry(pinned.to_string()).or_default().clone(),
            }
        };
        if let Some(compiled) = cell.get() {
            bump(&self.loader.counters.memory_hits);
            return Ok(compiled.clone());
        }

        let mut loaded_here = false;
        let result = cell
            .get_or_try_init(|| {
                loaded_here = true;
                let loader = self.loader.clone();
                let module = module.to_path_buf();
                let pinned = pinned.to_string();
                async move {
                    let path = module.clone();
                    tokio::task::spawn_blocking(move || loader.load(&path, &pinned))
                        .await
                        .map_err(|e| WasmError::Compile { module, detail: format!("the compile task failed: {e}") })?
                        .map(Arc::new)
                }
            })
            .await;
        match result {
            Ok(compiled) => {
                if !loaded_here {
                    // Another call loaded it while this one waited.
                    bump(&self.loader.counters.memory_hits);
                }
                Ok(compiled.clone())
            }
            Err(e) => {
                // Do not keep an empty cell per bad pin: the map would grow with every
                // refused call.
                let mut entries = self.entries();
                if entries.get(pinned).is_some_and(|c| c.get().is_none()) {
                    entries.remove(pinned);
                }
                Err(e)
            }
        }
    }
}

/// True for 64 lowercase hex digits (the pin becomes a file name in the cache directory,
/// so nothing else may pass).
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A compiled but not yet linked program.
enum Loaded {
    Module(Module),
    Component(Component),
}

impl Loader {
    /// Reads, verifies, loads or compiles, and links `module` (blocking: run off the
    /// executor).
    fn load(&self, module: &Path, pinned: &str) -> Result<Compiled, WasmError> {
        let source =
            std::fs::read(module).map_err(|source| WasmError::ReadModule { path: module.to_path_buf(), source })?;
        let digest: [u8; 32] = Sha256::digest(&source).into();
        let actual = hex::encode(digest);
        if actual != pinned {
            return Err(WasmError::DigestMismatch { module: module.to_path_buf(), pinned: pinned.to_string(), actual });
        }
        // Text (WAT) is accepted and turned into binary; binary passes through unchanged.
        let binary = wat::parse_bytes(&source)
            .map_err(|e| WasmError::Compile { module: module.to_path_buf(), detail: e.to_string() })?;
        let kind = detect_kind(&binary).ok_or_else(|| WasmError::Compile {
            module: module.to_path_buf(),
            detail: "not a WebAssembly module or component (bad header)".into(),
        })?;

        let id = ArtifactId { kind, compat: &self.compat, source: &digest };
        let loaded = match self.load_artifact(id, pinned) {
            Some(loaded) => loaded,
            None => self.compile(module, id, &binary, pinned)?,
        };
        self.link(module, loaded)
    }

    /// The artifact on disk, if there is one and it passes every check.
    fn load_artifact(&self, id: ArtifactId<'_>, pinned: &str) -> Option<Loaded> {
        let dir = self.cache_dir.as_ref()?;
        let path = artifact::path_for(dir, pinned);
        let file = match std::fs::read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read cached artifact; compiling instead");
                return None;
            }
        };
        let bytes = match artifact::decode(&file, id) {
            Ok(bytes) => bytes,
            Err(reason) => {
                self.reject(&path, &reason.to_string());
                return None;
            }
        };
        let loaded = match id.kind {
            ArtifactKind::Module => {
                // SAFETY: `Module::deserialize` trusts its input to be wasmtime's own
                // output. These bytes are: they come from our cache directory, which only
                // this backend writes (created 0700, refused if group/other-writable or
                // owned by another user, never mounted into a guest), framed by our header
                // whose magic, format version, kind, engine compatibility digest (wasmtime
                // version + compile settings), source module digest (the verified pin),
                // length and sha256 over exactly these bytes were all checked just above,
                // so they are the unmodified output of `Module::serialize` from a
                // compatible engine. (The digest catches corruption, not a forger: the
                // directory's permissions are what keep others from writing it.)
                let module = unsafe { Module::deserialize(&self.engine, bytes) };
                module.map(Loaded::Module)
            }
            ArtifactKind::Component => {
                // SAFETY: as for the module above, for `Component::serialize` output (the
                // header's kind byte was checked to say "component").
                let component = unsafe { Component::deserialize(&self.engine, bytes) };
                component.map(Loaded::Component)
            }
        };
        match loaded {
            Ok(loaded) => {
                bump(&self.counters.disk_hits);
                Some(loaded)
            }
            Err(e) => {
                self.reject(&path, &format!("{e:#}"));
                None
            }
        }
    }

    fn reject(&self, path: &Path, reason: &str) {
        bump(&self.counters.disk_rejected);
        tracing::warn!(path = %path.display(), reason, "rejected cached artifact; deleting and rebuilding it");
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete rejected artifact");
        }
    }

    /// Compiles from source and writes the artifact (a write failure is only logged).
    fn compile(&self, module: &Path, id: ArtifactId<'_>, binary: &[u8], pinned: &str) -> Result<Loaded, WasmError> {
        bump(&self.counters.compiles);
        let compile_error =
            |e: wasmtime::Error| WasmError::Compile { module: module.to_path_buf(), detail: format!("{e:#}") };
        let (loaded, serialized) = match id.kind {
            ArtifactKind::Module => {
                let m = Module::new(&self.engine, binary).map_err(compile_error)?;
                let s = self.cache_dir.as_ref().map(|_| m.serialize());
                (Loaded::Module(m), s)
            }
            ArtifactKind::Component => {
                let c = Component::new(&self.engine, binary).map_err(compile_error)?;
                let s = self.cache_dir.as_ref().map(|_| c.serialize());
                (Loaded::Component(c), s)
            }
        };
        if let (Some(dir), Some(serialized)) = (&self.cache_dir, serialized) {
            let path = artifact::path_for(dir, pinned);
            let written = serialized
                .map_err(|e| std::io::Error::other(format!("{e:#}")))
                .and_then(|bytes| artifact::write_atomic(&path, &artifact::encode(id, &bytes)));
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "cannot write compiled artifact; the next process will compile again");
            }
        }
        Ok(loaded)
    }

    /// Links against WASI and checks the entry point, once per program.
    fn link(&self, module: &Path, loaded: Loaded) -> Result<Compiled, WasmError> {
        let link_error =
            |e: wasmtime::Error| WasmError::Link { module: module.to_path_buf(), detail: format!("{e:#}") };
        match loaded {
            Loaded::Module(m) => {
                match m.get_export("_start") {
                    Some(wasmtime::ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
                    _ => {
                        return Err(WasmError::Link {
                            module: module.to_path_buf(),
                            detail:
                                "no `_start` function of type [] -> [] is exported: build the tool as a WASI command"
                                    .into(),
                        });
                    }
                }
                let pre = self.linkers.core.instantiate_pre(&m).map_err(link_error)?;
                Ok(Compiled::Core(pre))
            }
            Loaded::Component(c) => {
                let pre = self.linkers.component.instantiate_pre(&c).map_err(link_error)?;
                let pre = CommandPre::new(pre).map_err(link_error)?;
                Ok(Compiled::Component(pre))
            }
        }
    }
}

/// Reads the layer field of the binary header: 0 is a core module, 1 a component.
fn detect_kind(binary: &[u8]) -> Option<ArtifactKind> {
    if binary.len() < 8 || &binary[..4] != b"\0asm" {
        return None;
    }
    match u16::from_le_bytes([binary[6], binary[7]]) {
        0 => Some(ArtifactKind::Module),
        1 => Some(ArtifactKind::Component),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_must_be_lowercase_sha256_hex() {
        assert!(is_sha256_hex(&"a".repeat(64)));
        assert!(!is_sha256_hex(&"A".repeat(64)));
        assert!(!is_sha256_hex("../../etc/passwd"));
        assert!(!is_sha256_hex(&"a".repeat(63)));
    }

    #[test]
    fn the_layer_field_tells_modules_from_components() {
        let module = wat::parse_str("(module)").unwrap();
        let component = wat::parse_str("(component)").unwrap();
        assert_eq!(detect_kind(&module), Some(ArtifactKind::Module));
        assert_eq!(detect_kind(&component), Some(ArtifactKind::Component));
        assert_eq!(detect_kind(b"\x7fELF...."), None);
    }
}
