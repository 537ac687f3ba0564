//! Pure plans for one jailed call: the mount plan of the minimal root, the rlimits, and
//! the Landlock rules, computed from a [`Grant`] and the [`HostLayout`] before anything is
//! spawned.
//!
//! Owns: which host paths the jail sees where and how (read-only, read-write, a copy, a
//! symlink), in which order they are mounted, where the new root is staged, and which
//! resource limits and Landlock accesses follow from the grant.
//! Must not: touch the file system or the process (except [`HostLayout::probe`], which
//! only reads the host's layout once). The child applies these plans step by step
//! (`spawn`); every path here is already a `CString` so that it does not allocate.

use std::{
    ffi::{CStr, CString, OsStr},
    os::unix::ffi::OsStrExt,
    path::{Component, Path, PathBuf},
    sync::Arc,
};

use crate::policy::{Grant, Limits, Mount};

/// Where the tool's workspace is, inside the jail; also its working directory.
pub const WORKSPACE: &str = "/workspace";

/// The host's system directories bound read-only (or recreated as the symlinks they are on
/// a merged-/usr system). Nothing else of the host's root is visible.
const SYSTEM_PATHS: [&str; 7] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// The /etc entries a tool may need to run (dynamic linking, names of users and groups,
/// time zone, alternatives, an interpreter's site configuration). Everything else in /etc
/// stays out of the jail: in particular shadow, gshadow, sudoers, ssh host keys, TLS
/// private keys and any service's credentials.
const ETC_ALLOWLIST: [&str; 21] = [
    "alternatives",
    "debian_version",
    "gai.conf",
    "gitconfig",
    "group",
    "host.conf",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "protocols",
    "python3",
    "services",
    "timezone",
    "python3.11",
];

/// Caps the size of an /etc file copied into the jail's root: larger files are bound
/// instead, so that a huge file cannot bloat every call's set-up.
const MAX_ETC_COPY_BYTES: u64 = 1 << 20;

/// The device nodes of the jail's /dev, bound from the host's. No tty, no disk, no
/// /dev/mem: what a tool needs to read randomness and discard output.
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// The parts of the jail's /proc that act on the whole host, not on the jail's processes,
/// made read-only. Their permission checks are file modes for uid 0, not capabilities: a
/// jail run by root (its uid 0 is the host's) could otherwise set kernel sysctls (e.g.
/// `kernel.core_pattern`: code execution as host root on the next crash) or write
/// /proc/sysrq-trigger (reboot the host). Docker's `readonlyPaths`.
const PROC_READ_ONLY: [&str; 9] =
    ["sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi", "asound", "latency_stats"];

/// Directories the new root may be staged on before `pivot_root`: one that is neither a
/// bind source nor under one nor above one, so that staging hides nothing the jail binds.
const STAGING_CANDIDATES: [&str; 10] =
    ["/mnt", "/media", "/srv", "/opt", "/boot", "/run", "/home", "/var", "/tmp", "/root"];

/// The options of the jail's fresh procfs: a process is visible only to who may ptrace it.
pub const PROC_OPTIONS: &CStr = c"hidepid=invisible";

/// The most binds a plan on the prepared root makes: each travels to the child as a
/// descriptor ([`MountOp::Attach`]). A grant with more gets a root of its own.
pub const MAX_DETACHED: usize = 32;

/// The root tmpfs's size: it holds only mount points, symlinks and the copied /etc files.
const ROOT_TMPFS_OPTIONS: &str = "size=8m,nr_inodes=4096,mode=0755";

/// Mount attributes (`MOUNT_ATTR_*` of `mount_setattr(2)`).
pub mod attr {
    /// Read-only.
    pub const RDONLY: u64 = 0x1;
    /// setuid/setgid bits and file capabilities ignored.
    pub const NOSUID: u64 = 0x2;
    /// Device nodes unusable.
    pub const NODEV: u64 = 0x4;
    /// No execution.
    pub const NOEXEC: u64 = 0x8;
}

/// What the host looks like, read once (and refreshed when /etc changes).
#[derive(Debug, Clone, Default)]
pub struct HostLayout {
    /// System paths that exist: a directory (bound) or a symlink (recreated).
    pub system: Vec<(String, HostEntry)>,
    /// Allow-listed /etc entries that exist.
    pub etc: Vec<(String, HostEntry)>,
    /// Device nodes that exist.
    pub devices: Vec<String>,
    /// Staging candidates that exist as real directories.
    pub staging: Vec<String>,
}

/// One host path, as the jail reproduces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    /// A directory: bound read-only.
    Dir,
    /// A small regular file: copied.
    File(Arc<[u8]>),
    /// A large regular file: bound read-only.
    LargeFile,
    /// A symlink: recreated with the same target.
    Symlink(PathBuf),
}

impl HostLayout {
    /// Reads the host's layout: which system paths, /etc entries, devices and staging
    /// directories exist, and the contents of the small /etc files.
    pub fn probe() -> HostLayout {
        let entry = |path: &Path| -> Option<HostEntry> {
            let meta = std::fs::symlink_metadata(path).ok()?;
            if meta.file_type().is_symlink() {
                return std::fs::read_link(path).ok().map(HostEntry::Symlink);
            }
            if meta.is_dir() {
                return Some(HostEntry::Dir);
            }
            if meta.is_file() {
                if meta.len() > MAX_ETC_COPY_BYTES {
                    return Some(HostEntry::LargeFile);
                }
                return std::fs::read(path).ok().map(|bytes| HostEntry::File(bytes.into()));
            }
            None
        };
        let system = SYSTEM_PATHS
            .iter()
            .filter_map(|p| match entry(Path::new(p))? {
                HostEntry::File(_) | HostEntry::LargeFile => None,
                found => Some((p.to_string(), found)),
            })
            .collect();
        let etc = ETC_ALLOWLIST
            .iter()
            .filter_map(|name| entry(&Path::new("/etc").join(name)).map(|e| (name.to_string(), e)))
            .collect();
        let devices = DEVICES
            .iter()
            .filter(|d| std::fs::metadata(Path::new("/dev").join(d)).is_ok())
            .map(|d| d.to_string())
            .collect();
        let staging = STAGING_CANDIDATES
            .iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
            .map(|p| p.to_string())
            .collect();
        HostLayout { system, etc, devices, staging }
    }
}

/// One step of building the minimal root, applied by the child in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// A tmpfs at `target` with `options` (`nosuid,nodev` always).
    Tmpfs { target: CString, options: CString },
    /// A directory (mode 0755) in the new root.
    Dir { path: CString },
    /// An empty file: the mount point of a file bind.
    EmptyFile { path: CString },
    /// A copy of a small host file (0644).
    FileCopy { path: CString, contents: Arc<[u8]> },
    /// A symlink.
    Symlink { target: CString, path: CString },
    /// Bind host `source` at `target` (recursively), then add `attrs` to every mount of it.
    Bind { source: CString, target: CString, attrs: u64 },
    /// Attach at `target` the detached copy of host `source` the parent made for the call
    /// (recursive, `attrs` on every mount of it, private propagation): the call's
    /// descriptor number `index` of its detached binds ([`RootPlan::detached`]).
    Attach { index: usize, source: CString, target: CString, attrs: u64 },
    /// Bind a path already in the new root onto itself, adding `attrs`: a protected path
    /// (read-only) or an anchor (a mount point that cannot be renamed or removed).
    Rebind { target: CString, attrs: u64 },
    /// A fresh procfs of the jail's pid namespace at `target`.
    Proc { target: CString, options: CString },
    /// Bind a path of the jail's fresh /proc onto itself read-only, if the kernel has it.
    ProcReadOnly { target: CString },
    /// Clone a prepared tree (the parent's detached tmpfs and the binds on it, see
    /// `prepared`) at `target`, its top [`PREPARED_ATTRS`]. It holds what the copies,
    /// symlinks, mount points and binds of the tree would.
    Prepared { tree: Tree, target: CString },
}

/// The trees of the root that can be prepared once for every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// `/etc`: [`etc_tree`].
    Etc,
    /// `/dev`: [`dev_tree`].
    Dev,
    /// The root itself: [`root_tree`], with the prepared /etc and /dev on it.
    Root,
}

/// Which trees the child gets prepared (the others it makes entry by entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    pub etc: bool,
    pub dev: bool,
    /// The prepared root (it holds the prepared /etc and /dev).
    pub root: bool,
}

/// The symlinks of the jail's /dev.
const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("shm", "/tmp"),
];

/// The attributes of an /etc directory or large file bound into the jail: read-only, no
/// setuid, no devices (exec stays: an alternative may point at a program).
const ETC_BIND_ATTRS: u64 = attr::RDONLY | attr::NOSUID | attr::NODEV;

/// The attributes of a device node bound into the jail: usable (not `nodev`), but never
/// executed and without setuid.
const DEVICE_ATTRS: u64 = attr::NOSUID | attr::NOEXEC;

/// The attributes of the top of a prepared tree as the jail sees it (its binds keep their
/// own, [`ETC_BIND_ATTRS`] and [`DEVICE_ATTRS`]).
pub const PREPARED_ATTRS: u64 = attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC;

/// The attributes of a bound system directory, and of the sealed root.
pub const SYSTEM_ATTRS: u64 = attr::RDONLY | attr::NOSUID | attr::NODEV;

/// A tree that can be prepared once for every call: its entries (files copied, symlinks,
/// mount points), and the host paths bound onto some of those mount points, with the
/// attributes the jail would give them when it binds them itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSpec {
    pub entries: Vec<(String, HostEntry)>,
    pub binds: Vec<TreeBind>,
}

/// A host path bound at `name` in a prepared tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeBind {
    pub name: String,
    pub source: PathBuf,
    pub attrs: u64,
}

/// The jail's /etc: [`HostLayout::etc`], with the directories and large files bound
/// read-only onto their mount points.
pub fn etc_tree(layout: &HostLayout) -> TreeSpec {
    let binds = layout
        .etc
        .iter()
        .filter(|(_, entry)| matches!(entry, HostEntry::Dir | HostEntry::LargeFile))
        .map(|(name, _)| TreeBind { name: name.clone(), source: Path::new("/etc").join(name), attrs: ETC_BIND_ATTRS })
        .collect();
    TreeSpec { entries: layout.etc.clone(), binds }
}

/// The jail's /dev: an empty file as the mount point of each device with the host's
/// device bound onto it, and the symlinks.
pub fn dev_tree(devices: &[String]) -> TreeSpec {
    let mount_points = devices.iter().map(|device| (device.clone(), HostEntry::LargeFile));
    let links = DEV_LINKS.iter().map(|(name, target)| (name.to_string(), HostEntry::Symlink(PathBuf::from(target))));
    let binds = devices
        .iter()
        .map(|device| TreeBind { name: device.clone(), source: Path::new("/dev").join(device), attrs: DEVICE_ATTRS })
        .collect();
    TreeSpec { entries: mount_points.chain(links).collect(), binds }
}

/// The mount points every jail's root has besides the system directories: its /etc and
/// /dev (prepared trees), its private /tmp, the workspace and its /proc.
const ROOT_MOUNT_POINTS: [&str; 5] = ["/etc", "/dev", "/tmp", WORKSPACE, "/proc"];

/// The jail's root as far as it is the same for every call: the system directories bound
/// read-only (as [`root_plan`] binds them), their symlinks, and empty directories as the
/// mount points of [`ROOT_MOUNT_POINTS`]. The prepared /etc and /dev go on it.
pub fn root_tree(layout: &HostLayout) -> TreeSpec {
    let mut entries = Vec::new();
    let mut binds = Vec::new();
    for (path, entry) in &layout.system {
        let name = path.trim_start_matches('/').to_string();
        match entry {
            HostEntry::Dir => {
                entries.push((name.clone(), HostEntry::Dir));
                binds.push(TreeBind { name, source: PathBuf::from(path), attrs: SYSTEM_ATTRS });
            }
            HostEntry::Symlink(target) => entries.push((name, HostEntry::Symlink(target.clone()))),
            HostEntry::File(_) | HostEntry::LargeFile => {}
        }
    }
    for point in ROOT_MOUNT_POINTS {
        entries.push((point.trim_start_matches('/').to_string(), HostEntry::Dir));
    }
    TreeSpec { entries, binds }
}

impl MountOp {
    /// What the step does, for a denial that names it.
    pub fn describe(&self) -> String {
        let text = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            MountOp::Tmpfs { target, .. } => format!("mount a tmpfs at {}", text(target)),
            MountOp::Dir { path } => format!("create the directory {}", text(path)),
            MountOp::EmptyFile { path } => format!("create the mount point {}", text(path)),
            MountOp::FileCopy { path, .. } => format!("copy the host file into {}", text(path)),
            MountOp::Symlink { target, path } => format!("create the symlink {} -> {}", text(path), text(target)),
            MountOp::Bind { source, target, attrs } | MountOp::Attach { source, target, attrs, .. } => {
                let mode = if attrs & attr::RDONLY != 0 { "read-only" } else { "read-write" };
                format!("bind {} at {} ({mode})", text(source), text(target))
            }
            MountOp::Rebind { target, attrs } => {
                let mode = if attrs & attr::RDONLY != 0 { "read-only (protected)" } else { "in place (anchor)" };
                format!("re-bind {} {mode}", text(target))
            }
            MountOp::Proc { target, .. } => format!("mount a fresh /proc at {}", text(target)),
            MountOp::ProcReadOnly { target } => format!("make {} read-only", text(target)),
            MountOp::Prepared { tree, target } => format!("mount the prepared {tree:?} tree at {}", text(target)),
        }
    }
}

/// How a path the jail sees may be used, for Landlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read files, list directories, execute.
    ReadExec,
    /// Everything on files and directories except creating device nodes.
    ReadWrite,
    /// A device node: read, write, ioctl.
    Device,
}

/// What the plan's steps start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// A tmpfs of the jail's own at host directory `staging` (hidden by it), built by the
    /// steps (which bind host paths by path, with `staging` before each guest path), then
    /// `pivot_root` into it. The steps mount /proc.
    Own { staging: CString },
    /// The prepared root, with a fresh /proc: a jail cloned in the template's mount
    /// namespace (`template`) is on it already; any other clones it onto host directory
    /// `staging`, mounts /proc at `proc` (`staging`'s) and `pivot_root`s into it first.
    /// The steps then use guest paths, and attach the grant's binds from detached trees.
    Shared { staging: CString, proc: CString },
}

/// The minimal root of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPlan {
    /// What the steps start from.
    pub base: Base,
    /// The steps, in order.
    pub ops: Vec<MountOp>,
    /// The tool's working directory inside the jail.
    pub cwd: CString,
    /// Host paths the jail sees, with their access, for Landlock rules made by the parent.
    pub landlock: Vec<(PathBuf, Access)>,
}

impl RootPlan {
    /// The host paths the parent opens as detached trees for [`MountOp::Attach`], in the
    /// order of their index, with their attributes.
    pub fn detached(&self) -> impl Iterator<Item = (&CString, u64)> {
        self.ops.iter().filter_map(|op| match op {
            MountOp::Attach { source, attrs, .. } => Some((source, *attrs)),
            _ => None,
        })
    }
}

/// Why a grant cannot become a root plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the path {0:?} contains a NUL byte")]
    Nul(String),
    #[error(
        "no directory to stage the jail's root on: each of {candidates} is missing or holds a \
         granted path; grant paths outside one of them"
    )]
    NoStaging { candidates: String },
    #[error("the jail cannot mount {guest}: {reason}")]
    Target { guest: String, reason: String },
}

fn cstring(text: impl AsRef<OsStr>) -> Result<CString, PlanError> {
    let bytes = text.as_ref().as_bytes();
    CString::new(bytes).map_err(|_| PlanError::Nul(String::from_utf8_lossy(bytes).into_owned()))
}

/// Where `mount` appears inside the jail: `.` and relative guests under [`WORKSPACE`]
/// (by their canonical path relative to the workspace when they lie in it, so that no
/// symlink is followed when the child mounts them), absolute guests at themselves.
pub fn guest_target(mount: &Mount, workspace: Option<&Path>) -> Result<PathBuf, PlanError> {
    let guest = Path::new(&mount.guest);
    if guest.is_absolute() {
        if guest.components().any(|c| c == Component::ParentDir) {
            return Err(PlanError::Target { guest: mount.guest.clone(), reason: "it contains `..`".into() });
        }
        for reserved in ["/proc", "/dev", WORKSPACE] {
            if guest.starts_with(reserved) {
                return Err(PlanError::Target {
                    guest: mount.guest.clone(),
                    reason: format!("{reserved} is the jail's own"),
                });
            }
        }
        if guest == Path::new("/") {
            return Err(PlanError::Target { guest: mount.guest.clone(), reason: "it is the root".into() });
        }
        return Ok(guest.to_path_buf());
    }
    let relative = match workspace.and_then(|ws| mount.host.strip_prefix(ws).ok()) {
        Some(relative) => relative.to_path_buf(),
        None if mount.guest == "." => PathBuf::new(),
        None => PathBuf::from(&mount.guest),
    };
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(PlanError::Target { guest: mount.guest.clone(), reason: "it is not a plain relative path".into() });
    }
    Ok(Path::new(WORKSPACE).join(relative))
}

/// True when `a` is `b` or lies under it, or the other way round (component-wise).
fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Chooses the staging directory: the first existing candidate that no bind source
/// overlaps.
pub fn choose_staging<'a>(candidates: &'a [String], sources: &[&Path]) -> Option<&'a str> {
    candidates
        .iter()
        .map(String::as_str)
        .find(|candidate| !sources.iter().any(|source| overlaps(Path::new(candidate), source)))
}

/// Builds the minimal root for `grant` on this host: see the module header. The order of
/// the steps is the order of the mounts: the staging tmpfs first; system directories,
/// /etc and /dev; the private /tmp; the grant's mounts, parents before children; the
/// protected paths last (so that a read-write workspace cannot cover them); /proc.
///
/// `prepared`: the trees the child gets prepared (one recursive clone of a tmpfs that
/// already holds the entries and binds of [`etc_tree`] or [`dev_tree`]) instead of making
/// their entries and binds one by one. With the prepared root ([`root_tree`]), everything
/// up to /tmp is the base ([`Base::Shared`]: the template's copy, or one clone), when the
/// grant needs no mount point of its own in the root (an absolute guest path outside
/// /tmp, say: the shared root cannot be written) and has at most [`MAX_DETACHED`] binds.
pub fn root_plan(layout: &HostLayout, grant: &Grant, prepared: Prepared) -> Result<RootPlan, PlanError> {
    if prepared.root && prepared.etc && prepared.dev {
        match plan(layout, grant, prepared, true) {
            Err(Fallback::OwnRoot) => {}
            Err(Fallback::Plan(error)) => return Err(error),
            Ok(plan) => return Ok(plan),
        }
    }
    plan(layout, grant, Prepared { root: false, ..prepared }, false).map_err(|fallback| match fallback {
        Fallback::Plan(error) => error,
        Fallback::OwnRoot => PlanError::Target { guest: "/".into(), reason: "no root of its own".into() },
    })
}

/// Why a plan on the shared root was not made.
enum Fallback {
    /// The grant needs a mount point the shared root lacks: the jail makes its own root.
    OwnRoot,
    Plan(PlanError),
}

impl From<PlanError> for Fallback {
    fn from(error: PlanError) -> Fallback {
        Fallback::Plan(error)
    }
}

/// [`root_plan`] on the prepared root (`shared`: every entry of [`root_tree`] is there,
/// /etc and /dev too, and nothing may be created outside the call's own /tmp) or on a
/// tmpfs of the jail's own.
fn plan(layout: &HostLayout, grant: &Grant, prepared: Prepared, shared: bool) -> Result<RootPlan, Fallback> {
    let workspace = grant.workspace.as_deref();
    // The grant's binds, by target depth so that a parent never covers a child.
    let mut binds: Vec<(PathBuf, &Mount)> = Vec::new();
    for mount in &grant.mounts {
        binds.push((guest_target(mount, workspace)?, mount));
    }
    binds.sort_by_key(|(target, _)| target.components().count());
    let mut protected: Vec<(PathBuf, &Mount)> = Vec::new();
    for mount in &grant.protected {
        protected.push((guest_target(mount, workspace)?, mount));
    }
    protected.sort_by_key(|(target, _)| target.components().count());

    // The template is shared and read-only: a grant that mounts something under /etc needs
    // its mount point made in this jail's own /etc.
    let etc_template = prepared.etc && !binds.iter().any(|(target, _)| target.starts_with("/etc"));
    if shared && !etc_template {
        return Err(Fallback::OwnRoot);
    }

    // Every host path bound by path: the staging directory must not overlap any. (On the
    // shared root, nothing is bound by path once the root is staged.)
    let mut sources: Vec<&Path> = Vec::new();
    let etc_paths: Vec<PathBuf> = layout.etc.iter().map(|(name, _)| Path::new("/etc").join(name)).collect();
    let dev_paths: Vec<PathBuf> = layout.devices.iter().map(|d| Path::new("/dev").join(d)).collect();
    if !shared {
        for (path, entry) in &layout.system {
            if *entry == HostEntry::Dir {
                sources.push(Path::new(path));
            }
        }
        sources.extend(etc_paths.iter().map(PathBuf::as_path));
        sources.extend(dev_paths.iter().map(PathBuf::as_path));
        sources.extend(binds.iter().map(|(_, m)| m.host.as_path()));
    }
    let staging = choose_staging(&layout.staging, &sources)
        .ok_or_else(|| PlanError::NoStaging { candidates: STAGING_CANDIDATES.join(", ") })?;
    let staging_path = Path::new(staging);
    // Where a guest path is when the steps run: on the shared root, the jail is in it.
    let at = |guest: &Path| -> Result<CString, PlanError> {
        match shared {
            true => cstring(guest.components().collect::<PathBuf>()),
            false => cstring(staging_path.join(guest.strip_prefix("/").unwrap_or(guest))),
        }
    };

    let mut ops = match shared {
        true => vec![],
        false => vec![MountOp::Tmpfs { target: cstring(staging)?, options: cstring(ROOT_TMPFS_OPTIONS)? }],
    };
    let mut detached = 0;
    let mut landlock = Vec::new();
    // Directories created so far in the root (all of the shared root's), and targets under
    // a bind (which exist in the bound tree, or the bind fails and says so).
    let mut made: Vec<PathBuf> = vec![PathBuf::from("/")];
    if shared {
        let spec = root_tree(layout);
        made.extend(
            spec.entries
                .iter()
                .filter(|(_, entry)| *entry == HostEntry::Dir)
                .map(|(name, _)| Path::new("/").join(name)),
        );
    }
    let mut bound: Vec<PathBuf> = Vec::new();
    // The shared root is read-only for every jail: only the call's own /tmp takes new
    // entries.
    let may_create = |path: &Path| !shared || path.starts_with("/tmp");
    let make_dirs =
        |ops: &mut Vec<MountOp>, made: &mut Vec<PathBuf>, bound: &[PathBuf], dir: &Path| -> Result<(), Fallback> {
            let mut partial = PathBuf::from("/");
            for component in dir.components().skip(1) {
                partial.push(component);
                if bound.iter().any(|b| partial.starts_with(b)) {
                    return Ok(());
                }
                if !made.contains(&partial) {
                    if !may_create(&partial) {
                        return Err(Fallback::OwnRoot);
                    }
                    ops.push(MountOp::Dir { path: at(&partial)? });
                    made.push(partial.clone());
                }
            }
            Ok(())
        };

    // System directories: read-only binds, or the symlinks they are.
    for (path, entry) in &layout.system {
        let guest = Path::new(path);
        match entry {
            HostEntry::Dir => {
                if !shared {
                    make_dirs(&mut ops, &mut made, &bound, guest)?;
                    ops.push(MountOp::Bind { source: cstring(path)?, target: at(guest)?, attrs: SYSTEM_ATTRS });
                }
                bound.push(guest.to_path_buf());
                landlock.push((guest.to_path_buf(), Access::ReadExec));
            }
            HostEntry::Symlink(target) if !shared => {
                ops.push(MountOp::Symlink { target: cstring(target)?, path: at(guest)? })
            }
            HostEntry::Symlink(_) | HostEntry::File(_) | HostEntry::LargeFile => {}
        }
    }

    // /etc: small files copied, symlinks recreated, directories and large files bound; the
    // prepared tree holds all of it (the binds too: see [`etc_tree`]).
    make_dirs(&mut ops, &mut made, &bound, Path::new("/etc"))?;
    if etc_template && !shared {
        ops.push(MountOp::Prepared { tree: Tree::Etc, target: at(Path::new("/etc"))? });
    }
    for ((name, entry), host) in layout.etc.iter().zip(&etc_paths) {
        let guest = Path::new("/etc").join(name);
        match entry {
            _ if etc_template => {
                if matches!(entry, HostEntry::Dir | HostEntry::LargeFile) {
                    bound.push(guest);
                }
            }
            HostEntry::File(contents) => ops.push(MountOp::FileCopy { path: at(&guest)?, contents: contents.clone() }),
            HostEntry::Symlink(target) => ops.push(MountOp::Symlink { target: cstring(target)?, path: at(&guest)? }),
            HostEntry::Dir | HostEntry::LargeFile => {
                if *entry == HostEntry::Dir {
                    make_dirs(&mut ops, &mut made, &bound, &guest)?;
                } else {
                    ops.push(MountOp::EmptyFile { path: at(&guest)? });
                }
                ops.push(MountOp::Bind { source: cstring(host)?, target: at(&guest)?, attrs: ETC_BIND_ATTRS });
                bound.push(guest);
            }
        }
    }

    // /dev: the device nodes, and the usual symlinks (the prepared tree holds them all:
    // see [`dev_tree`]).
    make_dirs(&mut ops, &mut made, &bound, Path::new("/dev"))?;
    if prepared.dev && !shared {
        ops.push(MountOp::Prepared { tree: Tree::Dev, target: at(Path::new("/dev"))? });
    }
    for (device, host) in layout.devices.iter().zip(&dev_paths) {
        let guest = Path::new("/dev").join(device);
        if !prepared.dev {
            ops.push(MountOp::EmptyFile { path: at(&guest)? });
            ops.push(MountOp::Bind { source: cstring(host)?, target: at(&guest)?, attrs: DEVICE_ATTRS });
        }
        landlock.push((host.clone(), Access::Device));
    }
    if !prepared.dev {
        for (name, target) in DEV_LINKS {
            ops.push(MountOp::Symlink { target: cstring(target)?, path: at(&Path::new("/dev").join(name))? });
        }
    }

    // A private /tmp, size-capped (its pages are host memory).
    make_dirs(&mut ops, &mut made, &bound, Path::new("/tmp"))?;
    let tmp_options = format!("size={}m,nr_inodes=65536,mode=1777", grant.limits.tmp_mib);
    ops.push(MountOp::Tmpfs { target: at(Path::new("/tmp"))?, options: cstring(tmp_options)? });

    // The workspace (always there, even when nothing of it is granted) and the grant's
    // mounts, parents first.
    make_dirs(&mut ops, &mut made, &bound, Path::new(WORKSPACE))?;
    for (target, mount) in &binds {
        let is_dir = std::fs::metadata(&mount.host).map(|m| m.is_dir()).unwrap_or(true);
        if is_dir {
            make_dirs(&mut ops, &mut made, &bound, target)?;
        } else {
            if let Some(parent) = target.parent() {
                make_dirs(&mut ops, &mut made, &bound, parent)?;
            }
            if !bound.iter().any(|b| target.starts_with(b)) {
                if !may_create(target) {
                    return Err(Fallback::OwnRoot);
                }
                ops.push(MountOp::EmptyFile { path: at(target)? });
            }
        }
        let attrs = if mount.writable { attr::NOSUID | attr::NODEV } else { attr::RDONLY | attr::NOSUID | attr::NODEV };
        let (source, target_at) = (cstring(&mount.host)?, at(target)?);
        ops.push(match shared {
            true if detached == MAX_DETACHED => return Err(Fallback::OwnRoot),
            true => {
                detached += 1;
                MountOp::Attach { index: detached - 1, source, target: target_at, attrs }
            }
            false => MountOp::Bind { source, target: target_at, attrs },
        });
        bound.push(target.clone());
        landlock.push((mount.host.clone(), if mount.writable { Access::ReadWrite } else { Access::ReadExec }));
    }

    // Protected paths, after everything that could cover them: each directory between the
    // mount that holds it and the path is anchored (a mount point cannot be renamed or
    // removed, so the path cannot be moved away and replaced), then the path is re-bound
    // read-only.
    let mut anchored: Vec<PathBuf> = Vec::new();
    for (target, _) in &protected {
        let holder =
            binds.iter().map(|(t, _)| t).filter(|t| target.starts_with(t)).max_by_key(|t| t.components().count());
        let Some(holder) = holder else {
            // Not inside any granted mount: the tool cannot reach it anyway.
            continue;
        };
        let mut partial = holder.clone();
        let rest: Vec<Component> = target.strip_prefix(holder).map(|r| r.components().collect()).unwrap_or_default();
        for component in rest.iter().take(rest.len().saturating_sub(1)) {
            partial.push(component);
            if !anchored.contains(&partial) {
                ops.push(MountOp::Rebind { target: at(&partial)?, attrs: attr::NOSUID | attr::NODEV });
                anchored.push(partial.clone());
            }
        }
        ops.push(MountOp::Rebind { target: at(target)?, attrs: attr::RDONLY | attr::NOSUID | attr::NODEV });
    }

    // /proc last among the mounts: mounting procfs needs a fully visible /proc in the
    // mount namespace, which the host's still is until the old root is detached. (The
    // shared root's is mounted before the steps: see [`Base::Shared`].)
    make_dirs(&mut ops, &mut made, &bound, Path::new("/proc"))?;
    if !shared {
        ops.push(MountOp::Proc { target: at(Path::new("/proc"))?, options: PROC_OPTIONS.into() });
    }
    for path in PROC_READ_ONLY {
        ops.push(MountOp::ProcReadOnly { target: at(&Path::new("/proc").join(path))? });
    }

    let cwd = match grant.jail.cwd.as_deref() {
        Some(cwd) => cstring(cwd)?,
        None => cstring(WORKSPACE)?,
    };
    let base = match shared {
        true => Base::Shared { staging: cstring(staging)?, proc: cstring(staging_path.join("proc"))? },
        false => Base::Own { staging: cstring(staging)? },
    };
    Ok(RootPlan { base, ops, cwd, landlock })
}

/// The rlimits of one call, as `(resource, value)` with soft = hard = value, each capped
/// at the current hard limit (a process may lower its limits but not raise them).
/// `memory_by_cgroup`: when the cgroup bounds memory, no address-space rlimit is set (it
/// would count reserved, untouched memory and break runtimes that reserve much);
/// otherwise RLIMIT_DATA stands in for it.
pub fn rlimits(limits: &Limits, memory_by_cgroup: bool, hard: &dyn Fn(u32) -> u64) -> Vec<(u32, u64)> {
    const MIB: u64 = 1 << 20;
    let mut wanted = vec![
        (libc::RLIMIT_CPU, limits.cpu_seconds),
        (libc::RLIMIT_FSIZE, limits.file_size_mib.saturating_mul(MIB)),
        (libc::RLIMIT_NOFILE, limits.open_files),
        (libc::RLIMIT_NPROC, limits.pids),
        (libc::RLIMIT_CORE, 0),
    ];
    if !memory_by_cgroup {
        wanted.push((libc::RLIMIT_DATA, limits.memory_mib.saturating_mul(MIB)));
    }
    wanted.into_iter().map(|(resource, value)| (resource, value.min(hard(resource)))).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::policy::Program;

    fn layout() -> HostLayout {
        HostLayout {
            system: vec![
                ("/usr".into(), HostEntry::Dir),
                ("/bin".into(), HostEntry::Symlink("usr/bin".into())),
                ("/lib64".into(), HostEntry::Symlink("usr/lib64".into())),
            ],
            etc: vec![
                ("passwd".into(), HostEntry::File(Arc::from(&b"root:x:0:0::/root:/bin/sh\n"[..]))),
                ("alternatives".into(), HostEntry::Dir),
                ("localtime".into(), HostEntry::Symlink("/usr/share/zoneinfo/UTC".into())),
            ],
            devices: vec!["null".into(), "urandom".into()],
            staging: vec!["/mnt".into(), "/opt".into()],
        }
    }

    fn grant(workspace: &str) -> Grant {
        let mut grant = Grant::new("t", Program::Process { executable: "/bin/true".into(), sha256: None });
        grant.workspace = Some(workspace.into());
        grant.mounts = vec![
            Mount { host: workspace.into(), guest: ".".into(), writable: false },
            Mount { host: format!("{workspace}/out").into(), guest: "out".into(), writable: true },
            Mount { host: "/opt/cargo".into(), guest: "/opt/cargo".into(), writable: false },
        ];
        grant.protected = vec![Mount {
            host: format!("{workspace}/out/a/tests").into(),
            guest: "out/a/tests".into(),
            writable: false,
        }];
        grant
    }

    fn index(ops: &[MountOp], wanted: &MountOp) -> usize {
        ops.iter().position(|op| op == wanted).unwrap_or_else(|| panic!("{wanted:?} not in {ops:#?}"))
    }

    #[test]
    fn root_plan_binds_system_read_only_workspace_then_protected_last() {
        let plan = root_plan(&layout(), &grant("/home/u/ws"), Prepared::default()).unwrap();
        assert_eq!(plan.base, Base::Own { staging: c"/mnt".into() });
        assert_eq!(plan.cwd.as_c_str(), c"/workspace");
        let ro = attr::RDONLY | attr::NOSUID | attr::NODEV;
        let rw = attr::NOSUID | attr::NODEV;
        assert_eq!(
            plan.ops[0],
            MountOp::Tmpfs { target: c"/mnt".into(), options: CString::new(ROOT_TMPFS_OPTIONS).unwrap() }
        );
        let usr = index(&plan.ops, &MountOp::Bind { source: c"/usr".into(), target: c"/mnt/usr".into(), attrs: ro });
        let bin = index(&plan.ops, &MountOp::Symlink { target: c"usr/bin".into(), path: c"/mnt/bin".into() });
        let ws = index(
            &plan.ops,
            &MountOp::Bind { source: c"/home/u/ws".into(), target: c"/mnt/workspace".into(), attrs: ro },
        );
        let out = index(
            &plan.ops,
            &MountOp::Bind { source: c"/home/u/ws/out".into(), target: c"/mnt/workspace/out".into(), attrs: rw },
        );
        let cargo = index(
            &plan.ops,
            &MountOp::Bind { source: c"/opt/cargo".into(), target: c"/mnt/opt/cargo".into(), attrs: ro },
        );
        let anchor = index(&plan.ops, &MountOp::Rebind { target: c"/mnt/workspace/out/a".into(), attrs: rw });
        let tests = index(&plan.ops, &MountOp::Rebind { target: c"/mnt/workspace/out/a/tests".into(), attrs: ro });
        let proc_ =
            index(&plan.ops, &MountOp::Proc { target: c"/mnt/proc".into(), options: c"hidepid=invisible".into() });
        assert!(usr < ws && bin < ws && ws < out && out < anchor && anchor < tests && tests < proc_ && cargo < tests);
        // The host-wide parts of the fresh /proc are made read-only once it is mounted.
        let sysctls = index(&plan.ops, &MountOp::ProcReadOnly { target: c"/mnt/proc/sys".into() });
        let sysrq = index(&plan.ops, &MountOp::ProcReadOnly { target: c"/mnt/proc/sysrq-trigger".into() });
        assert!(proc_ < sysctls && proc_ < sysrq);
        // /etc: a copy, a bind and a symlink; never the whole /etc.
        assert!(
            plan.ops
                .iter()
                .any(|op| matches!(op, MountOp::FileCopy { path, .. } if path.as_c_str() == c"/mnt/etc/passwd"))
        );
        index(
            &plan.ops,
            &MountOp::Bind { source: c"/etc/alternatives".into(), target: c"/mnt/etc/alternatives".into(), attrs: ro },
        );
        assert!(!plan.ops.iter().any(|op| matches!(op, MountOp::Bind { source, .. } if source.as_c_str() == c"/etc")));
        // Devices are bound onto empty files, without exec.
        index(&plan.ops, &MountOp::EmptyFile { path: c"/mnt/dev/null".into() });
        index(
            &plan.ops,
            &MountOp::Bind {
                source: c"/dev/null".into(),
                target: c"/mnt/dev/null".into(),
                attrs: attr::NOSUID | attr::NOEXEC,
            },
        );
        // Every directory is made before anything is mounted under it.
        let dir = index(&plan.ops, &MountOp::Dir { path: c"/mnt/workspace".into() });
        assert!(dir < ws);
        // Landlock sees the host paths with their access.
        assert!(plan.landlock.contains(&(PathBuf::from("/home/u/ws/out"), Access::ReadWrite)));
        assert!(plan.landlock.contains(&(PathBuf::from("/usr"), Access::ReadExec)));
    }

    /// What the per-call ops make and bind under `dir` (relative names), as a tree would:
    /// entries by name, binds by (name, source, attrs).
    fn made_under(ops: &[MountOp], dir: &str) -> (Vec<String>, Vec<(String, PathBuf, u64)>) {
        let prefix = format!("/mnt{dir}/");
        let name = |path: &CString| path.to_string_lossy().strip_prefix(&prefix).map(str::to_string);
        let mut entries = Vec::new();
        let mut binds = Vec::new();
        for op in ops {
            match op {
                MountOp::FileCopy { path, .. }
                | MountOp::Symlink { path, .. }
                | MountOp::Dir { path }
                | MountOp::EmptyFile { path } => entries.extend(name(path)),
                MountOp::Bind { source, target, attrs } => {
                    if let Some(name) = name(target) {
                        binds.push((name, PathBuf::from(source.to_string_lossy().into_owned()), *attrs));
                    }
                }
                _ => {}
            }
        }
        entries.sort();
        binds.sort();
        (entries, binds)
    }

    fn spec_under(spec: &TreeSpec) -> (Vec<String>, Vec<(String, PathBuf, u64)>) {
        let mut entries: Vec<String> = spec.entries.iter().map(|(name, _)| name.clone()).collect();
        let mut binds: Vec<(String, PathBuf, u64)> =
            spec.binds.iter().map(|b| (b.name.clone(), b.source.clone(), b.attrs)).collect();
        entries.sort();
        binds.sort();
        (entries, binds)
    }

    #[test]
    fn with_the_prepared_etc_etc_is_one_clone_that_holds_its_entries_and_binds() {
        let with = root_plan(&layout(), &grant("/home/u/ws"), Prepared { etc: true, dev: false, root: false }).unwrap();
        let template = index(&with.ops, &MountOp::Prepared { tree: Tree::Etc, target: c"/mnt/etc".into() });
        let etc_dir = index(&with.ops, &MountOp::Dir { path: c"/mnt/etc".into() });
        assert!(etc_dir < template);
        // Nothing made or bound under /etc per call: the tree holds it.
        assert_eq!(made_under(&with.ops, "/etc"), (vec![], vec![]));
        // The tree holds exactly what the per-call ops make and bind, with their attributes.
        let without = root_plan(&layout(), &grant("/home/u/ws"), Prepared::default()).unwrap();
        let (mut made, binds) = made_under(&without.ops, "/etc");
        assert!(binds.contains(&("alternatives".into(), "/etc/alternatives".into(), ETC_BIND_ATTRS)));
        // A bound directory's mount point is a directory the tree has as an entry.
        made.sort();
        assert_eq!((made, binds), spec_under(&etc_tree(&layout())));
        // Everything else is the same plan.
        let outside_etc = |ops: &[MountOp]| -> Vec<MountOp> {
            ops.iter()
                .filter(|op| !op.describe().contains("/mnt/etc") && !op.describe().contains("/etc/"))
                .cloned()
                .collect()
        };
        assert_eq!(outside_etc(&with.ops), outside_etc(&without.ops));
        // A grant that mounts under /etc gets its own /etc, made file by file.
        let mut grant = grant("/home/u/ws");
        grant.mounts.push(Mount { host: "/etc/hostname".into(), guest: "/etc/hostname".into(), writable: false });
        let own = root_plan(&layout(), &grant, Prepared { etc: true, dev: false, root: false }).unwrap();
        assert!(!own.ops.iter().any(|op| matches!(op, MountOp::Prepared { .. })));
        index(&own.ops, &MountOp::EmptyFile { path: c"/mnt/etc/hostname".into() });
    }

    #[test]
    fn with_the_prepared_dev_dev_is_one_clone_that_holds_the_devices() {
        let mut layout = layout();
        layout.devices = vec!["null".into(), "urandom".into()];
        let with = root_plan(&layout, &grant("/home/u/ws"), Prepared { etc: false, dev: true, root: false }).unwrap();
        let dev = index(&with.ops, &MountOp::Prepared { tree: Tree::Dev, target: c"/mnt/dev".into() });
        let dev_dir = index(&with.ops, &MountOp::Dir { path: c"/mnt/dev".into() });
        assert!(dev_dir < dev);
        assert_eq!(made_under(&with.ops, "/dev"), (vec![], vec![]));
        // Landlock still allows the devices.
        assert!(with.landlock.contains(&(PathBuf::from("/dev/null"), Access::Device)));
        // The tree holds exactly what the per-call ops make and bind, with their attributes.
        let without = root_plan(&layout, &grant("/home/u/ws"), Prepared::default()).unwrap();
        let per_call = made_under(&without.ops, "/dev");
        assert!(per_call.1.contains(&("null".into(), "/dev/null".into(), attr::NOSUID | attr::NOEXEC)));
        assert_eq!(per_call, spec_under(&dev_tree(&layout.devices)));
    }

    #[test]
    fn on_the_prepared_root_the_steps_are_the_per_call_ones_unless_the_grant_needs_a_mount_point_in_it() {
        let all = Prepared { etc: true, dev: true, root: true };
        let mut ws_only = grant("/home/u/ws");
        ws_only.mounts.retain(|m| !m.host.starts_with("/opt"));
        let shared = root_plan(&layout(), &ws_only, all).unwrap();
        assert_eq!(shared.base, Base::Shared { staging: c"/mnt".into(), proc: c"/mnt/proc".into() });
        // Nothing is made in the shared root.
        let makes = |op: &MountOp| {
            matches!(
                op,
                MountOp::Dir { .. } | MountOp::EmptyFile { .. } | MountOp::FileCopy { .. } | MountOp::Symlink { .. }
            )
        };
        assert!(!shared.ops.iter().any(makes), "{:#?}", shared.ops);
        // The plan on a root of the jail's own, without what the tree holds (each such op is
        // checked against the tree) and its /proc (the base mounts it), is the plan on the
        // shared root: at guest paths, the grant's binds attached from detached copies.
        let own = root_plan(&layout(), &ws_only, Prepared { root: false, ..all }).unwrap();
        assert_eq!(own.base, Base::Own { staging: c"/mnt".into() });
        assert_eq!(shared.landlock, own.landlock);
        let spec = root_tree(&layout());
        let name = |path: &CString| path.to_str().unwrap().trim_start_matches("/mnt/").to_string();
        let guest = |path: &CString| CString::new(format!("/{}", name(path))).unwrap();
        let entry = |path: &CString| spec.entries.iter().find(|(n, _)| *n == name(path)).map(|(_, e)| e.clone());
        let mut attached = 0;
        let per_call: Vec<MountOp> = own.ops[1..]
            .iter()
            .filter_map(|op| match op {
                MountOp::Dir { path } => (entry(path) != Some(HostEntry::Dir)).then(|| op.clone()),
                MountOp::Symlink { target, path } => {
                    assert_eq!(entry(path), Some(HostEntry::Symlink(PathBuf::from(target.to_str().unwrap()))));
                    None
                }
                MountOp::Bind { source, target, attrs } if source.to_str().unwrap() == "/usr" => {
                    let bind = TreeBind { name: name(target), source: "/usr".into(), attrs: *attrs };
                    assert!(spec.binds.contains(&bind), "{op:?}");
                    None
                }
                MountOp::Prepared { tree, .. } => {
                    assert!(matches!(tree, Tree::Etc | Tree::Dev));
                    None
                }
                MountOp::Proc { target, options } => {
                    assert_eq!((target.as_c_str(), options.as_c_str()), (c"/mnt/proc", PROC_OPTIONS));
                    None
                }
                MountOp::Bind { source, target, attrs } => {
                    attached += 1;
                    let (source, attrs) = (source.clone(), *attrs);
                    Some(MountOp::Attach { index: attached - 1, source, target: guest(target), attrs })
                }
                MountOp::Tmpfs { target, options } => {
                    Some(MountOp::Tmpfs { target: guest(target), options: options.clone() })
                }
                MountOp::Rebind { target, attrs } => Some(MountOp::Rebind { target: guest(target), attrs: *attrs }),
                MountOp::ProcReadOnly { target } => Some(MountOp::ProcReadOnly { target: guest(target) }),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(shared.ops, per_call);
        // The parent opens the attached binds in their index order.
        let detached: Vec<(&CString, u64)> = shared.detached().collect();
        let ro = attr::RDONLY | attr::NOSUID | attr::NODEV;
        assert_eq!(
            detached,
            [(&CString::from(c"/home/u/ws"), ro), (&CString::from(c"/home/u/ws/out"), attr::NOSUID | attr::NODEV)]
        );
        let tmp = MountOp::Tmpfs { target: c"/tmp".into(), options: c"size=64m,nr_inodes=65536,mode=1777".into() };
        // An absolute guest path outside /tmp needs a mount point in the root: the jail
        // makes its own.
        let with_opt = root_plan(&layout(), &grant("/home/u/ws"), all).unwrap();
        assert_eq!(with_opt.base, Base::Own { staging: c"/mnt".into() });
        assert!(matches!(with_opt.ops[0], MountOp::Tmpfs { .. }), "{:?}", with_opt.ops[0]);
        index(&with_opt.ops, &MountOp::Dir { path: c"/mnt/opt".into() });
        // One under /tmp gets its mount point in the call's own /tmp: the shared root serves.
        let mut under_tmp = ws_only.clone();
        under_tmp.mounts.push(Mount { host: "/opt/cargo".into(), guest: "/tmp/cargo".into(), writable: false });
        let plan = root_plan(&layout(), &under_tmp, all).unwrap();
        assert!(matches!(plan.base, Base::Shared { .. }));
        assert!(index(&plan.ops, &MountOp::Dir { path: c"/tmp/cargo".into() }) > index(&plan.ops, &tmp));
        // More binds than travel in one call: a root of the jail's own.
        let mut many = ws_only.clone();
        for n in 0..MAX_DETACHED {
            many.mounts.push(Mount { host: format!("/data/{n}").into(), guest: format!("/tmp/{n}"), writable: false });
        }
        assert!(matches!(root_plan(&layout(), &many, all).unwrap().base, Base::Own { .. }));
        many.mounts.truncate(MAX_DETACHED);
        assert!(matches!(root_plan(&layout(), &many, all).unwrap().base, Base::Shared { .. }));
    }

    #[test]
    fn staging_avoids_every_source_and_its_ancestors() {
        let candidates: Vec<String> = ["/mnt", "/opt", "/tmp"].iter().map(|s| s.to_string()).collect();
        assert_eq!(choose_staging(&candidates, &[Path::new("/mnt/data/ws")]), Some("/opt"));
        assert_eq!(choose_staging(&candidates, &[Path::new("/"), Path::new("/x")]), None);
        assert_eq!(choose_staging(&candidates, &[Path::new("/mnt"), Path::new("/opt/x")]), Some("/tmp"));
        let mut grant = grant("/mnt/ws");
        grant.mounts.retain(|m| !m.host.starts_with("/opt"));
        let plan = root_plan(&layout(), &grant, Prepared::default()).unwrap();
        assert_eq!(plan.base, Base::Own { staging: c"/opt".into() });
    }

    #[test]
    fn targets_stay_in_the_workspace_and_off_the_jails_own_paths() {
        let ws = Path::new("/w");
        let m = |host: &str, guest: &str| Mount { host: host.into(), guest: guest.into(), writable: false };
        assert_eq!(guest_target(&m("/w", "."), Some(ws)), Ok(PathBuf::from("/workspace")));
        // A relative guest follows the canonical host path, not the name in the policy.
        assert_eq!(guest_target(&m("/w/real/out", "out"), Some(ws)), Ok(PathBuf::from("/workspace/real/out")));
        assert_eq!(guest_target(&m("/x", "/opt/x"), Some(ws)), Ok(PathBuf::from("/opt/x")));
        for guest in ["/proc/x", "/dev", "/workspace/x", "/", "/a/../b"] {
            assert!(guest_target(&m("/x", guest), Some(ws)).is_err(), "{guest}");
        }
    }

    #[test]
    fn rlimits_follow_the_grant_and_never_exceed_the_hard_limit() {
        let limits = Limits {
            cpu_seconds: 5,
            open_files: 1_000_000,
            pids: 32,
            file_size_mib: 2,
            memory_mib: 100,
            ..Limits::default()
        };
        let hard = |resource: u32| if resource == libc::RLIMIT_NOFILE { 4096 } else { u64::MAX };
        let with_cgroup = rlimits(&limits, true, &hard);
        assert!(with_cgroup.contains(&(libc::RLIMIT_CPU, 5)));
        assert!(with_cgroup.contains(&(libc::RLIMIT_NOFILE, 4096)));
        assert!(with_cgroup.contains(&(libc::RLIMIT_NPROC, 32)));
        assert!(with_cgroup.contains(&(libc::RLIMIT_FSIZE, 2 << 20)));
        assert!(with_cgroup.contains(&(libc::RLIMIT_CORE, 0)));
        assert!(!with_cgroup.iter().any(|(r, _)| *r == libc::RLIMIT_DATA));
        let without = rlimits(&limits, false, &hard);
        assert!(without.contains(&(libc::RLIMIT_DATA, 100 << 20)));
    }
}
