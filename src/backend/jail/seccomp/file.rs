//! The serde mirror of a Docker/OCI seccomp profile (`policies/seccomp/*.json`, or a
//! profile written for Docker, Podman or runc).
//!
//! Owns: the shape of the file, key for key, and nothing more. Unknown keys are refused
//! (`deny_unknown_fields`) except where the format itself says so.
//! Must not: resolve, validate meaning or compile: `profile` does that.
//!
//! The keys are Docker's (`github.com/moby/profiles/seccomp` `Seccomp` and `Syscall`,
//! which embed the OCI runtime spec's `LinuxSeccomp`):
//!
//! - top level: `defaultAction`, `defaultErrnoRet`, `architectures`, `archMap`,
//!   `syscalls`, `flags`, `listenerPath`, `listenerMetadata`, and `comment` (airlock's
//!   addition, so that a profile can say what it is for; Docker ignores unknown keys, so a
//!   profile with a `comment` still loads there);
//! - a syscall rule: `names` (or the older single `name`), `action`, `errnoRet`, `args`,
//!   `comment`, `includes`, `excludes`;
//! - an argument comparison: `index`, `value`, `valueTwo`, `op`;
//! - `includes` / `excludes`: `arches`, `caps`, `minKernel`.
//!
//! Rules are kept as raw JSON here and parsed one by one, so that an error inside a rule
//! names the rule's own line even when the rule is fine JSON but means nothing.

use serde::Deserialize;
use serde_json::value::RawValue;

/// A whole profile. `syscalls` stays raw: see the module header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProfileFile<'a> {
    pub default_action: ActionName,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub arch_map: Option<Vec<ArchMapEntry>>,
    #[serde(default, borrow)]
    pub syscalls: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    pub flags: Option<Vec<String>>,
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub listener_metadata: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // Read by people, not by airlock.
    pub comment: Option<String>,
}

/// One `archMap` entry: a native architecture and the ABIs Docker lets in with it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ArchMapEntry {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

/// One entry of `syscalls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SyscallEntry {
    #[serde(default)]
    pub names: Option<Vec<String>>,
    #[serde(default)]
    pub name: Option<String>,
    pub action: ActionName,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<ArgEntry>>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub includes: Option<Condition>,
    #[serde(default)]
    pub excludes: Option<Condition>,
}

/// One argument comparison of a rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ArgEntry {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: OpName,
}

/// `includes` / `excludes`: when a rule applies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Condition {
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// The action names of the format (libseccomp's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum ActionName {
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

/// The comparison names of the format (libseccomp's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum OpName {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

impl ActionName {
    /// The name as the file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionName::Kill => "SCMP_ACT_KILL",
            ActionName::KillProcess => "SCMP_ACT_KILL_PROCESS",
            ActionName::KillThread => "SCMP_ACT_KILL_THREAD",
            ActionName::Trap => "SCMP_ACT_TRAP",
            ActionName::Errno => "SCMP_ACT_ERRNO",
            ActionName::Trace => "SCMP_ACT_TRACE",
            ActionName::Allow => "SCMP_ACT_ALLOW",
            ActionName::Log => "SCMP_ACT_LOG",
            ActionName::Notify => "SCMP_ACT_NOTIFY",
        }
    }
}

impl OpName {
    /// The name as the file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            OpName::Ne => "SCMP_CMP_NE",
            OpName::Lt => "SCMP_CMP_LT",
            OpName::Le => "SCMP_CMP_LE",
            OpName::Eq => "SCMP_CMP_EQ",
            OpName::Ge => "SCMP_CMP_GE",
            OpName::Gt => "SCMP_CMP_GT",
            OpName::MaskedEq => "SCMP_CMP_MASKED_EQ",
        }
    }
}
