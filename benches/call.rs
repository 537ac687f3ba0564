//! Benchmark of the spine (issue 2): what one tool call costs through the whole pipeline
//! (policy evaluation, wasm backend, audit append), against the floor of the same module
//! run by bare wasmtime, measured in the same run.
//!
//! Prints, for a trivial guest tool (a WASI module whose `_start` returns at once):
//! - a warm `Runtime::call` with `fsync = "off"` (p50, p99);
//! - the floor: bare wasmtime `InstancePre` instantiate + `_start` of the same module with
//!   wasmtime's default configuration (the target's ratio), and, for reference, with the
//!   pooling allocator and nothing else (no fuel, epochs, limits, capture or audit);
//! - spawning `airlock run` per call (a fresh process: policy load, engine, disk cache);
//! - throughput with `fsync = "batch"` and 64 concurrent callers;
//! - for scale, a real guest tool (`wc` on a small file) through `Runtime::call`.
//!
//! Run: `cargo bench --bench call`. The machine is shared and noisy: read medians and
//! ratios, not single times.

#[path = "common/mod.rs"]
mod common;

use common::{BENCH_DESIGNATION, NOOP_WAT, percentile, row, verdict};
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use airlock::{CallRequest, Runtime, audit::Fsync};
use serde_json::json;

const WARM_CALLS: usize = 5_000;
const FLOOR_CALLS: usize = 5_000;
const SPAWNS: usize = 40;
const CONCURRENT_CALLERS: usize = 64;
const BATCH_CALLS: usize = 20_000;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let setup = Setup::new(temp.path())?;
    println!("airlock call benchmark ({} warm calls, 2 worker threads)\n", WARM_CALLS);

    // 1. The pipeline with fsync off.
    let off = setup.runtime(Fsync::Off, "audit-off.jsonl")?;
    let noop = |ws: &Path| CallRequest::new("bench", "noop", ws);
    for _ in 0..200 {
        assert!(off.call(noop(&setup.workspace)).await?.is_ok());
    }
    let mut pipeline = Vec::with_capacity(WARM_CALLS);
    for _ in 0..WARM_CALLS {
        let started = Instant::now();
        let outcome = off.call(noop(&setup.workspace)).await?;
        pipeline.push(started.elapsed());
        assert!(outcome.is_ok());
    }

    // The pipeline's stages, each alone, to see where the time goes.
    let policies = off.policies();
    let mut evaluate = Vec::with_capacity(WARM_CALLS);
    let mut backend = Vec::with_capacity(WARM_CALLS);
    let mut append = Vec::with_capacity(WARM_CALLS);
    let no_arguments = json!({});
    for _ in 0..WARM_CALLS {
        let started = Instant::now();
        let evaluation = policies.evaluate("bench", "noop", &no_arguments, &setup.workspace);
        evaluate.push(started.elapsed());
        let grant = evaluation.grant.clone().ok_or_else(|| anyhow::anyhow!("noop was not allowed"))?;
        let started = Instant::now();
        let report = off.wasm().run(&grant).await?;
        backend.push(started.elapsed());
        anyhow::ensure!(report.exit == airlock::backend::wasm::Exit::Code(0));
        let entry = airlock::audit::AuditEntry::new("bench", "noop", json!({}), evaluation.decision, &evaluation.rule);
        let started = Instant::now();
        off.audit().append(entry).await?;
        append.push(started.elapsed());
    }

    // 2. The floor: bare wasmtime, same module.
    let floor_default = floor(&setup.module, false).await?;
    let floor_pooled = floor(&setup.module, true).await?;

    // 3. A real guest tool, for scale.
    let mut wc = Vec::with_capacity(1000);
    let wc_request = || CallRequest::new("bench", "wc", &setup.workspace).arguments(json!({ "path": "small.txt" }));
    assert!(off.call(wc_request()).await?.is_ok());
    for _ in 0..1000 {
        let started = Instant::now();
        let outcome = off.call(wc_request()).await?;
        wc.push(started.elapsed());
        assert!(outcome.is_ok());
    }
    off.close().await?;

    // 4. Group commit under 64 concurrent callers.
    let batch = Arc::new(setup.runtime(Fsync::Batch, "audit-batch.jsonl")?);
    assert!(batch.call(noop(&setup.workspace)).await?.is_ok());
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..CONCURRENT_CALLERS {
        let (batch, issued, workspace) = (batch.clone(), issued.clone(), setup.workspace.clone());
        callers.push(tokio::spawn(async move {
            while issued.fetch_add(1, Ordering::Relaxed) < BATCH_CALLS {
                let outcome = batch.call(CallRequest::new("bench", "noop", &workspace)).await?;
                anyhow::ensure!(outcome.is_ok(), "{:?}", outcome.status);
            }
            anyhow::Ok(())
        }));
    }
    for caller in callers {
        caller.await??;
    }
    let batch_elapsed = started.elapsed();
    let throughput = BATCH_CALLS as f64 / batch_elapsed.as_secs_f64();
    let stats = batch.audit().stats();

    // 5. Spawning `airlock run` per call.
    let mut spawns = Vec::with_capacity(SPAWNS);
    for i in 0..=SPAWNS {
        let started = Instant::now();
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["run", "noop", "--caller", "bench", "--workspace"])
            .arg(&setup.workspace)
            .arg("--policies")
            .arg(&setup.policies)
            .arg("--audit")
            .arg(temp.path().join("audit-spawn.jsonl"))
            .env("XDG_CACHE_HOME", temp.path().join("cache"))
            .status()?;
        anyhow::ensure!(status.success(), "airlock run failed: {status}");
        if i > 0 {
            // The first spawn fills the disk cache.
            spawns.push(started.elapsed());
        }
    }

    let (p50, p99) = (percentile(&mut pipeline, 0.50), percentile(&mut pipeline, 0.99));
    let floor_default_p50 = percentile(&mut floor_default.clone(), 0.50);
    let floor_pooled_p50 = percentile(&mut floor_pooled.clone(), 0.50);
    let ratio = p50.as_secs_f64() / floor_default_p50.as_secs_f64();
    let ratio_pooled = p50.as_secs_f64() / floor_pooled_p50.as_secs_f64();
    let spawn_p50 = percentile(&mut spawns, 0.50);
    println!("{:<58} {:>10} {:>10}", "", "p50", "p99");
    row("Runtime::call, trivial tool, fsync=off (incl. audit)", p50, Some(p99));
    row("floor: bare wasmtime InstancePre+_start, default alloc", floor_default_p50, None);
    row("floor: bare wasmtime InstancePre+_start, pooling alloc", floor_pooled_p50, None);
    row("  stage: policy evaluation", percentile(&mut evaluate, 0.50), Some(percentile(&mut evaluate, 0.99)));
    row("  stage: wasm backend run", percentile(&mut backend, 0.50), Some(percentile(&mut backend, 0.99)));
    row("  stage: audit append, fsync=off", percentile(&mut append, 0.50), Some(percentile(&mut append, 0.99)));
    row("Runtime::call, wc on a 2 KiB file, fsync=off", percentile(&mut wc, 0.50), Some(percentile(&mut wc, 0.99)));
    row("spawn `airlock run` per call (warm disk cache)", spawn_p50, None);
    println!();
    println!("pipeline / floor (wasmtime's defaults): {ratio:.2}x");
    println!("pipeline / pooled bare embedding (no fuel, epochs, limits, capture, audit): {ratio_pooled:.2}x");
    println!("spawn per call / in-process call:      {:.0}x", spawn_p50.as_secs_f64() / p50.as_secs_f64());
    println!(
        "fsync=batch, {CONCURRENT_CALLERS} concurrent callers: {throughput:.0} calls/s ({BATCH_CALLS} calls in {:.2} s, {} fsyncs)",
        batch_elapsed.as_secs_f64(),
        stats.syncs
    );
    println!();
    verdict("p50 <= 100 us with fsync=off", p50 <= Duration::from_micros(100));
    verdict("p50 <= 4x the bare-wasmtime floor (wasmtime's default config)", ratio <= 4.0);
    verdict(">= 5,000 calls/s with fsync=batch and 64 callers", throughput >= 5_000.0);
    Ok(())
}

/// A policy directory with the shipped designations and callers (and `bench`), a `noop` tool and
/// the shipped `wc`, and a workspace.
struct Setup {
    policies: PathBuf,
    workspace: PathBuf,
    module: Vec<u8>,
    root: PathBuf,
}

impl Setup {
    fn new(root: &Path) -> anyhow::Result<Setup> {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let policies = root.join("policies");
        std::fs::create_dir_all(policies.join("tools"))?;
        std::fs::copy(shipped.join("audit.toml"), policies.join("audit.toml"))?;
        let designations = std::fs::read_to_string(shipped.join("designations.toml"))? + BENCH_DESIGNATION;
        std::fs::write(policies.join("designations.toml"), designations)?;
        let callers =
            std::fs::read_to_string(shipped.join("callers.toml"))? + "\n[callers.bench]\ndesignation = \"bench\"\n";
        std::fs::write(policies.join("callers.toml"), callers)?;
        let module = wat::parse_str(NOOP_WAT)?;
        std::fs::write(root.join("noop.wasm"), &module)?;
        std::fs::write(
            policies.join("tools/noop.toml"),
            format!(
                "name = \"noop\"\n\
                 description = \"Does nothing: the benchmark's trivial guest tool.\"\n\
                 justification = \"No files, no env, no network: it only measures the call path.\"\n\
                 categories = [\"read\"]\n\
                 [backend]\nwasm = \"../noop.wasm\"\nsha256 = \"{}\"\n\
                 [input]\ntype = \"object\"\nadditionalProperties = false\n",
                airlock::policy::sha256_hex(&module)
            ),
        )?;
        let wc = std::fs::read_to_string(shipped.join("tools/wc.toml"))?;
        let wc_module = shipped.join("../guest-tools/wasm/wc.wasm").canonicalize()?;
        std::fs::write(
            policies.join("tools/wc.toml"),
            wc.replace("../guest-tools/wasm/wc.wasm", &wc_module.to_string_lossy()),
        )?;
        let workspace = root.join("workspace");
        std::fs::create_dir_all(&workspace)?;
        std::fs::write(workspace.join("small.txt"), "the quick brown fox jumps over the lazy dog\n".repeat(46))?;
        Ok(Setup { policies, workspace, module, root: root.to_path_buf() })
    }

    fn runtime(&self, fsync: Fsync, audit: &str) -> anyhow::Result<Runtime> {
        Ok(Runtime::builder(&self.policies)
            .audit_path(self.root.join(audit))
            .fsync(fsync)
            .cache_dir(Some(self.root.join("cache")))
            .build()?)
    }
}

/// Bare wasmtime: `InstancePre::instantiate_async` + `_start` per call, a minimal WASI
/// context, no fuel, epochs, limits or capture.
async fn floor(module: &[u8], pooling: bool) -> anyhow::Result<Vec<Duration>> {
    let mut config = wasmtime::Config::new();
    if pooling {
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::pooling());
    }
    let engine = wt(wasmtime::Engine::new(&config))?;
    let mut linker = wasmtime::Linker::<wasmtime_wasi::p1::WasiP1Ctx>::new(&engine);
    wt(wasmtime_wasi::p1::add_to_linker_async(&mut linker, |cx| cx))?;
    let pre = wt(linker.instantiate_pre(&wt(wasmtime::Module::new(&engine, module))?))?;
    let mut times = Vec::with_capacity(FLOOR_CALLS);
    for i in 0..FLOOR_CALLS + 200 {
        let started = Instant::now();
        let ctx = wasmtime_wasi::WasiCtxBuilder::new().args(&["noop"]).build_p1();
        let mut store = wasmtime::Store::new(&engine, ctx);
        let instance = wt(pre.instantiate_async(&mut store).await)?;
        let start = wt(instance.get_typed_func::<(), ()>(&mut store, "_start"))?;
        wt(start.call_async(&mut store, ()).await)?;
        if i >= 200 {
            times.push(started.elapsed());
        }
    }
    Ok(times)
}

/// wasmtime's errors as anyhow's.
fn wt<T>(result: wasmtime::Result<T>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!("{e:#}"))
}
