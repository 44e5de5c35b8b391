//! Throughput of the dmesg classifier on a large log.
//!
//! Run: `cargo bench -p kcycle --bench dmesg`
//!
//! The log is built by repeating the real logs of the shared corpus
//! (`../shared/corpus/dmesg`) and of `tests/fixtures/dmesg` until it has
//! 50,000 lines; each run classifies all of it. Prints the median of N runs.

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

    let mut findings = 0;
    let mut rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            findings = kcycle::dmesg::classify(std::hint::black_box(&log)).len();
            megabytes / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[RUNS / 2];

    println!("command: cargo bench -p kcycle --bench dmesg");
    println!(
        "input: {lines} lines, {megabytes:.2} MB, {findings} findings, from {} logs",
        sources.len()
    );
    println!(
        "classify: median {median:.1} MB/s over {RUNS} runs (min {:.1}, max {:.1})",
        rates[0],
        rates[RUNS - 1]
    );
}
