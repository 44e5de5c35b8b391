//! From findings to a test's status (pure): IGT's rules, then known issues
//! and control expectations from the suite.

use crate::outcome::{Finding, FindingKind, Severity};
use crate::status::Status;
use crate::suite::{Expectation, KnownIssue};

/// A test's status from what went wrong. `fault` is set when the guest gave
/// out (crash, timeout, incomplete) and wins. Otherwise a failed step is
/// `fail`, and kernel-log findings make a passing test `dmesg-warn` or
/// `dmesg-fail` by their severity.
pub fn status(fault: Option<Status>, findings: &[Finding]) -> Status {
    if let Some(fault) = fault {
        return fault;
    }
    if findings.iter().any(|f| f.kind.is_test_failure()) {
        return Status::Fail;
    }
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Fail) => Status::DmesgFail,
        Some(Severity::Warn) => Status::DmesgWarn,
        None => Status::Pass,
    }
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
                    && e.title.matches(&f.title)
                    && e.attribution
                        .matches(f.attribution.as_deref().unwrap_or(""))
            })
        })
        .collect();
    if missing.is_empty() {
        for finding in findings.iter_mut().filter(|f| f.known_issue.is_none()) {
            finding.known_issue = Some("expected: this test is a control".into());
        }
        // A guest fault keeps its status unless the control expects that very
        // fault (a callback left armed crashes the guest on purpose).
        let fault_expected = expect.iter().any(|e| {
            crate::kind::Fault::from_status(status).is_some_and(|f| e.kind == FindingKind::Fault(f))
        });
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
            kind: FindingKind::CONTROL_NOT_FLAGGED,
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
    use crate::suite::Pattern;

    fn finding(kind: &str, title: &str, severity: Severity) -> Finding {
        Finding::new(kind, title, severity)
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
        let failed = finding("step-failed", "modprobe x failed", Severity::Fail);
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
                kind: FindingKind::LEAKED_SLAB_CACHE,
                title: Pattern::new("*rust_i915_*").unwrap(),
                attribution: Pattern::new("*cycle 1*").unwrap(),
            },
            Expectation {
                kind: "sysfs-duplicate".into(),
                title: Pattern::any(),
                attribution: Pattern::any(),
            },
        ];
        let mut leak = finding(
            "leaked-slab-cache",
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
        assert_eq!(
            findings.last().unwrap().kind,
            FindingKind::CONTROL_NOT_FLAGGED
        );
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
