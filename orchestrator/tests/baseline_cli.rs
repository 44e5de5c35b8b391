//! `kcycle baseline update` on results directories written by the run's own
//! writer, and the exit codes of `kcycle run --bisect` that need no guest.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use kcycle::outcome::{Finding, RunInfo, Severity, TestResult};
use kcycle::report::results_dir::ResultsWriter;
use kcycle::status::Status;
use kcycle::suite::{load_known_issues, Date};
use predicates::prelude::*;

fn kcycle() -> Command {
    Command::cargo_bin("kcycle").expect("kcycle binary")
}

fn result(name: &str, title: Option<&str>) -> TestResult {
    TestResult {
        name: format!("kcycle@rust-table@{name}"),
        suite: "rust-table".into(),
        status: if title.is_some() {
            Status::DmesgWarn
        } else {
            Status::Pass
        },
        start: 1.0,
        duration: Duration::from_secs(1),
        findings: title
            .map(|t| Finding {
                kind: "warning".into(),
                title: t.into(),
                severity: Severity::Warn,
                report: String::new(),
                attribution: None,
                known_issue: None,
            })
            .into_iter()
            .collect(),
        out: String::new(),
        err: String::new(),
        dmesg: String::new(),
        flaky_attempts: vec![],
        cycles: Vec::new(),
    }
}

fn write_dir(dir: &Path, results: &[TestResult]) {
    let mut writer = ResultsWriter::create(dir, RunInfo::default()).unwrap();
    for result in results {
        writer.record(result.clone()).unwrap();
    }
}

#[test]
fn update_writes_known_issues_and_flakes_then_refreshes() {
    let root = tempfile::tempdir().unwrap();
    let (one, two) = (root.path().join("one"), root.path().join("two"));
    write_dir(
        &one,
        &[
            result("a", Some("WARNING in foo")),
            result("b", Some("WARNING in bar")),
        ],
    );
    write_dir(
        &two,
        &[result("a", Some("WARNING in foo")), result("b", None)],
    );
    let file = root.path().join("known.toml");
    kcycle()
        .args(["baseline", "update"])
        .arg(&one)
        .arg(&two)
        .arg("--file")
        .arg(&file)
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "1 known issues, 1 flakes, 0 dropped",
        ));
    let issues = load_known_issues(&file).unwrap();
    assert_eq!(issues.len(), 2);
    assert!(issues[0].matches("kcycle@rust-table@a", "WARNING in foo") && !issues[0].flake);
    assert!(issues[1].matches("kcycle@rust-table@b", "WARNING in bar") && issues[1].flake);
    assert_eq!(issues[0].first_seen, Some(Date::today()));

    // A hand edit survives; a fixed bug leaves the file.
    let text = std::fs::read_to_string(&file).unwrap().replacen(
        "reason = \"baseline: found in 2 of 2 runs\"",
        "reason = \"bug 7\"",
        1,
    );
    std::fs::write(&file, text).unwrap();
    let three = root.path().join("three");
    write_dir(
        &three,
        &[result("a", None), result("b", Some("WARNING in bar"))],
    );
    kcycle()
        .args(["baseline", "update"])
        .arg(&three)
        .arg("--file")
        .arg(&file)
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "dropped known issue test \"kcycle@rust-table@a\"",
        ));
    let issues = load_known_issues(&file).unwrap();
    assert_eq!(issues.len(), 1);
    assert!(issues[0].flake);
}

#[test]
fn update_rejects_unreadable_input() {
    let root = tempfile::tempdir().unwrap();
    kcycle()
        .args(["baseline", "update"])
        .arg(root.path().join("missing"))
        .arg("--file")
        .arg(root.path().join("k.toml"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("failed to read"));
    assert!(!root.path().join("k.toml").exists());
}

#[test]
fn bisect_aborts_on_bad_input_and_finding_needs_bisect() {
    let root = tempfile::tempdir().unwrap();
    let suite = root.path().join("missing.toml");
    kcycle()
        .args(["run", "--bisect"])
        .arg(&suite)
        .arg("--results")
        .arg(root.path().join("results"))
        .assert()
        .code(128)
        .stderr(predicate::str::contains("exit 128 (abort the bisection"));
    kcycle()
        .args(["run", "--finding", "WARNING in *"])
        .arg(&suite)
        .assert()
        .code(2);
    let bad = root.path().join("bad-known.toml");
    std::fs::write(
        &bad,
        "[[known_issue]]\ntest = \"*\"\nreason = \"r\"\nkernel = \"six\"\n",
    )
    .unwrap();
    let suite = root.path().join("s.toml");
    std::fs::write(
        &suite,
        "[[test]]\nname = \"t\"\nsteps = [{ load = \"m\" }]\n",
    )
    .unwrap();
    kcycle()
        .arg("run")
        .arg(&suite)
        .arg("--known-issues")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("failed to load --known-issues"))
        .stderr(predicate::str::contains("field `kernel`"));
}
