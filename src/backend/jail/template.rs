//! The jail's mount namespace, made once: a template whose root is the prepared root
//! (`prepared`), with a procfs at /proc, that jails are cloned in (`CLONE_NEWNS` copies it
//! into the jail's own namespace at the clone). A jail then starts on its minimal root: no
//! copy of the host's mount table to make, no root to clone, no `pivot_root`, and no
//! host root to detach (whose unmount waits for an RCU grace period, on every call).
//!
//! Owns: [`Template`] (the namespace, held by a descriptor, and the prepared root it was
//! made of) and moving a cloning thread into it and back ([`Template::enter`],
//! [`Entered::leave`]).
//! Must not: hold anything of a call (the call's binds are detached trees the parent opens
//! at the call and the child attaches; its /tmp and /proc the child mounts itself), or
//! anything of the host's but the prepared root: the namespace is made by a short-lived
//! thread that copies airlock's namespace, puts the prepared root on a staging directory,
//! `pivot_root`s into it and detaches the rest before it exits.
//!
//! The procfs at /proc: mounting a procfs in a namespace owned by the jail's user
//! namespace needs a fully visible procfs in that namespace already (the kernel's
//! `mount_too_revealing`); the template's is it, and the jail's own covers it. It is a
//! `subset=pid` instance: only process directories, no /proc/sys, /proc/sysrq-trigger or
//! other host-wide file, even if something ever uncovered it (which takes an unmount: the
//! jail's capabilities are dropped, seccomp refuses `umount2`, Landlock refuses any
//! change of the mount topology, and the kernel locks the copied mount beneath).
//!
//! Entering needs the thread's file-system context (root, working directory) to be its
//! own: [`Template::enter`] unshares it once per thread (`unshare(CLONE_FS)`), and only
//! dedicated threads (the call cgroups' resident threads) clone in a template. Returning
//! restores the thread's root and working directory as they were.

use std::{
    cell::RefCell,
    ffi::CString,
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::Arc,
};

use super::{plan::SYSTEM_ATTRS, prepared::PreparedTree, sys};

/// The options of the template's procfs: process directories only, each visible only to
/// who may ptrace it.
const TEMPLATE_PROC_OPTIONS: &str = "subset=pid,hidepid=invisible";

/// A mount namespace whose root is the prepared root, with a procfs at /proc.
#[derive(Debug)]
pub struct Template {
    ns: OwnedFd,
    /// The prepared root it holds (a new root makes a new template).
    root: Arc<PreparedTree>,
}

impl Template {
    /// Makes the template of `root`, staged on the host directory `staging` (hidden by the
    /// root in the making thread's own namespace only).
    pub fn build(root: &Arc<PreparedTree>, staging: &str) -> io::Result<Template> {
        let invalid = |_| io::Error::from(io::ErrorKind::InvalidInput);
        let staging_c = CString::new(staging).map_err(invalid)?;
        let proc_c = CString::new(format!("{staging}/proc")).map_err(invalid)?;
        let options = CString::new(TEMPLATE_PROC_OPTIONS).map_err(invalid)?;
        let errno = |errno| io::Error::from_raw_os_error(errno);
        let ns = std::thread::scope(|scope| {
            let maker = std::thread::Builder::new().name("airlock-mntns-new".into()).spawn_scoped(scope, || {
                // This thread only: unshare(CLONE_NEWNS) gives it its own file-system
                // context too; it does nothing else and exits below.
                sys::unshare(libc::CLONE_NEWNS).map_err(errno)?;
                let ns = OwnedFd::from(File::open("/proc/thread-self/ns/mnt")?);
                let flags = libc::MS_REC | libc::MS_PRIVATE;
                sys::mount(None, c"/", None, flags, None).map_err(errno)?;
                let target = sys::open_path_no_symlinks(&staging_c).map_err(errno)?;
                // SAFETY: open_path_no_symlinks returned a new descriptor that only we own.
                let target = unsafe { OwnedFd::from_raw_fd(target) };
                sys::clone_tree_fd(root.fd(), target.as_raw_fd(), SYSTEM_ATTRS).map_err(errno)?;
                let proc_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                sys::mount(Some(c"proc"), &proc_c, Some(c"proc"), proc_flags, Some(&options)).map_err(errno)?;
                sys::chdir(&staging_c).map_err(errno)?;
                sys::pivot_root(c".", c".").map_err(errno)?;
                sys::umount2(c".", libc::MNT_DETACH).map_err(errno)?;
                Ok::<OwnedFd, io::Error>(ns)
            })?;
            maker.join().map_err(|_| io::Error::other("the thread making the jail's mount namespace panicked"))?
        })?;
        Ok(Template { ns, root: Arc::clone(root) })
    }

    /// Whether this template holds `root`.
    pub fn holds(&self, root: &Arc<PreparedTree>) -> bool {
        Arc::ptr_eq(&self.root, root)
    }

    /// Moves the calling thread into the template's mount namespace (its root and working
    /// directory become the template's root), for a clone with `CLONE_NEWNS`. The first
    /// time on a thread, its file-system context is unshared and the way back recorded.
    /// Refused, with the thread left where it was, when any step fails.
    pub fn enter(&self) -> io::Result<Entered> {
        THREAD.with(|thread| {
            let mut thread = thread.borrow_mut();
            if thread.is_none() {
                *thread = Some(ThreadFs::own()?);
            }
            let Some(own) = thread.as_ref() else { return Err(io::Error::other("no file-system context")) };
            setns(self.ns.as_raw_fd())?;
            Ok(Entered { host: own.ns.as_raw_fd(), root: own.root.as_raw_fd(), cwd: own.cwd.as_raw_fd() })
        })
    }
}

/// A thread in a template's namespace; [`Entered::leave`] takes it back.
#[derive(Debug)]
#[must_use = "the thread must leave the template's namespace"]
pub struct Entered {
    host: RawFd,
    root: RawFd,
    cwd: RawFd,
}

impl Entered {
    /// Back to the thread's namespace, root and working directory. On failure the thread
    /// is stranded in the template: it must not run anything else.
    pub fn leave(self) -> io::Result<()> {
        setns(self.host)?;
        let errno = |errno| io::Error::from_raw_os_error(errno);
        // SAFETY: fchdir on descriptors this thread's ThreadFs owns for the thread's life.
        let back = |fd: RawFd| if unsafe { libc::fchdir(fd) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
        back(self.root)?;
        sys::chroot(c".").map_err(errno)?;
        back(self.cwd)
    }
}

/// A thread's own file-system context and the way back to it.
struct ThreadFs {
    /// The mount namespace the thread came from.
    ns: OwnedFd,
    /// Its root and working directory.
    root: OwnedFd,
    cwd: OwnedFd,
}

impl ThreadFs {
    /// Unshares the calling thread's file-system context (so that `setns` may change its
    /// mount namespace, and no other thread's root or working directory changes with it),
    /// and records it.
    fn own() -> io::Result<ThreadFs> {
        // SAFETY: unshare of this thread's file-system context only.
        if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let open = |path: &str| -> io::Result<OwnedFd> {
            let path = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: a NUL-terminated path; the kernel returns a new descriptor.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a new descriptor that only we own.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        Ok(ThreadFs { ns: OwnedFd::from(File::open("/proc/thread-self/ns/mnt")?), root: open("/")?, cwd: open(".")? })
    }
}

thread_local! {
    static THREAD: RefCell<Option<ThreadFs>> = const { RefCell::new(None) };
}

/// `setns(fd, CLONE_NEWNS)` for the calling thread.
fn setns(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns on a namespace descriptor we hold.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
