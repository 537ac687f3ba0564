//! Builds the guest tools, so that a plain `cargo build` or `cargo test` on a fresh clone
//! has every `.wasm` module the policies in `policies/tools/` name.
//!
//! `guest-tools/` is a cargo workspace of its own (one binary crate per tool, directory
//! name = package name = tool name). This script runs a nested
//! `cargo build --release --locked --target wasm32-wasip1` on it, plus a
//! `--target wasm32-wasip2` build of the tools in [`P2_TOOLS`] (preview2 components), and
//! copies the results to `guest-tools/wasm/NAME.wasm` and `guest-tools/wasm/p2/NAME.wasm`
//! (gitignored), rewriting a file only when its bytes changed.
//!
//! What it must get right:
//! - **No deadlock**: the nested build uses its own target directory,
//!   `<airlock target dir>/guest-tools`, never the outer build's profile directory, whose
//!   lock the outer cargo holds while this script runs.
//! - **No leaks from the outer build**: the variables cargo sets for build scripts
//!   (`CARGO_*`, `RUSTFLAGS`, `CARGO_ENCODED_RUSTFLAGS`, `RUSTC_WRAPPER`, `TARGET`, ...)
//!   are cleared; `CARGO_HOME`, `CARGO_MAKEFLAGS` (the jobserver, so the nested build
//!   shares the outer `-j`), and network/registry settings are kept.
//! - **Reproducible bytes**: the policies pin each module's sha256, and CI builds from a
//!   clean clone at another path. So the nested build gets `--locked`, the workspace's
//!   pinned release profile, and `--remap-path-prefix` for every absolute path that could
//!   reach the binary (the guest-tools directory, `CARGO_HOME`, the nested target
//!   directory) through `CARGO_ENCODED_RUSTFLAGS`.
//! - **Missing targets**: when the toolchain lacks `wasm32-wasip1` or `wasm32-wasip2`,
//!   it runs `rustup target add` (with a `cargo:warning`) and fails with a clear message
//!   if that fails.
//!
//! It must not write anywhere but the nested target directory and `guest-tools/wasm/`.

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

/// The preview1 target every tool is built for.
const P1_TARGET: &str = "wasm32-wasip1";

/// The preview2 target, and the tools also built for it as components.
const P2_TARGET: &str = "wasm32-wasip2";
const P2_TOOLS: &[&str] = &["sha256sum"];

/// The mtime given to the copied modules. It is older than any build, so listing them in
/// `rerun-if-changed` reruns this script only when a module is deleted or replaced, not
/// after every build that wrote one.
const COPIED_MTIME_SECS: u64 = 946_684_800; // 2000-01-01T00:00:00Z

/// Environment variables the outer cargo sets (or a user may set) that must not reach
/// the nested build, beyond the `CARGO_*` family handled in [`keep_cargo_var`].
const CLEARED_VARS: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
];

fn main() {
    if let Err(message) = run() {
        // A panic is how a build script fails; the message is what the user sees.
        panic!("\n\nbuilding the guest tools failed: {message}\n");
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let guest_dir = manifest_dir.join("guest-tools");
    let tools = list_tools(&guest_dir)?;
    emit_rerun_lines(&guest_dir, &tools);

    let target_dir = outer_target_dir()?.join("guest-tools");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    for target in [P1_TARGET, P2_TARGET] {
        ensure_target(&rustc, target)?;
    }

    let manifest = guest_dir.join("Cargo.toml");
    let rustflags = remap_flags(&guest_dir, &target_dir);
    nested_build(&cargo, &manifest, &target_dir, &rustflags, P1_TARGET, &[])?;
    nested_build(&cargo, &manifest, &target_dir, &rustflags, P2_TARGET, P2_TOOLS)?;

    let out_dir = guest_dir.join("wasm");
    for tool in &tools {
        let built = target_dir.join(P1_TARGET).join("release").join(format!("{tool}.wasm"));
        copy_if_changed(&built, &out_dir.join(format!("{tool}.wasm")))?;
    }
    for tool in P2_TOOLS {
        let built = target_dir.join(P2_TARGET).join("release").join(format!("{tool}.wasm"));
        copy_if_changed(&built, &out_dir.join("p2").join(format!("{tool}.wasm")))?;
    }
    Ok(())
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}

/// The tools: subdirectories of `guest-tools/` with a `Cargo.toml`, sorted.
fn list_tools(guest_dir: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(guest_dir).map_err(|e| format!("cannot list {}: {e}", guest_dir.display()))?;
    let mut tools = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", guest_dir.display()))?;
        if entry.path().join("Cargo.toml").is_file() {
            tools.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    tools.sort();
    if tools.is_empty() {
        return Err(format!("no tool crates found in {}", guest_dir.display()));
    }
    Ok(tools)
}

/// Reruns this script when a guest source, manifest or lock file changes, or when a
/// copied module is deleted or replaced.
fn emit_rerun_lines(guest_dir: &Path, tools: &[String]) {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", guest_dir.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", guest_dir.join("Cargo.lock").display());
    for tool in tools {
        let dir = guest_dir.join(tool);
        println!("cargo:rerun-if-changed={}", dir.join("Cargo.toml").display());
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!("cargo:rerun-if-changed={}", guest_dir.join("wasm").join(format!("{tool}.wasm")).display());
    }
    for tool in P2_TOOLS {
        println!("cargo:rerun-if-changed={}", guest_dir.join("wasm/p2").join(format!("{tool}.wasm")).display());
    }
}

/// The outer build's target directory: `CARGO_TARGET_DIR` when set, else the ancestor of
/// `OUT_DIR` that holds cargo's `CACHEDIR.TAG`.
fn outer_target_dir() -> Result<PathBuf, String> {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            return Ok(dir);
        }
    }
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
        .or_else(|| out_dir.ancestors().nth(4).map(Path::to_path_buf))
        .ok_or_else(|| format!("cannot find the target directory above OUT_DIR {}", out_dir.display()))
}

/// Makes sure the toolchain has the standard library for `target`, installing it with
/// rustup when it is missing.
fn ensure_target(rustc: &OsString, target: &str) -> Result<(), String> {
    let installed = || -> Result<bool, String> {
        let output = Command::new(rustc)
            .args(["--print", "sysroot"])
            .output()
            .map_err(|e| format!("cannot run {} --print sysroot: {e}", rustc.to_string_lossy()))?;
        let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
        Ok(Path::new(&sysroot).join("lib/rustlib").join(target).join("lib").is_dir())
    };
    if installed()? {
        return Ok(());
    }
    println!("cargo:warning=the Rust target {target} is missing; running `rustup target add {target}`");
    let status = Command::new("rustup").args(["target", "add", target]).stdout(std::io::stderr()).status();
    match status {
        Ok(s) if s.success() && installed()? => Ok(()),
        Ok(s) => Err(format!(
            "`rustup target add {target}` failed ({s}); install the target by hand \
             (`rustup target add {target}`) and build again"
        )),
        Err(e) => Err(format!(
            "the Rust target {target} is missing and rustup cannot be run ({e}); install the \
             target for this toolchain and build again"
        )),
    }
}

/// `--remap-path-prefix` flags for every absolute path that could end up in a module,
/// joined with the 0x1f separator `CARGO_ENCODED_RUSTFLAGS` uses.
fn remap_flags(guest_dir: &Path, target_dir: &Path) -> String {
    let mut maps = vec![(guest_dir.to_path_buf(), "/guest-tools"), (target_dir.to_path_buf(), "/guest-target")];
    if let Some(home) = cargo_home() {
        maps.push((home, "/cargo-home"));
    }
    maps.iter()
        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
        .collect::<Vec<_>>()
        .join("\x1f")
}

fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// Whether a `CARGO_*` variable of the outer build may reach the nested cargo: only
/// where cargo's files and the network live, and the jobserver.
fn keep_cargo_var(name: &str) -> bool {
    name == "CARGO_HOME"
        || name == "CARGO_MAKEFLAGS"
        || ["CARGO_NET_", "CARGO_HTTP_", "CARGO_REGISTRIES_", "CARGO_REGISTRY_", "CARGO_TERM_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

fn nested_build(
    cargo: &OsString,
    manifest: &Path,
    target_dir: &Path,
    rustflags: &str,
    target: &str,
    packages: &[&str],
) -> Result<(), String> {
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--locked", "--target", target])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for package in packages {
        command.args(["--package", package]);
    }
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        let leaks = (name.starts_with("CARGO") && !keep_cargo_var(&name))
            || name.starts_with("__CARGO")
            || CLEARED_VARS.contains(&name.as_ref());
        if leaks {
            command.env_remove(name.as_ref());
        }
    }
    command.env("CARGO_ENCODED_RUSTFLAGS", rustflags);
    // This script's stdout is read by cargo for `cargo:` directives: keep the nested
    // build's output off it.
    command.stdout(std::io::stderr());
    let status = command.status().map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --release --locked --target {target} --manifest-path {}` failed ({status}); \
             its errors are above. To reproduce: cd guest-tools && cargo build --release --locked --target {target}",
            manifest.display()
        ));
    }
    Ok(())
}

/// Copies `from` to `to` unless `to` already has the same bytes; a copied file gets the
/// fixed old mtime (see [`COPIED_MTIME_SECS`]).
fn copy_if_changed(from: &Path, to: &Path) -> Result<(), String> {
    let bytes = fs::read(from).map_err(|e| format!("the nested build made no {}: {e}", from.display()))?;
    if fs::read(to).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // Write a sibling and rename it, so a reader never sees a half-written module.
    let tmp = to.with_extension("wasm.tmp");
    fs::write(&tmp, &bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let file = fs::File::options().write(true).open(&tmp).map_err(|e| format!("cannot open {}: {e}", tmp.display()))?;
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(COPIED_MTIME_SECS))
        .map_err(|e| format!("cannot set the mtime of {}: {e}", tmp.display()))?;
    drop(file);
    fs::rename(&tmp, to).map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), to.display()))
}
