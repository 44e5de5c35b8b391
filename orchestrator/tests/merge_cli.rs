//! `kcycle merge` as CI runs it: the real binary on results directories
//! written by the same `ResultsWriter` that `kcycle run --shard` uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use kcycle::outcome::{Finding, RunInfo, Severity, TestResult};
use kcycle::report::igt_json;
use kcycle::report::results_dir::{ResultsWriter, JUNIT_FILE, RESULTS_FILE, SUMMARY_FILE};
use kcycle::status::Status;
use kcycle::suite::Shard;
use predicates::prelude::*;

fn kcycle() -> Command {
    Command::cargo_bin("kcycle").expect("kcycle binary")
}

fn run_info(shard: Option<Shard>) -> RunInfo {
    let mut cmdline = vec!["kcycle".to_string(), "run".into()];
    if let Some(shard) = shard {
        cmdline.extend(["--shard".into(), shard.to_string()]);
    }
    RunInfo {
        name: match shard {
            Some(shard) => format!("kcycle shard {shard}"),
            None => "kcycle".into(),
        },
        kernel_release: "6.12.117".into(),
        kernel_source: "debian linux-source-6.12.117".into(),
        qemu_version: "QEMU emulator version 7.2.0".into(),
        accel: "kvm".into(),
        commit: "0123456789ab".into(),
        hostname: "runner".into(),
        cmdline,
        shard: shard.map(|s| s.to_string()),
        started_at: 1_700_000_000.0,
    }
}

fn result(name: &str, status: Status, start: f64) -> TestResult {
    let findings = if status.is_failure() {
        vec![Finding {
            kind: "sysfs-duplicate".into(),
            title: "sysfs: cannot create duplicate filename '/kernel/slab/rust_i915_vma'".into(),
            severity: Severity::Warn,
            report: "Call Trace:\n dump_stack+0x10\n".into(),
            attribution: Some("left behind by unload in cycle 1".into()),
            known_issue: None,
        }]
    } else {
        vec![]
    };
    TestResult {
        name: format!("kcycle@rust-table@{name}"),
        suite: "rust-table".into(),
        status,
        start,
        duration: Duration::from_secs(3),
        findings,
        out: String::new(),
        err: String::new(),
        dmesg: "[    1.0] rust_i915_table: loaded\n".into(),
        flaky_attempts: vec![],
        cycles: Vec::new(),
    }
}

/// Write a results directory the way `kcycle run` does, plus a console log.
fn write_dir(dir: &Path, run: RunInfo, results: &[TestResult]) {
    let mut writer = ResultsWriter::create(dir, run).unwrap();
    for result in results {
        writer.record(result.clone()).unwrap();
    }
    std::fs::write(
        dir.join("console-rust-table-guest0.log"),
        "Linux version 6.12\n",
    )
    .unwrap();
}

fn read_results(dir: &Path) -> (RunInfo, Vec<TestResult>) {
    igt_json::parse(&std::fs::read_to_string(dir.join(RESULTS_FILE)).unwrap()).unwrap()
}

/// Four tests, as an unsharded run and as its two shards (round-robin).
fn sharded_run(root: &Path, failing: bool) -> (PathBuf, Vec<PathBuf>) {
    let second = if failing {
        Status::DmesgWarn
    } else {
        Status::Pass
    };
    let all = [
        result("a", Status::Pass, 1.0),
        result("b", second, 5.0),
        result("c", Status::Pass, 9.0),
        result("d", Status::Skip, 13.0),
    ];
    let unsharded = root.join("unsharded");
    write_dir(&unsharded, run_info(None), &all);
    let mut shards = Vec::new();
    for index in 1..=2 {
        let shard = Shard { index, count: 2 };
        let picked: Vec<TestResult> = all.iter().skip(index - 1).step_by(2).cloned().collect();
        let dir = root.join(format!("results-{index}"));
        write_dir(&dir, run_info(Some(shard)), &picked);
        shards.push(dir);
    }
    (unsharded, shards)
}

#[test]
fn merged_shards_equal_the_unsharded_run_and_exit_1_on_failures() {
    let root = tempfile::tempdir().unwrap();
    let (unsharded, shards) = sharded_run(root.path(), true);
    let out = root.path().join("merged");
    kcycle()
        .arg("merge")
        .args(shards.iter().rev())
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "merged 4 tests from 2 results directories",
        ))
        .stderr(predicate::str::contains("kcycle: FAILED (4 tests)"));

    assert_eq!(read_results(&out), read_results(&unsharded));
    for file in [JUNIT_FILE, SUMMARY_FILE] {
        assert_eq!(
            std::fs::read_to_string(out.join(file)).unwrap(),
            std::fs::read_to_string(unsharded.join(file)).unwrap(),
            "{file}"
        );
    }
    for shard in ["shard-1-of-2", "shard-2-of-2"] {
        assert!(out
            .join(shard)
            .join("console-rust-table-guest0.log")
            .is_file());
    }
}

#[test]
fn passing_shards_merge_with_exit_0() {
    let root = tempfile::tempdir().unwrap();
    let (_, shards) = sharded_run(root.path(), false);
    let out = root.path().join("merged");
    kcycle()
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(0);
    let (run, results) = read_results(&out);
    assert_eq!(run.shard, None);
    assert_eq!(results.len(), 4);
}

#[test]
fn overlapping_shards_exit_2_naming_the_test_and_both_dirs() {
    let root = tempfile::tempdir().unwrap();
    let (unsharded, shards) = sharded_run(root.path(), false);
    let other = root.path().join("other");
    write_dir(&other, run_info(None), &[result("a", Status::Pass, 1.0)]);
    let out = root.path().join("merged");
    kcycle()
        .arg("merge")
        .arg(&unsharded)
        .arg(&other)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "test kcycle@rust-table@a is in both",
        ))
        .stderr(predicate::str::contains(unsharded.to_str().unwrap()))
        .stderr(predicate::str::contains(other.to_str().unwrap()));
    assert!(!out.exists(), "a refused merge writes nothing");

    // A shard and the unsharded run it came from.
    kcycle()
        .arg("merge")
        .arg(&shards[0])
        .arg(&unsharded)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not a shard"));
}

#[test]
fn missing_shards_exit_2_naming_them() {
    let root = tempfile::tempdir().unwrap();
    let (_, shards) = sharded_run(root.path(), false);
    kcycle()
        .arg("merge")
        .arg(&shards[1])
        .arg("--out")
        .arg(root.path().join("merged"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("shard(s) 1/2 missing"));
}

#[test]
fn directories_without_kcycle_results_exit_2() {
    let root = tempfile::tempdir().unwrap();
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    kcycle()
        .arg("merge")
        .arg(&empty)
        .arg("--out")
        .arg(root.path().join("merged"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "failed to read {}",
            empty.join(RESULTS_FILE).display()
        )));

    let igt = root.path().join("igt");
    std::fs::create_dir(&igt).unwrap();
    std::fs::write(
        igt.join(RESULTS_FILE),
        r#"{"__type__": "TestrunResult", "results_version": 10, "tests": {}}"#,
    )
    .unwrap();
    kcycle()
        .arg("merge")
        .arg(&igt)
        .arg("--out")
        .arg(root.path().join("merged"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not kcycle's"));
}

#[test]
fn shards_of_different_kernels_exit_2() {
    let root = tempfile::tempdir().unwrap();
    let (_, shards) = sharded_run(root.path(), false);
    let (mut run, results) = read_results(&shards[1]);
    run.kernel_release = "6.13.0".into();
    let moved = root.path().join("newer-2");
    write_dir(&moved, run, &results);
    kcycle()
        .arg("merge")
        .arg(&shards[0])
        .arg(&moved)
        .arg("--out")
        .arg(root.path().join("merged"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("shards must test the same kernel"));
}

#[test]
fn merging_into_an_input_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (_, shards) = sharded_run(root.path(), false);
    kcycle()
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(&shards[0])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is one of the directories being merged",
        ));
}
