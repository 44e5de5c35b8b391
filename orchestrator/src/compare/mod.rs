//! Two runs in, a verdict out (pure): what a change broke, fixed, left
//! failing or made flaky, in the style of a CI's "possible regressions /
//! possible fixes" mail.
//!
//! Tests are matched by name; findings by [`fingerprint`](crate::fingerprint),
//! recomputed on both sides so results written by any kcycle version compare
//! alike. Runs of different suites or kernels are compared where they
//! overlap, and the difference is stated first.

pub mod baseline;
mod render;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::fingerprint;
use crate::outcome::{Finding, RunInfo, TestResult};
use crate::status::Status;

pub use render::{json, markdown, text};

/// One side of a comparison: where it came from and what it holds.
#[derive(Debug, Clone)]
pub struct Run {
    /// How to name the run to a reader: its directory or file.
    pub label: String,
    pub info: RunInfo,
    pub results: Vec<TestResult>,
}

/// What happened to one test between the two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Fails now and did not before, or fails with a finding or a status it did not have.
    NewFailure,
    /// Failed before, passes now.
    Fixed,
    /// Failed before and fails the same way now.
    StillFailing,
    /// Passed now only on a rerun.
    Flaky,
    /// Fails now, but only with known issues.
    Known,
    /// Ran before; skipped or not run now.
    NewlySkipped,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::NewFailure,
        Category::Fixed,
        Category::StillFailing,
        Category::Flaky,
        Category::Known,
        Category::NewlySkipped,
    ];

    /// The heading a report gives this category.
    pub fn heading(self) -> &'static str {
        match self {
            Category::NewFailure => "Possible regressions",
            Category::Fixed => "Possible fixes",
            Category::StillFailing => "Still failing",
            Category::Flaky => "Flaky",
            Category::Known => "Known issues",
            Category::NewlySkipped => "Newly skipped or not run",
        }
    }

    /// Short name for the verdict line: "2 new failures".
    fn noun(self, count: usize) -> String {
        let plural = if count == 1 { "" } else { "s" };
        match self {
            Category::NewFailure => format!("{count} new failure{plural}"),
            Category::Fixed => format!("{count} fixed"),
            Category::StillFailing => format!("{count} still failing"),
            Category::Flaky => format!("{count} flaky"),
            Category::Known => format!("{count} known"),
            Category::NewlySkipped => format!("{count} newly skipped"),
        }
    }
}

/// A finding as a comparison shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub kind: crate::kind::FindingKind,
    pub title: String,
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_issue: Option<String>,
}

impl Shown {
    fn of(finding: &Finding) -> Shown {
        Shown {
            kind: finding.kind.clone(),
            title: finding.title.clone(),
            fingerprint: fingerprint::of(finding).id,
            attribution: finding.attribution.clone(),
            known_issue: finding.known_issue.clone(),
        }
    }
}

/// One test that changed, or keeps failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub category: Category,
    pub test: String,
    pub base: Status,
    pub new: Status,
    /// The findings that explain the category: the new ones for a new
    /// failure, the gone ones for a fix, the current ones otherwise.
    pub findings: Vec<Shown>,
}

/// What a run was, for the heading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    pub label: String,
    pub kernel: String,
    pub accel: String,
    pub suites: Vec<String>,
    pub tests: usize,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub base: Side,
    pub new: Side,
    /// Plain sentences about what does not match (kernels, suites).
    pub notes: Vec<String>,
    /// Tests in both runs.
    pub compared: usize,
    pub only_in_base: Vec<String>,
    pub only_in_new: Vec<String>,
    /// Sorted by category, then test name.
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{base} and {new} have no test in common ({base_suites} vs {new_suites}): nothing to compare")]
    NoOverlap {
        base: String,
        new: String,
        base_suites: String,
        new_suites: String,
    },
}

impl Comparison {
    /// Entries of one category.
    pub fn of(&self, category: Category) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.category == category)
    }

    /// Whether the new run broke something the base run did not.
    pub fn has_new_failures(&self) -> bool {
        self.of(Category::NewFailure).next().is_some()
    }

    /// "1 new failure, 2 fixed, ..., in 12 tests compared".
    pub fn verdict(&self) -> String {
        let counts: Vec<String> = Category::ALL
            .iter()
            .map(|c| c.noun(self.of(*c).count()))
            .collect();
        format!("{} ({} tests compared)", counts.join(", "), self.compared)
    }
}

/// Compare `new` against `base`.
pub fn compare(base: &Run, new: &Run) -> Result<Comparison, CompareError> {
    let base_by_name: BTreeMap<&str, &TestResult> =
        base.results.iter().map(|r| (r.name.as_str(), r)).collect();
    let new_by_name: BTreeMap<&str, &TestResult> =
        new.results.iter().map(|r| (r.name.as_str(), r)).collect();
    let (base_side, new_side) = (side(base), side(new));
    let common: Vec<(&TestResult, &TestResult)> = new_by_name
        .iter()
        .filter_map(|(name, n)| base_by_name.get(name).map(|b| (*b, *n)))
        .collect();
    if common.is_empty() {
        return Err(CompareError::NoOverlap {
            base: base.label.clone(),
            new: new.label.clone(),
            base_suites: suites_list(&base_side.suites),
            new_suites: suites_list(&new_side.suites),
        });
    }
    let mut entries: Vec<Entry> = common.iter().filter_map(|(b, n)| classify(b, n)).collect();
    entries.sort_by(|a, b| (a.category, &a.test).cmp(&(b.category, &b.test)));
    let only = |from: &BTreeMap<&str, &TestResult>, other: &BTreeMap<&str, &TestResult>| {
        from.keys()
            .filter(|name| !other.contains_key(*name))
            .map(|name| name.to_string())
            .collect::<Vec<_>>()
    };
    Ok(Comparison {
        notes: notes(&base_side, &new_side),
        compared: common.len(),
        only_in_base: only(&base_by_name, &new_by_name),
        only_in_new: only(&new_by_name, &base_by_name),
        base: base_side,
        new: new_side,
        entries,
    })
}

fn side(run: &Run) -> Side {
    let suites: BTreeSet<&str> = run.results.iter().map(|r| r.suite.as_str()).collect();
    Side {
        label: run.label.clone(),
        kernel: run.info.kernel_release.clone(),
        accel: run.info.accel.clone(),
        suites: suites.into_iter().map(str::to_string).collect(),
        tests: run.results.len(),
    }
}

fn suites_list(suites: &[String]) -> String {
    if suites.is_empty() {
        "no suites".into()
    } else {
        format!("suites {}", suites.join(", "))
    }
}

/// What differs between the runs besides their results.
fn notes(base: &Side, new: &Side) -> Vec<String> {
    let mut notes = Vec::new();
    if base.kernel != new.kernel {
        notes.push(format!(
            "the kernels differ: base ran {}, new ran {}",
            or_unknown(&base.kernel),
            or_unknown(&new.kernel)
        ));
    }
    if base.suites != new.suites {
        let missing = |a: &Side, b: &Side| -> Vec<String> {
            a.suites
                .iter()
                .filter(|s| !b.suites.contains(s))
                .cloned()
                .collect()
        };
        let (only_base, only_new) = (missing(base, new), missing(new, base));
        let mut parts = Vec::new();
        if !only_base.is_empty() {
            parts.push(format!("only base ran {}", only_base.join(", ")));
        }
        if !only_new.is_empty() {
            parts.push(format!("only new ran {}", only_new.join(", ")));
        }
        notes.push(format!(
            "the suites differ ({}); compared where they overlap",
            parts.join("; ")
        ));
    }
    if base.accel != new.accel && !base.accel.is_empty() && !new.accel.is_empty() {
        notes.push(format!(
            "the accelerators differ: base {}, new {} (timing-sensitive tests may differ)",
            base.accel, new.accel
        ));
    }
    notes
}

fn or_unknown(text: &str) -> &str {
    if text.is_empty() {
        "an unknown kernel"
    } else {
        text
    }
}

fn ran(status: Status) -> bool {
    !matches!(status, Status::Skip | Status::Notrun)
}

/// Findings that fail the run (not known issues).
fn failing(result: &TestResult) -> impl Iterator<Item = &Finding> {
    result.findings.iter().filter(|f| f.known_issue.is_none())
}

/// What happened to one test; `None` when nothing worth reporting did
/// (it passed, or was skipped, both times).
fn classify(base: &TestResult, new: &TestResult) -> Option<Entry> {
    let entry = |category: Category, findings: Vec<&Finding>| Entry {
        category,
        test: new.name.clone(),
        base: base.status,
        new: new.status,
        findings: findings.into_iter().map(Shown::of).collect(),
    };
    if ran(base.status) && !ran(new.status) {
        return Some(entry(Category::NewlySkipped, vec![]));
    }
    if new.fails_run() {
        let current: Vec<&Finding> = failing(new).collect();
        if !base.fails_run() {
            return Some(entry(Category::NewFailure, current));
        }
        let before: BTreeSet<String> = base
            .findings
            .iter()
            .map(|f| fingerprint::of(f).id)
            .collect();
        let added: Vec<&Finding> = current
            .iter()
            .copied()
            .filter(|f| !before.contains(&fingerprint::of(f).id))
            .collect();
        return Some(if !added.is_empty() {
            entry(Category::NewFailure, added)
        } else if new.status > base.status {
            entry(Category::NewFailure, current)
        } else {
            entry(Category::StillFailing, current)
        });
    }
    if !new.flaky_attempts.is_empty() {
        return Some(entry(Category::Flaky, new.findings.iter().collect()));
    }
    if new.status.is_failure() {
        return Some(entry(Category::Known, new.findings.iter().collect()));
    }
    if base.fails_run() {
        return Some(entry(Category::Fixed, failing(base).collect()));
    }
    None
}
