//! Benchmark of the protected-path guard (issue 5): what guarding the evaluation criteria
//! costs a call, measured in one run.
//!
//! A workspace whose protected tree (`tests/`) holds 10,000 files in 100 directories, and
//! one trivial wasm tool with a write grant on the whole workspace (so every call is
//! guarded: digests before and after). Two callers make the same call in the same
//! workspace, in interleaved rounds:
//! - `guarded`: the designation protects tests, eval, benchmarks, .airlock (the default);
//!   both designations are `standard` without its session budgets;
//! - `open`: the same designation with `protected = []` (no guard, one writable preopen).
//!
//! Prints p50/p99 of both, their ratio (target <= 1.2x when nothing changed), the cold
//! first check (scan, hash and watch 10,000 files), the first guarded call of a fresh
//! runtime, and a call after one protected file changed (rescans only that path). The
//! trivial tool is the worst case for the ratio: any real work adds to both sides.
//!
//! Run: `cargo bench --bench protect`. The machine is shared and noisy: read medians and
//! ratios, not single times.

#[path = "common/mod.rs"]
mod common;

use common::{NOOP_WAT, percentile, row, verdict};
use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use airlock::{CallRequest, Runtime, Status, audit::Fsync, guard::Guard};

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 100;
const ROUNDS: usize = 3_000;
const CHANGED_ROUNDS: usize = 50;
const PROTECTED: [&str; 4] = ["tests", "eval", "benchmarks", ".airlock"];

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let setup = Setup::new(temp.path())?;
    let files = DIRS * FILES_PER_DIR;
    println!("airlock protected-path benchmark ({files} protected files, {ROUNDS} interleaved rounds)\n");

    // The cold check alone: a fresh guard scans, hashes and watches every file.
    let protected: Vec<String> = PROTECTED.iter().map(|p| p.to_string()).collect();
    let workspace = setup.workspace.canonicalize()?;
    let mut cold = Vec::new();
    for _ in 0..5 {
        let guard = Guard::new();
        let started = Instant::now();
        let check = guard.check(&workspace, &protected, false)?;
        cold.push(started.elapsed());
        anyhow::ensure!(check.changes.is_empty());
    }

    // The first guarded call of a fresh runtime (includes the cold check).
    let runtime = setup.runtime("audit.jsonl")?;
    let request = |caller: &str| CallRequest::new(caller, "noop", &setup.workspace);
    let started = Instant::now();
    let first = runtime.call(request("guarded")).await?;
    let first_call = started.elapsed();
    anyhow::ensure!(first.is_ok(), "{:?}", first.status);
    for _ in 0..200 {
        anyhow::ensure!(runtime.call(request("guarded")).await?.is_ok());
        anyhow::ensure!(runtime.call(request("open")).await?.is_ok());
    }

    // Interleaved rounds: the same call, guarded and not.
    let mut guarded = Vec::with_capacity(ROUNDS);
    let mut open = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always follows the other.
        let order = if round % 2 == 0 { ["guarded", "open"] } else { ["open", "guarded"] };
        for caller in order {
            let started = Instant::now();
            let outcome = runtime.call(request(caller)).await?;
            let elapsed = started.elapsed();
            anyhow::ensure!(outcome.is_ok(), "{caller}: {:?}", outcome.status);
            if caller == "guarded" { guarded.push(elapsed) } else { open.push(elapsed) }
        }
    }

    // One protected file changed before each call: the call is `tampered` (not run), and
    // only that path is rescanned.
    let mut changed = Vec::with_capacity(CHANGED_ROUNDS);
    for i in 0..CHANGED_ROUNDS {
        std::fs::write(setup.workspace.join("tests/d042/test_017.py"), format!("# changed {i}\n"))?;
        let started = Instant::now();
        let outcome = runtime.call(request("guarded")).await?;
        changed.push(started.elapsed());
        anyhow::ensure!(matches!(outcome.status, Status::Tampered { .. }), "{:?}", outcome.status);
    }
    runtime.close().await?;

    let (g50, g99) = (percentile(&mut guarded, 0.50), percentile(&mut guarded, 0.99));
    let (o50, o99) = (percentile(&mut open, 0.50), percentile(&mut open, 0.99));
    let ratio = g50.as_secs_f64() / o50.as_secs_f64();
    println!("{:<62} {:>10} {:>10}", "", "p50", "p99");
    row("Runtime::call, no protected paths (open)", o50, Some(o99));
    row(&format!("Runtime::call, {files} protected files, nothing changed"), g50, Some(g99));
    row(
        "Runtime::call, one protected file changed (tampered, not run)",
        percentile(&mut changed, 0.50),
        Some(percentile(&mut changed, 0.99)),
    );
    row(&format!("cold first check: scan, hash, watch {files} files"), percentile(&mut cold, 0.50), None);
    row("first guarded call of a fresh runtime (incl. cold check)", first_call, None);
    println!();
    println!("guarded / open (p50): {ratio:.3}x");
    println!("guarded / open (p99): {:.3}x", g99.as_secs_f64() / o99.as_secs_f64());
    println!();
    verdict("guarded p50 <= 1.2x open when nothing changed", ratio <= 1.2);
    Ok(())
}

/// A policy directory (the shipped files, a `noop` tool with a write grant on the whole
/// workspace, and two designations that differ only in `protected`) and a workspace with
/// 10,000 files under tests/.
struct Setup {
    policies: PathBuf,
    workspace: PathBuf,
    root: PathBuf,
}

impl Setup {
    fn new(root: &Path) -> anyhow::Result<Setup> {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let policies = root.join("policies");
        std::fs::create_dir_all(policies.join("tools"))?;
        std::fs::copy(shipped.join("audit.toml"), policies.join("audit.toml"))?;
        let mut designations = std::fs::read_to_string(shipped.join("designations.toml"))?;
        // Two twins of `standard` without its session budgets (120 calls a minute would
        // refuse most rounds), differing only in `protected`.
        designations.push_str(
            "\n[designations.bench-guarded]\n\
             justification = \"The benchmark's guarded twin of standard, without budgets.\"\n\
             allow = [\"read\", \"write\", \"exec\"]\napprove = [\"deploy\"]\n\
             protected = [\"tests\", \"eval\", \"benchmarks\", \".airlock\"]\n\
             \n[designations.bench-open]\n\
             justification = \"The benchmark's unguarded twin of standard, without budgets.\"\n\
             allow = [\"read\", \"write\", \"exec\"]\napprove = [\"deploy\"]\nprotected = []\n",
        );
        std::fs::write(policies.join("designations.toml"), designations)?;
        let mut callers = std::fs::read_to_string(shipped.join("callers.toml"))?;
        callers.push_str(
            "\n[callers.guarded]\ndesignation = \"bench-guarded\"\n\n[callers.open]\ndesignation = \"bench-open\"\n",
        );
        std::fs::write(policies.join("callers.toml"), callers)?;
        let module = wat::parse_str(NOOP_WAT)?;
        std::fs::write(root.join("noop.wasm"), &module)?;
        std::fs::write(
            policies.join("tools/noop.toml"),
            format!(
                "name = \"noop\"\n\
                 description = \"Does nothing, with a write grant on the whole workspace.\"\n\
                 justification = \"It only measures the call path of a call that could write.\"\n\
                 categories = [\"read\", \"write\"]\n\
                 [backend]\nwasm = \"../noop.wasm\"\nsha256 = \"{}\"\n\
                 [input]\ntype = \"object\"\nadditionalProperties = false\n\
                 [files]\nwrite = [\".\"]\n",
                airlock::policy::sha256_hex(&module)
            ),
        )?;
        let workspace = root.join("workspace");
        std::fs::create_dir_all(workspace.join("src"))?;
        std::fs::write(workspace.join("src/main.py"), "print(42)\n")?;
        for d in 0..DIRS {
            let dir = workspace.join(format!("tests/d{d:03}"));
            std::fs::create_dir_all(&dir)?;
            for f in 0..FILES_PER_DIR {
                std::fs::write(
                    dir.join(format!("test_{f:03}.py")),
                    format!("def test_{d}_{f}():\n    assert {d} * {f} == {}\n", d * f).repeat(4),
                )?;
            }
        }
        Ok(Setup { policies, workspace, root: root.to_path_buf() })
    }

    fn runtime(&self, audit: &str) -> anyhow::Result<Runtime> {
        Ok(Runtime::builder(&self.policies)
            .audit_path(self.root.join(audit))
            .fsync(Fsync::Off)
            .cache_dir(Some(self.root.join("cache")))
            .approvals_dir(self.root.join("approvals"))
            .build()?)
    }
}
