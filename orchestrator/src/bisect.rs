//! Exit codes for `git bisect run` (pure): a run's outcome and results in,
//! the verdict on the commit out. `git bisect run` reads 0 as good, 1-127 as
//! bad except 125 (skip: this commit cannot be tested), and 128+ as "stop".

use crate::exit::ExitStatus;
use crate::fingerprint;
use crate::outcome::{Finding, TestResult};

/// Findings of failing tests that `pattern` names (a fingerprint, an id
/// prefix or a title glob, see [`fingerprint::Fingerprint::matches`]).
/// Known issues count: naming a finding says it is the one being hunted.
pub fn matching<'a>(
    results: &'a [TestResult],
    pattern: &str,
) -> Vec<(&'a TestResult, &'a Finding)> {
    results
        .iter()
        .filter(|r| r.status.is_failure())
        .flat_map(|r| r.findings.iter().map(move |f| (r, f)))
        .filter(|(_, f)| fingerprint::of(f).matches(pattern, &f.title))
        .collect()
}

/// The exit status `--bisect` turns a run's `outcome` into. With `finding`,
/// only that finding makes the commit bad, even if the run also broke
/// down later; without it, any failure does. An infrastructure failure
/// skips the commit, bad input stops the bisection (it would fail every
/// commit alike).
pub fn exit_status(
    outcome: ExitStatus,
    results: &[TestResult],
    finding: Option<&str>,
) -> ExitStatus {
    match (outcome, finding) {
        (ExitStatus::BadInput | ExitStatus::BisectAbort, _) => ExitStatus::BisectAbort,
        (_, Some(pattern)) if !matching(results, pattern).is_empty() => ExitStatus::Failed,
        (ExitStatus::Infrastructure | ExitStatus::BisectSkip, _) => ExitStatus::BisectSkip,
        (ExitStatus::Failed, None) => ExitStatus::Failed,
        (ExitStatus::Failed | ExitStatus::Passed, _) => ExitStatus::Passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::fixtures;
    use crate::status::Status;

    fn result(status: Status, title: &str, known: bool) -> TestResult {
        let finding = Finding {
            report: "Call Trace:\n i915_gem_cleanup+0x1/0x2\n".into(),
            known_issue: known.then(|| "bug 1".into()),
            ..fixtures::warning(title)
        };
        fixtures::result("kcycle@s@t", status, vec![finding])
    }

    #[test]
    fn without_a_finding_failures_are_bad_and_breakdowns_skipped() {
        let failed = [result(Status::DmesgWarn, "WARNING in foo", false)];
        assert_eq!(
            exit_status(ExitStatus::Passed, &[], None),
            ExitStatus::Passed
        );
        assert_eq!(
            exit_status(ExitStatus::Failed, &failed, None),
            ExitStatus::Failed
        );
        assert_eq!(
            exit_status(ExitStatus::Infrastructure, &failed, None),
            ExitStatus::BisectSkip
        );
        assert_eq!(
            exit_status(ExitStatus::BadInput, &[], None),
            ExitStatus::BisectAbort
        );
        assert_eq!(ExitStatus::BisectSkip.code(), 125);
        assert_eq!(ExitStatus::BisectAbort.code(), 128);
    }

    #[test]
    fn with_a_finding_only_that_finding_is_bad() {
        let other = [result(Status::DmesgWarn, "WARNING in bar", false)];
        let hunted = [result(Status::DmesgWarn, "WARNING in foo", false)];
        let id = fingerprint::of(&hunted[0].findings[0]).id;
        for pattern in [id.as_str(), &id[..8], "WARNING in f*", "warning: *foo"] {
            assert_eq!(
                exit_status(ExitStatus::Failed, &hunted, Some(pattern)),
                ExitStatus::Failed,
                "{pattern}"
            );
            assert_eq!(
                exit_status(ExitStatus::Failed, &other, Some(pattern)),
                ExitStatus::Passed,
                "{pattern}"
            );
        }
        // Reproduced before the guest broke down: still bad.
        assert_eq!(
            exit_status(ExitStatus::Infrastructure, &hunted, Some(&id)),
            ExitStatus::Failed
        );
        assert_eq!(
            exit_status(ExitStatus::Infrastructure, &other, Some(&id)),
            ExitStatus::BisectSkip
        );
        // A known issue still counts when it is the one named.
        let known = [result(Status::DmesgWarn, "WARNING in foo", true)];
        assert_eq!(
            exit_status(ExitStatus::Passed, &known, Some(&id)),
            ExitStatus::Failed
        );
        // A passing test's findings do not (a control's expected findings).
        let passed = [result(Status::Pass, "WARNING in foo", true)];
        assert_eq!(
            exit_status(ExitStatus::Passed, &passed, Some(&id)),
            ExitStatus::Passed
        );
    }
}
