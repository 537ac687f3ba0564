//! The wasm backend against real guests (WAT fixtures in `tests/fixtures/wat`).
//!
//! Every containment case sits next to a harmless twin that runs the same fixture with a
//! smaller argument and must succeed: a containment test whose twin fails proves nothing.
//! Also: the WASI context is exactly the grant (args, env, stdin; nothing inherited), the
//! module cache (memory, disk, corruption, digest pinning), and preview2 components.

// Test helpers panic on set-up failures; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use airlock::{
    Limit,
    backend::wasm::{CacheStats, Exit, RunReport, WasmBackend, WasmConfig, WasmError},
    policy::{Grant, Mount, Program},
};
use sha2::{Digest, Sha256};

/// The WASI errno (wasi_snapshot_preview1 numbering) a refused path resolution gives.
const ERRNO_PERM: i32 = 63;
/// The WASI errno for a file descriptor that does not exist.
const ERRNO_BADF: i32 = 8;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wat").join(name)
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A grant for `name` (a fixture) with `args`, pinned to the fixture's digest; otherwise
/// the deny-by-default `Grant::new`.
fn grant(name: &str, args: &[&str]) -> Grant {
    let module = fixture(name);
    let sha256 = sha256_of(&module);
    let mut grant = Grant::new(name, Program::Wasm { module, sha256 });
    grant.args = args.iter().map(|a| a.to_string()).collect();
    grant
}

/// A small pool: many test backends live in one process, and each reserves
/// `max_instances * max_memory_bytes` of address space.
fn test_config() -> WasmConfig {
    WasmConfig { max_instances: 32, max_memory_bytes: 1 << 30, ..WasmConfig::default() }
}

/// One backend shared by the tests that do not look at cache counters, as the runtime
/// shares one.
fn shared() -> &'static WasmBackend {
    static BACKEND: OnceLock<WasmBackend> = OnceLock::new();
    BACKEND.get_or_init(|| WasmBackend::new(test_config()).unwrap())
}

async fn run(grant: &Grant) -> RunReport {
    shared().run(grant).await.unwrap()
}

fn mount(host: &Path, writable: bool) -> Mount {
    Mount { host: host.canonicalize().unwrap(), guest: ".".into(), writable }
}

// ---- CPU: fuel and wall clock ----

#[tokio::test]
async fn fuel_stops_an_infinite_loop() {
    let mut g = grant("spin.wat", &[]);
    g.limits.fuel = 10_000_000;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Limit(Limit::Fuel));
    assert_eq!(report.usage.fuel, Some(10_000_000));
}

#[tokio::test]
async fn twin_a_bounded_loop_finishes_within_fuel() {
    let mut g = grant("spin.wat", &["1000"]);
    g.limits.fuel = 10_000_000;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Code(0));
    let used = report.usage.fuel.unwrap();
    assert!(used > 1000 && used < 10_000_000, "fuel used: {used}");
}

#[tokio::test]
async fn wall_clock_stops_an_infinite_loop_with_unlimited_fuel() {
    let mut g = grant("spin.wat", &[]);
    g.limits.fuel = u64::MAX;
    g.limits.wall_ms = 200;
    let started = Instant::now();
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Limit(Limit::Wall));
    assert!(report.usage.wall_us >= 200_000, "{:?}", report.usage);
    assert!(started.elapsed() < Duration::from_secs(5), "stopped late: {:?}", started.elapsed());
}

#[tokio::test]
async fn wall_clock_bounds_a_host_call() {
    let mut g = grant("sleep.wat", &["60000"]);
    g.limits.wall_ms = 200;
    let started = Instant::now();
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Limit(Limit::Wall));
    assert!(started.elapsed() < Duration::from_secs(5), "stopped late: {:?}", started.elapsed());
}

#[tokio::test]
async fn twin_a_short_sleep_finishes_within_the_wall_limit() {
    let mut g = grant("sleep.wat", &["10"]);
    g.limits.wall_ms = 5_000;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Code(0));
    assert!(report.usage.wall_us >= 10_000, "{:?}", report.usage);
}

// ---- memory, tables, stack, instances ----

#[tokio::test]
async fn memory_growth_past_the_limit_is_stopped() {
    let mut g = grant("grow_memory.wat", &["64"]); // 64 pages = 4 MiB more
    g.limits.memory_mib = 2;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Limit(Limit::Memory));
    assert!(report.usage.peak_memory_bytes <= 2 << 20, "{:?}", report.usage);
}

#[tokio::test]
async fn twin_memory_growth_within_the_limit_succeeds() {
    let mut g = grant("grow_memory.wat", &["16"]); // 1 MiB more
    g.limits.memory_mib = 2;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(report.usage.peak_memory_bytes, 17 * 65536);
}

#[tokio::test]
async fn an_initial_memory_past_the_limit_is_stopped_at_instantiation() {
    let mut g = grant("big_memory.wat", &[]);
    g.limits.memory_mib = 8;
    assert_eq!(run(&g).await.exit, Exit::Limit(Limit::Memory));
}

#[tokio::test]
async fn twin_an_initial_memory_within_the_limit_runs() {
    let mut g = grant("big_memory.wat", &[]);
    g.limits.memory_mib = 16;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(report.usage.peak_memory_bytes, 16 << 20);
}

#[tokio::test]
async fn table_growth_past_the_limit_is_stopped() {
    let mut g = grant("grow_table.wat", &["1000"]);
    g.limits.table_elements = 100;
    assert_eq!(run(&g).await.exit, Exit::Limit(Limit::Table));
}

#[tokio::test]
async fn twin_table_growth_within_the_limit_succeeds() {
    let mut g = grant("grow_table.wat", &["50"]);
    g.limits.table_elements = 100;
    assert_eq!(run(&g).await.exit, Exit::Code(0));
}

#[tokio::test]
async fn deep_recursion_traps_on_stack_overflow() {
    let report = run(&grant("recurse.wat", &["10000000"])).await;
    match report.exit {
        Exit::Trap(message) => assert!(message.contains("call stack exhausted"), "{message}"),
        other => panic!("expected a stack-overflow trap, got {other:?}"),
    }
}

#[tokio::test]
async fn twin_shallow_recursion_succeeds() {
    assert_eq!(run(&grant("recurse.wat", &["1000"])).await.exit, Exit::Code(0));
}

#[tokio::test]
async fn instance_count_past_the_limit_is_stopped() {
    // component_hello has two core instances.
    let mut g = grant("component_hello.wat", &[]);
    g.limits.instances = 1;
    assert_eq!(run(&g).await.exit, Exit::Limit(Limit::Instances));
}

#[tokio::test]
async fn twin_instance_count_within_the_limit_succeeds() {
    let mut g = grant("component_hello.wat", &[]);
    g.limits.instances = 2;
    assert_eq!(run(&g).await.exit, Exit::Code(0));
}

// ---- output ----

#[tokio::test]
async fn output_flood_is_capped_and_stopped() {
    let mut g = grant("flood.wat", &["1", "1000000000000"]);
    g.limits.output_bytes = 10_000;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Limit(Limit::Output));
    assert_eq!(report.stdout.bytes.len(), 10_000);
    assert!(report.stdout.bytes.iter().all(|&b| b == b'x'));
    assert!(report.stdout.truncated);
    assert!(report.stdout.total_bytes > 10_000);
    // Stopped at the first write past the cap, not after a trillion bytes.
    assert!(report.stdout.total_bytes <= 10_000 + 4096, "{}", report.stdout.total_bytes);
}

#[tokio::test]
async fn stderr_flood_is_capped_and_stopped() {
    let mut g = grant("flood.wat", &["2", "1000000000000"]);
    g.limits.output_bytes = 10_000;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Limit(Limit::Output));
    assert_eq!(report.stderr.bytes.len(), 10_000);
    assert!(report.stderr.truncated);
    assert!(report.stdout.bytes.is_empty());
}

#[tokio::test]
async fn twin_output_under_the_cap_is_kept_whole() {
    let mut g = grant("flood.wat", &["1", "10000"]);
    g.limits.output_bytes = 10_000;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(report.stdout.bytes.len(), 10_000);
    assert_eq!(report.stdout.total_bytes, 10_000);
    assert!(!report.stdout.truncated);
}

// ---- files ----

/// A workspace `ws` (mounted) next to a `secret.txt` outside it.
struct Tree {
    _root: tempfile::TempDir,
    ws: PathBuf,
    secret: PathBuf,
}

fn tree() -> Tree {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("ws");
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    std::fs::write(ws.join("inside.txt"), "inside\n").unwrap();
    let secret = root.path().join("secret.txt");
    std::fs::write(&secret, "SECRET\n").unwrap();
    Tree { ws: ws.canonicalize().unwrap(), secret: secret.canonicalize().unwrap(), _root: root }
}

async fn cat(t: &Tree, path: &str) -> RunReport {
    let mut g = grant("cat.wat", &[path]);
    g.mounts = vec![mount(&t.ws, false)];
    run(&g).await
}

fn assert_blocked(report: &RunReport) {
    assert!(matches!(report.exit, Exit::Code(c) if c != 0), "expected a refused open, got {:?}", report.exit);
    assert!(!report.stdout.text().contains("SECRET"), "{:?}", report.stdout.text());
}

#[tokio::test]
async fn twin_cat_reads_a_file_inside_the_mount() {
    let t = tree();
    let report = cat(&t, "inside.txt").await;
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(report.stdout.text(), "inside\n");
    // `..` that stays inside is fine too.
    let report = cat(&t, "sub/../inside.txt").await;
    assert_eq!(report.exit, Exit::Code(0), "{:?}", report.stderr.text());
    assert_eq!(report.stdout.text(), "inside\n");
}

#[tokio::test]
async fn sandbox_blocks_read_by_absolute_path() {
    let t = tree();
    let report = cat(&t, t.secret.to_str().unwrap()).await;
    assert_blocked(&report);
    assert_eq!(report.exit, Exit::Code(ERRNO_PERM));
}

#[tokio::test]
async fn sandbox_blocks_read_by_dotdot() {
    let t = tree();
    for path in ["../secret.txt", "sub/../../secret.txt", "./../secret.txt"] {
        let report = cat(&t, path).await;
        assert_blocked(&report);
        assert_eq!(report.exit, Exit::Code(ERRNO_PERM), "{path}");
    }
}

#[tokio::test]
async fn sandbox_blocks_symlink_escape() {
    let t = tree();
    std::os::unix::fs::symlink(&t.secret, t.ws.join("out-abs")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", t.ws.join("out-rel")).unwrap();
    for path in ["out-abs", "out-rel"] {
        let report = cat(&t, path).await;
        assert_blocked(&report);
        assert_eq!(report.exit, Exit::Code(ERRNO_PERM), "{path}");
    }
}

#[tokio::test]
async fn twin_symlink_pointing_inside_is_followed() {
    let t = tree();
    std::os::unix::fs::symlink("inside.txt", t.ws.join("in-rel")).unwrap();
    std::os::unix::fs::symlink("sub/../inside.txt", t.ws.join("in-dotdot")).unwrap();
    for path in ["in-rel", "in-dotdot"] {
        let report = cat(&t, path).await;
        assert_eq!(report.exit, Exit::Code(0), "{path}");
        assert_eq!(report.stdout.text(), "inside\n");
    }
}

#[tokio::test]
async fn sandbox_blocks_write_to_a_read_only_mount() {
    let t = tree();
    let mut g = grant("write.wat", &["new.txt", "written"]);
    g.mounts = vec![mount(&t.ws, false)];
    let report = run(&g).await;
    assert!(matches!(report.exit, Exit::Code(c) if c != 0), "{:?}", report.exit);
    assert!(!t.ws.join("new.txt").exists());
    // Overwriting an existing file is refused too, and leaves it intact.
    let mut g = grant("write.wat", &["inside.txt", "clobbered"]);
    g.mounts = vec![mount(&t.ws, false)];
    let report = run(&g).await;
    assert!(matches!(report.exit, Exit::Code(c) if c != 0), "{:?}", report.exit);
    assert_eq!(std::fs::read_to_string(t.ws.join("inside.txt")).unwrap(), "inside\n");
}

#[tokio::test]
async fn twin_write_to_a_read_write_mount_succeeds() {
    let t = tree();
    let mut g = grant("write.wat", &["new.txt", "written"]);
    g.mounts = vec![mount(&t.ws, true)];
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(std::fs::read_to_string(t.ws.join("new.txt")).unwrap(), "written");
}

#[tokio::test]
async fn sandbox_blocks_write_escape_from_a_read_write_mount() {
    let t = tree();
    for path in ["../escaped.txt", t.ws.parent().unwrap().join("escaped.txt").to_str().unwrap()] {
        let mut g = grant("write.wat", &[path, "escaped"]);
        g.mounts = vec![mount(&t.ws, true)];
        let report = run(&g).await;
        assert!(matches!(report.exit, Exit::Code(c) if c != 0), "{path}: {:?}", report.exit);
    }
    assert!(!t.ws.parent().unwrap().join("escaped.txt").exists());
}

#[tokio::test]
async fn no_mount_means_no_files() {
    let t = tree();
    let report = run(&grant("cat.wat", &["inside.txt"])).await;
    assert_eq!(report.exit, Exit::Code(ERRNO_BADF), "fd 3 does not exist");
    drop(t);
}

#[tokio::test]
async fn a_mount_that_is_not_a_directory_is_refused() {
    let t = tree();
    let mut g = grant("cat.wat", &["inside.txt"]);
    g.mounts = vec![Mount { host: t.secret.clone(), guest: ".".into(), writable: false }];
    let err = shared().run(&g).await.unwrap_err();
    assert!(matches!(err, WasmError::MountNotDirectory { .. }), "{err}");
    let mut g = grant("cat.wat", &["inside.txt"]);
    g.mounts = vec![Mount { host: t.ws.join("missing"), guest: ".".into(), writable: false }];
    let err = shared().run(&g).await.unwrap_err();
    assert!(matches!(err, WasmError::OpenMount { .. }), "{err}");
}

// ---- args, env, stdin ----

#[tokio::test]
async fn args_env_and_stdin_are_exactly_the_grant() {
    // The test process has variables of its own (cargo sets CARGO_MANIFEST_DIR for the
    // test binary; PATH is always there). They are set before any thread starts, unlike a
    // `set_var` here, which would race with other tests reading the environment.
    let host_only = ["PATH", "CARGO_MANIFEST_DIR"];
    for name in host_only {
        assert!(std::env::var_os(name).is_some(), "{name} should be set in the test process");
    }
    let mut g = grant("echo.wat", &["one", "two words"]);
    g.env = BTreeMap::from([("A".to_string(), "1".to_string()), ("B".to_string(), "x=y".to_string())]);
    g.stdin = b"from stdin\n".to_vec();
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(report.stdout.text(), "echo.wat\none\ntwo words\n--\nA=1\nB=x=y\n--\nfrom stdin\n");
    for name in host_only {
        assert!(!report.stdout.text().contains(name), "{name} leaked into the guest");
    }
}

#[tokio::test]
async fn an_empty_grant_gives_no_args_env_or_stdin() {
    let report = run(&grant("echo.wat", &[])).await;
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(report.stdout.text(), "echo.wat\n--\n--\n");
}

// ---- linking and pinning ----

#[tokio::test]
async fn an_import_the_runtime_lacks_is_a_link_error_naming_it() {
    let err = shared().run(&grant("bad_import.wat", &[])).await.unwrap_err();
    assert!(matches!(err, WasmError::Link { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("env") && message.contains("nope"), "{message}");
}

#[tokio::test]
async fn a_digest_mismatch_is_refused_naming_both_digests() {
    let mut g = grant("spin.wat", &["1"]);
    let actual = sha256_of(&fixture("spin.wat"));
    let pinned = "0".repeat(64);
    g.program = Program::Wasm { module: fixture("spin.wat"), sha256: pinned.clone() };
    let backend = WasmBackend::new(test_config()).unwrap();
    let err = backend.run(&g).await.unwrap_err();
    assert!(matches!(err, WasmError::DigestMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&actual) && message.contains(&pinned), "{message}");
    assert_eq!(backend.stats().compiles, 0, "a mismatched module is never compiled");
}

#[tokio::test]
async fn a_pin_that_is_not_a_sha256_is_refused() {
    let mut g = grant("spin.wat", &["1"]);
    g.program = Program::Wasm { module: fixture("spin.wat"), sha256: "../../etc/passwd".into() };
    let err = shared().run(&g).await.unwrap_err();
    assert!(matches!(err, WasmError::BadPin { .. }), "{err}");
}

#[tokio::test]
async fn a_module_edited_after_it_was_cached_still_runs_as_pinned() {
    // The pin names content: a memory hit serves the verified content without rereading.
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("spin.wat");
    std::fs::copy(fixture("spin.wat"), &module).unwrap();
    let sha256 = sha256_of(&module);
    let mut g = Grant::new("spin", Program::Wasm { module: module.clone(), sha256 });
    g.args = vec!["1".into()];
    let backend = WasmBackend::new(test_config()).unwrap();
    assert_eq!(backend.run(&g).await.unwrap().exit, Exit::Code(0));
    std::fs::write(&module, "(module)").unwrap();
    assert_eq!(backend.run(&g).await.unwrap().exit, Exit::Code(0));
    // A fresh backend reads the file again and refuses it.
    let fresh = WasmBackend::new(test_config()).unwrap();
    assert!(matches!(fresh.run(&g).await, Err(WasmError::DigestMismatch { .. })));
}

// ---- cache ----

fn cached_config(dir: &Path) -> WasmConfig {
    WasmConfig { cache_dir: Some(dir.to_path_buf()), ..test_config() }
}

#[tokio::test]
async fn a_second_run_hits_memory_and_does_not_recompile() {
    let backend = WasmBackend::new(test_config()).unwrap();
    let g = grant("spin.wat", &["10"]);
    backend.run(&g).await.unwrap();
    assert_eq!(backend.stats(), CacheStats { compiles: 1, ..CacheStats::default() });
    backend.run(&g).await.unwrap();
    backend.run(&g).await.unwrap();
    assert_eq!(backend.stats(), CacheStats { compiles: 1, memory_hits: 2, ..CacheStats::default() });
}

#[tokio::test]
async fn a_new_backend_with_the_same_cache_dir_loads_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let g = grant("spin.wat", &["10"]);
    let first = WasmBackend::new(cached_config(dir.path())).unwrap();
    assert_eq!(first.run(&g).await.unwrap().exit, Exit::Code(0));
    assert_eq!(first.stats().compiles, 1);
    let sha = sha256_of(&fixture("spin.wat"));
    assert!(dir.path().join(format!("{sha}.cwasm")).is_file());
    drop(first);

    let second = WasmBackend::new(cached_config(dir.path())).unwrap();
    assert_eq!(second.run(&g).await.unwrap().exit, Exit::Code(0));
    assert_eq!(second.stats(), CacheStats { disk_hits: 1, ..CacheStats::default() });
}

#[tokio::test]
async fn a_component_is_cached_on_disk_too() {
    let dir = tempfile::tempdir().unwrap();
    let g = grant("component_hello.wat", &[]);
    let first = WasmBackend::new(cached_config(dir.path())).unwrap();
    assert_eq!(first.run(&g).await.unwrap().exit, Exit::Code(0));
    let second = WasmBackend::new(cached_config(dir.path())).unwrap();
    let report = second.run(&g).await.unwrap();
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(report.stdout.text(), "hello from a component\n");
    assert_eq!(second.stats().disk_hits, 1);
    assert_eq!(second.stats().compiles, 0);
}

#[tokio::test]
async fn a_corrupted_artifact_is_rejected_deleted_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let g = grant("spin.wat", &["10"]);
    WasmBackend::new(cached_config(dir.path())).unwrap().run(&g).await.unwrap();
    let artifact = dir.path().join(format!("{}.cwasm", sha256_of(&fixture("spin.wat"))));
    let good = std::fs::read(&artifact).unwrap();

    // Damage one byte of the compiled code, past the header: only the digest can tell.
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0xff;
    std::fs::write(&artifact, &bad).unwrap();
    let backend = WasmBackend::new(cached_config(dir.path())).unwrap();
    assert_eq!(backend.run(&g).await.unwrap().exit, Exit::Code(0));
    assert_eq!(backend.stats(), CacheStats { compiles: 1, disk_rejected: 1, ..CacheStats::default() });
    assert_eq!(std::fs::read(&artifact).unwrap(), good, "rebuilt in place");

    // A truncated file and a file of garbage are rejected the same way.
    for damaged in [good[..good.len() / 3].to_vec(), b"not an artifact".to_vec()] {
        std::fs::write(&artifact, &damaged).unwrap();
        let backend = WasmBackend::new(cached_config(dir.path())).unwrap();
        assert_eq!(backend.run(&g).await.unwrap().exit, Exit::Code(0));
        assert_eq!(backend.stats().disk_rejected, 1);
        assert_eq!(backend.stats().compiles, 1);
    }
}

#[tokio::test]
async fn an_unwritable_cache_does_not_fail_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let backend = WasmBackend::new(cached_config(dir.path())).unwrap();
    // Pull the directory away after start-up: writing the artifact fails, the call runs.
    std::fs::remove_dir_all(dir.path()).unwrap();
    assert_eq!(backend.run(&grant("spin.wat", &["1"])).await.unwrap().exit, Exit::Code(0));
    assert_eq!(backend.stats().compiles, 1);
}

#[tokio::test]
async fn a_cache_dir_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = WasmBackend::new(cached_config(dir.path())).err().unwrap();
    assert!(matches!(err, WasmError::CacheDir { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_calls_compile_once() {
    let backend = Arc::new(WasmBackend::new(test_config()).unwrap());
    let g = grant("recurse.wat", &["10"]);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let backend = backend.clone();
            let g = g.clone();
            tokio::spawn(async move { backend.run(&g).await.unwrap().exit })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Exit::Code(0));
    }
    let stats = backend.stats();
    assert_eq!(stats.compiles, 1, "{stats:?}");
    assert_eq!(stats.memory_hits, 7, "{stats:?}");
}

// ---- preview2 components ----

#[tokio::test]
async fn a_component_whose_run_returns_ok_exits_0() {
    assert_eq!(run(&grant("component_ok.wat", &[])).await.exit, Exit::Code(0));
}

#[tokio::test]
async fn a_component_whose_run_returns_err_exits_1() {
    assert_eq!(run(&grant("component_err.wat", &[])).await.exit, Exit::Code(1));
}

#[tokio::test]
async fn a_component_writes_to_stdout_through_wasi_cli() {
    let report = run(&grant("component_hello.wat", &[])).await;
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(report.stdout.text(), "hello from a component\n");
}

#[tokio::test]
async fn a_component_flood_is_capped_too() {
    let mut g = grant("component_hello.wat", &[]);
    g.limits.output_bytes = 5;
    let report = run(&g).await;
    assert_eq!(report.exit, Exit::Limit(Limit::Output));
    assert_eq!(report.stdout.text(), "hello");
    assert!(report.stdout.truncated);
}

// ---- cost of a warm call ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_makes_calls_wait_for_a_slot_not_fail() {
    let backend = Arc::new(WasmBackend::new(WasmConfig { max_instances: 1, ..test_config() }).unwrap());
    let mut sleeper = grant("sleep.wat", &["500"]);
    sleeper.limits.wall_ms = 5_000;
    // Compiled beforehand, so that the timings below are the calls' own.
    backend.run(&grant("sleep.wat", &["0"])).await.unwrap();
    backend.run(&grant("spin.wat", &["1"])).await.unwrap();
    let spawned = Instant::now();
    let first = {
        let backend = backend.clone();
        tokio::spawn(async move { backend.run(&sleeper).await.unwrap().exit })
    };
    // The sleeper holds the only slot (on a loaded machine its task may start late).
    let deadline = Instant::now() + Duration::from_secs(30);
    while backend.free_slots() > 0 {
        assert!(Instant::now() < deadline, "the sleeper never took its slot");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let second = backend.run(&grant("spin.wat", &["1"])).await.unwrap();
    assert_eq!(second.exit, Exit::Code(0), "the second call ran once the slot was free");
    // The sleeper started after `spawned` and held the slot for 500 ms.
    assert!(spawned.elapsed() >= Duration::from_millis(500), "it waited for the sleeper's slot");
    assert!(second.usage.wall_us < 300_000, "waiting for a slot does not count against the wall limit");
    assert_eq!(first.await.unwrap(), Exit::Code(0));
}

#[test]
fn the_backend_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<WasmBackend>();
}

// The WASI conformance suite runs through `airlock run-wasm` in wasi_testsuite.rs.
