//! The dmesg classifier's section: its throughput on one core (in this
//! process, the thread's CPU time), the whole `kcycle dmesg --json` command,
//! and the time per line on the worst inputs we could build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::doc::{Figure, Section, Unit};
use super::{parse, progress, root, shell_line, timed, Options};

pub(super) const TITLE: &str = "dmesg classifier";
/// Bytes of the large log.
const LOG_BYTES: usize = 8_000_000;
/// Copies of a worst case's block: enough lines that the table's one-time
/// compile is a small part of the time.
const WORST_COPIES: usize = 8_000;

/// The fixtures' logs concatenated, repeated to at least `bytes`.
fn big_log(bytes: usize) -> Result<String, String> {
    let dir = root().join("orchestrator/tests/fixtures/dmesg");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("failed to read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    let mut one = String::new();
    for p in &paths {
        let bytes = std::fs::read(p).map_err(|e| format!("failed to read {}: {e}", p.display()))?;
        one.push_str(&String::from_utf8_lossy(&bytes));
        if !one.ends_with('\n') {
            one.push('\n');
        }
    }
    if one.is_empty() {
        return Err(format!("no .log files in {}", dir.display()));
    }
    Ok(one.repeat(bytes.div_ceil(one.len())))
}

/// The worst inputs: a name, the lines that open the log once, and the line
/// (or block of lines) repeated after them. Each is a way a log could make
/// the classifier do more than read it once.
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
            "lines full of report keywords, none a header",
            "",
            "INFO: WARNING: not ok # kmemleak: i915/ ".repeat(200),
        ),
        (
            "near misses of every kind of header",
            "",
            near_misses.join("\n"),
        ),
        (
            "one report that never ends",
            "[    1.000000] BUG: soft lockup - CPU#0 stuck for 22s!\n[    1.000000] Call Trace:\n",
            "[    1.000000]  f+0x1/0x2".to_string(),
        ),
    ]
}

/// CPU seconds this thread has run.
fn thread_cpu() -> Result<f64, String> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Err(format!(
            "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

/// CPU seconds of one classification of `log` on this thread.
fn classify_cpu(log: &str) -> Result<f64, String> {
    if cfg!(debug_assertions) {
        return Err("xtask was built without optimizations: run it as `cargo xtask bench` (a release build)".into());
    }
    let before = thread_cpu()?;
    std::hint::black_box(kcycle::dmesg::classify(std::hint::black_box(log)));
    Ok(thread_cpu()? - before)
}

/// A figure's samples, or why it has none.
type Samples = Result<Vec<f64>, String>;

/// `runs` samples of `sample`, or the first error.
fn sampled(runs: usize, mut sample: impl FnMut() -> Result<f64, String>) -> Samples {
    (0..runs).map(|_| sample()).collect()
}

fn outcome(figure: Figure, samples: Samples) -> Figure {
    match samples {
        Ok(samples) => figure.samples(samples),
        Err(why) => figure.not_measured(why),
    }
}

pub(super) fn section(kcycle: &Path, options: &Options, scratch: &Path) -> Section {
    let runs = options.runs.max(5);
    let in_process = |line: String| {
        Figure::new(
            "classifier-cpu",
            "`kcycle::dmesg::classify` over the dmesg fixtures concatenated, in one thread: its CPU time",
            Unit::MegabytesPerSecond,
            line,
        )
    };
    let command_figure = |line: String| {
        Figure::new(
            "classifier",
            "`kcycle dmesg --json` over the same log (process start, read, classify, JSON out): wall time",
            Unit::MegabytesPerSecond,
            line,
        )
    };
    let log = match big_log(LOG_BYTES) {
        Ok(log) => log,
        Err(e) => {
            return Section {
                title: TITLE.into(),
                figures: vec![
                    in_process(String::new()).not_measured(e.clone()),
                    command_figure(String::new()).not_measured(e),
                ],
                ..Section::default()
            }
        }
    };
    let size = format!(
        "{:.1} MB, {} lines",
        log.len() as f64 / 1e6,
        log.lines().count()
    );
    let mut figures = Vec::new();

    progress(&format!("classifier: in-process, {runs} runs"));
    // The first call compiles the rule table; it is timed in the command's
    // figure, where every process pays it.
    let warm = classify_cpu(&log);
    let samples = warm.and_then(|_| {
        sampled(runs, || {
            classify_cpu(&log).map(|cpu| log.len() as f64 / 1e6 / cpu)
        })
    });
    figures.push(outcome(
        in_process(format!(
            "kcycle::dmesg::classify(&log)  ({size}; the rule table compiled before the first run)"
        )),
        samples,
    ));

    let path = scratch.join("big-dmesg.log");
    let mut command = Command::new(kcycle);
    command
        .args(["--progress", "never", "dmesg", "--json"])
        .arg(&path);
    let line = format!("{} > /dev/null  ({size})", shell_line(&command));
    let samples = std::fs::write(&path, &log)
        .map_err(|e| format!("failed to write {}: {e}", path.display()))
        .and_then(|()| {
            let mut i = 0;
            sampled(runs, || {
                i += 1;
                progress(&format!("classifier: command run {i}/{runs}"));
                match timed(&mut command, Duration::from_secs(600)) {
                    // Exit 1 is "found something", as grep's.
                    Ok((t, out)) if matches!(out.status.code(), Some(0 | 1)) => {
                        Ok(log.len() as f64 / 1e6 / t)
                    }
                    Ok((_, out)) => Err(format!(
                        "exited {}: {}",
                        out.status,
                        parse::tail(&out.stderr, 3)
                    )),
                    Err(e) => Err(e),
                }
            })
        });
    figures.push(outcome(command_figure(line), samples));

    for (i, (name, head, block)) in worst_cases().into_iter().enumerate() {
        progress(&format!("classifier: worst case `{name}`"));
        let input = format!("{head}{}", format!("{block}\n").repeat(WORST_COPIES));
        let lines = input.lines().count();
        let samples = sampled(runs, || {
            classify_cpu(&input).map(|cpu| cpu / lines as f64 * 1e6)
        });
        figures.push(outcome(
            Figure::new(
                &format!("worst-{}", i + 1),
                &format!("worst case: {name}, time per line (CPU)"),
                Unit::Micros,
                format!(
                    "kcycle::dmesg::classify(&input)  ({lines} lines, {:.1} MB)",
                    input.len() as f64 / 1e6
                ),
            ),
            samples,
        ));
    }

    Section {
        title: TITLE.into(),
        figures,
        ratios: Vec::new(),
        notes: vec![
            "Target (issue 15): at least 200 MB/s on one core: `classifier-cpu`, the classifier's own work \
             (the classifier is single-threaded; CPU time, so another process on the machine does not count). \
             The command's figure adds what every `kcycle dmesg` pays: process start, compiling the rule table, \
             reading the file, writing the JSON; it is wall time."
                .into(),
            "The worst cases are built in `xtask/src/bench/classifier.rs`. That the classifier's work grows \
             linearly with any input is a test (`orchestrator/tests/dmesg_properties.rs` counts the work); \
             these figures are what a line of each costs."
                .into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_big_log_is_the_fixtures_repeated() {
        let log = big_log(1_000_000).unwrap();
        assert!(log.len() >= 1_000_000);
        assert!(log.contains("WARNING") || log.contains("BUG"));
    }

    #[test]
    fn the_worst_cases_are_not_findings_but_the_endless_report() {
        // A worst case is work without findings; only the endless report
        // is one report however long it runs.
        for (name, head, block) in worst_cases() {
            let input = format!("{head}{}", format!("{block}\n").repeat(50));
            let findings = kcycle::dmesg::classify(&input);
            let expected = usize::from(!head.is_empty());
            assert_eq!(findings.len(), expected, "{name}: {findings:?}");
        }
    }
}
