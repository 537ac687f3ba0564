//! The WASI context of one call, built from the grant and nothing else.
//!
//! argv is the tool's name then the granted args; the environment is exactly the granted
//! env (nothing inherited from the host); stdin is the granted bytes; stdout and stderr go
//! to [`CappedOutput`] buffers; the preopens are the granted mounts, read-only or
//! read-write, split around the grant's protected paths so that none is writable (opened,
//! or taken from the cache, by [`super::preopen`]); sockets exist only when the grant
//! lists addresses, and then reach only those. This module must not read the host's environment, args or stdio.

use std::{collections::HashSet, net::SocketAddr, os::fd::AsRawFd, sync::Arc};

use wasmtime_wasi::{FsPerms, WasiCtxBuilder, p1::WasiP1Ctx, p2::pipe::MemoryInputPipe, sockets::SocketAddrUse};

use super::{WasmError, output::CappedOutput, preopen::PreopenCache};
use crate::policy::Grant;

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
pub async fn build(grant: &Grant, cache: &PreopenCache) -> Result<CallWasi, WasmError> {
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

    for preopen in cache.preopens(grant)?.iter() {
        let perms = if preopen.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        // wasmtime-wasi opens a path: the very directory opened by the plan (inside the
        // workspace one component at a time, following no symlink) is named by its
        // descriptor.
        let host = format!("/proc/self/fd/{}", preopen.dir.as_raw_fd());
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
