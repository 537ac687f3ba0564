//! Declarative policies: parse `policies/` (TOML), validate, compile into an immutable
//! [`PolicySet`], and evaluate a call against it into an [`Evaluation`].
//!
//! Owns: the file formats (`file`), their validation and compilation (`compile`), load
//! errors with file, line and help (`error`), the decision rules (`decision`), the
//! argv/stdin placeholders (`invoke`), the resolved capabilities of one call (`grant`) and
//! evaluation (`evaluate`).
//! Must not: run anything, or import a backend. Loading reports every mistake it finds,
//! never just the first. Evaluation never fails open: any error (unknown tool or caller,
//! bad arguments, a path that escapes the workspace) is a [`Decision::Deny`] with the
//! reason.
//!
//! Everything here is pure except reading the policy files (and the modules they pin) at
//! load, and resolving workspace paths and reading `env.pass` variables at evaluation.

mod compile;
mod decision;
mod error;
mod evaluate;
mod file;
mod grant;
mod invoke;
mod protected;

pub use decision::{AuditArguments, Budgets, CategoryVerdict, DEFAULT_PROTECTED, Decision, Designation, OnTamper};
pub use error::{PolicyError, PolicyErrors};
pub use evaluate::{EvaluatedCaller, Evaluation, ToolInfo};
pub use file::tool_file_schema;
pub use grant::{
    EnvGrants, FileGrants, Grant, GrantError, HostPath, JailGrant, Layer, Limits, Mount, Program, SeccompGrant,
    WorkspacePath, WorkspacePathError, sha256_hex,
};
pub use invoke::InvokeError;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::audit::Fsync;
use invoke::Invocation;

/// The compiled, immutable policy set: what [`PolicySet::load`] made of a policy directory.
#[derive(Debug)]
pub struct PolicySet {
    root: PathBuf,
    digest: String,
    categories: BTreeMap<String, String>,
    designations: BTreeMap<String, Designation>,
    callers: CallerTable,
    audit: AuditSettings,
    tools: BTreeMap<String, ToolPolicy>,
    seccomp: BTreeMap<String, SeccompGrant>,
    /// The protected paths resolved in each workspace, kept while nothing they rest on
    /// changes.
    protected_cache: protected::ProtectedCache,
}

impl PolicySet {
    /// Loads, validates and compiles every file under `dir`: `designations.toml`,
    /// `callers.toml`, `audit.toml` (optional) and `tools/*.toml` (the directory may be
    /// empty or absent). Reads each tool's module to check its sha256, and each seccomp
    /// profile (`seccomp/*.json`) to digest it (the jail backend compiles them).
    ///
    /// Returns every mistake found, in every file, not just the first.
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyErrors> {
        compile::load(dir)
    }

    /// The names of the listed callers.
    pub fn callers(&self) -> impl Iterator<Item = &str> {
        self.callers.callers.keys().map(String::as_str)
    }

    /// The policy directory this set was loaded from (as given to [`PolicySet::load`]).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// sha256 (lowercase hex) over every policy file read: for each, in order of relative
    /// path, the path, a NUL, the hex sha256 of its contents and a newline. The audit log
    /// records it to say which policy decided a call.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The risk categories: name -> description.
    pub fn categories(&self) -> &BTreeMap<String, String> {
        &self.categories
    }

    /// A designation by name.
    pub fn designation(&self, name: &str) -> Option<&Designation> {
        self.designations.get(name)
    }

    /// Every designation, by name.
    pub fn designations(&self) -> impl Iterator<Item = &Designation> {
        self.designations.values()
    }

    /// A tool by name.
    pub fn tool(&self, name: &str) -> Option<&ToolPolicy> {
        self.tools.get(name)
    }

    /// Every tool, by name.
    pub fn tools(&self) -> impl Iterator<Item = &ToolPolicy> {
        self.tools.values()
    }

    /// The seccomp profile `seccomp/NAME.json`, as loaded.
    pub fn seccomp_profile(&self, name: &str) -> Option<&SeccompGrant> {
        self.seccomp.get(name)
    }

    /// Every seccomp profile, by name.
    pub fn seccomp_profiles(&self) -> impl Iterator<Item = &SeccompGrant> {
        self.seccomp.values()
    }

    /// The audit settings (audit.toml, or the defaults when it is absent).
    pub fn audit_settings(&self) -> &AuditSettings {
        &self.audit
    }

    /// The designation callers not listed in callers.toml get; `None`: they are refused.
    pub fn default_designation(&self) -> Option<&str> {
        self.callers.default.as_deref()
    }

    /// Who `name` is: the listed caller, or an unlisted one with the default designation;
    /// `None` when `name` is not listed and there is no default (the caller is refused).
    pub fn resolve_caller(&self, name: &str) -> Option<Caller> {
        if let Some(caller) = self.callers.callers.get(name) {
            return Some(Caller {
                name: name.to_string(),
                designation: caller.designation.clone(),
                attributes: caller.attributes.clone(),
                admin: caller.admin,
                listed: true,
            });
        }
        self.callers.default.as_ref().map(|designation| Caller {
            name: name.to_string(),
            designation: designation.clone(),
            attributes: Vec::new(),
            admin: false,
            listed: false,
        })
    }

    /// The caller a socket peer with this uid is (callers.toml `uids`).
    pub fn caller_for_uid(&self, uid: u32) -> Option<&str> {
        self.callers.by_uid.get(&uid).map(String::as_str)
    }
}

/// callers.toml, compiled.
#[derive(Debug, Default)]
struct CallerTable {
    default: Option<String>,
    callers: BTreeMap<String, CallerPolicy>,
    by_uid: BTreeMap<u32, String>,
}

/// One listed caller.
#[derive(Debug, Clone)]
struct CallerPolicy {
    designation: String,
    attributes: Vec<String>,
    admin: bool,
}

/// A resolved caller: who asks and under which designation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The caller's name.
    pub name: String,
    /// The designation that decides its calls.
    pub designation: String,
    /// Free-form attributes from callers.toml (empty for unlisted callers).
    pub attributes: Vec<String>,
    /// Whether it may decide approvals and reload policy (false for unlisted callers).
    pub admin: bool,
    /// False when the caller is not in callers.toml and got the default designation.
    pub listed: bool,
}

/// audit.toml, compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditSettings {
    /// When records reach the disk.
    pub fsync: Fsync,
    /// Regexes (already checked to compile): argument keys at any depth and env names that
    /// match are redacted in the audit log.
    pub redact: Vec<String>,
    /// The Ed25519 key that signs checkpoints (absolute; outside every grant); `None`:
    /// the log is not signed.
    pub signing_key: Option<std::path::PathBuf>,
    /// Records between signed checkpoints.
    pub checkpoint_every: u64,
}

impl Default for AuditSettings {
    /// No `audit.toml`: group commit (`batch`) and the default redaction patterns.
    fn default() -> Self {
        AuditSettings {
            fsync: Fsync::Batch,
            redact: crate::audit::DEFAULT_REDACT_PATTERNS.iter().map(|p| p.to_string()).collect(),
            signing_key: None,
            checkpoint_every: crate::audit::DEFAULT_CHECKPOINT_EVERY,
        }
    }
}

/// One tool, compiled: everything validated, the module's sha256 checked, the input
/// schema compiled once.
#[derive(Debug)]
pub struct ToolPolicy {
    name: String,
    file: String,
    description: String,
    justification: String,
    categories: Vec<String>,
    network: Vec<String>,
    program: Program,
    jail: JailGrant,
    input_schema: Value,
    validator: jsonschema::Validator,
    invocation: Invocation,
    files: FileGrants,
    env: EnvGrants,
    limits: Limits,
}

impl ToolPolicy {
    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tool file, relative to the policy directory (`tools/NAME.toml`).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// What the tool does (shown to agents).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Why the tool may exist with these grants.
    pub fn justification(&self) -> &str {
        &self.justification
    }

    /// Its risk categories.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// `host:port` entries it may connect to.
    pub fn network(&self) -> &[String] {
        &self.network
    }

    /// What it runs (a module, or an executable run in the process jail).
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The pinned sha256 of its module or executable (`None`: an unpinned executable).
    pub fn sha256(&self) -> Option<&str> {
        match &self.program {
            Program::Wasm { sha256, .. } => Some(sha256),
            Program::Process { sha256, .. } => sha256.as_deref(),
        }
    }

    /// How the process jail isolates it (seccomp profile, best-effort layers).
    pub fn jail(&self) -> &JailGrant {
        &self.jail
    }

    /// The JSON Schema of its arguments.
    pub fn input_schema(&self) -> &Value {
        &self.input_schema
    }

    /// Its file grants.
    pub fn files(&self) -> &FileGrants {
        &self.files
    }

    /// Its environment grants.
    pub fn env(&self) -> &EnvGrants {
        &self.env
    }

    /// Its limits (defaults filled in).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks `arguments` against the input schema; each error is one line naming where in
    /// the arguments it is. Values are masked so that a secret argument does not end up in
    /// a reason (reasons go to the audit log).
    pub fn check_arguments(&self, arguments: &Value) -> Result<Map<String, Value>, Vec<String>> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(arguments)
            .map(|e| {
                let at = e.instance_path.as_str();
                let at = if at.is_empty() { "(arguments)" } else { at };
                format!("at {at}: {}", e.masked())
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        match arguments {
            Value::Object(map) => Ok(map.clone()),
            _ => Err(vec!["arguments must be a JSON object".to_string()]),
        }
    }

    /// argv (after argv[0]) and stdin for arguments that passed [`ToolPolicy::check_arguments`].
    pub fn render(&self, arguments: &Map<String, Value>) -> Result<(Vec<String>, Vec<u8>), InvokeError> {
        Ok((self.invocation.argv(arguments)?, self.invocation.stdin(arguments)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime shares one `PolicySet` across tasks and threads.
    #[test]
    fn policy_set_and_evaluation_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<PolicySet>();
        send_sync::<Evaluation>();
        send_sync::<PolicyErrors>();
    }
}
