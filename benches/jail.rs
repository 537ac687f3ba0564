//! Benchmark of the process jail (issue 3): what jailing `/bin/true` costs, against bare
//! `std::process::Command` and against bubblewrap, measured in the same run.
//!
//! Prints p50 and p99 of:
//! - bare spawn: `Command::new("/bin/true").env_clear().status()` (the jail, too, runs it
//!   with an empty environment);
//! - `bwrap --unshare-all` of `/bin/true` with the system directories bound read-only, a
//!   fresh /proc, /dev and /tmp (Debian's bubblewrap; installed with apt-get when missing
//!   and possible, else skipped and said so);
//! - airlock's full jail of `/bin/true` through the library (`JailBackend::run`: every
//!   namespace, the minimal root, Landlock, rlimits, a cgroup, no capabilities, the
//!   default seccomp profile, captured output);
//! - for reference, the same through `Runtime::run_grant`, which adds the audit record
//!   (`fsync = "off"`), and the jail without its seccomp layer (a profile by subtraction:
//!   the difference is what installing the default profile's filters costs per call);
//!
//! and the ratios airlock/bwrap and airlock/bare. The sides run in interleaved rounds, so
//! that load on this shared machine hits all of them alike: read medians and ratios.
//!
//! Two regimes, each with its own figures and verdicts:
//! - back to back: each call starts as the last one ended (a saturated caller). Nothing is
//!   idle to clone jails ahead, so every call clones its own: airlock's rows here use
//!   backends that keep no jails ready (with them, the first calls of each round would
//!   take the jails cloned while bwrap ran, and flatter the median);
//! - paced: a pause of [`PACE`] before every call of every side, as an agent's calls come
//!   (a model's turn lies between two tool calls). Airlock's calls then find a jail cloned
//!   ahead; the same calls on a backend that keeps none are printed beside them.
//!
//! Run: `cargo bench --bench jail` (as root, or with unprivileged user namespaces and a
//! delegated cgroup).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use airlock::{
    Runtime,
    audit::Fsync,
    backend::jail::{JailBackend, JailExit, JailReport},
    policy::{Grant, Layer, Program, SeccompGrant},
};

/// Rounds of the interleaved loop, and spawns per side in each round.
const ROUNDS: usize = 40;
const PER_ROUND: usize = 10;
const WARM_UP: usize = 20;

/// The pause before each call in the paced regime, and its rounds (of `PER_ROUND` calls per
/// side).
const PACE: Duration = Duration::from_millis(10);
const PACED_ROUNDS: usize = 20;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let bwrap = bwrap_command();
    // Back to back, every call clones its jail: no jail is cloned ahead.
    let mut jail = JailBackend::new();
    jail.set_ready_jails(0);
    let grant = true_grant()?;
    let mut no_seccomp = grant.clone();
    no_seccomp.jail.seccomp = None;
    no_seccomp.jail.best_effort.push(Layer::Seccomp);
    let pipeline = Runtime::builder(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .audit_path(temp.path().join("audit.jsonl"))
        .fsync(Fsync::Off)
        .cache_dir(Some(temp.path().join("cache")))
        .ready_jails(0)
        .build()?;
    println!(
        "airlock jail benchmark: /bin/true, after {WARM_UP} warm-up spawns\n\nback to back: {ROUNDS} interleaved \
         rounds of {PER_ROUND} spawns per side (airlock clones every jail at its call)\n"
    );

    // Every side runs /bin/true with the jail's environment: none. Inherited, cargo's
    // LD_LIBRARY_PATH (five directories) makes the dynamic loader search each of them for
    // libc first, which slowed the bare spawn by about 200 us and flattered the ratio.
    let bare = || -> anyhow::Result<()> {
        let status = Command::new("/bin/true").env_clear().status()?;
        anyhow::ensure!(status.success(), "/bin/true: {status}");
        Ok(())
    };
    let wrapped = |command: &[String]| -> anyhow::Result<()> {
        let status = Command::new(&command[0]).args(&command[1..]).env_clear().stdin(Stdio::null()).status()?;
        anyhow::ensure!(status.success(), "bwrap: {status}");
        Ok(())
    };
    for _ in 0..WARM_UP {
        bare()?;
        if let Some(command) = &bwrap {
            wrapped(command)?;
        }
        anyhow::ensure!(jail.run(&grant).await?.exit == JailExit::Code(0));
        let outcome =
            pipeline.run_grant(airlock::runtime::OPERATOR_CALLER, grant.clone(), serde_json::json!({})).await?;
        anyhow::ensure!(outcome.is_ok(), "{:?}", outcome.status);
    }

    let ran = |report: JailReport| -> anyhow::Result<()> {
        anyhow::ensure!(report.exit == JailExit::Code(0), "{:?}", report.exit);
        Ok(())
    };
    let (mut bare_times, mut bwrap_times, mut jail_times, mut pipeline_times, mut no_seccomp_times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        timed(&mut bare_times, Duration::ZERO, async || bare()).await?;
        if let Some(command) = &bwrap {
            timed(&mut bwrap_times, Duration::ZERO, async || wrapped(command)).await?;
        }
        timed(&mut jail_times, Duration::ZERO, async || ran(jail.run(&grant).await?)).await?;
        timed(&mut pipeline_times, Duration::ZERO, async || {
            let outcome =
                pipeline.run_grant(airlock::runtime::OPERATOR_CALLER, grant.clone(), serde_json::json!({})).await?;
            anyhow::ensure!(outcome.is_ok(), "{:?}", outcome.status);
            Ok(())
        })
        .await?;
        timed(&mut no_seccomp_times, Duration::ZERO, async || ran(jail.run(&no_seccomp).await?)).await?;
    }
    pipeline.close().await?;

    // Paced: the same sides, airlock's with the jails it clones ahead (and the backend
    // above, which clones every jail at the call), each call after the same pause.
    let (ready, cloning) = (JailBackend::new(), &jail);
    ran(ready.run(&grant).await?)?;
    let (mut paced_bare, mut paced_bwrap, mut paced_jail, mut paced_cloning) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PACED_ROUNDS {
        timed(&mut paced_bare, PACE, async || bare()).await?;
        if let Some(command) = &bwrap {
            timed(&mut paced_bwrap, PACE, async || wrapped(command)).await?;
        }
        timed(&mut paced_jail, PACE, async || ran(ready.run(&grant).await?)).await?;
        timed(&mut paced_cloning, PACE, async || ran(cloning.run(&grant).await?)).await?;
    }

    report(
        "back to back",
        Samples { bare: bare_times, bwrap: bwrap_times, jail: jail_times },
        vec![
            Reference {
                label: "airlock: Runtime::run_grant (jail + audit, fsync=off)",
                samples: pipeline_times,
                difference: None,
            },
            Reference {
                label: "  profile: the jail without its seccomp layer",
                samples: no_seccomp_times,
                difference: Some(("seccomp's share of the jail", -1.0)),
            },
        ],
    );
    println!(
        "\npaced: {PACED_ROUNDS} interleaved rounds of {PER_ROUND} calls per side, each after a {} ms pause\n",
        PACE.as_millis()
    );
    report(
        "paced",
        Samples { bare: paced_bare, bwrap: paced_bwrap, jail: paced_jail },
        vec![Reference {
            label: "  profile: the same, every jail cloned at its call",
            samples: paced_cloning,
            difference: Some(("what the jails cloned ahead save", 1.0)),
        }],
    );
    if let Some(command) = &bwrap {
        println!("\nbwrap command: {}", command.join(" "));
    }
    Ok(())
}

/// Runs `call` `PER_ROUND` times, each after `pause`, and adds how long each run took to
/// `times`.
async fn timed(
    times: &mut Vec<Duration>,
    pause: Duration,
    mut call: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for _ in 0..PER_ROUND {
        std::thread::sleep(pause);
        let started = Instant::now();
        call().await?;
        times.push(started.elapsed());
    }
    Ok(())
}

/// One regime's samples of the three sides (`bwrap` empty: not measured).
struct Samples {
    bare: Vec<Duration>,
    bwrap: Vec<Duration>,
    jail: Vec<Duration>,
}

/// A further row of airlock figures; with `difference`, a line says how far its p50 lies
/// from the jail's (times the sign given).
struct Reference {
    label: &'static str,
    samples: Vec<Duration>,
    difference: Option<(&'static str, f64)>,
}

/// Prints a regime's table, its ratios and the verdicts on the targets.
fn report(regime: &str, mut samples: Samples, references: Vec<Reference>) {
    println!("{:<62} {:>10} {:>10}", "", "p50", "p99");
    let bare_p50 = percentile(&mut samples.bare, 0.50);
    row("bare: Command::new(\"/bin/true\").env_clear().status()", bare_p50, percentile(&mut samples.bare, 0.99));
    let bwrap_p50 = (!samples.bwrap.is_empty()).then(|| {
        let p50 = percentile(&mut samples.bwrap, 0.50);
        row("bwrap --unshare-all ... /bin/true", p50, percentile(&mut samples.bwrap, 0.99));
        p50
    });
    let jail_p50 = percentile(&mut samples.jail, 0.50);
    row("airlock: JailBackend::run(/bin/true), every layer", jail_p50, percentile(&mut samples.jail, 0.99));
    let mut differences = Vec::new();
    for mut reference in references {
        let p50 = percentile(&mut reference.samples, 0.50);
        row(reference.label, p50, percentile(&mut reference.samples, 0.99));
        if let Some((what, sign)) = reference.difference {
            differences.push((what, sign * (p50.as_secs_f64() - jail_p50.as_secs_f64()) * 1e6));
        }
    }
    println!();
    for (what, us) in differences {
        println!("{what} (p50 difference): {us:.1} us");
    }
    let over_bare = jail_p50.as_secs_f64() / bare_p50.as_secs_f64();
    println!("airlock / bare spawn: {over_bare:.2}x");
    match bwrap_p50 {
        Some(bwrap_p50) => {
            let over_bwrap = jail_p50.as_secs_f64() / bwrap_p50.as_secs_f64();
            println!("airlock / bwrap:      {over_bwrap:.2}x");
            println!();
            verdict(&format!("airlock <= 0.7x bwrap ({regime})"), over_bwrap <= 0.7);
        }
        None => {
            println!();
            println!("target airlock <= 0.7x bwrap ({regime}): not measured (no bwrap)");
        }
    }
    verdict(&format!("airlock <= 2.5x bare spawn ({regime})"), over_bare <= 2.5);
}

/// `/bin/true` under the shipped default seccomp profile, with the default limits and no
/// files but the system's.
fn true_grant() -> anyhow::Result<Grant> {
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/seccomp/default.json");
    let sha256 = airlock::policy::sha256_hex(&std::fs::read(&profile)?);
    let mut grant = Grant::new("true", Program::Process { executable: "/bin/true".into(), sha256: None });
    grant.jail.seccomp = Some(SeccompGrant { name: "default".into(), path: profile, sha256 });
    Ok(grant)
}

/// The bubblewrap command line, or `None` (said why) when bwrap is missing and cannot be
/// installed.
fn bwrap_command() -> Option<Vec<String>> {
    if !works("bwrap") {
        println!("bwrap is missing: apt-get install -y bubblewrap");
        let installed = Command::new("apt-get")
            .args(["install", "-y", "-q", "bubblewrap"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        if !installed || !works("bwrap") {
            println!("bwrap could not be installed: the bwrap side is skipped\n");
            return None;
        }
    }
    let mut command: Vec<String> =
        ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"].map(String::from).into();
    for path in ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let Ok(meta) = std::fs::symlink_metadata(path) else { continue };
        if meta.is_symlink() {
            let target = std::fs::read_link(path).unwrap_or_else(|_| PathBuf::from(path));
            command.extend(["--symlink".into(), target.to_string_lossy().into_owned(), path.into()]);
        } else if meta.is_dir() {
            command.extend(["--ro-bind".into(), path.into(), path.into()]);
        }
    }
    command.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", "/bin/true"].map(String::from));
    let probe = Command::new(&command[0]).args(&command[1..]).output();
    match probe {
        Ok(output) if output.status.success() => Some(command),
        Ok(output) => {
            println!(
                "bwrap fails here ({}): the bwrap side is skipped\n",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            None
        }
        Err(error) => {
            println!("bwrap cannot run ({error}): the bwrap side is skipped\n");
            None
        }
    }
}

fn works(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[index]
}

fn row(name: &str, p50: Duration, p99: Duration) {
    let us = |d: Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
    println!("{name:<62} {:>10} {:>10}", us(p50), us(p99));
}

fn verdict(target: &str, met: bool) {
    println!("target {target}: {}", if met { "met" } else { "MISSED" });
}
