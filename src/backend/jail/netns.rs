//! Network namespaces made ahead of the calls: creating one costs about half a millisecond
//! (most of what a bare `clone` of the jail costs), so a background thread keeps a few fresh
//! ones ready and a call only takes one.
//!
//! Owns: [`NetnsPool`] (a descriptor of the host's network namespace, the ready namespaces,
//! the filler thread that makes them), [`PooledNetns`] (one namespace, taken once for one
//! call) and moving the spawning thread into it and back ([`PooledNetns::enter`],
//! [`PooledNetns::leave`]).
//!
//! How a jail gets one: the jail's user namespace is new, so the jail has no capability over
//! a namespace made by airlock and cannot `setns` into it. Instead the thread that clones the
//! jail enters the pooled namespace just before `clone`, clones without `CLONE_NEWNET` (the
//! child inherits the thread's namespace) and goes back right after (`spawn::spawn`). Each
//! namespace is made by a short-lived thread of its own that `unshare`s into it, brings `lo`
//! up, opens it and goes back to the host's namespace before it exits: a thread that serves
//! anything else never changes namespace here, and the way back is proven before the pool is
//! used. Only where that works (root, in practice) is there a pool; elsewhere
//! [`NetnsPool::start`] says why and every call clones with `CLONE_NEWNET` as before.
//!
//! What a jail gets is what `CLONE_NEWNET` gives it, and a little less: a new, empty
//! namespace with only loopback, up. It is owned by airlock's user namespace, not the jail's,
//! so even the jail's set-up cannot reconfigure it (no `CAP_NET_ADMIN` there).
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

/// The network namespace of the thread that made the backend: where a spawning thread
/// comes back to. Identified by its nsfs device and inode.
#[derive(Debug)]
struct HostNetns {
    fd: OwnedFd,
    id: (u64, u64),
}

impl HostNetns {
    fn open() -> io::Result<HostNetns> {
        // Opened close-on-exec (std always is): no tool ever inherits it.
        let file = File::open("/proc/thread-self/ns/net")?;
        let meta = file.metadata()?;
        Ok(HostNetns { id: (meta.dev(), meta.ino()), fd: OwnedFd::from(file) })
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

/// Fresh network namespaces, each used by one jail, and the thread that makes them.
#[derive(Debug)]
pub struct NetnsPool {
    host: Arc<HostNetns>,
    shared: Arc<Shared>,
    filler: Option<JoinHandle<()>>,
}

/// One pooled namespace, for one call's clone.
#[derive(Debug)]
pub struct PooledNetns {
    fd: OwnedFd,
    host: Arc<HostNetns>,
}

impl NetnsPool {
    /// Makes the first namespace (which proves a thread can make one and come back) and
    /// starts the filler. `Err` says why there is no pool (calls then use `CLONE_NEWNET`).
    pub fn start() -> Result<NetnsPool, String> {
        let host =
            Arc::new(HostNetns::open().map_err(|e| format!("cannot open this thread's network namespace: {e}"))?);
        let first = create(&host, Priority::Normal)
            .map_err(|e| format!("cannot make a network namespace and come back: {e}"))?;
        let shared =
            Arc::new(Shared { state: Mutex::new(State { ready: vec![first], stop: false }), wake: Condvar::new() });
        let filler = std::thread::Builder::new()
            .name("airlock-netns".into())
            .spawn({
                let (shared, host) = (Arc::clone(&shared), Arc::clone(&host));
                move || fill(&shared, &host)
            })
            .map_err(|e| format!("cannot start the network namespace filler: {e}"))?;
        Ok(NetnsPool { host, shared, filler: Some(filler) })
    }

    /// A ready namespace, never used before and never handed out again; `None` when the
    /// pool is empty (the filler is behind, or failing).
    pub fn take(&self) -> Option<PooledNetns> {
        let fd = self.shared.state.lock().ok()?.ready.pop()?;
        self.shared.wake.notify_one();
        Some(PooledNetns { fd, host: Arc::clone(&self.host) })
    }
}

impl Drop for NetnsPool {
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
fn fill(shared: &Shared, host: &HostNetns) {
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

/// Makes one namespace on a thread of its own: `unshare(CLONE_NEWNET)`, loopback up, open
/// it (close-on-exec), then back to the host's namespace, which proves the way back works.
fn create(host: &HostNetns, priority: Priority) -> io::Result<OwnedFd> {
    std::thread::scope(|scope| {
        let maker = std::thread::Builder::new().name("airlock-netns-new".into()).spawn_scoped(scope, || {
            if priority == Priority::Idle {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: pid 0 is this thread; `param` is a local. Failing leaves it at
                // normal priority, which is only slower for others.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
            }
            // SAFETY: unshare has no memory arguments; a network namespace belongs to the
            // thread, and this thread does nothing else and exits below.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // The ioctl the jail's own set-up makes when it has a namespace of its own.
            sys::loopback_up().map_err(io::Error::from_raw_os_error)?;
            let fd = OwnedFd::from(File::open("/proc/thread-self/ns/net")?);
            setns(host.fd.as_raw_fd())?;
            Ok(fd)
        })?;
        maker.join().map_err(|_| io::Error::other("the network namespace maker panicked"))?
    })
}

/// `setns(fd, CLONE_NEWNET)` for the calling thread.
fn setns(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns has no memory arguments; `fd` is a namespace descriptor we hold open.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The network namespace of the calling thread, as (device, inode).
fn thread_netns() -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((meta.dev(), meta.ino()))
}

impl PooledNetns {
    /// Moves the calling thread into this namespace. Refused, with the thread left where it
    /// was, when the thread is not in the host's namespace (it would be brought back to the
    /// wrong one) or `setns` fails.
    pub fn enter(&self) -> io::Result<()> {
        if thread_netns()? != self.host.id {
            return Err(io::Error::other("this thread is not in the host's network namespace"));
        }
        setns(self.fd.as_raw_fd())
    }

    /// Moves the calling thread back to the host's namespace. On error the thread is still
    /// in the jail's: nothing network-related may run on it again.
    pub fn leave(&self) -> io::Result<()> {
        setns(self.host.fd.as_raw_fd())
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
        let pool = NetnsPool::start().expect("a pool as root");
        let host = thread_netns().unwrap();
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
        let id = |netns: &PooledNetns| {
            let meta = File::from(netns.fd.try_clone().unwrap()).metadata().unwrap();
            (meta.dev(), meta.ino())
        };
        assert_ne!(id(&a), id(&b), "two takes, two namespaces");
        assert_ne!(id(&a), host);

        // On a scratch thread: entering and leaving moves exactly this thread.
        let a_id = id(&a);
        std::thread::spawn(move || {
            a.enter().unwrap();
            assert_eq!(thread_netns().unwrap(), a_id);
            // Loopback is already up in it.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            // Entering a second one from inside the first is refused: it could not come back.
            assert!(b.enter().is_err());
            assert_eq!(thread_netns().unwrap(), a_id);
            a.leave().unwrap();
            assert_eq!(thread_netns().unwrap(), host);
        })
        .join()
        .unwrap();
        assert_eq!(thread_netns().unwrap(), host, "the test's own thread never moved");
    }
}
