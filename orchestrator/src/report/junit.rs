//! JUnit XML for dashboards (pure: results in, XML text out).
//!
//! One `<testsuite>` per suite × kernel, one `<testcase>` per result. A test
//! that fails the run is a `<failure>` (or `<error>` when the infrastructure or
//! the guest gave out) whose body is each finding's title and report; the
//! kernel log goes to system-out. Every testcase carries its IGT status as a
//! property, so a known issue keeps its status while counting as a success,
//! and every status but pass is also the first line of system-err, for
//! consumers that show no properties.

use std::collections::BTreeMap;

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use crate::fingerprint;
use crate::outcome::{RunInfo, TestResult};
use crate::status::Status;

#[derive(Debug, thiserror::Error)]
#[error("failed to serialize JUnit XML")]
pub struct JunitError(#[source] quick_junit::SerializeError);

/// Render results as a JUnit XML document.
pub fn render(run: &RunInfo, results: &[TestResult]) -> Result<String, JunitError> {
    let mut report = Report::new(if run.name.is_empty() {
        "kcycle"
    } else {
        &run.name
    });
    let mut suites: BTreeMap<&str, Vec<&TestResult>> = BTreeMap::new();
    for result in results {
        suites.entry(&result.suite).or_default().push(result);
    }
    let mut total = std::time::Duration::ZERO;
    for (suite_name, members) in suites {
        let mut suite = TestSuite::new(format!("{suite_name}@{}", run.kernel_release));
        suite.add_properties(run_properties(run));
        for result in members {
            total += result.duration;
            suite.add_test_case(test_case(suite_name, result));
        }
        suite.set_time(members_time(&suite));
        report.add_test_suite(suite);
    }
    report.set_time(total);
    report.to_string().map_err(JunitError)
}

fn members_time(suite: &TestSuite) -> std::time::Duration {
    suite.test_cases.iter().filter_map(|c| c.time).sum()
}

fn run_properties(run: &RunInfo) -> Vec<Property> {
    let mut props = vec![
        Property::new("kernel", run.kernel_release.as_str()),
        Property::new("kernel-source", run.kernel_source.as_str()),
        Property::new("qemu", run.qemu_version.as_str()),
        Property::new("accel", run.accel.as_str()),
        Property::new("commit", run.commit.as_str()),
        Property::new("hostname", run.hostname.as_str()),
    ];
    if let Some(shard) = &run.shard {
        props.push(Property::new("shard", shard.as_str()));
    }
    props
}

fn test_case(suite: &str, result: &TestResult) -> TestCase {
    let status = if result.fails_run() {
        let kind = match result.status {
            Status::Crash | Status::Timeout | Status::Incomplete | Status::Abort => {
                NonSuccessKind::Error
            }
            _ => NonSuccessKind::Failure,
        };
        let mut status = TestCaseStatus::non_success(kind);
        let headline = result.headline();
        status.set_message(match headline {
            Some(finding) => format!("{}: {}", result.status, finding.title),
            None => result.status.to_string(),
        });
        status.set_type(headline.map_or(result.status.as_str(), |f| f.kind.name()));
        status.set_description(failure_body(result));
        status
    } else if matches!(result.status, Status::Skip | Status::Notrun) {
        let mut status = TestCaseStatus::skipped();
        status.set_message(result.status.as_str());
        if !result.err.is_empty() {
            status.set_description(result.err.as_str());
        }
        status
    } else {
        let mut status = TestCaseStatus::success();
        for attempt in &result.flaky_attempts {
            let mut rerun = TestRerun::new(NonSuccessKind::Failure);
            rerun.set_message(attempt.as_str());
            status.add_rerun(rerun);
        }
        status
    };
    let mut case = TestCase::new(result.name.as_str(), status);
    case.set_classname(suite);
    case.set_time(result.duration);
    case.add_property(Property::new("status", result.status.as_str()));
    for finding in &result.findings {
        case.add_property(Property::new("fingerprint", fingerprint::of(finding).id));
    }
    for finding in result
        .findings
        .iter()
        .filter_map(|f| f.known_issue.as_ref())
    {
        case.add_property(Property::new("known-issue", finding.as_str()));
    }
    let mut out = result.out.clone();
    if !result.dmesg.is_empty() {
        out.push_str("\n--- dmesg ---\n");
        out.push_str(&result.dmesg);
    }
    if !out.is_empty() {
        case.set_system_out(out);
    }
    // Consumers that know only pass/fail/skip would lose IGT's distinction
    // (dmesg-warn is not fail): every status but pass also opens system-err.
    let err = match status_marker(result) {
        Some(marker) if result.err.is_empty() => marker,
        Some(marker) => format!("{marker}\n{}", result.err),
        None => result.err.clone(),
    };
    if !err.is_empty() {
        case.set_system_err(err);
    }
    case
}

/// `[kcycle] IGT status: dmesg-warn (…)`, the first line of system-err for
/// every status but pass.
pub fn status_marker(result: &TestResult) -> Option<String> {
    let meaning = match result.status {
        Status::Pass => return None,
        Status::Notrun => "not run",
        Status::Skip => "the test cannot run here",
        Status::DmesgWarn => "the test passed; the kernel log had a warning-level finding",
        Status::Warn => "the test itself reported a warning",
        Status::DmesgFail => "the test passed; the kernel log had a failure-level finding",
        Status::Fail => "the test failed",
        Status::Timeout => "a step did not finish within its deadline",
        Status::Crash => "the guest kernel crashed",
        Status::Incomplete => "the result could not be collected (QEMU died or SSH was lost)",
        Status::Abort => "the run stopped here",
    };
    let known = if result.status.is_failure() && !result.fails_run() {
        "; a known issue, not failing the run"
    } else {
        ""
    };
    Some(format!(
        "[kcycle] IGT status: {} ({meaning}{known})",
        result.status
    ))
}

/// Each finding's title, attribution and report, worst first.
fn failure_body(result: &TestResult) -> String {
    let mut findings: Vec<_> = result.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let mut body = String::new();
    for finding in findings {
        body.push_str(&format!("[{}] {}", finding.kind, finding.title));
        if let Some(attribution) = &finding.attribution {
            body.push_str(&format!(" ({attribution})"));
        }
        if let Some(reason) = &finding.known_issue {
            body.push_str(&format!(" [known issue: {reason}]"));
        }
        body.push('\n');
        if !finding.report.is_empty() {
            body.push_str(&finding.report);
            if !finding.report.ends_with('\n') {
                body.push('\n');
            }
        }
        body.push('\n');
    }
    if body.is_empty() && !result.err.is_empty() {
        body.push_str(&result.err);
    }
    body
}
