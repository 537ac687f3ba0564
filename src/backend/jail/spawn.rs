//! The jail's ordered set-up: one `clone` with every namespace flag (the network namespace
//! comes from the pool when it can, and the mount namespace is a copy of the template's,
//! when there is one: the cloning thread enters each for the clone); the child then waits
//! for its call (at once, or later from the pool of ready jails), and one straight function
//! finishes its root (or, cloned without a template, enters a new mount namespace and
//! builds it), applies the call's precomputed plans and execs the tool.
//!
//! Owns: [`ChildPlan`] (everything the child needs, prepared by the parent as C strings
//! and numbers), the child's stack, [`spawn`] (the `clone`, and the cloning thread's trip
//! into a pooled network namespace and back), the hand-over of a call ([`Call`], sent on
//! the child's socket with its descriptors), the child's set-up ([`set_up_and_exec`]) and
//! the report of a failed step ([`SetUpFailure`]).
//! Must not: allocate, lock, log or touch libc state in the child. The child shares the
//! parent's memory (`CLONE_VM`, like `posix_spawn`: no page tables are copied, which is
//! what makes a jail cheap from a large, multi-threaded process); it only reads the plan,
//! writes its own stack, and makes raw system calls (`sys`). A failed step is written to
//! a close-on-exec pipe as (step, index, errno) and the child exits 127; a successful
//! exec closes the pipe, which tells the parent the tool runs.

use std::{
    ffi::{CStr, CString, c_int, c_void},
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    ptr,
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
};

use super::{
    netns::PooledNetns,
    plan::{Base, MAX_DETACHED, MountOp, PREPARED_ATTRS, PROC_OPTIONS, RootPlan, SYSTEM_ATTRS, Tree, attr},
    seccomp::CompiledSeccomp,
    sys,
    template::Template,
};

/// The child's stack. It is the only memory the child writes; a guard page below it turns
/// an overflow into a fault instead of a write into the parent's heap.
const STACK_SIZE: usize = 256 * 1024;

/// The host name inside the jail (its own UTS namespace).
const HOSTNAME: &[u8] = b"airlock";

/// One step of the set-up, as reported when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Step {
    Signals = 1,
    DeathSignal,
    Session,
    CloseInherited,
    Receive,
    Stdio,
    Groups,
    CgroupNamespace,
    MountNamespace,
    MountPrivate,
    Mount,
    SealRoot,
    PivotRoot,
    DetachOldRoot,
    WorkingDir,
    Hostname,
    Loopback,
    NoNewPrivs,
    LandlockRule,
    LandlockRestrict,
    Rlimit,
    CapabilityBounding,
    CapabilityAmbient,
    SecureBits,
    Capabilities,
    CloseFds,
    Seccomp,
    Exec,
    StageRoot,
    MountProc,
}

impl Step {
    const ALL: [Step; 30] = [
        Step::Signals,
        Step::DeathSignal,
        Step::Session,
        Step::CloseInherited,
        Step::Receive,
        Step::Stdio,
        Step::Groups,
        Step::CgroupNamespace,
        Step::MountNamespace,
        Step::MountPrivate,
        Step::Mount,
        Step::SealRoot,
        Step::PivotRoot,
        Step::DetachOldRoot,
        Step::WorkingDir,
        Step::Hostname,
        Step::Loopback,
        Step::NoNewPrivs,
        Step::LandlockRule,
        Step::LandlockRestrict,
        Step::Rlimit,
        Step::CapabilityBounding,
        Step::CapabilityAmbient,
        Step::SecureBits,
        Step::Capabilities,
        Step::CloseFds,
        Step::Seccomp,
        Step::Exec,
        Step::StageRoot,
        Step::MountProc,
    ];

    /// What the step does, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Signals => "reset signal handlers",
            Step::DeathSignal => "set the parent-death signal",
            Step::Session => "start a new session",
            Step::CloseInherited => "close the descriptors inherited from airlock",
            Step::Receive => "receive the call (its plan and descriptors)",
            Step::Stdio => "set up stdin, stdout and stderr",
            Step::Groups => "drop supplementary groups",
            Step::CgroupNamespace => "enter a new cgroup namespace",
            Step::MountNamespace => "enter a new mount namespace",
            Step::MountPrivate => "make the mount tree private",
            Step::Mount => "build the minimal root",
            Step::SealRoot => "make the new root read-only",
            Step::PivotRoot => "pivot_root into the new root",
            Step::DetachOldRoot => "detach the host's root",
            Step::WorkingDir => "change to the working directory",
            Step::Hostname => "set the host name",
            Step::Loopback => "bring up loopback",
            Step::Rlimit => "set an rlimit",
            Step::NoNewPrivs => "set no_new_privs",
            Step::LandlockRule => "add a Landlock rule",
            Step::LandlockRestrict => "enforce Landlock",
            Step::CapabilityBounding => "empty the capability bounding set",
            Step::CapabilityAmbient => "clear ambient capabilities",
            Step::SecureBits => "lock the securebits",
            Step::Capabilities => "drop all capabilities",
            Step::CloseFds => "close inherited file descriptors",
            Step::Seccomp => "install the seccomp filter",
            Step::Exec => "execute the program",
            Step::StageRoot => "put the prepared root in place",
            Step::MountProc => "mount a fresh /proc",
        }
    }

    fn from_code(code: u16) -> Option<Step> {
        Step::ALL.into_iter().find(|s| *s as u16 == code)
    }
}

/// A step of the child's set-up that failed: which, at which index of its list (the mount
/// op, the rlimit, the Landlock rule), and the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetUpFailure {
    pub step: Step,
    pub index: u16,
    pub errno: i32,
}

impl SetUpFailure {
    fn new(step: Step, index: usize, errno: i32) -> SetUpFailure {
        SetUpFailure { step, index: u16::try_from(index).unwrap_or(u16::MAX), errno }
    }

    /// The 8 bytes the child writes to the report pipe.
    fn encode(self) -> [u8; 8] {
        let mut bytes = [0u8; 8];
        let (step, index, errno) =
            ((self.step as u16).to_ne_bytes(), self.index.to_ne_bytes(), self.errno.to_ne_bytes());
        bytes[0..2].copy_from_slice(&step);
        bytes[2..4].copy_from_slice(&index);
        bytes[4..8].copy_from_slice(&errno);
        bytes
    }

    /// Reads what the child wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<SetUpFailure> {
        let step = Step::from_code(u16::from_ne_bytes(bytes.get(0..2)?.try_into().ok()?))?;
        let index = u16::from_ne_bytes(bytes.get(2..4)?.try_into().ok()?);
        let errno = i32::from_ne_bytes(bytes.get(4..8)?.try_into().ok()?);
        Some(SetUpFailure { step, index, errno })
    }
}

/// A NULL-terminated array of C strings (argv, envp) that owns its strings.
#[derive(Debug)]
pub struct CStringArray {
    _strings: Vec<CString>,
    pointers: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into the heap buffers of `_strings`, which this value owns
// and never changes; sharing or sending it shares read-only bytes.
unsafe impl Send for CStringArray {}
// SAFETY: see Send: nothing is ever written through the pointers.
unsafe impl Sync for CStringArray {}

impl CStringArray {
    /// The array of `strings`.
    pub fn new(strings: Vec<CString>) -> CStringArray {
        let mut pointers: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        pointers.push(ptr::null());
        CStringArray { _strings: strings, pointers }
    }

    fn as_ptr(&self) -> *const *const libc::c_char {
        self.pointers.as_ptr()
    }
}

/// A compiled seccomp profile as the child installs it: one `sock_fprog` per BPF program,
/// pointing into the compiled programs this value keeps alive.
#[derive(Debug)]
pub struct SeccompPlan {
    _compiled: CompiledSeccomp,
    programs: Vec<libc::sock_fprog>,
    flags: u64,
}

// SAFETY: the sock_fprog pointers point into the instructions owned (through an Arc) by
// `_compiled`, which this value keeps and nobody mutates.
unsafe impl Send for SeccompPlan {}
// SAFETY: see Send: read-only.
unsafe impl Sync for SeccompPlan {}

impl SeccompPlan {
    /// The programs of `compiled`, ready to install. `None` when one is too long for BPF.
    pub fn new(compiled: &CompiledSeccomp) -> Option<SeccompPlan> {
        let mut programs = Vec::new();
        for instructions in compiled.programs() {
            let len = u16::try_from(instructions.len()).ok()?;
            programs.push(libc::sock_fprog { len, filter: instructions.as_ptr().cast_mut() });
        }
        Some(SeccompPlan { _compiled: compiled.clone(), programs, flags: compiled.install_flags() })
    }
}

/// Everything the child does, decided by the parent.
#[derive(Debug)]
pub struct ChildPlan {
    /// The minimal root.
    pub root: RootPlan,
    /// rlimits as (resource, value): soft = hard = value.
    pub rlimits: Vec<(u32, u64)>,
    /// The Landlock rules the child adds (path inside the jail, rights), when Landlock is on.
    pub landlock_rules: Vec<(CString, u64)>,
    /// The executable's path (used when there is no pinned descriptor).
    pub executable: CString,
    /// argv.
    pub argv: CStringArray,
    /// envp: exactly the grant's environment.
    pub envp: CStringArray,
    /// Drop the supplementary groups (possible only when the parent could allow
    /// setgroups in the gid map, i.e. as root).
    pub clear_groups: bool,
    /// Enter a new cgroup namespace once in the call's cgroup.
    pub cgroup_namespace: bool,
    /// The seccomp filters, installed last.
    pub seccomp: Option<SeccompPlan>,
}

/// The child's descriptors once it has its call (numbers in its own table).
#[derive(Debug, Clone, Copy)]
struct ChildFds {
    stdin: i32,
    stdout: i32,
    stderr: i32,
    /// The Landlock ruleset, or -1.
    landlock: i32,
    /// The prepared /etc (a detached tmpfs), or -1.
    etc: i32,
    /// The prepared /dev (a detached tmpfs), or -1.
    dev: i32,
    /// The pinned executable, or -1.
    executable: i32,
    /// The prepared root (a detached tmpfs), or -1.
    root: i32,
    /// The call's detached binds ([`MountOp::Attach`]), by index; -1 past the last.
    detached: [i32; MAX_DETACHED],
}

/// What a cloned child starts from, until its call arrives: the two descriptors it keeps of
/// the parent's table, and whether its network namespace is its own. The owner of the child
/// keeps it alive until the child is reaped (the child reads it through `clone`'s argument).
#[derive(Debug)]
pub struct Waiting {
    /// The child's end of its call socket (`SOCK_SEQPACKET`, close-on-exec): the parent
    /// sends the [`Call`] on it.
    pub socket: i32,
    /// Write end of the report pipe (close-on-exec): a failed step is written here, and a
    /// successful exec closes it.
    pub report: i32,
    /// Written by [`spawn`] just before the clone: true when the clone makes the child's
    /// network namespace (its loopback is down: the child brings it up), false when the
    /// child inherits a pooled one (loopback already up, and the child has no capability
    /// over it).
    pub own_netns: AtomicBool,
    /// Written by [`spawn`] just before the clone: true when the child is cloned in the
    /// template's mount namespace (it starts on the prepared root, with a copy of that
    /// namespace of its own), false when it shares airlock's until its call.
    pub templated: AtomicBool,
    /// Set to 1 once the call was sent; the child sleeps on it (a futex) until then.
    called: AtomicU32,
}

impl Waiting {
    /// A child that will keep `socket` and `report`.
    pub fn new(socket: i32, report: i32) -> Waiting {
        Waiting {
            socket,
            report,
            own_netns: AtomicBool::new(true),
            templated: AtomicBool::new(false),
            called: AtomicU32::new(0),
        }
    }

    /// Sends `call` on `socket` (airlock's end of this child's socket) and wakes the child.
    ///
    /// Why a futex and not the socket itself: a socket or pipe wakes its reader as a
    /// "synchronous" wake-up, which the scheduler takes as a hint to run the reader on the
    /// waker's CPU; the jail would then set up on the CPU airlock goes on running on. A
    /// futex wake-up puts it on an idle CPU, where its own clone would have put it.
    pub fn hand(&self, call: &Call, socket: RawFd) -> io::Result<()> {
        call.send(socket)?;
        self.called.store(1, Ordering::SeqCst);
        // SAFETY: FUTEX_WAKE on a word of this live value; the child shares this memory.
        unsafe { libc::syscall(libc::SYS_futex, self.called.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
        Ok(())
    }

    /// The child's side: sleeps until the call was sent.
    fn wait(&self) -> Result<(), sys::Errno> {
        while self.called.load(Ordering::SeqCst) == 0 {
            match sys::futex_wait(&self.called, 0) {
                Ok(()) | Err(libc::EAGAIN) | Err(libc::EINTR) => {}
                Err(errno) => return Err(errno),
            }
        }
        Ok(())
    }
}

/// A call as handed to a waiting child: where its plan is (the child shares the parent's
/// memory) and its descriptors, which travel with the message (`SCM_RIGHTS`): the child's
/// descriptor table is its own, copied when it was cloned, perhaps long before the call.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// Kept alive by the parent until the child is reaped.
    pub plan: *const ChildPlan,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// The Landlock ruleset, or -1.
    pub landlock: RawFd,
    /// The prepared /etc, or -1.
    pub etc: RawFd,
    /// The prepared /dev, or -1.
    pub dev: RawFd,
    /// The pinned executable, or -1.
    pub executable: RawFd,
    /// The prepared root, or -1.
    pub root: RawFd,
    /// The detached binds ([`MountOp::Attach`]), by index: the first `detached_count`.
    pub detached: [RawFd; MAX_DETACHED],
    pub detached_count: usize,
}

// SAFETY: the plan pointer is only dereferenced by the child, and the parent keeps the
// plan alive and unchanged until the child is reaped; the rest are numbers.
unsafe impl Send for Call {}

// Every descriptor a call sends fits in what the child receives: the 8 fixed ones and the
// detached binds.
const _: () = assert!(sys::MAX_RECEIVED >= 8 + MAX_DETACHED);

/// The bytes of a call message: the plan's address, one bit per fixed descriptor sent, and
/// the number of detached binds (their descriptors follow the fixed ones).
const CALL_BYTES: usize = 10;

impl Call {
    /// The call's descriptors in the order they travel (absent ones are -1).
    fn descriptors(&self) -> [RawFd; 8] {
        [self.stdin, self.stdout, self.stderr, self.landlock, self.etc, self.dev, self.executable, self.root]
    }

    /// Sends the call on `socket` (the parent's end of a waiting child's socket). Fails when
    /// the child is gone (`EPIPE`, `ECONNRESET`): it never received it.
    pub fn send(&self, socket: RawFd) -> io::Result<()> {
        let descriptors = self.descriptors();
        let detached = self.detached.get(..self.detached_count).ok_or(io::ErrorKind::InvalidInput)?;
        let mut data = [0u8; CALL_BYTES];
        data[..8].copy_from_slice(&(self.plan as usize as u64).to_ne_bytes());
        let mut sent: Vec<RawFd> = Vec::with_capacity(descriptors.len() + detached.len());
        for (bit, fd) in descriptors.iter().enumerate() {
            if *fd >= 0 {
                data[8] |= 1 << bit;
                sent.push(*fd);
            }
        }
        data[9] = u8::try_from(detached.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        sent.extend_from_slice(detached);
        let payload = std::mem::size_of_val(sent.as_slice());
        // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic on a length.
        let (space, len) = unsafe { (libc::CMSG_SPACE(payload as u32) as usize, libc::CMSG_LEN(payload as u32)) };
        let mut control = vec![0u64; space.div_ceil(8)];
        let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
        // SAFETY: msghdr is plain data; every pointer set below points into this frame or
        // into `control`, which outlives the sendmsg.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = space;
        // SAFETY: the control buffer holds one header of `len` bytes (CMSG_SPACE >= CMSG_LEN),
        // whose data is the array of descriptors copied in.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&message);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = len as _;
            ptr::copy_nonoverlapping(sent.as_ptr(), libc::CMSG_DATA(header).cast::<RawFd>(), sent.len());
        }
        loop {
            // SAFETY: sends the message built above; MSG_NOSIGNAL: a gone child is an error,
            // not a SIGPIPE.
            let ret = unsafe { libc::sendmsg(socket, &message, libc::MSG_NOSIGNAL) };
            if ret == CALL_BYTES as isize {
                return Ok(());
            }
            let error = if ret < 0 { io::Error::last_os_error() } else { io::ErrorKind::WriteZero.into() };
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// The child's side of [`Call::send`]: blocks until the call comes, and returns its plan
/// and the descriptors as numbered in the child's table (stdio's numbered 3 or above).
fn receive(waiting: &Waiting) -> Result<(*const ChildPlan, ChildFds), SetUpFailure> {
    let fail = |errno| SetUpFailure::new(Step::Receive, 0, errno);
    let mut data = [0u8; CALL_BYTES + 1];
    let mut fds = [-1; sys::MAX_RECEIVED];
    let (len, count) = loop {
        match sys::receive_with_fds(waiting.socket, &mut data, &mut fds) {
            Err(libc::EINTR) => {}
            Err(errno) => return Err(fail(errno)),
            Ok(received) => break received,
        }
    };
    match len {
        // The parent dropped the child without a call.
        0 => return Err(fail(libc::EPIPE)),
        CALL_BYTES => {}
        _ => return Err(fail(libc::EPROTO)),
    }
    let mut address = [0u8; 8];
    address.copy_from_slice(&data[..8]);
    let plan = u64::from_ne_bytes(address) as usize as *const ChildPlan;
    let mut slots = [-1; 8];
    let mut next = 0;
    for (bit, slot) in slots.iter_mut().enumerate() {
        if data[8] & (1 << bit) != 0 {
            *slot = *fds.get(next).filter(|_| next < count).ok_or_else(|| fail(libc::EPROTO))?;
            next += 1;
        }
    }
    let mut detached = [-1; MAX_DETACHED];
    let detached_count = usize::from(data[9]);
    if detached_count > MAX_DETACHED || next + detached_count != count || slots[..3].contains(&-1) {
        return Err(fail(libc::EPROTO));
    }
    detached[..detached_count].copy_from_slice(&fds[next..count]);
    // Where the parent's stdio was closed, a received descriptor may be numbered 0-2: move
    // it above them, so that putting stdio in place never overwrites another.
    for slot in &mut slots {
        if (0..3).contains(slot) {
            *slot = sys::dup_at_least(*slot, 3).map_err(fail)?;
        }
    }
    for slot in &mut detached[..detached_count] {
        if (0..3).contains(slot) {
            *slot = sys::dup_at_least(*slot, 3).map_err(fail)?;
        }
    }
    let [stdin, stdout, stderr, landlock, etc, dev, executable, root] = slots;
    Ok((plan, ChildFds { stdin, stdout, stderr, landlock, etc, dev, executable, root, detached }))
}

/// Why [`spawn`] failed.
#[derive(Debug)]
pub enum SpawnError {
    /// `clone` failed; the calling thread is as it was.
    Clone(io::Error),
    /// The calling thread entered a pooled network namespace (or the template's mount
    /// namespace) for the clone and cannot go back to the host's. Any child was killed and
    /// reaped. The thread must not run anything else (its signals stay blocked): the caller
    /// retires it, or ends the process.
    Stranded(io::Error),
}

/// The child's stack: an anonymous mapping with a guard page at its low end.
#[derive(Debug)]
pub struct ChildStack {
    base: *mut c_void,
    size: usize,
}

// SAFETY: the mapping is owned by this value and only unmapped by its Drop.
unsafe impl Send for ChildStack {}
// SAFETY: the parent never reads or writes the mapping; the child writes it.
unsafe impl Sync for ChildStack {}

impl ChildStack {
    /// Maps a stack.
    pub fn new() -> io::Result<ChildStack> {
        let page = 4096;
        let size = STACK_SIZE + page;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, size };
        // SAFETY: the lowest page of the mapping made above becomes the guard page.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    fn top(&self) -> *mut c_void {
        // The stack grows down from the end of the mapping (16-byte aligned: page aligned).
        self.base.wrapping_byte_add(self.size)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in new(); the child that used it has
        // been reaped (the owner guarantees it).
        unsafe { libc::munmap(self.base, self.size) };
    }
}

/// Clones the child: new user, pid, net, ipc and uts namespaces in one `clone` (and the
/// mount namespace with a template; without one it comes with the call: see
/// [`set_up_and_exec`]), sharing the parent's memory until exec, with every signal blocked
/// across the call so that no parent handler can run on the child's stack. Returns the pid
/// and a pidfd.
///
/// With `netns`, the calling thread enters that pooled network namespace, clones without
/// `CLONE_NEWNET` (the child inherits the thread's namespace), and goes back to the host's;
/// signals stay blocked throughout, so no handler runs in the jail's network either. The
/// pooled namespace's descriptor is closed before returning: the jail holds the only
/// reference. When the thread cannot enter it, the clone makes a new namespace as without
/// one; when it cannot go back, see [`SpawnError::Stranded`].
///
/// With `template`, the calling thread also enters the template's mount namespace and
/// clones with `CLONE_NEWNS` (the child gets a copy of it: see `template`), then comes
/// back; when it cannot enter, the child shares airlock's namespace until its call
/// ([`Waiting::templated`] says which); when it cannot come back, the child is killed and
/// the thread is stranded as above.
pub fn spawn(
    waiting: &Waiting,
    stack: &ChildStack,
    netns: Option<PooledNetns>,
    template: Option<&Template>,
) -> Result<(i32, OwnedFd), SpawnError> {
    let mut flags = libc::CLONE_VM
        | libc::CLONE_PIDFD
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::SIGCHLD;
    // SAFETY: sigset_t is plain data; sigfillset initialises it.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to local sigsets.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let pooled = netns.filter(|netns| netns.enter().is_ok());
    if pooled.is_none() {
        flags |= libc::CLONE_NEWNET;
    }
    let entered = template.and_then(|template| template.enter().ok());
    if entered.is_some() {
        flags |= libc::CLONE_NEWNS;
    }
    // The child reads them after the clone, which orders these writes before its start.
    waiting.own_netns.store(pooled.is_none(), Ordering::SeqCst);
    waiting.templated.store(entered.is_some(), Ordering::SeqCst);
    let mut pidfd: c_int = -1;
    // SAFETY: child_main is an extern "C" fn that never returns into Rust code of the
    // parent; the stack is a live mapping whose top is passed; `waiting` outlives the
    // child's use of it (the caller keeps it until it has reaped the child). CLONE_PIDFD
    // stores the pidfd through the parent_tid argument.
    let pid = unsafe {
        libc::clone(child_main, stack.top(), flags, waiting as *const Waiting as *mut c_void, &mut pidfd as *mut c_int)
    };
    let error = io::Error::last_os_error();
    // SAFETY: with CLONE_PIDFD the kernel returned a new descriptor that only we own.
    let pidfd = (pid > 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    if let Some(stranded) = entered.and_then(|entered| entered.leave().err()) {
        if let Some(pidfd) = &pidfd {
            kill_and_reap(pid, pidfd);
        }
        return Err(SpawnError::Stranded(stranded));
    }
    if let Some(stranded) = pooled.as_ref().and_then(|netns| netns.leave().err()) {
        if let Some(pidfd) = &pidfd {
            kill_and_reap(pid, pidfd);
        }
        // Signals stay blocked: nothing more runs on this thread in the jail's network.
        return Err(SpawnError::Stranded(stranded));
    }
    // The jail alone holds its network namespace now.
    drop(pooled);
    // SAFETY: restores this thread's signal mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
    match pidfd {
        Some(pidfd) => Ok((pid, pidfd)),
        None => Err(SpawnError::Clone(error)),
    }
}

/// Kills a child that must not run (it waits for its call) and reaps it, so that its stack
/// can be freed.
pub fn kill_and_reap(pid: i32, pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal on our own pidfd with a NULL info; wait4 on our own child
    // with a local status and no rusage.
    unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, ptr::null::<c_void>(), 0);
        let mut status = 0;
        while libc::wait4(pid, &mut status, libc::__WALL, ptr::null_mut()) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the &Waiting given to clone in spawn(), kept alive by the parent
    // until this process is reaped.
    let waiting = unsafe { &*(arg as *const Waiting) };
    let failure = match wait_for_call(waiting) {
        Ok((plan, fds)) => {
            let (own_netns, templated) =
                (waiting.own_netns.load(Ordering::SeqCst), waiting.templated.load(Ordering::SeqCst));
            // SAFETY: the plan's address came from the parent on a socket only it holds the
            // other end of; the parent keeps the plan alive until this process is reaped.
            set_up_and_exec(unsafe { &*plan }, &fds, own_netns, templated)
        }
        Err(failure) => failure,
    };
    let _ = sys::write_all(waiting.report, &failure.encode());
    sys::exit_group(127)
}

/// What a child does before its call: it may wait long (a ready jail waits in the pool).
///
/// 1. Signal handlers first: until they are reset, a signal would run the parent's
///    handler on this stack, in the parent's memory.
/// 2. Parent-death signal and a new session, so that nothing outlives airlock and no
///    terminal is reachable.
/// 3. Every inherited descriptor but stdio, the socket and the report pipe is closed: a
///    waiting child must not keep the parent's files open (a client's connection that
///    the service closed would stay open in it).
/// 4. What needs our namespaces' capabilities but nothing of the call, off the call's
///    path: the host name (CAP_SYS_ADMIN in our uts namespace), the capability bounding
///    set emptied (CAP_SETPCAP; it only bounds what an exec may gain, not the set-up's own
///    capabilities) and the ambient set cleared.
/// 5. Wait for the call. The parent sends it once our uid/gid maps are written (before we
///    create any file) and we are in the call's cgroup (before we enter a cgroup
///    namespace, whose root is the cgroup we are in, and before the tool can allocate
///    anything).
fn wait_for_call(waiting: &Waiting) -> Result<(*const ChildPlan, ChildFds), SetUpFailure> {
    let fail = |step, errno| SetUpFailure::new(step, 0, errno);
    for signal in 1..=64 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            let _ = sys::default_signal(signal);
        }
    }
    sys::unblock_signals().map_err(|errno| fail(Step::Signals, errno))?;
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as usize, 0, 0, 0).map_err(|e| fail(Step::DeathSignal, e))?;
    sys::setsid().map_err(|errno| fail(Step::Session, errno))?;
    let (low, high) = (waiting.socket.min(waiting.report), waiting.socket.max(waiting.report));
    let close = |first: i32, last: i32| {
        if first <= last { sys::close_range(first as u32, last as u32) } else { Ok(()) }
    };
    close(3, low - 1)
        .and_then(|()| close(low + 1, high - 1))
        .and_then(|()| sys::close_range(high as u32 + 1, u32::MAX))
        .map_err(|errno| fail(Step::CloseInherited, errno))?;
    sys::sethostname(HOSTNAME).map_err(|errno| fail(Step::Hostname, errno))?;
    for capability in 0..64usize {
        match sys::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) {
            Ok(_) => {}
            // Past the kernel's last capability.
            Err(libc::EINVAL) => break,
            Err(errno) => return Err(SetUpFailure::new(Step::CapabilityBounding, capability, errno)),
        }
    }
    sys::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as usize, 0, 0, 0)
        .map_err(|errno| fail(Step::CapabilityAmbient, errno))?;
    waiting.wait().map_err(|errno| fail(Step::Receive, errno))?;
    receive(waiting)
}

/// The privileged set-up of a child that has its call, in order; returns only if a step
/// failed.
///
/// Why this order:
/// 1. Stdio from the call's pipes (the signals, session and descriptors were dealt with
///    while waiting: [`wait_for_call`]).
/// 2. Supplementary groups, a cgroup namespace (we are in the call's cgroup).
/// 3. Mounts while we still hold every capability of our user namespace. Cloned in the
///    template, our mount namespace is a copy of it: we are on the prepared root already
///    and mount our /proc over the template's (which makes it "fully visible", as the
///    kernel requires). Otherwise a mount namespace of our own is copied from airlock's
///    now, made private, and the prepared root staged (with /proc, while the host's is
///    still visible) and pivoted into, or a root of our own built (staging tmpfs, binds,
///    /proc last) and sealed read-only before the pivot; the host's root is detached.
///    Then the call's steps: /proc's host-wide parts read-only, /tmp, the grant's binds
///    (attached from the parent's detached copies on the prepared root), protected paths
///    last. Then the working directory.
/// 4. Loopback needs CAP_NET_ADMIN in our network namespace; only when the clone made it:
///    a pooled one (`own_netns` false) has it up already, and is owned by airlock's user
///    namespace, where we have no capability (so neither we nor the tool can reconfigure
///    it).
/// 5. no_new_privs, then Landlock (which needs it for an unprivileged process, and
///    forbids mounts: it comes after the last mount).
/// 6. rlimits, after the last descriptor the set-up opens (a low `open_files` would
///    otherwise make that open fail); lowering needs no capability, and CPU time spent
///    after this counts.
/// 7. Capabilities (the bounding and ambient sets were emptied while waiting):
///    securebits (so that exec as uid 0 gains nothing), then the sets themselves.
/// 8. Every descriptor above 2 is marked close-on-exec (the report pipe still works).
/// 9. seccomp last: it constrains only the exec and the tool, never our set-up.
/// 10. exec.
fn set_up_and_exec(plan: &ChildPlan, fds: &ChildFds, own_netns: bool, templated: bool) -> SetUpFailure {
    macro_rules! step {
        ($step:expr, $index:expr, $call:expr) => {
            if let Err(errno) = $call {
                return SetUpFailure::new($step, $index, errno);
            }
        };
    }

    // 1. Stdio.
    step!(Step::Stdio, 0, sys::dup3(fds.stdin, 0));
    step!(Step::Stdio, 1, sys::dup3(fds.stdout, 1));
    step!(Step::Stdio, 2, sys::dup3(fds.stderr, 2));

    // 2. Groups, cgroup namespace.
    if plan.clear_groups {
        step!(Step::Groups, 0, sys::clear_groups());
    }
    if plan.cgroup_namespace {
        step!(Step::CgroupNamespace, 0, sys::unshare(libc::CLONE_NEWCGROUP));
    }

    // 3. The minimal root.
    let pivot = |staging: &CStr| -> Result<(), SetUpFailure> {
        let at = |step, index| move |errno| SetUpFailure::new(step, index, errno);
        sys::chdir(staging).map_err(at(Step::PivotRoot, 0))?;
        sys::pivot_root(c".", c".").map_err(at(Step::PivotRoot, 1))?;
        sys::umount2(c".", libc::MNT_DETACH).map_err(at(Step::DetachOldRoot, 0))
    };
    let proc_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    match &plan.root.base {
        // Cloned in the template: on the prepared root already, in a mount namespace of
        // our own. Our /proc covers the template's.
        Base::Shared { .. } if templated => {
            step!(
                Step::MountProc,
                0,
                sys::mount(Some(c"proc"), c"/proc", Some(c"proc"), proc_flags, Some(PROC_OPTIONS))
            );
        }
        Base::Shared { staging, proc } => {
            step!(Step::MountNamespace, 0, sys::unshare(libc::CLONE_NEWNS));
            step!(Step::MountPrivate, 0, sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None));
            // Not through `apply` with a MountOp: building one would allocate (a CString).
            step!(Step::StageRoot, 0, clone_prepared(Tree::Root, staging, fds));
            step!(Step::MountProc, 0, sys::mount(Some(c"proc"), proc, Some(c"proc"), proc_flags, Some(PROC_OPTIONS)));
            if let Err(failure) = pivot(staging) {
                return failure;
            }
        }
        // A root of our own cannot be made in a copy of the template (host paths are bound
        // by path): the parent never hands such a plan to a jail cloned there.
        Base::Own { .. } if templated => return SetUpFailure::new(Step::MountNamespace, 0, libc::EINVAL),
        Base::Own { .. } => {
            step!(Step::MountNamespace, 0, sys::unshare(libc::CLONE_NEWNS));
            step!(Step::MountPrivate, 0, sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None));
        }
    }
    for (index, op) in plan.root.ops.iter().enumerate() {
        step!(Step::Mount, index, apply(op, fds));
    }
    if let Base::Own { staging } = &plan.root.base {
        step!(Step::SealRoot, 0, sys::mount_setattr(staging, false, attr::RDONLY | attr::NOSUID | attr::NODEV));
        if let Err(failure) = pivot(staging) {
            return failure;
        }
    }
    step!(Step::WorkingDir, 0, sys::chdir(&plan.root.cwd));

    // 4. Loopback, when the namespace is our own (the host name was set while waiting).
    if own_netns {
        step!(Step::Loopback, 0, sys::loopback_up());
    }

    // 5. no_new_privs, Landlock.
    step!(Step::NoNewPrivs, 0, sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    if fds.landlock >= 0 {
        for (index, (path, rights)) in plan.landlock_rules.iter().enumerate() {
            step!(Step::LandlockRule, index, add_landlock_rule(fds.landlock, path, *rights));
        }
        step!(Step::LandlockRestrict, 0, sys::landlock_restrict_self(fds.landlock));
    }

    // 6. rlimits, after the last step that opens a descriptor (a low `open_files` must not
    // fail the set-up with EMFILE). Each limit only lowers (plan::rlimits keeps it within
    // the hard limit), which needs no capability.
    for (index, (resource, value)) in plan.rlimits.iter().enumerate() {
        step!(Step::Rlimit, index, sys::setrlimit(*resource, *value, *value));
    }

    // 7. Capabilities (the bounding set was emptied while waiting).
    let securebits = libc::SECBIT_NOROOT
        | libc::SECBIT_NOROOT_LOCKED
        | libc::SECBIT_NO_SETUID_FIXUP
        | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
        | libc::SECBIT_KEEP_CAPS_LOCKED
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    step!(Step::SecureBits, 0, sys::prctl(libc::PR_SET_SECUREBITS, securebits as usize, 0, 0, 0));
    step!(Step::Capabilities, 0, sys::capset_none());

    // 8. Descriptors.
    step!(Step::CloseFds, 0, sys::cloexec_from(3));

    // 9. seccomp, for every thread (TSYNC; this process has one).
    if let Some(seccomp) = &plan.seccomp {
        for (index, program) in seccomp.programs.iter().enumerate() {
            step!(Step::Seccomp, index, sys::seccomp_filter(seccomp.flags, program));
        }
    }

    // 10. exec.
    let errno = if fds.executable >= 0 {
        sys::execveat_fd(fds.executable, plan.argv.as_ptr(), plan.envp.as_ptr())
    } else {
        sys::execve(&plan.executable, plan.argv.as_ptr(), plan.envp.as_ptr())
    };
    SetUpFailure::new(Step::Exec, 0, errno)
}

/// Applies one mount-plan step.
fn apply(op: &MountOp, fds: &ChildFds) -> Result<(), sys::Errno> {
    match op {
        MountOp::Tmpfs { target, options } => {
            sys::mount(Some(c"tmpfs"), target, Some(c"tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some(options))
        }
        MountOp::Dir { path } => match sys::mkdir(path, 0o755) {
            Err(libc::EEXIST) => Ok(()),
            other => other,
        },
        MountOp::EmptyFile { path } => {
            let fd = sys::open(path, libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW, 0o644)?;
            sys::close(fd)
        }
        MountOp::FileCopy { path, contents } => {
            let fd = sys::open(
                path,
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o644,
            )?;
            let written = sys::write_all(fd, contents);
            let _ = sys::close(fd);
            written
        }
        MountOp::Symlink { target, path } => sys::symlink(target, path),
        MountOp::Bind { source, target, attrs } => {
            let source = sys::open_path_no_symlinks(source)?;
            let bound = sys::open_path_no_symlinks(target).and_then(|target| {
                let bound = sys::bind_fd(source, target, *attrs);
                let _ = sys::close(target);
                bound
            });
            let _ = sys::close(source);
            bound
        }
        MountOp::Attach { index, target, .. } => {
            let source = fds.detached.get(*index).copied().filter(|fd| *fd >= 0).ok_or(libc::EBADF)?;
            let target = sys::open_path_no_symlinks(target)?;
            let attached = sys::move_mount_fd(source, target);
            let _ = sys::close(target);
            attached
        }
        MountOp::Rebind { target, attrs } => {
            let fd = sys::open_path_no_symlinks(target)?;
            let bound = sys::bind_fd(fd, fd, *attrs);
            let _ = sys::close(fd);
            bound
        }
        // By path, with mount(2): the jail's own procfs, mounted by this set-up a moment
        // ago, where nothing else can have made a symlink; two calls instead of the six of
        // a descriptor-based bind (which also makes and frees a mount namespace for its
        // detached copy).
        MountOp::ProcReadOnly { target } => {
            match sys::mount(Some(target), target, None, libc::MS_BIND, None) {
                // This kernel lacks it (no CONFIG_MAGIC_SYSRQ, say): nothing to protect.
                Err(libc::ENOENT) => return Ok(()),
                other => other?,
            }
            let read_only = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
            sys::mount(None, target, None, read_only | libc::MS_NOEXEC, None)
        }
        MountOp::Prepared { tree, target } => clone_prepared(*tree, target, fds),
        MountOp::Proc { target, options } => sys::mount(
            Some(c"proc"),
            target,
            Some(c"proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some(options),
        ),
    }
}

/// Clones the prepared `tree` (its descriptor in `fds`) at `target`.
fn clone_prepared(tree: Tree, target: &CStr, fds: &ChildFds) -> Result<(), sys::Errno> {
    let (source, attrs) = match tree {
        Tree::Etc => (fds.etc, PREPARED_ATTRS),
        Tree::Dev => (fds.dev, PREPARED_ATTRS),
        // Sealed as the root a jail makes itself is.
        Tree::Root => (fds.root, SYSTEM_ATTRS),
    };
    if source < 0 {
        return Err(libc::EBADF);
    }
    let target = sys::open_path_no_symlinks(target)?;
    // Its binds keep the attributes they were given when the tree was built.
    let bound = sys::clone_tree_fd(source, target, attrs);
    let _ = sys::close(target);
    bound
}

/// Adds one path rule to the Landlock ruleset.
fn add_landlock_rule(ruleset: i32, path: &CStr, rights: u64) -> Result<(), sys::Errno> {
    let fd = sys::open(path, libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY, 0)?;
    let added = sys::landlock_add_path_rule(ruleset, rights, fd);
    let _ = sys::close(fd);
    added
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn failures_round_trip_through_the_report_pipe_bytes() {
        for step in Step::ALL {
            let failure = SetUpFailure { step, index: 7, errno: libc::ENOENT };
            assert_eq!(SetUpFailure::decode(&failure.encode()), Some(failure));
        }
        assert_eq!(SetUpFailure::decode(&[0u8; 8]), None);
        assert_eq!(SetUpFailure::decode(&[1u8; 3]), None);
    }
}
