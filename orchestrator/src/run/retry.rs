//! Flakes (pure): a test that fails the run is rerun in a fresh guest; its
//! attempts' results in, the results that stand out. A pass on a rerun
//! stands, marked flaky with the failed attempts (JUnit `flakyFailure`), and
//! does not fail the run; a failure on every attempt is a real one and the
//! first attempt's evidence stands, with what the reruns saw appended. Every
//! attempt's log is kept in the result that stands.

use crate::outcome::TestResult;

/// Whether an attempt's results call for a rerun: one of them fails the run.
pub fn needs_rerun(results: &[TestResult]) -> bool {
    results.iter().any(TestResult::fails_run)
}

/// The results that stand after `attempts` (each one attempt's results, in
/// order; the test's own result first).
pub fn settle(mut attempts: Vec<Vec<TestResult>>) -> Vec<TestResult> {
    let total = attempts.len();
    if total <= 1 {
        return attempts.pop().unwrap_or_default();
    }
    let passed_last = !needs_rerun(&attempts[total - 1]);
    let (standing, others) = if passed_last {
        let last = attempts.pop().unwrap_or_default();
        (last, attempts.into_iter().enumerate().collect::<Vec<_>>())
    } else {
        let mut rest = attempts.into_iter().enumerate();
        let first = rest.next().map(|(_, r)| r).unwrap_or_default();
        (first, rest.collect())
    };
    let mut standing = standing;
    for (index, results) in others {
        let attempt = index + 1;
        for other in results.iter().filter(|r| r.fails_run()) {
            let Some(target) = matching(&mut standing, &other.name) else {
                continue;
            };
            let line = summary(attempt, total, other);
            if passed_last {
                target.flaky_attempts.push(line);
            } else {
                target
                    .err
                    .push_str(&format!("failed again on rerun: {line}\n"));
            }
            append_log(target, attempt, total, other);
        }
    }
    if passed_last {
        if let Some(own) = standing.first_mut() {
            own.out.push_str(&format!(
                "kcycle: passed on attempt {total}/{total} in a fresh guest: flaky\n"
            ));
        }
    }
    standing
}

/// The result of the same name, or the test's own (a subtest that did not
/// come back on the other attempt).
fn matching<'a>(results: &'a mut [TestResult], name: &str) -> Option<&'a mut TestResult> {
    let index = results.iter().position(|r| r.name == name).unwrap_or(0);
    results.get_mut(index)
}

/// `attempt 1/2: dmesg-warn: [warning] WARNING in foo`.
fn summary(attempt: usize, total: usize, result: &TestResult) -> String {
    let headline = result.headline().map_or_else(
        || result.err.lines().next().unwrap_or("").to_string(),
        |f| format!("[{}] {}", f.kind, f.title),
    );
    format!("attempt {attempt}/{total}: {}: {headline}", result.status)
}

fn append_log(target: &mut TestResult, attempt: usize, total: usize, other: &TestResult) {
    let header = format!("---- attempt {attempt}/{total} ({}) ----\n", other.status);
    for (into, from) in [
        (&mut target.out, &other.out),
        (&mut target.dmesg, &other.dmesg),
    ] {
        if !from.is_empty() {
            into.push_str(&header);
            into.push_str(from);
            if !from.ends_with('\n') {
                into.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::fixtures;
    use crate::status::Status;

    fn attempt(titles: &[&str]) -> Vec<TestResult> {
        let mut own = fixtures::with_warnings("kcycle@s@t", titles);
        own.out = format!("$ modprobe m ({} findings)\n", titles.len());
        own.dmesg = titles.join("\n");
        vec![own]
    }

    #[test]
    fn a_single_attempt_stands_as_it_is() {
        let results = attempt(&["WARNING in foo"]);
        assert_eq!(settle(vec![results.clone()]), results);
        assert!(settle(Vec::new()).is_empty());
    }

    #[test]
    fn a_pass_on_rerun_is_flaky_and_keeps_the_failed_attempts_log() {
        assert!(needs_rerun(&attempt(&["WARNING in foo"])));
        let settled = settle(vec![attempt(&["WARNING in foo"]), attempt(&[])]);
        let own = &settled[0];
        assert_eq!(own.status, Status::Pass);
        assert!(!own.fails_run());
        assert_eq!(
            own.flaky_attempts,
            ["attempt 1/2: dmesg-warn: [warning] WARNING in foo"]
        );
        assert!(own
            .out
            .contains("---- attempt 1/2 (dmesg-warn) ----\n$ modprobe m (1 findings)"));
        assert!(own.dmesg.contains("WARNING in foo"), "{}", own.dmesg);
        assert!(own.out.contains("passed on attempt 2/2"), "{}", own.out);
    }

    #[test]
    fn a_failure_on_every_attempt_stands_with_the_first_evidence() {
        let settled = settle(vec![
            attempt(&["WARNING in foo"]),
            attempt(&["WARNING in bar"]),
            attempt(&["WARNING in foo"]),
        ]);
        let own = &settled[0];
        assert!(own.fails_run());
        assert!(own.flaky_attempts.is_empty());
        assert_eq!(own.findings[0].title, "WARNING in foo");
        assert_eq!(
            own.err,
            "failed again on rerun: attempt 2/3: dmesg-warn: [warning] WARNING in bar\n\
             failed again on rerun: attempt 3/3: dmesg-warn: [warning] WARNING in foo\n"
        );
        assert!(own.out.contains("---- attempt 3/3 (dmesg-warn) ----"));
    }

    #[test]
    fn a_failing_subtest_is_charged_to_its_own_name() {
        let with_subtest = |fails: bool| {
            let mut results = attempt(&[]);
            let status = if fails { Status::Fail } else { Status::Pass };
            results.push(fixtures::result("kcycle@s@t@sub", status, vec![]));
            results
        };
        let settled = settle(vec![with_subtest(true), with_subtest(false)]);
        assert!(settled[0].flaky_attempts.is_empty());
        assert_eq!(settled[1].flaky_attempts, ["attempt 1/2: fail: "]);
    }
}
