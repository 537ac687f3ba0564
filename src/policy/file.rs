//! The policy files as written: serde mirrors of `designations.toml`, `callers.toml`,
//! `audit.toml` and `tools/NAME.toml`.
//!
//! Owns: the shape of each file (every table `deny_unknown_fields`), with
//! [`toml::Spanned`] wherever a later validation error must name a line, and the JSON
//! Schema of the tool file ([`tool_file_schema`]), generated from these types so that it
//! cannot drift from what the loader accepts.
//! Must not: validate meaning (known categories, paths, hashes) or be used for decisions;
//! `compile` turns these into the immutable types that are.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::{
    audit::Fsync,
    policy::{AuditArguments, Decision, OnTamper},
};

/// One tool: `policies/tools/NAME.toml`.
///
/// A tool is a program (a wasm module pinned by sha256), the JSON Schema of its arguments,
/// how those arguments become its argv and stdin, and the capabilities it needs (files,
/// network, environment, limits). Which callers may use it is decided by its risk
/// `categories` and the caller's designation (designations.toml).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "airlock tool policy (policies/tools/NAME.toml)")]
pub(crate) struct ToolFile {
    /// The tool's name; must equal the file's stem (`csv-dedupe` in
    /// `tools/csv-dedupe.toml`). Letters, digits, `-` and `_`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What the tool does, shown to agents (MCP `tools/list`). Required, non-empty.
    #[schemars(with = "String")]
    pub description: Spanned<String>,
    /// Why this tool may exist with these grants. Required, non-empty.
    #[schemars(with = "String")]
    pub justification: Spanned<String>,
    /// The risk categories the tool belongs to (at least one), each declared in
    /// designations.toml `[categories]`. The caller's designation decides each; the
    /// strictest decision wins.
    #[schemars(with = "Vec<String>")]
    pub categories: Spanned<Vec<Spanned<String>>>,
    /// `host:port` entries the tool may connect to. Empty or absent: no network.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub network: Vec<Spanned<String>>,
    /// The program.
    #[schemars(with = "BackendFile")]
    pub backend: Spanned<BackendFile>,
    /// JSON Schema (draft 2020-12) of the tool's arguments; must be an object schema
    /// (`type = "object"`). Shown to agents and checked on every call.
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub input: Spanned<toml::Table>,
    /// How arguments become argv (after argv[0] = the tool's name) and stdin.
    #[serde(default)]
    pub invoke: InvokeFile,
    /// Directories the tool sees, relative to the call's workspace.
    #[serde(default)]
    pub files: FilesFile,
    /// The tool's environment; nothing else is passed.
    #[serde(default)]
    pub env: EnvFile,
    /// Resource limits; each absent one takes airlock's (tight) default.
    #[serde(default)]
    pub limits: LimitsFile,
    /// Examples checked when the policy loads, like unit tests.
    #[serde(default)]
    #[schemars(with = "Vec<ToolExampleFile>")]
    pub examples: Vec<Spanned<ToolExampleFile>>,
}

/// The program a tool runs: exactly one of `wasm` (a module) or `process` (a native
/// executable run in the process jail).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackendFile {
    /// The wasm module or component file, relative to the policy directory.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub wasm: Option<Spanned<String>>,
    /// A native program: argv, whose first element is the executable's absolute path and
    /// whose others take the same placeholders as `invoke.args` (they come first; the
    /// rendered `invoke.args` follow).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub process: Option<Spanned<Vec<Spanned<String>>>>,
    /// The sha256 of the module (required) or of the executable (optional: when set, the
    /// jail runs exactly the file it checked), 64 lowercase hex digits; checked when the
    /// policy loads and again before every run.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sha256: Option<Spanned<String>>,
    /// Process tools: the seccomp profile, a file `seccomp/NAME.json` in the policy
    /// directory (default `default`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub seccomp: Option<Spanned<String>>,
    /// Process tools: isolation layers that may be missing on the host's kernel without
    /// refusing the call (the audit record says which were active). Only `landlock`,
    /// `cgroups`, `cgroup-namespace` and `seccomp` may be listed. Empty: all required.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub best_effort: Vec<Spanned<String>>,
}

/// How arguments become argv and stdin.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvokeFile {
    /// argv elements after argv[0]. Placeholders: an element exactly `{name}` is the
    /// argument's value (a string as is, a number or bool as JSON, an array one element per
    /// item, absent or null: dropped); `{name?TEXT}` is TEXT when the argument is true,
    /// dropped otherwise; `{name}` inside other text is substituted (scalars only) and the
    /// element is dropped when the argument is absent; `{{` and `}}` are literal braces.
    /// Every name must be a property of `input`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub args: Vec<Spanned<String>>,
    /// `{name}`: the argument's value is the tool's stdin (a string as is, other JSON as
    /// compact JSON text). Absent: empty stdin.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stdin: Option<Spanned<String>>,
}

/// Directories made visible to the tool.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilesFile {
    /// Read-only directories, relative to the call's workspace (`.` is the whole
    /// workspace). No absolute paths, no `..`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub read: Vec<Spanned<String>>,
    /// Read-write directories, relative to the call's workspace. A path in both lists is
    /// writable.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub write: Vec<Spanned<String>>,
    /// Files or directories in the workspace that stay read-only even inside a writable
    /// directory (tests, graders), relative to the workspace; added to the designation's.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub protected: Vec<Spanned<String>>,
    /// Process tools: host paths outside the workspace the tool may read (a toolchain),
    /// seen at the same path. Absolute; `$NAME`, `${NAME}` and `${NAME:-DEFAULT}` are
    /// expanded from airlock's environment on each call (unset: not mounted).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub host_read: Vec<Spanned<String>>,
}

/// The tool's environment: exactly these variables.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvFile {
    /// Names copied from airlock's own environment when set there.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub pass: Vec<Spanned<String>>,
    /// Literal values.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub set: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// Resource limits of one call; each absent one takes the default.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    /// Wall-clock time, in milliseconds (default 10000).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub wall_ms: Option<Spanned<u64>>,
    /// Wasm fuel, roughly instructions executed (default 10^10).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub fuel: Option<Spanned<u64>>,
    /// Linear memory per instance, in MiB (default 64).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub memory_mib: Option<Spanned<u64>>,
    /// Bytes kept of stdout and of stderr, each (default 1 MiB).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub output_bytes: Option<Spanned<u64>>,
    /// Table elements per table (default 10000).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub table_elements: Option<Spanned<u64>>,
    /// Instances per store (default 10).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub instances: Option<Spanned<u64>>,
    /// Process tools: CPU seconds of the whole process tree (default 10).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub cpu_seconds: Option<Spanned<u64>>,
    /// Process tools: processes and threads alive at once (default 64).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub pids: Option<Spanned<u64>>,
    /// Process tools: the largest file the tool may write, in MiB (default 64).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub file_size_mib: Option<Spanned<u64>>,
    /// Process tools: open file descriptors per process (default 256).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub open_files: Option<Spanned<u64>>,
    /// Process tools: size of the private /tmp, in MiB (default 64).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub tmp_mib: Option<Spanned<u64>>,
}

/// An example call, checked when the policy loads: either the argv it must produce
/// (`args`) or a denial it must get (`deny`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolExampleFile {
    /// The arguments (a table, as an agent would send them).
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub arguments: toml::Table,
    /// The argv the arguments must produce, after argv[0].
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// A substring of the reason the arguments must be denied with.
    #[serde(default)]
    pub deny: Option<String>,
}

/// `designations.toml`: the risk categories and the designations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DesignationsFile {
    /// Category name -> what a tool in it does.
    pub categories: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Designation name -> its rules.
    #[serde(default)]
    pub designations: BTreeMap<Spanned<String>, Spanned<DesignationFile>>,
}

/// One designation: which categories it allows, sends for approval, or denies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DesignationFile {
    pub justification: Spanned<String>,
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub approve: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
    /// Category -> the caller attribute it needs: without it the category is denied; with
    /// it, `allow` / `approve` decide as listed.
    #[serde(default)]
    pub require_attribute: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Paths relative to every workspace that no tool call may change (merged with each
    /// tool's `files.protected`). Absent: [`crate::policy::DEFAULT_PROTECTED`].
    #[serde(default)]
    pub protected: Option<Vec<Spanned<String>>>,
    /// `false`: no tool with `network` entries or the `network` category may run.
    #[serde(default)]
    pub network: Option<Spanned<bool>>,
    /// `full`: every call's arguments are audited unredacted; `redacted` (default): the
    /// audit.toml redaction applies.
    #[serde(default)]
    pub audit_arguments: Option<AuditArguments>,
    /// What a session does after a call changed a protected path: `record` (default) or
    /// `suspend` (refuse further calls).
    #[serde(default)]
    pub on_tamper: Option<OnTamper>,
    #[serde(default)]
    pub examples: Vec<Spanned<DesignationExampleFile>>,
    /// Per-session budgets (`[designations.NAME.budgets]`); absent: none.
    #[serde(default)]
    pub budgets: Option<Spanned<BudgetsFile>>,
}

/// `[designations.NAME.budgets]`: what one session of a caller with this designation may
/// spend. Every key is optional; an absent key is no budget.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetsFile {
    pub calls_per_minute: Option<Spanned<i64>>,
    pub cpu_seconds: Option<Spanned<f64>>,
    pub wall_seconds: Option<Spanned<f64>>,
    pub output_bytes: Option<Spanned<i64>>,
    pub denials_before_suspend: Option<Spanned<i64>>,
}

/// A designation example: a tool with these categories (and, optionally, network entries,
/// called by a caller with these attributes) must get `expect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DesignationExampleFile {
    pub categories: Vec<Spanned<String>>,
    #[serde(default)]
    pub attributes: Vec<String>,
    /// The tool has `network` entries.
    #[serde(default)]
    pub network: bool,
    pub expect: Decision,
}

/// `callers.toml`: callers -> designation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallersFile {
    /// The designation of callers not listed; absent: unknown callers are refused.
    #[serde(default)]
    pub default: Option<Spanned<String>>,
    #[serde(default)]
    pub callers: BTreeMap<Spanned<String>, CallerFile>,
}

/// One caller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallerFile {
    pub designation: Spanned<String>,
    #[serde(default)]
    pub uids: Vec<Spanned<u32>>,
    /// Attributes rules can require (designations.toml `require_attribute`).
    #[serde(default)]
    pub attributes: Vec<Spanned<String>>,
    #[serde(default)]
    pub admin: bool,
}

/// `audit.toml` (optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditFile {
    #[serde(default)]
    pub fsync: Fsync,
    /// Absent: [`crate::audit::DEFAULT_REDACT_PATTERNS`]; `[]` turns redaction off.
    pub redact: Option<Vec<Spanned<String>>>,
    /// The Ed25519 key that signs checkpoints (an absolute path); absent: unsigned.
    #[serde(default)]
    pub signing_key: Option<Spanned<String>>,
    /// Records between signed checkpoints (default 100).
    #[serde(default)]
    pub checkpoint_every: Option<Spanned<i64>>,
}

/// The JSON Schema of a tool file (`policies/tools/NAME.toml`), generated from the types
/// the loader deserializes into; `airlock policy schema` prints it. Editors with TOML
/// schema support (taplo, even-better-toml) can use it for completion.
pub fn tool_file_schema() -> serde_json::Value {
    serde_json::Value::from(schemars::schema_for!(ToolFile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_file_schema_denies_unknown_keys_and_requires_the_core_fields() {
        let schema = tool_file_schema();
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        for field in ["name", "description", "justification", "categories", "backend", "input"] {
            assert!(required.contains(&serde_json::json!(field)), "{field} not required");
        }
    }

    #[test]
    fn unknown_key_in_a_nested_table_is_rejected() {
        let error = toml::from_str::<LimitsFile>("wall = 1").err();
        let message = error.map(|e| e.message().to_string()).unwrap_or_default();
        assert!(message.starts_with("unknown field `wall`"), "{message}");
    }
}
