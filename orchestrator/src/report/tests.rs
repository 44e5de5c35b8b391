use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

use super::*;
use crate::outcome::{Finding, RunInfo, Severity, TestResult};
use crate::status::Status;

fn run_info() -> RunInfo {
    RunInfo {
        name: "kcycle".into(),
        kernel_release: "6.12.117".into(),
        kernel_source: "debian linux-source-6.12".into(),
        qemu_version: "7.2.0".into(),
        accel: "tcg".into(),
        commit: "abc123".into(),
        hostname: "ci".into(),
        cmdline: vec!["kcycle".into(), "run".into()],
        shard: None,
        started_at: 1_700_000_000.0,
    }
}

fn finding(kind: &str, title: &str, severity: Severity) -> Finding {
    Finding {
        kind: kind.into(),
        title: title.into(),
        severity,
        report: format!("{title}\nCall Trace:\n dump_stack+0x10\n"),
        attribution: None,
        known_issue: None,
    }
}

fn result(name: &str, status: Status, findings: Vec<Finding>) -> TestResult {
    TestResult {
        name: format!("kcycle@rust-table@{name}"),
        suite: "rust-table".into(),
        status,
        start: 1.0,
        duration: Duration::from_millis(2500),
        findings,
        out: "$ modprobe rust_i915_table\n".into(),
        err: String::new(),
        // Kernel logs carry escape sequences and NULs; the XML must stay valid.
        dmesg: "[    1.0] rust_i915_table: loaded\x1b[0m\x00 done\n".into(),
        flaky_attempts: vec![],
        cycles: Vec::new(),
    }
}

fn sample() -> Vec<TestResult> {
    let mut leak = finding(
        "sysfs-duplicate",
        "sysfs: cannot create duplicate filename '/kernel/slab/rust_i915_vma'",
        Severity::Warn,
    );
    leak.attribution = Some("left behind by unload in cycle 1".into());
    let mut known = finding("warning", "WARNING in foo", Severity::Warn);
    known.known_issue = Some("https://example.invalid/bug/7".into());
    let mut flaky = result("flaky", Status::Pass, vec![]);
    flaky.flaky_attempts = vec!["timeout in step 2".into()];
    vec![
        result("clean", Status::Pass, vec![]),
        result("legacy", Status::DmesgWarn, vec![leak]),
        result("known", Status::DmesgWarn, vec![known]),
        result(
            "crashed",
            Status::Crash,
            vec![finding("panic", "kernel panic: x", Severity::Fail)],
        ),
        result("skipped", Status::Skip, vec![]),
        flaky,
    ]
}

#[test]
fn junit_is_valid_and_maps_statuses() {
    let xml = junit::render(&run_info(), &sample()).unwrap();
    assert!(!xml.contains('\x1b') && !xml.contains('\0'));
    let report = Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(report.test_suites.len(), 1);
    let suite = &report.test_suites[0];
    assert_eq!(suite.name.as_str(), "rust-table@6.12.117");
    assert!(suite
        .properties
        .iter()
        .any(|p| p.name.as_str() == "qemu" && p.value.as_str() == "7.2.0"));
    let case = |name: &str| {
        suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == format!("kcycle@rust-table@{name}"))
            .unwrap()
    };
    assert!(matches!(
        case("clean").status,
        TestCaseStatus::Success { .. }
    ));
    match &case("legacy").status {
        TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Failure,
            message,
            description,
            ..
        } => {
            let message = message.as_ref().unwrap().as_str();
            assert!(
                message.starts_with("dmesg-warn: sysfs: cannot create duplicate"),
                "{message}"
            );
            let body = description.as_ref().unwrap().as_str();
            assert!(
                body.contains("(left behind by unload in cycle 1)"),
                "{body}"
            );
            assert!(body.contains("Call Trace:"), "{body}");
        }
        other => panic!("legacy: {other:?}"),
    }
    // A known issue keeps its status as a property but does not fail dashboards.
    let known = case("known");
    assert!(matches!(known.status, TestCaseStatus::Success { .. }));
    assert!(known
        .properties
        .iter()
        .any(|p| p.name.as_str() == "status" && p.value.as_str() == "dmesg-warn"));
    // ...and in system-err, for consumers that show no properties.
    let err = |name: &str| {
        case(name)
            .system_err
            .as_ref()
            .map(|e| e.as_str().to_string())
    };
    let known_err = err("known").unwrap();
    assert!(
        known_err.starts_with("[kcycle] IGT status: dmesg-warn (the test passed;")
            && known_err.contains("a known issue, not failing the run"),
        "{known_err}"
    );
    assert!(err("legacy")
        .unwrap()
        .starts_with("[kcycle] IGT status: dmesg-warn"));
    assert_eq!(err("clean"), None, "pass needs no marker");
    assert!(matches!(
        case("crashed").status,
        TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Error,
            ..
        }
    ));
    assert!(matches!(
        case("skipped").status,
        TestCaseStatus::Skipped { .. }
    ));
    match &case("flaky").status {
        TestCaseStatus::Success { flaky_runs } => assert_eq!(flaky_runs.len(), 1),
        other => panic!("flaky: {other:?}"),
    }
    let fingerprints = |name: &str| -> Vec<String> {
        case(name)
            .properties
            .iter()
            .filter(|p| p.name.as_str() == "fingerprint")
            .map(|p| p.value.to_string())
            .collect()
    };
    assert_eq!(
        fingerprints("legacy"),
        [crate::fingerprint::of(&sample()[1].findings[0]).id]
    );
    assert!(fingerprints("clean").is_empty());
    let out = case("clean").system_out.as_ref().unwrap().as_str();
    assert!(out.contains("--- dmesg ---") && out.contains("rust_i915_table: loaded"));
}

#[test]
fn junit_parses_with_python() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    std::fs::write(&path, junit::render(&run_info(), &sample()).unwrap()).unwrap();
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, xml.etree.ElementTree as ET\n\
             root = ET.parse(sys.argv[1]).getroot()\n\
             print(len(root.findall('.//testcase')))",
        )
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "6");
}

#[test]
fn results_json_has_igt_shape_and_round_trips() {
    let results = sample();
    let value = igt_json::render(&run_info(), &results);
    assert_eq!(value["__type__"], "TestrunResult");
    assert_eq!(value["results_version"], 10);
    assert_eq!(value["uname"], "6.12.117");
    let legacy = &value["tests"]["kcycle@rust-table@legacy"];
    assert_eq!(legacy["result"], "dmesg-warn");
    assert_eq!(legacy["time"]["__type__"], "TimeAttribute");
    assert_eq!(legacy["time"]["end"], 3.5);
    for key in ["", "root", "kcycle@rust-table"] {
        let totals = &value["totals"][key];
        assert_eq!(totals["pass"], 2, "{key}");
        assert_eq!(totals["dmesg-warn"], 2, "{key}");
        assert_eq!(totals["crash"], 1, "{key}");
        assert_eq!(totals["notrun"], 0, "{key}");
    }
    assert_eq!(value["runtimes"]["kcycle@rust-table"]["time"]["end"], 15.0);
    // Each finding carries its fingerprint next to its fields.
    let written = &legacy["kcycle-findings"][0];
    assert_eq!(written["kind"], "sysfs-duplicate");
    assert_eq!(
        written["fingerprint"],
        crate::fingerprint::of(&results[1].findings[0]).id
    );

    let text = serde_json::to_string(&value).unwrap();
    let (run, parsed) = igt_json::parse(&text).unwrap();
    assert_eq!(run, run_info());
    let mut expected = results.clone();
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(parsed, expected);
}

#[test]
fn results_json_parse_rejects_other_documents() {
    assert!(igt_json::parse("{}")
        .unwrap_err()
        .to_string()
        .contains("TestrunResult"));
    assert!(igt_json::parse("not json").is_err());
}

#[test]
fn summary_names_failures_and_attribution() {
    let md = summary::render(&run_info(), &sample());
    insta::assert_snapshot!(md);
}

#[test]
fn writer_keeps_valid_files_after_every_result() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let mut writer = results_dir::ResultsWriter::create(&out, run_info()).unwrap();
    let read_json = || igt_json::parse(&std::fs::read_to_string(out.join("results.json")).unwrap());
    assert_eq!(read_json().unwrap().1.len(), 0);
    Report::deserialize_from_str(&std::fs::read_to_string(out.join("junit.xml")).unwrap()).unwrap();

    for (i, result) in sample().into_iter().enumerate() {
        writer.record(result).unwrap();
        assert_eq!(read_json().unwrap().1.len(), i + 1);
        let xml = std::fs::read_to_string(out.join("junit.xml")).unwrap();
        let report = Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(report.test_suites[0].test_cases.len(), i + 1);
    }
    // Recording a test again replaces it (a retried test is one result).
    writer
        .record(result("clean", Status::Fail, vec![]))
        .unwrap();
    assert_eq!(writer.results().len(), 6);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kcycle-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn write_failure_names_the_file() {
    let err = results_dir::write_atomic(std::path::Path::new("/nonexistent/dir/junit.xml"), b"x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/dir/junit.xml"), "{err}");
}

#[test]
fn aborted_tests_are_written_as_statuses_piglit_knows_and_read_back_as_abort() {
    let aborted = result("aborted", Status::Abort, vec![]);
    let json = igt_json::render(&run_info(), std::slice::from_ref(&aborted));
    let test = &json["tests"]["kcycle@rust-table@aborted"];
    assert_eq!(test["result"], "incomplete");
    assert_eq!(test["kcycle-result"], "abort");
    assert_eq!(json["totals"]["root"]["incomplete"], 1);
    assert!(json["totals"]["root"].get("abort").is_none());
    let (_, back) = igt_json::parse(&json.to_string()).unwrap();
    assert_eq!(back[0].status, Status::Abort);
}

#[test]
fn results_json_with_a_kind_from_another_version_parses_and_keeps_it() {
    let results = sample();
    let mut value = igt_json::render(&run_info(), &results);
    value["tests"]["kcycle@rust-table@legacy"]["kcycle-findings"][0]["kind"] =
        serde_json::json!("leaked-bpf-prog");
    let text = serde_json::to_string(&value).unwrap();
    let (_, parsed) = igt_json::parse(&text).unwrap();
    let legacy = parsed
        .iter()
        .find(|r| r.name == "kcycle@rust-table@legacy")
        .unwrap();
    assert_eq!(
        legacy.findings[0].kind,
        crate::kind::FindingKind::Other("leaked-bpf-prog".into())
    );
    // Written back as it was read, so files pass through this version intact.
    let again = igt_json::render(&run_info(), &parsed);
    assert_eq!(
        again["tests"]["kcycle@rust-table@legacy"]["kcycle-findings"][0]["kind"],
        "leaked-bpf-prog"
    );
}

#[test]
fn the_writer_writes_a_burst_of_results_once_when_events_stop() {
    use crate::report::sink::Reporter;
    use crate::run::event::{Event, Stamped};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let mut writer = results_dir::ResultsWriter::create(&out, run_info()).unwrap();
    let read_json = || igt_json::parse(&std::fs::read_to_string(out.join("results.json")).unwrap());
    for r in sample() {
        let finished = Event::TestFinished {
            guest: 0,
            result: r,
        };
        writer.report(&Stamped::now(finished)).unwrap();
    }
    // Not written per result...
    assert_eq!(read_json().unwrap().1.len(), 0);
    // ...but once the burst is over, all of it.
    writer.idle().unwrap();
    assert_eq!(read_json().unwrap().1.len(), sample().len());
    std::fs::remove_file(out.join("results.json")).unwrap();
    writer.idle().unwrap();
    assert!(
        !out.join("results.json").exists(),
        "an idle with nothing new rewrote the reports"
    );
}
