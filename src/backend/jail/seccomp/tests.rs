//! Unit tests of the pure parts: parsing and resolving profiles (airlock's default and
//! Docker's own), what they decide, and that the compiled BPF decides the same, checked
//! by running it in a small interpreter of classic BPF.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use super::*;

const EPERM: Action = Action::Errno(1);
const ENOSYS: Action = Action::Errno(38);

const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWNET: u64 = 0x4000_0000;
const CLONE_NEWTIME: u64 = 0x80;
const THREAD_FLAGS: u64 = 0x3d0f00; // what glibc's pthread_create passes to clone

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn default_path() -> PathBuf {
    repo().join("policies/seccomp/default.json")
}

fn docker_path() -> PathBuf {
    repo().join("../shared/seccomp/docker-default.json")
}

fn default_profile() -> SeccompProfile {
    SeccompProfile::load(&default_path()).unwrap()
}

const KERNEL_6_18: Option<KernelVersion> = Some(KernelVersion { major: 6, minor: 18 });

fn docker_profile_on(kernel: Option<KernelVersion>) -> SeccompProfile {
    let text = std::fs::read_to_string(docker_path()).unwrap();
    SeccompProfile::from_docker_json_on(&text, "docker-default.json", kernel).unwrap()
}

fn profile(text: &str) -> SeccompProfile {
    SeccompProfile::from_docker_json_on(text, "test.json", KERNEL_6_18).unwrap()
}

fn profile_errors(text: &str) -> Vec<crate::policy::PolicyError> {
    match SeccompProfile::from_docker_json_on(text, "bad.json", KERNEL_6_18) {
        Err(SeccompError::Profile(errors)) => errors.0,
        other => panic!("expected profile errors, got {other:?}"),
    }
}

// ------------------------------------------------------------------ default profile

#[test]
fn default_profile_loads_with_every_name_an_x86_64_call() {
    let profile = default_profile();
    assert_eq!(profile.default_action(), EPERM);
    assert!(profile.unresolved_names().is_empty(), "not x86_64 calls: {:?}", profile.unresolved_names());
    assert!(profile.rules().iter().all(|rule| rule.comment.is_some()));
}

#[test]
fn default_profile_denies_each_listed_call_whatever_the_allow_rules_say() {
    let profile = default_profile();
    let denied = [
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "mount",
        "umount2",
        "pivot_root",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "setns",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "request_key",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "userfaultfd",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "open_by_handle_at",
        "name_to_handle_at",
        "acct",
        "swapon",
        "swapoff",
        "reboot",
        "settimeofday",
        "clock_settime",
        "adjtimex",
        "syslog",
        "quotactl",
        "lookup_dcookie",
        "iopl",
        "ioperm",
        "nfsservctl",
        "uselib",
        "ustat",
        "sysfs",
        "_sysctl",
        "create_module",
        "get_kernel_syms",
        "query_module",
        "kcmp",
        "fanotify_init",
    ];
    for name in denied {
        assert_eq!(profile.decide(name, &[]), EPERM, "{name}");
        // An explicit rule, not just the default: adding an allow rule cannot undo it.
        let explicit =
            profile.rules().iter().any(|rule| rule.name == name && rule.action == EPERM && rule.conditions.is_empty());
        assert!(explicit, "{name} has no explicit unconditional denial");
    }
}

#[test]
fn an_allow_rule_added_by_mistake_does_not_undo_a_denial() {
    let text = std::fs::read_to_string(default_path()).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["syscalls"].as_array_mut().unwrap().push(serde_json::json!({
        "names": ["ptrace", "bpf", "clone", "socket", "ioctl", "unshare"],
        "action": "SCMP_ACT_ALLOW"
    }));
    let widened = profile(&json.to_string());
    assert_eq!(widened.decide("ptrace", &[]), EPERM);
    assert_eq!(widened.decide("bpf", &[]), EPERM);
    assert_eq!(widened.decide("clone", &[CLONE_NEWUSER]), EPERM);
    assert_eq!(widened.decide("unshare", &[CLONE_NEWNET]), EPERM);
    assert_eq!(widened.decide("socket", &[16]), EPERM);
    assert_eq!(widened.decide("ioctl", &[0, 0x5412]), EPERM);
    // What the mistake did allow:
    assert_eq!(widened.decide("socket", &[38]), Action::Allow);
}

#[test]
fn default_profile_clone_allows_threads_and_fork_but_no_namespace() {
    let p = default_profile();
    assert_eq!(p.decide("clone", &[THREAD_FLAGS]), Action::Allow);
    assert_eq!(p.decide("clone", &[libc::SIGCHLD as u64]), Action::Allow);
    for flag in [CLONE_NEWNS, 0x0200_0000, 0x0400_0000, 0x0800_0000, CLONE_NEWUSER, 0x2000_0000, CLONE_NEWNET] {
        assert_eq!(p.decide("clone", &[flag]), EPERM, "{flag:#x}");
        assert_eq!(p.decide("clone", &[flag | THREAD_FLAGS]), EPERM, "{flag:#x}");
    }
    // The low byte of clone's flags is the exit signal, not CLONE_NEWTIME.
    assert_eq!(p.decide("clone", &[CLONE_NEWTIME | 0x11]), Action::Allow);
    assert_eq!(p.decide("clone3", &[]), ENOSYS);
}

#[test]
fn default_profile_unshare_allows_only_the_callers_own_state() {
    let p = default_profile();
    assert_eq!(p.decide("unshare", &[0]), Action::Allow);
    assert_eq!(p.decide("unshare", &[0x400]), Action::Allow, "CLONE_FILES");
    assert_eq!(p.decide("unshare", &[0x200 | 0x40000]), Action::Allow);
    assert_eq!(p.decide("unshare", &[CLONE_NEWUSER]), EPERM);
    assert_eq!(p.decide("unshare", &[CLONE_NEWTIME]), EPERM);
    assert_eq!(p.decide("unshare", &[CLONE_NEWNS | 0x400]), EPERM);
    assert_eq!(p.decide("unshare", &[0x100]), EPERM, "CLONE_VM is not own state");
    assert_eq!(p.decide("setns", &[3, 0]), EPERM);
}

#[test]
fn default_profile_ioctl_denies_terminal_injection_including_high_bits() {
    let p = default_profile();
    assert_eq!(p.decide("ioctl", &[0, libc::TCGETS]), Action::Allow);
    assert_eq!(p.decide("ioctl", &[0, libc::TIOCGWINSZ]), Action::Allow);
    for request in [0x5412u64, 0x541c, 0x1_0000_5412, 0xffff_ffff_0000_541c] {
        assert_eq!(p.decide("ioctl", &[0, request]), EPERM, "{request:#x}");
    }
}

#[test]
fn default_profile_socket_allows_unix_and_ip_only() {
    let p = default_profile();
    for domain in [1u64, 2, 10] {
        assert_eq!(p.decide("socket", &[domain, 1, 0]), Action::Allow, "{domain}");
    }
    for domain in [16u64, 17, 40, 38, 0x1_0000_0010, 0x1_0000_0002] {
        assert_eq!(p.decide("socket", &[domain, 1, 0]), EPERM, "{domain:#x}");
    }
    assert_eq!(p.decide("socketpair", &[1, 1, 0]), Action::Allow);
    assert_eq!(p.decide("socketpair", &[2, 1, 0]), EPERM);
}

#[test]
fn default_profile_personality_allows_only_harmless_values() {
    let p = default_profile();
    for value in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(p.decide("personality", &[value]), Action::Allow, "{value:#x}");
    }
    for value in [0x0040000u64, 0x0400000, 0x0100000, 0x0040008, 0x1_0000_0000] {
        assert_eq!(p.decide("personality", &[value]), EPERM, "{value:#x}");
    }
}

#[test]
fn default_profile_allows_what_ordinary_tools_use_and_refuses_the_rest() {
    let p = default_profile();
    for name in [
        "read",
        "openat",
        "execve",
        "mmap",
        "rt_sigreturn",
        "futex",
        "wait4",
        "getrandom",
        "statx",
        "epoll_pwait",
        "arch_prctl",
        "rseq",
        "prlimit64",
        "pipe2",
        "sched_getaffinity",
    ] {
        assert_eq!(p.decide(name, &[]), Action::Allow, "{name}");
    }
    // Not listed at all: the default.
    assert_eq!(p.decide("memfd_secret", &[]), EPERM);
    assert_eq!(p.decide("no_such_call", &[]), EPERM);
}

// ------------------------------------------------------------------ Docker's profile

#[test]
fn docker_profile_resolves_includes_and_excludes_for_amd64_without_capabilities() {
    let p = docker_profile_on(KERNEL_6_18);
    assert_eq!(p.default_action(), EPERM);
    // Plain allowlist entries.
    assert_eq!(p.decide("read", &[]), Action::Allow);
    // includes.arches [amd64, x32]
    assert_eq!(p.decide("arch_prctl", &[]), Action::Allow);
    // includes.arches of other machines: dropped.
    assert_eq!(p.decide("riscv_flush_icache", &[]), EPERM);
    // includes.caps CAP_SYS_ADMIN: never, airlock holds no capability.
    assert_eq!(p.decide("mount", &[]), EPERM);
    assert_eq!(p.decide("bpf", &[]), EPERM);
    assert_eq!(p.decide("reboot", &[]), EPERM);
    assert_eq!(p.decide("open_by_handle_at", &[]), EPERM);
    // excludes.caps CAP_SYS_ADMIN: always kept; clone3 gets ENOSYS.
    assert_eq!(p.decide("clone3", &[]), ENOSYS);
    assert_eq!(p.decide("clone", &[THREAD_FLAGS]), Action::Allow);
    assert_eq!(p.decide("clone", &[CLONE_NEWUSER]), EPERM);
    // The s390 clone rule (flags in argument 1) is not for amd64.
    assert_eq!(p.decide("clone", &[CLONE_NEWUSER, 0]), EPERM);
    // includes.minKernel 4.8: ptrace is allowed by Docker on new kernels.
    assert_eq!(p.decide("ptrace", &[]), Action::Allow);
    // socket: Docker allows everything but AF_ALG (38) and AF_VSOCK (40).
    assert_eq!(p.decide("socket", &[16]), Action::Allow);
    assert_eq!(p.decide("socket", &[40]), EPERM);
    assert_eq!(p.decide("personality", &[0xffff_ffff]), Action::Allow);
    assert_eq!(p.decide("personality", &[0x0040000]), EPERM);
    // Names of other ABIs are skipped, as runc does.
    assert!(p.unresolved_names().iter().any(|n| n == "chown32"));
    assert!(!p.unresolved_names().iter().any(|n| n == "read"));
}

#[test]
fn docker_profile_min_kernel_follows_the_kernel() {
    let old = docker_profile_on(Some(KernelVersion { major: 4, minor: 4 }));
    assert_eq!(old.decide("ptrace", &[]), EPERM);
    let new = docker_profile_on(Some(KernelVersion { major: 4, minor: 8 }));
    assert_eq!(new.decide("ptrace", &[]), Action::Allow);
}

#[test]
fn docker_profile_loads_for_the_running_kernel_and_compiles() {
    let p = SeccompProfile::load(&docker_path()).unwrap();
    let compiled = p.compile().unwrap();
    assert_programs_equal_decide(&compiled);
}

// ------------------------------------------------------------------ semantics

#[test]
fn strictest_matching_rule_wins_and_default_applies_only_when_none_matches() {
    // Default kill: a rule's errno must still be the answer (not the default).
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9,
             "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
            {"names": ["getppid"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GE"}]}
        ]}"#,
    );
    assert_eq!(p.decide("read", &[]), Action::Allow);
    assert_eq!(p.decide("write", &[1]), Action::Allow);
    assert_eq!(p.decide("write", &[2]), Action::Errno(9));
    assert_eq!(p.decide("getpid", &[]), Action::Errno(38));
    assert_eq!(p.decide("getppid", &[0]), Action::Log);
    assert_eq!(p.decide("getppid", &[5]), Action::Trap);
    assert_eq!(p.decide("close", &[]), Action::KillProcess);
    assert_programs_equal_decide(&p.compile().unwrap());
}

#[test]
fn between_two_errnos_the_first_in_the_file_wins() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GE"}]},
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
             "args": [{"index": 0, "value": 20, "op": "SCMP_CMP_LE"}]}
        ]}"#,
    );
    assert_eq!(p.decide("read", &[15]), Action::Errno(13));
    assert_eq!(p.decide("read", &[5]), Action::Errno(5));
    assert_eq!(p.decide("read", &[25]), Action::Errno(13));
    assert_programs_equal_decide(&p.compile().unwrap());
}

#[test]
fn comparing_one_argument_twice_means_any_of_them_as_in_runc() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]}
        ]}"#,
    );
    assert_eq!(p.decide("socket", &[1]), Action::Allow);
    assert_eq!(p.decide("socket", &[2]), Action::Allow);
    assert_eq!(p.decide("socket", &[3]), EPERM);
    // Different arguments: all must hold.
    assert_eq!(p.decide("read", &[1, 2]), Action::Allow);
    assert_eq!(p.decide("read", &[1, 3]), EPERM);
    assert_programs_equal_decide(&p.compile().unwrap());
}

#[test]
fn comparisons_are_on_64_bits() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 2, "value": 4294967296, "op": "SCMP_CMP_GT"}]},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 1, "value": 18446744069414584320, "valueTwo": 4294967296,
                 "op": "SCMP_CMP_MASKED_EQ"}]}
        ]}"#,
    );
    assert_eq!(p.decide("read", &[0, 0, 0x1_0000_0001]), Action::Allow);
    assert_eq!(p.decide("read", &[0, 0, 0xffff_ffff]), EPERM);
    assert_eq!(p.decide("write", &[0, 0x1_ffff_ffff]), Action::Allow);
    assert_eq!(p.decide("write", &[0, 0x2_0000_0000]), EPERM);
    assert_programs_equal_decide(&p.compile().unwrap());
}

#[test]
fn a_blocklist_profile_compiles_to_a_short_search() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
    );
    let compiled = p.compile().unwrap();
    // ABI guard (6), then: nr >= 101? nr >= 102? and the two rets they share.
    assert_eq!(compiled.programs().map(<[_]>::len).collect::<Vec<_>>(), [6 + 2 + 2]);
    assert_programs_equal_decide(&compiled);
}

#[test]
fn a_denial_that_only_repeats_the_default_is_left_out_and_one_that_overrides_an_allow_is_kept() {
    let p = profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["socket", "socketpair"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 4294967295, "valueTwo": 16, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["socketpair"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 255, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]}"#,
    );
    // socket(16) is refused by the default anyway: its denial is left out. The denial of
    // socketpair overlaps the allow rule (family 1): it decides, and stays.
    assert_eq!(p.decide("socket", &[16]), EPERM);
    assert_eq!(p.decide("socket", &[1]), Action::Allow);
    assert_eq!(p.decide("socketpair", &[1]), EPERM);
    let compiled = p.compile().unwrap();
    let program = compiled.programs().next().unwrap();
    // A masked comparison is two `and`s (high and low word): only socketpair's is left.
    assert_eq!(program.iter().filter(|i| i.code == 0x54).count(), 2);
    assert_programs_equal_decide(&compiled);
}

#[test]
fn compiled_default_equals_decide_for_every_call_and_many_arguments() {
    let compiled = default_profile().compile().unwrap();
    assert_programs_equal_decide(&compiled);
}

#[test]
fn abi_guard_kills_i386_and_x32_calls() {
    let compiled = default_profile().compile().unwrap();
    let getpid = 39;
    assert_eq!(run_stack(&compiled, AUDIT_ARCH_X86_64, getpid, &[0; 6]), Action::Allow);
    // i386 getpid is 20, i386 arch.
    assert_eq!(run_stack(&compiled, AUDIT_ARCH_I386, 20, &[0; 6]), Action::KillProcess);
    assert_eq!(run_stack(&compiled, AUDIT_ARCH_X86_64, 0x4000_0000 | getpid, &[0; 6]), Action::KillProcess);
    // Even under a profile that allows everything.
    let open = profile(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).compile().unwrap();
    assert_eq!(open.programs().map(<[_]>::len).collect::<Vec<_>>(), [6 + 1]);
    assert_eq!(run_stack(&open, AUDIT_ARCH_X86_64, 0x4000_0000 | 101, &[0; 6]), Action::KillProcess);
    assert_eq!(run_stack(&open, AUDIT_ARCH_I386, 26, &[0; 6]), Action::KillProcess);
}

#[test]
fn compiled_profiles_are_shared_cheaply_across_threads() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<CompiledSeccomp>();
    let compiled = default_profile().compile().unwrap();
    let copy = compiled.clone();
    assert!(std::ptr::eq(copy.profile(), compiled.profile()));
}

#[test]
fn load_profiles_reads_every_json_by_name() {
    let profiles = load_profiles(&repo().join("policies/seccomp")).unwrap();
    assert!(profiles.contains_key(DEFAULT_PROFILE));
}

#[test]
fn kernel_versions_parse_from_min_kernel_and_uname() {
    assert_eq!(KernelVersion::parse("4.8"), Some(KernelVersion { major: 4, minor: 8 }));
    assert_eq!(KernelVersion::parse("6.18.44-fc-v657"), Some(KernelVersion { major: 6, minor: 18 }));
    assert_eq!(KernelVersion::parse("6"), None);
    assert_eq!(KernelVersion::parse("x.1"), None);
    assert!(KernelVersion::running().is_some());
}

// ------------------------------------------------------------------ errors

#[test]
fn bad_json_names_the_file_line_and_a_fix() {
    let errors = profile_errors(
        "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [\n    {\"names\": [\"read\"] \"action\": \"SCMP_ACT_ALLOW\"}\n  ]\n}",
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, PathBuf::from("bad.json"));
    assert_eq!(errors[0].line, 4);
    assert!(errors[0].help.contains("JSON syntax"), "{}", errors[0].help);
}

#[test]
fn unknown_keys_and_names_are_refused_with_the_allowed_ones() {
    let errors = profile_errors("{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscals\": []\n}");
    assert_eq!(errors[0].line, 3);
    assert!(errors[0].message.contains("syscals"), "{}", errors[0].message);
    assert!(errors[0].help.contains("`syscalls`"), "{}", errors[0].help);

    let errors = profile_errors(
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [\n\n  {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALOW\"}]}",
    );
    assert_eq!(errors[0].line, 3);
    assert!(errors[0].help.contains("SCMP_ACT_ALLOW"), "{}", errors[0].help);

    let errors = profile_errors(
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [\n  {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"arg\": []}]}",
    );
    assert_eq!(errors[0].line, 2);
    assert!(errors[0].help.contains("`args`"), "{}", errors[0].help);
}

#[test]
fn meaningless_rules_are_all_reported_at_their_own_lines() {
    let text = r#"{
  "defaultAction": "SCMP_ACT_ERRNO",
  "syscalls": [
    {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1},
    {"names": ["write"], "action": "SCMP_ACT_NOTIFY"},
    {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO",
     "args": [{"index": 1, "value": 255, "valueTwo": 256, "op": "SCMP_CMP_MASKED_EQ"}]},
    {"names": ["mmap"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]},
    {"names": [], "action": "SCMP_ACT_ALLOW"},
    {"names": ["close"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "five"}},
    {"names": ["open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000},
    {"names": ["open"], "name": "close", "action": "SCMP_ACT_ALLOW"}
  ]
}"#;
    let errors = profile_errors(text);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![4, 5, 7, 9, 10, 11, 12, 13], "{errors:#?}");
    assert!(errors[0].help.contains("remove `errnoRet`"));
    assert!(errors[1].message.contains("SCMP_ACT_NOTIFY"));
    assert!(errors[2].message.contains("never match"));
    assert!(errors[3].help.contains("0 to 5"));
    assert!(errors[4].message.contains("names no syscall"));
    assert!(errors[5].help.contains("MAJOR.MINOR"));
    assert!(errors[6].help.contains("4095"));
    assert!(errors[7].message.contains("both `name` and `names`"));
    let shown = SeccompError::Profile(crate::policy::PolicyErrors(errors)).to_string();
    assert!(shown.starts_with("bad.json:4:"), "{shown}");
}

#[test]
fn profiles_for_other_machines_or_supervisors_are_refused() {
    let errors = profile_errors(r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_AARCH64"]}"#);
    assert!(errors[0].message.contains("SCMP_ARCH_X86_64"));
    let errors = profile_errors(r#"{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/sup.sock"}"#);
    assert!(errors[0].message.contains("listenerPath"));
    let errors = profile_errors(r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}"#);
    assert!(errors[0].message.contains("speculative"));
    let logged = profile(r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}"#);
    assert!(logged.log_flag());
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let error = SeccompProfile::load(Path::new("/nonexistent/p.json")).unwrap_err();
    assert!(matches!(error, SeccompError::Read { .. }));
    assert!(error.to_string().contains("/nonexistent/p.json"));
}

// ------------------------------------------------------------------ BPF interpreter

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// Runs one classic BPF program on a `struct seccomp_data`, as the kernel would (only the
/// instructions the compiler emits).
fn run_program(program: &[libc::sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, arg) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
    }
    let word = |k: u32| {
        let k = k as usize;
        u32::from_le_bytes([data[k], data[k + 1], data[k + 2], data[k + 3]])
    };
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let i = program[pc];
        let jump = |taken: bool| if taken { i.jt as usize } else { i.jf as usize };
        pc += 1;
        match i.code {
            0x20 => a = word(i.k),            // ld [k]
            0x54 => a &= i.k,                 // and #k
            0x05 => pc += i.k as usize,       // ja
            0x15 => pc += jump(a == i.k),     // jeq
            0x25 => pc += jump(a > i.k),      // jgt
            0x35 => pc += jump(a >= i.k),     // jge
            0x45 => pc += jump(a & i.k != 0), // jset
            0x06 => return i.k,               // ret #k
            code => panic!("unexpected BPF opcode {code:#x}"),
        }
    }
}

/// Runs every program and combines the results as `seccomp_run_filters` does: the most
/// recently installed first, a result replaces the current one only if strictly stricter.
fn run_stack(compiled: &CompiledSeccomp, arch: u32, nr: u32, args: &[u64; 6]) -> Action {
    let programs: Vec<&[libc::sock_filter]> = compiled.programs().collect();
    let mut ret = libc::SECCOMP_RET_ALLOW;
    for program in programs.iter().rev() {
        let current = run_program(program, arch, nr, args);
        let action = |r: u32| (r & libc::SECCOMP_RET_ACTION_FULL) as i32;
        if action(current) < action(ret) {
            ret = current;
        }
    }
    let data = (ret & libc::SECCOMP_RET_DATA) as u16;
    match ret & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_KILL_PROCESS => Action::KillProcess,
        libc::SECCOMP_RET_KILL_THREAD => Action::KillThread,
        libc::SECCOMP_RET_TRAP => Action::Trap,
        libc::SECCOMP_RET_ERRNO => Action::Errno(data),
        libc::SECCOMP_RET_TRACE => Action::Trace(data),
        libc::SECCOMP_RET_LOG => Action::Log,
        libc::SECCOMP_RET_ALLOW => Action::Allow,
        other => panic!("unexpected seccomp return {other:#x}"),
    }
}

/// For every x86_64 call number (and a few unknown ones), with argument vectors made from
/// every value the profile compares against: the BPF stack's answer equals `decide`.
fn assert_programs_equal_decide(compiled: &CompiledSeccomp) {
    let profile = compiled.profile();
    let mut numbers: Vec<u32> = syscalls::X86_64_SYSCALLS.iter().map(|&(_, nr)| nr).collect();
    numbers.extend([470, 512, 1000, 0x3fff_ffff]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for nr in numbers {
        let rules: Vec<&SyscallRule> = profile.rules().iter().filter(|r| r.nr == nr).collect();
        let mut candidates = vec![0u64, 1, u64::MAX, 0xffff_ffff, 0x1_0000_0000];
        for condition in rules.iter().flat_map(|r| &r.conditions) {
            let v = condition.value;
            candidates.extend([v, v.wrapping_add(1), v.wrapping_sub(1), v | 0x1_0000_0000]);
            if let ArgOp::MaskedEq { mask } = condition.op {
                candidates.extend([mask, mask | v, !mask, v ^ (mask & mask.wrapping_neg())]);
            }
        }
        let mut vectors = vec![[0u64; 6]];
        if rules.iter().any(|r| !r.conditions.is_empty()) {
            for index in 0..6 {
                for &c in &candidates {
                    let mut args = [0u64; 6];
                    args[index] = c;
                    vectors.push(args);
                }
            }
            for _ in 0..200 {
                let mut args = [0u64; 6];
                for arg in &mut args {
                    *arg = candidates[(random() % candidates.len() as u64) as usize];
                }
                vectors.push(args);
            }
        }
        for args in vectors {
            let want = profile.decide_number(nr, &args);
            let got = run_stack(compiled, AUDIT_ARCH_X86_64, nr, &args);
            assert_eq!(got, want, "nr {nr} ({:?}) args {args:x?}", syscalls::name(nr));
        }
    }
}

#[test]
fn the_default_profile_is_one_short_program() {
    let compiled = default_profile().compile().unwrap();
    let lengths: Vec<usize> = compiled.programs().map(<[_]>::len).collect();
    // One program, under 200 instructions (shared `ret`s, no rule that only repeats the
    // default): the kernel's install cost grows with it, on every jailed call.
    assert_eq!(lengths.len(), 1);
    assert!(lengths[0] < 200, "{lengths:?}");
}

#[test]
fn subtrees_too_far_for_a_conditional_jump_are_jumped_over() {
    // 120 calls with three comparisons each: subtrees far longer than 255 instructions.
    let names: Vec<&str> = syscalls::X86_64_SYSCALLS.iter().map(|&(name, _)| name).take(120).collect();
    let text = format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {{"names": {names:?}, "action": "SCMP_ACT_ALLOW", "args": [
                {{"index": 0, "value": 7, "op": "SCMP_CMP_LE"}},
                {{"index": 3, "value": 4294967296, "op": "SCMP_CMP_NE"}}]}},
            {{"names": {names:?}, "action": "SCMP_ACT_KILL_PROCESS", "args": [
                {{"index": 5, "value": 3, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}}]}}
        ]}}"#
    );
    let compiled = profile(&text).compile().unwrap();
    let program = compiled.programs().next().unwrap();
    assert!(program.len() > 2 * 255);
    assert!(program.iter().any(|i| i.code == 0x05), "no ja in {} instructions", program.len());
    assert_programs_equal_decide(&compiled);
}
