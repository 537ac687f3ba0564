//! `airlock run` (a tool from the policies) and `airlock run-wasm` (any module under an
//! ad-hoc grant): both go through `Runtime`, so both are audited.

use std::{
    collections::BTreeMap,
    io::{IsTerminal, Read, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value};

use airlock::{
    CallOutcome, CallRequest, Runtime, Status,
    policy::{Grant, Layer, Limits, Mount, PolicySet, Program},
};

use super::{AuditArg, EXIT_DENIED, EXIT_LIMIT, EXIT_NEEDS_APPROVAL, EXIT_TAMPERED, EXIT_TRAPPED, PoliciesArg};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The tool's name (a file in the policies' tools/).
    tool: String,
    /// One argument; the value is typed by the tool's input schema (a string property takes
    /// the text as is, others parse it as JSON). Repeatable; overrides --args-json.
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    args: Vec<String>,
    /// All arguments as one JSON object.
    #[arg(long, value_name = "JSON")]
    args_json: Option<String>,
    /// The workspace the call works in [default: the current directory].
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Who asks [default: $AIRLOCK_CALLER, else the caller callers.toml maps this uid to,
    /// else `uid:N`, which gets the default designation].
    #[arg(long, value_name = "NAME")]
    caller: Option<String>,
    /// A session id (budgets count per session).
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// When the call needs a human's approval, wait this long for the decision (10s, 5m)
    /// instead of exiting 75 with the pending approval's id at once.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    wait_approval: Option<std::time::Duration>,
    #[command(flatten)]
    policies: PoliciesArg,
    #[command(flatten)]
    audit: AuditArg,
    /// Print the whole outcome as JSON instead of passing the tool's output through.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // One call, then the process exits: no jail is cloned ahead.
    let runtime = Runtime::builder(args.policies.dir()).audit_path(args.audit.path()).ready_jails(0).build()?;
    let policies = runtime.policies();
    let arguments = call_arguments(&policies, &args.tool, args.args_json.as_deref(), &args.args)?;
    let workspace = match args.workspace {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory; pass --workspace")?,
    };
    let caller = args.caller.unwrap_or_else(|| default_caller(&policies));
    let mut request = CallRequest::new(caller, args.tool, workspace).arguments(arguments);
    request.session = args.session;
    if let Some(wait) = args.wait_approval {
        request = request.approval_wait(wait);
    }
    let outcome = runtime.call(request).await?;
    runtime.close().await?;
    report(&outcome, args.json)
}

/// The caller of a CLI call when none is named.
fn default_caller(policies: &PolicySet) -> String {
    if let Ok(name) = std::env::var("AIRLOCK_CALLER") {
        return name;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    policies.caller_for_uid(uid).map_or_else(|| format!("uid:{uid}"), str::to_string)
}

/// The call's arguments: `--args-json`, then each `--arg KEY=VALUE` typed by the schema.
fn call_arguments(policies: &PolicySet, tool: &str, json: Option<&str>, pairs: &[String]) -> anyhow::Result<Value> {
    let mut arguments = match json {
        Some(text) => match serde_json::from_str(text).context("--args-json is not valid JSON")? {
            Value::Object(map) => map,
            _ => bail!("--args-json must be a JSON object, like '{{\"path\": \"a.txt\"}}'"),
        },
        None => Map::new(),
    };
    let properties =
        policies.tool(tool).and_then(|t| t.input_schema().get("properties").cloned()).unwrap_or(Value::Null);
    for pair in pairs {
        let Some((key, text)) = pair.split_once('=') else {
            bail!("--arg {pair:?} is not KEY=VALUE");
        };
        let takes_string = match properties.get(key).and_then(|p| p.get("type")) {
            Some(Value::String(kind)) => kind == "string",
            _ => false,
        };
        let value = if takes_string {
            Value::String(text.to_string())
        } else {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        };
        arguments.insert(key.to_string(), value);
    }
    Ok(Value::Object(arguments))
}

#[derive(Debug, Args)]
pub struct RunWasmArgs {
    /// The module or component to run.
    module: PathBuf,
    /// Preopen HOST as GUEST, read-write (`--dir HOST` preopens it at the same path).
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Preopen HOST as GUEST, read-only.
    #[arg(long = "ro-dir", value_name = "HOST::GUEST")]
    ro_dirs: Vec<String>,
    /// Set an environment variable (nothing else is passed).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Wall-clock limit in milliseconds [default: 10000].
    #[arg(long, value_name = "MS")]
    wall_ms: Option<u64>,
    /// Fuel limit [default: 10^10].
    #[arg(long)]
    fuel: Option<u64>,
    /// Linear memory limit in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    memory_mib: Option<u64>,
    /// Bytes kept of stdout and of stderr, each [default: 1 MiB].
    #[arg(long, value_name = "BYTES")]
    output_bytes: Option<u64>,
    #[command(flatten)]
    policies: PoliciesArg,
    #[command(flatten)]
    audit: AuditArg,
    /// Print the whole outcome as JSON.
    #[arg(long)]
    json: bool,
    /// Arguments for the module (after argv[0], the module's file name).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

pub async fn run_wasm(args: RunWasmArgs) -> anyhow::Result<ExitCode> {
    // One call, then the process exits: no jail is cloned ahead.
    let runtime = Runtime::builder(args.policies.dir()).audit_path(args.audit.path()).ready_jails(0).build()?;
    let module = args.module.canonicalize().with_context(|| format!("cannot find module {}", args.module.display()))?;
    let bytes = std::fs::read(&module).with_context(|| format!("cannot read module {}", module.display()))?;
    let name = module.file_name().map_or_else(|| "module".into(), |n| n.to_string_lossy().into_owned());
    let mut grant =
        Grant::new(name, Program::Wasm { module: module.clone(), sha256: airlock::policy::sha256_hex(&bytes) });
    grant.args = args.args.clone();
    for (spec, writable) in args.dirs.iter().map(|d| (d, true)).chain(args.ro_dirs.iter().map(|d| (d, false))) {
        grant.mounts.push(mount(spec, writable)?);
    }
    grant.env = env_pairs(&args.env)?;
    grant.limits = limits(&args);
    grant.stdin = read_stdin()?;
    let recorded = serde_json::json!({
        "module": module,
        "args": args.args,
        "dirs": args.dirs,
        "ro_dirs": args.ro_dirs,
        "env": grant.env,
    });
    let outcome = runtime.run_grant(airlock::runtime::OPERATOR_CALLER, grant, recorded).await?;
    runtime.close().await?;
    report(&outcome, args.json)
}

#[derive(Debug, Args)]
pub struct RunJailArgs {
    /// Make PATH visible read-only, at its own path. Repeatable.
    #[arg(long = "ro", value_name = "PATH")]
    ro: Vec<PathBuf>,
    /// Make PATH visible read-write, at its own path. Repeatable.
    #[arg(long = "rw", value_name = "PATH")]
    rw: Vec<PathBuf>,
    /// Keep PATH read-only although it lies in an `--rw` path (like a tool's
    /// `files.protected`): it cannot be written, removed, renamed or replaced. Repeatable.
    #[arg(long = "protect", value_name = "PATH")]
    protect: Vec<PathBuf>,
    /// Set an environment variable (nothing else is passed). Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Wall-clock limit in milliseconds [default: 10000].
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Memory limit of the whole process tree, in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    memory_mib: Option<u64>,
    /// Processes alive at once [default: 64].
    #[arg(long, value_name = "N")]
    pids: Option<u64>,
    /// CPU seconds of the whole process tree [default: 10].
    #[arg(long, value_name = "SECONDS")]
    cpu_seconds: Option<u64>,
    /// Bytes kept of stdout and of stderr, each; more stops the command [default: 1 MiB].
    #[arg(long, value_name = "BYTES")]
    output_bytes: Option<u64>,
    /// The working directory inside the jail [default: the current directory when it is
    /// granted, else /].
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// A layer the host may lack without refusing the run (landlock, cgroups,
    /// cgroup-namespace, seccomp): e.g. `cgroups` as an unprivileged user without a
    /// delegated cgroup. Repeatable.
    #[arg(long = "best-effort", value_name = "LAYER")]
    best_effort: Vec<String>,
    #[command(flatten)]
    policies: PoliciesArg,
    #[command(flatten)]
    audit: AuditArg,
    /// Print the whole outcome as JSON.
    #[arg(long)]
    json: bool,
    /// The command and its arguments (the command is looked up in PATH unless absolute).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run_jail(args: RunJailArgs) -> anyhow::Result<ExitCode> {
    // One call, then the process exits: no jail is cloned ahead.
    let runtime = Runtime::builder(args.policies.dir()).audit_path(args.audit.path()).ready_jails(0).build()?;
    let Some((command, rest)) = args.command.split_first() else {
        bail!("give the command to run after `--`");
    };
    let executable = find_executable(command)?;
    let mut grant = Grant::new(command.clone(), Program::Process { executable: executable.clone(), sha256: None });
    grant.args = rest.to_vec();
    for (path, writable) in args.ro.iter().map(|p| (p, false)).chain(args.rw.iter().map(|p| (p, true))) {
        let host =
            path.canonicalize().with_context(|| format!("cannot grant {}: it does not exist", path.display()))?;
        grant.mounts.push(Mount { guest: host.to_string_lossy().into_owned(), host, writable });
    }
    for path in &args.protect {
        let host =
            path.canonicalize().with_context(|| format!("cannot protect {}: it does not exist", path.display()))?;
        if !grant.mounts.iter().any(|m| m.writable && host.starts_with(&m.host)) {
            bail!("--protect {}: it is not inside an --rw path, so it is read-only already", path.display());
        }
        grant.protected.push(Mount { guest: host.to_string_lossy().into_owned(), host, writable: false });
    }
    grant.env = env_pairs(&args.env)?;
    let defaults = Limits::default();
    grant.limits = Limits {
        wall_ms: args.timeout_ms.unwrap_or(defaults.wall_ms),
        memory_mib: args.memory_mib.unwrap_or(defaults.memory_mib),
        pids: args.pids.unwrap_or(defaults.pids),
        cpu_seconds: args.cpu_seconds.unwrap_or(defaults.cpu_seconds),
        output_bytes: args.output_bytes.unwrap_or(defaults.output_bytes),
        ..defaults
    };
    for name in &args.best_effort {
        match Layer::from_name(name) {
            Some(layer) if Layer::OPTIONAL.contains(&layer) => grant.jail.best_effort.push(layer),
            _ => bail!(
                "--best-effort {name}: not a layer that may be missing; use one of: {}",
                Layer::OPTIONAL.map(|l| l.name()).join(", ")
            ),
        }
    }
    // The default seccomp profile of the policies, like any process tool that names none.
    let policies = runtime.policies();
    let Some(profile) = policies.seccomp_profile(airlock::backend::jail::seccomp::DEFAULT_PROFILE) else {
        bail!("the policies in {} have no seccomp/default.json; run-jail needs it", policies.root().display());
    };
    grant.jail.seccomp = Some(profile.clone());
    let cwd = match &args.cwd {
        Some(cwd) => cwd.clone(),
        None => {
            let here = std::env::current_dir().ok().and_then(|d| d.canonicalize().ok());
            match here {
                Some(here) if grant.mounts.iter().any(|m| here.starts_with(&m.host)) => here,
                _ => PathBuf::from("/"),
            }
        }
    };
    grant.jail.cwd = Some(cwd.to_string_lossy().into_owned());
    grant.stdin = read_stdin()?;
    let recorded = serde_json::json!({
        "command": args.command,
        "executable": executable,
        "ro": args.ro,
        "rw": args.rw,
        "protect": args.protect,
        "env": grant.env,
        "cwd": cwd,
    });
    let outcome = runtime.run_grant(airlock::runtime::OPERATOR_CALLER, grant, recorded).await?;
    runtime.close().await?;
    report(&outcome, args.json)
}

/// `command` as an absolute path: as is when it has a `/`, else the first match in PATH.
fn find_executable(command: &str) -> anyhow::Result<PathBuf> {
    if command.contains('/') {
        return std::path::absolute(command).with_context(|| format!("cannot resolve {command}"));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(command);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("{command} is not in PATH; give its absolute path")
}

/// Caps what `run-wasm` / `run-jail` read from their own stdin for the tool, so that
/// `< /dev/zero` cannot grow airlock's memory without bound.
const MAX_STDIN_BYTES: u64 = 64 << 20;

/// The tool's stdin: ours when it is not a terminal (read whole, at most
/// [`MAX_STDIN_BYTES`]), else empty.
fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if std::io::stdin().is_terminal() {
        return Ok(bytes);
    }
    std::io::stdin().take(MAX_STDIN_BYTES + 1).read_to_end(&mut bytes).context("cannot read stdin")?;
    if bytes.len() as u64 > MAX_STDIN_BYTES {
        bail!("stdin is larger than {} MiB; give the tool a file in its workspace instead", MAX_STDIN_BYTES >> 20);
    }
    Ok(bytes)
}

fn mount(spec: &str, writable: bool) -> anyhow::Result<Mount> {
    let (host, guest) = spec.split_once("::").unwrap_or((spec, spec));
    let host =
        PathBuf::from(host).canonicalize().with_context(|| format!("cannot preopen {host}: it does not exist"))?;
    if !host.is_dir() {
        bail!("cannot preopen {}: not a directory", host.display());
    }
    Ok(Mount { host, guest: guest.to_string(), writable })
}

fn env_pairs(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => bail!("--env {pair:?} is not KEY=VALUE"),
        })
        .collect()
}

fn limits(args: &RunWasmArgs) -> Limits {
    let defaults = Limits::default();
    Limits {
        wall_ms: args.wall_ms.unwrap_or(defaults.wall_ms),
        fuel: args.fuel.unwrap_or(defaults.fuel),
        memory_mib: args.memory_mib.unwrap_or(defaults.memory_mib),
        output_bytes: args.output_bytes.unwrap_or(defaults.output_bytes),
        ..defaults
    }
}

/// Prints the outcome (the tool's own output, or JSON) and maps it to an exit code.
fn report(outcome: &CallOutcome, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
    } else {
        std::io::stdout().write_all(&outcome.stdout.bytes)?;
        std::io::stdout().flush()?;
        std::io::stderr().write_all(&outcome.stderr.bytes)?;
        for (name, stream) in [("stdout", &outcome.stdout), ("stderr", &outcome.stderr)] {
            if stream.truncated {
                eprintln!("airlock: {name} truncated: kept {} of {} bytes", stream.bytes.len(), stream.total_bytes);
            }
        }
        match &outcome.status {
            Status::Ok | Status::ToolError => {}
            Status::Denied { reason } => eprintln!("airlock: denied: {reason}"),
            Status::LimitExceeded { limit } => eprintln!("airlock: stopped: {} limit exceeded", limit.name()),
            Status::Trapped { trap } => eprintln!("airlock: the tool trapped: {trap}"),
            Status::Cancelled => eprintln!("airlock: the call was cancelled while it ran"),
            Status::Tampered { changed, ran, on_tamper } => eprintln!(
                "airlock: tampered: protected paths changed {} ({} after this): {}",
                if *ran { "during the call" } else { "since the last call; the tool did not run" },
                on_tamper.name(),
                changed.join("; ")
            ),
            Status::NeedsApproval { approval_id, expires_at } => eprintln!(
                "airlock: needs a human's approval: pending approval {approval_id} (expires {expires_at}); \
                 an admin runs `airlock approvals approve {approval_id}`, then run the same call again"
            ),
        }
    }
    Ok(ExitCode::from(exit_code(outcome)))
}

/// The exit code that mirrors an outcome (see the module header of `cli`).
pub fn exit_code(outcome: &CallOutcome) -> u8 {
    match &outcome.status {
        Status::Ok => 0,
        // Exit codes outside 1..=255 (a guest may exit with any i32) become 1.
        Status::ToolError => outcome.exit_code.and_then(|c| u8::try_from(c).ok()).filter(|c| *c != 0).unwrap_or(1),
        Status::Denied { .. } => EXIT_DENIED,
        Status::LimitExceeded { .. } => EXIT_LIMIT,
        // A process killed by signal N exits 128+N, as a shell reports it.
        Status::Trapped { .. } => match outcome.signal {
            Some(signal) => u8::try_from(128 + signal).unwrap_or(EXIT_TRAPPED),
            None => EXIT_TRAPPED,
        },
        // As a shell reports a command interrupted by SIGINT.
        Status::Cancelled => 130,
        Status::Tampered { .. } => EXIT_TAMPERED,
        Status::NeedsApproval { .. } => EXIT_NEEDS_APPROVAL,
    }
}
