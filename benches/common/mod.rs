//! What the benchmarks share: the trivial guest tool, the benchmarks' designation, and how
//! figures are printed (medians, p99, verdicts against the issues' targets).

#![allow(dead_code)]

use std::time::Duration;

/// A trivial guest tool: exports its memory and returns from `_start`.
pub const NOOP_WAT: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

/// A designation like `standard` whose budgets no benchmark reaches: the per-session
/// accounting runs on every call, its limits never refuse one.
pub const BENCH_DESIGNATION: &str = "\n[designations.bench]\n\
    justification = \"The benchmarks' caller: standard's categories, budgets too large to reach.\"\n\
    allow = [\"read\", \"write\", \"exec\"]\n\
    [designations.bench.budgets]\n\
    calls_per_minute = 1000000000\n\
    cpu_seconds = 1e12\n\
    wall_seconds = 1e12\n\
    output_bytes = 1000000000000000\n\
    denials_before_suspend = 1000000000\n";

/// The `q` quantile of `samples` (sorted in place).
pub fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[index]
}

/// One line of a figures table: a name, the median, and the p99 when there is one.
pub fn row(name: &str, p50: Duration, p99: Option<Duration>) {
    let us = |d: Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
    println!("{name:<62} {:>10} {:>10}", us(p50), p99.map_or_else(String::new, us));
}

/// Whether a target of the issue was met.
pub fn verdict(target: &str, met: bool) {
    println!("target {target}: {}", if met { "met" } else { "MISSED" });
}
