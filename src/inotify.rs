//! A thin, owned wrapper over the kernel's inotify: add or remove a watch, drain events
//! without blocking; and [`Watches`], one instance whose watches are held by several
//! cached entries. Used by the guard's tree states, the wasm backend's preopen cache and
//! the policy's cache of resolved protected paths, each with its own instance.
//!
//! Owns: the inotify descriptor, the parsing of its event records, and how many holders
//! each watch of a [`Watches`] has.
//! Must not: decide what an event means (its user does) or block: the descriptor is
//! non-blocking, and draining stops at the first `EAGAIN`.

use std::{
    collections::HashMap,
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

/// The events that can change what a lookup in a watched directory finds: an entry
/// created, deleted, moved in or out, or its mode or owner changed (through the entry, or
/// on the directory itself), and the directory itself moved or deleted. Writes to files
/// are not among them: they change no entry.
pub(crate) const ENTRIES_MASK: u32 = libc::IN_ATTRIB
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// Every event that says something under a watch may have changed: content, metadata,
/// entries created, removed or moved, the watched inode itself removed or moved.
pub(crate) const WATCH_MASK: u32 = ENTRIES_MASK | libc::IN_MODIFY | libc::IN_CLOSE_WRITE;

/// One event: the watch it came from and, for an event about a directory's entry, the
/// entry's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub wd: i32,
    pub mask: u32,
    pub name: Option<Vec<u8>>,
}

/// What draining the queue found.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    pub events: Vec<Event>,
    /// The kernel dropped events (`IN_Q_OVERFLOW`): nothing can be concluded from them.
    pub overflow: bool,
}

/// An inotify instance.
#[derive(Debug)]
pub(crate) struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    /// A new, non-blocking, close-on-exec instance.
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: inotify_init1 takes only flags and returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        Ok(Inotify { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Watches `path` (not following a symlink at its end) for the events in `mask`;
    /// returns the watch descriptor, the same one for every path of the same inode.
    pub fn add_watch(&self, path: &Path, mask: u32) -> io::Result<i32> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: the descriptor is a live inotify instance and `c_path` a valid C string
        // that outlives the call.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c_path.as_ptr(), mask | libc::IN_DONT_FOLLOW) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Watches the directory open as `dir` for the events in `mask`: the very inode of the
    /// descriptor, whatever path now leads to it (the watch is set through
    /// `/proc/self/fd`, which names the open file, not a path that could have been swapped).
    pub fn add_dir_watch(&self, dir: BorrowedFd<'_>, mask: u32) -> io::Result<i32> {
        let c_path = CString::new(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: the descriptor is a live inotify instance and `c_path` a valid C string
        // that outlives the call. Without IN_DONT_FOLLOW the magic link is followed to the
        // open directory; IN_ONLYDIR refuses anything else.
        let wd = unsafe {
            libc::inotify_add_watch(
                self.fd.as_raw_fd(),
                c_path.as_ptr(),
                (mask | libc::IN_ONLYDIR) & !libc::IN_DONT_FOLLOW,
            )
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Removes watch `wd`. A watch the kernel already dropped (its inode deleted) is no
    /// error.
    pub fn remove_watch(&self, wd: i32) -> io::Result<()> {
        // SAFETY: the descriptor is a live inotify instance; `wd` is an integer.
        let removed = unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
        if removed < 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EINVAL) {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Reads every queued event, without blocking.
    pub fn drain(&self) -> io::Result<Drained> {
        let mut drained = Drained::default();
        // Aligned for `inotify_event`; 4 KiB per read (the loop reads until the queue is
        // empty). Small, because the common case is an empty queue, read on every call.
        let mut buffer = [0u64; 512];
        let header = std::mem::size_of::<libc::inotify_event>();
        loop {
            let bytes = buffer.len() * 8;
            // SAFETY: the buffer is valid for `bytes` bytes of writes for the whole call.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buffer.as_mut_ptr().cast(), bytes) };
            if n < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::WouldBlock => return Ok(drained),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(error),
                }
            }
            let n = n as usize;
            if n == 0 {
                return Ok(drained);
            }
            // SAFETY: viewing the initialised part of a u64 buffer as bytes.
            let raw: &[u8] = unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), n) };
            let mut at = 0;
            while at + header <= n {
                // SAFETY: the kernel wrote a whole `inotify_event` header at `at` (records
                // are never split across reads); read_unaligned makes no alignment claim.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(raw[at..].as_ptr().cast::<libc::inotify_event>()) };
                let len = event.len as usize;
                let name_bytes = raw.get(at + header..at + header + len).unwrap_or_default();
                let name = name_bytes.split(|b| *b == 0).next().filter(|n| !n.is_empty()).map(<[u8]>::to_vec);
                if event.mask & libc::IN_Q_OVERFLOW != 0 {
                    drained.overflow = true;
                } else {
                    drained.events.push(Event { wd: event.wd, mask: event.mask, name });
                }
                at += header + len;
            }
        }
    }
}

/// One inotify instance whose watches are held by cached entries: a watch is removed when
/// its last holder releases it (several entries watching one directory share its watch
/// descriptor).
#[derive(Debug)]
pub(crate) struct Watches {
    inotify: Inotify,
    holders: HashMap<i32, usize>,
}

impl Watches {
    /// A new instance with no watch.
    pub fn new() -> io::Result<Watches> {
        Ok(Watches { inotify: Inotify::new()?, holders: HashMap::new() })
    }

    /// Holds a watch on the directory open as `dir` (see [`Inotify::add_dir_watch`]).
    pub fn hold_dir(&mut self, dir: BorrowedFd<'_>, mask: u32) -> io::Result<i32> {
        let wd = self.inotify.add_dir_watch(dir, mask)?;
        *self.holders.entry(wd).or_default() += 1;
        Ok(wd)
    }

    /// Holds a watch on the directory at `path`, not following a symlink (one there is an
    /// error, `ENOTDIR`).
    pub fn hold_path(&mut self, path: &Path, mask: u32) -> io::Result<i32> {
        let wd = self.inotify.add_watch(path, mask | libc::IN_ONLYDIR)?;
        *self.holders.entry(wd).or_default() += 1;
        Ok(wd)
    }

    /// Releases one hold on each of `wds` (as many as were taken); a watch nobody holds
    /// any more is removed.
    pub fn release(&mut self, wds: &[i32]) {
        for wd in wds {
            let Some(holders) = self.holders.get_mut(wd) else { continue };
            *holders -= 1;
            if *holders == 0 {
                self.holders.remove(wd);
                // A watch that cannot be removed only costs a spurious event later, which
                // drops an entry: never keeps a stale one.
                self.inotify.remove_watch(*wd).ok();
            }
        }
    }

    /// Reads every queued event, without blocking.
    pub fn drain(&self) -> io::Result<Drained> {
        self.inotify.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_changed_entry_and_draining_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let inotify = Inotify::new().unwrap();
        let wd = inotify.add_watch(dir.path(), WATCH_MASK).unwrap();
        assert!(inotify.drain().unwrap().events.is_empty());
        std::fs::write(dir.path().join("x"), b"1").unwrap();
        let drained = inotify.drain().unwrap();
        assert!(!drained.overflow);
        assert!(drained.events.iter().any(|e| e.wd == wd && e.name.as_deref() == Some(b"x".as_slice())));
        assert!(inotify.drain().unwrap().events.is_empty());
    }

    #[test]
    fn a_shared_watch_lasts_until_its_last_holder_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut watches = Watches::new().unwrap();
        let first = watches.hold_path(dir.path(), ENTRIES_MASK).unwrap();
        let second = watches.hold_path(dir.path(), ENTRIES_MASK).unwrap();
        assert_eq!(first, second, "one inode, one watch descriptor");
        watches.release(&[first]);
        std::fs::write(dir.path().join("a"), b"1").unwrap();
        assert!(watches.drain().unwrap().events.iter().any(|e| e.wd == first), "still held once");
        watches.release(&[second]);
        std::fs::write(dir.path().join("b"), b"1").unwrap();
        assert!(!watches.drain().unwrap().events.iter().any(|e| e.wd == first && e.name.is_some()), "removed");
    }

    #[test]
    fn a_path_watch_refuses_a_symlink_where_a_directory_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("link")).unwrap();
        let mut watches = Watches::new().unwrap();
        let error = watches.hold_path(&dir.path().join("link"), ENTRIES_MASK).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOTDIR));
    }
}
