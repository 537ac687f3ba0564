//! Runs every test of the WASI conformance suite (../shared/wasi-testsuite: the C and
//! AssemblyScript preview1 suites) through `airlock run-wasm`, as the suite's own runner
//! specifies: argv, exactly the spec's env, `root` preopened read-write as `/` (a fresh
//! copy per test, so `.cleanup` files never leak between runs), 5 s per test, exit code
//! equal and stdout/stderr starting with the expected text.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::common;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Spec {
    args: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    root: Option<String>,
    exit_code: i32,
    stdout: String,
    stderr: String,
}

fn suite_dir() -> PathBuf {
    match std::env::var_os("AIRLOCK_WASI_TESTSUITE") {
        Some(dir) => PathBuf::from(dir),
        None => common::repo().join("../shared/wasi-testsuite"),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if !entry.file_name().to_string_lossy().ends_with(".cleanup") {
            fs::copy(entry.path(), &target).unwrap();
            let mut permissions = fs::metadata(&target).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o644);
            fs::set_permissions(&target, permissions).unwrap();
        }
    }
    let mut permissions = fs::metadata(to).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    fs::set_permissions(to, permissions).unwrap();
}

/// Runs one test; `Err` says why it failed.
fn run_one(module: &Path, scratch: &Path) -> Result<(), String> {
    let spec_path = module.with_extension("json");
    let spec: Spec = match fs::read_to_string(&spec_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("bad spec {}: {e}", spec_path.display()))?,
        Err(_) => Spec::default(),
    };
    let mut command = common::airlock(scratch);
    command.arg("run-wasm").arg(module).args(["--wall-ms", "5000"]);
    if let Some(root) = &spec.root {
        let copy = scratch.join("root");
        copy_tree(&module.parent().unwrap().join(root), &copy);
        command.arg("--dir").arg(format!("{}::/", copy.display()));
    }
    for (key, value) in &spec.env {
        command.arg("--env").arg(format!("{key}={value}"));
    }
    command.arg("--").args(&spec.args);
    command.stdin(std::process::Stdio::null());
    let output = command.output().map_err(|e| format!("cannot run airlock: {e}"))?;
    let code = output.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if code != spec.exit_code {
        return Err(format!("exit code {code}, expected {}; stderr: {stderr}", spec.exit_code));
    }
    if !stdout.starts_with(&spec.stdout) {
        return Err(format!("stdout {stdout:?} does not start with {:?}", spec.stdout));
    }
    if !stderr.starts_with(&spec.stderr) {
        return Err(format!("stderr {stderr:?} does not start with {:?}", spec.stderr));
    }
    Ok(())
}

#[test]
fn wasi_testsuite_passes_through_run_wasm() {
    let suite = suite_dir();
    assert!(
        suite.is_dir(),
        "the WASI test suite is not at {} (set AIRLOCK_WASI_TESTSUITE to its directory)",
        suite.display()
    );
    let mut modules = Vec::new();
    for group in ["c/wasm32-wasip1", "assemblyscript/wasm32-wasip1"] {
        for entry in fs::read_dir(suite.join(group)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wasm") {
                modules.push(path);
            }
        }
    }
    modules.sort();
    assert!(modules.len() >= 20, "only {} tests found in {}", modules.len(), suite.display());
    let scratch = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, module) in modules.iter().enumerate() {
        let dir = scratch.path().join(i.to_string());
        fs::create_dir_all(&dir).unwrap();
        if let Err(why) = run_one(module, &dir) {
            failures.push(format!("{}: {why}", module.display()));
        }
    }
    assert!(failures.is_empty(), "{} of {} WASI tests failed:\n{}", failures.len(), modules.len(), failures.join("\n"));
}
