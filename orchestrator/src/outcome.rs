//! What a run produces: test results with their findings, and facts about the
//! run. The runner fills these in; reporters only read them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exit::ExitStatus;
pub use crate::kind::FindingKind;
use crate::status::Status;

/// How bad a finding is: the classifier's scale serves the runner's own findings too.
pub use crate::dmesg::Severity;

/// Something wrong that a test turned up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What check found it; serialized as its name (`sysfs-duplicate`, `leaked-slab-cache`).
    pub kind: FindingKind,
    /// One line, syzkaller style: `WARNING in foo`, `leaked slab cache rust_i915_vma`.
    pub title: String,
    pub severity: Severity,
    /// The evidence: the kernel report, the slab diff, the command output.
    pub report: String,
    /// Which step caused it, e.g. "left behind by unload in cycle 2".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
    /// Set when a suite's known issue matches: the finding is reported but does not fail the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_issue: Option<String>,
}

impl Finding {
    /// A finding with no evidence, blame or known issue yet.
    pub fn new(
        kind: impl Into<FindingKind>,
        title: impl Into<String>,
        severity: Severity,
    ) -> Finding {
        Finding {
            kind: kind.into(),
            title: title.into(),
            severity,
            report: String::new(),
            attribution: None,
            known_issue: None,
        }
    }
}

/// The result of one test (or one selftest subtest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// `kcycle@<suite>@<test>[@<subtest>]`.
    pub name: String,
    pub suite: String,
    pub status: Status,
    /// Seconds since the run started when the test started.
    pub start: f64,
    pub duration: Duration,
    pub findings: Vec<Finding>,
    /// What the runner did and what the guest answered (commands, exit codes, output).
    pub out: String,
    /// Runner-side problems (SSH errors, deadlines).
    pub err: String,
    /// The kernel log while the test ran.
    pub dmesg: String,
    /// Earlier failed attempts of a test that passed on retry (JUnit `flakyFailure`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flaky_attempts: Vec<String>,
    /// Memory counters after each cycle, for trends and charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cycles: Vec<CycleSample>,
}

/// Guest state after one cycle's last step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CycleSample {
    pub cycle: u32,
    /// `meminfo:<Field>` (kB) and `slab:<cache>` (active objects).
    pub counters: std::collections::BTreeMap<String, u64>,
    /// Names left behind so far in this test, over every namespace.
    pub leftovers: usize,
}

impl TestResult {
    /// A result with nothing recorded yet but its name, suite and status.
    pub fn new(name: impl Into<String>, suite: impl Into<String>, status: Status) -> TestResult {
        TestResult {
            name: name.into(),
            suite: suite.into(),
            status,
            start: 0.0,
            duration: Duration::ZERO,
            findings: Vec::new(),
            out: String::new(),
            err: String::new(),
            dmesg: String::new(),
            flaky_attempts: Vec::new(),
            cycles: Vec::new(),
        }
    }

    /// Whether this result should fail the run: a failing status with at
    /// least one finding that is not a known issue (or no finding to explain it).
    pub fn fails_run(&self) -> bool {
        self.status.is_failure()
            && (self.findings.is_empty() || self.findings.iter().any(|f| f.known_issue.is_none()))
    }

    /// The most important finding, for one-line summaries.
    pub fn headline(&self) -> Option<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.known_issue.is_none())
            .max_by_key(|f| f.severity)
            .or_else(|| self.findings.first())
    }
}

/// Facts about the run that reports carry as properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Name of the run, e.g. `kcycle` or `kcycle shard 2/4`.
    pub name: String,
    /// `uname -r` of the guest kernel.
    pub kernel_release: String,
    /// Where the kernel came from (version + source identity).
    pub kernel_source: String,
    pub qemu_version: String,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// kcycle's own commit, when built from git.
    pub commit: String,
    pub hostname: String,
    /// The command line kcycle was started with.
    pub cmdline: Vec<String>,
    /// `I/N` when this run is one shard of several.
    pub shard: Option<String>,
    /// Unix time the run started.
    pub started_at: f64,
}

/// Count of results per status, and the run's exit status.
pub fn exit_status(results: &[TestResult]) -> ExitStatus {
    if results.iter().any(|r| r.status == Status::Abort) {
        ExitStatus::Infrastructure
    } else if results.iter().any(TestResult::fails_run) {
        ExitStatus::Failed
    } else {
        ExitStatus::Passed
    }
}

/// Results for unit tests across the crate, so each test module need not build its own.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A result of suite `s` with these findings.
    pub fn result(name: &str, status: Status, findings: Vec<Finding>) -> TestResult {
        TestResult {
            findings,
            ..TestResult::new(name, "s", status)
        }
    }

    /// A `warning` finding titled `title`, with no evidence.
    pub fn warning(title: &str) -> Finding {
        Finding::new(
            crate::kind::FindingKind::Dmesg(crate::dmesg::Kind::Warning),
            title,
            Severity::Warn,
        )
    }

    /// A result of suite `s` with one `warning` finding per title: `dmesg-warn`
    /// when there is one, `pass` when there is none.
    pub fn with_warnings(name: &str, titles: &[&str]) -> TestResult {
        let status = if titles.is_empty() {
            Status::Pass
        } else {
            Status::DmesgWarn
        };
        result(name, status, titles.iter().map(|t| warning(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{result, warning};
    use super::*;

    fn finding(known: Option<&str>) -> Finding {
        Finding {
            known_issue: known.map(Into::into),
            ..warning("WARNING in foo")
        }
    }

    #[test]
    fn known_issues_do_not_fail_the_run() {
        let known = result("a", Status::DmesgWarn, vec![finding(Some("bug 1"))]);
        assert!(!known.fails_run());
        assert_eq!(
            exit_status(std::slice::from_ref(&known)),
            ExitStatus::Passed
        );

        let mixed = result(
            "b",
            Status::DmesgWarn,
            vec![finding(Some("bug 1")), finding(None)],
        );
        assert!(mixed.fails_run());
        assert_eq!(exit_status(&[known, mixed]), ExitStatus::Failed);

        let unexplained = result("c", Status::Timeout, vec![]);
        assert!(unexplained.fails_run());
        let aborted = result("d", Status::Abort, vec![]);
        assert_eq!(
            exit_status(&[unexplained, aborted]),
            ExitStatus::Infrastructure
        );
        assert_eq!(exit_status(&[]), ExitStatus::Passed);
    }
}
