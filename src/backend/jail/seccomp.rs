//! Seccomp profiles as data (`policies/seccomp/*.json`, the Docker/OCI format), compiled
//! once to BPF and installed on every thread of a jailed process.
//!
//! Owns: loading and validating profiles ([`SeccompProfile`]), what a profile decides for
//! a call ([`SeccompProfile::decide`], pure, for tests and `policy explain`), compiling to
//! BPF ([`SeccompProfile::compile`] -> [`CompiledSeccomp`]) and installing
//! ([`CompiledSeccomp::apply`]).
//! Must not: spawn, mount, drop capabilities or decide when seccomp goes on: the jail's
//! ordered set-up calls [`CompiledSeccomp::apply`] last, right before `execve`.
//!
//! # Meaning of a profile
//!
//! For a call `nr(args)` made through the native x86_64 ABI: the strictest action among
//! the profile's rules for `nr` whose argument comparisons all match; if no rule matches,
//! `defaultAction`. "Strictest" is the kernel's order (kill process, kill thread, trap,
//! errno, trace, log, allow); between two errnos, the rule whose action appears first in
//! the file wins. So an explicit denial can never be undone by an allow rule elsewhere in
//! the file, and a profile that only lists allowed calls means the same as it does to
//! Docker. A call through any other ABI (i386 `int 0x80`, x32) kills the process, whatever
//! the profile says (Docker would let its `archMap` sub-architectures in; airlock does not).
//!
//! # Why several filters, and why the stack means exactly that
//!
//! seccompiler builds a program with one match action and one mismatch action, but a
//! profile has several actions. The kernel runs *every* installed filter on each call and
//! keeps the strictest result (between equal ones, the most recently installed). So the
//! profile is compiled to a stack:
//!
//! 1. **ABI guard** (hand-written): kill unless `arch == AUDIT_ARCH_X86_64` and the x32
//!    bit (`nr & 0x40000000`) is clear. Without it, a blocklist rule for `ptrace` would
//!    not see x32's `ptrace`, which reaches the same kernel function.
//! 2. **Base**: match = allow, mismatch = `defaultAction`, over *all* rules of every
//!    action (with their conditions). It answers "did any rule match?".
//! 3. **One filter per other action A**: match = A, mismatch = allow, over the rules whose
//!    action is A.
//!
//! Take a call and let M be the actions of the rules that match it. If M is empty, the
//! base returns the default and every action filter allows: the result is the default. If
//! M is not empty, the base allows and each filter A returns A exactly when A is in M: the
//! result is the strictest of M. Ties (two errnos) go to the most recently installed
//! filter, so the action filters are installed in reverse order of first appearance. The
//! unit tests check this equivalence by running the compiled BPF in an interpreter against
//! [`SeccompProfile::decide`] for every syscall and many argument values.
//!
//! Conditional rules need care with the merge. Take `clone` in the default profile:
//! "allow when `flags & CLONE_NEW* == 0`" plus "deny when `flags & CLONE_NEWUSER ==
//! CLONE_NEWUSER`" (one rule per namespace flag). A thread's `clone` matches only the
//! allow rule: the base allows, the errno filter allows. `clone(CLONE_NEWUSER)` matches the
//! deny rule: the errno filter returns EPERM, and even if the allow rule were unconditional
//! the errno would still win. A rule with no conditions for a syscall makes the other
//! rules of the same filter for it redundant, and the compiler merges them that way.
//!
//! Arguments are compared on all 64 bits, as libseccomp does. For an `int` argument the
//! kernel ignores the upper half, so a denial of an `int` value must mask the low 32 bits
//! (`SCMP_CMP_MASKED_EQ` with mask `0xffffffff`), or `ioctl(fd, 0x100005412)` would slip
//! past a rule for TIOCSTI (0x5412). Allow rules on exact values need no mask: a value with
//! upper bits set just falls to the (denying) default.

mod error;
mod file;
mod filter;
mod profile;
mod syscalls;

pub use error::{Result, SeccompError};
pub use filter::CompiledSeccomp;
pub use profile::{Action, ArgCondition, ArgOp, KernelVersion, SeccompProfile, SyscallRule};

use std::{collections::BTreeMap, path::Path};

use crate::policy::PolicyErrors;

/// The file name of the profile a process tool gets when its policy names none.
pub const DEFAULT_PROFILE: &str = "default";

/// Loads and compiles every `NAME.json` in `dir` (`policies/seccomp/`), by `NAME`.
///
/// Reports every mistake in every profile, not just the first file's.
pub fn load_profiles(dir: &Path) -> Result<BTreeMap<String, CompiledSeccomp>> {
    let entries = std::fs::read_dir(dir).map_err(|source| SeccompError::ReadDir { path: dir.to_path_buf(), source })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SeccompError::ReadDir { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            paths.push(path);
        }
    }
    paths.sort();

    let mut profiles = BTreeMap::new();
    let mut errors = Vec::new();
    for path in paths {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        match SeccompProfile::load(&path).and_then(|profile| profile.compile()) {
            Ok(compiled) => {
                profiles.insert(name.to_string(), compiled);
            }
            Err(SeccompError::Profile(PolicyErrors(found))) => errors.extend(found),
            Err(other) => return Err(other),
        }
    }
    if errors.is_empty() { Ok(profiles) } else { Err(SeccompError::Profile(PolicyErrors(errors))) }
}

#[cfg(test)]
mod tests;
