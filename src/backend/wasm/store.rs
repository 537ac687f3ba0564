//! Per-call store state: the WASI context and the resource limiter built from the grant.
//!
//! [`GrantLimiter`] enforces `limits.memory_mib`, `limits.table_elements` and
//! `limits.instances` (which also caps tables and memories per store), and records what
//! it denied and the peak linear memory so the run can be classified afterwards. It
//! decides from the grant's numbers alone and must not allocate or block.

use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtxView, WasiView, p1::WasiP1Ctx};

use crate::{outcome::Limit, policy::Limits};

/// What one `Store` holds: the guest's WASI view of the world and its limiter.
pub struct CallState {
    /// The WASI context (usable by both the preview1 and the preview2 host functions).
    pub wasi: WasiP1Ctx,
    /// The limits of this call.
    pub limiter: GrantLimiter,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.ctx()
    }
}

/// The engine-wide ceilings (from [`super::WasmConfig`]) a grant's limits live under.
#[derive(Debug, Clone, Copy)]
pub struct EngineCeilings {
    /// Largest linear memory the pool holds, in bytes.
    pub memory_bytes: u64,
    /// Largest table the pool holds, in elements.
    pub table_elements: u64,
}

/// A `ResourceLimiter` built from a grant's [`Limits`].
#[derive(Debug, Clone)]
pub struct GrantLimiter {
    /// min(grant, engine ceiling), in bytes per memory.
    memory_bytes: usize,
    /// min(grant, engine ceiling), in elements per table.
    table_elements: usize,
    instances: usize,
    /// Linear memory currently allocated by all memories of the store, in bytes.
    memory_in_use: usize,
    /// The last allowed growth, taken back if the engine then fails it.
    last_growth: usize,
    /// The largest `memory_in_use` seen.
    peak_memory: usize,
    /// The first limit that refused a growth, if any.
    denied: Option<Limit>,
}

impl GrantLimiter {
    /// A limiter enforcing `limits` under `ceilings` (numbers that do not fit in `usize`
    /// saturate).
    pub fn new(limits: &Limits, ceilings: EngineCeilings) -> Self {
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let memory_bytes = limits.memory_mib.saturating_mul(1 << 20);
        GrantLimiter {
            memory_bytes: to_usize(memory_bytes.min(ceilings.memory_bytes)),
            table_elements: to_usize(limits.table_elements.min(ceilings.table_elements)),
            instances: to_usize(limits.instances),
            memory_in_use: 0,
            last_growth: 0,
            peak_memory: 0,
            denied: None,
        }
    }

    /// The peak linear memory of the store, in bytes.
    pub fn peak_memory_bytes(&self) -> u64 {
        self.peak_memory as u64
    }

    /// The limit that refused a memory or table growth, if one did.
    pub fn denied(&self) -> Option<Limit> {
        self.denied
    }

    fn deny(&mut self, limit: Limit) {
        self.denied.get_or_insert(limit);
    }
}

/// Growing past the module's own declared maximum fails like in any wasm engine: the
/// guest sees -1, and it is not a sandbox limit, so it is not recorded.
fn past_own_maximum(desired: usize, maximum: Option<usize>) -> bool {
    maximum.is_some_and(|maximum| desired > maximum)
}

impl ResourceLimiter for GrantLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.deny(Limit::Memory);
            return Ok(false);
        }
        if past_own_maximum(desired, maximum) {
            return Ok(false);
        }
        self.last_growth = desired.saturating_sub(current);
        self.memory_in_use = self.memory_in_use.saturating_add(self.last_growth);
        self.peak_memory = self.peak_memory.max(self.memory_in_use);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The host could not provide memory this limiter allowed (mmap failed): take the
        // growth back and count it as the memory limit.
        self.memory_in_use = self.memory_in_use.saturating_sub(self.last_growth);
        self.deny(Limit::Memory);
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.deny(Limit::Table);
            return Ok(false);
        }
        Ok(!past_own_maximum(desired, maximum))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.deny(Limit::Table);
        Ok(())
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.instances
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;
    const CEILINGS: EngineCeilings = EngineCeilings { memory_bytes: 4 << 30, table_elements: 20_000 };

    #[test]
    fn the_engine_ceiling_caps_a_larger_grant() {
        let ceilings = EngineCeilings { memory_bytes: MIB as u64, table_elements: 5 };
        let mut limiter = GrantLimiter::new(&Limits::default(), ceilings);
        assert!(!limiter.memory_growing(0, 2 * MIB, None).unwrap());
        assert_eq!(limiter.denied(), Some(Limit::Memory));
        let mut limiter = GrantLimiter::new(&Limits::default(), ceilings);
        assert!(!limiter.table_growing(0, 6, None).unwrap());
        assert_eq!(limiter.denied(), Some(Limit::Table));
    }

    #[test]
    fn the_modules_own_maximum_is_not_a_sandbox_limit() {
        let mut limiter = GrantLimiter::new(&Limits::default(), CEILINGS);
        assert!(!limiter.memory_growing(MIB, 2 * MIB, Some(MIB)).unwrap());
        assert!(!limiter.table_growing(1, 2, Some(1)).unwrap());
        assert_eq!(limiter.denied(), None);
    }

    #[test]
    fn a_failed_growth_is_taken_back_from_the_peak() {
        let mut limiter = GrantLimiter::new(&Limits::default(), CEILINGS);
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
        let peak_before = limiter.peak_memory_bytes();
        assert!(limiter.memory_growing(MIB, 2 * MIB, None).unwrap());
        limiter.memory_grow_failed(wasmtime::Error::msg("mmap failed")).unwrap();
        assert!(limiter.memory_growing(MIB, 2 * MIB, None).unwrap());
        assert_eq!(limiter.peak_memory_bytes(), 2 * MIB as u64);
        assert!(peak_before < limiter.peak_memory_bytes());
        assert_eq!(limiter.denied(), Some(Limit::Memory));
    }

    #[test]
    fn memory_growth_is_refused_past_the_grant_and_recorded() {
        let mut limiter = GrantLimiter::new(&Limits { memory_mib: 2, ..Limits::default() }, CEILINGS);
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
        assert!(limiter.memory_growing(MIB, 2 * MIB, None).unwrap());
        assert_eq!(limiter.denied(), None);
        assert!(!limiter.memory_growing(2 * MIB, 3 * MIB, None).unwrap());
        assert_eq!(limiter.denied(), Some(Limit::Memory));
        assert_eq!(limiter.peak_memory_bytes(), 2 * MIB as u64);
    }

    #[test]
    fn table_growth_is_refused_past_the_grant() {
        let mut limiter = GrantLimiter::new(&Limits { table_elements: 10, ..Limits::default() }, CEILINGS);
        assert!(limiter.table_growing(0, 10, None).unwrap());
        assert!(!limiter.table_growing(10, 11, None).unwrap());
        assert_eq!(limiter.denied(), Some(Limit::Table));
    }
}
