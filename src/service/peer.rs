//! Who is on the other end: the kernel's word for a socket peer (`SO_PEERCRED`), and how
//! that becomes a caller of `policies/callers.toml`.
//!
//! Owns: [`Identity`] and its mapping to a [`Caller`].
//! Must not: take an identity from anything the client sends. The socket's credentials
//! are read once, by the kernel, when the connection is accepted; a `caller` a client puts
//! in its params is never read.

use tokio::net::UnixStream;

use crate::policy::{Caller, PolicySet};

/// The credentials of a socket peer, as the kernel recorded them at `connect(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub uid: u32,
    pub gid: u32,
    /// The peer's pid (absent when the kernel cannot name it, e.g. across pid namespaces).
    pub pid: Option<i32>,
}

impl PeerCred {
    /// The peer of an accepted connection (`SO_PEERCRED`).
    pub fn of(stream: &UnixStream) -> std::io::Result<PeerCred> {
        let cred = stream.peer_cred()?;
        Ok(PeerCred { uid: cred.uid(), gid: cred.gid(), pid: cred.pid() })
    }

    /// This process's own credentials (for `airlock mcp` in process).
    pub fn own() -> PeerCred {
        // SAFETY: getuid, getgid and getpid have no preconditions and cannot fail.
        let (uid, gid, pid) = unsafe { (libc::getuid(), libc::getgid(), libc::getpid()) };
        PeerCred { uid, gid, pid: Some(pid) }
    }
}

/// Who a connection's calls come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A peer known by its credentials: the caller is whoever callers.toml maps its uid to
    /// (`uids = [...]`), else `uid:N` under the default designation. Looked up again for
    /// every request, so a reloaded callers.toml applies to open connections too.
    Peer(PeerCred),
    /// A caller named by whoever started this process (`airlock mcp --caller NAME`): the
    /// operator, not the client.
    Named(String),
}

impl Identity {
    /// The caller's name under `policies`.
    pub fn caller_name(&self, policies: &PolicySet) -> String {
        match self {
            Identity::Peer(peer) => {
                policies.caller_for_uid(peer.uid).map_or_else(|| format!("uid:{}", peer.uid), str::to_string)
            }
            Identity::Named(name) => name.clone(),
        }
    }

    /// The resolved caller, or why it is refused (unlisted and no default designation).
    pub fn caller(&self, policies: &PolicySet) -> Result<Caller, String> {
        let name = self.caller_name(policies);
        policies.resolve_caller(&name).ok_or_else(|| match self {
            Identity::Peer(peer) => format!(
                "uid {} is not mapped to a caller in callers.toml and there is no `default` designation, so it \
                 is refused; add it to a caller's `uids`",
                peer.uid
            ),
            Identity::Named(name) => format!(
                "caller {name:?} is not listed in callers.toml and there is no `default` designation, so it is refused"
            ),
        })
    }
}
