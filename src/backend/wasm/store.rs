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

/// A `ResourceLimiter` built from a grant's [`Limits`].
#[derive(Debug, Clone)]
pub struct GrantLimiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    /// Linear memory currently allocated by all memories of the store, in bytes.
    memory_in_use: usize,
    /// The largest `memory_in_use` seen.
    peak_memory: usize,
    /// The first limit that refused a growth, if any.
    denied: Option<Limit>,
}

impl GrantLimiter {
    /// A limiter enforcing `limits` (numbers that do not fit in `usize` saturate).
    pub fn new(limits: &Limits) -> Self {
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        GrantLimiter {
            memory_bytes: to_usize(limits.memory_mib.saturating_mul(1 << 20)),
            table_elements: to_usize(limits.table_elements),
            instances: to_usize(limits.instances),
            memory_in_use: 0,
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

impl ResourceLimiter for GrantLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.deny(Limit::Memory);
            return Ok(false);
        }
        self.memory_in_use = self
            .memory_in_use
            .saturating_add(desired.saturating_sub(current));
        self.peak_memory = self.peak_memory.max(self.memory_in_use);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The engine-wide ceiling (or the OS) refused a growth this limiter allowed.
        self.deny(Limit::Memory);
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.deny(Limit::Table);
            return Ok(false);
        }
        Ok(true)
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

    #[test]
    fn memory_growth_is_refused_past_the_grant_and_recorded() {
        let mut limiter = GrantLimiter::new(&Limits {
            memory_mib: 2,
            ..Limits::default()
        });
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
        assert!(limiter.memory_growing(MIB, 2 * MIB, None).unwrap());
        assert_eq!(limiter.denied(), None);
        assert!(!limiter.memory_growing(2 * MIB, 3 * MIB, None).unwrap());
        assert_eq!(limiter.denied(), Some(Limit::Memory));
        assert_eq!(limiter.peak_memory_bytes(), 2 * MIB as u64);
    }

    #[test]
    fn table_growth_is_refused_past_the_grant() {
        let mut limiter = GrantLimiter::new(&Limits {
            table_elements: 10,
            ..Limits::default()
        });
        assert!(limiter.table_growing(0, 10, None).unwrap());
        assert!(!limiter.table_growing(10, 11, None).unwrap());
        assert_eq!(limiter.denied(), Some(Limit::Table));
    }
}
