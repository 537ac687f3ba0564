//! Raw Linux system calls for the jail's child, between `clone` and `execve`.
//!
//! Owns: a system-call instruction wrapper per architecture and one thin function per call
//! the child makes. Each returns `Err(errno)` itself: nothing here touches libc's `errno`
//! (a thread-local of the *parent's* thread, since the child shares its memory and thread
//! pointer), allocates, locks, or can panic. That is what makes them safe to call in the
//! child, where only async-signal-safe operations are allowed.
//! Must not: be used by the parent for anything libc does well; grow logic. Every function
//! takes pointers the caller keeps valid (NUL-terminated C strings from a [`CStr`]).

use std::{arch::asm, ffi::CStr};

/// An `errno` value, as the kernel returned it.
pub type Errno = i32;

/// A raw system call with up to six arguments. Returns the kernel's result: a negative
/// `-errno` in -4095..=-1, anything else is success.
///
/// # Safety
/// The arguments must be valid for system call `number` (pointers to live memory of the
/// size the call expects).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn syscall6(number: i64, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize, a6: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 Linux system-call convention: number in rax, arguments in rdi,
    // rsi, rdx, r10, r8, r9; the kernel clobbers rcx and r11 and returns in rax. The
    // caller guarantees the arguments are valid for the call.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number as isize => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            in("r8") a5,
            in("r9") a6,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// See the x86_64 version.
///
/// # Safety
/// The arguments must be valid for system call `number`.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
unsafe fn syscall6(number: i64, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize, a6: usize) -> isize {
    let ret: isize;
    // SAFETY: the aarch64 Linux system-call convention: number in x8, arguments in x0-x5,
    // result in x0. The caller guarantees the arguments are valid for the call.
    unsafe {
        asm!(
            "svc 0",
            in("x8") number,
            inlateout("x0") a1 as isize => ret,
            in("x1") a2,
            in("x2") a3,
            in("x3") a4,
            in("x4") a5,
            in("x5") a6,
            options(nostack),
        );
    }
    ret
}

/// The kernel's result as `Ok(value)` or `Err(errno)`.
#[inline(always)]
fn result(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) { Err(ret.wrapping_neg() as Errno) } else { Ok(ret as usize) }
}

/// Shorthand: a call with fewer arguments passes zeros for the rest.
macro_rules! sys {
    ($number:expr $(, $arg:expr)* $(,)?) => {{
        let args: [usize; 6] = sys!(@pad $($arg),*);
        // SAFETY: each wrapper below documents why its arguments are valid for the call.
        result(unsafe { syscall6($number as i64, args[0], args[1], args[2], args[3], args[4], args[5]) })
    }};
    (@pad) => { [0, 0, 0, 0, 0, 0] };
    (@pad $a:expr) => { [$a, 0, 0, 0, 0, 0] };
    (@pad $a:expr, $b:expr) => { [$a, $b, 0, 0, 0, 0] };
    (@pad $a:expr, $b:expr, $c:expr) => { [$a, $b, $c, 0, 0, 0] };
    (@pad $a:expr, $b:expr, $c:expr, $d:expr) => { [$a, $b, $c, $d, 0, 0] };
    (@pad $a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => { [$a, $b, $c, $d, $e, 0] };
}

fn ptr(text: &CStr) -> usize {
    text.as_ptr() as usize
}

fn opt_ptr(text: Option<&CStr>) -> usize {
    text.map_or(0, ptr)
}

/// `write(2)` from `buf`.
pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    sys!(libc::SYS_write, fd as usize, buf.as_ptr() as usize, buf.len())
}

/// Writes all of `buf` (retrying short writes and EINTR).
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(libc::EIO),
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `close(2)`.
pub fn close(fd: i32) -> Result<(), Errno> {
    sys!(libc::SYS_close, fd as usize).map(drop)
}

/// `dup3(2)` with no flags (the new descriptor is not close-on-exec).
pub fn dup3(old: i32, new: i32) -> Result<(), Errno> {
    sys!(libc::SYS_dup3, old as usize, new as usize, 0).map(drop)
}

/// `openat(AT_FDCWD, path, flags, mode)`.
pub fn open(path: &CStr, flags: i32, mode: u32) -> Result<i32, Errno> {
    sys!(libc::SYS_openat, libc::AT_FDCWD as usize, ptr(path), flags as usize, mode as usize).map(|fd| fd as i32)
}

/// `mkdirat(AT_FDCWD, path, mode)`.
pub fn mkdir(path: &CStr, mode: u32) -> Result<(), Errno> {
    sys!(libc::SYS_mkdirat, libc::AT_FDCWD as usize, ptr(path), mode as usize).map(drop)
}

/// `symlinkat(target, AT_FDCWD, path)`.
pub fn symlink(target: &CStr, path: &CStr) -> Result<(), Errno> {
    sys!(libc::SYS_symlinkat, ptr(target), libc::AT_FDCWD as usize, ptr(path)).map(drop)
}

/// `chdir(2)`.
pub fn chdir(path: &CStr) -> Result<(), Errno> {
    sys!(libc::SYS_chdir, ptr(path)).map(drop)
}

/// `chroot(2)`.
pub fn chroot(path: &CStr) -> Result<(), Errno> {
    sys!(libc::SYS_chroot, ptr(path)).map(drop)
}

/// `mount(2)`.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> Result<(), Errno> {
    sys!(libc::SYS_mount, opt_ptr(source), ptr(target), opt_ptr(fstype), flags as usize, opt_ptr(data)).map(drop)
}

/// `umount2(2)`.
pub fn umount2(target: &CStr, flags: i32) -> Result<(), Errno> {
    sys!(libc::SYS_umount2, ptr(target), flags as usize).map(drop)
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
    sys!(libc::SYS_pivot_root, ptr(new_root), ptr(put_old)).map(drop)
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(AT_FDCWD, path, flags, {attr_set: set})`: adds mount attributes
/// (`MOUNT_ATTR_RDONLY`, ...) without clearing any, so flags the kernel locked on a mount
/// from a more privileged namespace are kept.
pub fn mount_setattr(path: &CStr, recursive: bool, set: u64) -> Result<(), Errno> {
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let flags = if recursive { libc::AT_RECURSIVE as usize } else { 0 };
    sys!(
        libc::SYS_mount_setattr,
        libc::AT_FDCWD as usize,
        ptr(path),
        flags,
        &attr as *const MountAttr as usize,
        size_of::<MountAttr>()
    )
    .map(drop)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set: set})`: adds mount attributes to the
/// mount that descriptor `fd` (from `fsmount` or `open_tree`) refers to.
pub fn mount_setattr_fd(fd: i32, set: u64) -> Result<(), Errno> {
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    sys!(
        libc::SYS_mount_setattr,
        fd as usize,
        ptr(c""),
        libc::AT_EMPTY_PATH as usize,
        &attr as *const MountAttr as usize,
        size_of::<MountAttr>()
    )
    .map(drop)
}

/// `struct open_how` of `openat2(2)`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(AT_FDCWD, path, {O_PATH | O_CLOEXEC, RESOLVE_NO_SYMLINKS})`: a path descriptor,
/// refusing any symlink on the way (a workspace the tool writes to could have swapped a
/// directory for a link since the grant was resolved).
pub fn open_path_no_symlinks(path: &CStr) -> Result<i32, Errno> {
    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    let how = OpenHow { flags: (libc::O_PATH | libc::O_CLOEXEC) as u64, mode: 0, resolve: RESOLVE_NO_SYMLINKS };
    sys!(libc::SYS_openat2, libc::AT_FDCWD as usize, ptr(path), &how as *const OpenHow as usize, size_of::<OpenHow>())
        .map(|fd| fd as i32)
}

/// Binds the tree at descriptor `source` onto descriptor `target` and adds `attrs` to every
/// mount of the copy, without resolving a path again: `open_tree(OPEN_TREE_CLONE |
/// AT_RECURSIVE)`, `mount_setattr` on the detached copy, `move_mount` onto the target.
pub fn bind_fd(source: i32, target: i32, attrs: u64) -> Result<(), Errno> {
    attach_copy(source, target, attrs, true, 0)
}

/// [`bind_fd`], with private propagation on every mount of the copy (a bind made outside
/// the jail, into a prepared tree, that nothing mounted on the host's side may reach).
pub fn bind_fd_private(source: i32, target: i32, attrs: u64) -> Result<(), Errno> {
    attach_copy(source, target, attrs, true, libc::MS_PRIVATE)
}

/// Clones the tree at descriptor `source` with all its mounts (each keeps its attributes)
/// onto descriptor `target`, adding `attrs` to the copy's top mount only.
pub fn clone_tree_fd(source: i32, target: i32, attrs: u64) -> Result<(), Errno> {
    attach_copy(source, target, attrs, false, 0)
}

/// `open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)` of `source`, `mount_setattr` (`attrs` on
/// every mount of the copy, or on its top; `propagation` unless 0) and `move_mount` onto
/// `target`.
fn attach_copy(source: i32, target: i32, attrs: u64, attrs_recursive: bool, propagation: u64) -> Result<(), Errno> {
    let tree = detached_copy(source, attrs, attrs_recursive, propagation)?;
    let moved = move_mount_fd(tree, target);
    let _ = close(tree);
    moved
}

/// A detached copy of the tree at descriptor `source` with all its mounts:
/// `open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`, then `mount_setattr` (`attrs` on every
/// mount of the copy, or on its top; `propagation` unless 0). The copy is a new descriptor
/// (close-on-exec); it goes away with its last descriptor unless it is attached
/// ([`move_mount_fd`]) first.
pub fn detached_copy(source: i32, attrs: u64, attrs_recursive: bool, propagation: u64) -> Result<i32, Errno> {
    const OPEN_TREE_CLONE: usize = 1;
    let empty = c"";
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as usize | libc::AT_EMPTY_PATH as usize | libc::AT_RECURSIVE as usize;
    let tree = sys!(libc::SYS_open_tree, source as usize, ptr(empty), flags)? as i32;
    let attr = MountAttr { attr_set: attrs, attr_clr: 0, propagation, userns_fd: 0 };
    let recursive = if attrs_recursive { libc::AT_RECURSIVE as usize } else { 0 };
    let set = sys!(
        libc::SYS_mount_setattr,
        tree as usize,
        ptr(empty),
        libc::AT_EMPTY_PATH as usize | recursive,
        &attr as *const MountAttr as usize,
        size_of::<MountAttr>()
    );
    match set {
        Ok(_) => Ok(tree),
        Err(errno) => {
            let _ = close(tree);
            Err(errno)
        }
    }
}

/// `move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`:
/// attaches the detached tree `tree` onto the path descriptor `target`.
pub fn move_mount_fd(tree: i32, target: i32) -> Result<(), Errno> {
    const MOVE_MOUNT_F_EMPTY_PATH: usize = 0x04;
    const MOVE_MOUNT_T_EMPTY_PATH: usize = 0x40;
    let empty = c"";
    sys!(
        libc::SYS_move_mount,
        tree as usize,
        ptr(empty),
        target as usize,
        ptr(empty),
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    )
    .map(drop)
}

/// `unshare(2)`.
pub fn unshare(flags: i32) -> Result<(), Errno> {
    sys!(libc::SYS_unshare, flags as usize).map(drop)
}

/// `setsid(2)`.
pub fn setsid() -> Result<(), Errno> {
    sys!(libc::SYS_setsid).map(drop)
}

/// `setgroups(0, NULL)`: drops every supplementary group.
pub fn clear_groups() -> Result<(), Errno> {
    sys!(libc::SYS_setgroups, 0, 0).map(drop)
}

/// `sethostname(2)`.
pub fn sethostname(name: &[u8]) -> Result<(), Errno> {
    sys!(libc::SYS_sethostname, name.as_ptr() as usize, name.len()).map(drop)
}

/// `socket(2)`.
pub fn socket(domain: i32, kind: i32, protocol: i32) -> Result<i32, Errno> {
    sys!(libc::SYS_socket, domain as usize, kind as usize, protocol as usize).map(|fd| fd as i32)
}

/// Brings the loopback interface up: `SIOCSIFFLAGS` on `lo` with `IFF_UP | IFF_RUNNING`,
/// through a datagram socket of the jail's network namespace.
pub fn loopback_up() -> Result<(), Errno> {
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)?;
    // struct ifreq: a 16-byte name, then a union whose first member (flags) is a short.
    let mut ifreq = [0u8; 40];
    ifreq[0] = b'l';
    ifreq[1] = b'o';
    let flags = (libc::IFF_UP | libc::IFF_RUNNING) as u16;
    let bytes = flags.to_ne_bytes();
    ifreq[16] = bytes[0];
    ifreq[17] = bytes[1];
    let set = sys!(libc::SYS_ioctl, fd as usize, libc::SIOCSIFFLAGS as usize, ifreq.as_mut_ptr() as usize).map(drop);
    let _ = close(fd);
    set
}

/// `prlimit64(0, resource, {cur, max}, NULL)`: sets one of this process's rlimits.
pub fn setrlimit(resource: u32, cur: u64, max: u64) -> Result<(), Errno> {
    let limit: [u64; 2] = [cur, max];
    sys!(libc::SYS_prlimit64, 0, resource as usize, limit.as_ptr() as usize, 0).map(drop)
}

/// `prctl(2)`.
pub fn prctl(option: i32, a2: usize, a3: usize, a4: usize, a5: usize) -> Result<usize, Errno> {
    sys!(libc::SYS_prctl, option as usize, a2, a3, a4, a5)
}

/// `capset(2)` to empty effective, permitted and inheritable sets (version 3, both words).
pub fn capset_none() -> Result<(), Errno> {
    // struct __user_cap_header_struct { u32 version; i32 pid; }
    let header: [u32; 2] = [0x2008_0522, 0];
    // Two struct __user_cap_data_struct { u32 effective, permitted, inheritable; }, zeroed.
    let data: [u32; 6] = [0; 6];
    sys!(libc::SYS_capset, header.as_ptr() as usize, data.as_ptr() as usize).map(drop)
}

/// `struct landlock_path_beneath_attr` (packed: 12 bytes).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `landlock_add_rule(ruleset, LANDLOCK_RULE_PATH_BENEATH, {access, fd}, 0)`.
pub fn landlock_add_path_rule(ruleset: i32, access: u64, parent_fd: i32) -> Result<(), Errno> {
    let attr = PathBeneathAttr { allowed_access: access, parent_fd };
    sys!(libc::SYS_landlock_add_rule, ruleset as usize, 1, &attr as *const PathBeneathAttr as usize, 0).map(drop)
}

/// `landlock_restrict_self(ruleset, 0)`.
pub fn landlock_restrict_self(ruleset: i32) -> Result<(), Errno> {
    sys!(libc::SYS_landlock_restrict_self, ruleset as usize, 0).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)`. A positive result (the id of a
/// thread that could not be synchronised under TSYNC) is an error too.
pub fn seccomp_filter(flags: u64, program: &libc::sock_fprog) -> Result<(), Errno> {
    match sys!(
        libc::SYS_seccomp,
        libc::SECCOMP_SET_MODE_FILTER as usize,
        flags as usize,
        program as *const libc::sock_fprog as usize
    ) {
        Ok(0) => Ok(()),
        Ok(_) => Err(libc::ESRCH),
        Err(errno) => Err(errno),
    }
}

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: every descriptor from `first` up is
/// closed by the next successful `execve`.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    sys!(libc::SYS_close_range, first as usize, u32::MAX as usize, libc::CLOSE_RANGE_CLOEXEC as usize).map(drop)
}

/// `close_range(first, last, 0)`: closes every descriptor from `first` to `last`.
pub fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    sys!(libc::SYS_close_range, first as usize, last as usize, 0).map(drop)
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, lowest)`: a close-on-exec copy of `fd` numbered `lowest` or
/// above.
pub fn dup_at_least(fd: i32, lowest: i32) -> Result<i32, Errno> {
    sys!(libc::SYS_fcntl, fd as usize, libc::F_DUPFD_CLOEXEC as usize, lowest as usize).map(|fd| fd as i32)
}

/// The most descriptors [`receive_with_fds`] takes in one message.
pub const MAX_RECEIVED: usize = 40;

/// Receives one message from `socket` into `data`, with the descriptors it carries put in
/// `fds` (close-on-exec). Returns the bytes and descriptors received; a message whose
/// descriptors did not fit is an error (`EMSGSIZE`: they were closed by the kernel).
pub fn receive_with_fds(socket: i32, data: &mut [u8], fds: &mut [i32; MAX_RECEIVED]) -> Result<(usize, usize), Errno> {
    // Room for a control message of MAX_RECEIVED descriptors: a header of 16 bytes and 4
    // bytes each.
    let mut control = [0u64; 2 + MAX_RECEIVED / 2];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: msghdr is plain data; every pointer set below points into this frame.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = std::mem::size_of_val(&control);
    let received = sys!(
        libc::SYS_recvmsg,
        socket as usize,
        &mut message as *mut libc::msghdr as usize,
        libc::MSG_CMSG_CLOEXEC as usize
    )?;
    if message.msg_flags & (libc::MSG_CTRUNC | libc::MSG_TRUNC) != 0 {
        return Err(libc::EMSGSIZE);
    }
    let mut count = 0;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled in, within
    // msg_controllen; each SCM_RIGHTS payload is an array of ints.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(header).cast::<i32>();
                for index in 0..bytes / 4 {
                    let fd = data.add(index).read_unaligned();
                    match fds.get_mut(count) {
                        Some(slot) => *slot = fd,
                        None => return Err(libc::EMSGSIZE),
                    }
                    count += 1;
                }
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    Ok((received, count))
}

/// `futex(word, FUTEX_WAIT_PRIVATE, expected)`: sleeps while `*word == expected` (the
/// caller shares the waker's memory).
pub fn futex_wait(word: &std::sync::atomic::AtomicU32, expected: u32) -> Result<(), Errno> {
    sys!(
        libc::SYS_futex,
        word.as_ptr() as usize,
        (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as usize,
        expected as usize,
        0
    )
    .map(drop)
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 share this layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Sets signal `signal`'s disposition to `SIG_DFL`.
pub fn default_signal(signal: i32) -> Result<(), Errno> {
    let action = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
    sys!(libc::SYS_rt_sigaction, signal as usize, &action as *const KernelSigaction as usize, 0, 8).map(drop)
}

/// Unblocks every signal.
pub fn unblock_signals() -> Result<(), Errno> {
    let empty: u64 = 0;
    sys!(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK as usize, &empty as *const u64 as usize, 0, 8).map(drop)
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &CStr, argv: *const *const libc::c_char, envp: *const *const libc::c_char) -> Errno {
    match sys!(libc::SYS_execve, ptr(path), argv as usize, envp as usize) {
        Ok(_) => 0,
        Err(errno) => errno,
    }
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs the file open at `fd`; returns
/// only on failure.
pub fn execveat_fd(fd: i32, argv: *const *const libc::c_char, envp: *const *const libc::c_char) -> Errno {
    let empty = c"";
    match sys!(libc::SYS_execveat, fd as usize, ptr(empty), argv as usize, envp as usize, libc::AT_EMPTY_PATH as usize)
    {
        Ok(_) => 0,
        Err(errno) => errno,
    }
}

/// `exit_group(2)`: never returns.
pub fn exit_group(code: i32) -> ! {
    loop {
        let _ = sys!(libc::SYS_exit_group, code as usize);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_come_back_as_errno_without_touching_libc_errno() {
        // SAFETY: setting errno to a known value; read back below on the same thread.
        unsafe { *libc::__errno_location() = 1234 };
        assert_eq!(chdir(c"/nonexistent/airlock/path"), Err(libc::ENOENT));
        // SAFETY: reading this thread's errno.
        assert_eq!(unsafe { *libc::__errno_location() }, 1234);
        assert_eq!(close(-1), Err(libc::EBADF));
    }
}
