//! The default seccomp profile installed for real, in forked children (never in the test
//! runner): each denial next to a harmless twin that succeeds, and, where it is harmless,
//! the same call without the filter to show that the filter makes the difference.
//!
//! Calls that would change the machine if the filter failed to stop them (mount, reboot,
//! settimeofday, ...) are made with arguments the kernel would reject anyway (a missing
//! path, a bad magic number), and the test expects exactly EPERM, the filter's answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    ffi::CString,
    sync::OnceLock,
    time::{Duration, Instant},
};

use airlock::backend::jail::seccomp::{CompiledSeccomp, SeccompProfile};

use crate::common::repo;

const EPERM: i32 = libc::EPERM;
const ENOSYS: i32 = libc::ENOSYS;

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Exit(i32),
    Signal(i32),
}

fn default_filter() -> &'static CompiledSeccomp {
    static FILTER: OnceLock<CompiledSeccomp> = OnceLock::new();
    FILTER.get_or_init(|| {
        let started = Instant::now();
        let profile = SeccompProfile::load(&repo().join("policies/seccomp/default.json")).unwrap();
        let compiled = profile.compile().unwrap();
        eprintln!("default profile loaded and compiled in {:?}: {compiled:?}", started.elapsed());
        compiled
    })
}

/// Forks; the child installs `filter` (exits 125 if it cannot), runs `body` and exits with
/// what it returns. The parent waits (at most 60 s) and says how the child ended.
fn in_child(filter: Option<&CompiledSeccomp>, body: impl FnOnce() -> i32) -> Ended {
    // SAFETY: the child only makes system calls, runs `body` and leaves with `_exit`; it
    // never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = match filter.map(CompiledSeccomp::apply) {
            Some(Err(_)) => 125,
            _ => body(),
        };
        // SAFETY: ends the child without running the parent's destructors or atexit hooks.
        unsafe { libc::_exit(code) };
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(done >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if done == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if libc::WIFEXITED(status) { Ended::Exit(libc::WEXITSTATUS(status)) } else { Ended::Signal(libc::WTERMSIG(status)) }
}

/// Under the default profile.
fn filtered(body: impl FnOnce() -> i32) -> Ended {
    in_child(Some(default_filter()), body)
}

/// Without any filter (only for calls that are harmless either way).
fn unfiltered(body: impl FnOnce() -> i32) -> Ended {
    in_child(None, body)
}

/// 0 if a raw syscall succeeded, else its errno.
fn errno_of(rc: libc::c_long) -> i32 {
    if rc >= 0 {
        0
    } else {
        // SAFETY: reads this thread's errno.
        unsafe { *libc::__errno_location() }
    }
}

/// `syscall(nr, args...)` with missing arguments 0; 0 or the errno.
fn call(nr: libc::c_long, args: &[u64]) -> i32 {
    let a = |i: usize| args.get(i).copied().unwrap_or(0);
    // SAFETY: every call here is made with arguments the kernel validates (bad pointers
    // fail with EFAULT); none hands the kernel memory it may write but a null pointer.
    errno_of(unsafe { libc::syscall(nr, a(0), a(1), a(2), a(3), a(4), a(5)) })
}

/// A NUL-terminated path for raw syscalls, as an address.
fn c_path(text: &'static [u8]) -> u64 {
    assert_eq!(text.last(), Some(&0));
    text.as_ptr() as u64
}

const NOWHERE: &[u8] = b"/nonexistent-airlock-seccomp-test\0";

#[test]
fn default_profile_denies_ptrace_but_allows_getpid() {
    let traceme = || call(libc::SYS_ptrace, &[libc::PTRACE_TRACEME as u64]);
    assert_eq!(filtered(traceme), Ended::Exit(EPERM));
    assert_eq!(unfiltered(traceme), Ended::Exit(0), "without the filter TRACEME works");
    assert_eq!(filtered(|| call(libc::SYS_getpid, &[])), Ended::Exit(0));
    let vm_read = || call(libc::SYS_process_vm_readv, &[1, 0, 0, 0, 0, 0]);
    assert_eq!(filtered(vm_read), Ended::Exit(EPERM));
}

#[test]
fn default_profile_denies_namespace_unshare_but_allows_unsharing_own_state() {
    for flag in [libc::CLONE_NEWUSER, libc::CLONE_NEWNS, libc::CLONE_NEWNET, libc::CLONE_NEWPID] {
        let unshare = move || call(libc::SYS_unshare, &[flag as u64]);
        assert_eq!(filtered(unshare), Ended::Exit(EPERM), "{flag:#x}");
    }
    let new_user = || call(libc::SYS_unshare, &[libc::CLONE_NEWUSER as u64]);
    assert_eq!(unfiltered(new_user), Ended::Exit(0), "without the filter unshare -U works");
    assert_eq!(filtered(|| call(libc::SYS_unshare, &[0])), Ended::Exit(0));
    let files = || call(libc::SYS_unshare, &[libc::CLONE_FILES as u64]);
    assert_eq!(filtered(files), Ended::Exit(0));
    assert_eq!(filtered(|| call(libc::SYS_setns, &[0, 0])), Ended::Exit(EPERM));
}

#[test]
fn default_profile_denies_clone_into_a_namespace_but_allows_fork_and_threads() {
    let clone_newns = || {
        let flags = (libc::CLONE_NEWNS | libc::SIGCHLD) as u64;
        // SAFETY: a fork-like clone (no CLONE_VM): the child, if any, leaves at once.
        let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0u64, 0u64, 0u64, 0u64) };
        if rc == 0 {
            // SAFETY: the escaped child ends at once.
            unsafe { libc::_exit(0) };
        }
        if rc > 0 { 99 } else { errno_of(rc) }
    };
    assert_eq!(filtered(clone_newns), Ended::Exit(EPERM));
    let fork = || {
        // SAFETY: the grandchild only calls `_exit`.
        match unsafe { libc::fork() } {
            // SAFETY: ends the grandchild at once.
            0 => unsafe { libc::_exit(7) },
            -1 => errno_of(-1),
            pid => {
                let mut status = 0;
                // SAFETY: reaps our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7 { 0 } else { 98 }
            }
        }
    };
    assert_eq!(filtered(fork), Ended::Exit(0));
    // pthread_create tries clone3 first, gets ENOSYS and falls back to clone.
    let thread = || std::thread::spawn(|| 5).join().map_or(97, |v| v - 5);
    assert_eq!(filtered(thread), Ended::Exit(0));
    // clone3 itself: ENOSYS, so that runtimes fall back (NULL args: EFAULT without filter).
    let clone3 = || call(libc::SYS_clone3, &[0, 88]);
    assert_eq!(filtered(clone3), Ended::Exit(ENOSYS));
    assert_eq!(unfiltered(clone3), Ended::Exit(libc::EFAULT));
}

#[test]
fn default_profile_denies_io_uring_keyrings_bpf_perf_and_userfaultfd() {
    let mut params = [0u8; 120];
    let params_at = params.as_mut_ptr() as u64;
    let uring = move || call(libc::SYS_io_uring_setup, &[1, params_at]);
    assert_eq!(filtered(uring), Ended::Exit(EPERM));
    assert_eq!(unfiltered(uring), Ended::Exit(0), "without the filter io_uring_setup works");

    // KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING (-3), create = 0.
    let keyctl = || call(libc::SYS_keyctl, &[0, (-3i64) as u64, 0]);
    assert_eq!(filtered(keyctl), Ended::Exit(EPERM));
    assert_eq!(unfiltered(keyctl), Ended::Exit(0), "without the filter keyctl works");
    let add_key = || call(libc::SYS_add_key, &[c_path(b"user\0"), c_path(b"airlock\0"), 0, 0, 0]);
    assert_eq!(filtered(add_key), Ended::Exit(EPERM));
    let request_key = || call(libc::SYS_request_key, &[c_path(b"user\0"), c_path(b"airlock\0"), 0, 0]);
    assert_eq!(filtered(request_key), Ended::Exit(EPERM));

    // NULL attributes: EFAULT or EINVAL without the filter.
    let bpf = || call(libc::SYS_bpf, &[0, 0, 0]);
    assert_eq!(filtered(bpf), Ended::Exit(EPERM));
    assert_ne!(unfiltered(bpf), Ended::Exit(EPERM));
    let perf = || call(libc::SYS_perf_event_open, &[0, 0, u64::MAX, u64::MAX, 0]);
    assert_eq!(filtered(perf), Ended::Exit(EPERM));
    assert_ne!(unfiltered(perf), Ended::Exit(EPERM));

    let userfaultfd = || call(libc::SYS_userfaultfd, &[libc::O_CLOEXEC as u64]);
    assert_eq!(filtered(userfaultfd), Ended::Exit(EPERM));
    // The harmless twin of these: an eventfd, another kind of kernel object.
    assert_eq!(filtered(|| call(libc::SYS_eventfd2, &[0, 0])), Ended::Exit(0));
}

#[test]
fn default_profile_denies_terminal_injection_ioctls_but_allows_tcgets() {
    // SAFETY: plain libc calls on a descriptor we own.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    assert!(master >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
    // SAFETY: as above.
    assert_eq!(unsafe { libc::grantpt(master) + libc::unlockpt(master) }, 0);
    let fd = master as u64;
    let byte = b"x";
    let byte_at = byte.as_ptr() as u64;
    let mut termios = [0u8; 64];
    let termios_at = termios.as_mut_ptr() as u64;

    let ioctl = move |request: u64, arg: u64| move || call(libc::SYS_ioctl, &[fd, request, arg]);
    assert_eq!(filtered(ioctl(libc::TCGETS, termios_at)), Ended::Exit(0));
    assert_eq!(filtered(ioctl(libc::TIOCGWINSZ, termios_at)), Ended::Exit(0));
    assert_eq!(filtered(ioctl(0x5412, byte_at)), Ended::Exit(EPERM), "TIOCSTI");
    assert_eq!(filtered(ioctl(0x1_0000_5412, byte_at)), Ended::Exit(EPERM), "TIOCSTI, high bit");
    assert_eq!(filtered(ioctl(0xdead_beef_0000_5412, byte_at)), Ended::Exit(EPERM));
    assert_eq!(filtered(ioctl(0x541c, byte_at)), Ended::Exit(EPERM), "TIOCLINUX");
    assert_eq!(filtered(ioctl(0x1_0000_541c, byte_at)), Ended::Exit(EPERM), "TIOCLINUX, high bit");
    // Without the filter the kernel truncates the request to 0x5412 and runs TIOCSTI (as
    // root, or with legacy TIOCSTI on), or refuses it for its own reasons: never EPERM.
    assert_ne!(unfiltered(ioctl(0x1_0000_5412, byte_at)), Ended::Exit(EPERM));
    // SAFETY: closes our descriptor.
    unsafe { libc::close(master) };
}

#[test]
fn default_profile_denies_netlink_vsock_and_packet_sockets_but_allows_unix_and_inet() {
    let socket = |domain: u64, kind: u64| move || call(libc::SYS_socket, &[domain, kind, 0]);
    let (stream, dgram, raw) = (libc::SOCK_STREAM as u64, libc::SOCK_DGRAM as u64, libc::SOCK_RAW as u64);
    assert_eq!(filtered(socket(libc::AF_NETLINK as u64, raw)), Ended::Exit(EPERM));
    assert_eq!(unfiltered(socket(libc::AF_NETLINK as u64, raw)), Ended::Exit(0));
    assert_eq!(filtered(socket(libc::AF_VSOCK as u64, stream)), Ended::Exit(EPERM));
    assert_eq!(filtered(socket(libc::AF_PACKET as u64, raw)), Ended::Exit(EPERM));
    assert_eq!(filtered(socket(0x1_0000_0000 | libc::AF_NETLINK as u64, raw)), Ended::Exit(EPERM));
    assert_eq!(filtered(socket(libc::AF_ALG as u64, 5)), Ended::Exit(EPERM), "not in the allowlist");
    assert_eq!(filtered(socket(libc::AF_UNIX as u64, stream)), Ended::Exit(0));
    assert_eq!(filtered(socket(libc::AF_UNIX as u64, dgram)), Ended::Exit(0));
    assert_eq!(filtered(socket(libc::AF_INET as u64, stream)), Ended::Exit(0));
    assert_eq!(filtered(socket(libc::AF_INET as u64, dgram)), Ended::Exit(0));
    let inet6 = filtered(socket(libc::AF_INET6 as u64, stream));
    assert_ne!(inet6, Ended::Exit(EPERM), "AF_INET6 is allowed (the kernel may lack it)");
    let mut pair = [0i32; 2];
    let pair_at = pair.as_mut_ptr() as u64;
    let socketpair = move || call(libc::SYS_socketpair, &[libc::AF_UNIX as u64, stream, 0, pair_at]);
    assert_eq!(filtered(socketpair), Ended::Exit(0));
}

#[test]
fn default_profile_denies_the_mount_family_but_allows_stat() {
    let nowhere = c_path(NOWHERE);
    let tmpfs = c_path(b"tmpfs\0");
    // Each would fail anyway (missing path or bad descriptor), but not with EPERM.
    let mount = move || call(libc::SYS_mount, &[tmpfs, nowhere, tmpfs, 0, 0]);
    assert_eq!(filtered(mount), Ended::Exit(EPERM));
    assert_eq!(unfiltered(mount), Ended::Exit(libc::ENOENT));
    let calls: [(&str, libc::c_long, Vec<u64>); 8] = [
        ("umount2", libc::SYS_umount2, vec![nowhere, 0]),
        ("pivot_root", libc::SYS_pivot_root, vec![nowhere, nowhere]),
        ("chroot", libc::SYS_chroot, vec![nowhere]),
        ("fsopen", libc::SYS_fsopen, vec![c_path(b"no-such-fs\0"), 0]),
        ("fsmount", libc::SYS_fsmount, vec![u64::MAX, 0, 0]),
        ("move_mount", libc::SYS_move_mount, vec![u64::MAX, nowhere, u64::MAX, nowhere, 0]),
        ("open_tree", libc::SYS_open_tree, vec![u64::MAX, nowhere, 0]),
        ("mount_setattr", libc::SYS_mount_setattr, vec![u64::MAX, nowhere, 0, 0, 0]),
    ];
    for (name, nr, args) in calls {
        assert_eq!(filtered(move || call(nr, &args)), Ended::Exit(EPERM), "{name}");
    }
    // The twin: looking at the same path is fine (and fails as the kernel says).
    let mut stat = [0u8; 256];
    let stat_at = stat.as_mut_ptr() as u64;
    assert_eq!(filtered(move || call(libc::SYS_stat, &[nowhere, stat_at])), Ended::Exit(libc::ENOENT));
}

#[test]
fn default_profile_allows_only_harmless_personalities() {
    let personality = |value: u64| move || call(libc::SYS_personality, &[value]);
    assert_eq!(filtered(personality(0xffff_ffff)), Ended::Exit(0), "query");
    assert_eq!(filtered(personality(0)), Ended::Exit(0), "PER_LINUX");
    assert_eq!(filtered(personality(8)), Ended::Exit(0), "PER_LINUX32");
    assert_eq!(filtered(personality(0x0040000)), Ended::Exit(EPERM), "ADDR_NO_RANDOMIZE");
    assert_eq!(unfiltered(personality(0x0040000)), Ended::Exit(0));
    assert_eq!(filtered(personality(0x0400000)), Ended::Exit(EPERM), "READ_IMPLIES_EXEC");
    assert_eq!(filtered(personality(0x0100000)), Ended::Exit(EPERM), "MMAP_PAGE_ZERO");
}

/// getpid through the i386 ABI (`int 0x80`, eax = 20); returns what it returned.
fn i386_getpid() -> i32 {
    let ret: i32;
    // SAFETY: `int 0x80` with eax = 20 (i386 getpid) takes no arguments and touches no
    // memory; the compat entry may clobber r8-r11.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("eax") 20i32 => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack),
        );
    }
    ret
}

#[test]
fn default_profile_kills_i386_and_x32_calls_but_not_native_ones() {
    // SAFETY: getpid cannot fail.
    let native = || if i386_getpid() == unsafe { libc::getpid() } { 0 } else { 1 };
    assert_eq!(unfiltered(native), Ended::Exit(0), "int 0x80 works here without the filter");
    assert_eq!(filtered(native), Ended::Signal(libc::SIGSYS));
    assert_eq!(filtered(|| call(libc::SYS_getpid, &[])), Ended::Exit(0));

    let x32_getpid = || call(0x4000_0000 | libc::SYS_getpid, &[]);
    assert_eq!(filtered(x32_getpid), Ended::Signal(libc::SIGSYS));
    assert_ne!(unfiltered(x32_getpid), Ended::Signal(libc::SIGSYS));
}

/// The `Key:\tvalue` line of a `/proc/.../status` file.
fn status_field(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(":").map(|v| v.trim().to_string()))
}

#[test]
fn default_profile_is_applied_to_every_thread_with_no_new_privs() {
    let programs = default_filter().program_count().to_string();
    let body = move || {
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel::<i32>();
        // A thread that exists before the filter goes on.
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid cannot fail.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            release_rx.recv().unwrap();
            let mode = status_field("/proc/thread-self/status", "Seccomp");
            let denied = call(libc::SYS_ptrace, &[libc::PTRACE_TRACEME as u64]);
            (mode, denied)
        });
        let tid = tid_rx.recv().unwrap();
        if default_filter().apply().is_err() {
            return 125;
        }
        let task = format!("/proc/self/task/{tid}/status");
        let checks = [
            status_field(&task, "Seccomp").as_deref() == Some("2"),
            status_field(&task, "Seccomp_filters") == Some(programs.clone()),
            status_field("/proc/self/status", "NoNewPrivs").as_deref() == Some("1"),
        ];
        release_tx.send(()).unwrap();
        let (mode, denied) = thread.join().unwrap();
        if let Some(failed) = checks.iter().position(|ok| !ok) {
            return 10 + failed as i32;
        }
        if mode.as_deref() != Some("2") {
            return 20;
        }
        if denied != EPERM {
            return 21;
        }
        0
    };
    // The child applies the filter itself, after its thread started.
    assert_eq!(in_child(None, body), Ended::Exit(0));
}

#[test]
fn default_profile_denies_every_listed_call() {
    // (name, nr, arguments the kernel would reject anyway without the filter)
    let nowhere = c_path(NOWHERE);
    let calls: Vec<(&str, libc::c_long, Vec<u64>)> = vec![
        ("process_vm_writev", libc::SYS_process_vm_writev, vec![1, 0, 0, 0, 0, 0]),
        ("kcmp", libc::SYS_kcmp, vec![1, 1, 99, 0, 0]),
        ("pidfd_getfd", libc::SYS_pidfd_getfd, vec![u64::MAX, 0, 0]),
        ("fsconfig", libc::SYS_fsconfig, vec![u64::MAX, 0, 0, 0, 0]),
        ("fspick", libc::SYS_fspick, vec![u64::MAX, nowhere, 0]),
        ("io_uring_enter", libc::SYS_io_uring_enter, vec![u64::MAX, 0, 0, 0, 0, 0]),
        ("io_uring_register", libc::SYS_io_uring_register, vec![u64::MAX, 0, 0, 0]),
        ("kexec_load", libc::SYS_kexec_load, vec![0, 0, 0, 0xffff_ffff]),
        ("kexec_file_load", libc::SYS_kexec_file_load, vec![u64::MAX, u64::MAX, 0, 0, 0xffff_ffff]),
        ("init_module", libc::SYS_init_module, vec![0, 0, 0]),
        ("finit_module", libc::SYS_finit_module, vec![u64::MAX, 0, 0]),
        ("delete_module", libc::SYS_delete_module, vec![c_path(b"airlock_no_such_module\0"), 0]),
        ("open_by_handle_at", libc::SYS_open_by_handle_at, vec![u64::MAX, 0, 0]),
        ("name_to_handle_at", libc::SYS_name_to_handle_at, vec![u64::MAX, nowhere, 0, 0, 0]),
        ("acct", libc::SYS_acct, vec![nowhere]),
        ("swapon", libc::SYS_swapon, vec![nowhere, 0]),
        ("swapoff", libc::SYS_swapoff, vec![nowhere]),
        ("reboot", libc::SYS_reboot, vec![0, 0, 0, 0]),
        ("settimeofday", libc::SYS_settimeofday, vec![0, 0]),
        ("clock_settime", libc::SYS_clock_settime, vec![u64::MAX, 0]),
        ("adjtimex", libc::SYS_adjtimex, vec![0]),
        ("clock_adjtime", libc::SYS_clock_adjtime, vec![u64::MAX, 0]),
        ("syslog", libc::SYS_syslog, vec![u64::MAX, 0, 0]),
        ("quotactl", libc::SYS_quotactl, vec![0, nowhere, 0, 0]),
        ("lookup_dcookie", libc::SYS_lookup_dcookie, vec![0, 0, 0]),
        ("iopl", libc::SYS_iopl, vec![99]),
        ("ioperm", libc::SYS_ioperm, vec![0, 0, 0]),
        ("modify_ldt", libc::SYS_modify_ldt, vec![99, 0, 0]),
        ("nfsservctl", libc::SYS_nfsservctl, vec![]),
        ("uselib", libc::SYS_uselib, vec![nowhere]),
        ("ustat", libc::SYS_ustat, vec![0, 0]),
        ("sysfs", libc::SYS_sysfs, vec![99]),
        ("_sysctl", libc::SYS__sysctl, vec![0]),
        ("create_module", 174, vec![]),
        ("get_kernel_syms", 177, vec![]),
        ("query_module", 178, vec![]),
        ("fanotify_init", libc::SYS_fanotify_init, vec![0xffff_ffff, 0]),
        ("migrate_pages", libc::SYS_migrate_pages, vec![u64::MAX, 0, 0, 0]),
        ("move_pages", libc::SYS_move_pages, vec![u64::MAX, 0, 0, 0, 0, 0]),
        ("sethostname", libc::SYS_sethostname, vec![0, u64::MAX]),
        ("setdomainname", libc::SYS_setdomainname, vec![0, u64::MAX]),
    ];
    let mut wrong = Vec::new();
    for (name, nr, args) in calls {
        let ended = filtered(move || call(nr, &args));
        if ended != Ended::Exit(EPERM) {
            wrong.push(format!("{name}: {ended:?}"));
        }
    }
    assert!(wrong.is_empty(), "not denied with EPERM: {wrong:?}");
}

/// Runs `argv` (looked up in PATH) under `filter`; None if the program is not installed.
fn run_tool(filter: &CompiledSeccomp, argv: &[&str]) -> Option<Ended> {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(argv[0]).is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("{} is not installed: skipped", argv[0]);
        return None;
    }
    let args: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut pointers: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    Some(in_child(Some(filter), || {
        // SAFETY: `pointers` is a NULL-terminated array of C strings that outlive the call.
        unsafe { libc::execvp(pointers[0], pointers.as_ptr()) };
        126
    }))
}

#[test]
fn ordinary_tools_run_under_the_default_profile() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().display().to_string();
    let shell = format!(
        "set -e; cd {dir}; ls / >/dev/null; echo b a | tr ' ' '\\n' | sort | head -1 >sorted; \
         grep -q a sorted; cp sorted copy; mv copy moved; rm moved; mkdir d; rmdir d; \
         cat /proc/self/status >/dev/null; sleep 0.01; date >/dev/null; id >/dev/null; \
         ( exit 0 ) & wait"
    );
    assert_eq!(run_tool(default_filter(), &["sh", "-c", &shell]), Some(Ended::Exit(0)));

    let python = "import subprocess, threading, json, tempfile, os, socket, multiprocessing, asyncio\n\
        t = threading.Thread(target=lambda: None); t.start(); t.join()\n\
        assert subprocess.run(['true']).returncode == 0\n\
        with tempfile.TemporaryDirectory() as d: open(os.path.join(d, 'x'), 'w').write('{}')\n\
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); s.close()\n\
        with multiprocessing.Pool(2) as p: assert p.map(abs, [-1, -2]) == [1, 2]\n\
        asyncio.run(asyncio.sleep(0))\n";
    if let Some(ended) = run_tool(default_filter(), &["python3", "-c", python]) {
        assert_eq!(ended, Ended::Exit(0), "python3");
    }
    if let Some(ended) = run_tool(default_filter(), &["git", "--version"]) {
        assert_eq!(ended, Ended::Exit(0), "git");
    }
    let gcc = format!("cd {dir} && printf 'int main(void){{return 0;}}' >a.c && gcc -O1 -o a a.c && ./a");
    if let Some(ended) = run_tool(default_filter(), &["sh", "-c", &gcc]) {
        assert_eq!(ended, Ended::Exit(0), "gcc");
    }
    let rust = format!(
        "cd {dir} && cargo new --quiet --offline --vcs none hello && cd hello && \
         CARGO_TARGET_DIR={dir}/target cargo run --quiet --offline >out && grep -q Hello out"
    );
    if let Some(ended) = run_tool(default_filter(), &["sh", "-c", &rust]) {
        assert_eq!(ended, Ended::Exit(0), "cargo and rustc");
    }
    let node = "const fs = require('fs'); fs.readFileSync('/proc/self/status'); \
                require('child_process').execFileSync('true'); \
                fs.promises.readFile('/proc/self/status').then(() => process.exit(0))";
    if let Some(ended) = run_tool(default_filter(), &["node", "-e", node]) {
        assert_eq!(ended, Ended::Exit(0), "node");
    }
}

#[test]
fn dockers_default_profile_loads_compiles_and_runs_a_shell() {
    let path = repo().join("../shared/seccomp/docker-default.json");
    let started = Instant::now();
    let profile = SeccompProfile::load(&path).unwrap();
    let compiled = profile.compile().unwrap();
    eprintln!("Docker's profile loaded and compiled in {:?}: {compiled:?}", started.elapsed());
    assert_eq!(run_tool(&compiled, &["sh", "-c", "ls / >/dev/null"]), Some(Ended::Exit(0)));
    // Docker lets keyctl through; airlock's ABI guard still kills i386 calls under it.
    let i386 = || if i386_getpid() > 0 { 0 } else { 1 };
    assert_eq!(in_child(Some(&compiled), i386), Ended::Signal(libc::SIGSYS));
}

#[test]
fn the_kernel_runs_a_program_whose_subtrees_are_jumped_over() {
    // The calls numbered below 150 that the default profile names (getpid, 39, among
    // them) get argument rules: the search's subtrees are longer than a conditional jump
    // reaches.
    let text = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": [NAMES], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [
            {"index": 0, "value": 7, "op": "SCMP_CMP_GT"},
            {"index": 4, "value": 4294967296, "op": "SCMP_CMP_NE"}]},
        {"names": [NAMES], "action": "SCMP_ACT_KILL_PROCESS", "args": [
            {"index": 5, "value": 3, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]}
    ]}"#;
    let mut names: Vec<String> =
        default_filter().profile().rules().iter().filter(|r| r.nr < 150).map(|r| format!("{:?}", r.name)).collect();
    names.dedup();
    assert!(names.contains(&"\"getpid\"".to_string()) && names.len() > 100, "{names:?}");
    let text = text.replace("NAMES", &names.join(", "));
    let compiled = SeccompProfile::from_docker_json(&text, "far.json").unwrap().compile().unwrap();
    let program = compiled.programs().next().unwrap();
    assert!(program.iter().any(|i| i.code == 0x05), "no ja in {} instructions", program.len());
    // getpid's leaf, deep in the tree: no rule matches -> allowed; arg0 > 7 -> EPERM.
    assert_eq!(in_child(Some(&compiled), || call(libc::SYS_getpid, &[])), Ended::Exit(0));
    assert_eq!(in_child(Some(&compiled), || call(libc::SYS_getpid, &[8])), Ended::Exit(EPERM));
    assert_eq!(in_child(Some(&compiled), || call(libc::SYS_getpid, &[0, 0, 0, 0, 0, 1])), Ended::Signal(libc::SIGSYS));
    // A call past the rules (gettid, 186) falls to the default.
    assert_eq!(in_child(Some(&compiled), || call(libc::SYS_gettid, &[9])), Ended::Exit(0));
}
