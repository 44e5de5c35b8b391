//! From findings to a test's status (pure): IGT's rules, then known issues
//! and control expectations from the suite.

use globset::Glob;

use crate::outcome::{Finding, Severity};
use crate::status::Status;
use crate::suite::{Expectation, KnownIssue};

/// The runner's own finding kinds (the dmesg classifier has the rest, and
/// each ledger namespace has its `leaked-*` kind: [`crate::snapshot::Namespace::leak_kind`]).
pub mod kind {
    /// A step's command failed (non-zero exit, module still loaded after unload).
    pub const STEP_FAILED: &str = "step-failed";
    /// A step marked `expect_failure` succeeded.
    pub const UNEXPECTED_SUCCESS: &str = "unexpected-success";
    /// The selftest result parameter was non-zero.
    pub const SELFTEST_RESULT: &str = "selftest-result";
    /// Slab caches that appeared with a load and outlived the unload.
    pub const LEAKED_SLAB_CACHE: &str = "leaked-slab-cache";
    /// debugfs entries that appeared with a load and outlived the unload.
    pub const LEAKED_DEBUGFS_ENTRY: &str = "leaked-debugfs-entry";
    /// An oops or warning in the image of a module that had been unloaded.
    pub const USE_AFTER_UNLOAD: &str = "use-after-unload";
    /// A memory counter that grew by a steady amount every cycle.
    pub const STEADY_GROWTH: &str = "steady-growth";
    /// New taint bits that are not expected from the test itself.
    pub const TAINT: &str = "taint";
    /// A control test that did not come out flagged as expected.
    pub const CONTROL_NOT_FLAGGED: &str = "control-not-flagged";
    /// Guest faults, named as the status they give.
    pub const FAULTS: [&str; 4] = ["crash", "timeout", "incomplete", "abort"];

    /// Kinds that make a test `fail` rather than `dmesg-warn`/`dmesg-fail`.
    pub const TEST_FAILURES: [&str; 4] = [
        STEP_FAILED,
        UNEXPECTED_SUCCESS,
        SELFTEST_RESULT,
        CONTROL_NOT_FLAGGED,
    ];

    /// The runner's kinds besides the ledger's `leaked-*` ones (kmemleak
    /// findings carry the classifier's `kmemleak` kind).
    pub const ALL: [&str; 8] = [
        STEP_FAILED,
        UNEXPECTED_SUCCESS,
        SELFTEST_RESULT,
        LEAKED_SLAB_CACHE,
        USE_AFTER_UNLOAD,
        STEADY_GROWTH,
        TAINT,
        CONTROL_NOT_FLAGGED,
    ];
}

/// A test's status from what went wrong. `fault` is set when the guest gave
/// out (crash, timeout, incomplete) and wins. Otherwise a failed step is
/// `fail`, and kernel-log findings make a passing test `dmesg-warn` or
/// `dmesg-fail` by their severity.
pub fn status(fault: Option<Status>, findings: &[Finding]) -> Status {
    if let Some(fault) = fault {
        return fault;
    }
    if findings
        .iter()
        .any(|f| kind::TEST_FAILURES.contains(&f.kind.as_str()))
    {
        return Status::Fail;
    }
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Fail) => Status::DmesgFail,
        Some(Severity::Warn) => Status::DmesgWarn,
        None => Status::Pass,
    }
}

/// Whether `name` is a finding kind some check can produce.
pub fn is_known_kind(name: &str) -> bool {
    known_kinds().contains(&name)
}

/// Every finding kind, for error messages: the classifier's, the runner's,
/// the ledger's and the faults'.
pub fn known_kinds() -> Vec<&'static str> {
    let mut all: Vec<&str> = crate::dmesg::Kind::ALL.iter().map(|k| k.name()).collect();
    all.extend(kind::ALL);
    all.extend(super::ledger::leak_kinds());
    all.extend(kind::FAULTS);
    all
}

fn glob_matches(glob: &str, text: &str) -> bool {
    Glob::new(glob).is_ok_and(|g| g.compile_matcher().is_match(text))
}

/// Mark findings that a suite's known issue covers; they keep the status they caused.
pub fn apply_known_issues(test: &str, findings: &mut [Finding], known: &[KnownIssue]) {
    for finding in findings.iter_mut().filter(|f| f.known_issue.is_none()) {
        if let Some(issue) = known.iter().find(|k| k.matches(test, &finding.title)) {
            finding.known_issue = Some(issue.reason.clone());
        }
    }
}

/// A control test passes when every expectation is met by a finding (its
/// findings are kept, marked as expected) and fails with a
/// `control-not-flagged` finding for each expectation that is not. A guest
/// fault keeps its status either way. `explain` adds what the run saw that
/// came closest to an expectation that was not met.
pub fn apply_controls(
    expect: &[Expectation],
    findings: &mut Vec<Finding>,
    status: Status,
    explain: impl Fn(&Expectation) -> Option<String>,
) -> Status {
    if expect.is_empty() {
        return status;
    }
    let missing: Vec<&Expectation> = expect
        .iter()
        .filter(|e| {
            !findings.iter().any(|f| {
                f.kind == e.kind
                    && glob_matches(&e.title, &f.title)
                    && glob_matches(&e.attribution, f.attribution.as_deref().unwrap_or(""))
            })
        })
        .collect();
    if missing.is_empty() {
        for finding in findings.iter_mut().filter(|f| f.known_issue.is_none()) {
            finding.known_issue = Some("expected: this test is a control".into());
        }
        // A guest fault keeps its status unless the control expects that very
        // fault (a callback left armed crashes the guest on purpose).
        let fault_expected = expect.iter().any(|e| e.kind == status.as_str());
        return match status {
            Status::Crash | Status::Timeout | Status::Incomplete | Status::Abort
                if !fault_expected =>
            {
                status
            }
            _ => Status::Pass,
        };
    }
    for expectation in missing {
        findings.push(Finding {
            kind: kind::CONTROL_NOT_FLAGGED.into(),
            title: format!(
                "control not flagged: expected a {} finding matching '{}'{}",
                expectation.kind,
                expectation.title,
                if expectation.attribution == "*" {
                    String::new()
                } else {
                    format!(" charged to '{}'", expectation.attribution)
                }
            ),
            severity: Severity::Fail,
            report: format!(
                "This test reproduces a known bug on purpose; kcycle must flag it. \
                 If it passes, kcycle's checks are broken, not the driver fixed.\n{}",
                explain(expectation).unwrap_or_default()
            ),
            attribution: None,
            known_issue: None,
        });
    }
    status.worst(Status::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(kind: &str, title: &str, severity: Severity) -> Finding {
        Finding {
            kind: kind.into(),
            title: title.into(),
            severity,
            report: String::new(),
            attribution: None,
            known_issue: None,
        }
    }

    #[test]
    fn kinds_of_both_sources_are_known() {
        assert!(is_known_kind("sysfs-duplicate"));
        assert!(is_known_kind(kind::LEAKED_SLAB_CACHE));
        assert!(!is_known_kind("leaked-slab"));
        assert!(is_known_kind("leaked-sysctl") && is_known_kind("timeout"));
        let all = known_kinds();
        let unique: std::collections::BTreeSet<&&str> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "a kind is declared twice: {all:?}");
    }

    #[test]
    fn igt_rules() {
        assert_eq!(status(None, &[]), Status::Pass);
        let warn = finding(
            "debugfs-duplicate",
            "debugfs: duplicate 'x' in 'y'",
            Severity::Warn,
        );
        let oops = finding("oops", "general protection fault in x", Severity::Fail);
        let failed = finding(kind::STEP_FAILED, "modprobe x failed", Severity::Fail);
        assert_eq!(status(None, std::slice::from_ref(&warn)), Status::DmesgWarn);
        assert_eq!(
            status(None, &[warn.clone(), oops.clone()]),
            Status::DmesgFail
        );
        assert_eq!(status(None, &[warn.clone(), failed]), Status::Fail);
        assert_eq!(status(Some(Status::Crash), &[warn]), Status::Crash);
    }

    #[test]
    fn known_issues_annotate_without_changing_status() {
        let mut findings = vec![
            finding("warning", "WARNING in i915_foo", Severity::Warn),
            finding("warning", "WARNING in other", Severity::Warn),
        ];
        let known = [KnownIssue {
            test: "kcycle@i915-mock@*".into(),
            title: "WARNING in i915_*".into(),
            reason: "bug 1".into(),
            ..KnownIssue::default()
        }];
        apply_known_issues("kcycle@i915-mock@load", &mut findings, &known);
        assert_eq!(findings[0].known_issue.as_deref(), Some("bug 1"));
        assert_eq!(findings[1].known_issue, None);
        apply_known_issues("kcycle@smoke@load", &mut findings[1..], &known);
        assert_eq!(findings[1].known_issue, None);
    }

    #[test]
    fn controls_pass_only_when_flagged() {
        let expect = [
            Expectation {
                kind: kind::LEAKED_SLAB_CACHE.into(),
                title: "*rust_i915_*".into(),
                attribution: "*cycle 1*".into(),
            },
            Expectation {
                kind: "sysfs-duplicate".into(),
                title: "*".into(),
                attribution: "*".into(),
            },
        ];
        let mut leak = finding(
            kind::LEAKED_SLAB_CACHE,
            "slab caches left after unload: rust_i915_vma",
            Severity::Fail,
        );
        leak.attribution = Some("left behind by unload in cycle 2".into());
        // Found, but charged to the wrong cycle: not flagged as expected.
        let mut wrong = vec![leak.clone()];
        assert_eq!(
            apply_controls(&expect[..1], &mut wrong, Status::DmesgFail, |_| None),
            Status::Fail
        );
        assert!(wrong
            .last()
            .unwrap()
            .title
            .ends_with("charged to '*cycle 1*'"));
        leak.attribution = Some("left behind by unload in cycle 1".into());
        let dup = finding(
            "sysfs-duplicate",
            "sysfs: cannot create duplicate filename '/kernel/slab/rust_i915_vma'",
            Severity::Warn,
        );

        let mut findings = vec![leak.clone(), dup];
        let before = status(None, &findings);
        let flagged = apply_controls(&expect, &mut findings, before, |_| None);
        assert_eq!(flagged, Status::Pass);
        assert!(findings.iter().all(|f| f.known_issue.is_some()));

        let mut findings = vec![leak];
        let half = apply_controls(&expect, &mut findings, Status::DmesgFail, |_| None);
        assert_eq!(half, Status::Fail);
        assert_eq!(findings.last().unwrap().kind, kind::CONTROL_NOT_FLAGGED);
        assert!(findings.last().unwrap().title.contains("sysfs-duplicate"));

        let mut none = vec![];
        assert_eq!(
            apply_controls(&[], &mut none, Status::Pass, |_| None),
            Status::Pass
        );
        assert_eq!(
            apply_controls(&expect, &mut none, Status::Crash, |_| None),
            Status::Crash
        );
    }
}
