//! Trees of the jail's root that are the same for every call, prepared once: `/etc` (the
//! allow-listed files, their symlinks, and the host's directories and large files bound
//! read-only onto their mount points), `/dev` (the host's device nodes bound onto their
//! mount points, and the usual symlinks), and the root itself (the system directories
//! bound read-only, their symlinks, the mount points of /tmp, the workspace and /proc, and
//! a clone of /etc and of /dev). Each is a detached tmpfs (never mounted in any namespace
//! the host sees) with its binds attached to it, that each jail clones with one recursive
//! `open_tree` + `move_mount`, instead of creating a file and binding a host path per
//! entry per call.
//!
//! Owns: [`PreparedTree`] (the tmpfs, held by a descriptor) and building it from a
//! [`TreeSpec`]: each bind gets the attributes the jail would give it (a clone keeps every
//! mount's attributes) and private propagation (as a bind made in the jail, after it made
//! its mounts private, would have: nothing mounted on the host's side reaches a jail).
//! Must not: decide what the trees hold (`plan` does: `plan::etc_tree`, `plan::dev_tree`),
//! or be written after it is built: every jail shares it (through clones), so it is sealed
//! read-only. Must not serve a bind whose host path was replaced: [`PreparedTree::holds`]
//! compares the bound paths' identities, so a replaced one makes a new tree at the next
//! probe of the host's layout.
//!
//! Creating a tmpfs takes CAP_SYS_ADMIN (airlock as root). Without it, or on a kernel that
//! cannot attach a bind to a detached mount or clone a detached tree into another mount
//! namespace, [`PreparedTree::build`] fails and the jail makes the tree entry by entry: the
//! same view either way.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::fs::MetadataExt,
    },
    path::PathBuf,
    sync::Arc,
};

use super::{
    plan::{HostEntry, PREPARED_ATTRS, TreeSpec, attr},
    sys,
};

/// The tmpfs's size: small, it holds copies of files below 1 MiB each.
const SIZE: &str = "8m";

/// A prepared tree: a descriptor of a detached, read-only tmpfs and the binds on it.
#[derive(Debug)]
pub struct PreparedTree {
    mount: OwnedFd,
    /// What it was built from (to reuse it while the host's is unchanged).
    spec: TreeSpec,
    /// The bound host paths and the (device, inode) they had when bound.
    bound: Vec<(PathBuf, (u64, u64))>,
    /// The prepared trees cloned onto it (the root's /etc and /dev).
    nested: Vec<Arc<PreparedTree>>,
}

impl PreparedTree {
    /// Builds the tree of `spec`: files copied (0644), symlinks recreated, an empty
    /// directory or file as the mount point of each directory or large file, then each host
    /// path bound onto its mount point. Its tmpfs is `nosuid`, `nodev` and `noexec`.
    pub fn build(spec: &TreeSpec) -> io::Result<PreparedTree> {
        PreparedTree::build_on(spec, attr::NOSUID | attr::NODEV | attr::NOEXEC, Vec::new())
    }

    /// The jail's root ([`plan::root_tree`]): as [`PreparedTree::build`], its tmpfs
    /// `nosuid` and `nodev` (as the root a jail makes itself), with a clone of each of
    /// `nested` (name, tree) on its mount point.
    pub fn build_root(spec: &TreeSpec, nested: Vec<(&str, Arc<PreparedTree>)>) -> io::Result<PreparedTree> {
        PreparedTree::build_on(spec, attr::NOSUID | attr::NODEV, nested)
    }

    fn build_on(spec: &TreeSpec, attrs: u64, nested: Vec<(&str, Arc<PreparedTree>)>) -> io::Result<PreparedTree> {
        let mount = new_tmpfs(attrs)?;
        for (name, entry) in &spec.entries {
            let name = CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let dir = mount.as_raw_fd();
            match entry {
                HostEntry::File(contents) => write_new(dir, &name, contents)?,
                HostEntry::LargeFile => write_new(dir, &name, &[])?,
                HostEntry::Dir => {
                    // SAFETY: a NUL-terminated name relative to our own descriptor.
                    check(unsafe { libc::mkdirat(dir, name.as_ptr(), 0o755) })?;
                }
                HostEntry::Symlink(target) => {
                    let target = CString::new(target.as_os_str().as_encoded_bytes())
                        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                    // SAFETY: NUL-terminated strings; the link is made under our descriptor.
                    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) })?;
                }
            }
        }
        let mut bound = Vec::new();
        for bind in &spec.binds {
            let name = CString::new(bind.name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let source = CString::new(bind.source.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let identity = bind_into(&mount, &name, &source, bind.attrs)?;
            bound.push((bind.source.clone(), identity));
        }
        let mut trees = Vec::new();
        for (name, tree) in nested {
            let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let target = open_mount_point(&mount, &name)?;
            sys::clone_tree_fd(tree.fd(), target.as_raw_fd(), PREPARED_ATTRS).map_err(io::Error::from_raw_os_error)?;
            trees.push(tree);
        }
        set_read_only(&mount)?;
        can_clone(&mount)?;
        Ok(PreparedTree { mount, spec: spec.clone(), bound, nested: trees })
    }

    /// Whether this tree holds exactly `spec`, with every bound host path still the one
    /// that was bound (not replaced since).
    pub fn holds(&self, spec: &TreeSpec) -> bool {
        self.spec == *spec
            && self.bound.iter().all(|(path, identity)| {
                std::fs::symlink_metadata(path).is_ok_and(|meta| (meta.dev(), meta.ino()) == *identity)
            })
    }

    /// [`PreparedTree::holds`], and its nested trees are `nested` (not older ones).
    pub fn holds_with(&self, spec: &TreeSpec, nested: &[&Arc<PreparedTree>]) -> bool {
        self.holds(spec)
            && self.nested.len() == nested.len()
            && self.nested.iter().zip(nested).all(|(mine, theirs)| Arc::ptr_eq(mine, theirs))
    }

    /// The descriptor the child clones.
    pub fn fd(&self) -> RawFd {
        self.mount.as_raw_fd()
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn syscall_fd(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(rc).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel returned a new descriptor that only we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fsopen("tmpfs")` + `fsconfig` + `fsmount`: a detached tmpfs with `attrs`.
fn new_tmpfs(attrs: u64) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: a NUL-terminated file system name.
    let context = syscall_fd(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?;
    let size = CString::new(SIZE).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    for (key, value) in [(c"size", size.as_c_str()), (c"mode", c"0755")] {
        // SAFETY: NUL-terminated key and value, our own fs context descriptor.
        let rc = unsafe {
            libc::syscall(libc::SYS_fsconfig, context.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), value.as_ptr(), 0)
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: no pointers besides NULLs; our own fs context descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: integer arguments only.
    syscall_fd(unsafe { libc::syscall(libc::SYS_fsmount, context.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
}

/// Creates `name` under `dir` (it must not exist) with `contents`, mode 0644.
fn write_new(dir: RawFd, name: &CString, contents: &[u8]) -> io::Result<()> {
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    // SAFETY: a NUL-terminated name relative to our own descriptor.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags, 0o644 as libc::c_uint) };
    check(fd)?;
    // SAFETY: openat returned a new descriptor that only we own.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    io::Write::write_all(&mut &file, contents)
}

/// Binds host path `source` (recursively, refusing any symlink on the way, as the jail
/// does) at `name` under the detached tree `mount`, with `attrs` and private propagation
/// on every mount of the bind. Returns the (device, inode) of what was bound.
fn bind_into(mount: &OwnedFd, name: &CString, source: &CString, attrs: u64) -> io::Result<(u64, u64)> {
    let path = sys::open_path_no_symlinks(source).map_err(io::Error::from_raw_os_error)?;
    // SAFETY: open_path_no_symlinks returned a new descriptor that only we own.
    let path = unsafe { OwnedFd::from_raw_fd(path) };
    let identity = std::fs::File::from(path.try_clone()?).metadata().map(|meta| (meta.dev(), meta.ino()))?;
    let target = open_mount_point(mount, name)?;
    sys::bind_fd_private(path.as_raw_fd(), target.as_raw_fd(), attrs).map_err(io::Error::from_raw_os_error)?;
    Ok(identity)
}

/// A path descriptor of `name` (made by the build) under the detached tree `mount`.
fn open_mount_point(mount: &OwnedFd, name: &CString) -> io::Result<OwnedFd> {
    // SAFETY: openat of a NUL-terminated name under our own tmpfs's descriptor.
    let target =
        unsafe { libc::openat(mount.as_raw_fd(), name.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
    syscall_fd(libc::c_long::from(target))
}

/// Checks that this kernel lets a detached tree be cloned with its binds
/// (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`, as each jail does; kernels before 6.15
/// refuse it with EINVAL). Without the check such a kernel would fail every jail's set-up;
/// with it, the jail makes the tree entry by entry.
fn can_clone(mount: &OwnedFd) -> io::Result<()> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint
        | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: an empty path with AT_EMPTY_PATH on our own mount descriptor.
    let clone = unsafe { libc::syscall(libc::SYS_open_tree, mount.as_raw_fd(), c"".as_ptr(), flags) };
    // The detached copy goes away with its descriptor.
    syscall_fd(clone).map(drop)
}

/// Seals the tree: read-only for everyone, the parent included.
fn set_read_only(mount: &OwnedFd) -> io::Result<()> {
    sys::mount_setattr_fd(mount.as_raw_fd(), attr::RDONLY).map_err(io::Error::from_raw_os_error)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::{path::PathBuf, sync::Arc};

    use super::*;
    use crate::backend::jail::plan::TreeBind;

    #[test]
    fn the_tree_holds_the_entries_and_binds_and_is_read_only() {
        let host = tempfile::tempdir().unwrap();
        let bound = host.path().join("alternatives");
        std::fs::create_dir(&bound).unwrap();
        std::fs::write(bound.join("editor"), b"vi").unwrap();
        let spec = TreeSpec {
            entries: vec![
                ("passwd".to_string(), HostEntry::File(Arc::from(&b"root:x:0:0::/root:/bin/sh\n"[..]))),
                ("alternatives".to_string(), HostEntry::Dir),
                ("localtime".to_string(), HostEntry::Symlink(PathBuf::from("/usr/share/zoneinfo/UTC"))),
                ("big".to_string(), HostEntry::LargeFile),
            ],
            binds: vec![TreeBind {
                name: "alternatives".to_string(),
                source: bound.clone(),
                attrs: attr::RDONLY | attr::NOSUID | attr::NODEV,
            }],
        };
        let template = match PreparedTree::build(&spec) {
            Ok(template) => template,
            // Not root here: the jail makes its trees entry by entry (tested by the jail tests).
            Err(error) if error.raw_os_error() == Some(libc::EPERM) => return,
            Err(error) => panic!("{error}"),
        };
        assert!(template.holds(&spec));
        let mut fewer = spec.clone();
        fewer.entries.truncate(1);
        assert!(!template.holds(&fewer));
        let root = PathBuf::from(format!("/proc/self/fd/{}", template.fd()));
        assert_eq!(std::fs::read(root.join("passwd")).unwrap(), b"root:x:0:0::/root:/bin/sh\n");
        assert_eq!(std::fs::read(root.join("alternatives/editor")).unwrap(), b"vi");
        assert_eq!(std::fs::read_link(root.join("localtime")).unwrap(), PathBuf::from("/usr/share/zoneinfo/UTC"));
        assert_eq!(std::fs::metadata(root.join("big")).unwrap().len(), 0);
        let error = std::fs::write(root.join("passwd"), b"x").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EROFS));
        let error = std::fs::write(root.join("alternatives/editor"), b"x").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EROFS));
        // A bound path replaced on the host: the tree no longer holds what the host has.
        let fresh = host.path().join("fresh");
        std::fs::create_dir(&fresh).unwrap();
        std::fs::remove_file(bound.join("editor")).unwrap();
        std::fs::rename(&fresh, &bound).unwrap();
        assert!(!template.holds(&spec));
    }
}
