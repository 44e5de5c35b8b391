//! `kcycle compare` as CI runs it: the real binary on results directories
//! written by the same `ResultsWriter` that `kcycle run` uses.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use kcycle::outcome::{Finding, RunInfo, Severity, TestResult};
use kcycle::report::results_dir::{ResultsWriter, RESULTS_FILE};
use kcycle::status::Status;
use predicates::prelude::*;

fn kcycle() -> Command {
    Command::cargo_bin("kcycle").expect("kcycle binary")
}

fn run_info(kernel: &str) -> RunInfo {
    RunInfo {
        name: "kcycle".into(),
        kernel_release: kernel.into(),
        accel: "kvm".into(),
        cmdline: vec!["kcycle".into(), "run".into()],
        ..RunInfo::default()
    }
}

fn leak() -> Finding {
    Finding {
        kind: "leaked-slab-cache".into(),
        title: "slab caches left after unload of rust_i915_table: rust_i915_vma".into(),
        severity: Severity::Fail,
        report: "Present in /sys/kernel/slab after the unload:\n  rust_i915_vma\n".into(),
        attribution: Some("left behind by unload in cycle 1".into()),
        known_issue: None,
    }
}

fn result(suite: &str, name: &str, failing: bool) -> TestResult {
    TestResult {
        name: format!("kcycle@{suite}@{name}"),
        suite: suite.into(),
        status: if failing {
            Status::DmesgFail
        } else {
            Status::Pass
        },
        start: 1.0,
        duration: Duration::from_secs(3),
        findings: if failing { vec![leak()] } else { vec![] },
        out: String::new(),
        err: String::new(),
        dmesg: String::new(),
        flaky_attempts: vec![],
        cycles: Vec::new(),
    }
}

fn write_dir(dir: &Path, run: RunInfo, results: &[TestResult]) {
    let mut writer = ResultsWriter::create(dir, run).unwrap();
    for result in results {
        writer.record(result.clone()).unwrap();
    }
}

/// A base run where `b` fails, and a new run where `a` fails and `b` passes.
fn two_runs(root: &Path, new_kernel: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let base = root.join("base");
    let new = root.join("new");
    write_dir(
        &base,
        run_info("6.12.117"),
        &[
            result("rust-table", "a", false),
            result("rust-table", "b", true),
        ],
    );
    write_dir(
        &new,
        run_info(new_kernel),
        &[
            result("rust-table", "a", true),
            result("rust-table", "b", false),
        ],
    );
    (base, new)
}

#[test]
fn a_new_failure_exits_1_and_names_the_finding() {
    let root = tempfile::tempdir().unwrap();
    let (base, new) = two_runs(root.path(), "6.12.117");
    let fingerprint = kcycle::fingerprint::of(&leak()).id;
    kcycle()
        .arg("compare")
        .arg(&base)
        .arg(&new)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "Possible regressions (1):\n  kcycle@rust-table@a: pass -> dmesg-fail\n",
        ))
        .stdout(predicate::str::contains(format!(
            "(fingerprint {fingerprint})"
        )))
        .stdout(predicate::str::contains(
            "Possible fixes (1):\n  kcycle@rust-table@b: dmesg-fail -> pass\n",
        ));
}

#[test]
fn no_new_failure_exits_0_and_files_work_as_well_as_directories() {
    let root = tempfile::tempdir().unwrap();
    let (_, new) = two_runs(root.path(), "6.12.117");
    // A run against itself: `a` is still failing, nothing is new.
    kcycle()
        .arg("compare")
        .arg(new.join(RESULTS_FILE))
        .arg(&new)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Still failing (1):"))
        .stdout(predicate::str::contains("0 new failures"));
}

#[test]
fn markdown_and_json_outputs() {
    let root = tempfile::tempdir().unwrap();
    let (base, new) = two_runs(root.path(), "6.12.118");
    kcycle()
        .args(["compare", "--markdown"])
        .arg(&base)
        .arg(&new)
        .assert()
        .code(1)
        .stdout(predicate::str::starts_with(
            "### kcycle: **1 possible regression**",
        ))
        .stdout(predicate::str::contains(
            "> **Note:** the kernels differ: base ran 6.12.117, new ran 6.12.118",
        ));
    let output = kcycle()
        .args(["compare", "--json"])
        .arg(&base)
        .arg(&new)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["entries"][0]["category"], "new-failure");
    assert_eq!(value["entries"][1]["category"], "fixed");
    assert_eq!(value["compared"], 2);
}

#[test]
fn bad_input_exits_2_and_says_why() {
    let root = tempfile::tempdir().unwrap();
    let (base, _) = two_runs(root.path(), "6.12.117");
    kcycle()
        .arg("compare")
        .arg(&base)
        .arg(root.path().join("missing"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("failed to read"))
        .stderr(predicate::str::contains("missing"));
    let garbage = root.path().join("garbage.json");
    std::fs::write(&garbage, "{\"not\": \"igt\"}").unwrap();
    kcycle()
        .arg("compare")
        .arg(&base)
        .arg(&garbage)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an IGT TestrunResult"));
    let other = root.path().join("other");
    write_dir(
        &other,
        run_info("6.12.117"),
        &[result("smoke", "boot", false)],
    );
    kcycle()
        .arg("compare")
        .arg(&base)
        .arg(&other)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no test in common (suites rust-table vs suites smoke)",
        ));
    kcycle()
        .args(["compare", "--json", "--markdown"])
        .arg(&base)
        .arg(&base)
        .assert()
        .code(2);
}
