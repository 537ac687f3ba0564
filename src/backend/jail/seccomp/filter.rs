//! From a validated profile to the one BPF program the kernel runs, and its installation.
//!
//! Owns: [`CompiledSeccomp`] (built once, at policy load), the code generator (classic
//! BPF, written here), and [`CompiledSeccomp::apply`].
//! Must not: parse or resolve profiles (`profile` does), or allocate, lock or log in
//! `apply`, which runs in a freshly cloned child.
//!
//! # The program
//!
//! 1. **ABI guard**: a call through any ABI but native x86_64 (an i386 `int 0x80` or
//!    `sysenter`, an x32 number with bit 30 set) kills the process. Kill, not an errno: an
//!    x86_64 tool never makes these calls (its libc does not know them), so one is an
//!    escape attempt, and a SIGSYS shows in the outcome and the audit record.
//! 2. **A binary search over the call number**: the numbers 0..2^32 are cut into ranges
//!    that decide alike (a run of calls that are allowed whatever their arguments is one
//!    range; a call with argument rules is a range of its own; unnamed numbers get the
//!    default action), and `jge` comparisons find the range in about log2(ranges) steps.
//! 3. **A leaf per range**: either a jump straight to one of the `ret`s at the end of the
//!    program, shared by every range decided by its number alone, or the call's argument
//!    rules in the order that decides ([`SeccompProfile::rules_in_order`]: strictest
//!    action first), each a run of 64-bit comparisons ending in its `ret`, then a `ret` of
//!    what applies when none matches (an unconditional rule's action, else the default).
//!    A rule that could only ever give what happens anyway is left out (see `leaf`).
//!
//! # Why not seccompiler, and why one program
//!
//! seccompiler emits one match action and one mismatch action per program, as a linear
//! chain of per-call blocks: airlock's default profile became four programs of 6, 2,043,
//! 528 and 10 instructions. The kernel's cost of installing a filter grows with its
//! length (it checks and JIT-compiles it, then runs it once per call number to find the
//! calls it always allows): 1.3-1.6 ms per jailed process, a third of the whole jail.
//! One tree-shaped program with every action in its leaves means exactly the profile's
//! "strictest matching rule, else the default" (no stack of filters to reason about), is
//! a few hundred instructions at most, installs in a fraction of the time, and lets the kernel
//! cache "always allowed" for every call whose leaf is a bare `ret ALLOW`, as before.
//!
//! Classic BPF conditional jumps reach at most 255 instructions ahead: a tree node whose
//! left subtree is longer jumps over it with a `ja` (32-bit offset). Every subtree and
//! leaf is self-contained (its jumps land inside it or on a shared `ret`), so nodes are
//! built bottom-up. When a jump cannot reach its shared `ret` (a long program), the
//! program is laid out again with a `ret` in every leaf.
//!
//! Why the length matters: installing costs about half a microsecond per instruction on
//! this machine's kernel (the check, the conversion, the JIT), on every jailed call. The
//! shared `ret`s and the dropped rules took the default profile from 368 instructions
//! to 169.

use std::{fmt, io, sync::Arc};

use super::{
    error::{Result, SeccompError},
    profile::{Action, ArgCondition, ArgOp, SeccompProfile},
};

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`): the only ABI
/// whose syscall numbers the rules speak. Any other value in `seccomp_data.arch` (i386
/// through `int 0x80`) means the same number names a different call.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// `__X32_SYSCALL_BIT`: x32 calls arrive with arch x86_64 and this bit in the number. They
/// reach the same kernel functions as the native ones, so a rule written for `ptrace` (101)
/// would not see x32 `ptrace` (0x40000065) unless this bit is refused first.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data`: `nr`, `arch`, then `args[6]` (64-bit, little endian).
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
const SECCOMP_DATA_ARGS: u32 = 16;

/// Classic BPF opcodes (`linux/bpf_common.h`), all the kernel's seccomp checker accepts
/// that this generator needs.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

/// `BPF_MAXINSNS`: the kernel refuses longer programs.
const BPF_MAXINSNS: usize = 4096;

/// The compiled program of one profile: cheap to clone (an `Arc`), `Send + Sync`, and
/// ready to install with no further work.
#[derive(Clone)]
pub struct CompiledSeccomp {
    inner: Arc<Compiled>,
}

struct Compiled {
    profile: SeccompProfile,
    /// In install order (one program; a list so that installers need no special case).
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

/// What a range of call numbers does: test `rules` in order (the first whose comparisons
/// all hold decides), else `otherwise`. A bare `ret` when `rules` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leaf {
    rules: Vec<(Vec<ArgCondition>, Action)>,
    otherwise: Action,
}

/// Where a conditional jump goes: `n` instructions past the next one, or past the end of
/// the rule being tested (its comparisons failed: on to the next rule).
#[derive(Debug, Clone, Copy)]
enum Target {
    Skip(u8),
    NextRule,
}

/// Where a jump lands, before the program is laid out: `n` instructions past the next
/// one, or the shared `ret k` at the end of the program.
#[derive(Debug, Clone, Copy)]
enum Dest {
    Skip(u32),
    Ret(u32),
}

/// An instruction whose jumps may still name a shared `ret`.
#[derive(Debug, Clone, Copy)]
struct Insn {
    code: u16,
    k: u32,
    jt: Dest,
    jf: Dest,
}

impl Insn {
    fn stmt(code: u16, k: u32) -> Insn {
        Insn { code, k, jt: Dest::Skip(0), jf: Dest::Skip(0) }
    }
}

/// A subtree of the search: code entered at its first instruction, or (when returns are
/// shared) just "return `k`", which its parent jumps to without a `ret` of its own.
enum Block {
    Code(Vec<Insn>),
    Return(u32),
}

impl SeccompProfile {
    /// Builds the BPF program for this profile. Pure: nothing is installed. Call it once,
    /// when the policy loads, and [`CompiledSeccomp::apply`] per jailed process.
    pub fn compile(&self) -> Result<CompiledSeccomp> {
        let error = |message: String| SeccompError::Compile {
            source_name: self.source_name().to_string(),
            filter: "the profile's program".into(),
            message,
        };
        let ranges = self.ranges();
        // Shared returns need every jump to them within reach of a conditional jump (255
        // instructions): true of short programs, the default profile's among them.
        let instructions = match lay_out(search(&ranges, true).map_err(error)?) {
            Some(instructions) => instructions,
            None => lay_out(search(&ranges, false).map_err(error)?)
                .ok_or_else(|| error("a jump does not reach its target".into()))?,
        };
        if instructions.len() > BPF_MAXINSNS {
            return Err(error(format!("{} instructions, more than the kernel's {BPF_MAXINSNS}", instructions.len())));
        }
        let purpose = format!(
            "kill any call not made through the native x86_64 ABI; else the strictest matching rule, else {}",
            self.default_action()
        );
        let mut flags = libc::SECCOMP_FILTER_FLAG_TSYNC;
        if self.log_flag() {
            flags |= libc::SECCOMP_FILTER_FLAG_LOG;
        }
        let programs = vec![Program { purpose, instructions }];
        Ok(CompiledSeccomp { inner: Arc::new(Compiled { profile: self.clone(), programs, flags }) })
    }

    /// The call numbers 0..2^32 as ranges that decide alike, by their first number: every
    /// number from one range's start to the next one's decides by its leaf.
    fn ranges(&self) -> Vec<(u32, Leaf)> {
        let default = self.default_action();
        let bare = |action| Leaf { rules: Vec::new(), otherwise: action };
        let mut numbers: Vec<u32> = self.rules().iter().map(|rule| rule.nr).collect();
        numbers.sort_unstable();
        numbers.dedup();
        let mut ranges: Vec<(u32, Leaf)> = vec![(0, bare(default))];
        let push = |ranges: &mut Vec<(u32, Leaf)>, start: u32, leaf: Leaf| {
            let same = ranges.last().is_some_and(|(_, last)| *last == leaf && leaf.rules.is_empty());
            if !same {
                ranges.push((start, leaf));
            }
        };
        for nr in numbers {
            if ranges.last().is_some_and(|(start, _)| *start == nr) {
                ranges.pop();
            }
            push(&mut ranges, nr, self.leaf(nr));
            if let Some(next) = nr.checked_add(1) {
                push(&mut ranges, next, bare(default));
            }
        }
        ranges
    }

    /// What call `nr` does, as a leaf: its rules in deciding order, cut at the first one
    /// that needs no comparison (it always matches: later ones never decide), and without
    /// the rules whose action is what happens anyway when no later rule with another
    /// action can match what they match (trailing ones among them).
    ///
    /// Why dropping such a rule changes nothing: a call it would decide gets `otherwise`
    /// from it; without it, the call goes on to the later rules, none of which with
    /// another action matches, so it again gets `otherwise`. The default profile's
    /// denials of `clone`, `unshare` and `socket` are of this kind: each namespace flag or
    /// address family it denies is one its allow rules do not allow; a third of the
    /// program's length.
    fn leaf(&self, nr: u32) -> Leaf {
        let mut rules = Vec::new();
        let mut otherwise = self.default_action();
        for rule in self.rules_in_order(nr) {
            if rule.conditions.is_empty() {
                otherwise = rule.action;
                break;
            }
            rules.push((rule.conditions.clone(), rule.action));
        }
        let decides = |at: usize| {
            let (conditions, action) = &rules[at];
            *action != otherwise
                || rules[at + 1..].iter().any(|(later, action)| *action != otherwise && !exclusive(conditions, later))
        };
        let kept = (0..rules.len()).filter(|&at| decides(at)).map(|at| rules[at].clone()).collect();
        Leaf { rules: kept, otherwise }
    }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The ABI guard; falls through with `A = nr` for a native call.
fn abi_guard() -> Vec<Insn> {
    let insn = |code, k, jt, jf| Insn { code, k, jt: Dest::Skip(jt), jf: Dest::Skip(jf) };
    vec![
        // 0: A = arch
        Insn::stmt(BPF_LD_W_ABS, SECCOMP_DATA_ARCH),
        // 1: x86_64 -> 3, else 2
        insn(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        // 2:
        Insn::stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        // 3: A = nr
        Insn::stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR),
        // 4: x32 bit set -> 5, else 6 (the search)
        insn(BPF_JMP_JSET_K, X32_SYSCALL_BIT, 0, 1),
        // 5:
        Insn::stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

/// The binary search over `ranges` (sorted by start, the first starting at 0), with
/// `A = nr` on entry. With `share`, a range decided by its number alone is a
/// [`Block::Return`]: the node above jumps straight to a `ret` shared by the whole
/// program (most ranges are such, and most of their `ret`s say the same two things).
fn search(ranges: &[(u32, Leaf)], share: bool) -> std::result::Result<Block, String> {
    let Some(((_, first), rest)) = ranges.split_first() else {
        return Err("no call numbers to decide".into());
    };
    if rest.is_empty() {
        return Ok(match first.rules.is_empty() && share {
            true => Block::Return(first.otherwise.seccomp_ret()),
            false => Block::Code(leaf_code(first)?),
        });
    }
    let mid = ranges.len() / 2;
    let left = search(&ranges[..mid], share)?;
    let right = search(&ranges[mid..], share)?;
    let pivot = ranges[mid].0;
    let node = |jt, jf| Insn { code: BPF_JMP_JGE_K, k: pivot, jt, jf };
    // nr >= pivot: the right subtree, else the left one.
    let code = match (left, right) {
        (Block::Return(left), Block::Return(right)) => vec![node(Dest::Ret(right), Dest::Ret(left))],
        (Block::Return(left), Block::Code(right)) => [vec![node(Dest::Skip(0), Dest::Ret(left))], right].concat(),
        (Block::Code(left), Block::Return(right)) => [vec![node(Dest::Ret(right), Dest::Skip(0))], left].concat(),
        (Block::Code(left), Block::Code(right)) => {
            let over = u32::try_from(left.len()).map_err(|_| "the program is too long".to_string())?;
            // Too far for a conditional jump: nr >= pivot -> a `ja` over the left subtree.
            let head = match over {
                0..=255 => vec![node(Dest::Skip(over), Dest::Skip(0))],
                _ => vec![node(Dest::Skip(0), Dest::Skip(1)), Insn::stmt(BPF_JMP_JA, over)],
            };
            [head, left, right].concat()
        }
    };
    Ok(Block::Code(code))
}

/// The program: the ABI guard, `body`, then the shared `ret`s it jumps to. `None` when a
/// conditional jump cannot reach its `ret` (lay out a search without shared returns).
fn lay_out(body: Block) -> Option<Vec<libc::sock_filter>> {
    let mut code = abi_guard();
    match body {
        Block::Code(body) => code.extend(body),
        Block::Return(k) => code.push(Insn::stmt(BPF_RET_K, k)),
    }
    let mut shared: Vec<u32> = Vec::new();
    for insn in &code {
        for dest in [insn.jt, insn.jf] {
            if let Dest::Ret(k) = dest
                && !shared.contains(&k)
            {
                shared.push(k);
            }
        }
    }
    let end = code.len();
    let resolve = |at: usize, dest: Dest| match dest {
        Dest::Skip(n) => u8::try_from(n).ok(),
        Dest::Ret(k) => {
            let target = end + shared.iter().position(|&s| s == k)?;
            u8::try_from(target - at - 1).ok()
        }
    };
    let mut program = Vec::with_capacity(end + shared.len());
    for (at, insn) in code.iter().enumerate() {
        program.push(jump(insn.code, insn.k, resolve(at, insn.jt)?, resolve(at, insn.jf)?));
    }
    program.extend(shared.iter().map(|&k| stmt(BPF_RET_K, k)));
    Some(program)
}

/// A leaf: each rule's comparisons (a failed one jumps to the next rule), its `ret`; then
/// the `ret` of what applies when no rule matched.
fn leaf_code(leaf: &Leaf) -> std::result::Result<Vec<Insn>, String> {
    let mut code = Vec::new();
    for (conditions, action) in &leaf.rules {
        let mut block: Vec<(u16, u32, Target, Target)> = Vec::new();
        for condition in conditions {
            comparison(condition, &mut block);
        }
        block.push((BPF_RET_K, action.seccomp_ret(), Target::Skip(0), Target::Skip(0)));
        let len = block.len();
        for (at, (op, k, jt, jf)) in block.into_iter().enumerate() {
            let resolve = |target| match target {
                Target::Skip(n) => Ok(Dest::Skip(u32::from(n))),
                Target::NextRule => u8::try_from(len - at - 1)
                    .map(|n| Dest::Skip(u32::from(n)))
                    .map_err(|_| format!("a rule with {} argument comparisons is too long for BPF", conditions.len())),
            };
            code.push(Insn { code: op, k, jt: resolve(jt)?, jf: resolve(jf)? });
        }
    }
    code.push(Insn::stmt(BPF_RET_K, leaf.otherwise.seccomp_ret()));
    Ok(code)
}

/// Whether no call can satisfy both rules' comparisons (each rule: all of its own), as
/// far as two comparisons of one argument show; `false` when unsure.
fn exclusive(a: &[ArgCondition], b: &[ArgCondition]) -> bool {
    // `arg & mask == value`, for the comparisons that are of that form.
    let masked = |c: &ArgCondition| match c.op {
        ArgOp::Eq => Some((u64::MAX, c.value)),
        ArgOp::MaskedEq { mask } => Some((mask, c.value)),
        _ => None,
    };
    let never = |(mask, value): (u64, u64)| value & !mask != 0;
    a.iter().any(|x| {
        b.iter().any(|y| {
            x.index == y.index
                && match (masked(x), masked(y)) {
                    // A bit both masks keep, which the two values want different.
                    (Some(p), Some(q)) => never(p) || never(q) || (p.1 ^ q.1) & p.0 & q.0 != 0,
                    _ => matches!((x.op, y.op), (ArgOp::Eq, ArgOp::Ne) | (ArgOp::Ne, ArgOp::Eq)) && x.value == y.value,
                }
        })
    })
}

/// One 64-bit comparison of an argument, as 32-bit halves (high word first). It falls
/// through when it holds and jumps to [`Target::NextRule`] when it does not.
fn comparison(condition: &ArgCondition, block: &mut Vec<(u16, u32, Target, Target)>) {
    use Target::{NextRule as Fail, Skip};
    let low = SECCOMP_DATA_ARGS + 8 * u32::from(condition.index);
    let high = low + 4;
    let split = |value: u64| ((value >> 32) as u32, value as u32);
    let (hi, lo) = split(condition.value);
    let load = |offset| (BPF_LD_W_ABS, offset, Skip(0), Skip(0));
    let code: Vec<(u16, u32, Target, Target)> = match condition.op {
        ArgOp::Eq => {
            vec![load(high), (BPF_JMP_JEQ_K, hi, Skip(0), Fail), load(low), (BPF_JMP_JEQ_K, lo, Skip(0), Fail)]
        }
        ArgOp::Ne => vec![
            load(high),
            // High words differ: it holds (skip the low word's test).
            (BPF_JMP_JEQ_K, hi, Skip(0), Skip(2)),
            load(low),
            (BPF_JMP_JEQ_K, lo, Fail, Skip(0)),
        ],
        ArgOp::MaskedEq { mask } => {
            let (mask_hi, mask_lo) = split(mask);
            vec![
                load(high),
                (BPF_ALU_AND_K, mask_hi, Skip(0), Skip(0)),
                (BPF_JMP_JEQ_K, hi, Skip(0), Fail),
                load(low),
                (BPF_ALU_AND_K, mask_lo, Skip(0), Skip(0)),
                (BPF_JMP_JEQ_K, lo, Skip(0), Fail),
            ]
        }
        ArgOp::Gt | ArgOp::Ge => vec![
            load(high),
            // High word above: it holds (skip to the end of this comparison).
            (BPF_JMP_JGT_K, hi, Skip(3), Skip(0)),
            // High word below: it fails.
            (BPF_JMP_JEQ_K, hi, Skip(0), Fail),
            load(low),
            (if condition.op == ArgOp::Gt { BPF_JMP_JGT_K } else { BPF_JMP_JGE_K }, lo, Skip(0), Fail),
        ],
        ArgOp::Lt | ArgOp::Le => vec![
            load(high),
            // High word above: it fails.
            (BPF_JMP_JGT_K, hi, Fail, Skip(0)),
            // High word below: it holds (skip to the end of this comparison).
            (BPF_JMP_JEQ_K, hi, Skip(0), Skip(2)),
            load(low),
            // Lt fails at lo >= value, Le at lo > value.
            (if condition.op == ArgOp::Lt { BPF_JMP_JGE_K } else { BPF_JMP_JGT_K }, lo, Fail, Skip(0)),
        ],
    };
    block.extend(code);
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
