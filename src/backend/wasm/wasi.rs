//! The WASI context of one call, built from the grant and nothing else.
//!
//! argv is the tool's name then the granted args; the environment is exactly the granted
//! env (nothing inherited from the host); stdin is the granted bytes; stdout and stderr go
//! to [`CappedOutput`] buffers; the preopens are the granted mounts, read-only or
//! read-write, split around the grant's protected paths so that none is writable
//! ([`preopens`]); sockets exist only when the grant lists addresses, and then reach only
//! those. This module must not read the host's environment, args or stdio.

use std::{
    collections::HashSet,
    ffi::CString,
    net::SocketAddr,
    os::{
        fd::{FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Component, Path, PathBuf},
    sync::Arc,
};

use wasmtime_wasi::{FsPerms, WasiCtxBuilder, p1::WasiP1Ctx, p2::pipe::MemoryInputPipe, sockets::SocketAddrUse};

use super::{WasmError, output::CappedOutput};
use crate::policy::{Grant, Mount};

/// The WASI context of one call and the two capture buffers the guest writes into.
pub struct CallWasi {
    /// The context, ready to go into the store.
    pub ctx: WasiP1Ctx,
    /// Captured stdout.
    pub stdout: CappedOutput,
    /// Captured stderr.
    pub stderr: CappedOutput,
}

/// Builds the WASI context of a call from `grant`.
///
/// Fails (the call is denied) when a mount's host path is missing or not a directory, or
/// when a network entry cannot be parsed or resolved.
pub async fn build(grant: &Grant) -> Result<CallWasi, WasmError> {
    let mut builder = WasiCtxBuilder::new();
    builder.arg(&grant.tool);
    for arg in &grant.args {
        builder.arg(arg);
    }
    for (name, value) in &grant.env {
        builder.env(name, value);
    }
    builder.stdin(MemoryInputPipe::new(grant.stdin.clone()));
    let stdout = CappedOutput::new(grant.limits.output_bytes);
    let stderr = CappedOutput::new(grant.limits.output_bytes);
    builder.stdout(stdout.clone());
    builder.stderr(stderr.clone());

    for preopen in preopens(grant)? {
        let perms = if preopen.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        // Inside the workspace, a concurrent call (a jailed tool with a write grant) could
        // have swapped a checked directory for a symlink since the grant was resolved: such
        // a preopen is opened one component at a time without following symlinks, and
        // wasmtime-wasi reopens that very directory through its descriptor.
        let beneath = match &grant.workspace {
            Some(workspace) if preopen.host.starts_with(workspace) => Some(
                open_beneath(workspace, &preopen.host)
                    .map_err(|source| WasmError::OpenMount { host: preopen.host.clone(), source })?,
            ),
            _ => None,
        };
        let host = match &beneath {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd))),
            None => preopen.host.clone(),
        };
        builder.preopened_dir(&host, &preopen.guest, perms).map_err(|e| WasmError::OpenMount {
            host: preopen.host.clone(),
            source: std::io::Error::other(format!("{e:#}")),
        })?;
    }

    // Deny by default: no TCP, no UDP, no name lookup. With a network grant, TCP and UDP
    // are enabled but every address is checked against the resolved allowlist; name
    // lookup stays off (a resolver is a side channel), so granted host names are resolved
    // here, by the host, at the start of the call.
    builder.allow_ip_name_lookup(false);
    if grant.network.is_empty() {
        builder.allow_tcp(false).allow_udp(false);
    } else {
        let allowed = Arc::new(resolve_network(&grant.network).await?);
        builder.allow_tcp(true).allow_udp(true);
        builder.socket_addr_check(move |addr, use_| {
            let ok = socket_use_allowed(&allowed, addr, use_);
            Box::pin(async move { ok })
        });
    }

    Ok(CallWasi { ctx: builder.build_p1(), stdout, stderr })
}

/// The preopens of a call: the grant's mounts, with every writable one that holds a
/// protected path split so that no writable preopen contains it.
///
/// A WASI preopen is one directory handle with one set of permissions for everything
/// beneath it (a guest may open any path below it, whatever its libc does), so a writable
/// workspace cannot have a read-only hole. Instead, a writable mount that is, or lies
/// inside, a protected path is read-only; one that contains a protected path becomes a
/// read-only preopen of itself plus, for each subdirectory, the same split again: the
/// protected trees and the directories on the way to them are read-only, every other
/// subdirectory is writable. The cost: files directly in a directory on the way to a
/// protected path (the workspace root, when `tests` is protected) are read-only to wasm
/// tools, and no entry can be created there.
pub fn preopens(grant: &Grant) -> Result<Vec<Mount>, WasmError> {
    let mut out = Vec::new();
    for mount in &grant.mounts {
        let metadata = std::fs::metadata(&mount.host)
            .map_err(|source| WasmError::OpenMount { host: mount.host.clone(), source })?;
        if !metadata.is_dir() {
            return Err(WasmError::MountNotDirectory { host: mount.host.clone() });
        }
        if !mount.writable {
            out.push(mount.clone());
            continue;
        }
        split(&mount.host, &mount.guest, &grant.protected, &mut out)?;
    }
    Ok(out)
}

/// Preopens writable directory `host` (seen as `guest`), read-only where `protected`
/// requires: see [`preopens`].
fn split(host: &Path, guest: &str, protected: &[Mount], out: &mut Vec<Mount>) -> Result<(), WasmError> {
    let covered = protected.iter().any(|p| host.starts_with(&p.host));
    let holds = protected.iter().any(|p| p.host.starts_with(host));
    if covered || !holds {
        out.push(Mount { host: host.to_path_buf(), guest: guest.to_string(), writable: !covered });
        return Ok(());
    }
    out.push(Mount { host: host.to_path_buf(), guest: guest.to_string(), writable: false });
    let entries =
        std::fs::read_dir(host).map_err(|source| WasmError::OpenMount { host: host.to_path_buf(), source })?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| WasmError::OpenMount { host: host.to_path_buf(), source })?;
        // Only real directories: a symlink stays reachable through the read-only parent.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            children.push(entry.file_name());
        }
    }
    children.sort();
    for name in children {
        let name = name.to_string_lossy().into_owned();
        let child_guest = if guest == "." { name.clone() } else { format!("{}/{name}", guest.trim_end_matches('/')) };
        split(&host.join(&name), &child_guest, protected, out)?;
    }
    Ok(())
}

/// Opens directory `host`, which lies inside `workspace`, from `workspace` one component at
/// a time, following no symlink below `workspace` (`ELOOP` or `ENOTDIR` if one is there).
fn open_beneath(workspace: &Path, host: &Path) -> std::io::Result<OwnedFd> {
    let relative = host.strip_prefix(workspace).map_err(std::io::Error::other)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    let open_at = |dir: libc::c_int, name: &[u8]| -> std::io::Result<OwnedFd> {
        let name = CString::new(name).map_err(std::io::Error::other)?;
        // SAFETY: `name` is a valid C string; `dir` is AT_FDCWD or a descriptor we own.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), flags) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: openat just returned this descriptor, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let mut dir = open_at(libc::AT_FDCWD, workspace.as_os_str().as_bytes())?;
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(std::io::Error::other(format!("{} is not a plain path below the workspace", host.display())));
        };
        dir = open_at(std::os::fd::AsRawFd::as_raw_fd(&dir), name.as_bytes())?;
    }
    Ok(dir)
}

/// Resolves granted `host:port` entries to socket addresses.
async fn resolve_network(entries: &[String]) -> Result<HashSet<SocketAddr>, WasmError> {
    let mut allowed = HashSet::new();
    for entry in entries {
        let addrs = tokio::net::lookup_host(entry.as_str())
            .await
            .map_err(|source| WasmError::ResolveNetwork { entry: entry.clone(), source })?;
        allowed.extend(addrs);
    }
    Ok(allowed)
}

/// Whether a guest may use `addr` for `use_` under the allowlist: connect and send only to
/// allowed addresses, receive only from them, implicit wildcard binds (port 0) only, and
/// never listen or accept.
pub fn socket_use_allowed(allowed: &HashSet<SocketAddr>, addr: SocketAddr, use_: SocketAddrUse) -> bool {
    match use_ {
        SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => allowed.contains(&addr),
        SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => addr.ip().is_unspecified() && addr.port() == 0,
        SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_beneath_follows_no_symlink_below_the_workspace() {
        let temp = tempfile::tempdir().unwrap();
        let ws = temp.path().canonicalize().unwrap();
        std::fs::create_dir_all(ws.join("src/deep")).unwrap();
        std::fs::create_dir_all(ws.join("real")).unwrap();
        std::os::unix::fs::symlink("/", ws.join("swapped")).unwrap();
        std::os::unix::fs::symlink(ws.join("real"), ws.join("inside")).unwrap();
        assert!(open_beneath(&ws, &ws.join("src/deep")).is_ok(), "a real directory opens");
        assert!(open_beneath(&ws, &ws).is_ok(), "the workspace itself opens");
        for link in ["swapped", "inside"] {
            let error = open_beneath(&ws, &ws.join(link)).unwrap_err();
            assert!(matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)), "{link}: {error}");
        }
        std::fs::create_dir_all(ws.join("real/sub")).unwrap();
        let error = open_beneath(&ws, &ws.join("inside/sub")).unwrap_err();
        assert!(matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)), "a symlinked step: {error}");
    }

    #[test]
    fn only_granted_addresses_are_reachable() {
        let allowed: HashSet<SocketAddr> = ["127.0.0.1:8080".parse().unwrap()].into();
        let granted = "127.0.0.1:8080".parse().unwrap();
        let other = "127.0.0.1:8081".parse().unwrap();
        assert!(socket_use_allowed(&allowed, granted, SocketAddrUse::TcpConnect));
        assert!(!socket_use_allowed(&allowed, other, SocketAddrUse::TcpConnect));
        assert!(!socket_use_allowed(&allowed, other, SocketAddrUse::UdpSend));
        assert!(socket_use_allowed(&allowed, "0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind));
        assert!(!socket_use_allowed(&allowed, "0.0.0.0:80".parse().unwrap(), SocketAddrUse::TcpBind));
        assert!(!socket_use_allowed(&allowed, granted, SocketAddrUse::TcpListen));
        assert!(!socket_use_allowed(&allowed, granted, SocketAddrUse::TcpAccept));
    }
}
