//! Jails cloned ahead of their calls. Cloning a jail (its user, pid, ipc and uts
//! namespaces, the uid/gid maps, its cgroup) is a fixed cost that depends on nothing in the
//! call; a background thread keeps a few jails cloned and waiting, and a call hands one its
//! plan and descriptors ([`spawn::Call`]) instead of cloning. A call that finds none clones
//! one itself, through the same code, and hands it the call at once.
//!
//! Owns: [`Cloner`] (what a clone needs: the cgroups, the network namespaces made ahead,
//! the ids to map, spare stacks), [`ReadyJail`] (a cloned, mapped child waiting for its
//! call, in its own call cgroup), [`ReadyPool`] (the waiting jails and their filler).
//! Must not: let a jail see the host as it was when it was cloned. A waiting jail holds no
//! state of the host's but the template it was cloned in (a copy of the prepared root,
//! with `CLONE_NEWNS` at the clone): a jail of an older template is dropped unused (the
//! template is made again when the host's mounts change); without a template its mount
//! namespace is copied when it gets its call (`unshare(CLONE_NEWNS)` in the child). The
//! call brings its plan, descriptors (its binds opened at the call), prepared trees and
//! limits. Hand a jail out twice (each is
//! taken once), or leave one behind (a dropped ready jail is killed and reaped, and its
//! cgroup goes back).
//!
//! When the filler clones: once the last jail handed a call has exited (or after
//! [`SETTLE_MAX`]) and no call was handed one for [`QUIET`] since. A clone that overlaps a
//! jail's set-up or exit slows that jail by more than the clone saves (both take the
//! kernel's namespace and mount locks, on two shared cores); between an agent's calls it
//! costs the calls nothing. Back-to-back calls empty the pool and clone their own jails,
//! as without it (refilled after each exit, the pool served every back-to-back call a
//! jail, each slowed by the next one's clone: no faster than cloning at the call).
//!
//! What a waiting jail holds: its namespaces, a stack, a call cgroup (limits are written
//! when the call takes it), one pooled network namespace, and no descriptor of airlock's
//! but its socket, its report pipe and stdio (it closed the rest right after the clone).

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::atomic::Ordering,
    sync::{Arc, Condvar, Mutex, MutexGuard, RwLock},
    thread::JoinHandle,
    time::Duration,
};

use super::{
    JailError, above_stdio,
    cgroup::{AfterJob, CallCgroup, Cgroups, InsideJob},
    netns::{self, NetnsPool, PooledNetns},
    pipe,
    spawn::{self, Call, ChildStack, SetUpFailure, SpawnError, Waiting},
    template::Template,
    write_maps,
};

/// How many child stacks are kept for reuse (one per call in flight is enough).
const SPARE_STACKS: usize = 4;

/// How long the filler waits after it failed to clone a jail before it tries again, so
/// that a lasting failure costs no CPU.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long the filler waits for the last jail handed a call to exit before it clones the
/// next anyway (a long-running tool must not keep the pool empty).
const SETTLE_MAX: Duration = Duration::from_millis(50);

/// How long no call may be handed a jail, after the last one exited, before the filler
/// clones: back to back, the next call's jail is handed well within this of the last
/// one's exit (the caller's bookkeeping and the next call's plan take a few hundred
/// microseconds), and a clone then would overlap its set-up.
const QUIET: Duration = Duration::from_millis(2);

/// Whose thread clones a jail when its cgroup has no resident thread to do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloning {
    /// The caller's: a thread stranded in a jail's network namespace ends the process.
    Caller,
    /// The pool's filler: a stranded filler stops (its thread is never used again).
    Filler,
}

/// What clones a jail: shared by the calls and the pool's filler.
#[derive(Debug)]
pub struct Cloner {
    pub cgroups: Option<Arc<Cgroups>>,
    /// Network namespaces made ahead (`Err`: why there is no pool; jails then clone with
    /// `CLONE_NEWNET`).
    pub netns: Result<NetnsPool, String>,
    pub uid: u32,
    pub gid: u32,
    /// Stacks of reaped children, reused (a fresh one is a mapping, a guard page and the
    /// page faults of its first use).
    stacks: Mutex<Vec<ChildStack>>,
    /// The mount namespace the filler clones jails in (the host's current template).
    template: RwLock<Option<Arc<Template>>>,
}

impl Cloner {
    /// A cloner; its network namespace pool starts now.
    pub fn new(cgroups: Option<Arc<Cgroups>>, uid: u32, gid: u32) -> Cloner {
        Cloner {
            cgroups,
            netns: NetnsPool::start(),
            uid,
            gid,
            stacks: Mutex::new(Vec::new()),
            template: RwLock::new(None),
        }
    }

    /// The template jails are cloned in from now on (the filler's; a call names its own).
    pub fn set_template(&self, template: Option<Arc<Template>>) {
        if let Ok(mut current) = self.template.write() {
            *current = template;
        }
    }

    /// The template the filler clones jails in.
    pub fn template(&self) -> Option<Arc<Template>> {
        self.template.read().ok().and_then(|current| current.clone())
    }

    /// Keeps a reaped child's stack for the next clone.
    pub fn give_back_stack(&self, stack: ChildStack) {
        if let Ok(mut stacks) = self.stacks.lock()
            && stacks.len() < SPARE_STACKS
        {
            stacks.push(stack);
        }
    }

    /// Starts cloning a jail into `cgroup`: on the cgroup's resident thread when it has one
    /// (the child is born in the cgroup and mapped there, while this thread goes on: a
    /// caller prepares its call meanwhile), else here, at once (moved into the cgroup and
    /// mapped when finished). [`PendingJail::finish`] gives the jail; on any failure the
    /// child is killed and reaped and the cgroup goes back.
    ///
    /// With `template`, the resident thread clones the jail in that mount namespace
    /// (`template`); a clone on this thread never does (a caller's thread keeps its
    /// file-system context shared with the process).
    pub fn start_clone(
        &self,
        cgroup: Option<CallCgroup>,
        cloning: Cloning,
        template: Option<Arc<Template>>,
    ) -> Result<PendingJail<'_>, JailError> {
        let resource = |what: &'static str| move |source| JailError::Resource { what, source };
        let give_back = |cgroup: Option<CallCgroup>| {
            if let (Some(cgroups), Some(cgroup)) = (&self.cgroups, cgroup) {
                cgroups.give_back(cgroup);
            }
        };
        let made = (|| {
            let (socket, child_socket) = socket_pair()?;
            let (report, report_write) = pipe()?;
            let spare = self.stacks.lock().ok().and_then(|mut stacks| stacks.pop());
            let stack = spare.map_or_else(ChildStack::new, Ok)?;
            Ok((socket, child_socket, report, report_write, stack))
        })();
        let (socket, child_socket, report, report_write, stack) = match made {
            Ok(made) => made,
            Err(error) => {
                give_back(cgroup);
                return Err(resource("socket, report pipe or stack")(error));
            }
        };
        let waiting = Box::new(Waiting::new(child_socket.as_raw_fd(), report_write.as_raw_fd()));
        let stack = Box::new(stack);
        let mut netns = self.netns.as_ref().ok().and_then(NetnsPool::take);
        let (uid, gid, socket_at) = (self.uid, self.gid, socket.as_raw_fd());
        let rendezvous = Arc::new(Mutex::new(Rendezvous::default()));
        let resident = cgroup.as_ref().filter(|cgroup| cgroup.has_resident());
        let template = template.filter(|_| resident.is_some());
        let job = resident.and_then(|cgroup| {
            let (waiting_at, stack_at) = (&*waiting as *const Waiting as usize, &*stack as *const ChildStack as usize);
            let netns = netns.take();
            let rendezvous = Arc::clone(&rendezvous);
            let template = template.clone();
            cgroup.start_inside(move || {
                // SAFETY: `waiting` and `stack` are boxed (they do not move) and outlive this
                // job: the PendingJail that owns them takes the job's result (in `finish`, or
                // in its Drop) before it lets them go. `socket_at` stays open as long.
                let (waiting, stack) = unsafe { (&*(waiting_at as *const Waiting), &*(stack_at as *const ChildStack)) };
                let spawned = spawn::spawn(waiting, stack, netns, template.as_deref());
                // Born in its cgroup: mapped at once, then handed its call if the caller left
                // it here meanwhile (the child need not wait for the caller to wake up).
                let mapped = spawned.as_ref().ok().map(|(pid, _)| write_maps(*pid, uid, gid).map_err(JailError::Maps));
                if matches!(mapped, Some(Ok(())))
                    && let Ok(mut slot) = rendezvous.lock()
                {
                    slot.cloned = true;
                    if let Some(call) = slot.call.take() {
                        slot.handed = Some(waiting.hand(&call, socket_at));
                    }
                }
                // A resident stuck in a jail's network namespace runs nothing else.
                let after =
                    if matches!(spawned, Err(SpawnError::Stranded(_))) { AfterJob::Retire } else { AfterJob::Continue };
                ((spawned, mapped), after)
            })
        });
        let parts = Parts { socket, child_socket, report, report_write, stack, waiting, cgroup };
        let mut pending =
            PendingJail { cloner: self, cloning, parts: Some(parts), job, spawned: None, netns, rendezvous, template };
        if pending.job.is_none() {
            pending.spawn_here();
        }
        Ok(pending)
    }
}

/// What a jail is made of before it is cloned.
#[derive(Debug)]
struct Parts {
    socket: OwnedFd,
    child_socket: OwnedFd,
    report: OwnedFd,
    report_write: OwnedFd,
    stack: Box<ChildStack>,
    waiting: Box<Waiting>,
    cgroup: Option<CallCgroup>,
}

/// What the resident's clone job gives back: the child (pid, pidfd), and whether its maps
/// were written.
type Spawned = (Result<(i32, OwnedFd), SpawnError>, Option<Result<(), JailError>>);

/// A jail being cloned ([`Cloner::start_clone`]). Dropped unfinished, it waits for the
/// clone, then kills and reaps the child and gives its cgroup back.
#[derive(Debug)]
pub struct PendingJail<'a> {
    cloner: &'a Cloner,
    cloning: Cloning,
    parts: Option<Parts>,
    /// The clone running on the cgroup's resident thread.
    job: Option<InsideJob<Spawned>>,
    /// The clone made on this thread.
    spawned: Option<Spawned>,
    /// The network namespace for a clone made here.
    netns: Option<PooledNetns>,
    /// Where [`PendingJail::hand`] leaves the call for the resident thread.
    rendezvous: Arc<Mutex<Rendezvous>>,
    /// The template the resident clones in.
    template: Option<Arc<Template>>,
}

/// A call left for the resident thread to hand over right after its clone, and what
/// became of it.
#[derive(Debug, Default)]
struct Rendezvous {
    /// Set by the resident once the child is cloned and mapped.
    cloned: bool,
    call: Option<Call>,
    /// The resident's hand-over, when it made it.
    handed: Option<io::Result<()>>,
}

impl PendingJail<'_> {
    /// Clones on this thread (no resident, or it is gone).
    fn spawn_here(&mut self) {
        let Some(parts) = self.parts.as_ref() else { return };
        let spawned = match spawn::spawn(&parts.waiting, &parts.stack, self.netns.take(), None) {
            Err(SpawnError::Stranded(error)) if self.cloning == Cloning::Caller => netns::abort_stranded(&error),
            other => other,
        };
        self.spawned = Some((spawned, None));
    }

    /// The jail, cloned and mapped, in its cgroup, waiting for its call.
    pub fn finish(mut self) -> Result<ReadyJail, JailError> {
        self.take()
    }

    /// Its call cgroup (to write the call's limits before handing it the call).
    pub fn cgroup_mut(&mut self) -> Option<&mut CallCgroup> {
        self.parts.as_mut().and_then(|parts| parts.cgroup.as_mut())
    }

    /// Whether it may be cloned in a template (it is, unless entering it fails).
    pub fn in_template(&self) -> bool {
        self.template.is_some()
    }

    /// The jail, handed `call`: by the resident thread right after the clone when the
    /// clone is still running now (this thread's wake-up from the clone is then off the
    /// child's path), else here.
    pub fn hand(mut self, call: Call) -> Result<ReadyJail, JailError> {
        let left = self.job.is_some()
            && self.rendezvous.lock().is_ok_and(|mut slot| {
                let leave = !slot.cloned;
                if leave {
                    slot.call = Some(call);
                }
                leave
            });
        let mut ready = self.take()?;
        let by_resident = match left {
            true => self.rendezvous.lock().ok().and_then(|mut slot| slot.handed.take()),
            false => None,
        };
        // Not handed by the resident (it had finished, or it never ran the job): here.
        match by_resident.unwrap_or_else(|| ready.hand(&call)) {
            Ok(()) => Ok(ready),
            // It died before its call: it wrote the step that failed.
            Err(source) => Err(match ready.failure() {
                Some(failure) => super::set_up_error(failure, None),
                None => JailError::Resource { what: "hand-over of the call", source },
            }),
        }
    }

    fn take(&mut self) -> Result<ReadyJail, JailError> {
        let Some(mut parts) = self.parts.take() else {
            return Err(JailError::Wait(io::Error::other("the jail was taken twice")));
        };
        if let Some(job) = self.job.take() {
            match parts.cgroup.as_mut().and_then(|cgroup| cgroup.finish_inside(job)) {
                Some(spawned) => self.spawned = Some(spawned),
                // The resident ended without running the job: clone here.
                None => {
                    self.parts = Some(parts);
                    self.spawn_here();
                    let Some(back) = self.parts.take() else {
                        return Err(JailError::Wait(io::Error::other("the jail was taken twice")));
                    };
                    parts = back;
                }
            }
        }
        let give_back = |cgroup: Option<CallCgroup>| {
            if let (Some(cgroups), Some(cgroup)) = (&self.cloner.cgroups, cgroup) {
                cgroups.give_back(cgroup);
            }
        };
        let Some((spawned, mapped)) = self.spawned.take() else {
            give_back(parts.cgroup);
            return Err(JailError::Wait(io::Error::other("the jail was never cloned")));
        };
        let (pid, pidfd) = match spawned {
            Ok(spawned) => spawned,
            Err(error) => {
                give_back(parts.cgroup);
                return Err(match error {
                    SpawnError::Clone(error) => JailError::Clone(error),
                    SpawnError::Stranded(error) => JailError::NetnsReturn(error),
                });
            }
        };
        let Parts { socket, child_socket, report, report_write, stack, waiting, cgroup } = parts;
        // The child's ends belong to the child now.
        drop((child_socket, report_write));
        let template = self.template.take().filter(|_| waiting.templated.load(Ordering::SeqCst));
        let mut ready = ReadyJail {
            pid,
            pidfd: Some(pidfd),
            socket,
            report: Some(report),
            waiting: Some(waiting),
            stack: Some(*stack),
            cgroup,
            cgroups: self.cloner.cgroups.clone(),
            template,
        };
        // A failure drops `ready`, which kills the child.
        match mapped {
            Some(mapped) => mapped?,
            None => {
                if let Some(cgroup) = ready.cgroup.as_mut() {
                    cgroup.attach(pid).map_err(JailError::Attach)?;
                }
                write_maps(pid, self.cloner.uid, self.cloner.gid).map_err(JailError::Maps)?;
            }
        }
        Ok(ready)
    }
}

impl Drop for PendingJail<'_> {
    fn drop(&mut self) {
        if self.parts.is_some() {
            // Waits for the clone; the jail, if any, is killed and reaped as it drops.
            drop(self.take());
        }
    }
}

/// A connected pair of close-on-exec `SOCK_SEQPACKET` sockets numbered 3 or above.
fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into the array.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned two new descriptors we own.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(a)?, above_stdio(b)?))
}

/// A cloned, mapped child in its cgroup, waiting for its call. Dropped without being
/// handed one, it is killed and reaped, and its cgroup goes back.
#[derive(Debug)]
pub struct ReadyJail {
    pid: i32,
    pidfd: Option<OwnedFd>,
    /// Airlock's end of the child's call socket.
    socket: OwnedFd,
    /// Read end of the child's report pipe.
    report: Option<OwnedFd>,
    waiting: Option<Box<Waiting>>,
    stack: Option<ChildStack>,
    cgroup: Option<CallCgroup>,
    cgroups: Option<Arc<Cgroups>>,
    /// The template it was cloned in, if it was.
    template: Option<Arc<Template>>,
}

/// A jail that has its call: what the call's supervision owns from then on.
#[derive(Debug)]
pub struct Running {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub report: OwnedFd,
    /// Read by the child until it execs: kept until it is reaped.
    pub waiting: Box<Waiting>,
    pub stack: ChildStack,
    pub cgroup: Option<CallCgroup>,
}

impl ReadyJail {
    /// Its call cgroup (to write the call's limits before handing it the call).
    pub fn cgroup_mut(&mut self) -> Option<&mut CallCgroup> {
        self.cgroup.as_mut()
    }

    /// Whether it has a call cgroup.
    pub fn has_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// The template it was cloned in, if it was.
    pub fn template(&self) -> Option<&Arc<Template>> {
        self.template.as_ref()
    }

    /// Hands the child its call. Fails when the child is gone.
    pub fn hand(&self, call: &Call) -> io::Result<()> {
        let waiting = self.waiting.as_deref().ok_or_else(|| io::Error::other("the jail was handed over"))?;
        waiting.hand(call, self.socket.as_raw_fd())
    }

    /// Why a jail that could not be handed its call died: the set-up step it reported
    /// before it exited (read once it is reaped), if it reported one.
    pub fn failure(&mut self) -> Option<SetUpFailure> {
        let pidfd = self.pidfd.take()?;
        spawn::kill_and_reap(self.pid, &pidfd);
        super::read_failure(self.report.take()?)
    }

    /// The running jail, once it has its call (given with [`ReadyJail::hand`] or
    /// [`PendingJail::hand`]).
    pub fn into_running(mut self) -> Option<Running> {
        Some(Running {
            pid: self.pid,
            pidfd: self.pidfd.take()?,
            report: self.report.take()?,
            waiting: self.waiting.take()?,
            stack: self.stack.take()?,
            cgroup: self.cgroup.take(),
        })
    }
}

impl Drop for ReadyJail {
    fn drop(&mut self) {
        if let Some(pidfd) = &self.pidfd {
            spawn::kill_and_reap(self.pid, pidfd);
        }
        if let (Some(cgroups), Some(cgroup)) = (&self.cgroups, self.cgroup.take()) {
            cgroups.give_back(cgroup);
        }
    }
}

#[derive(Debug)]
struct State {
    ready: Vec<ReadyJail>,
    /// A pidfd of the last jail handed a call, until the filler has waited for its exit.
    running: Option<OwnedFd>,
    /// Whether any call was handed a jail yet: the filler clones only after the first
    /// (the call that starts the pool clones its own jail, and takes the first pooled
    /// network namespace; a filler racing it would take that one and contend with it).
    called: bool,
    stop: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a jail was taken, and when the pool stops.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> Option<MutexGuard<'_, State>> {
        self.state.lock().ok()
    }
}

/// A few jails cloned ahead, and the thread that clones them.
#[derive(Debug)]
pub struct ReadyPool {
    shared: Arc<Shared>,
    filler: Option<JoinHandle<()>>,
}

impl ReadyPool {
    /// Starts a filler that keeps `size` jails ready.
    pub fn start(cloner: Arc<Cloner>, size: usize) -> io::Result<ReadyPool> {
        let state = State { ready: Vec::new(), running: None, called: false, stop: false };
        let shared = Arc::new(Shared { state: Mutex::new(state), wake: Condvar::new() });
        let filler = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("airlock-jails".into()).spawn(move || fill(&shared, &cloner, size))?
        };
        Ok(ReadyPool { shared, filler: Some(filler) })
    }

    /// A waiting jail, if there is one.
    pub fn take(&self) -> Option<ReadyJail> {
        self.shared.lock()?.ready.pop()
    }

    /// The pids of the waiting jails, once `count` are waiting (`None` after 10 s).
    #[cfg(test)]
    pub fn wait_for(&self, count: usize) -> Option<Vec<i32>> {
        for _ in 0..1000 {
            if let Some(state) = self.shared.lock()
                && state.ready.len() >= count
            {
                return Some(state.ready.iter().map(|jail| jail.pid).collect());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Tells the filler a jail was handed a call (`pidfd`: its process), from the pool or
    /// not: it clones the next one once that jail has exited.
    pub fn handed(&self, pidfd: &OwnedFd) {
        let Ok(pidfd) = pidfd.try_clone() else { return };
        if let Some(mut state) = self.shared.lock() {
            state.running = Some(pidfd);
            state.called = true;
        }
        self.shared.wake.notify_all();
    }
}

impl Drop for ReadyPool {
    fn drop(&mut self) {
        let ready = match self.shared.lock() {
            Some(mut state) => {
                state.stop = true;
                std::mem::take(&mut state.ready)
            }
            None => Vec::new(),
        };
        self.shared.wake.notify_all();
        if let Some(filler) = self.filler.take() {
            let _ = filler.join();
        }
        drop(ready);
        if let Some(mut state) = self.shared.lock() {
            state.ready.clear();
        }
    }
}

/// The filler: keeps `size` jails ready until the pool stops.
fn fill(shared: &Shared, cloner: &Cloner, size: usize) {
    loop {
        let running = {
            let Some(mut state) = shared.lock() else { return };
            while !state.stop && (state.ready.len() >= size || !state.called) {
                state = match shared.wake.wait(state) {
                    Ok(state) => state,
                    Err(_) => return,
                };
            }
            if state.stop {
                return;
            }
            state.running.take()
        };
        if let Some(pidfd) = running {
            wait_for_exit(&pidfd);
            if !stayed_quiet(shared) {
                continue;
            }
        }
        let cgroup = match &cloner.cgroups {
            Some(cgroups) => match cgroups.reserve() {
                Ok(cgroup) => Some(cgroup),
                Err(error) => {
                    tracing::debug!("jail: no ready jail (its cgroup: {error})");
                    pause(shared);
                    continue;
                }
            },
            None => None,
        };
        match cloner.start_clone(cgroup, Cloning::Filler, cloner.template()).and_then(PendingJail::finish) {
            Ok(jail) => {
                let Some(mut state) = shared.lock() else { return };
                if state.stop {
                    // Killed and reaped outside the lock.
                    drop(state);
                    drop(jail);
                } else {
                    state.ready.push(jail);
                }
            }
            // This thread is in a jail's network namespace: it runs nothing more.
            Err(JailError::NetnsReturn(error)) => {
                tracing::warn!("jail: no more ready jails: {error}");
                return;
            }
            Err(error) => {
                tracing::debug!("jail: no ready jail: {error}");
                pause(shared);
            }
        }
    }
}

/// Waits until the process of `pidfd` has exited, for at most [`SETTLE_MAX`].
fn wait_for_exit(pidfd: &OwnedFd) {
    let mut poll = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let timeout = i32::try_from(SETTLE_MAX.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: polls one local pollfd; an interruption only ends the wait early.
    unsafe { libc::poll(&mut poll, 1, timeout) };
}

/// Waits [`QUIET`]; true when no jail was handed a call meanwhile and the pool still runs.
fn stayed_quiet(shared: &Shared) -> bool {
    let Some(state) = shared.lock() else { return false };
    match shared.wake.wait_timeout_while(state, QUIET, |state| !state.stop && state.running.is_none()) {
        Ok((state, _)) => !state.stop && state.running.is_none(),
        Err(_) => false,
    }
}

/// Waits [`RETRY_AFTER`], or until the pool stops.
fn pause(shared: &Shared) {
    if let Some(state) = shared.lock()
        && !state.stop
    {
        let _ = shared.wake.wait_timeout(state, RETRY_AFTER);
    }
}
