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
//! # One program
//!
//! The profile compiles to one classic BPF program (`filter`): an ABI guard, then a
//! binary search over the call number down to a leaf that tests the call's rules in the
//! order that decides (strictest action first; the first rule whose comparisons all hold
//! gives the answer; none: the default). That order is [`SeccompProfile::decide`]'s own,
//! so the program means the profile by construction; the unit tests also run the compiled
//! BPF in an interpreter against `decide` for every syscall and many argument values.
//!
//! Take `clone` in the default profile: "allow when `flags & CLONE_NEW* == 0`" plus "deny
//! when `flags & CLONE_NEWUSER == CLONE_NEWUSER`" (one rule per namespace flag). The leaf
//! for `clone` tests the denials first: `clone(CLONE_NEWUSER)` gets EPERM even if the
//! allow rule were unconditional; a thread's `clone` passes them and meets the allow rule.
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
