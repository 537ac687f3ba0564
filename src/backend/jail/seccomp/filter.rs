//! From a validated profile to the BPF programs the kernel runs, and their installation.
//!
//! Owns: [`CompiledSeccomp`] (built once, at policy load), the hand-written ABI guard
//! program, and [`CompiledSeccomp::apply`].
//! Must not: parse or resolve profiles (`profile` does), or allocate, lock or log in
//! `apply`, which runs in a freshly forked child.
//!
//! The programs, in install order (see the parent module for why the stack means exactly
//! "the profile's rule, else its default"):
//!
//! 1. the ABI guard: a call through any ABI but native x86_64 (an i386 `int 0x80` or
//!    `sysenter`, an x32 number with bit 30 set) kills the process;
//! 2. the base filter: `Allow` if any rule of the profile names this call and its
//!    arguments match, else the default action (left out when the default is `Allow`);
//! 3. one filter per other action, last-seen first: that action if one of its rules
//!    matches, else `Allow`.

use std::{fmt, io, sync::Arc};

use seccompiler::{BpfProgram, SeccompCmpArgLen, SeccompCondition, SeccompFilter, SeccompRule, TargetArch};

use super::{
    error::{Result, SeccompError},
    profile::{Action, ArgOp, SeccompProfile, SyscallRule},
};

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`): the only ABI
/// whose syscall numbers the rules speak. Any other value in `seccomp_data.arch` (i386
/// through `int 0x80`) means the same number names a different call.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// `__X32_SYSCALL_BIT`: x32 calls arrive with arch x86_64 and this bit in the number. They
/// reach the same kernel functions as the native ones, so a rule written for `ptrace` (101)
/// would not see x32 `ptrace` (0x40000065) unless this bit is refused first.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data` (`nr` then `arch`).
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

/// Classic BPF opcodes (`linux/bpf_common.h`) used by the ABI guard: `BPF_LD | BPF_W |
/// BPF_ABS` (load a 32-bit word of `seccomp_data`), `BPF_JMP | BPF_JEQ | BPF_K`,
/// `BPF_JMP | BPF_JSET | BPF_K` (jump if any of the bits is set), `BPF_RET | BPF_K`.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

/// The compiled filters of one profile: cheap to clone (an `Arc`), `Send + Sync`, and
/// ready to install with no further work.
#[derive(Clone)]
pub struct CompiledSeccomp {
    inner: Arc<Compiled>,
}

struct Compiled {
    profile: SeccompProfile,
    /// In install order.
    programs: Vec<Program>,
    /// `SECCOMP_FILTER_FLAG_*` for every install.
    flags: libc::c_ulong,
}

struct Program {
    /// What the program is, for `Debug` and `policy explain`.
    purpose: String,
    instructions: Vec<libc::sock_filter>,
}

impl fmt::Debug for CompiledSeccomp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let programs: Vec<(&str, usize)> =
            self.inner.programs.iter().map(|p| (p.purpose.as_str(), p.instructions.len())).collect();
        f.debug_struct("CompiledSeccomp")
            .field("profile", &self.inner.profile.source_name())
            .field("programs", &programs)
            .finish()
    }
}

impl SeccompProfile {
    /// Builds the BPF programs for this profile. Pure: nothing is installed. Call it once,
    /// when the policy loads, and [`CompiledSeccomp::apply`] per jailed process.
    pub fn compile(&self) -> Result<CompiledSeccomp> {
        let mut programs = vec![Program {
            purpose: "ABI guard: kill any call not made through the native x86_64 ABI".into(),
            instructions: abi_guard(),
        }];
        let default = self.default_action();
        if default != Action::Allow {
            let all: Vec<&SyscallRule> = self.rules().iter().collect();
            programs.push(self.program(
                format!("base: allow what a rule names, else {default}"),
                &all,
                Action::Allow,
                default,
            )?);
        }
        // Installed last = consulted first: the action that appears first in the file is
        // installed last, so that it wins a tie between equal precedences.
        for &action in self.action_order().iter().rev() {
            if action == Action::Allow {
                continue;
            }
            let rules: Vec<&SyscallRule> = self.rules().iter().filter(|r| r.action == action).collect();
            programs.push(self.program(
                format!("{action} for its rules, else allow"),
                &rules,
                action,
                Action::Allow,
            )?);
        }
        let mut flags = libc::SECCOMP_FILTER_FLAG_TSYNC;
        if self.log_flag() {
            flags |= libc::SECCOMP_FILTER_FLAG_LOG;
        }
        Ok(CompiledSeccomp { inner: Arc::new(Compiled { profile: self.clone(), programs, flags }) })
    }

    /// One seccompiler program: `on_match` for the calls `rules` match, else `otherwise`.
    fn program(&self, purpose: String, rules: &[&SyscallRule], on_match: Action, otherwise: Action) -> Result<Program> {
        let compile_error = |message: String| SeccompError::Compile {
            source_name: self.source_name().to_string(),
            filter: purpose.clone(),
            message,
        };
        // Per syscall: None = matches whatever the arguments (an unconditional rule wins
        // over conditional ones), Some(rules) = matches when one of them does.
        let mut by_nr: std::collections::BTreeMap<i64, Option<Vec<SeccompRule>>> = std::collections::BTreeMap::new();
        for rule in rules {
            let slot = by_nr.entry(i64::from(rule.nr)).or_insert_with(|| Some(Vec::new()));
            if rule.conditions.is_empty() {
                *slot = None;
                continue;
            }
            let Some(chain) = slot else { continue };
            let conditions = rule
                .conditions
                .iter()
                .map(|c| {
                    let (op, value) = match c.op {
                        ArgOp::Ne => (seccompiler::SeccompCmpOp::Ne, c.value),
                        ArgOp::Lt => (seccompiler::SeccompCmpOp::Lt, c.value),
                        ArgOp::Le => (seccompiler::SeccompCmpOp::Le, c.value),
                        ArgOp::Eq => (seccompiler::SeccompCmpOp::Eq, c.value),
                        ArgOp::Ge => (seccompiler::SeccompCmpOp::Ge, c.value),
                        ArgOp::Gt => (seccompiler::SeccompCmpOp::Gt, c.value),
                        ArgOp::MaskedEq { mask } => (seccompiler::SeccompCmpOp::MaskedEq(mask), c.value),
                    };
                    SeccompCondition::new(c.index, SeccompCmpArgLen::Qword, op, value)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| compile_error(e.to_string()))?;
            chain.push(SeccompRule::new(conditions).map_err(|e| compile_error(e.to_string()))?);
        }
        let by_nr = by_nr.into_iter().map(|(nr, chain)| (nr, chain.unwrap_or_default())).collect();
        let filter =
            SeccompFilter::new(by_nr, otherwise.to_seccompiler(), on_match.to_seccompiler(), TargetArch::x86_64)
                .map_err(|e| compile_error(e.to_string()))?;
        let bpf: BpfProgram = filter.try_into().map_err(|e: seccompiler::BackendError| compile_error(e.to_string()))?;
        let instructions =
            bpf.into_iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
        Ok(Program { purpose, instructions })
    }
}

/// The ABI guard: allow native x86_64 numbers, kill the process for anything else.
///
/// Kill, not an errno: an x86_64 tool never makes these calls (its libc does not know
/// them), so one is an escape attempt or a hand-made syscall, and a SIGSYS shows in the
/// outcome and the audit record where an errno could be retried another way or ignored.
/// seccompiler's own programs also end a foreign-arch call in `KILL_PROCESS`, so the
/// answer is the same from every filter.
fn abi_guard() -> Vec<libc::sock_filter> {
    let stmt = |code, k| libc::sock_filter { code, jt: 0, jf: 0, k };
    let jump = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    vec![
        // 0: A = arch
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_ARCH),
        // 1: not x86_64 -> 5 (kill)
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, 3),
        // 2: A = nr
        stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR),
        // 3: x32 bit set -> 5 (kill), else 4
        jump(BPF_JMP_JSET_K, X32_SYSCALL_BIT, 1, 0),
        // 4:
        stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW),
        // 5:
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

impl CompiledSeccomp {
    /// The profile these programs were compiled from (for `policy explain` and tests).
    pub fn profile(&self) -> &SeccompProfile {
        &self.inner.profile
    }

    /// How many BPF programs [`CompiledSeccomp::apply`] installs.
    pub fn program_count(&self) -> usize {
        self.inner.programs.len()
    }

    /// The BPF instructions of every program, in install order.
    pub fn programs(&self) -> impl Iterator<Item = &[libc::sock_filter]> {
        self.inner.programs.iter().map(|p| p.instructions.as_slice())
    }

    /// The `SECCOMP_FILTER_FLAG_*` flags every program is installed with (for a caller
    /// that installs the programs itself with raw system calls, as the jail's child does).
    pub fn install_flags(&self) -> libc::c_ulong {
        self.inner.flags
    }

    /// What each program is for, in install order.
    pub fn program_purposes(&self) -> impl Iterator<Item = &str> {
        self.inner.programs.iter().map(|p| p.purpose.as_str())
    }

    /// Sets `no_new_privs` and installs every program, for every thread of the calling
    /// process (`SECCOMP_FILTER_FLAG_TSYNC`).
    ///
    /// Safe to call between `fork` and `exec` of a multi-threaded parent: it allocates
    /// nothing, takes no lock and makes only `prctl` and `seccomp` system calls (a
    /// [`SeccompError`] for these variants holds no heap data). Call it last in the jail's
    /// set-up, right before `execve`: the filters forbid what set-up needs (mount, unshare,
    /// ...).
    ///
    /// On error some programs may already be installed: the process must exit, never run
    /// the tool.
    pub fn apply(&self) -> Result<()> {
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only and touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(SeccompError::NoNewPrivs { source: io::Error::last_os_error() });
        }
        let count = self.inner.programs.len();
        for (index, program) in self.inner.programs.iter().enumerate() {
            let Ok(len) = u16::try_from(program.instructions.len()) else {
                return Err(SeccompError::Install { index, count, source: io::Error::from_raw_os_error(libc::E2BIG) });
            };
            let fprog = libc::sock_fprog { len, filter: program.instructions.as_ptr().cast_mut() };
            // SAFETY: `fprog` points at `len` initialized instructions that outlive the
            // call; the kernel copies them and never writes through the pointer.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    self.inner.flags,
                    &fprog as *const libc::sock_fprog,
                )
            };
            if rc < 0 {
                return Err(SeccompError::Install { index, count, source: io::Error::last_os_error() });
            }
            if rc > 0 {
                return Err(SeccompError::Tsync { thread: libc::pid_t::try_from(rc).unwrap_or(libc::pid_t::MAX) });
            }
        }
        Ok(())
    }
}
