//! The WebAssembly backend (wasmtime + wasmtime-wasi): one engine per backend, modules
//! cached by sha256, a fresh store with limits per call, a WASI context built only from
//! the grant.
//!
//! A call goes: `cache` (pinned digest checked on a miss; compiled and pre-linked once)
//! -> `wasi` (args, env, stdin, capped stdout/stderr, preopens, sockets from the grant)
//! -> a fresh `Store` with a `store::GrantLimiter`, fuel and an epoch deadline -> the
//! entry point (`_start` for a preview1 module, `wasi:cli/run#run` for a preview2
//! component) under a wall-clock timeout -> [`Exit`] classified from how it ended.
//!
//! The backend sees only the [`Grant`]: never the request, the caller or the policy. It
//! must not give a guest anything the grant does not list, and an error before the guest
//! starts is a [`WasmError`] (the call is denied), never a run with less isolation.
//!
//! Construct one [`WasmBackend`] per process and share it (`Arc`): it owns the engine,
//! the pooling allocator's address-space reservation, the module cache and a ticker
//! thread. [`WasmBackend::run`] must be called inside a tokio runtime with the time driver
//! enabled.

mod artifact;
mod cache;
mod engine;
mod output;
mod preopen;
mod store;
mod wasi;

use std::{path::PathBuf, time::Duration};

use tokio::time::Instant;
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::I32Exit;

pub use self::cache::CacheStats;
pub use self::output::OutputCapExceeded;
use self::{
    cache::{Compiled, ModuleCache},
    engine::{EpochTicker, Linkers},
    output::CappedOutput,
    preopen::PreopenCache,
    store::{CallState, EngineCeilings, GrantLimiter},
};
use crate::{
    outcome::{CapturedOutput, Limit, Usage},
    policy::{Grant, Program},
};

/// Errors that keep a module from running at all (the call is denied with this reason).
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("tool {tool} is not a wasm tool; the wasm backend runs only `wasm` programs")]
    NotWasm { tool: String },
    #[error("cannot read module {path}: {source}; check the tool's `wasm` path")]
    ReadModule { path: PathBuf, source: std::io::Error },
    #[error(
        "module {module} has sha256 {actual} but the policy pins {pinned}; refusing to run it \
         (if the module was rebuilt on purpose, update the tool's `sha256`)"
    )]
    DigestMismatch { module: PathBuf, pinned: String, actual: String },
    #[error("module {module} is pinned to {pinned:?}, which is not a lowercase hex sha256 (64 digits)")]
    BadPin { module: PathBuf, pinned: String },
    #[error("cannot compile module {module}: {detail}")]
    Compile { module: PathBuf, detail: String },
    #[error(
        "cannot link module {module}: {detail}; the runtime provides only WASI preview1 \
         (`wasi_snapshot_preview1`) and preview2 (`wasi:cli/command`) imports"
    )]
    Link { module: PathBuf, detail: String },
    #[error(
        "cannot instantiate tool {tool}: {detail}; if the instance pool is exhausted, retry \
         later or raise WasmConfig::max_instances"
    )]
    Instantiate { tool: String, detail: String },
    #[error("cannot open mount {host}: {source}; the mount's host path must be an existing directory")]
    OpenMount { host: PathBuf, source: std::io::Error },
    #[error("mount {host} is not a directory; only directories can be mounted into a wasm tool")]
    MountNotDirectory { host: PathBuf },
    #[error("cannot resolve network grant {entry:?}: {source}; use `host:port` with a resolvable host")]
    ResolveNetwork { entry: String, source: std::io::Error },
    #[error("cannot set up the wasm engine: {detail}")]
    Engine { detail: String },
    #[error("cannot use cache directory {dir}: {detail}")]
    CacheDir { dir: PathBuf, detail: String },
}

/// The wasm backend's result alias.
pub type Result<T, E = WasmError> = std::result::Result<T, E>;

/// Engine-wide settings. Per-call limits come from each grant's `Limits`; these only size
/// the engine (they are ceilings the grants live under).
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// Where precompiled artifacts are kept (`<sha256>.cwasm`). Default: none (memory
    /// cache only). Created 0700 if missing; refused if group/other-writable or not owned
    /// by this user, since its contents are loaded as native code.
    pub cache_dir: Option<PathBuf>,
    /// Concurrent instances the pooling allocator holds: core instances, component
    /// instances, memories, tables and async stacks each. Default: 1000. A preview2
    /// component uses several core instances, so fewer components than this run at once.
    pub max_instances: u32,
    /// Ceiling of one linear memory, and its virtual-address reservation. Default: 4 GiB.
    /// Grants' `memory_mib` above this are capped by it.
    ///
    /// The pool reserves `max_instances * (max_memory_bytes + 32 MiB guard)` of address
    /// space when the backend is built: virtual only (no memory is committed), but with
    /// the defaults that is ~4 TiB, so a process (128 TiB of user address space on
    /// x86-64) fits about 31 default backends. Build one per process; tests that build
    /// many should shrink both numbers.
    pub max_memory_bytes: u64,
    /// Ceiling of elements per table in the pool. Default: 20,000. Grants'
    /// `table_elements` above this are capped by it.
    pub max_table_elements: usize,
    /// Wasm stack per call, in bytes; deeper recursion traps. Default: 512 KiB.
    pub max_wasm_stack: usize,
    /// How often the epoch advances; a running guest yields to the executor at each tick,
    /// so this bounds how late a wall-clock timeout can stop it. Default: 10 ms.
    pub epoch_tick: Duration,
}

impl Default for WasmConfig {
    /// No disk cache, 1000 concurrent instances, 4 GiB per memory (virtual reservation),
    /// 20,000 table elements, 512 KiB wasm stack, 10 ms epoch tick.
    fn default() -> Self {
        WasmConfig {
            cache_dir: None,
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            max_table_elements: 20_000,
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The guest exited (returning from `_start` is 0; a component's `run` returning
    /// `err` is 1).
    Code(i32),
    /// A limit stopped it.
    Limit(Limit),
    /// It trapped.
    Trap(String),
}

/// What a run reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// How it ended.
    pub exit: Exit,
    /// Captured stdout (at most `limits.output_bytes`).
    pub stdout: CapturedOutput,
    /// Captured stderr (at most `limits.output_bytes`).
    pub stderr: CapturedOutput,
    /// Wall time (instantiate + run), fuel consumed, peak linear memory (all memories of
    /// the store).
    pub usage: Usage,
}

/// The wasm backend: one engine, its linkers, its module cache.
pub struct WasmBackend {
    engine: Engine,
    ceilings: EngineCeilings,
    cache: ModuleCache,
    /// One permit per pooled instance slot: a call waits for free slots instead of
    /// failing when the pool is busy.
    slots: tokio::sync::Semaphore,
    max_instances: u32,
    /// The opened preopens of workspaces with protected paths, kept while unchanged.
    preopens: PreopenCache,
    // Declared last so it stops after everything else is dropped.
    _ticker: EpochTicker,
}

impl WasmBackend {
    /// Builds the engine, the WASI linkers and the cache, and starts the epoch ticker.
    /// Fails if the engine cannot be configured on this host or the cache directory is
    /// unusable.
    pub fn new(config: WasmConfig) -> Result<Self> {
        if let Some(dir) = &config.cache_dir {
            prepare_cache_dir(dir)?;
        }
        let engine = engine::build_engine(&config)?;
        let linkers = Linkers::new(&engine)?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)?;
        let ceilings =
            EngineCeilings { memory_bytes: config.max_memory_bytes, table_elements: config.max_table_elements as u64 };
        Ok(WasmBackend {
            ceilings,
            cache: ModuleCache::new(engine.clone(), linkers, config.cache_dir),
            slots: tokio::sync::Semaphore::new(config.max_instances as usize),
            max_instances: config.max_instances,
            preopens: PreopenCache::new(),
            engine,
            _ticker: ticker,
        })
    }

    /// Cache counters so far.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Instance slots free now (calls beyond them wait for one).
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Runs the grant's program under the grant's limits.
    ///
    /// `Err` means it did not run (denied: digest mismatch, link error, bad mount, ...);
    /// `Ok` carries how it ended, including limits and traps (see `classify` for how).
    /// The wall-clock limit covers instantiation and the run, not a first call's compile.
    /// Must be called inside a tokio runtime with the time driver enabled.
    pub async fn run(&self, grant: &Grant) -> Result<RunReport> {
        let Program::Wasm { module, sha256 } = &grant.program else {
            return Err(WasmError::NotWasm { tool: grant.tool.clone() });
        };
        let compiled = self.cache.get(module, sha256).await?;
        // A component instantiates several core instances (at most the grant's `instances`);
        // a core module one. Waiting here keeps the pool from ever being exhausted.
        let needed = match &*compiled {
            Compiled::Core(_) => 1,
            _ => u32::try_from(grant.limits.instances).unwrap_or(u32::MAX).clamp(1, self.max_instances),
        };
        let _slots = self
            .slots
            .acquire_many(needed)
            .await
            .map_err(|_| WasmError::Engine { detail: "the instance pool is closed".into() })?;
        let wasi = wasi::build(grant, &self.preopens).await?;

        let mut store = Store::new(
            &self.engine,
            CallState { wasi: wasi.ctx, limiter: GrantLimiter::new(&grant.limits, self.ceilings) },
        );
        store.limiter(|state| &mut state.limiter);
        store
            .set_fuel(grant.limits.fuel)
            .map_err(|e| WasmError::Engine { detail: format!("cannot set fuel: {e:#}") })?;
        store.epoch_deadline_async_yield_and_update(1);

        let started = Instant::now();
        let wall = Duration::from_millis(grant.limits.wall_ms);
        let ended = match tokio::time::timeout(wall, call(&compiled, &mut store)).await {
            Ok(ended) => ended,
            Err(_elapsed) => Ended::TimedOut,
        };
        let wall_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);

        let fuel_left = store.get_fuel().unwrap_or(0);
        let limiter = store.data().limiter.clone();
        drop(store);
        let exit = classify(ended, &limiter, &wasi.stdout, &wasi.stderr, &grant.tool)?;
        Ok(RunReport {
            exit,
            stdout: wasi.stdout.into_captured(),
            stderr: wasi.stderr.into_captured(),
            usage: Usage {
                wall_us,
                cpu_us: None,
                fuel: Some(grant.limits.fuel.saturating_sub(fuel_left)),
                peak_memory_bytes: limiter.peak_memory_bytes(),
            },
        })
    }
}

/// How the entry point ended, before classification.
enum Ended {
    /// It returned this exit code (0, or 1 for a component's `err`).
    Returned(i32),
    /// Instantiation failed (limits, start-function trap, pool exhausted).
    InstantiateFailed(wasmtime::Error),
    /// The entry point failed (trap, `proc_exit`, host error).
    Failed(wasmtime::Error),
    /// The wall-clock limit passed.
    TimedOut,
}

/// Instantiates and runs the entry point.
async fn call(compiled: &Compiled, store: &mut Store<CallState>) -> Ended {
    match compiled {
        Compiled::Core(pre) => {
            let instance = match pre.instantiate_async(&mut *store).await {
                Ok(instance) => instance,
                Err(e) => return Ended::InstantiateFailed(e),
            };
            let start = match instance.get_typed_func::<(), ()>(&mut *store, "_start") {
                Ok(start) => start,
                Err(e) => return Ended::InstantiateFailed(e),
            };
            match start.call_async(&mut *store, ()).await {
                Ok(()) => Ended::Returned(0),
                Err(e) => Ended::Failed(e),
            }
        }
        Compiled::Component(pre) => {
            let command = match pre.instantiate_async(&mut *store).await {
                Ok(command) => command,
                Err(e) => return Ended::InstantiateFailed(e),
            };
            match command.wasi_cli_run().call_run(&mut *store).await {
                Ok(Ok(())) => Ended::Returned(0),
                Ok(Err(())) => Ended::Returned(1),
                Err(e) => Ended::Failed(e),
            }
        }
    }
}

/// Turns how a run ended into an [`Exit`].
///
/// - returned or exited with a code: that code, except that a non-zero code after the
///   limiter refused a memory or table growth is that limit (the guest's allocator failed);
/// - a write past the output cap: `Limit(Output)`;
/// - `OutOfFuel`: `Limit(Fuel)`; the wall timeout or an epoch interrupt: `Limit(Wall)`;
/// - any other failure after the limiter refused a growth: `Limit(Memory | Table)`;
/// - the store's instance/table/memory count exceeded: `Limit(Instances)`;
/// - other traps (stack overflow, unreachable, out-of-bounds, host errors): `Trap`;
/// - an instantiation failure that is none of these (e.g. the pool is exhausted): an
///   error, since the guest never ran.
fn classify(
    ended: Ended,
    limiter: &GrantLimiter,
    stdout: &CappedOutput,
    stderr: &CappedOutput,
    tool: &str,
) -> Result<Exit> {
    let from_code = |code: i32| match (code, limiter.denied()) {
        (0, _) | (_, None) => Exit::Code(code),
        (_, Some(limit)) => Exit::Limit(limit),
    };
    let (error, instantiating) = match ended {
        Ended::TimedOut => return Ok(Exit::Limit(Limit::Wall)),
        Ended::Returned(code) => return Ok(from_code(code)),
        Ended::Failed(e) => (e, false),
        Ended::InstantiateFailed(e) => (e, true),
    };
    if let Some(I32Exit(code)) = error.downcast_ref::<I32Exit>() {
        return Ok(from_code(*code));
    }
    if stdout.exceeded() || stderr.exceeded() {
        return Ok(Exit::Limit(Limit::Output));
    }
    let trap = error.downcast_ref::<Trap>().copied();
    match trap {
        Some(Trap::OutOfFuel) => return Ok(Exit::Limit(Limit::Fuel)),
        Some(Trap::Interrupt) => return Ok(Exit::Limit(Limit::Wall)),
        _ => {}
    }
    if let Some(limit) = limiter.denied() {
        return Ok(Exit::Limit(limit));
    }
    // wasmtime reports the store's instance/memory/table counts only by message
    // ("resource limit exceeded: instance count too high at N"); the version is pinned and
    // the `instances` test covers it.
    if error.chain().any(|cause| cause.to_string().starts_with("resource limit exceeded")) {
        return Ok(Exit::Limit(Limit::Instances));
    }
    match trap {
        Some(trap) => Ok(Exit::Trap(trap.to_string())),
        None if instantiating => Err(WasmError::Instantiate { tool: tool.to_string(), detail: format!("{error:#}") }),
        None => Ok(Exit::Trap(format!("{error:#}"))),
    }
}

/// Creates the cache directory (0700) and refuses one that others could write: its files
/// are deserialized as native code.
fn prepare_cache_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};

    let cache_error = |detail: String| WasmError::CacheDir { dir: dir.to_path_buf(), detail };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| cache_error(format!("cannot create it: {e}")))?;
    let metadata = std::fs::symlink_metadata(dir).map_err(|e| cache_error(format!("cannot stat it: {e}")))?;
    if !metadata.is_dir() {
        return Err(cache_error("not a directory (symlinks are refused)".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if metadata.uid() != euid {
        return Err(cache_error(format!(
            "owned by uid {}, not by this process's uid {euid}; use a directory you own",
            metadata.uid()
        )));
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(cache_error(format!(
            "mode {:o} lets group or others write it; `chmod go-w` it or pick another",
            metadata.mode() & 0o777
        )));
    }
    Ok(())
}
