//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `airlock` binary under test.
pub fn airlock_bin() -> &'static str {
    env!("CARGO_BIN_EXE_airlock")
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped policies.
pub fn shipped_policies() -> PathBuf {
    repo().join("policies")
}

/// A `Command` for the airlock binary with an isolated audit log and module cache under
/// `dir`, and no inherited airlock settings.
pub fn airlock(dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(airlock_bin());
    command
        .env("AIRLOCK_AUDIT", dir.join("audit.jsonl"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("AIRLOCK_POLICIES", shipped_policies())
        .env_remove("AIRLOCK_CALLER");
    command
}
