//! A known-issues file from several runs (pure), as Mesa CI keeps its
//! fails and flakes lists: a finding in every run of its test is a known
//! issue, one in only some runs is a flake. Entries of an existing file keep
//! their reason, bug, dates and globs; those whose tests ran and that
//! matched nothing are dropped (the bug was fixed).

use std::collections::{BTreeMap, BTreeSet};

use super::Run;
use crate::status::Status;
use crate::suite::{Date, KnownIssue};

/// The refreshed file, and what left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    pub known: Vec<KnownIssue>,
    pub flakes: Vec<KnownIssue>,
    /// Entries of the existing file that matched nothing in runs of their tests.
    pub dropped: Vec<KnownIssue>,
}

/// In how many runs a finding appeared, of the runs its test ran in.
#[derive(Debug, Default)]
struct Seen {
    found: BTreeSet<usize>,
}

/// Refresh `existing` from `runs`; new entries are first seen `today`.
pub fn update(existing: &[KnownIssue], runs: &[Run], today: Date) -> Baseline {
    let mut ran: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    let mut seen: BTreeMap<(&str, &str), Seen> = BTreeMap::new();
    for (index, run) in runs.iter().enumerate() {
        for result in &run.results {
            if matches!(result.status, Status::Skip | Status::Notrun) {
                continue;
            }
            ran.entry(&result.name).or_default().insert(index);
            if !result.status.is_failure() {
                continue;
            }
            for finding in &result.findings {
                seen.entry((&result.name, &finding.title))
                    .or_default()
                    .found
                    .insert(index);
            }
        }
    }
    // Existing entry index -> whether every finding it covers is consistent.
    let mut kept: BTreeMap<usize, bool> = BTreeMap::new();
    let mut baseline = Baseline::default();
    for ((test, title), seen) in &seen {
        let runs_of_test = ran.get(test).map_or(0, BTreeSet::len);
        let consistent = seen.found.len() == runs_of_test;
        if let Some(index) = existing.iter().position(|k| k.matches(test, title)) {
            *kept.entry(index).or_insert(true) &= consistent;
            continue;
        }
        let entry = KnownIssue {
            test: test.to_string(),
            title: glob_escape(title),
            reason: format!(
                "baseline: found in {} of {runs_of_test} runs",
                seen.found.len()
            ),
            first_seen: Some(today),
            flake: !consistent,
            ..KnownIssue::default()
        };
        if consistent {
            baseline.known.push(entry);
        } else {
            baseline.flakes.push(entry);
        }
    }
    for (index, issue) in existing.iter().enumerate() {
        let mut issue = issue.clone();
        match kept.get(&index) {
            Some(consistent) => issue.flake = issue.flake || !consistent,
            // Its tests ran and it matched nothing: fixed, or stale.
            None if ran.keys().any(|t| issue.matches_test(t)) => {
                baseline.dropped.push(issue);
                continue;
            }
            None => {}
        }
        if issue.flake {
            baseline.flakes.push(issue);
        } else {
            baseline.known.push(issue);
        }
    }
    let order = |a: &KnownIssue, b: &KnownIssue| (&a.test, &a.title).cmp(&(&b.test, &b.title));
    baseline.known.sort_by(order);
    baseline.flakes.sort_by(order);
    baseline
}

/// A glob that matches exactly `text`.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' | '?' | '[' | ']' | '{' | '}' | '\\' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The file: a comment saying where it came from, known issues, then flakes.
pub fn render(baseline: &Baseline, runs: usize, today: Date) -> String {
    let mut out = format!(
        "# Known issues and flakes, written by `kcycle baseline update` from {runs} runs on {today}.\n\
         # Edit reason, bug, kernel and expires freely: an update keeps them.\n\
         # Use with `kcycle run --known-issues FILE`.\n"
    );
    for (table, issues) in [
        ("known_issue", &baseline.known),
        ("flake", &baseline.flakes),
    ] {
        for issue in issues {
            out.push_str(&format!("\n[[{table}]]\n"));
            out.push_str(&format!("test = {}\n", quote(&issue.test)));
            out.push_str(&format!("title = {}\n", quote(&issue.title)));
            out.push_str(&format!("reason = {}\n", quote(&issue.reason)));
            if let Some(bug) = &issue.bug {
                out.push_str(&format!("bug = {}\n", quote(bug)));
            }
            if let Some(kernel) = &issue.kernel {
                out.push_str(&format!("kernel = {}\n", quote(&kernel.to_string())));
            }
            if let Some(date) = issue.first_seen {
                out.push_str(&format!("first_seen = {date}\n"));
            }
            if let Some(date) = issue.expires {
                out.push_str(&format!("expires = {date}\n"));
            }
        }
    }
    out
}

fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::outcome::{fixtures, RunInfo, TestResult};
    use crate::report::igt_json;
    use crate::suite::{parse_known_issues, SuiteSource};

    fn result(test: &str, titles: &[&str]) -> TestResult {
        fixtures::with_warnings(&format!("kcycle@s@{test}"), titles)
    }

    fn run(results: Vec<TestResult>) -> Run {
        let text = serde_json::to_string(&igt_json::render(&RunInfo::default(), &results)).unwrap();
        let (info, results) = igt_json::parse(&text).unwrap();
        Run {
            label: "r".into(),
            info,
            results,
        }
    }

    fn today() -> Date {
        "2026-11-05".parse().unwrap()
    }

    #[test]
    fn consistent_failures_become_known_and_others_flakes() {
        let runs = [
            run(vec![
                result("a", &["WARNING in foo"]),
                result("b", &["WARNING in bar [i915]"]),
            ]),
            run(vec![result("a", &["WARNING in foo"]), result("b", &[])]),
        ];
        let baseline = update(&[], &runs, today());
        assert_eq!(baseline.known.len(), 1);
        assert_eq!(baseline.known[0].test, "kcycle@s@a");
        assert_eq!(baseline.known[0].reason, "baseline: found in 2 of 2 runs");
        assert_eq!(baseline.known[0].first_seen, Some(today()));
        assert_eq!(baseline.flakes.len(), 1);
        assert!(baseline.flakes[0].matches("kcycle@s@b", "WARNING in bar [i915]"));
        assert!(!baseline.flakes[0].matches("kcycle@s@b", "WARNING in bar i"));

        // The file reads back as the same entries.
        let text = render(&baseline, runs.len(), today());
        let parsed = parse_known_issues(SuiteSource::new(Path::new("k.toml"), &text)).unwrap();
        let mut expected = baseline.known.clone();
        expected.extend(baseline.flakes.clone());
        assert_eq!(parsed, expected);
    }

    #[test]
    fn existing_entries_keep_their_fields_or_are_dropped_when_fixed() {
        let existing = parse_known_issues(SuiteSource::new(
            Path::new("k.toml"),
            r#"
[[known_issue]]
test = "kcycle@s@*"
title = "WARNING in foo"
reason = "https://example.invalid/1"
bug = "1"
first_seen = 2025-01-01
expires = 2027-01-01

[[known_issue]]
test = "kcycle@s@c"
title = "WARNING in gone"
reason = "fixed by the patch under test"

[[known_issue]]
test = "kcycle@other@*"
reason = "not run here: kept"
"#,
        ))
        .unwrap();
        let runs = [
            run(vec![result("a", &["WARNING in foo"]), result("c", &[])]),
            run(vec![result("a", &[]), result("c", &[])]),
        ];
        let baseline = update(&existing, &runs, today());
        assert_eq!(baseline.dropped, [existing[1].clone()]);
        assert_eq!(baseline.known, [existing[2].clone()]);
        let mut flaky = existing[0].clone();
        flaky.flake = true;
        assert_eq!(baseline.flakes, [flaky]);
    }

    #[test]
    fn escaped_globs_match_only_their_text() {
        for title in ["a*b", "x [i915] y?", "{a,b}", "back\\slash"] {
            let glob = globset::Glob::new(&glob_escape(title)).unwrap();
            let matcher = glob.compile_matcher();
            assert!(matcher.is_match(title), "{title}");
            assert!(!matcher.is_match(format!("{title}!")), "{title}");
        }
    }
}
