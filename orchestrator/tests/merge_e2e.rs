//! Shard and merge on the real thing: `kcycle run --shard I/2` of tests of
//! the smoke and rust-table suites in real QEMU guests (TCG), `kcycle merge` of the two
//! results directories, compared with an unsharded `kcycle run` of the same
//! suites. Finds the kernel through `KCYCLE_KERNEL` (an artifact directory
//! from `kcycle kernel build`); without it the test fails when `CI` is set
//! and prints a skip notice otherwise.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use kcycle::outcome::{exit_status, RunInfo, TestResult};
use kcycle::report::igt_json;

const SUITES: [&str; 2] = ["suites/smoke.toml", "suites/rust-table.toml"];
/// Eight tests of both suites: passes, controls (flagged, so passing) and
/// subtests, enough that each shard gets several; the whole of rust-table
/// runs in run_e2e, and three runs of it here cost CI three minutes.
const FILTER: &str = "kcycle@{smoke@*,rust-table@fail-at-*,rust-table@control-leak-objects}";

/// The kernel artifact directory (see tests/support).
fn kernel() -> Option<PathBuf> {
    support::kernel().map(|artifacts| artifacts.dir)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kcycle run` of SUITES into `results`, optionally one shard of them.
fn run(kernel: &Path, results: &Path, shard: Option<&str>) -> Output {
    let mut command = Command::cargo_bin("kcycle").unwrap();
    command
        .current_dir(workspace())
        .args([
            "run",
            "--no-retry",
            "--progress",
            "never",
            "--accel",
            "tcg",
            "--kernel",
        ])
        .arg(kernel)
        .arg("--results")
        .arg(results)
        .args(["--filter", FILTER])
        .args(SUITES);
    if let Some(shard) = shard {
        command.args(["--shard", shard]);
    }
    command.timeout(std::time::Duration::from_secs(1800));
    command.output().unwrap()
}

fn read(dir: &Path) -> (RunInfo, Vec<TestResult>) {
    igt_json::parse(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

/// What must be the same between two runs of the same tests: each test's
/// status and the kinds and titles of its findings (timings and logs differ).
fn verdicts(results: &[TestResult]) -> BTreeMap<String, (String, Vec<(String, String)>)> {
    results
        .iter()
        .map(|r| {
            let findings = r
                .findings
                .iter()
                .map(|f| (f.kind.to_string(), f.title.clone()))
                .collect();
            (r.name.clone(), (r.status.to_string(), findings))
        })
        .collect()
}

#[test]
fn shards_of_a_real_run_merge_into_the_unsharded_run() {
    let Some(kernel) = kernel() else { return };
    let tmp = tempfile::tempdir().unwrap();

    let whole = tmp.path().join("whole");
    let unsharded = run(&kernel, &whole, None);
    assert_eq!(
        unsharded.status.code(),
        Some(exit_status(&read(&whole).1).code()),
        "{unsharded:?}"
    );
    let mut shards = Vec::new();
    for shard in ["1/2", "2/2"] {
        let dir = tmp.path().join(format!("results-{}", &shard[..1]));
        let output = run(&kernel, &dir, Some(shard));
        let (info, results) = read(&dir);
        assert_eq!(
            output.status.code(),
            Some(exit_status(&results).code()),
            "shard {shard} exits by its own results: {output:?}"
        );
        assert_eq!(info.shard.as_deref(), Some(shard));
        assert!(!results.is_empty(), "shard {shard} ran nothing");
        shards.push(dir);
    }

    let merged = tmp.path().join("merged");
    let output = Command::cargo_bin("kcycle")
        .unwrap()
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    let not_passed: Vec<String> = read(&whole)
        .1
        .iter()
        .filter(|r| r.status.to_string() != "pass")
        .map(|r| format!("{}: {} {:?}", r.name, r.status, r.findings))
        .collect();
    assert_eq!(
        output.status.code(),
        unsharded.status.code(),
        "merge exits like the unsharded run: {output:?}\nthe unsharded run's tests that did not pass: \
         {not_passed:#?}\nits stderr:\n{}",
        String::from_utf8_lossy(&unsharded.stderr)
    );

    let (whole_info, whole_results) = read(&whole);
    let (merged_info, merged_results) = read(&merged);
    assert_eq!(verdicts(&merged_results), verdicts(&whole_results));
    assert_eq!(merged_info.shard, None);
    assert_eq!(merged_info.kernel_release, whole_info.kernel_release);
    assert_eq!(merged_info.accel, whole_info.accel);
    for file in ["junit.xml", "summary.md"] {
        assert!(merged.join(file).is_file(), "{file}");
    }
    // The guests' consoles come along, one directory per shard.
    for shard in ["shard-1-of-2", "shard-2-of-2"] {
        let consoles = std::fs::read_dir(merged.join(shard)).unwrap().count();
        assert!(consoles > 0, "no console log in {shard}");
    }

    // Running a shard twice is refused, naming the overlap.
    let output = Command::cargo_bin("kcycle")
        .unwrap()
        .arg("merge")
        .args([&shards[0], &shards[0], &shards[1]])
        .arg("--out")
        .arg(tmp.path().join("twice"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("shard 1/2 is given twice"));
}
