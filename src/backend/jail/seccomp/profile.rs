//! A validated seccomp profile: the rules that apply to airlock's jail on this machine, by
//! x86_64 syscall number, and the pure interpreter of what they decide.
//!
//! Owns: [`SeccompProfile`] (parse the Docker/OCI JSON, validate it, resolve `includes` /
//! `excludes`), [`Action`], [`SyscallRule`], [`ArgCondition`], [`KernelVersion`] and
//! [`SeccompProfile::decide`].
//! Must not: build BPF or touch the kernel (`filter` does), or read anything but the
//! profile file and the running kernel's version.
//!
//! Resolution is Docker's (`moby/profiles/seccomp`, `setupSeccomp`), for the process airlock
//! jails: architecture `amd64` (`x86_64` is accepted as a synonym), **no capabilities**
//! (the jail drops them all, so a rule that `includes` a capability never applies and one
//! that `excludes` a capability always does), and the running kernel for `minKernel`.
//!
//! Argument comparisons are libseccomp's: on the full 64-bit register value. The
//! conditions of one rule must all hold, except that, as in runc, a rule that compares the
//! same argument twice means "any of these comparisons" (runc adds each as its own rule,
//! because libseccomp cannot AND two comparisons of one argument). A name that is not an
//! x86_64 call (`chown32`, `arm_fadvise64_64`, ...) is skipped and listed by
//! [`SeccompProfile::unresolved_names`], as runc skips names its libseccomp cannot resolve.

use std::{collections::BTreeSet, fmt, path::Path};

use super::{
    error::{ProfileText, Result, SeccompError, profile_errors},
    file::{ActionName, ArgEntry, Condition, OpName, ProfileFile, SyscallEntry},
    syscalls,
};
use crate::policy::PolicyError;

/// The errno (EPERM) that `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` return when the profile
/// does not say `errnoRet`, as in runc.
const DEFAULT_ERRNO: u16 = libc::EPERM as u16;

/// The largest errno the kernel passes through from a filter (`MAX_ERRNO`); the kernel
/// clamps larger values, so a profile asking for more is a mistake.
const MAX_ERRNO: u32 = 4095;

/// What the kernel does with a syscall, as a seccomp filter returns it.
///
/// Variants are in the kernel's order of precedence, strictest first: when several
/// filters (or several matching rules) disagree, the strictest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `SCMP_ACT_KILL_PROCESS`: the whole process dies of SIGSYS.
    KillProcess,
    /// `SCMP_ACT_KILL` / `SCMP_ACT_KILL_THREAD`: the calling thread dies of SIGSYS.
    KillThread,
    /// `SCMP_ACT_TRAP`: the thread gets a SIGSYS it may handle.
    Trap,
    /// `SCMP_ACT_ERRNO`: the call fails with this errno without running.
    Errno(u16),
    /// `SCMP_ACT_TRACE`: a ptrace tracer is told (with this value); without one the call
    /// fails with ENOSYS.
    Trace(u16),
    /// `SCMP_ACT_LOG`: the call runs and is logged.
    Log,
    /// `SCMP_ACT_ALLOW`: the call runs.
    Allow,
}

impl Action {
    /// The kernel's precedence: lower is stricter (`seccomp_run_filters` keeps the lowest
    /// `SECCOMP_RET_ACTION_FULL`). Errnos of different values share a rank.
    pub fn precedence(self) -> u8 {
        match self {
            Action::KillProcess => 0,
            Action::KillThread => 1,
            Action::Trap => 2,
            Action::Errno(_) => 3,
            Action::Trace(_) => 4,
            Action::Log => 5,
            Action::Allow => 6,
        }
    }

    /// The value a filter returns for this action (`SECCOMP_RET_*`, with its data).
    pub fn seccomp_ret(self) -> u32 {
        match self {
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::Errno(errno) => libc::SECCOMP_RET_ERRNO | u32::from(errno),
            Action::Trace(data) => libc::SECCOMP_RET_TRACE | u32::from(data),
            Action::Log => libc::SECCOMP_RET_LOG,
            Action::Allow => libc::SECCOMP_RET_ALLOW,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::KillProcess => f.write_str("SCMP_ACT_KILL_PROCESS"),
            Action::KillThread => f.write_str("SCMP_ACT_KILL_THREAD"),
            Action::Trap => f.write_str("SCMP_ACT_TRAP"),
            Action::Errno(errno) => write!(f, "SCMP_ACT_ERRNO({errno})"),
            Action::Trace(data) => write!(f, "SCMP_ACT_TRACE({data})"),
            Action::Log => f.write_str("SCMP_ACT_LOG"),
            Action::Allow => f.write_str("SCMP_ACT_ALLOW"),
        }
    }
}

/// How an argument is compared (libseccomp's `SCMP_CMP_*`, on all 64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgOp {
    /// `arg != value`
    Ne,
    /// `arg < value`
    Lt,
    /// `arg <= value`
    Le,
    /// `arg == value`
    Eq,
    /// `arg >= value`
    Ge,
    /// `arg > value`
    Gt,
    /// `arg & mask == value` (the format's `value` is the mask, `valueTwo` the value).
    MaskedEq { mask: u64 },
}

/// One comparison of a syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCondition {
    /// Which argument, 0 to 5.
    pub index: u8,
    /// How it is compared.
    pub op: ArgOp,
    /// With what.
    pub value: u64,
}

impl ArgCondition {
    /// Whether `args` satisfies this comparison.
    pub fn matches(&self, args: &[u64; 6]) -> bool {
        let arg = args[usize::from(self.index).min(5)];
        match self.op {
            ArgOp::Ne => arg != self.value,
            ArgOp::Lt => arg < self.value,
            ArgOp::Le => arg <= self.value,
            ArgOp::Eq => arg == self.value,
            ArgOp::Ge => arg >= self.value,
            ArgOp::Gt => arg > self.value,
            ArgOp::MaskedEq { mask } => arg & mask == self.value,
        }
    }
}

/// One rule for one x86_64 syscall, after `includes` / `excludes` were resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRule {
    /// The syscall's name.
    pub name: &'static str,
    /// Its x86_64 number.
    pub nr: u32,
    /// What happens when the rule matches.
    pub action: Action,
    /// All must hold for the rule to match; none means "always".
    pub conditions: Vec<ArgCondition>,
    /// The index in the file's `syscalls` array of the entry this rule came from.
    pub entry: usize,
    /// The entry's `comment`.
    pub comment: Option<String>,
}

impl SyscallRule {
    /// Whether this rule matches a call of its syscall with `args`.
    pub fn matches(&self, args: &[u64; 6]) -> bool {
        self.conditions.iter().all(|condition| condition.matches(args))
    }
}

/// A kernel version as `minKernel` writes it: major and minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl KernelVersion {
    /// Parses `MAJOR.MINOR` (anything after the minor number is ignored, so `uname -r`
    /// strings such as `6.18.44-generic` parse too).
    pub fn parse(text: &str) -> Option<KernelVersion> {
        let mut parts = text.trim().splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor_text = parts.next()?;
        let digits = minor_text.find(|c: char| !c.is_ascii_digit()).unwrap_or(minor_text.len());
        let minor = minor_text[..digits].parse().ok()?;
        Some(KernelVersion { major, minor })
    }

    /// The running kernel's version, from `uname(2)`.
    pub fn running() -> Option<KernelVersion> {
        // SAFETY: `utsname` is plain data: all zeroes is a valid value.
        let mut name: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `name` is a valid, writable `utsname`.
        if unsafe { libc::uname(&mut name) } != 0 {
            return None;
        }
        let release: Vec<u8> = name.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        KernelVersion::parse(std::str::from_utf8(&release).ok()?)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A validated seccomp profile for x86_64, resolved for airlock's jail on one kernel.
///
/// Immutable; [`SeccompProfile::compile`](SeccompProfile::compile) turns it into BPF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompProfile {
    source_name: String,
    default_action: Action,
    rules: Vec<SyscallRule>,
    /// Every distinct action of `rules`, in order of first appearance.
    action_order: Vec<Action>,
    unresolved: Vec<String>,
    log_flag: bool,
}

impl SeccompProfile {
    /// Reads and validates the profile at `path`, resolved for the running kernel.
    pub fn load(path: &Path) -> Result<SeccompProfile> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SeccompError::Read { path: path.to_path_buf(), source })?;
        SeccompProfile::from_docker_json(&text, &path.display().to_string())
    }

    /// Validates a profile in the Docker/OCI format, resolved for the running kernel.
    /// `source_name` is what errors name as the file.
    pub fn from_docker_json(text: &str, source_name: &str) -> Result<SeccompProfile> {
        SeccompProfile::from_docker_json_on(text, source_name, KernelVersion::running())
    }

    /// As [`SeccompProfile::from_docker_json`], for a given kernel (`None`: unknown, and
    /// then a rule with `minKernel` is an error).
    pub fn from_docker_json_on(text: &str, source_name: &str, kernel: Option<KernelVersion>) -> Result<SeccompProfile> {
        let source = ProfileText { source_name, text };
        let file: ProfileFile<'_> =
            serde_json::from_str(text).map_err(|e| profile_errors(vec![source.json_error(0, &e)]))?;
        let mut errors = Vec::new();
        let (default_action, log_flag) = validate_top_level(&source, &file, &mut errors);

        let mut rules = Vec::new();
        let mut unresolved = BTreeSet::new();
        for (entry_index, raw) in file.syscalls.iter().flatten().enumerate() {
            let start = source.offset_of(raw.get());
            let entry: SyscallEntry = match serde_json::from_str(raw.get()) {
                Ok(entry) => entry,
                Err(error) => {
                    errors.push(source.json_error(start, &error));
                    continue;
                }
            };
            let at = EntryText { source: &source, start, end: start + raw.get().len() };
            resolve_entry(&at, entry_index, &entry, kernel, &mut rules, &mut unresolved, &mut errors);
        }
        if !errors.is_empty() {
            return Err(profile_errors(errors));
        }

        let mut action_order: Vec<Action> = Vec::new();
        for rule in &rules {
            if !action_order.contains(&rule.action) {
                action_order.push(rule.action);
            }
        }
        Ok(SeccompProfile {
            source_name: source_name.to_string(),
            default_action,
            rules,
            action_order,
            unresolved: unresolved.into_iter().collect(),
            log_flag,
        })
    }

    /// What errors name as this profile's file.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// What happens to a syscall no rule matches.
    pub fn default_action(&self) -> Action {
        self.default_action
    }

    /// The rules that apply here, in file order (an entry with several names gives one
    /// rule per name).
    pub fn rules(&self) -> &[SyscallRule] {
        &self.rules
    }

    /// The names the profile uses that are not x86_64 syscalls (skipped, as runc does).
    pub fn unresolved_names(&self) -> &[String] {
        &self.unresolved
    }

    /// Whether the profile asked for `SECCOMP_FILTER_FLAG_LOG`.
    pub fn log_flag(&self) -> bool {
        self.log_flag
    }

    /// What the kernel will do with `syscall(args...)` under this profile (missing
    /// arguments are 0): the strictest action of the rules that match, or
    /// [`SeccompProfile::default_action`] when none does. Between two actions of equal
    /// precedence (two errnos), the one that appears first in the file wins. A name that is
    /// not an x86_64 syscall gets the default action (no filter can name it).
    ///
    /// This is the meaning the compiled filters implement; the unit tests run the BPF and
    /// compare.
    pub fn decide(&self, syscall: &str, args: &[u64]) -> Action {
        let mut six = [0u64; 6];
        for (slot, value) in six.iter_mut().zip(args) {
            *slot = *value;
        }
        match syscalls::number(syscall) {
            Some(nr) => self.decide_number(nr, &six),
            None => self.default_action,
        }
    }

    /// [`SeccompProfile::decide`] by syscall number.
    pub fn decide_number(&self, nr: u32, args: &[u64; 6]) -> Action {
        self.deciding_rule(nr, args).map_or(self.default_action, |rule| rule.action)
    }

    /// The rule that decides `nr(args)`, if any (for `policy explain`).
    pub fn deciding_rule(&self, nr: u32, args: &[u64; 6]) -> Option<&SyscallRule> {
        self.rules_in_order(nr).into_iter().find(|rule| rule.matches(args))
    }

    /// The rules for `nr` in the order that decides: strictest action first, then the
    /// action that appears first in the file, then file order. The first rule that matches
    /// a call decides it (the compiled program tests them in this order too).
    pub(crate) fn rules_in_order(&self, nr: u32) -> Vec<&SyscallRule> {
        let mut rules: Vec<&SyscallRule> = self.rules.iter().filter(|rule| rule.nr == nr).collect();
        rules.sort_by_key(|rule| (rule.action.precedence(), self.action_rank(rule.action), rule.entry));
        rules
    }

    /// Where `action` first appears among the rules (ties between equal precedences go to
    /// the earliest).
    fn action_rank(&self, action: Action) -> usize {
        self.action_order.iter().position(|known| *known == action).unwrap_or(usize::MAX)
    }
}

/// Checks the top-level keys; returns the default action and whether to log.
fn validate_top_level(
    source: &ProfileText<'_>,
    file: &ProfileFile<'_>,
    errors: &mut Vec<PolicyError>,
) -> (Action, bool) {
    let whole = source.text.len();
    let key = |name: &str| source.key_offset(name, 0, whole);
    let default_action = match action_of(file.default_action, file.default_errno_ret) {
        Ok(action) => action,
        Err((message, help)) => {
            let at =
                if file.default_action == ActionName::Notify { key("defaultAction") } else { key("defaultErrnoRet") };
            errors.push(source.error_at(at, message, help));
            Action::Errno(DEFAULT_ERRNO)
        }
    };

    let mut native_listed = file.architectures.is_none();
    for arch in file.architectures.iter().flatten() {
        if !arch.starts_with("SCMP_ARCH_") {
            errors.push(source.error_at(
                key("architectures"),
                format!("`{arch}` is not a libseccomp architecture"),
                "write architectures as libseccomp names, e.g. \"SCMP_ARCH_X86_64\"",
            ));
        }
        native_listed |= arch == "SCMP_ARCH_X86_64";
    }
    if !native_listed && file.architectures.as_ref().is_some_and(|a| !a.is_empty()) {
        errors.push(source.error_at(
            key("architectures"),
            "this profile's `architectures` do not include SCMP_ARCH_X86_64, the only ABI airlock runs",
            "add \"SCMP_ARCH_X86_64\" to `architectures` (i386 and x32 calls are always killed)",
        ));
    }
    for entry in file.arch_map.iter().flatten() {
        let names = std::iter::once(&entry.architecture).chain(entry.sub_architectures.iter().flatten());
        for arch in names {
            if !arch.starts_with("SCMP_ARCH_") {
                errors.push(source.error_at(
                    key("archMap"),
                    format!("`{arch}` in `archMap` is not a libseccomp architecture"),
                    "write architectures as libseccomp names, e.g. \"SCMP_ARCH_X86_64\"",
                ));
            }
        }
    }

    for (name, value) in [("listenerPath", &file.listener_path), ("listenerMetadata", &file.listener_metadata)] {
        if value.as_deref().is_some_and(|v| !v.is_empty()) {
            errors.push(source.error_at(
                key(name),
                format!("`{name}` is for SCMP_ACT_NOTIFY supervisors; airlock runs none"),
                format!("remove `{name}`"),
            ));
        }
    }

    let mut log_flag = false;
    for flag in file.flags.iter().flatten() {
        match flag.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => {}
            "SECCOMP_FILTER_FLAG_LOG" => log_flag = true,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => errors.push(source.error_at(
                key("flags"),
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW turns off the kernel's speculative-execution mitigations for the jailed tool",
                "remove it: airlock keeps those mitigations",
            )),
            other => errors.push(source.error_at(
                key("flags"),
                format!("unsupported seccomp flag `{other}`"),
                "use SECCOMP_FILTER_FLAG_LOG or SECCOMP_FILTER_FLAG_TSYNC (always on), or remove it",
            )),
        }
    }
    (default_action, log_flag)
}

/// The action of a name and its `errnoRet`, or a message and help.
fn action_of(name: ActionName, errno_ret: Option<u32>) -> Result<Action, (String, String)> {
    let data_not_allowed = || {
        (
            format!("`errnoRet` is only read with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {}", name.as_str()),
            "remove `errnoRet`, or change the action to SCMP_ACT_ERRNO".to_string(),
        )
    };
    Ok(match name {
        ActionName::Errno | ActionName::Trace => {
            let value = errno_ret.map_or(Ok(DEFAULT_ERRNO), |errno| {
                if errno <= MAX_ERRNO { u16::try_from(errno).map_err(|_| ()) } else { Err(()) }
            });
            let value = value.map_err(|()| {
                (
                    format!("errno {} is out of range", errno_ret.unwrap_or_default()),
                    format!("use an errno from 0 to {MAX_ERRNO} (1 is EPERM, 38 is ENOSYS)"),
                )
            })?;
            if name == ActionName::Errno { Action::Errno(value) } else { Action::Trace(value) }
        }
        ActionName::Notify => {
            return Err((
                "SCMP_ACT_NOTIFY needs a seccomp supervisor; airlock runs none".to_string(),
                "use SCMP_ACT_ERRNO to refuse the call, or SCMP_ACT_ALLOW".to_string(),
            ));
        }
        _ if errno_ret.is_some() => return Err(data_not_allowed()),
        ActionName::Kill | ActionName::KillThread => Action::KillThread,
        ActionName::KillProcess => Action::KillProcess,
        ActionName::Trap => Action::Trap,
        ActionName::Allow => Action::Allow,
        ActionName::Log => Action::Log,
    })
}

/// Where one `syscalls` entry sits in the file.
struct EntryText<'a> {
    source: &'a ProfileText<'a>,
    start: usize,
    end: usize,
}

impl EntryText<'_> {
    /// An error at `key` inside this entry (or at its start).
    fn error(&self, key: &str, message: impl Into<String>, help: impl Into<String>) -> PolicyError {
        let at = self.source.key_offset(key, self.start, self.end);
        self.source.error_at(at, message, help)
    }
}

/// Validates one entry and, if it applies here, appends its rules.
fn resolve_entry(
    at: &EntryText<'_>,
    entry_index: usize,
    entry: &SyscallEntry,
    kernel: Option<KernelVersion>,
    rules: &mut Vec<SyscallRule>,
    unresolved: &mut BTreeSet<String>,
    errors: &mut Vec<PolicyError>,
) {
    let errors_before = errors.len();
    let names: Vec<&String> = entry.names.iter().flatten().chain(&entry.name).collect();
    if names.is_empty() {
        errors.push(at.error(
            "names",
            "this rule names no syscall",
            "add `\"names\": [\"...\"]` with the syscalls it is for",
        ));
    }
    if entry.name.is_some() && entry.names.is_some() {
        errors.push(at.error(
            "name",
            "this rule has both `name` and `names`",
            "move the `name` into the `names` list (Docker refuses both too)",
        ));
    }
    if names.iter().any(|name| name.is_empty()) {
        errors.push(at.error("names", "an empty syscall name", "remove the empty name"));
    }
    let action = match action_of(entry.action, entry.errno_ret) {
        Ok(action) => Some(action),
        Err((message, help)) => {
            let key = if entry.action == ActionName::Notify { "action" } else { "errnoRet" };
            errors.push(at.error(key, message, help));
            None
        }
    };
    let conditions = conditions_of(at, entry.args.as_deref().unwrap_or(&[]), errors);
    let applies = applies_here(at, entry, kernel, errors);
    if errors.len() > errors_before || !applies {
        return;
    }
    let Some(action) = action else { return };

    // runc: comparing one argument twice means "any of them", each as its own rule.
    let mut indexes: Vec<u8> = conditions.iter().map(|c| c.index).collect();
    indexes.sort_unstable();
    let repeated = indexes.windows(2).any(|pair| pair[0] == pair[1]);
    let alternatives: Vec<Vec<ArgCondition>> =
        if repeated { conditions.iter().map(|c| vec![*c]).collect() } else { vec![conditions] };

    for name in names {
        let Some(nr) = syscalls::number(name) else {
            unresolved.insert(name.clone());
            continue;
        };
        let Some(name) = syscalls::name(nr) else { continue };
        for conditions in &alternatives {
            rules.push(SyscallRule {
                name,
                nr,
                action,
                conditions: conditions.clone(),
                entry: entry_index,
                comment: entry.comment.clone(),
            });
        }
    }
}

/// The comparisons of an entry's `args`, checked.
fn conditions_of(at: &EntryText<'_>, args: &[ArgEntry], errors: &mut Vec<PolicyError>) -> Vec<ArgCondition> {
    let mut conditions = Vec::new();
    for arg in args {
        let Some(index) = u8::try_from(arg.index).ok().filter(|&i| i <= 5) else {
            errors.push(at.error(
                "index",
                format!("argument index {} does not exist", arg.index),
                "use an index from 0 to 5 (a syscall has at most six arguments)",
            ));
            continue;
        };
        let op = match arg.op {
            OpName::Ne => ArgOp::Ne,
            OpName::Lt => ArgOp::Lt,
            OpName::Le => ArgOp::Le,
            OpName::Eq => ArgOp::Eq,
            OpName::Ge => ArgOp::Ge,
            OpName::Gt => ArgOp::Gt,
            OpName::MaskedEq => ArgOp::MaskedEq { mask: arg.value },
        };
        let value = if let ArgOp::MaskedEq { mask } = op {
            if arg.value_two & !mask != 0 {
                errors.push(at.error(
                    "valueTwo",
                    format!(
                        "SCMP_CMP_MASKED_EQ can never match: valueTwo {:#x} has bits outside the mask {mask:#x}",
                        arg.value_two
                    ),
                    "set `value` to the mask and `valueTwo` to the masked bits it must equal",
                ));
                continue;
            }
            arg.value_two
        } else {
            if arg.value_two != 0 {
                errors.push(at.error(
                    "valueTwo",
                    format!("`valueTwo` is only read by SCMP_CMP_MASKED_EQ, not {}", arg.op.as_str()),
                    "remove `valueTwo` (or set it to 0)",
                ));
                continue;
            }
            arg.value
        };
        conditions.push(ArgCondition { index, op, value });
    }
    conditions
}

/// Docker's `includes` / `excludes` test, for airlock's jail: architecture amd64, no
/// capabilities, the given kernel.
fn applies_here(
    at: &EntryText<'_>,
    entry: &SyscallEntry,
    kernel: Option<KernelVersion>,
    errors: &mut Vec<PolicyError>,
) -> bool {
    let empty = Condition::default();
    let includes = entry.includes.as_ref().unwrap_or(&empty);
    let excludes = entry.excludes.as_ref().unwrap_or(&empty);
    let is_native = |arch: &String| arch == "amd64" || arch == "x86_64";

    for cap in includes.caps.iter().chain(&excludes.caps).flatten() {
        if !cap.starts_with("CAP_") {
            errors.push(at.error(
                "caps",
                format!("`{cap}` is not a capability name"),
                "write capabilities as CAP_NAME, e.g. \"CAP_SYS_ADMIN\"",
            ));
        }
    }
    let mut min_kernel = |condition: &Condition| -> Option<KernelVersion> {
        let text = condition.min_kernel.as_deref()?;
        let Some(wanted) = KernelVersion::parse(text) else {
            errors.push(at.error(
                "minKernel",
                format!("`{text}` is not a kernel version"),
                "write it as MAJOR.MINOR, e.g. \"4.8\"",
            ));
            return None;
        };
        if kernel.is_none() {
            errors.push(at.error(
                "minKernel",
                "the running kernel's version is unknown, so `minKernel` cannot be resolved",
                "remove `minKernel`, or load the profile where uname(2) works",
            ));
        }
        Some(wanted)
    };
    let exclude_kernel = min_kernel(excludes);
    let include_kernel = min_kernel(includes);
    let kernel = kernel.unwrap_or(KernelVersion { major: 0, minor: 0 });

    // Excludes first, as Docker does. No capability is held, so `excludes.caps` never
    // removes a rule.
    if excludes.arches.iter().flatten().any(is_native) {
        return false;
    }
    if exclude_kernel.is_some_and(|wanted| kernel >= wanted) {
        return false;
    }
    // Includes: every listed capability would be needed, and none is held.
    if let Some(arches) = &includes.arches
        && !arches.is_empty()
        && !arches.iter().any(is_native)
    {
        return false;
    }
    if includes.caps.as_ref().is_some_and(|caps| !caps.is_empty()) {
        return false;
    }
    if include_kernel.is_some_and(|wanted| kernel < wanted) {
        return false;
    }
    true
}
