//! The jail's ordered set-up: one `clone` with every namespace flag (the network namespace
//! comes from the pool when it can: the cloning thread enters it for the clone), then one
//! straight function in the child that applies the precomputed plans and execs the tool.
//!
//! Owns: [`ChildPlan`] (everything the child needs, prepared by the parent as C strings
//! and numbers), the child's stack, [`spawn`] (the `clone`, and the cloning thread's trip
//! into a pooled network namespace and back), the child's set-up ([`set_up_and_exec`]) and
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
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    ptr,
    sync::atomic::{AtomicBool, Ordering},
};

use super::{
    netns::PooledNetns,
    plan::{MountOp, PREPARED_ATTRS, RootPlan, Tree, attr},
    seccomp::CompiledSeccomp,
    sys,
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
    Stdio,
    WaitParent,
    Groups,
    CgroupNamespace,
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
}

impl Step {
    const ALL: [Step; 26] = [
        Step::Signals,
        Step::DeathSignal,
        Step::Session,
        Step::Stdio,
        Step::WaitParent,
        Step::Groups,
        Step::CgroupNamespace,
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
    ];

    /// What the step does, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Signals => "reset signal handlers",
            Step::DeathSignal => "set the parent-death signal",
            Step::Session => "start a new session",
            Step::Stdio => "set up stdin, stdout and stderr",
            Step::WaitParent => "wait for the uid/gid maps and the cgroup",
            Step::Groups => "drop supplementary groups",
            Step::CgroupNamespace => "enter a new cgroup namespace",
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

/// The child's descriptors (inherited: the child has a copy of the parent's table).
#[derive(Debug, Clone, Copy)]
pub struct ChildFds {
    pub stdin: i32,
    pub stdout: i32,
    pub stderr: i32,
    /// Write end of the report pipe (close-on-exec).
    pub report: i32,
    /// Read end of the go pipe: the parent writes one byte once maps and cgroup are set.
    pub go: i32,
    /// The Landlock ruleset, or -1.
    pub landlock: i32,
    /// The prepared /etc (a detached tmpfs), or -1.
    pub etc: i32,
    /// The prepared /dev (a detached tmpfs), or -1.
    pub dev: i32,
    /// The pinned executable, or -1.
    pub executable: i32,
}

/// What [`child_main`] gets: pointers stay valid until the parent has reaped the child
/// (see `Jailed` in the backend, which owns both and kills and reaps on drop).
#[derive(Debug)]
pub struct ChildArgs {
    pub plan: *const ChildPlan,
    pub fds: ChildFds,
    /// Written by [`spawn`] just before the clone: true when the clone makes the child's
    /// network namespace (its loopback is down: the child brings it up), false when the
    /// child inherits a pooled one (loopback already up, and the child has no capability
    /// over it).
    pub own_netns: AtomicBool,
}

impl ChildArgs {
    /// The child's arguments; whether it gets a network namespace of its own is decided
    /// by [`spawn`].
    pub fn new(plan: *const ChildPlan, fds: ChildFds) -> ChildArgs {
        ChildArgs { plan, fds, own_netns: AtomicBool::new(true) }
    }
}

/// Why [`spawn`] failed.
#[derive(Debug)]
pub enum SpawnError {
    /// `clone` failed; the calling thread is as it was.
    Clone(io::Error),
    /// The calling thread entered a pooled network namespace for the clone and cannot go
    /// back to the host's. Any child was killed and reaped. The thread must not run
    /// anything else (its signals stay blocked): the caller retires it, or ends the process.
    Stranded(io::Error),
}

// SAFETY: ChildArgs is only a bundle of a pointer to an immutable plan and descriptor
// numbers; it is read by the child and dropped by the parent after the child is reaped.
unsafe impl Send for ChildArgs {}
// SAFETY: see Send.
unsafe impl Sync for ChildArgs {}

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

/// Clones the child: new user, mount, pid, net, ipc and uts namespaces in one `clone`,
/// sharing the parent's memory until exec, with every signal blocked across the call so
/// that no parent handler can run on the child's stack. Returns the pid and a pidfd.
///
/// With `netns`, the calling thread enters that pooled network namespace, clones without
/// `CLONE_NEWNET` (the child inherits the thread's namespace), and goes back to the host's;
/// signals stay blocked throughout, so no handler runs in the jail's network either. The
/// pooled namespace's descriptor is closed before returning: the jail holds the only
/// reference. When the thread cannot enter it, the clone makes a new namespace as without
/// one; when it cannot go back, see [`SpawnError::Stranded`].
pub fn spawn(args: &ChildArgs, stack: &ChildStack, netns: Option<PooledNetns>) -> Result<(i32, OwnedFd), SpawnError> {
    let mut flags = libc::CLONE_VM
        | libc::CLONE_PIDFD
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
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
    // The child reads it after the clone, which orders this write before its start.
    args.own_netns.store(pooled.is_none(), Ordering::SeqCst);
    let mut pidfd: c_int = -1;
    // SAFETY: child_main is an extern "C" fn that never returns into Rust code of the
    // parent; the stack is a live mapping whose top is passed; `args` (and the plan it
    // points to) outlive the child's use of them (the caller keeps them until it has
    // reaped the child). CLONE_PIDFD stores the pidfd through the parent_tid argument.
    let pid = unsafe {
        libc::clone(child_main, stack.top(), flags, args as *const ChildArgs as *mut c_void, &mut pidfd as *mut c_int)
    };
    let error = io::Error::last_os_error();
    // SAFETY: with CLONE_PIDFD the kernel returned a new descriptor that only we own.
    let pidfd = (pid > 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
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

/// Kills a child that must not run (it waits for the parent's go) and reaps it, so that
/// its stack and plan can be freed.
fn kill_and_reap(pid: i32, pidfd: &OwnedFd) {
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
    // SAFETY: `arg` is the &ChildArgs given to clone in spawn(), and the plan it points to
    // is kept alive by the parent until this process is reaped.
    let args = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: as above.
    let plan = unsafe { &*args.plan };
    let own_netns = args.own_netns.load(Ordering::SeqCst);
    let failure = set_up_and_exec(plan, &args.fds, own_netns);
    let _ = sys::write_all(args.fds.report, &failure.encode());
    sys::exit_group(127)
}

/// The privileged set-up, in order; returns only if a step failed.
///
/// Why this order:
/// 1. Signal handlers first: until they are reset, a signal would run the parent's
///    handler on this stack, in the parent's memory.
/// 2. Parent-death signal and a new session, so that nothing outlives airlock and no
///    terminal is reachable; then stdio, while the pipes are still the parent's numbers.
/// 3. Wait for the parent: our uid/gid maps must be written before we create any file,
///    and we must be in the call's cgroup before we enter a cgroup namespace (its root is
///    the cgroup we are in) and before the tool can allocate anything.
/// 4. Mounts while we still hold every capability of our user namespace: private
///    propagation, the minimal root (staging tmpfs, binds, protected paths last, /proc
///    while the host's /proc is still visible), seal the root read-only, `pivot_root`,
///    detach the host's root. Then the working directory.
/// 5. Host name and loopback need CAP_SYS_ADMIN / CAP_NET_ADMIN in our namespaces.
///    Loopback only when the clone made our network namespace: a pooled one (`own_netns`
///    false) has it up already, and is owned by airlock's user namespace, where we have no
///    capability (so neither we nor the tool can reconfigure it).
/// 6. no_new_privs, then Landlock (which needs it for an unprivileged process, and
///    forbids mounts: it comes after the last mount).
/// 7. rlimits, after the last descriptor the set-up opens (a parent holding every
///    descriptor below `open_files` would otherwise make that open fail); lowering needs
///    no capability, and CPU time spent after this counts.
/// 8. Capabilities: the bounding set first (dropping needs CAP_SETPCAP), ambient,
///    securebits (so that exec as uid 0 gains nothing), then the sets themselves.
/// 9. Every descriptor above 2 is marked close-on-exec (the report pipe still works).
/// 10. seccomp last: it constrains only the exec and the tool, never our set-up.
/// 11. exec.
fn set_up_and_exec(plan: &ChildPlan, fds: &ChildFds, own_netns: bool) -> SetUpFailure {
    macro_rules! step {
        ($step:expr, $index:expr, $call:expr) => {
            if let Err(errno) = $call {
                return SetUpFailure::new($step, $index, errno);
            }
        };
    }

    // 1. Signals.
    for signal in 1..=64 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            let _ = sys::default_signal(signal);
        }
    }
    step!(Step::Signals, 0, sys::unblock_signals());

    // 2. Die with the parent; no controlling terminal; stdio.
    step!(Step::DeathSignal, 0, sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as usize, 0, 0, 0));
    step!(Step::Session, 0, sys::setsid());
    step!(Step::Stdio, 0, sys::dup3(fds.stdin, 0));
    step!(Step::Stdio, 1, sys::dup3(fds.stdout, 1));
    step!(Step::Stdio, 2, sys::dup3(fds.stderr, 2));

    // 3. Wait for the parent's go.
    let mut go = [0u8; 1];
    loop {
        match sys::read(fds.go, &mut go) {
            Ok(1) => break,
            Ok(_) => return SetUpFailure::new(Step::WaitParent, 0, libc::EPIPE),
            Err(libc::EINTR) => {}
            Err(errno) => return SetUpFailure::new(Step::WaitParent, 0, errno),
        }
    }
    if plan.clear_groups {
        step!(Step::Groups, 0, sys::clear_groups());
    }
    if plan.cgroup_namespace {
        step!(Step::CgroupNamespace, 0, sys::unshare(libc::CLONE_NEWCGROUP));
    }

    // 4. The minimal root.
    step!(Step::MountPrivate, 0, sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None));
    for (index, op) in plan.root.ops.iter().enumerate() {
        step!(Step::Mount, index, apply(op, fds));
    }
    step!(Step::SealRoot, 0, sys::mount_setattr(&plan.root.staging, false, attr::RDONLY | attr::NOSUID | attr::NODEV));
    step!(Step::PivotRoot, 0, sys::chdir(&plan.root.staging));
    step!(Step::PivotRoot, 1, sys::pivot_root(c".", c"."));
    step!(Step::DetachOldRoot, 0, sys::umount2(c".", libc::MNT_DETACH));
    step!(Step::WorkingDir, 0, sys::chdir(&plan.root.cwd));

    // 5. Host name, loopback (when the namespace is our own).
    step!(Step::Hostname, 0, sys::sethostname(HOSTNAME));
    if own_netns {
        step!(Step::Loopback, 0, sys::loopback_up());
    }

    // 6. no_new_privs, Landlock.
    step!(Step::NoNewPrivs, 0, sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    if fds.landlock >= 0 {
        for (index, (path, rights)) in plan.landlock_rules.iter().enumerate() {
            step!(Step::LandlockRule, index, add_landlock_rule(fds.landlock, path, *rights));
        }
        step!(Step::LandlockRestrict, 0, sys::landlock_restrict_self(fds.landlock));
    }

    // 7. rlimits, after the last step that opens a descriptor: the child has a copy of
    // the parent's descriptor table, and a parent holding every descriptor below the
    // tool's `open_files` (a busy service) would make a later open fail with EMFILE. Each
    // limit only lowers (plan::rlimits keeps it within the hard limit), which needs no
    // capability.
    for (index, (resource, value)) in plan.rlimits.iter().enumerate() {
        step!(Step::Rlimit, index, sys::setrlimit(*resource, *value, *value));
    }

    // 8. Capabilities.
    for capability in 0..64usize {
        match sys::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) {
            Ok(_) => {}
            // Past the kernel's last capability.
            Err(libc::EINVAL) => break,
            Err(errno) => return SetUpFailure::new(Step::CapabilityBounding, capability, errno),
        }
    }
    step!(
        Step::CapabilityAmbient,
        0,
        sys::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as usize, 0, 0, 0)
    );
    let securebits = libc::SECBIT_NOROOT
        | libc::SECBIT_NOROOT_LOCKED
        | libc::SECBIT_NO_SETUID_FIXUP
        | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
        | libc::SECBIT_KEEP_CAPS_LOCKED
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    step!(Step::SecureBits, 0, sys::prctl(libc::PR_SET_SECUREBITS, securebits as usize, 0, 0, 0));
    step!(Step::Capabilities, 0, sys::capset_none());

    // 9. Descriptors.
    step!(Step::CloseFds, 0, sys::cloexec_from(3));

    // 10. seccomp, for every thread (TSYNC; this process has one).
    if let Some(seccomp) = &plan.seccomp {
        for (index, program) in seccomp.programs.iter().enumerate() {
            step!(Step::Seccomp, index, sys::seccomp_filter(seccomp.flags, program));
        }
    }

    // 11. exec.
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
        MountOp::Rebind { target, attrs } => {
            let fd = sys::open_path_no_symlinks(target)?;
            let bound = sys::bind_fd(fd, fd, *attrs);
            let _ = sys::close(fd);
            bound
        }
        MountOp::ProcReadOnly { target } => {
            let fd = match sys::open_path_no_symlinks(target) {
                // This kernel lacks it (no CONFIG_MAGIC_SYSRQ, say): nothing to protect.
                Err(libc::ENOENT) => return Ok(()),
                other => other?,
            };
            let bound = sys::bind_fd(fd, fd, attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC);
            let _ = sys::close(fd);
            bound
        }
        MountOp::Prepared { tree, target } => {
            let source = match tree {
                Tree::Etc => fds.etc,
                Tree::Dev => fds.dev,
            };
            if source < 0 {
                return Err(libc::EBADF);
            }
            let target = sys::open_path_no_symlinks(target)?;
            // Its binds keep the attributes they were given when the tree was built.
            let bound = sys::clone_tree_fd(source, target, PREPARED_ATTRS);
            let _ = sys::close(target);
            bound
        }
        MountOp::Proc { target, options } => sys::mount(
            Some(c"proc"),
            target,
            Some(c"proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some(options),
        ),
    }
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
