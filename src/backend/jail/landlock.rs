//! Landlock, the jail's second file-system layer: what each path the jail sees may be used
//! for, enforced by the kernel's LSM even if a mount were wrong.
//!
//! Owns: the kernel ABI probe, the access rights of each [`Access`] kind at an ABI
//! ([`access_rights`], pure), and building the ruleset in the parent ([`ruleset`]): handled
//! rights as high as the kernel offers, one rule per host path the plan binds, and the
//! rights the child adds for the paths that exist only inside the jail (its root, /etc,
//! /tmp, /proc).
//! Must not: restrict the calling process. The ruleset's descriptor goes to the child,
//! which adds its own rules and calls `landlock_restrict_self` just before exec.
//!
//! Landlock only adds rights beneath a path: it cannot take back, inside a writable
//! workspace, what the workspace's rule grants. Protected paths are kept read-only by
//! their read-only re-bind (see `plan`), not by Landlock.

use std::{
    ffi::CString,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::fs::OpenOptionsExt,
    },
    path::PathBuf,
};

use landlock::{ABI, Access as _, AccessFs, BitFlags, Scope};

use super::{plan::Access, sys};

/// Why a ruleset could not be built (the call is refused: Landlock was required).
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("cannot create the Landlock ruleset: {0}")]
    Create(String),
    #[error("cannot add the Landlock rule for {path}: {reason}")]
    Rule { path: PathBuf, reason: String },
}

/// The highest Landlock ABI both the kernel and the `landlock` crate know; `None` when the
/// kernel has no Landlock (not built in, or not enabled at boot).
pub fn probe_abi() -> Option<ABI> {
    // SAFETY: landlock_create_ruleset with a NULL attribute, size 0 and the VERSION flag
    // only returns the ABI version (or -1); it creates nothing.
    let version = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    let version = i32::try_from(version).unwrap_or(0);
    (version > 0).then(|| ABI::from(version))
}

/// The rights an [`Access`] kind grants at `abi`, on a directory (`is_dir`) or a file.
pub fn access_rights(abi: ABI, access: Access, is_dir: bool) -> BitFlags<AccessFs> {
    let all = AccessFs::from_all(abi);
    let rights = match access {
        Access::ReadExec => AccessFs::from_read(abi),
        Access::ReadWrite => all & !(AccessFs::MakeChar | AccessFs::MakeBlock),
        Access::Device => (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev) & all,
    };
    if is_dir { rights } else { rights & AccessFs::from_file(abi) }
}

/// The rules the child adds for the paths that exist only in the jail, as
/// `(path inside the jail, rights)`: listing the root (which holds only mount points),
/// reading the copied /etc, all of /tmp, and reading and writing /proc (within what the
/// jail's own namespaces allow).
pub fn child_rules(abi: ABI) -> Vec<(CString, u64)> {
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi) & !AccessFs::Execute;
    [
        (c"/", BitFlags::from(AccessFs::ReadDir)),
        (c"/etc", read),
        (c"/tmp", access_rights(abi, Access::ReadWrite, true)),
        (c"/proc", read | (all & AccessFs::WriteFile)),
    ]
    .into_iter()
    .map(|(path, rights)| (path.to_owned(), rights.bits()))
    .collect()
}

/// Builds the call's ruleset: every right of `abi` handled (so anything not granted is
/// denied), signals and abstract unix sockets scoped to the jail where the ABI has scopes,
/// and one rule per host path of the plan. Returns the ruleset's descriptor.
///
/// With the raw system calls (it is on every call's critical path): per path one `open`
/// (the rule's descriptor, following symlinks as the binds' sources do), one `fstat` of it
/// (a directory or a file decides the rights) and the rule. The `landlock` crate's
/// builder resolved each path twice (`is_dir`, then the descriptor), which could also
/// disagree if the path changed in between.
pub fn ruleset(abi: ABI, paths: &[(PathBuf, Access)]) -> Result<OwnedFd, LandlockError> {
    /// `struct landlock_ruleset_attr`: a kernel that knows fewer fields accepts it as long
    /// as the ones it does not know are zero.
    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }
    let attr = RulesetAttr {
        handled_access_fs: AccessFs::from_all(abi).bits(),
        handled_access_net: 0,
        scoped: Scope::from_all(abi).bits(),
    };
    // SAFETY: a pointer to a live, initialized attribute struct and its size; no flags.
    let created = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    let created = i32::try_from(created).unwrap_or(-1);
    if created < 0 {
        return Err(LandlockError::Create(std::io::Error::last_os_error().to_string()));
    }
    // SAFETY: the kernel returned a new descriptor that only we own.
    let ruleset = unsafe { OwnedFd::from_raw_fd(created) };
    for (path, access) in paths {
        let rule_error =
            |reason: std::io::Error| LandlockError::Rule { path: path.clone(), reason: reason.to_string() };
        let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH).open(path).map_err(rule_error)?;
        let is_dir = file.metadata().map_err(rule_error)?.is_dir();
        let rights = access_rights(abi, *access, is_dir).bits();
        sys::landlock_add_path_rule(ruleset.as_raw_fd(), rights, file.as_raw_fd())
            .map_err(|errno| rule_error(std::io::Error::from_raw_os_error(errno)))?;
    }
    Ok(ruleset)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn rights_grow_with_the_abi_and_files_get_file_rights_only() {
        let v1 = access_rights(ABI::V1, Access::ReadWrite, true);
        let v5 = access_rights(ABI::V5, Access::ReadWrite, true);
        assert!(
            !v1.contains(AccessFs::Refer) && v5.contains(AccessFs::Refer | AccessFs::Truncate | AccessFs::IoctlDev)
        );
        assert!(!v5.contains(AccessFs::MakeChar) && !v5.contains(AccessFs::MakeBlock));
        let read = access_rights(ABI::V5, Access::ReadExec, true);
        assert!(read.contains(AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::Execute));
        assert!(!read.contains(AccessFs::WriteFile) && !read.contains(AccessFs::MakeReg));
        let file = access_rights(ABI::V5, Access::ReadWrite, false);
        assert!(
            !file.contains(AccessFs::MakeReg)
                && !file.contains(AccessFs::ReadDir)
                && file.contains(AccessFs::WriteFile)
        );
        let device = access_rights(ABI::V3, Access::Device, false);
        assert_eq!(device, AccessFs::ReadFile | AccessFs::WriteFile);
    }

    /// The ruleset, enforced in a forked child (never in the test runner): a file under the
    /// granted directory opens, one beside it does not.
    #[test]
    fn ruleset_enforced_in_a_child_allows_only_the_granted_paths() {
        let Some(abi) = probe_abi() else {
            eprintln!("this kernel has no Landlock; skipped");
            return;
        };
        let (allowed, denied) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(allowed.path().join("f"), "a").unwrap();
        std::fs::write(denied.path().join("f"), "d").unwrap();
        let fd = ruleset(abi, &[(allowed.path().to_path_buf(), Access::ReadExec)]).unwrap();
        let path = |dir: &tempfile::TempDir| CString::new(dir.path().join("f").to_string_lossy().as_bytes()).unwrap();
        let (a, d) = (path(&allowed), path(&denied));
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        // SAFETY: the child makes only raw system calls (no allocation, no locks) and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            use super::super::sys;
            let restricted =
                sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).and_then(|_| sys::landlock_restrict_self(raw));
            let code = match restricted {
                Err(_) => 10,
                Ok(()) => {
                    let opened_allowed = sys::open(&a, libc::O_RDONLY | libc::O_CLOEXEC, 0).is_ok();
                    let denied_errno = sys::open(&d, libc::O_RDONLY | libc::O_CLOEXEC, 0).err();
                    let writes_allowed = sys::open(&a, libc::O_WRONLY | libc::O_CLOEXEC, 0).err();
                    i32::from(opened_allowed)
                        + 2 * i32::from(denied_errno == Some(libc::EACCES))
                        + 4 * i32::from(writes_allowed == Some(libc::EACCES))
                }
            };
            sys::exit_group(code);
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 7, "1: allowed read, 2: denied read refused, 4: write refused");
    }

    #[test]
    fn child_rules_list_root_for_reading_only() {
        let rules = child_rules(ABI::V5);
        let root = rules.iter().find(|(p, _)| p.as_c_str() == c"/").map(|(_, r)| *r);
        assert_eq!(root, Some(BitFlags::from(AccessFs::ReadDir).bits()));
        let etc = rules.iter().find(|(p, _)| p.as_c_str() == c"/etc").map(|(_, r)| *r).unwrap_or(0);
        assert_eq!(etc & AccessFs::WriteFile as u64, 0);
        assert_eq!(etc & AccessFs::Execute as u64, 0);
    }
}
