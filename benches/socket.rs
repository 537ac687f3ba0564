//! Benchmark of the socket service (issue 4): what a tool call costs through `airlock
//! serve` over its Unix socket, against the same `Runtime::call` in process, in one run.
//!
//! Prints, for a trivial guest tool (a WASI module whose `_start` returns at once), both
//! with `fsync = "off"` so that the disk does not hide the difference:
//! - `Runtime::call` in this process (p50, p99);
//! - `tools/call` to an `airlock serve` process on a Unix socket, one connection, one call
//!   at a time (p50, p99): JSON-RPC framing, peer identity, dispatch, the same pipeline;
//! - the socket's overhead (the difference of the medians) against the target, 150 us;
//! - for scale, `ping` round trips (no pipeline at all) and 64 connections calling at once.
//!
//! Run: `cargo bench --bench socket`. The machine is shared and noisy: read medians and
//! ratios, not single times.

#[path = "common/mod.rs"]
mod common;

use common::{BENCH_DESIGNATION, NOOP_WAT, percentile, row, verdict};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use airlock::{CallRequest, Runtime, service::client::AsyncClient};
use serde_json::json;

const WARMUP: usize = 300;
const CALLS: usize = 5_000;
const PINGS: usize = 5_000;
const CONNECTIONS: usize = 64;
const CONCURRENT_CALLS: usize = 20_000;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let setup = Setup::new(temp.path())?;
    println!("airlock socket benchmark ({CALLS} sequential calls of a trivial tool, fsync=off)\n");

    // 1. In process.
    let runtime = Runtime::builder(&setup.policies)
        .audit_path(temp.path().join("audit-inproc.jsonl"))
        .cache_dir(Some(temp.path().join("cache")))
        .approvals_dir(temp.path().join("approvals"))
        .build()?;
    let request = || CallRequest::new("agent", "noop", &setup.workspace);
    for _ in 0..WARMUP {
        anyhow::ensure!(runtime.call(request()).await?.is_ok());
    }
    let mut in_process = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        let outcome = runtime.call(request()).await?;
        in_process.push(started.elapsed());
        anyhow::ensure!(outcome.is_ok(), "{:?}", outcome.status);
    }
    runtime.close().await?;

    // 2. Through `airlock serve`.
    let service = Service::start(&setup, temp.path())?;
    let mut client = AsyncClient::connect(&service.socket).await?;
    client.initialize(serde_json::Value::Null).await?;
    let params = json!({ "name": "noop", "arguments": {} });
    for _ in 0..WARMUP {
        let result = client.call("tools/call", params.clone()).await?;
        anyhow::ensure!(result["isError"] == false, "{result}");
    }
    let mut socket = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        let result = client.call("tools/call", params.clone()).await?;
        socket.push(started.elapsed());
        anyhow::ensure!(result["isError"] == false, "{result}");
    }
    let mut pings = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let started = Instant::now();
        client.call("ping", json!({})).await?;
        pings.push(started.elapsed());
    }

    // 3. Many connections at once.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let path = service.socket.clone();
        let params = params.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = AsyncClient::connect(&path).await?;
            for _ in 0..CONCURRENT_CALLS / CONNECTIONS {
                let result = client.call("tools/call", params.clone()).await?;
                anyhow::ensure!(result["isError"] == false, "{result}");
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let throughput = (CONCURRENT_CALLS / CONNECTIONS * CONNECTIONS) as f64 / started.elapsed().as_secs_f64();
    drop(service);

    let (in_p50, in_p99) = (percentile(&mut in_process, 0.50), percentile(&mut in_process, 0.99));
    let (sock_p50, sock_p99) = (percentile(&mut socket, 0.50), percentile(&mut socket, 0.99));
    let overhead = sock_p50.saturating_sub(in_p50);
    println!("{:<62} {:>10} {:>10}", "", "p50", "p99");
    row("Runtime::call in process, trivial tool", in_p50, Some(in_p99));
    row("tools/call over the socket (airlock serve), trivial tool", sock_p50, Some(sock_p99));
    row("ping over the socket (no pipeline)", percentile(&mut pings, 0.50), Some(percentile(&mut pings, 0.99)));
    println!();
    println!("socket overhead (p50 socket - p50 in process): {:.1} us", overhead.as_secs_f64() * 1e6);
    println!("{CONNECTIONS} connections calling at once: {throughput:.0} calls/s");
    println!();
    verdict("socket overhead <= 150 us p50", overhead <= Duration::from_micros(150));
    Ok(())
}

/// A policy directory with the shipped designations plus `bench`, this uid mapped to
/// `agent` (designation `bench`), audit.toml with fsync off, a `noop` tool, and a workspace.
struct Setup {
    policies: PathBuf,
    workspace: PathBuf,
}

impl Setup {
    fn new(root: &Path) -> anyhow::Result<Setup> {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let policies = root.join("policies");
        std::fs::create_dir_all(policies.join("tools"))?;
        let designations = std::fs::read_to_string(shipped.join("designations.toml"))? + BENCH_DESIGNATION;
        std::fs::write(policies.join("designations.toml"), designations)?;
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        std::fs::write(
            policies.join("callers.toml"),
            format!("[callers.agent]\ndesignation = \"bench\"\nuids = [{uid}]\n"),
        )?;
        std::fs::write(policies.join("audit.toml"), "fsync = \"off\"\n")?;
        let module = wat::parse_str(NOOP_WAT)?;
        std::fs::write(root.join("noop.wasm"), &module)?;
        std::fs::write(
            policies.join("tools/noop.toml"),
            format!(
                "name = \"noop\"\n\
                 description = \"Does nothing: the benchmark's trivial guest tool.\"\n\
                 justification = \"No files, no env, no network: it only measures the call path.\"\n\
                 categories = [\"read\"]\n\
                 [backend]\nwasm = \"../noop.wasm\"\nsha256 = \"{}\"\n\
                 [input]\ntype = \"object\"\nadditionalProperties = false\n",
                airlock::policy::sha256_hex(&module)
            ),
        )?;
        let workspace = root.join("workspace");
        std::fs::create_dir_all(&workspace)?;
        Ok(Setup { policies, workspace })
    }
}

/// A running `airlock serve`, stopped (SIGTERM) when dropped.
struct Service {
    child: Child,
    socket: PathBuf,
}

impl Service {
    fn start(setup: &Setup, root: &Path) -> anyhow::Result<Service> {
        let socket = root.join("airlock.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--policies")
            .arg(&setup.policies)
            .arg("--audit")
            .arg(root.join("audit-socket.jsonl"))
            .arg("--workspace")
            .arg(&setup.workspace)
            .args(["--max-concurrent-per-caller", "64"])
            .env("XDG_CACHE_HOME", root.join("cache-service"))
            .env("XDG_STATE_HOME", root.join("state"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "airlock serve did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Service { child, socket })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
