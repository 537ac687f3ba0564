//! Network and IPC namespaces made ahead of the calls: creating a network namespace costs
//! about half a millisecond (most of what a bare `clone` of the jail costs), an IPC one
//! about 0.1 ms (its internal mqueue mount), so a background thread per kind keeps a few
//! fresh ones ready and a call only takes one of each.
//!
//! Owns: [`NsPool`] (of one [`Kind`]: a descriptor of the host's namespace, the ready
//! namespaces, the filler thread that makes them), [`PooledNs`] (one namespace, taken once
//! for one call) and moving the spawning thread into it and back ([`PooledNs::enter`],
//! [`PooledNs::leave`]).
//!
//! How a jail gets one: the jail's user namespace is new, so the jail has no capability over
//! a namespace made by airlock and cannot `setns` into it. Instead the thread that clones the
//! jail enters the pooled namespace just before `clone`, clones without `CLONE_NEWNET` (or
//! `CLONE_NEWIPC`; the child inherits the thread's namespace) and goes back right after
//! (`spawn::spawn`). Each namespace is made by a short-lived thread of its own that
//! `unshare`s into it, brings `lo` up (a network one), opens it and goes back to the host's
//! namespace before it exits: a thread that serves
//! anything else never changes namespace here, and the way back is proven before the pool is
//! used. Only where that works (root, in practice) is there a pool; elsewhere
//! [`NsPool::start`] says why and every call clones with `CLONE_NEWNET` as before.
//!
//! What a jail gets is what `CLONE_NEWNET` gives it, and a little less: a new, empty
//! namespace with only loopback, up. It is owned by airlock's user namespace, not the jail's,
//! so even the jail's set-up cannot reconfigure it (no `CAP_NET_ADMIN` there). Likewise an
//! IPC namespace: new and empty, its limits (`kernel.shm*`, `msg*`, `sem`) out of the jail's
//! reach (no `CAP_SYS_RESOURCE` over it).
//!
//! Must not: hand out a namespace twice (each is taken once; its descriptor is closed after
//! the clone, so it dies with the jail); put a namespace in the pool that any thread did
//! anything in but bring `lo` up; leave a thread in a jail's namespace (a thread that cannot
//! come back is never used again: the cgroup's resident thread retires, a caller's thread
//! ends the process, see [`abort_stranded`]); weaken a call when anything here fails (no
//! pooled namespace, or one that cannot be entered: the call clones with `CLONE_NEWNET`).

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, OwnedFd, RawFd},
    os::unix::fs::MetadataExt,
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use super::sys;

/// How many namespaces are kept ready. Each holds kernel memory (a loopback device, the
/// per-namespace tables and sysctls) while it waits; a few cover back-to-back calls while
/// the filler makes the next. A burst beyond them clones with `CLONE_NEWNET`.
const POOL_SIZE: usize = 3;

/// How long the filler waits after it failed to make a namespace (a namespace limit
/// reached, memory short) before it tries again, so that a lasting failure costs no CPU.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Which namespaces a pool holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Network namespaces, loopback up.
    Net,
    /// IPC namespaces.
    Ipc,
}

impl Kind {
    /// The `clone`/`unshare`/`setns` flag.
    pub fn flag(self) -> libc::c_int {
        match self {
            Kind::Net => libc::CLONE_NEWNET,
            Kind::Ipc => libc::CLONE_NEWIPC,
        }
    }

    /// The calling thread's namespace of this kind.
    fn thread_path(self) -> &'static str {
        match self {
            Kind::Net => "/proc/thread-self/ns/net",
            Kind::Ipc => "/proc/thread-self/ns/ipc",
        }
    }
}

/// The namespace (of one kind) of the thread that made the backend: where a spawning
/// thread comes back to. Identified by its nsfs device and inode.
#[derive(Debug)]
struct HostNs {
    kind: Kind,
    fd: OwnedFd,
    id: (u64, u64),
}

impl HostNs {
    fn open(kind: Kind) -> io::Result<HostNs> {
        // Opened close-on-exec (std always is): no tool ever inherits it.
        let file = File::open(kind.thread_path())?;
        let meta = file.metadata()?;
        Ok(HostNs { kind, id: (meta.dev(), meta.ino()), fd: OwnedFd::from(file) })
    }
}

#[derive(Debug, Default)]
struct State {
    ready: Vec<OwnedFd>,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a namespace was taken, and when the pool stops.
    wake: Condvar,
}

/// Fresh namespaces of one kind, each used by one jail, and the thread that makes them.
#[derive(Debug)]
pub struct NsPool {
    host: Arc<HostNs>,
    shared: Arc<Shared>,
    filler: Option<JoinHandle<()>>,
}

/// One pooled namespace, for one call's clone.
#[derive(Debug)]
pub struct PooledNs {
    fd: OwnedFd,
    host: Arc<HostNs>,
}

impl NsPool {
    /// Makes the first namespace (which proves a thread can make one and come back) and
    /// starts the filler. `Err` says why there is no pool (calls then use `CLONE_NEWNET`).
    pub fn start(kind: Kind) -> Result<NsPool, String> {
        let name = match kind {
            Kind::Net => "network",
            Kind::Ipc => "IPC",
        };
        let host =
            Arc::new(HostNs::open(kind).map_err(|e| format!("cannot open this thread's {name} namespace: {e}"))?);
        let first = create(&host, Priority::Normal)
            .map_err(|e| format!("cannot make a {name} namespace and come back: {e}"))?;
        let shared =
            Arc::new(Shared { state: Mutex::new(State { ready: vec![first], stop: false }), wake: Condvar::new() });
        let filler = std::thread::Builder::new()
            .name(if kind == Kind::Net { "airlock-netns" } else { "airlock-ipcns" }.into())
            .spawn({
                let (shared, host) = (Arc::clone(&shared), Arc::clone(&host));
                move || fill(&shared, &host)
            })
            .map_err(|e| format!("cannot start the network namespace filler: {e}"))?;
        Ok(NsPool { host, shared, filler: Some(filler) })
    }

    /// A ready namespace, never used before and never handed out again; `None` when the
    /// pool is empty (the filler is behind, or failing).
    pub fn take(&self) -> Option<PooledNs> {
        let fd = self.shared.state.lock().ok()?.ready.pop()?;
        self.shared.wake.notify_one();
        Some(PooledNs { fd, host: Arc::clone(&self.host) })
    }
}

impl Drop for NsPool {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.stop = true;
        }
        self.shared.wake.notify_all();
        if let Some(filler) = self.filler.take() {
            let _ = filler.join();
        }
    }
}

/// The filler: keeps `POOL_SIZE` namespaces ready until the pool stops.
fn fill(shared: &Shared, host: &HostNs) {
    let Ok(mut state) = shared.state.lock() else { return };
    loop {
        if state.stop {
            return;
        }
        if state.ready.len() >= POOL_SIZE {
            state = match shared.wake.wait(state) {
                Ok(state) => state,
                Err(_) => return,
            };
            continue;
        }
        drop(state);
        let made = create(host, Priority::Idle);
        state = match shared.state.lock() {
            Ok(state) => state,
            Err(_) => return,
        };
        match made {
            Ok(fd) => state.ready.push(fd),
            Err(_) => {
                state = match shared.wake.wait_timeout(state, RETRY_AFTER) {
                    Ok((state, _)) => state,
                    Err(_) => return,
                }
            }
        }
    }
}

/// How the thread that makes a namespace is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    /// A call waits for it (the pool's first namespace).
    Normal,
    /// The filler: `SCHED_IDLE`, so that making the next namespace (half a millisecond of
    /// kernel work) waits for CPU time nothing else wants instead of competing with the
    /// set-up of the jail that just took one (on a kernel without preemption, work it has
    /// started still runs to its end). Starved, the pool runs dry and calls clone with
    /// `CLONE_NEWNET`: slower, never weaker.
    Idle,
}

/// Makes one namespace on a thread of its own: `unshare`, loopback up (a network one),
/// open it (close-on-exec), then back to the host's namespace, which proves the way back
/// works.
fn create(host: &HostNs, priority: Priority) -> io::Result<OwnedFd> {
    std::thread::scope(|scope| {
        let maker = std::thread::Builder::new().name("airlock-netns-new".into()).spawn_scoped(scope, || {
            if priority == Priority::Idle {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: pid 0 is this thread; `param` is a local. Failing leaves it at
                // normal priority, which is only slower for others.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
            }
            // SAFETY: unshare has no memory arguments; a network or IPC namespace belongs to
            // the thread, and this thread does nothing else and exits below.
            if unsafe { libc::unshare(host.kind.flag()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            if host.kind == Kind::Net {
                // The ioctl the jail's own set-up makes when it has a namespace of its own.
                sys::loopback_up().map_err(io::Error::from_raw_os_error)?;
            }
            let fd = OwnedFd::from(File::open(host.kind.thread_path())?);
            setns(host.fd.as_raw_fd(), host.kind)?;
            Ok(fd)
        })?;
        maker.join().map_err(|_| io::Error::other("the namespace maker panicked"))?
    })
}

/// `setns(fd, CLONE_NEW*)` for the calling thread.
fn setns(fd: RawFd, kind: Kind) -> io::Result<()> {
    // SAFETY: setns has no memory arguments; `fd` is a namespace descriptor we hold open.
    if unsafe { libc::setns(fd, kind.flag()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's namespace of `kind`, as (device, inode).
fn thread_ns(kind: Kind) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(kind.thread_path())?;
    Ok((meta.dev(), meta.ino()))
}

impl PooledNs {
    /// Moves the calling thread into this namespace. Refused, with the thread left where it
    /// was, when the thread is not in the host's namespace (it would be brought back to the
    /// wrong one) or `setns` fails.
    pub fn enter(&self) -> io::Result<()> {
        if thread_ns(self.host.kind)? != self.host.id {
            return Err(io::Error::other("this thread is not in the host's namespace"));
        }
        setns(self.fd.as_raw_fd(), self.host.kind)
    }

    /// Moves the calling thread back to the host's namespace. On error the thread is still
    /// in the jail's: nothing network-related may run on it again.
    pub fn leave(&self) -> io::Result<()> {
        setns(self.host.fd.as_raw_fd(), self.host.kind)
    }
}

/// Ends the process: a caller's thread (a tokio worker, say) cloned a jail and cannot come
/// back from its network namespace. Neither the thread nor its future work belongs to
/// airlock, so it cannot be retired; left there, whatever it ran next (other calls, the
/// embedder's sockets) would see the jail's network and the jail would see its traffic.
/// It cannot happen unless the process lost `CAP_SYS_ADMIN` between two `setns` calls.
pub fn abort_stranded(error: &io::Error) -> ! {
    eprintln!(
        "airlock: fatal: a thread that cloned a jail cannot return to the host's network namespace ({error}); \
         aborting rather than run anything else in the jail's network"
    );
    std::process::abort()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: F_GETFD on a descriptor we hold.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags >= 0 && flags & libc::FD_CLOEXEC != 0
    }

    #[test]
    fn a_pooled_namespace_is_fresh_close_on_exec_and_the_thread_comes_back() {
        if !root() {
            // Without CAP_SYS_ADMIN there is no pool; the jail tests cover that path.
            return;
        }
        let pool = NsPool::start(Kind::Net).expect("a pool as root");
        let host = thread_ns(Kind::Net).unwrap();
        assert_eq!(host, pool.host.id);
        assert!(cloexec(pool.host.fd.as_raw_fd()));
        let (a, b) = (
            pool.take().expect("the first namespace"),
            loop {
                if let Some(netns) = pool.take() {
                    break netns;
                }
                std::thread::sleep(Duration::from_millis(5));
            },
        );
        assert!(cloexec(a.fd.as_raw_fd()) && cloexec(b.fd.as_raw_fd()));
        let id = |netns: &PooledNs| {
            let meta = File::from(netns.fd.try_clone().unwrap()).metadata().unwrap();
            (meta.dev(), meta.ino())
        };
        assert_ne!(id(&a), id(&b), "two takes, two namespaces");
        assert_ne!(id(&a), host);

        // On a scratch thread: entering and leaving moves exactly this thread.
        let a_id = id(&a);
        std::thread::spawn(move || {
            a.enter().unwrap();
            assert_eq!(thread_ns(Kind::Net).unwrap(), a_id);
            // Loopback is already up in it.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            // Entering a second one from inside the first is refused: it could not come back.
            assert!(b.enter().is_err());
            assert_eq!(thread_ns(Kind::Net).unwrap(), a_id);
            a.leave().unwrap();
            assert_eq!(thread_ns(Kind::Net).unwrap(), host);
        })
        .join()
        .unwrap();
        assert_eq!(thread_ns(Kind::Net).unwrap(), host, "the test's own thread never moved");
    }

    #[test]
    fn a_pooled_ipc_namespace_is_fresh_and_the_thread_comes_back() {
        if !root() {
            return;
        }
        let pool = NsPool::start(Kind::Ipc).expect("a pool as root");
        let host = thread_ns(Kind::Ipc).unwrap();
        assert_eq!(host, pool.host.id);
        let ipc = pool.take().expect("the first namespace");
        let id = {
            let meta = File::from(ipc.fd.try_clone().unwrap()).metadata().unwrap();
            (meta.dev(), meta.ino())
        };
        assert_ne!(id, host);
        std::thread::spawn(move || {
            ipc.enter().unwrap();
            assert_eq!(thread_ns(Kind::Ipc).unwrap(), id);
            // The network namespace is not touched.
            ipc.leave().unwrap();
            assert_eq!(thread_ns(Kind::Ipc).unwrap(), host);
        })
        .join()
        .unwrap();
        assert_eq!(thread_ns(Kind::Ipc).unwrap(), host, "the test's own thread never moved");
    }
}
