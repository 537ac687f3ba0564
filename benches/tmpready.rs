use std::time::{Duration, Instant};
use airlock::{backend::jail::{JailBackend, JailExit}, policy::{Grant, Program, Layer}};
fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let n: usize = std::env::var("READY").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let gap: u64 = std::env::var("GAP_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut jail = JailBackend::new();
    jail.set_ready_jails(n);
    let mut grant = Grant::new("t", Program::Process { executable: "/bin/true".into(), sha256: None });
    grant.jail.best_effort.push(Layer::Seccomp);
    let mut times = vec![];
    let mut parts: Vec<[i64;5]> = vec![];
    for i in 0..400 {
        if gap > 0 { std::thread::sleep(Duration::from_millis(gap)); }
        let t = Instant::now();
        let r = rt.block_on(jail.run(&grant)).unwrap();
        let e = t.elapsed();
        assert_eq!(r.exit, JailExit::Code(0));
        let ts: Vec<i64> = airlock::backend::jail::TMP_TS.iter().map(|a| a.load(std::sync::atomic::Ordering::Relaxed) as i64).collect();
        if i >= 50 { times.push(e); parts.push([ts[1]-ts[0], ts[2]-ts[0], ts[3]-ts[2], ts[4]-ts[3], ts[5]-ts[4]]); }
    }
    times.sort();
    for k in 0..5 { let mut v: Vec<i64> = parts.iter().map(|p| p[k]).collect(); v.sort(); print!("part{k} {}us  ", v[v.len()/2]/1000); }
    println!("  (0: hand-over returns, 1: child has call, 2: groups/cgns, 3: mounts..seccomp, 4: exec..reaped)");
    println!("hits {} misses {}", airlock::backend::jail::TMP_HITS.load(std::sync::atomic::Ordering::Relaxed), airlock::backend::jail::TMP_MISSES.load(std::sync::atomic::Ordering::Relaxed));
    println!("ready={n} gap={gap}ms p50 {:?} p10 {:?} p90 {:?}", times[times.len()/2], times[times.len()/10], times[times.len()*9/10]);
}
