//! The markdown summary: totals by status, each failing test with its finding
//! and attribution, and the facts needed to reproduce the run. The same text
//! ends a run on the terminal and goes to `$GITHUB_STEP_SUMMARY`.

use std::fmt::Write;

use crate::outcome::{RunInfo, TestResult};
use crate::status::Status;

pub fn render(run: &RunInfo, results: &[TestResult]) -> String {
    let mut md = String::new();
    let failing: Vec<&TestResult> = results.iter().filter(|r| r.fails_run()).collect();
    let verdict = if failing.is_empty() {
        "passed"
    } else {
        "FAILED"
    };
    let _ = writeln!(md, "# kcycle: {verdict} ({} tests)\n", results.len());

    md.push_str("| status | count |\n|---|---:|\n");
    for status in Status::ALL.iter().rev() {
        let count = results.iter().filter(|r| r.status == *status).count();
        if count > 0 {
            let _ = writeln!(md, "| {status} | {count} |");
        }
    }
    failures(&mut md, &failing);
    flakes(&mut md, results);
    known_issues(&mut md, results);

    let total: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
    md.push_str("\n## Run\n\n");
    for (key, value) in run_facts(run) {
        if !value.is_empty() {
            let _ = writeln!(md, "- {key}: {value}");
        }
    }
    let _ = writeln!(md, "- test time: {total:.1} s");
    md
}

/// Each failing test with its headline finding and attribution.
fn failures(md: &mut String, failing: &[&TestResult]) {
    if failing.is_empty() {
        return;
    }
    md.push_str("\n## Failures\n\n| test | status | finding | attribution |\n|---|---|---|---|\n");
    for result in failing {
        let (title, attribution) = match result.headline() {
            Some(f) => (f.title.as_str(), f.attribution.as_deref().unwrap_or("")),
            None => (result.err.lines().next().unwrap_or(""), ""),
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} |",
            result.name,
            result.status,
            escape(title),
            escape(attribution)
        );
    }
}

/// Tests that passed on a rerun, one line per failed attempt.
fn flakes(md: &mut String, results: &[TestResult]) {
    let flaky: Vec<&TestResult> = results
        .iter()
        .filter(|r| !r.flaky_attempts.is_empty())
        .collect();
    if flaky.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Flaky ({} passed on a rerun in a fresh guest, not failing the run)\n",
        flaky.len()
    );
    for result in flaky {
        for attempt in &result.flaky_attempts {
            let _ = writeln!(md, "- `{}` {}", result.name, escape(attempt));
        }
    }
}

/// Failures that known issues cover, with the reason each is known.
fn known_issues(md: &mut String, results: &[TestResult]) {
    let known: Vec<&TestResult> = results
        .iter()
        .filter(|r| r.status.is_failure() && !r.fails_run())
        .collect();
    if known.is_empty() {
        return;
    }
    md.push_str("\n## Known issues (not failing the run)\n\n");
    for result in known {
        for finding in result.findings.iter().filter(|f| f.known_issue.is_some()) {
            let _ = writeln!(
                md,
                "- `{}` {}: {} — {}",
                result.name,
                result.status,
                escape(&finding.title),
                escape(finding.known_issue.as_deref().unwrap_or(""))
            );
        }
    }
}

/// The facts that reproduce a run, as (label, value); empty values are left out by callers.
pub(crate) fn run_facts(run: &RunInfo) -> [(&'static str, &str); 6] {
    [
        ("kernel", run.kernel_release.as_str()),
        ("kernel source", run.kernel_source.as_str()),
        ("QEMU", run.qemu_version.as_str()),
        ("accel", run.accel.as_str()),
        ("kcycle commit", run.commit.as_str()),
        ("shard", run.shard.as_deref().unwrap_or("")),
    ]
}

/// Keep table cells on one line and pipes from splitting them.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
