//! Where a call made through the service works: the workspace, chosen by the operator,
//! narrowed by the client only inside roots the operator named.
//!
//! Owns: [`WorkspacePolicy`]: the service's default workspace (`--workspace`), the roots a
//! client may choose a workspace in (`--workspace-root`, the default workspace being one),
//! and the check of a client's choice (`_meta["airlock/workspace"]` on `initialize` for the
//! connection, or on `tools/call` for one call).
//! Must not: accept a path a client names without that check, or fall back to the
//! service's own working directory (a service started from `/` would hand every tool the
//! whole file system). With neither a default nor roots, calls are refused.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ServiceError;

/// The `_meta` key (on `initialize` or `tools/call`) a client uses to choose its workspace.
pub const WORKSPACE_META: &str = "airlock/workspace";

/// The operator's workspace rules for one service.
#[derive(Debug, Clone, Default)]
pub struct WorkspacePolicy {
    default: Option<PathBuf>,
    roots: Vec<PathBuf>,
}

impl WorkspacePolicy {
    /// The default workspace (if any) and the roots clients may choose in, each
    /// canonicalized now: they must exist and be directories. The default is a root too.
    pub fn new(default: Option<&Path>, roots: &[PathBuf]) -> Result<WorkspacePolicy, ServiceError> {
        let canonical = |path: &Path| -> Result<PathBuf, ServiceError> {
            let canonical =
                path.canonicalize().map_err(|source| ServiceError::Workspace { path: path.to_path_buf(), source })?;
            if !canonical.is_dir() {
                return Err(ServiceError::Workspace {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
                });
            }
            Ok(canonical)
        };
        let default = default.map(canonical).transpose()?;
        let mut all_roots: Vec<PathBuf> = roots.iter().map(|root| canonical(root)).collect::<Result<_, _>>()?;
        all_roots.extend(default.clone());
        Ok(WorkspacePolicy { default, roots: all_roots })
    }

    /// The default workspace.
    pub fn default_workspace(&self) -> Option<&Path> {
        self.default.as_deref()
    }

    /// Checks a client's choice (the value of [`WORKSPACE_META`]): an absolute path to an
    /// existing directory that, once symlinks are resolved, is inside one of the roots.
    /// The error says why, for the client.
    pub fn check(&self, requested: &Value) -> Result<PathBuf, String> {
        let Value::String(text) = requested else {
            return Err(format!("`_meta.{WORKSPACE_META}` must be a string (an absolute path)"));
        };
        let path = Path::new(text);
        if !path.is_absolute() {
            return Err(format!("`_meta.{WORKSPACE_META}` must be an absolute path, not {text:?}"));
        }
        let canonical = path.canonicalize().map_err(|error| format!("workspace {text:?} cannot be used: {error}"))?;
        if !canonical.is_dir() {
            return Err(format!("workspace {text:?} is not a directory"));
        }
        if self.roots.iter().any(|root| canonical.starts_with(root)) {
            return Ok(canonical);
        }
        Err(if self.roots.is_empty() {
            format!(
                "workspace {text:?} refused: this service lets no client choose its workspace (it was started \
                 without --workspace-root)"
            )
        } else {
            format!(
                "workspace {text:?} refused: it is not inside a root this service allows ({}); ask the operator \
                 to add a --workspace-root",
                self.roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_must_resolve_inside_a_root() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("root");
        let outside = temp.path().join("outside");
        std::fs::create_dir_all(root.join("project")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let policy = WorkspacePolicy::new(None, std::slice::from_ref(&root)).unwrap();
        let pick = |p: &Path| policy.check(&Value::String(p.to_string_lossy().into_owned()));
        assert!(pick(&root.join("project")).is_ok());
        assert!(pick(&root).is_ok());
        assert!(pick(&outside).unwrap_err().contains("not inside a root"));
        assert!(pick(&root.join("escape")).unwrap_err().contains("not inside a root"));
        assert!(pick(&root.join("project/../../outside")).unwrap_err().contains("not inside a root"));
        assert!(pick(&root.join("missing")).unwrap_err().contains("cannot be used"));
        assert!(policy.check(&Value::String("relative".into())).unwrap_err().contains("absolute"));
        assert!(policy.check(&Value::from(3)).unwrap_err().contains("string"));
    }

    #[test]
    fn without_roots_no_choice_is_allowed_and_the_default_is_a_root() {
        let temp = tempfile::tempdir().unwrap();
        let none = WorkspacePolicy::new(None, &[]).unwrap();
        assert!(
            none.check(&Value::String(temp.path().to_string_lossy().into_owned())).unwrap_err().contains("without")
        );
        let with_default = WorkspacePolicy::new(Some(temp.path()), &[]).unwrap();
        assert!(with_default.check(&Value::String(temp.path().to_string_lossy().into_owned())).is_ok());
    }
}
