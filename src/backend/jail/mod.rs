//! The process jail: runs a native program under a [`Grant`] in new user, mount, pid, net,
//! ipc, uts and cgroup namespaces, on a minimal root, under Landlock, without
//! capabilities, with rlimits and cgroup limits, and reports how it ended.
//!
//! Owns: what the host offers ([`JailBackend::new`] probes it once: Landlock ABI, cgroup
//! hierarchy, host layout; the first call starts the network namespaces and jails made
//! ahead), which layers a call gets (a required layer the host lacks is a refusal, never a
//! weaker run: [`JailError::LayerUnavailable`]), preparing the child's
//! plan, supervising the run (wall time, CPU of the whole tree, output caps, stdin), and
//! classifying the end ([`JailExit`]).
//! Must not: see anything but the grant; leave anything behind. The pid namespace's init
//! is the tool itself: when it exits, or is killed at a limit, the kernel kills every
//! other process of the call; a call whose future is dropped kills and reaps its process
//! before its memory goes.
//!
//! Modules: `plan` (pure plans), `spawn` (clone and the ordered set-up), `ready` (jails
//! cloned ahead of their calls), `landlock`, `cgroup`, `netns` (network namespaces made
//! ahead), `prepared` (the /etc, /dev and root trees built once), `template` (the mount
//! namespace jails are cloned in), `seccomp` (profiles compiled to BPF), `sys` (raw system
//! calls for the child).

mod cgroup;
mod landlock;
mod netns;
pub mod plan;
mod prepared;
mod ready;
pub mod seccomp;
mod spawn;
mod sys;
mod template;

use std::{
    collections::HashMap,
    ffi::CString,
    io::{self, Read},
    os::{
        fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock, RwLock},
    time::{Duration, Instant},
};

use ::landlock::ABI;
use tokio::io::{AsyncReadExt, AsyncWriteExt, unix::AsyncFd};

use crate::{
    outcome::{CapturedOutput, Limit, Usage},
    policy::{Grant, Layer, Program, SeccompGrant},
};
use cgroup::{CallCgroup, CgroupUsage, Cgroups};
use plan::{Base, HostLayout, MountOp, PlanError, Prepared, Tree};
use prepared::PreparedTree;
use ready::{Cloner, Cloning, PendingJail, ReadyJail, ReadyPool, Running};
use seccomp::{CompiledSeccomp, SeccompProfile};
use spawn::{CStringArray, Call, ChildPlan, ChildStack, SeccompPlan, SetUpFailure, Step, Waiting};
use template::Template;

/// How long output is still read once the jail is reaped (what it wrote is in the pipes).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// How often the CPU time of the whole tree is checked against the limit (rlimits bound
/// each process; this bounds a tree that forks to spread its work).
const CPU_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How long the host layout (the copied /etc files) is trusted before it is read again.
const LAYOUT_TTL: Duration = Duration::from_secs(5);

/// How many jails are kept cloned ahead of their calls (see `ready`). Each holds its
/// namespaces, a call cgroup and a stack while it waits; two cover back-to-back calls while
/// the filler clones the next.
const READY_JAILS: usize = 2;

/// Why a call could not run in the jail (the call is denied with this reason).
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("the grant is not for a process")]
    NotProcess,
    #[error(
        "the grant lists network hosts, but the egress proxy is not available yet: process tools run with \
         loopback only; remove the network grant"
    )]
    Network,
    #[error(
        "the {layer} layer is not available on this host ({reason}); the policy requires it (list it in \
         backend.best_effort to run without it)"
    )]
    LayerUnavailable { layer: &'static str, reason: String },
    #[error("seccomp profile {name}: {reason}")]
    Seccomp { name: String, reason: String },
    #[error("cannot plan the jail's root: {0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Landlock(#[from] landlock::LandlockError),
    #[error("cannot prepare the call's cgroup: {0}")]
    Cgroup(io::Error),
    #[error("an argument or environment value contains a NUL byte: {0:?}")]
    Nul(String),
    #[error("cannot open the pinned executable {path}: {source}")]
    OpenExecutable { path: PathBuf, source: io::Error },
    #[error("the executable {path} has sha256 {actual}, but the policy pins {pinned}; it was not run")]
    ExecutableChanged { path: PathBuf, actual: String, pinned: String },
    #[error("cannot create the jail's {what}: {source}")]
    Resource { what: &'static str, source: io::Error },
    #[error(
        "cannot create the jail's namespaces: {0}; unprivileged user namespaces may be disabled \
         (sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)"
    )]
    Clone(io::Error),
    #[error(
        "the thread that cloned the jail cannot return to the host's network or mount namespace: {0}; the \
         jail was killed and the thread retired (did the process lose CAP_SYS_ADMIN?)"
    )]
    NetnsReturn(io::Error),
    #[error("cannot write the jail's uid/gid maps: {0}")]
    Maps(io::Error),
    #[error("cannot put the jail in its cgroup: {0}")]
    Attach(io::Error),
    #[error("jail set-up step \"{step}\" failed: {error}")]
    SetUp { step: String, error: io::Error },
    #[error("cannot wait for the jailed process: {0}")]
    Wait(io::Error),
}

/// How a jailed run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JailExit {
    /// The tool exited with this code.
    Code(i32),
    /// A signal killed it (not one of the jail's limits).
    Signal(i32),
    /// A limit stopped it; `signal` is what killed it, when one did.
    Limit { limit: Limit, signal: Option<i32> },
}

/// What a jailed run reports.
#[derive(Debug, Clone)]
pub struct JailReport {
    pub exit: JailExit,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    pub usage: Usage,
    /// The layers that were active.
    pub layers: Vec<Layer>,
    /// What the jail stopped or observed: `SIGSYS`, OOM kills, refused forks.
    pub violations: Vec<String>,
}

/// What the host looks like to the jail: its layout and, when airlock may create a tmpfs,
/// the prepared /etc, /dev and root built from it (each reused while its entries and the
/// host's mounts are unchanged).
#[derive(Debug, Clone)]
struct Host {
    probed: Instant,
    layout: Arc<HostLayout>,
    /// A digest of this process's mount table when the trees were checked: a tree binds
    /// host paths with the mounts beneath them as they were then.
    mounts: u64,
    etc: Option<Arc<PreparedTree>>,
    dev: Option<Arc<PreparedTree>>,
    root: Option<Arc<PreparedTree>>,
    /// The mount namespace of the prepared root, that jails are cloned in.
    template: Option<Arc<Template>>,
}

impl Host {
    /// Reads the layout; `known` is the last probe's prepared trees, reused while they hold
    /// what the host has and nothing was mounted or unmounted since.
    fn probe(known: Option<&Host>) -> Host {
        let layout = Arc::new(HostLayout::probe());
        let mounts = mount_table_digest();
        let known = known.filter(|host| host.mounts == mounts);
        let etc = prepare("/etc", &plan::etc_tree(&layout), known.and_then(|host| host.etc.clone()));
        let dev = prepare("/dev", &plan::dev_tree(&layout.devices), known.and_then(|host| host.dev.clone()));
        let root = match (&etc, &dev) {
            (Some(etc), Some(dev)) => {
                let spec = plan::root_tree(&layout);
                let known = known.and_then(|host| host.root.clone()).filter(|root| root.holds_with(&spec, &[etc, dev]));
                known.or_else(|| {
                    PreparedTree::build_root(&spec, vec![("etc", etc.clone()), ("dev", dev.clone())])
                        .inspect_err(|error| tracing::debug!("jail: each jail makes its own root ({error})"))
                        .ok()
                        .map(Arc::new)
                })
            }
            _ => None,
        };
        let template = root.as_ref().and_then(|root| {
            let known = known.and_then(|host| host.template.clone()).filter(|template| template.holds(root));
            known.or_else(|| {
                let staging = layout.staging.first()?;
                Template::build(root, staging)
                    .inspect_err(|error| tracing::debug!("jail: no template mount namespace ({error})"))
                    .ok()
                    .map(Arc::new)
            })
        });
        Host { probed: Instant::now(), layout, mounts, etc, dev, root, template }
    }

    /// The trees the child gets prepared.
    fn prepared(&self) -> Prepared {
        Prepared { etc: self.etc.is_some(), dev: self.dev.is_some(), root: self.root.is_some() }
    }
}

/// A digest of `/proc/self/mountinfo` (0 when it cannot be read: then every probe differs
/// from none, and trees are checked as before).
fn mount_table_digest() -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    std::fs::read("/proc/self/mountinfo").unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// `known` if it holds `spec`, else a new tree of it; `None` when airlock cannot make one
/// (each jail then makes the tree entry by entry).
fn prepare(name: &str, spec: &plan::TreeSpec, known: Option<Arc<PreparedTree>>) -> Option<Arc<PreparedTree>> {
    if let Some(known) = known.filter(|tree| tree.holds(spec)) {
        return Some(known);
    }
    match PreparedTree::build(spec) {
        Ok(tree) => Some(Arc::new(tree)),
        Err(error) => {
            tracing::debug!("jail: {name} is made entry by entry in each jail (no prepared tmpfs: {error})");
            None
        }
    }
}

/// A pinned executable whose digest was checked, identified by what would change if its
/// contents did.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// The process jail backend: host capabilities probed once, shared by every call.
pub struct JailBackend {
    host: RwLock<Host>,
    landlock: Option<ABI>,
    cgroups: Result<Arc<Cgroups>, String>,
    cgroup_namespace: bool,
    /// What clones jails (with the pool of network namespaces) and the pool of jails cloned
    /// ahead, started by the first jailed call: a runtime that never jails makes none.
    started: OnceLock<Started>,
    /// How many jails the pool keeps ready (0: every call clones its own).
    ready_jails: usize,
    uid: u32,
    gid: u32,
    verified: Mutex<HashMap<PathBuf, (FileIdentity, String)>>,
    /// Compiled profiles by (file, sha256): compiled once, cheap to clone.
    seccomp: Mutex<HashMap<(PathBuf, String), CompiledSeccomp>>,
}

/// The jail a call starts with, before it has the call.
enum Starting<'a> {
    /// Cloned ahead, from the pool.
    Ready(ReadyJail),
    /// Being cloned for this call.
    Cloning(PendingJail<'a>),
}

impl Starting<'_> {
    /// Whether it is (or may be) cloned in a template.
    fn in_template(&self) -> bool {
        match self {
            Starting::Ready(ready) => ready.template().is_some(),
            Starting::Cloning(pending) => pending.in_template(),
        }
    }
}

/// The grant's binds of a plan on the prepared root ([`plan::MountOp::Attach`]), as
/// detached copies of their host paths, in index order: opened here, while the jail is
/// cloned, and attached by the child. Each is opened without following a symlink, copied
/// with the mounts beneath it, given its attributes and private propagation.
fn detach(root: &plan::RootPlan) -> Result<Vec<OwnedFd>, JailError> {
    root.detached()
        .map(|(source, attrs)| {
            let error = |errno| JailError::SetUp {
                step: format!("bind {}", source.to_string_lossy()),
                error: io::Error::from_raw_os_error(errno),
            };
            let path = sys::open_path_no_symlinks(source).map_err(error)?;
            let copy = sys::detached_copy(path, attrs, true, libc::MS_PRIVATE);
            let _ = sys::close(path);
            // SAFETY: detached_copy returned a new descriptor that only we own.
            copy.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }).map_err(error)
        })
        .collect()
}

/// What the first jailed call starts.
#[derive(Debug)]
struct Started {
    /// Dropped first: its filler clones through `cloner`.
    ready: Option<ReadyPool>,
    cloner: Arc<Cloner>,
}

impl std::fmt::Debug for JailBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JailBackend")
            .field("landlock", &self.landlock)
            .field("cgroups", &self.cgroups.as_ref().map(|c| c.version()))
            .field("cgroup_namespace", &self.cgroup_namespace)
            .field("netns_pool", &self.started.get().map(|started| started.cloner.netns.as_ref().map(drop)))
            .field("ready_jails", &self.ready_jails)
            .finish()
    }
}

impl JailBackend {
    /// Probes the host: its layout, Landlock's ABI, a cgroup hierarchy, cgroup namespaces.
    /// The first jailed call starts the pools of network namespaces (as root) and of jails
    /// cloned ahead.
    /// Never fails: what is missing makes calls that require it refused, with the reason.
    pub fn new() -> JailBackend {
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        JailBackend {
            host: RwLock::new(Host::probe(None)),
            landlock: landlock::probe_abi(),
            cgroups: Cgroups::detect().map(Arc::new),
            cgroup_namespace: Path::new("/proc/self/ns/cgroup").exists(),
            started: OnceLock::new(),
            ready_jails: READY_JAILS,
            uid,
            gid,
            verified: Mutex::new(HashMap::new()),
            seccomp: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `count` jails cloned ahead of their calls (0: each call clones its own jail,
    /// as the first call always does). Takes effect only before the first jailed call.
    pub fn set_ready_jails(&mut self, count: usize) {
        self.ready_jails = count;
    }

    /// The compiled form of a seccomp profile: from the cache, or loaded, checked against
    /// the digest the policy recorded, compiled and cached. The runtime calls this for
    /// every profile when the policy loads, so calls only look it up.
    pub fn seccomp(&self, profile: &SeccompGrant) -> Result<CompiledSeccomp, JailError> {
        let key = (profile.path.clone(), profile.sha256.clone());
        if let Some(compiled) = self.seccomp.lock().ok().and_then(|cache| cache.get(&key).cloned()) {
            return Ok(compiled);
        }
        let error = |reason: String| JailError::Seccomp { name: profile.name.clone(), reason };
        let bytes =
            std::fs::read(&profile.path).map_err(|e| error(format!("cannot read {}: {e}", profile.path.display())))?;
        let actual = crate::policy::sha256_hex(&bytes);
        if actual != profile.sha256 {
            return Err(error(format!(
                "{} changed since the policy was loaded (sha256 {actual}, loaded {}); reload the policy",
                profile.path.display(),
                profile.sha256
            )));
        }
        let compiled =
            SeccompProfile::load(&profile.path).and_then(|p| p.compile()).map_err(|e| error(e.to_string()))?;
        if let Ok(mut cache) = self.seccomp.lock() {
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// The Landlock ABI in use (`None`: the kernel has none).
    pub fn landlock_abi(&self) -> Option<i32> {
        self.landlock.map(|abi| abi as i32)
    }

    /// Why network namespaces are not made ahead, if they are not (each call then makes
    /// its own: the same isolation, half a millisecond slower).
    pub fn netns_pool_unavailable(&self) -> Option<&str> {
        self.started().cloner.netns.as_ref().err().map(String::as_str)
    }

    /// The cloner and the pool of ready jails, started on first use.
    fn started(&self) -> &Started {
        self.started.get_or_init(|| {
            let cloner = Arc::new(Cloner::new(self.cgroups.as_ref().ok().cloned(), self.uid, self.gid));
            cloner.set_template(self.host.read().ok().and_then(|host| host.template.clone()));
            let ready = (self.ready_jails > 0)
                .then(|| ReadyPool::start(Arc::clone(&cloner), self.ready_jails))
                .and_then(|started| started.inspect_err(|e| tracing::debug!("jail: no jails cloned ahead: {e}")).ok());
            Started { ready, cloner }
        })
    }

    /// Why cgroup limits are unavailable, if they are.
    pub fn cgroups_unavailable(&self) -> Option<&str> {
        self.cgroups.as_ref().err().map(String::as_str)
    }

    /// The host's layout and its prepared trees, read again when older than [`LAYOUT_TTL`].
    fn host(&self) -> Host {
        let known = match self.host.read() {
            Ok(host) if host.probed.elapsed() < LAYOUT_TTL => return host.clone(),
            Ok(host) => Some(host.clone()),
            Err(_) => None,
        };
        let fresh = Host::probe(known.as_ref());
        if let Ok(mut host) = self.host.write() {
            *host = fresh.clone();
        }
        if let Some(started) = self.started.get() {
            started.cloner.set_template(fresh.template.clone());
        }
        fresh
    }

    /// The layers this call gets, or the first required one the host lacks.
    fn layers(&self, grant: &Grant) -> Result<Vec<Layer>, JailError> {
        let optional = |layer: Layer| grant.jail.best_effort.contains(&layer);
        let mut layers = vec![
            Layer::UserNamespace,
            Layer::MountNamespace,
            Layer::PidNamespace,
            Layer::NetNamespace,
            Layer::IpcNamespace,
            Layer::UtsNamespace,
        ];
        let mut offer = |layer: Layer, available: Result<(), String>| match available {
            Ok(()) => {
                layers.push(layer);
                Ok(())
            }
            Err(_) if optional(layer) => Ok(()),
            Err(reason) => Err(JailError::LayerUnavailable { layer: layer.name(), reason }),
        };
        offer(
            Layer::CgroupNamespace,
            if self.cgroup_namespace { Ok(()) } else { Err("the kernel has no cgroup namespaces".into()) },
        )?;
        offer(Layer::MinimalRoot, Ok(()))?;
        offer(
            Layer::Landlock,
            self.landlock.map(drop).ok_or_else(|| "the kernel has no Landlock, or it is disabled".to_string()),
        )?;
        offer(Layer::Rlimits, Ok(()))?;
        offer(Layer::Cgroups, self.cgroups.as_ref().map(drop).map_err(Clone::clone))?;
        offer(Layer::Capabilities, Ok(()))?;
        offer(Layer::NoNewPrivs, Ok(()))?;
        offer(Layer::CloseFds, Ok(()))?;
        offer(
            Layer::Seccomp,
            if grant.jail.seccomp.is_some() { Ok(()) } else { Err("the grant names no seccomp profile".into()) },
        )?;
        Ok(layers)
    }

    /// Opens a pinned executable and checks its digest (skipped when the file is the one
    /// already checked: same device, inode, size, mtime and ctime). The jail runs the
    /// opened file, so what runs is what was checked.
    fn open_pinned(&self, path: &Path, pinned: &str) -> Result<OwnedFd, JailError> {
        let open_error = |source| JailError::OpenExecutable { path: path.to_path_buf(), source };
        let mut file = std::fs::File::open(path).map_err(open_error)?;
        let meta = file.metadata().map_err(open_error)?;
        let identity = FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        let known = self.verified.lock().ok().and_then(|v| v.get(path).cloned());
        let actual = match known {
            Some((known, sha)) if known == identity => sha,
            _ => {
                let mut bytes = Vec::with_capacity(usize::try_from(meta.size()).unwrap_or(0));
                file.read_to_end(&mut bytes).map_err(open_error)?;
                let sha = crate::policy::sha256_hex(&bytes);
                if let Ok(mut verified) = self.verified.lock() {
                    verified.insert(path.to_path_buf(), (identity, sha.clone()));
                }
                sha
            }
        };
        if actual != pinned {
            return Err(JailError::ExecutableChanged { path: path.to_path_buf(), actual, pinned: pinned.to_string() });
        }
        Ok(OwnedFd::from(file))
    }

    /// A jail for a call: a ready one from the pool when there is one, else one being
    /// cloned now (in a call cgroup when `cgroups`, in `template` when given) while the
    /// caller prepares the call.
    fn start_jail(&self, cgroups: bool, template: Option<&Arc<Template>>) -> Result<Starting<'_>, JailError> {
        let started = self.started();
        // A ready jail without the cgroup the call needs, or cloned in an older template
        // (the host's mounts changed since), is dropped (killed) unused.
        let fits = |ready: &ReadyJail| {
            ready.has_cgroup() == cgroups
                && ready.template().is_none_or(|theirs| template.is_some_and(|ours| Arc::ptr_eq(theirs, ours)))
        };
        if let Some(ready) = started.ready.as_ref().and_then(ReadyPool::take).filter(fits) {
            return Ok(Starting::Ready(ready));
        }
        self.clone_jail(cgroups, template).map(Starting::Cloning)
    }

    /// A jail cloned now (in a call cgroup when `cgroups`, in `template` when given).
    fn clone_jail(&self, cgroups: bool, template: Option<&Arc<Template>>) -> Result<PendingJail<'_>, JailError> {
        let cgroup = match (&self.cgroups, cgroups) {
            (Ok(pool), true) => Some(pool.reserve().map_err(JailError::Cgroup)?),
            _ => None,
        };
        self.started().cloner.start_clone(cgroup, Cloning::Caller, template.cloned())
    }

    /// Hands `call` to the jail `starting` gives, its cgroup set to the call's limits first.
    /// A jail from the pool that died waiting never had the call: one cloned now (in
    /// `template`, when given) runs it.
    fn hand_over(
        &self,
        starting: Starting<'_>,
        call: Call,
        grant: &Grant,
        template: Option<&Arc<Template>>,
    ) -> Result<Running, JailError> {
        let started = self.started();
        let (memory, pids) = (grant.limits.memory_mib.saturating_mul(1 << 20), grant.limits.pids);
        let running = |ready: ReadyJail| {
            let running = ready.into_running();
            if let (Some(running), Some(pool)) = (&running, &started.ready) {
                pool.handed(&running.pidfd);
            }
            running.ok_or_else(|| JailError::Wait(io::Error::other("the jail was handed over twice")))
        };
        let hand_cloned = |mut pending: PendingJail<'_>| {
            if let Some(cgroup) = pending.cgroup_mut() {
                cgroup.prepare(memory, pids).map_err(JailError::Cgroup)?;
            }
            running(pending.hand(call)?)
        };
        match starting {
            Starting::Cloning(pending) => hand_cloned(pending),
            Starting::Ready(mut ready) => {
                if let Some(cgroup) = ready.cgroup_mut() {
                    cgroup.prepare(memory, pids).map_err(JailError::Cgroup)?;
                }
                match ready.hand(&call) {
                    Ok(()) => running(ready),
                    // It died waiting: it never had the call, so one cloned now runs it.
                    Err(error) => {
                        tracing::debug!("jail: a ready jail was gone ({error}); cloning one for the call");
                        let cgroups = ready.has_cgroup();
                        drop(ready);
                        hand_cloned(self.clone_jail(cgroups, template)?)
                    }
                }
            }
        }
    }

    /// Runs the grant's program in the jail and reports how it ended.
    pub async fn run(&self, grant: &Grant) -> Result<JailReport, JailError> {
        let Program::Process { executable, sha256 } = &grant.program else {
            return Err(JailError::NotProcess);
        };
        if !grant.network.is_empty() {
            return Err(JailError::Network);
        }
        let layers = self.layers(grant)?;
        let has = |layer: Layer| layers.contains(&layer);
        let cgroup_memory = has(Layer::Cgroups);
        // The jail is cloned (or taken ready) first: a clone runs on the cgroup's resident
        // thread while this one prepares the call. Any failure below drops it (killed).
        let host = self.host();
        let mut starting = self.start_jail(cgroup_memory, host.template.as_ref())?;

        // Everything the child needs, prepared here: it must not allocate.
        let root = plan::root_plan(&host.layout, grant, host.prepared())?;
        // A root of the jail's own binds host paths by path: not from a template's copy.
        let template = match root.base {
            Base::Shared { .. } => host.template.as_ref(),
            Base::Own { .. } => None,
        };
        if template.is_none() && starting.in_template() {
            drop(starting);
            starting = Starting::Cloning(self.clone_jail(cgroup_memory, None)?);
        }
        let detached = detach(&root)?;
        let hard = |resource: u32| {
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: getrlimit writes into the local struct.
            let ok = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
            if ok { limit.rlim_max } else { u64::MAX }
        };
        let rlimits = plan::rlimits(&grant.limits, cgroup_memory, &hard);
        let nul = |text: &[u8]| JailError::Nul(String::from_utf8_lossy(text).into_owned());
        let cstring = |bytes: &[u8]| CString::new(bytes).map_err(|_| nul(bytes));
        let mut argv = vec![cstring(executable.as_os_str().as_bytes())?];
        for arg in &grant.args {
            argv.push(cstring(arg.as_bytes())?);
        }
        let mut envp = Vec::new();
        for (name, value) in &grant.env {
            envp.push(cstring(format!("{name}={value}").as_bytes())?);
        }
        let exec_fd = match sha256 {
            Some(pinned) => Some(self.open_pinned(executable, pinned)?),
            None => None,
        };
        let (ruleset, landlock_rules) = match self.landlock.filter(|_| has(Layer::Landlock)) {
            Some(abi) => (Some(landlock::ruleset(abi, &root.landlock)?), landlock::child_rules(abi)),
            None => (None, Vec::new()),
        };
        let seccomp = match grant.jail.seccomp.as_ref().filter(|_| has(Layer::Seccomp)) {
            Some(profile) => {
                let compiled = self.seccomp(profile)?;
                Some(SeccompPlan::new(&compiled).ok_or_else(|| JailError::Seccomp {
                    name: profile.name.clone(),
                    reason: "a BPF program is too long".into(),
                })?)
            }
            None => None,
        };
        let plan = Box::new(ChildPlan {
            root,
            rlimits,
            landlock_rules,
            executable: cstring(executable.as_os_str().as_bytes())?,
            argv: CStringArray::new(argv),
            envp: CStringArray::new(envp),
            clear_groups: self.uid == 0,
            cgroup_namespace: has(Layer::CgroupNamespace),
            seccomp,
        });

        let resource = |what: &'static str| move |source| JailError::Resource { what, source };
        let (stdin_read, stdin_write) = pipe().map_err(resource("stdin pipe"))?;
        let (stdout_read, stdout_write) = pipe().map_err(resource("stdout pipe"))?;
        let (stderr_read, stderr_write) = pipe().map_err(resource("stderr pipe"))?;
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        // Only the prepared trees the plan clones travel to the child.
        let tree = |wanted: Tree, prepared: &Option<Arc<PreparedTree>>| match prepared {
            Some(prepared)
                if plan.root.ops.iter().any(|op| matches!(op, MountOp::Prepared { tree, .. } if *tree == wanted)) =>
            {
                prepared.fd()
            }
            _ => -1,
        };
        let call = Call {
            plan: &*plan as *const ChildPlan,
            stdin: stdin_read.as_raw_fd(),
            stdout: stdout_write.as_raw_fd(),
            stderr: stderr_write.as_raw_fd(),
            landlock: raw(&ruleset),
            etc: tree(Tree::Etc, &host.etc),
            dev: tree(Tree::Dev, &host.dev),
            root: match plan.root.base {
                Base::Shared { .. } => host.root.as_ref().map_or(-1, |root| root.fd()),
                Base::Own { .. } => tree(Tree::Root, &host.root),
            },
            executable: raw(&exec_fd),
            detached: {
                let mut fds = [-1; plan::MAX_DETACHED];
                for (slot, fd) in fds.iter_mut().zip(&detached) {
                    *slot = fd.as_raw_fd();
                }
                fds
            },
            detached_count: detached.len(),
        };

        let started = Instant::now();
        let Running { pid, pidfd, report, waiting, stack, mut cgroup } =
            self.hand_over(starting, call, grant, template)?;
        let mut jailed = Jailed {
            pid,
            pidfd: Some(pidfd),
            reaped: None,
            _waiting: waiting,
            _plan: plan,
            stack: Some(stack),
            _prepared: [host.etc.clone(), host.dev.clone(), host.root.clone()],
        };
        // The child has its own copies of the call's descriptors.
        drop((stdin_read, stdout_write, stderr_write, ruleset, exec_fd, detached));

        let supervised = supervise(&mut jailed, grant, stdin_write, stdout_read, stderr_read, cgroup.as_mut()).await;
        let wall = started.elapsed();
        let status = jailed.reaped;
        if status.is_some()
            && let Some(stack) = jailed.stack.take()
        {
            // Reaped: the child is gone, and it used the stack only until its exec.
            self.started().cloner.give_back_stack(stack);
        }
        let failure = read_failure(report);
        let usage = cgroup.as_mut().and_then(|c| c.usage().ok()).unwrap_or_default();
        if let (Ok(cgroups), Some(cgroup)) = (&self.cgroups, cgroup) {
            cgroups.give_back(cgroup);
        }
        let (outputs, killed_for) = supervised?;
        if let Some(failure) = failure {
            return Err(set_up_error(failure, Some(&jailed._plan)));
        }
        let Some((status, rusage)) = status else {
            return Err(JailError::Wait(io::Error::other("the process was not reaped")));
        };
        let cpu_us = if cgroup_memory { usage.cpu_us.max(rusage_cpu_us(&rusage)) } else { rusage_cpu_us(&rusage) };
        let rusage_peak = u64::try_from(rusage.ru_maxrss).unwrap_or(0).saturating_mul(1024);
        let (exit, violations) = classify(status, killed_for, &usage, cpu_us, grant.limits.cpu_seconds);
        Ok(JailReport {
            exit,
            stdout: outputs.0,
            stderr: outputs.1,
            usage: Usage {
                wall_us: u64::try_from(wall.as_micros()).unwrap_or(u64::MAX),
                cpu_us: Some(cpu_us),
                fuel: None,
                peak_memory_bytes: if cgroup_memory { usage.peak_memory_bytes } else { rusage_peak },
            },
            layers,
            violations,
        })
    }
}

impl Default for JailBackend {
    fn default() -> Self {
        JailBackend::new()
    }
}

/// A cloned child and everything it reads until it execs. Dropping it before the child
/// was reaped (a cancelled call) kills the whole jail and reaps it first, so that the plan
/// and stack are never freed under the child, and nothing survives the call.
struct Jailed {
    pid: i32,
    pidfd: Option<OwnedFd>,
    reaped: Option<(i32, libc::rusage)>,
    _waiting: Box<Waiting>,
    _plan: Box<ChildPlan>,
    /// The prepared /etc, /dev and root the child clones (their descriptors must stay open
    /// until then).
    _prepared: [Option<Arc<PreparedTree>>; 3],
    /// Taken back for reuse once the child is reaped.
    stack: Option<ChildStack>,
}

impl Jailed {
    /// SIGKILL to the jail's init: the kernel then kills every process of its pid
    /// namespace, background and `setsid` ones included.
    fn kill(&self) {
        if let Some(pidfd) = &self.pidfd {
            // SAFETY: pidfd_send_signal on our own pidfd; no pointers besides a NULL info.
            unsafe {
                libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, ptr_null(), 0);
            }
        }
    }

    /// Reaps the child (blocking until it exits) and keeps its status and rusage.
    fn reap(&mut self) -> io::Result<()> {
        if self.reaped.is_some() {
            return Ok(());
        }
        let mut status = 0;
        // SAFETY: rusage is plain data filled in by wait4.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waits for our own child; pointers to locals.
            let ret = unsafe { libc::wait4(self.pid, &mut status, libc::__WALL, &mut rusage) };
            if ret == self.pid {
                self.reaped = Some((status, rusage));
                self.pidfd = None;
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

fn ptr_null() -> *const libc::siginfo_t {
    std::ptr::null()
}

impl Drop for Jailed {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            self.kill();
            let _ = self.reap();
        }
    }
}

/// A pipe, both ends close-on-exec, numbered 3 or above (so that the child's dup3 onto
/// 0-2 never meets its own number).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned two new descriptors we own.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

pub(crate) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor >= 3 that we own.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// Maps the jail's ids to the caller's own (uid and gid inside = outside). As root the gid
/// map may allow setgroups (the child then drops its supplementary groups); otherwise the
/// kernel requires setgroups to be denied first.
pub(crate) fn write_maps(pid: i32, uid: u32, gid: u32) -> io::Result<()> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    std::fs::write(proc_dir.join("uid_map"), format!("{uid} {uid} 1\n"))?;
    if uid != 0 {
        std::fs::write(proc_dir.join("setgroups"), "deny")?;
    }
    std::fs::write(proc_dir.join("gid_map"), format!("{gid} {gid} 1\n"))
}

/// What the child reported, if a set-up step failed (nothing: it exec'd).
fn read_failure(report: OwnedFd) -> Option<SetUpFailure> {
    // Read once the child is reaped: what it wrote is in the pipe. Without blocking, so that
    // a stray holder of the write end cannot keep the call waiting.
    let mut file = std::fs::File::from(set_nonblocking(report).ok()?);
    let mut bytes = [0u8; 8];
    let mut read = 0;
    while read < bytes.len() {
        match file.read(&mut bytes[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (read == bytes.len()).then(|| SetUpFailure::decode(&bytes)).flatten()
}

/// The denial for a failed set-up step, naming the step (and the mount it was at).
/// The denial for a failed set-up step; `plan` names the mount or executable of a step
/// after the call (a step before it, while the jail waited, has none).
fn set_up_error(failure: SetUpFailure, plan: Option<&ChildPlan>) -> JailError {
    let mut step = failure.step.describe().to_string();
    match (failure.step, plan) {
        (Step::Mount, Some(plan)) => {
            if let Some(op) = plan.root.ops.get(usize::from(failure.index)) {
                step = format!("{step}: {}", op.describe());
            }
        }
        (Step::Exec, Some(plan)) => step = format!("{step} {}", plan.executable.to_string_lossy()),
        (Step::Rlimit | Step::LandlockRule | Step::Stdio | Step::CapabilityBounding, _) => {
            step = format!("{step} #{}", failure.index);
        }
        _ => {}
    }
    JailError::SetUp { step, error: io::Error::from_raw_os_error(failure.errno) }
}

/// CPU time from rusage, in microseconds.
fn rusage_cpu_us(rusage: &libc::rusage) -> u64 {
    let us =
        |t: libc::timeval| u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0);
    us(rusage.ru_utime) + us(rusage.ru_stime)
}

/// Output kept up to a cap.
struct Capture {
    cap: u64,
    output: CapturedOutput,
}

impl Capture {
    fn new(cap: u64) -> Capture {
        Capture { cap, output: CapturedOutput::default() }
    }

    /// Keeps what fits; true when the cap was passed.
    fn push(&mut self, bytes: &[u8]) -> bool {
        self.output.total_bytes += bytes.len() as u64;
        let room = self.cap.saturating_sub(self.output.bytes.len() as u64);
        let keep = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.output.bytes.extend_from_slice(&bytes[..keep]);
        if keep < bytes.len() {
            self.output.truncated = true;
        }
        self.output.total_bytes > self.cap
    }
}

type Outputs = (CapturedOutput, CapturedOutput);

/// Feeds stdin, captures stdout and stderr, enforces the wall-time, tree CPU and output
/// limits, and reaps the child. Returns the outputs and the limit the jail killed for.
async fn supervise(
    jailed: &mut Jailed,
    grant: &Grant,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    mut cgroup: Option<&mut CallCgroup>,
) -> Result<(Outputs, Option<Limit>), JailError> {
    let wait_error = JailError::Wait;
    let Some(pidfd) =
        jailed.pidfd.as_ref().map(|fd| fd.as_fd().try_clone_to_owned()).transpose().map_err(wait_error)?
    else {
        return Err(JailError::Wait(io::Error::other("no pidfd")));
    };
    // SAFETY: `pidfd` is an OwnedFd moved into the AsyncFd: it stays open and the same
    // descriptor until the AsyncFd drops it.
    let exited = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| JailError::Wait(e.into_parts().1))?;
    let mut out = tokio::net::unix::pipe::Receiver::from_owned_fd(set_nonblocking(stdout)?).map_err(JailError::Wait)?;
    let mut err = tokio::net::unix::pipe::Receiver::from_owned_fd(set_nonblocking(stderr)?).map_err(JailError::Wait)?;
    let mut input = if grant.stdin.is_empty() {
        None
    } else {
        Some(tokio::net::unix::pipe::Sender::from_owned_fd(set_nonblocking(stdin)?).map_err(JailError::Wait)?)
    };
    let mut written = 0usize;
    let mut captures = (Capture::new(grant.limits.output_bytes), Capture::new(grant.limits.output_bytes));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(grant.limits.wall_ms);
    let cpu_limit_us = grant.limits.cpu_seconds.saturating_mul(1_000_000);
    let mut cpu_check = tokio::time::interval_at(tokio::time::Instant::now() + CPU_CHECK_INTERVAL, CPU_CHECK_INTERVAL);
    let (mut out_open, mut err_open, mut running) = (true, true, true);
    // Set once the jail is reaped: how long its pipes may still take to reach end-of-file.
    let mut drain_until = None;
    let mut killed_for = None;
    let (mut out_buf, mut err_buf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    while running || out_open || err_open {
        tokio::select! {
            ready = exited.readable(), if running => {
                let mut guard = ready.map_err(JailError::Wait)?;
                guard.clear_ready();
                jailed.reap().map_err(JailError::Wait)?;
                running = false;
                drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            }
            read = out.read(&mut out_buf), if out_open => match read {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => if captures.0.push(&out_buf[..n]) && killed_for.is_none() {
                    killed_for = Some(Limit::Output);
                    jailed.kill();
                },
            },
            read = err.read(&mut err_buf), if err_open => match read {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => if captures.1.push(&err_buf[..n]) && killed_for.is_none() {
                    killed_for = Some(Limit::Output);
                    jailed.kill();
                },
            },
            sent = async {
                match input.as_mut() {
                    Some(sender) => sender.write(&grant.stdin[written..]).await,
                    None => std::future::pending().await,
                }
            }, if input.is_some() => match sent {
                Ok(n) if written + n < grant.stdin.len() => written += n,
                // All written, or the tool closed its stdin: either way we are done.
                _ => input = None,
            },
            _ = tokio::time::sleep_until(deadline), if running && killed_for.is_none() => {
                killed_for = Some(Limit::Wall);
                jailed.kill();
            }
            _ = cpu_check.tick(), if running && killed_for.is_none() && cgroup.is_some() => {
                if let Some(cgroup) = cgroup.as_deref_mut()
                    && cgroup.cpu_us().is_ok_and(|us| us > cpu_limit_us)
                {
                    killed_for = Some(Limit::Cpu);
                    jailed.kill();
                }
            }
            // Once the jail is gone its pipes hit end-of-file at once (every process that
            // could hold them died with its pid namespace); a stray holder outside it
            // cannot keep the call waiting, even when nothing more is written.
            _ = async {
                match drain_until {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                }
            }, if drain_until.is_some() => break,
        }
    }
    Ok(((captures.0.output, captures.1.output), killed_for))
}

fn set_nonblocking(fd: OwnedFd) -> Result<OwnedFd, JailError> {
    let raw: RawFd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(JailError::Wait(io::Error::last_os_error()));
    }
    Ok(fd)
}

/// How the run ended, from its wait status, the limit the jail killed for, and the
/// cgroup's counters; plus the violations observed.
fn classify(
    status: i32,
    killed_for: Option<Limit>,
    usage: &CgroupUsage,
    cpu_us: u64,
    cpu_seconds: u64,
) -> (JailExit, Vec<String>) {
    let mut violations = Vec::new();
    if usage.oom_kills > 0 {
        violations.push(format!("oom-kill: the memory limit killed {} process(es)", usage.oom_kills));
    }
    if usage.pids_refused > 0 {
        violations.push(format!("pids-limit: {} fork(s) refused", usage.pids_refused));
    }
    let signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    if signal == Some(libc::SIGSYS) {
        violations.push("seccomp: the tool was killed by SIGSYS (a forbidden system call)".to_string());
    }
    // RLIMIT_CPU's SIGKILL comes at the limit by the scheduler's count; the cgroup's
    // count lags it a little. Nothing else but the OOM killer sends SIGKILL in the jail.
    let cpu_spent = cpu_us.saturating_mul(10) >= cpu_seconds.saturating_mul(1_000_000).saturating_mul(8);
    let exit = match (killed_for, signal) {
        (Some(limit), signal) => JailExit::Limit { limit, signal },
        (None, Some(libc::SIGXCPU)) => JailExit::Limit { limit: Limit::Cpu, signal },
        (None, Some(libc::SIGKILL)) if cpu_spent => JailExit::Limit { limit: Limit::Cpu, signal },
        (None, Some(libc::SIGKILL)) if usage.oom_kills > 0 => JailExit::Limit { limit: Limit::Memory, signal },
        (None, Some(libc::SIGXFSZ)) => JailExit::Limit { limit: Limit::FileSize, signal },
        (None, Some(signal)) => JailExit::Signal(signal),
        (None, None) => {
            let code = libc::WEXITSTATUS(status);
            if code != 0 && usage.oom_kills > 0 {
                JailExit::Limit { limit: Limit::Memory, signal: None }
            } else if code != 0 && usage.pids_refused > 0 {
                JailExit::Limit { limit: Limit::Pids, signal: None }
            } else {
                JailExit::Code(code)
            }
        }
    };
    (exit, violations)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::policy::Mount;
    use cgroup::AfterJob;

    fn exited(code: i32) -> i32 {
        (code & 0xff) << 8
    }

    #[test]
    fn classify_names_the_limit_that_stopped_the_run() {
        let none = CgroupUsage::default();
        assert_eq!(classify(exited(0), None, &none, 0, 10).0, JailExit::Code(0));
        assert_eq!(classify(exited(3), None, &none, 0, 10).0, JailExit::Code(3));
        assert_eq!(classify(libc::SIGSEGV, None, &none, 0, 10).0, JailExit::Signal(libc::SIGSEGV));
        assert_eq!(
            classify(libc::SIGKILL, Some(Limit::Wall), &none, 0, 10).0,
            JailExit::Limit { limit: Limit::Wall, signal: Some(libc::SIGKILL) }
        );
        assert_eq!(
            classify(libc::SIGKILL, None, &none, 9_200_000, 10).0,
            JailExit::Limit { limit: Limit::Cpu, signal: Some(libc::SIGKILL) }
        );
        assert_eq!(classify(libc::SIGKILL, None, &none, 1_000_000, 10).0, JailExit::Signal(libc::SIGKILL));
        let oom = CgroupUsage { oom_kills: 1, ..CgroupUsage::default() };
        let (exit, violations) = classify(libc::SIGKILL, None, &oom, 0, 10);
        assert_eq!(exit, JailExit::Limit { limit: Limit::Memory, signal: Some(libc::SIGKILL) });
        assert!(violations[0].starts_with("oom-kill"));
        let forks = CgroupUsage { pids_refused: 4, ..CgroupUsage::default() };
        assert_eq!(classify(exited(1), None, &forks, 0, 10).0, JailExit::Limit { limit: Limit::Pids, signal: None });
        assert_eq!(classify(exited(0), None, &forks, 0, 10).0, JailExit::Code(0));
        assert_eq!(
            classify(libc::SIGXFSZ, None, &none, 0, 10).0,
            JailExit::Limit { limit: Limit::FileSize, signal: Some(libc::SIGXFSZ) }
        );
        let (exit, violations) = classify(libc::SIGSYS, None, &none, 0, 10);
        assert_eq!(exit, JailExit::Signal(libc::SIGSYS));
        assert!(violations[0].starts_with("seccomp"));
    }

    #[test]
    fn every_thread_that_clones_a_jail_is_back_in_the_hosts_network_and_mount_namespaces() {
        let backend = JailBackend::new();
        if backend.netns_pool_unavailable().is_some() {
            // Not root: no pool, no thread ever changes namespace.
            return;
        }
        // The network and mount namespaces, root and working directory of this thread.
        let netns = || {
            ["/proc/thread-self/ns/net", "/proc/thread-self/ns/mnt", "/proc/thread-self/root", "/proc/thread-self/cwd"]
                .map(|link| std::fs::read_link(link).unwrap())
        };
        let host = netns();
        let mut grant = Grant::new("test", Program::Process { executable: "/bin/true".into(), sha256: None });
        grant.jail.best_effort.push(Layer::Seccomp);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for _ in 0..5 {
            let report = runtime.block_on(backend.run(&grant)).unwrap();
            assert_eq!(report.exit, JailExit::Code(0));
            // The caller's thread (it clones when the cgroup has no resident thread).
            assert_eq!(netns(), host);
        }
        // The resident thread of the call cgroup the calls used (cgroup v1).
        if let Ok(cgroups) = &backend.cgroups {
            let mut cgroup = cgroups.take(1 << 30, 64).unwrap();
            if let Some(seen) = cgroup.run_inside(move || (netns(), AfterJob::Continue)) {
                assert_eq!(seen, host);
                // Without its resident, the next calls (which take this cgroup again)
                // clone on this thread; one of them through a pooled namespace (owned by
                // the host's user namespace: the jail cannot get its owner).
                cgroup.run_inside(|| ((), AfterJob::Retire));
                assert!(!cgroup.has_resident());
                cgroups.give_back(cgroup);
                let mut owner = grant.clone();
                owner.program = Program::Process { executable: "/usr/bin/python3".into(), sha256: None };
                owner.args = vec![
                    "-c".into(),
                    "import fcntl, os\ntry:\n    fcntl.ioctl(os.open('/proc/self/ns/net', os.O_RDONLY), 0xb701); \
                     print('jail')\nexcept PermissionError: print('host')"
                        .into(),
                ];
                let mut pooled = false;
                for _ in 0..10 {
                    let report = runtime.block_on(backend.run(&owner)).unwrap();
                    assert_eq!(report.exit, JailExit::Code(0));
                    assert_eq!(netns(), host);
                    if report.stdout.bytes == b"host\n" {
                        pooled = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                assert!(pooled, "no call cloned on this thread got a pooled namespace");
            } else {
                cgroups.give_back(cgroup);
            }
        }
    }

    /// A busy service holds many descriptors: the child's copy of the table may have no free
    /// number below the tool's `open_files` limit. Landlock's rules, which open each path,
    /// come before the limit, so the call still runs (it was refused with EMFILE).
    #[test]
    fn a_parent_holding_every_descriptor_below_the_tools_limit_still_jails() {
        let backend = JailBackend::new();
        let mut grant = Grant::new("test", Program::Process { executable: "/bin/true".into(), sha256: None });
        grant.jail.best_effort.push(Layer::Seccomp);
        let limit = usize::try_from(grant.limits.open_files).unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        // Every free number up to the limit taken (this test's process may hold others).
        let held: Vec<OwnedFd> = (0..limit)
            .map_while(|_| null.try_clone().ok().map(OwnedFd::from))
            .take_while(|fd| fd.as_raw_fd() < limit as i32)
            .collect();
        assert!(held.len() > limit / 2, "only {} descriptors could be taken", held.len());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let report = runtime.block_on(backend.run(&grant));
        drop(held);
        let report = report.unwrap();
        assert_eq!(report.exit, JailExit::Code(0), "{}", String::from_utf8_lossy(&report.stderr.bytes));
    }

    /// `/proc/self/mountinfo` inside a jail.
    fn mountinfo(backend: &JailBackend) -> String {
        let mut grant = Grant::new("test", Program::Process { executable: "/bin/cat".into(), sha256: None });
        grant.args = vec!["/proc/self/mountinfo".into()];
        grant.jail.best_effort.push(Layer::Seccomp);
        String::from_utf8(stdout_of(backend, &grant)).unwrap()
    }

    /// The jail's mounts as `/proc/self/mountinfo` shows them inside: mount point ->
    /// (root, per-mount options, propagation tags, file system type).
    fn mounts_inside(backend: &JailBackend) -> HashMap<String, (String, String, String, String)> {
        mountinfo(backend)
            .lines()
            .map(|line| {
                let (before, after) = line.split_once(" - ").unwrap();
                let fields: Vec<&str> = before.split(' ').collect();
                let fstype = after.split(' ').next().unwrap().to_string();
                let tags = fields[6..].join(" ");
                (fields[4].to_string(), (fields[3].to_string(), fields[5].to_string(), tags, fstype))
            })
            .collect()
    }

    #[test]
    fn the_prepared_trees_give_the_mounts_and_attributes_of_the_entry_by_entry_root() {
        let backend = JailBackend::new();
        let (etc, dev) = {
            let host = backend.host.read().unwrap();
            (host.etc.is_some(), host.dev.is_some())
        };
        if !etc || !dev {
            // Not root (or an older kernel): every jail is made entry by entry.
            return;
        }
        let prepared = mounts_inside(&backend);
        // The same jail without the prepared trees.
        if let Ok(mut host) = backend.host.write() {
            host.etc = None;
            host.dev = None;
            host.probed = Instant::now();
        }
        let entry_by_entry = mounts_inside(&backend);
        assert!(backend.host.read().unwrap().etc.is_none(), "the host was probed again during the test");
        // Every mount made entry by entry is there, the same, with the prepared trees.
        for (point, mount) in &entry_by_entry {
            assert_eq!(prepared.get(point), Some(mount), "{point}");
        }
        // The trees themselves are the only other mounts, read-only, and their binds keep
        // the attributes they would get one by one.
        let options = |point: &str| prepared[point].1.split(',').map(str::to_string).collect::<Vec<_>>();
        for tree in ["/etc", "/dev"] {
            for flag in ["ro", "nosuid", "nodev", "noexec"] {
                assert!(options(tree).iter().any(|o| o == flag), "{tree}: {:?}", prepared[tree]);
            }
        }
        let extra: Vec<&String> = prepared.keys().filter(|point| !entry_by_entry.contains_key(*point)).collect();
        assert_eq!(extra.len(), 2, "{extra:?}");
        let null = options("/dev/null");
        assert!(null.iter().any(|o| o == "nosuid") && null.iter().any(|o| o == "noexec"), "{null:?}");
        assert!(!null.iter().any(|o| o == "nodev"), "{null:?}");
        if prepared.contains_key("/etc/alternatives") {
            let alternatives = options("/etc/alternatives");
            for flag in ["ro", "nosuid", "nodev"] {
                assert!(alternatives.iter().any(|o| o == flag), "{alternatives:?}");
            }
        }
        // No mount of the jail propagates to or from the host.
        for (point, (_, _, tags, _)) in &prepared {
            assert!(!tags.contains("shared:") && !tags.contains("master:"), "{point}: {tags}");
        }
    }

    /// A backend whose pool holds `count` waiting jails (started by one call), and their
    /// pids.
    fn with_ready_jails(count: usize) -> (JailBackend, Vec<i32>) {
        let mut backend = JailBackend::new();
        backend.set_ready_jails(count);
        let mut grant = Grant::new("test", Program::Process { executable: "/bin/true".into(), sha256: None });
        grant.jail.best_effort.push(Layer::Seccomp);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert_eq!(runtime.block_on(backend.run(&grant)).unwrap().exit, JailExit::Code(0));
        let pool = backend.started().ready.as_ref().expect("the pool started");
        let pids = pool.wait_for(count).expect("the pool filled");
        (backend, pids)
    }

    #[test]
    fn a_jail_from_the_pool_and_a_jail_cloned_for_the_call_are_the_same_jail() {
        let (pooled, _) = with_ready_jails(1);
        let mut fresh = JailBackend::new();
        fresh.set_ready_jails(0);
        let (from_pool, cloned) = (mounts_inside(&pooled), mounts_inside(&fresh));
        assert!(fresh.started().ready.is_none());
        // Mount ids and the staging directory's name differ; what is mounted where does not.
        let shape = |mounts: HashMap<String, (String, String, String, String)>| {
            let mut shape: Vec<_> =
                mounts.into_iter().map(|(point, (root, options, _, fstype))| (point, root, options, fstype)).collect();
            shape.sort();
            shape
        };
        assert_eq!(shape(from_pool), shape(cloned));
    }

    /// Runs `grant` (on a runtime of its own); the call must exit 0. Its stdout.
    fn stdout_of(backend: &JailBackend, grant: &Grant) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let report = runtime.block_on(backend.run(grant)).unwrap();
        assert_eq!(report.exit, JailExit::Code(0), "{}", String::from_utf8_lossy(&report.stderr.bytes));
        report.stdout.bytes
    }

    /// The jail's mount table as listed, each mount as (mount point, root, options, file
    /// system, super options).
    fn mount_list(backend: &JailBackend) -> Vec<(String, String, String, String, String)> {
        mountinfo(backend)
            .lines()
            .map(|line| {
                let (before, after) = line.split_once(" - ").unwrap();
                let fields: Vec<&str> = before.split(' ').collect();
                let after: Vec<&str> = after.split(' ').collect();
                let (point, root, options) = (fields[4], fields[3], fields[5]);
                (point.into(), root.into(), options.into(), after[0].into(), after[2].into())
            })
            .collect()
    }

    /// A jail cloned in the template (its mount namespace a copy of the template's) and one
    /// cloned in airlock's (that stages the prepared root and pivots into it) see the same
    /// mounts, but for the template's procfs, covered by the jail's own /proc: process
    /// directories only (`subset=pid`).
    #[test]
    fn a_jail_cloned_in_the_template_sees_what_a_jail_staging_the_prepared_root_sees() {
        let mut templated = JailBackend::new();
        templated.set_ready_jails(0);
        if templated.host.read().unwrap().template.is_none() {
            // Not root (or an older kernel): no template.
            return;
        }
        let mut staged = JailBackend::new();
        staged.set_ready_jails(0);
        if let Ok(mut host) = staged.host.write() {
            host.template = None;
            host.probed = Instant::now();
        }
        let (in_template, on_staging) = (mount_list(&templated), mount_list(&staged));
        assert!(staged.host.read().unwrap().template.is_none(), "the host was probed again during the test");
        let procs = |list: &[(String, String, String, String, String)]| {
            list.iter().filter(|m| m.0 == "/proc").map(|m| (m.0.clone(), m.4.clone())).collect::<Vec<_>>()
        };
        assert_eq!(procs(&on_staging), [("/proc".to_string(), "rw,hidepid=invisible".to_string())]);
        assert_eq!(
            procs(&in_template),
            [
                ("/proc".to_string(), "rw,hidepid=invisible,subset=pid".to_string()),
                ("/proc".to_string(), "rw,hidepid=invisible".to_string())
            ]
        );
        let without_template_proc: Vec<_> = in_template.iter().filter(|m| !m.4.contains("subset=pid")).collect();
        let on_staging: Vec<_> = on_staging.iter().collect();
        // The same mounts, in the same order; the template's root (a copy of the prepared
        // one) is the jail's, read-only.
        assert_eq!(without_template_proc, on_staging);
        assert_eq!(in_template[0].0, "/");
        assert!(in_template[0].2.split(',').any(|o| o == "ro"), "{:?}", in_template[0]);
    }

    /// A grant that needs a mount point outside the shared root (here /srv) gets a root
    /// of the jail's own, made by a jail cloned in airlock's mount namespace: the jail the
    /// call started in the template (cloned, or ready) is dropped for it.
    #[test]
    fn a_grant_that_needs_a_root_of_its_own_runs_in_a_jail_cloned_outside_the_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let mut grant = Grant::new("test", Program::Process { executable: "/bin/ls".into(), sha256: None });
        grant.args = vec!["/srv/granted".into()];
        grant.mounts = vec![Mount { host: dir.path().to_path_buf(), guest: "/srv/granted".into(), writable: false }];
        grant.jail.best_effort.push(Layer::Seccomp);
        for ready in [0, 1] {
            let mut backend = JailBackend::new();
            backend.set_ready_jails(ready);
            let host = backend.host();
            let own = plan::root_plan(&host.layout, &grant, host.prepared()).unwrap();
            assert!(matches!(own.base, Base::Own { .. }), "{:?}", own.base);
            for _ in 0..3 {
                assert_eq!(stdout_of(&backend, &grant), b"file\n");
            }
        }
    }

    /// A jail cloned ahead in a template is used only while that template is the host's:
    /// once the host's mounts changed (a new template), it is dropped and the call clones
    /// one in the new template.
    #[test]
    fn a_ready_jail_cloned_in_an_older_template_is_not_used() {
        let (backend, _) = with_ready_jails(2);
        let Some(template) = backend.host.read().unwrap().template.clone() else {
            // Not root: no template.
            return;
        };
        // A call has the cgroups layer whenever the host has cgroups.
        let cgroups = backend.cgroups.is_ok();
        let pool = backend.started().ready.as_ref().unwrap();
        // The twin: with the template it was cloned in, the ready jail is taken.
        match backend.start_jail(cgroups, Some(&template)).unwrap() {
            Starting::Ready(ready) => assert!(ready.template().is_some_and(|t| Arc::ptr_eq(t, &template))),
            Starting::Cloning(_) => panic!("the ready jail was not taken"),
        }
        // The other one waits, cloned in the same template.
        assert_eq!(pool.wait_for(1).unwrap().len(), 1);
        let root = backend.host.read().unwrap().root.clone().unwrap();
        let newer = Arc::new(Template::build(&root, &backend.host.read().unwrap().layout.staging[0]).unwrap());
        match backend.start_jail(cgroups, Some(&newer)).unwrap() {
            Starting::Ready(_) => panic!("a jail cloned in an older template was taken"),
            Starting::Cloning(pending) => assert!(pending.in_template() == backend.cgroups.is_ok()),
        }
    }

    /// A waiting jail closed every descriptor of airlock's it was cloned with: a pipe whose
    /// only other write end was open when the jails were cloned reads end-of-file once
    /// airlock closes its end (a jail still holding it would keep it open). Other tests
    /// clone and spawn in this process too, and each copy of the table holds the pipe for
    /// the moment before it closes or execs: end-of-file may take that long.
    #[test]
    fn a_waiting_jail_keeps_no_descriptor_of_airlocks_open() {
        let (read, write) = pipe().unwrap();
        let (backend, _) = with_ready_jails(2);
        let read = set_nonblocking(read).unwrap();
        let eof_within = |read: &OwnedFd, wait: Duration| {
            let started = Instant::now();
            loop {
                let mut byte = [0u8; 1];
                // SAFETY: reads into a local buffer from our own descriptor.
                if unsafe { libc::read(read.as_raw_fd(), byte.as_mut_ptr().cast(), 1) } == 0 {
                    return true;
                }
                if started.elapsed() >= wait {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        // The twin: while another write end is open, there is no end-of-file.
        let held = write.try_clone().unwrap();
        drop(write);
        assert!(!eof_within(&read, Duration::from_millis(200)), "end-of-file while a write end is still open");
        drop(held);
        assert!(eof_within(&read, Duration::from_secs(5)), "a waiting jail holds airlock's pipe open");
        drop(backend);
    }

    /// Mounts made on the host after a jail was cloned are in its view: its mount namespace
    /// is copied when it gets its call.
    #[test]
    fn a_jail_from_the_pool_sees_a_mount_made_after_it_was_cloned() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let shown = dir.path().join("shown");
        std::fs::create_dir(&shown).unwrap();
        std::fs::write(shown.join("file"), "under the mount\n").unwrap();
        let (backend, _) = with_ready_jails(1);
        let mut grant = Grant::new("test", Program::Process { executable: "/bin/ls".into(), sha256: None });
        grant.args = vec![shown.display().to_string()];
        grant.mounts = vec![Mount { host: shown.clone(), guest: shown.display().to_string(), writable: false }];
        grant.jail.best_effort.push(Layer::Seccomp);
        let list = |backend: &JailBackend| String::from_utf8(stdout_of(backend, &grant)).unwrap();
        // The twin: before the mount, the jail lists the directory's own file.
        assert_eq!(list(&backend), "file\n");
        let pool = backend.started().ready.as_ref().unwrap();
        pool.wait_for(1).unwrap();
        let target = CString::new(shown.as_os_str().as_bytes()).unwrap();
        // SAFETY: mounts an empty tmpfs on our own temporary directory.
        let mounted =
            unsafe { libc::mount(c"tmpfs".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) };
        assert_eq!(mounted, 0, "{}", io::Error::last_os_error());
        let after = list(&backend);
        // SAFETY: unmounts what was mounted above.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        assert_eq!(after, "", "the jail saw the directory as it was when the jail was cloned");
    }

    /// A waiting jail that died (killed, say) is never handed a call: the call clones one.
    #[test]
    fn a_call_whose_waiting_jail_died_runs_in_a_jail_cloned_for_it() {
        let (backend, pids) = with_ready_jails(2);
        for pid in pids {
            // SAFETY: kills our own waiting child, then waits until it has died (without
            // reaping it: the pool does); the siginfo is a local.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT);
            }
        }
        let mut grant = Grant::new("test", Program::Process { executable: "/bin/echo".into(), sha256: None });
        grant.args = vec!["ran".into()];
        grant.jail.best_effort.push(Layer::Seccomp);
        for _ in 0..3 {
            assert_eq!(stdout_of(&backend, &grant), b"ran\n");
        }
    }

    #[test]
    fn capture_keeps_up_to_the_cap_and_counts_everything() {
        let mut capture = Capture::new(5);
        assert!(!capture.push(b"abc"));
        assert!(capture.push(b"defg"));
        assert_eq!(capture.output.bytes, b"abcde");
        assert_eq!(capture.output.total_bytes, 7);
        assert!(capture.output.truncated);
    }
}
