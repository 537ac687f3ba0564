//! Cgroup limits of jailed calls: memory, processes and CPU accounting of the whole
//! process tree, with cgroup v1 (`/sys/fs/cgroup/{memory,pids,cpuacct}/airlock/...`) or a
//! delegated cgroup v2 subtree.
//!
//! Owns: finding a usable hierarchy ([`Cgroups::detect`]), a small pool of call cgroups
//! (creating a memory cgroup costs more than reusing one: limits are rewritten only when
//! they change, counters reset or read as deltas), putting a child in one, and reading
//! what the call used (peak memory, CPU, OOM kills, refused forks).
//! Must not: hold processes: a cgroup goes back to the pool only once the call's process
//! tree is gone; leftovers of a crashed airlock (named after its dead pid) are removed at
//! start.
//!
//! Why a resident thread: moving a process into a v1 cgroup takes the kernel's
//! `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace period (several
//! milliseconds on a busy host): more than the whole rest of a jail. In v1 a thread can
//! live in a cgroup on its own, and a process cloned by a thread starts in that thread's
//! cgroups. So each pooled v1 call cgroup keeps one airlock thread inside it (moved there
//! once, when the cgroup is made) and the jail is cloned from that thread: it is born in
//! its cgroup, with no move at all (the same job writes its maps and, for a call, hands it
//! the call, so the child never waits for the caller's thread to wake up; a jail cloned
//! ahead of its call is born in the cgroup it will run the call in). Memory is charged by
//! address space, not by thread, so the resident thread charges nothing to the call; it
//! counts as one task towards pids.max, which is raised by one to match.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
};

/// Work run on a resident thread; it says whether the thread may run more.
type Job = Box<dyn FnOnce() -> AfterJob + Send>;

/// A job sent to a cgroup's resident thread, until its result is taken
/// ([`CallCgroup::finish_inside`]).
#[derive(Debug)]
pub struct InsideJob<R>(mpsc::Receiver<(R, AfterJob)>);

/// What becomes of a resident thread after a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterJob {
    /// It waits for the next job.
    Continue,
    /// It exits: the job left it unfit for other work (a clone that could not bring it
    /// back to the host's network namespace). The cgroup goes on without a resident.
    Retire,
}

/// A thread that lives in a call cgroup and runs jobs (clones) there.
#[derive(Debug)]
struct Resident {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Resident {
    /// Starts a thread and moves it into the cgroups whose `tasks` files are given.
    fn start(tasks: Vec<PathBuf>) -> io::Result<Resident> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, is_ready) = mpsc::channel::<io::Result<()>>();
        let thread = std::thread::Builder::new().name("airlock-cgroup".into()).spawn(move || {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() }.to_string();
            let moved = tasks.iter().try_for_each(|path| {
                OpenOptions::new().write(true).open(path).and_then(|mut f| f.write_all(tid.as_bytes()))
            });
            let ok = moved.is_ok();
            let _ = ready.send(moved);
            if ok {
                for job in inbox {
                    if job() == AfterJob::Retire {
                        break;
                    }
                }
            }
        })?;
        match is_ready.recv() {
            Ok(Ok(())) => Ok(Resident { jobs: Some(jobs), thread: Some(thread) }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the cgroup's resident thread died")),
        }
    }
}

impl Drop for Resident {
    fn drop(&mut self) {
        // Closing the channel ends the thread; joining it empties the cgroup.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How many idle call cgroups are kept for reuse; more concurrent calls create more and
/// remove the surplus.
const POOL_SIZE: usize = 8;

/// The directory under each hierarchy that holds airlock's call cgroups.
const AIRLOCK_DIR: &str = "airlock";

/// What a call used, from its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// Peak memory of the tree, in bytes.
    pub peak_memory_bytes: u64,
    /// CPU time of the tree, in microseconds.
    pub cpu_us: u64,
    /// Processes the kernel's OOM killer killed.
    pub oom_kills: u64,
    /// Forks refused because the pids limit was reached.
    pub pids_refused: u64,
}

#[derive(Debug, Clone)]
enum Hierarchy {
    V1 { memory: PathBuf, pids: PathBuf, cpuacct: PathBuf },
    V2 { base: PathBuf },
}

/// The cgroup hierarchy airlock uses, and its pool of call cgroups.
#[derive(Debug)]
pub struct Cgroups {
    hierarchy: Hierarchy,
    free: Mutex<Vec<CallCgroup>>,
}

/// Numbers call cgroups, process-wide: two backends in one process (two runtimes, a
/// runtime and a bare `JailBackend`) share the hierarchy and must never pick the same name.
static NEXT_CALL_CGROUP: AtomicU64 = AtomicU64::new(0);

/// One call's cgroup (one directory per v1 hierarchy, or one v2 directory), with its
/// control files open.
#[derive(Debug)]
pub struct CallCgroup {
    dirs: Vec<PathBuf>,
    procs: Vec<File>,
    memory_max: File,
    swap_max: Option<File>,
    memory_peak: File,
    memory_events: File,
    pids_max: File,
    pids_events: File,
    cpu_usage: File,
    v2: bool,
    /// The thread that lives in this cgroup (v1), when it could be moved there.
    resident: Option<Resident>,
    /// The limits currently written: (memory bytes, pids).
    current: Option<(u64, u64)>,
    /// Counters at the start of the call (they cannot be reset).
    baseline: (u64, u64),
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn open_r(path: &Path) -> io::Result<File> {
    File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn write_value(file: &mut File, value: &str) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.write_all(value.as_bytes())
}

fn read_text(file: &mut File) -> io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// The number after `key` in a flat-keyed cgroup file (`oom_kill 3`, `max 5`).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        if k == key { v.trim().parse().ok() } else { None }
    })
}

impl Cgroups {
    /// Finds a hierarchy airlock may create cgroups in: a delegated v2 subtree
    /// (`$AIRLOCK_CGROUP`, or this process's own cgroup when memory and pids are enabled
    /// for its children), else the v1 memory, pids and cpuacct hierarchies. `Err` says why
    /// none is usable (the `cgroups` layer is then missing).
    pub fn detect() -> Result<Cgroups, String> {
        let hierarchy = match detect_v2() {
            Some(base) => Hierarchy::V2 { base },
            None => {
                let root = Path::new("/sys/fs/cgroup");
                let dirs: Vec<PathBuf> =
                    ["memory", "pids", "cpuacct"].iter().map(|h| root.join(h).join(AIRLOCK_DIR)).collect();
                for (dir, name) in dirs.iter().zip(["memory", "pids", "cpuacct"]) {
                    if !root.join(name).join("cgroup.procs").exists() {
                        return Err(format!(
                            "no delegated cgroup v2 subtree and no cgroup v1 {name} hierarchy at {}",
                            root.join(name).display()
                        ));
                    }
                    if let Err(e) = std::fs::create_dir(dir)
                        && e.kind() != io::ErrorKind::AlreadyExists
                    {
                        return Err(format!(
                            "cannot create {}: {e} (run as root, or delegate it to this user)",
                            dir.display()
                        ));
                    }
                }
                let [memory, pids, cpuacct] = <[PathBuf; 3]>::try_from(dirs).map_err(|_| "unreachable".to_string())?;
                Hierarchy::V1 { memory, pids, cpuacct }
            }
        };
        let cgroups = Cgroups { hierarchy, free: Mutex::new(Vec::new()) };
        cgroups.remove_leftovers();
        // One cgroup made now proves the hierarchy works and warms the pool.
        let first = cgroups.create().map_err(|e| format!("cannot create a call cgroup: {e}"))?;
        cgroups.give_back(first);
        Ok(cgroups)
    }

    /// The hierarchy's directories that hold call cgroups.
    fn parents(&self) -> Vec<&Path> {
        match &self.hierarchy {
            Hierarchy::V1 { memory, pids, cpuacct } => vec![memory, pids, cpuacct],
            Hierarchy::V2 { base } => vec![base],
        }
    }

    /// "v1" or "v2", for the audit record.
    pub fn version(&self) -> &'static str {
        match self.hierarchy {
            Hierarchy::V1 { .. } => "v1",
            Hierarchy::V2 { .. } => "v2",
        }
    }

    /// Removes call cgroups left by airlock processes that no longer exist.
    fn remove_leftovers(&self) {
        for parent in self.parents() {
            let Ok(entries) = std::fs::read_dir(parent) else { continue };
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) =
                    name.strip_prefix("call-").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<i32>().ok())
                else {
                    continue;
                };
                // SAFETY: kill with signal 0 only checks whether the process exists.
                let alive = unsafe { libc::kill(pid, 0) } == 0
                    || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
                if !alive {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
    }

    fn create(&self) -> io::Result<CallCgroup> {
        let name = format!("call-{}-{}", std::process::id(), NEXT_CALL_CGROUP.fetch_add(1, Ordering::Relaxed));
        let mut dirs = Vec::new();
        for parent in self.parents() {
            let dir = parent.join(&name);
            if let Err(e) = std::fs::create_dir(&dir) {
                for made in &dirs {
                    let _ = std::fs::remove_dir(made);
                }
                return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display())));
            }
            dirs.push(dir);
        }
        let opened = match &self.hierarchy {
            Hierarchy::V1 { .. } => {
                let (memory, pids, cpuacct) = (&dirs[0], &dirs[1], &dirs[2]);
                let memsw = memory.join("memory.memsw.limit_in_bytes");
                (|| {
                    Ok(CallCgroup {
                        procs: vec![
                            open_rw(&memory.join("cgroup.procs"))?,
                            open_rw(&pids.join("cgroup.procs"))?,
                            open_rw(&cpuacct.join("cgroup.procs"))?,
                        ],
                        memory_max: open_rw(&memory.join("memory.limit_in_bytes"))?,
                        swap_max: if memsw.exists() { Some(open_rw(&memsw)?) } else { None },
                        memory_peak: open_rw(&memory.join("memory.max_usage_in_bytes"))?,
                        memory_events: open_r(&memory.join("memory.oom_control"))?,
                        pids_max: open_rw(&pids.join("pids.max"))?,
                        pids_events: open_r(&pids.join("pids.events"))?,
                        cpu_usage: open_rw(&cpuacct.join("cpuacct.usage"))?,
                        v2: false,
                        resident: None,
                        current: None,
                        baseline: (0, 0),
                        dirs: dirs.clone(),
                    })
                })()
            }
            Hierarchy::V2 { .. } => {
                let dir = &dirs[0];
                (|| {
                    Ok(CallCgroup {
                        procs: vec![open_rw(&dir.join("cgroup.procs"))?],
                        memory_max: open_rw(&dir.join("memory.max"))?,
                        swap_max: match open_rw(&dir.join("memory.swap.max")) {
                            Ok(file) => Some(file),
                            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                            Err(e) => return Err(e),
                        },
                        memory_peak: open_rw(&dir.join("memory.peak"))?,
                        memory_events: open_r(&dir.join("memory.events"))?,
                        pids_max: open_rw(&dir.join("pids.max"))?,
                        pids_events: open_r(&dir.join("pids.events"))?,
                        cpu_usage: open_r(&dir.join("cpu.stat"))?,
                        v2: true,
                        resident: None,
                        current: None,
                        baseline: (0, 0),
                        dirs: dirs.clone(),
                    })
                })()
            }
        };
        let mut cgroup = opened.inspect_err(|_| {
            for dir in &dirs {
                let _ = std::fs::remove_dir(dir);
            }
        })?;
        if !cgroup.v2 {
            // Without a resident the jail is moved in on every call: slower, still correct.
            cgroup.resident = Resident::start(dirs.iter().map(|d| d.join("tasks")).collect()).ok();
        }
        Ok(cgroup)
    }

    /// A call cgroup with these limits, from the pool or new.
    #[cfg(test)]
    pub fn take(&self, memory_bytes: u64, pids: u64) -> io::Result<CallCgroup> {
        let mut cgroup = self.reserve()?;
        if let Err(e) = cgroup.prepare(memory_bytes, pids) {
            cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    /// A call cgroup from the pool or new, for a jail cloned ahead of its call: its limits
    /// are written by [`CallCgroup::prepare`] when the call comes.
    pub fn reserve(&self) -> io::Result<CallCgroup> {
        let pooled = self.free.lock().ok().and_then(|mut free| free.pop());
        match pooled {
            Some(cgroup) => Ok(cgroup),
            None => self.create(),
        }
    }

    /// Returns an empty call cgroup to the pool (or removes it when the pool is full).
    pub fn give_back(&self, cgroup: CallCgroup) {
        // v2's memory.peak cannot be reset on every kernel: v2 cgroups are not reused.
        if cgroup.v2 {
            cgroup.remove();
            return;
        }
        match self.free.lock() {
            Ok(mut free) if free.len() < POOL_SIZE => free.push(cgroup),
            _ => cgroup.remove(),
        }
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        if let Ok(free) = self.free.get_mut() {
            for cgroup in free.drain(..) {
                cgroup.remove();
            }
        }
    }
}

/// `$AIRLOCK_CGROUP`, or this process's own v2 cgroup, when it is a directory whose
/// children get the memory and pids controllers.
fn detect_v2() -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if !root.join("cgroup.controllers").exists() {
        return None;
    }
    let base = match std::env::var_os("AIRLOCK_CGROUP") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
            let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
            root.join(path.trim_start_matches('/'))
        }
    };
    let enabled = std::fs::read_to_string(base.join("cgroup.subtree_control")).ok()?;
    let has = |c: &str| enabled.split_whitespace().any(|e| e == c);
    (has("memory") && has("pids")).then_some(base)
}

impl CallCgroup {
    /// Writes the limits (only those that changed) and resets or reads the counters. On
    /// failure the cgroup must not be used (give it back: it is removed or rewritten).
    pub fn prepare(&mut self, memory_bytes: u64, pids: u64) -> io::Result<()> {
        if self.current != Some((memory_bytes, pids)) {
            // Unknown until every write below succeeded: a failure makes the next call
            // rewrite them all.
            let old = self.current.take();
            let memory = memory_bytes.to_string();
            if self.v2 {
                write_value(&mut self.memory_max, &memory)?;
                if let Some(swap) = &mut self.swap_max {
                    write_value(swap, "0")?;
                }
            } else {
                // memsw (memory + swap) must stay >= memory: lower memory first, raise
                // memsw first.
                let lowering = old.is_none_or(|(old, _)| memory_bytes < old);
                if lowering || self.swap_max.is_none() {
                    write_value(&mut self.memory_max, &memory)?;
                }
                if let Some(swap) = &mut self.swap_max {
                    write_value(swap, &memory)?;
                }
                if !lowering && self.swap_max.is_some() {
                    write_value(&mut self.memory_max, &memory)?;
                }
            }
            let resident = u64::from(self.resident.is_some());
            write_value(&mut self.pids_max, &pids.saturating_add(resident).to_string())?;
            self.current = Some((memory_bytes, pids));
        }
        if !self.v2 {
            write_value(&mut self.memory_peak, "0")?;
            write_value(&mut self.cpu_usage, "0")?;
        }
        self.baseline = (self.oom_kills()?, self.pids_refused()?);
        Ok(())
    }

    fn oom_kills(&mut self) -> io::Result<u64> {
        Ok(keyed_value(&read_text(&mut self.memory_events)?, "oom_kill").unwrap_or(0))
    }

    fn pids_refused(&mut self) -> io::Result<u64> {
        Ok(keyed_value(&read_text(&mut self.pids_events)?, "max").unwrap_or(0))
    }

    /// Whether this cgroup has a thread living in it (see [`CallCgroup::run_inside`]).
    pub fn has_resident(&self) -> bool {
        self.resident.is_some()
    }

    /// Runs `job` on the thread that lives in this cgroup, so that a process it clones is
    /// born in the cgroup; `None` when there is no such thread (then [`CallCgroup::attach`]
    /// the process). A job that answers [`AfterJob::Retire`] ends the thread: the cgroup
    /// has no resident from then on.
    #[cfg(test)]
    pub fn run_inside<R: Send + 'static>(&mut self, job: impl FnOnce() -> (R, AfterJob) + Send + 'static) -> Option<R> {
        let job = self.start_inside(job)?;
        self.finish_inside(job)
    }

    /// [`CallCgroup::run_inside`] in two halves: sends `job` to the resident thread and
    /// returns at once, so that the caller can work while it runs; `None` when there is no
    /// resident. The job's result must be taken with [`CallCgroup::finish_inside`] before
    /// anything the job borrows goes away.
    pub fn start_inside<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> (R, AfterJob) + Send + 'static,
    ) -> Option<InsideJob<R>> {
        let jobs = self.resident.as_ref()?.jobs.as_ref()?;
        let (done, result) = mpsc::channel();
        jobs.send(Box::new(move || {
            let (value, after) = job();
            let _ = done.send((value, after));
            after
        }))
        .ok()?;
        Some(InsideJob(result))
    }

    /// Waits until the job sent by [`CallCgroup::start_inside`] has run, and returns its
    /// result; `None` when the resident ended without running it.
    pub fn finish_inside<R>(&mut self, job: InsideJob<R>) -> Option<R> {
        let (value, after) = job.0.recv().ok()?;
        if after == AfterJob::Retire {
            self.retire_resident();
        }
        Some(value)
    }

    /// Ends the resident thread (joining it) and takes it out of pids.max.
    fn retire_resident(&mut self) {
        self.resident = None;
        if let Some((_, pids)) = self.current.take() {
            let _ = write_value(&mut self.pids_max, &pids.to_string());
        }
    }

    /// Puts process `pid` (and the children it will have) in this cgroup.
    pub fn attach(&mut self, pid: i32) -> io::Result<()> {
        let pid = pid.to_string();
        for procs in &mut self.procs {
            procs.write_all(pid.as_bytes())?;
        }
        Ok(())
    }

    /// CPU time of the tree so far, in microseconds.
    pub fn cpu_us(&mut self) -> io::Result<u64> {
        let text = read_text(&mut self.cpu_usage)?;
        if self.v2 {
            Ok(keyed_value(&text, "usage_usec").unwrap_or(0))
        } else {
            Ok(text.trim().parse::<u64>().unwrap_or(0) / 1000)
        }
    }

    /// What the call used (read once its processes are gone).
    pub fn usage(&mut self) -> io::Result<CgroupUsage> {
        let peak = read_text(&mut self.memory_peak)?.trim().parse().unwrap_or(0);
        Ok(CgroupUsage {
            peak_memory_bytes: peak,
            cpu_us: self.cpu_us()?,
            oom_kills: self.oom_kills()?.saturating_sub(self.baseline.0),
            pids_refused: self.pids_refused()?.saturating_sub(self.baseline.1),
        })
    }

    fn remove(mut self) {
        // The resident thread leaves the cgroup by exiting.
        self.resident = None;
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_resident_that_retires_is_gone_and_no_longer_counted_in_pids_max() {
        let Ok(cgroups) = Cgroups::detect() else { return };
        let mut cgroup = cgroups.take(1 << 30, 64).unwrap();
        if !cgroup.has_resident() {
            // cgroup v2, or a resident that could not move: nothing to retire.
            cgroups.give_back(cgroup);
            return;
        }
        assert_eq!(read_text(&mut cgroup.pids_max).unwrap().trim(), "65");
        assert_eq!(cgroup.run_inside(|| (1, AfterJob::Continue)), Some(1));
        assert!(cgroup.has_resident());
        assert_eq!(cgroup.run_inside(|| (2, AfterJob::Retire)), Some(2));
        assert!(!cgroup.has_resident());
        assert_eq!(cgroup.run_inside(|| (3, AfterJob::Continue)), None);
        assert_eq!(read_text(&mut cgroup.pids_max).unwrap().trim(), "64");
        cgroup.remove();
    }

    #[test]
    fn keyed_values_are_read_by_key() {
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(oom, "oom_kill"), Some(3));
        assert_eq!(keyed_value(oom, "under_oom"), Some(0));
        assert_eq!(keyed_value("max 12\n", "max"), Some(12));
        assert_eq!(keyed_value("usage_usec 1500\nuser_usec 1000\n", "usage_usec"), Some(1500));
        assert_eq!(keyed_value("", "max"), None);
    }
}
