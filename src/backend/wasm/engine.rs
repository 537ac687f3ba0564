//! Engine-wide set-up: the one `wasmtime::Engine`, the epoch ticker, and the two linkers
//! (WASI preview1 for core modules, preview2 for components).
//!
//! Everything here is built once per [`super::WasmBackend`] and shared by every call;
//! per-call limits live in the store (see [`super::store`]). Nothing here reads a grant.

use std::{
    sync::mpsc::{self, RecvTimeoutError},
    thread::JoinHandle,
    time::Duration,
};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use super::{WasmConfig, WasmError, store::CallState};

/// Builds the engine: fuel, epoch interruption, pooling allocator sized from `config`,
/// copy-on-write memory images, parallel compilation.
pub fn build_engine(config: &WasmConfig) -> Result<Engine, WasmError> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(config.max_instances)
        .total_component_instances(config.max_instances)
        .total_memories(config.max_instances)
        .total_tables(config.max_instances)
        .total_stacks(config.max_instances)
        .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
        .table_elements(config.max_table_elements);

    let mut wasm = Config::new();
    wasm.consume_fuel(true)
        .epoch_interruption(true)
        .parallel_compilation(true)
        .memory_init_cow(true)
        .memory_reservation(config.max_memory_bytes)
        .max_wasm_stack(config.max_wasm_stack)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| WasmError::Engine { detail: format!("{e:#}") })
}

/// Advances the engine's epoch every tick, from its own thread, until dropped.
///
/// Guests yield to the executor at each epoch (see `epoch_deadline_async_yield_and_update`
/// in the run loop), which is what lets a wall-clock timeout stop a guest that never
/// calls the host.
pub struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub fn start(engine: Engine, tick: Duration) -> Result<Self, WasmError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("airlock-epoch".into())
            .spawn(move || {
                // A message or a dropped sender both end the loop.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .map_err(|source| WasmError::Engine {
                detail: format!("cannot start the epoch ticker thread: {source}"),
            })?;
        Ok(EpochTicker { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only loops on a channel; it cannot panic in a way worth reporting.
            let _ = thread.join();
        }
    }
}

/// The linkers every call instantiates through: built once, never per call.
pub struct Linkers {
    /// WASI preview1 (`wasi_snapshot_preview1`) for core modules.
    pub core: Linker<CallState>,
    /// WASI preview2 (`wasi:cli/command` world) for components.
    pub component: wasmtime::component::Linker<CallState>,
}

impl Linkers {
    /// Defines the WASI host functions (async versions) in both linkers.
    pub fn new(engine: &Engine) -> Result<Self, WasmError> {
        let mut core = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut core, |state: &mut CallState| &mut state.wasi)
            .map_err(|e| WasmError::Engine { detail: format!("cannot define WASI preview1: {e:#}") })?;
        let mut component = wasmtime::component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component)
            .map_err(|e| WasmError::Engine { detail: format!("cannot define WASI preview2: {e:#}") })?;
        Ok(Linkers { core, component })
    }
}
