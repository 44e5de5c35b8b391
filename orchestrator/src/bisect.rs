//! Bisection (pure). Exit codes for `git bisect run`: a run's outcome and
//! results in, the verdict on the commit out (`git bisect run` reads 0 as
//! good, 1-127 as bad except 125 (skip: this commit cannot be tested), and
//! 128+ as "stop"). And `kcycle bisect`'s search itself: [`Bisection`] over
//! the commits between a good and a bad one, and [`runs_per_step`], how often
//! a commit must come out good before a flaky finding's absence is believed.

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

/// What one tested commit came out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    Bad,
    /// Could not be tested (it did not build, the guest broke).
    Skip,
}

impl Verdict {
    /// The verdict a `kcycle … --bisect` exit status stands for; `None` for
    /// "abort" (128) and for anything `--bisect` never exits with.
    pub fn of_exit(code: i32) -> Option<Verdict> {
        match code {
            0 => Some(Verdict::Good),
            1 => Some(Verdict::Bad),
            125 => Some(Verdict::Skip),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Skip => "skip",
        }
    }
}

/// A binary search for the first bad commit. `commits` run oldest to newest
/// from the first commit after the good one to the bad one (as `git rev-list
/// --reverse GOOD..BAD` lists them); the last is bad by assumption (or by a
/// check of the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct Bisection {
    commits: Vec<String>,
    /// Every commit before `low` is good.
    low: usize,
    /// The commit at `high` is bad.
    high: usize,
    skipped: Vec<bool>,
}

/// Where a bisection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The first bad commit.
    Commit(String),
    /// Skipped commits hide which of these (oldest first, the last is bad) is the first bad one.
    OneOf(Vec<String>),
}

impl Bisection {
    /// `None` when there is no commit between good and bad.
    pub fn new(commits: Vec<String>) -> Option<Bisection> {
        let high = commits.len().checked_sub(1)?;
        Some(Bisection {
            skipped: vec![false; commits.len()],
            commits,
            low: 0,
            high,
        })
    }

    /// The next commit to test, or `None` when the search is over.
    /// The middle of what is left, or the nearest untested one beside it
    /// when it was skipped.
    pub fn next(&self) -> Option<&str> {
        let open: Vec<usize> = (self.low..self.high)
            .filter(|&i| !self.skipped[i])
            .collect();
        let middle = self.low + (self.high - self.low) / 2;
        open.iter()
            .min_by_key(|&&i| (i.abs_diff(middle), i))
            .map(|&i| self.commits[i].as_str())
    }

    /// Record a verdict on `commit` (one [`Bisection::next`] returned).
    pub fn record(&mut self, commit: &str, verdict: Verdict) {
        let Some(index) = self.commits.iter().position(|c| c == commit) else {
            return;
        };
        match verdict {
            Verdict::Good => self.low = self.low.max(index + 1),
            Verdict::Bad => self.high = self.high.min(index),
            Verdict::Skip => self.skipped[index] = true,
        }
        self.low = self.low.min(self.high);
    }

    /// Commits in the search, the bad one included.
    pub fn len(&self) -> usize {
        self.commits.len()
    }

    /// Never: [`Bisection::new`] refuses an empty range.
    pub fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    /// Steps left at most, as `git bisect` counts them (log2 of the range).
    pub fn steps_left(&self) -> u32 {
        let left = (self.low..self.high).filter(|&i| !self.skipped[i]).count() as u32;
        u32::BITS - left.leading_zeros()
    }

    /// The answer once [`Bisection::next`] is `None`.
    pub fn found(&self) -> Option<Found> {
        if self.next().is_some() {
            return None;
        }
        if self.low == self.high {
            return Some(Found::Commit(self.commits[self.high].clone()));
        }
        Some(Found::OneOf(self.commits[self.low..=self.high].to_vec()))
    }
}

/// Runs a commit needs, all good, before it is called good: enough that a
/// finding reproducing `bad` times in `tries` runs of a bad commit would
/// have shown with probability `confidence`. `None` when it never reproduced.
pub fn runs_per_step(bad: u32, tries: u32, confidence: f64) -> Option<u32> {
    if bad == 0 || tries == 0 {
        return None;
    }
    let rate = (f64::from(bad) / f64::from(tries)).min(1.0);
    if rate >= 1.0 {
        return Some(1);
    }
    // (1 - rate)^n <= 1 - confidence
    let runs = ((1.0 - confidence).ln() / (1.0 - rate).ln()).ceil();
    Some(runs.clamp(1.0, 20.0) as u32)
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

    fn commits(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("c{i}")).collect()
    }

    /// Bisect with an oracle: commits from `first_bad` on are bad, `skip` cannot be tested.
    fn search(n: usize, first_bad: usize, skip: &[usize]) -> (Found, usize) {
        let mut bisection = Bisection::new(commits(n)).unwrap();
        let mut steps = 0;
        while let Some(commit) = bisection.next().map(str::to_string) {
            let i: usize = commit[1..].parse().unwrap();
            let verdict = if skip.contains(&i) {
                Verdict::Skip
            } else if i >= first_bad {
                Verdict::Bad
            } else {
                Verdict::Good
            };
            bisection.record(&commit, verdict);
            steps += 1;
            assert!(steps <= n, "the search does not end");
        }
        (bisection.found().unwrap(), steps)
    }

    #[test]
    fn finds_every_first_bad_commit_in_log2_steps() {
        for n in 1..=33 {
            for first_bad in 1..=n {
                let (found, steps) = search(n, first_bad, &[]);
                assert_eq!(found, Found::Commit(format!("c{first_bad}")), "n={n}");
                let bound = (usize::BITS - n.leading_zeros()) as usize;
                assert!(steps <= bound, "n={n} first_bad={first_bad}: {steps} steps");
            }
        }
    }

    #[test]
    fn a_skipped_commit_is_stepped_around_or_named_in_the_range() {
        // c3 cannot be tested; the first bad is c5: found exactly.
        assert_eq!(search(8, 5, &[3]).0, Found::Commit("c5".into()));
        // The first bad is the skipped one: c3 or c4 (c2 good, c4 bad).
        assert_eq!(
            search(8, 3, &[3]).0,
            Found::OneOf(vec!["c3".into(), "c4".into()])
        );
        // Everything but the bad end skipped.
        assert_eq!(search(3, 3, &[1, 2]).0, Found::OneOf(commits(3)));
    }

    #[test]
    fn verdicts_are_read_from_exit_codes() {
        assert_eq!(Verdict::of_exit(0), Some(Verdict::Good));
        assert_eq!(Verdict::of_exit(1), Some(Verdict::Bad));
        assert_eq!(Verdict::of_exit(3), None);
        assert_eq!(Verdict::of_exit(125), Some(Verdict::Skip));
        assert_eq!(Verdict::of_exit(128), None);
        assert_eq!(Verdict::of_exit(-1), None);
        assert!(Bisection::new(Vec::new()).is_none());
        let one = Bisection::new(commits(1)).unwrap();
        assert_eq!(one.next(), None);
        assert_eq!(one.found(), Some(Found::Commit("c1".into())));
        assert_eq!(Bisection::new(commits(8)).unwrap().steps_left(), 3);
    }

    #[test]
    fn flaky_findings_need_more_good_runs() {
        assert_eq!(runs_per_step(2, 2, 0.95), Some(1));
        // Half the time: 0.5^5 < 5%.
        assert_eq!(runs_per_step(1, 2, 0.95), Some(5));
        assert_eq!(runs_per_step(1, 3, 0.95), Some(8));
        assert_eq!(runs_per_step(0, 2, 0.95), None);
        assert_eq!(runs_per_step(1, 100, 0.95), Some(20), "capped");
    }
}
