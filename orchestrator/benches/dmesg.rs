//! Throughput of the dmesg classifier on a large log, and its cost on the
//! worst inputs we could build.
//!
//! Run: `cargo bench -p kcycle --bench dmesg` (`-- --main`: the main log only)
//!
//! The main log is built by repeating the real logs of the shared corpus
//! (`../shared/corpus/dmesg`) and of `tests/fixtures/dmesg` until it has
//! 50,000 lines; each run classifies all of it. Prints the median of N runs
//! in MB/s of wall time and of the thread's CPU time (the machine may be
//! shared: CPU time is what one core spent). The worst cases are synthetic:
//! lines at the length limit, lines full of report keywords that are not
//! reports, near misses of every header, and one report that never ends;
//! for each the time per line is printed at two sizes, so that a cost that
//! grows faster than the input shows.

use std::path::Path;
use std::time::Instant;

const TARGET_LINES: usize = 50_000;
const RUNS: usize = 15;

fn logs_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// CPU time of this thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Wall and CPU seconds of one classification of `log`, and its findings.
fn time_one(log: &str) -> (f64, f64, usize) {
    let wall = Instant::now();
    let cpu = thread_cpu();
    let findings = kcycle::dmesg::classify(std::hint::black_box(log)).len();
    (wall.elapsed().as_secs_f64(), thread_cpu() - cpu, findings)
}

/// Median wall and CPU seconds over `runs` runs.
fn median(log: &str, runs: usize) -> (f64, f64, usize) {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut findings = 0;
    for _ in 0..runs {
        let (wall, cpu, f) = time_one(log);
        walls.push(wall);
        cpus.push(cpu);
        findings = f;
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    (walls[runs / 2], cpus[runs / 2], findings)
}

/// The worst inputs: a name, the lines that open it once, and the block
/// of lines repeated after them.
fn worst_cases() -> Vec<(&'static str, &'static str, String)> {
    let near_misses = [
        "[   12.345678] WARNINGS: CPU: 0 PID: 1 at nothing",
        "[   12.345678] INFO: task list ready",
        "[   12.345678] kmem_cache_destroy of nothing",
        "[   12.345678] debugfs: nothing to see",
        "[   12.345678] sysfs: cannot create file",
        "[   12.345678] not okay 1",
        "[   12.345678] Kernel panic handler registered",
        "[   12.345678] general protection faults: 0",
        "[   12.345678] XBUG: KASAN: not one",
        "[   12.345678][  T123] [<ffffffff81000000>] something+0x1/0x2",
        "Jun  2 06:00:57 host kernel: [   12.345678] usb 1-1: new device",
        "4,1234,5678901,-;rcu: nothing stalled",
    ];
    vec![
        ("lines of 8000 bytes", "", "x".repeat(8_000)),
        (
            "lines full of keywords",
            "",
            "INFO: WARNING: not ok # kmemleak: i915/ ".repeat(200),
        ),
        ("near misses of headers", "", near_misses.join("\n")),
        (
            "one endless report",
            "[    1.000000] BUG: soft lockup - CPU#0 stuck for 22s!\n[    1.000000] Call Trace:\n",
            "[    1.000000]  f+0x1/0x2".to_string(),
        ),
    ]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root
        .ancestors()
        .map(|a| a.join("shared/corpus/dmesg"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| root.join("../../shared/corpus/dmesg"));
    let mut sources = logs_in(&corpus);
    sources.extend(logs_in(&root.join("tests/fixtures/dmesg")));
    assert!(
        !sources.is_empty(),
        "no logs found to build the benchmark input"
    );

    let mut log = String::new();
    let mut lines = 0;
    'fill: loop {
        for source in &sources {
            log.push_str(source);
            if !log.ends_with('\n') {
                log.push('\n');
            }
            lines += source.lines().count();
            if lines >= TARGET_LINES {
                break 'fill;
            }
        }
    }
    let megabytes = log.len() as f64 / 1e6;

    let (wall, cpu, findings) = median(&log, RUNS);
    println!("command: cargo bench -p kcycle --bench dmesg");
    println!(
        "input: {lines} lines, {megabytes:.2} MB, {findings} findings, from {} logs",
        sources.len()
    );
    println!(
        "classify: median {:.1} MB/s of CPU time on one core ({:.1} MB/s of wall time) over {RUNS} runs",
        megabytes / cpu,
        megabytes / wall
    );

    // `-- --main` skips the worst cases (for a profiler's view of the main log).
    if std::env::args().any(|a| a == "--main") {
        return;
    }
    for (name, head, block) in worst_cases() {
        let mut costs = Vec::new();
        for copies in [2_000usize, 8_000] {
            let input = format!("{head}{}", format!("{block}\n").repeat(copies));
            let n = input.lines().count();
            let (_, cpu, _) = median(&input, 5);
            costs.push((n, cpu, input.len()));
        }
        let per_line: Vec<String> = costs
            .iter()
            .map(|(n, cpu, bytes)| {
                format!(
                    "{n} lines: {:.2} us/line, {:.1} MB/s",
                    cpu / *n as f64 * 1e6,
                    *bytes as f64 / 1e6 / cpu
                )
            })
            .collect();
        println!("worst case, {name}: {}", per_line.join("; "));
    }
}
