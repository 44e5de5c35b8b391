//! The reports as real consumers read them: junit.xml through junitparser
//! (Python, behind EnricoMi's publish-unit-test-result action) and through
//! the parsing of mikepenz/action-junit-report (xml-js under node), and
//! results.json through piglit's own results loader and `piglit summary`
//! (IGT's summary tooling), imported from Debian's piglit package.
//! `.ci/run` installs junitparser, xml-js, piglit (unpacked under
//! ~/.cache/kcycle-test-piglit) and mako; without them these tests fail
//! under `CI` and print a skip notice elsewhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kcycle::outcome::{Finding, RunInfo, Severity, TestResult};
use kcycle::report::results_dir::{ResultsWriter, JUNIT_FILE, RESULTS_FILE};
use kcycle::status::Status;
use serde_json::Value;

/// Where .ci/run installs xml-js (`npm install --prefix`), unless KCYCLE_NODE_MODULES says.
const NODE_PREFIX: &str = ".cache/kcycle-test-node";
/// Where .ci/run unpacks Debian's piglit package, unless KCYCLE_PIGLIT says.
const PIGLIT_CACHE: &str = ".cache/kcycle-test-piglit/usr";
const PIGLIT_WHAT: &str =
    "piglit (.ci/run unpacks Debian's piglit into ~/.cache/kcycle-test-piglit)";

fn consumers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consumers")
}

fn finding(title: &str, known: Option<&str>) -> Finding {
    Finding {
        kind: "debugfs-duplicate".into(),
        title: title.into(),
        severity: Severity::Warn,
        report: format!("{title}\nCall Trace:\n dump_stack_lvl+0x5d/0x80\n"),
        attribution: Some("left behind by unload in cycle 2".into()),
        known_issue: known.map(Into::into),
    }
}

fn result(name: &str, status: Status, findings: Vec<Finding>) -> TestResult {
    TestResult {
        name: format!("kcycle@rust-table@{name}"),
        suite: "rust-table".into(),
        status,
        start: 1.0,
        duration: Duration::from_millis(1500),
        findings,
        out: "$ modprobe rust_i915_table\n".into(),
        err: String::new(),
        dmesg: "[    1.0] loaded\x1b[0m\x00\n".into(),
        flaky_attempts: vec![],
        cycles: Vec::new(),
    }
}

fn run_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = RunInfo {
        name: "kcycle".into(),
        kernel_release: "6.12.117".into(),
        accel: "tcg".into(),
        started_at: 1_700_000_000.0,
        ..RunInfo::default()
    };
    let results = [
        result("clean", Status::Pass, vec![]),
        result(
            "warned",
            Status::DmesgWarn,
            vec![finding("debugfs: Directory 'x' already present!", None)],
        ),
        result(
            "known",
            Status::DmesgWarn,
            vec![finding("WARNING in foo", Some("bug 7"))],
        ),
        result(
            "failed",
            Status::Fail,
            vec![finding("selftest failed", None)],
        ),
        result("crashed", Status::Crash, vec![]),
        result("skipped", Status::Skip, vec![]),
        result("aborted", Status::Abort, vec![]),
    ];
    let mut writer = ResultsWriter::create(dir.path(), run).unwrap();
    for result in results {
        writer.record(result).unwrap();
    }
    dir
}

/// Run a consumer; `None` (skip) when its runtime or package is missing outside CI.
fn consume(program: &str, args: &[&Path], env: &[(&str, &Path)], what: &str) -> Option<Value> {
    let stdout = run_consumer(program, args, env, what)?;
    Some(serde_json::from_str(&stdout).expect("one JSON object"))
}

/// Run a consumer and return what it printed; `None` as [`consume`].
fn run_consumer(
    program: &str,
    args: &[&Path],
    env: &[(&str, &Path)],
    what: &str,
) -> Option<String> {
    let mut command = std::process::Command::new(program);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(error) => return missing(&format!("{program}: {error}"), what),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success()
        && (stderr.contains("No module named") || stderr.contains("Cannot find module"))
    {
        return missing(&stderr, what);
    }
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {stderr}"
    );
    Some(String::from_utf8(output.stdout).expect("UTF-8 output"))
}

/// piglit as Debian installs it: a prefix with `bin/piglit` and
/// `lib/<triplet>/piglit/framework`; returns (the piglit script, its data
/// directory). KCYCLE_PIGLIT names the prefix; otherwise where .ci/run
/// unpacks it, then `/usr` (`apt-get install piglit`).
fn piglit() -> Option<(PathBuf, PathBuf)> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let prefixes: Vec<PathBuf> = match std::env::var_os("KCYCLE_PIGLIT") {
        Some(prefix) => vec![prefix.into()],
        None => vec![home.join(PIGLIT_CACHE), "/usr".into()],
    };
    for prefix in &prefixes {
        let script = prefix.join("bin/piglit");
        let Ok(libs) = std::fs::read_dir(prefix.join("lib")) else {
            continue;
        };
        for lib in libs.flatten() {
            let data = lib.path().join("piglit");
            if script.is_file() && data.join("framework/backends/json.py").is_file() {
                return Some((script, data));
            }
        }
    }
    missing(&format!("no piglit under {prefixes:?}"), PIGLIT_WHAT)
}

fn missing<T>(why: &str, what: &str) -> Option<T> {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is not installed (.ci/run installs it): {why}"
    );
    eprintln!("skipping: {what} is not installed: {why}");
    None
}

fn property<'a>(case: &'a Value, name: &str) -> Vec<&'a str> {
    case["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0] == name)
        .map(|p| p[1].as_str().unwrap())
        .collect()
}

#[test]
fn junitparser_keeps_dmesg_warn_apart_from_failure() {
    let dir = run_dir();
    let script = consumers().join("junitparser_read.py");
    let Some(seen) = consume(
        "python3",
        &[&script, &dir.path().join(JUNIT_FILE)],
        &[],
        "junitparser (pip install junitparser)",
    ) else {
        return;
    };
    assert_eq!(seen["tests"], 7);
    // warned + failed are failures; crashed + aborted are errors.
    assert_eq!(
        (seen["failures"].as_u64(), seen["errors"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(seen["skipped"], 1);
    let case = |name: &str| &seen["cases"][format!("kcycle@rust-table@{name}")];
    let warned = case("warned");
    assert_eq!(warned["outcome"], "failure");
    assert_eq!(property(warned, "status"), ["dmesg-warn"]);
    assert!(warned["message"]
        .as_str()
        .unwrap()
        .starts_with("dmesg-warn: "));
    assert!(warned["system_err"]
        .as_str()
        .unwrap()
        .starts_with("[kcycle] IGT status: dmesg-warn (the test passed;"));
    let failed = case("failed");
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(property(failed, "status"), ["fail"]);
    assert!(failed["system_err"]
        .as_str()
        .unwrap()
        .starts_with("[kcycle] IGT status: fail (the test failed)"));
    // A known issue passes dashboards but keeps its IGT status visible.
    let known = case("known");
    assert_eq!(known["is_passed"], true);
    assert_eq!(property(known, "status"), ["dmesg-warn"]);
    assert_eq!(property(known, "known-issue"), ["bug 7"]);
    assert!(known["system_err"]
        .as_str()
        .unwrap()
        .contains("a known issue"));
    assert_eq!(case("clean")["system_err"], Value::Null);
    assert_eq!(case("crashed")["outcome"], "error");
    assert_eq!(case("skipped")["outcome"], "skipped");
}

#[test]
fn action_junit_report_parser_sees_the_same_outcomes_and_markers() {
    let dir = run_dir();
    let prefix = std::env::var_os("KCYCLE_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var_os("HOME").unwrap_or_default())
                .join(NODE_PREFIX)
                .join("node_modules")
        });
    let script = consumers().join("action_junit_report_read.js");
    let Some(seen) = consume(
        "node",
        &[&script, &dir.path().join(JUNIT_FILE)],
        &[("NODE_PATH", &prefix)],
        "node and xml-js (npm install --prefix ~/.cache/kcycle-test-node xml-js)",
    ) else {
        return;
    };
    assert_eq!(
        (
            &seen["total"],
            &seen["failed"],
            &seen["skipped"],
            &seen["passed"]
        ),
        (
            &Value::from(7),
            &Value::from(4),
            &Value::from(1),
            &Value::from(2)
        )
    );
    let case = |name: &str| &seen["cases"][format!("kcycle@rust-table@{name}")];
    let warned = case("warned");
    assert_eq!(warned["status"], "failure");
    assert!(warned["message"]
        .as_str()
        .unwrap()
        .starts_with("dmesg-warn: "));
    assert!(warned["details"]
        .as_str()
        .unwrap()
        .contains("left behind by unload in cycle 2"));
    assert!(warned["systemErr"]
        .as_str()
        .unwrap()
        .starts_with("[kcycle] IGT status: dmesg-warn"));
    assert_eq!(case("known")["status"], "success");
    assert_eq!(property(case("known"), "status"), ["dmesg-warn"]);
    assert!(case("failed")["message"]
        .as_str()
        .unwrap()
        .starts_with("fail: "));
}

/// A piglit status count, for one totals group.
fn counts(totals: &Value, group: &str) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = totals[group]
        .as_object()
        .unwrap_or_else(|| panic!("no totals group {group:?}: {totals}"))
        .iter()
        .map(|(status, n)| (status.clone(), n.as_u64().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort();
    counts
}

#[test]
fn piglit_loads_results_json() {
    let dir = run_dir();
    let Some((_, data)) = piglit() else {
        return;
    };
    let script = consumers().join("piglit_load.py");
    let Some(loaded) = consume(
        "python3",
        &[&script, &data, &dir.path().join(RESULTS_FILE)],
        &[],
        PIGLIT_WHAT,
    ) else {
        return;
    };
    // piglit's own framework did the load, not a copy of it.
    assert!(
        Path::new(loaded["framework"].as_str().unwrap()).starts_with(&data),
        "{}",
        loaded["framework"]
    );
    assert_eq!(loaded["type"], "TestrunResult");
    assert_eq!(loaded["results_version"], 10);
    assert_eq!(loaded["name"], "kcycle");
    let tests = loaded["tests"].as_object().unwrap();
    let statuses: Vec<(&str, &str)> = tests
        .iter()
        .map(|(name, status)| {
            (
                name.strip_prefix("kcycle@rust-table@").unwrap(),
                status.as_str().unwrap(),
            )
        })
        .collect();
    // piglit has no `abort`: written as incomplete, read back by kcycle as abort.
    // (By name: serde_json's map is sorted.)
    assert_eq!(
        statuses,
        [
            ("aborted", "incomplete"),
            ("clean", "pass"),
            ("crashed", "crash"),
            ("failed", "fail"),
            ("known", "dmesg-warn"),
            ("skipped", "skip"),
            ("warned", "dmesg-warn"),
        ]
    );
    // kcycle's tests are IGT tests without subtests (kcycle@suite@test).
    for (name, subtests) in loaded["subtests"].as_object().unwrap() {
        assert_eq!(subtests, &serde_json::json!({}), "{name}");
    }
    assert_eq!(loaded["worst"], "incomplete");
    assert_eq!(loaded["durations"]["kcycle@rust-table@clean"], 1.5);
    assert_eq!(
        loaded["out"]["kcycle@rust-table@clean"],
        "$ modprobe rust_i915_table\n"
    );
    assert!(loaded["dmesg"]["kcycle@rust-table@warned"]
        .as_str()
        .unwrap()
        .contains("loaded"));
    assert_eq!(loaded["elapsed"], 2.5);
    let totals = &loaded["totals"];
    let expected: Vec<(String, u64)> = [
        ("crash", 1),
        ("dmesg-warn", 2),
        ("fail", 1),
        ("incomplete", 1),
        ("pass", 1),
        ("skip", 1),
    ]
    .map(|(s, n)| (s.to_string(), n))
    .into();
    assert_eq!(counts(totals, "root"), expected);
    // Every group kcycle writes counts what piglit counts for it itself.
    let recomputed = &loaded["recomputed_totals"];
    for group in ["", "root", "kcycle@rust-table"] {
        assert_eq!(
            counts(totals, group),
            counts(recomputed, group),
            "{group:?}"
        );
    }
    let (_, back) = kcycle::report::igt_json::parse(
        &std::fs::read_to_string(dir.path().join(RESULTS_FILE)).unwrap(),
    )
    .unwrap();
    let aborted = back.iter().find(|r| r.name.ends_with("@aborted")).unwrap();
    assert_eq!(aborted.status, Status::Abort);
}

#[test]
fn piglit_summary_console_reads_results_json() {
    let dir = run_dir();
    let Some((piglit, _)) = piglit() else {
        return;
    };
    let Some(printed) = run_consumer(
        "python3",
        &[
            &piglit,
            Path::new("summary"),
            Path::new("console"),
            &dir.path().join(RESULTS_FILE),
        ],
        &[],
        PIGLIT_WHAT,
    ) else {
        return;
    };
    let lines: Vec<&str> = printed.lines().map(str::trim).collect();
    for line in [
        "kcycle/rust-table/warned: dmesg-warn",
        "kcycle/rust-table/aborted: incomplete",
        "kcycle/rust-table/crashed: crash",
        "pass:        1",
        "dmesg-warn:        2",
        "incomplete:        1",
        "total:        7",
    ] {
        assert!(lines.contains(&line), "no {line:?} in:\n{printed}");
    }
}

#[test]
fn piglit_summary_html_reads_results_json() {
    let dir = run_dir();
    let Some((piglit, _)) = piglit() else {
        return;
    };
    let out = dir.path().join("piglit-html");
    let Some(_) = run_consumer(
        "python3",
        &[
            &piglit,
            Path::new("summary"),
            Path::new("html"),
            &out,
            &dir.path().join(RESULTS_FILE),
        ],
        &[],
        PIGLIT_WHAT,
    ) else {
        return;
    };
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(index.contains("dmesg-warn"), "{index}");
    let page = std::fs::read_to_string(out.join("kcycle/kcycle@rust-table@warned.html")).unwrap();
    assert!(page.contains("dmesg-warn"), "{page}");
    assert!(page.contains("$ modprobe rust_i915_table"), "{page}");
}

#[test]
fn piglit_loader_rejects_what_piglit_rejects() {
    // piglit's loader is strict where it matters: an unknown status, an
    // unsupported version and an unknown time key fail the load.
    let Some((_, data)) = piglit() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = consumers().join("piglit_load.py");
    for (text, why) in [
        (
            r#"{"results_version": 10, "tests": {"a": {"result": "abort"}}}"#,
            "Unknown status \"abort\"",
        ),
        (
            r#"{"results_version": 6, "tests": {}}"#,
            "Unsupported version \"6\"",
        ),
        (
            r#"{"results_version": 10, "tests": {"a": {"result": "pass", "time": {"start": 0, "end": 1, "x": 2}}}}"#,
            "unexpected keyword",
        ),
    ] {
        let path = dir.path().join("results.json");
        std::fs::write(&path, text).unwrap();
        let output = std::process::Command::new("python3")
            .arg(&script)
            .arg(&data)
            .arg(&path)
            .output()
            .expect("python3 runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text} loaded");
        assert!(stderr.contains(why), "{text}: {stderr}");
    }
}
