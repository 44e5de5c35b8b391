//! Comparisons of results.json files written by the project's own writer and
//! read back, as `kcycle compare` sees them.

use std::time::Duration;

use super::*;
use crate::outcome::Severity;
use crate::report::igt_json;

const WARN_REPORT: &str = "\
WARNING: CPU: 0 PID: 81 at drivers/gpu/drm/i915/i915_gem.c:1234 i915_gem_cleanup+0x1a/0x40 [i915]
Call Trace:
 <TASK>
 i915_gem_cleanup+0x1a/0x40 [i915]
 i915_driver_remove+0x55/0x110 [i915]
 pci_device_remove+0x3e/0xb0
 </TASK>
";

fn info(kernel: &str) -> RunInfo {
    RunInfo {
        name: "kcycle".into(),
        kernel_release: kernel.into(),
        accel: "tcg".into(),
        ..RunInfo::default()
    }
}

fn warn(report: &str) -> Finding {
    Finding {
        kind: "warning".into(),
        title: "WARNING in i915_gem_cleanup".into(),
        severity: Severity::Warn,
        report: report.into(),
        attribution: Some("seen at unload i915".into()),
        known_issue: None,
    }
}

fn leak() -> Finding {
    Finding {
        kind: "leaked-slab-cache".into(),
        title: "slab caches left after unload of rust_i915_table: rust_i915_vma".into(),
        severity: Severity::Fail,
        report: "Present in /sys/kernel/slab after the unload:\n  rust_i915_vma (3 objects)\n"
            .into(),
        attribution: Some("left behind by unload in cycle 1".into()),
        known_issue: None,
    }
}

fn result(suite: &str, test: &str, status: Status, findings: Vec<Finding>) -> TestResult {
    TestResult {
        duration: Duration::from_secs(2),
        findings,
        ..TestResult::new(format!("kcycle@{suite}@{test}"), suite, status)
    }
}

/// Through the writer and back, as a results directory on disk holds it.
fn written(label: &str, info: RunInfo, results: Vec<TestResult>) -> Run {
    let text = serde_json::to_string(&igt_json::render(&info, &results)).unwrap();
    let (info, results) = igt_json::parse(&text).unwrap();
    Run {
        label: label.into(),
        info,
        results,
    }
}

fn base_results() -> Vec<TestResult> {
    let mut known = warn(WARN_REPORT);
    known.known_issue = Some("https://example.invalid/bug/7".into());
    vec![
        result("rust-table", "clean", Status::Pass, vec![]),
        result("rust-table", "breaks", Status::Pass, vec![]),
        result("rust-table", "gets-fixed", Status::DmesgFail, vec![leak()]),
        result(
            "rust-table",
            "moves",
            Status::DmesgWarn,
            vec![warn(WARN_REPORT)],
        ),
        result(
            "rust-table",
            "changes",
            Status::DmesgWarn,
            vec![warn(WARN_REPORT)],
        ),
        result(
            "rust-table",
            "worsens",
            Status::DmesgWarn,
            vec![warn(WARN_REPORT)],
        ),
        result("rust-table", "flaky", Status::Pass, vec![]),
        result("rust-table", "known", Status::DmesgWarn, vec![known]),
        result("rust-table", "dropped", Status::Pass, vec![]),
        result("rust-table", "base-only", Status::Pass, vec![]),
    ]
}

fn new_results() -> Vec<TestResult> {
    let base = base_results();
    let mut known = base[7].clone();
    known.start = 5.0;
    // The same WARN, relinked: other offsets and another line.
    let moved = WARN_REPORT
        .replace("1234", "1240")
        .replace("+0x1a/0x40", "+0x22/0x48");
    // Another caller: a different finding with the same title.
    let changed = WARN_REPORT.replace("i915_driver_remove", "i915_driver_release");
    let mut flaky = result("rust-table", "flaky", Status::Pass, vec![]);
    flaky.flaky_attempts = vec!["dmesg-warn: WARNING in i915_gem_cleanup".into()];
    let mut worse = warn(WARN_REPORT);
    worse.severity = Severity::Fail;
    vec![
        result("rust-table", "clean", Status::Pass, vec![]),
        result("rust-table", "breaks", Status::DmesgFail, vec![leak()]),
        result("rust-table", "gets-fixed", Status::Pass, vec![]),
        result("rust-table", "moves", Status::DmesgWarn, vec![warn(&moved)]),
        result(
            "rust-table",
            "changes",
            Status::DmesgWarn,
            vec![warn(&changed)],
        ),
        result("rust-table", "worsens", Status::Crash, vec![worse]),
        flaky,
        known,
        result("rust-table", "dropped", Status::Notrun, vec![]),
        result("rust-table", "new-only", Status::Fail, vec![leak()]),
    ]
}

fn sample() -> Comparison {
    compare(
        &written("results-base", info("6.12.117"), base_results()),
        &written("results-new", info("6.12.117"), new_results()),
    )
    .unwrap()
}

fn names(comparison: &Comparison, category: Category) -> Vec<&str> {
    comparison
        .of(category)
        .map(|e| e.test.strip_prefix("kcycle@rust-table@").unwrap())
        .collect()
}

#[test]
fn sorts_every_test_into_its_category() {
    let c = sample();
    assert_eq!(
        names(&c, Category::NewFailure),
        ["breaks", "changes", "worsens"]
    );
    assert_eq!(names(&c, Category::Fixed), ["gets-fixed"]);
    assert_eq!(names(&c, Category::StillFailing), ["moves"]);
    assert_eq!(names(&c, Category::Flaky), ["flaky"]);
    assert_eq!(names(&c, Category::Known), ["known"]);
    assert_eq!(names(&c, Category::NewlySkipped), ["dropped"]);
    assert_eq!(c.compared, 9);
    assert_eq!(c.only_in_base, ["kcycle@rust-table@base-only"]);
    assert_eq!(c.only_in_new, ["kcycle@rust-table@new-only"]);
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    assert!(c.has_new_failures());
}

#[test]
fn entries_carry_the_findings_that_explain_them() {
    let c = sample();
    let entry = |name: &str| {
        c.entries
            .iter()
            .find(|e| e.test == format!("kcycle@rust-table@{name}"))
            .unwrap()
    };
    let breaks = entry("breaks");
    assert_eq!((breaks.base, breaks.new), (Status::Pass, Status::DmesgFail));
    assert_eq!(breaks.findings[0].fingerprint, fingerprint::of(&leak()).id);
    assert_eq!(
        breaks.findings[0].attribution.as_deref(),
        Some("left behind by unload in cycle 1")
    );
    // The fix shows what went away.
    assert_eq!(entry("gets-fixed").findings[0].kind, "leaked-slab-cache");
    // Same title, another stack: the new fingerprint is the one shown.
    let changes = &entry("changes").findings;
    assert_eq!(changes.len(), 1);
    assert_ne!(
        changes[0].fingerprint,
        fingerprint::of(&warn(WARN_REPORT)).id
    );
    assert_eq!(
        entry("moves").findings[0].fingerprint,
        fingerprint::of(&warn(WARN_REPORT)).id
    );
    assert!(entry("known").findings[0].known_issue.is_some());
}

#[test]
fn a_clean_comparison_has_no_new_failures() {
    let base = written("a", info("6.12.117"), base_results());
    let c = compare(&base, &base.clone()).unwrap();
    assert!(!c.has_new_failures());
    assert_eq!(
        names(&c, Category::StillFailing),
        ["changes", "gets-fixed", "moves", "worsens"]
    );
    assert_eq!(names(&c, Category::Known), ["known"]);
    assert!(c
        .verdict()
        .starts_with("0 new failures, 0 fixed, 4 still failing"));
}

#[test]
fn different_kernels_and_suites_are_said_and_the_overlap_compared() {
    let mut new = new_results();
    new.push(result("smoke", "boot", Status::Pass, vec![]));
    let c = compare(
        &written("base", info("6.12.117"), base_results()),
        &written("new", info("6.12.118"), new),
    )
    .unwrap();
    assert_eq!(
        c.notes,
        [
            "the kernels differ: base ran 6.12.117, new ran 6.12.118",
            "the suites differ (only new ran smoke); compared where they overlap",
        ]
    );
    assert_eq!(c.compared, 9);
    assert!(c.only_in_new.contains(&"kcycle@smoke@boot".to_string()));
}

#[test]
fn runs_with_nothing_in_common_are_an_error() {
    let error = compare(
        &written("base", info("6.12.117"), base_results()),
        &written(
            "new",
            info("6.12.117"),
            vec![result("smoke", "boot", Status::Pass, vec![])],
        ),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "base and new have no test in common (suites rust-table vs suites smoke): nothing to compare"
    );
}

#[test]
fn text_reads_like_a_ci_mail() {
    let text = text(&sample());
    assert!(text.starts_with("kcycle compare: results-base -> results-new\n"));
    assert!(text
        .contains("\nPossible regressions (3):\n  kcycle@rust-table@breaks: pass -> dmesg-fail\n"));
    assert!(text.contains(&format!(
        "    [leaked-slab-cache] slab caches left after unload of rust_i915_table: rust_i915_vma  (fingerprint {})\n",
        fingerprint::of(&leak()).id
    )));
    assert!(text
        .contains("\nPossible fixes (1):\n  kcycle@rust-table@gets-fixed: dmesg-fail -> pass\n"));
    assert!(text.contains("only in base: 1 test: kcycle@rust-table@base-only\n"));
    assert!(text.ends_with(
        "\nVerdict: 3 new failures, 1 fixed, 1 still failing, 1 flaky, 1 known, 1 newly skipped (9 tests compared)\n"
    ));
}

#[test]
fn markdown_is_ready_for_a_pull_request() {
    insta::assert_snapshot!(markdown(&sample()));
}

#[test]
fn json_has_every_entry() {
    let value: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
    let entries = value["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 8);
    assert_eq!(entries[0]["category"], "new-failure");
    assert_eq!(entries[0]["base"], "pass");
    assert_eq!(
        entries[0]["findings"][0]["fingerprint"]
            .as_str()
            .unwrap()
            .len(),
        16
    );
    assert_eq!(value["base"]["kernel"], "6.12.117");
    assert_eq!(value["only_in_new"][0], "kcycle@rust-table@new-only");
}
