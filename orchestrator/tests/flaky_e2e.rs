//! Flake reruns for real: a test that fails on its first attempt and passes
//! on the rerun in a fresh guest (its `run` step checks `KCYCLE_ATTEMPT`) is
//! reported flaky and does not fail the run; a test that fails in every
//! guest fails it, with the rerun's evidence appended. Both attempts keep
//! their logs (results.json and one console file per boot).

mod support;

use support::result;

use kcycle::status::Status;

const SUITE: &str = r#"
name = "flaky"
description = "One test that passes only on a rerun, one that never passes."
step_timeout = 60

[[test]]
name = "second-try"
steps = [
    { run = 'echo "attempt $KCYCLE_ATTEMPT"; test "$KCYCLE_ATTEMPT" -gt 1' },
    { load = "kcycle_leaks" },
    { unload = "kcycle_leaks" },
]

[[test]]
name = "always"
steps = [{ run = 'echo "attempt $KCYCLE_ATTEMPT: broken" >&2; false' }]
"#;

#[test]
fn a_pass_on_rerun_is_flaky_and_a_failure_in_every_guest_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("flaky.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let Some((code, stderr, results, dir)) =
        support::run_suites(tmp.path(), &[suite.to_str().unwrap(), "--retries", "1"])
    else {
        return;
    };
    assert_eq!(results.len(), 2, "one result per test: {results:#?}");

    let flaky = result(&results, "kcycle@flaky@second-try");
    assert_eq!(flaky.status, Status::Pass, "{flaky:#?}\n{stderr}");
    assert!(flaky.findings.is_empty(), "{:#?}", flaky.findings);
    assert_eq!(flaky.flaky_attempts.len(), 1, "{:?}", flaky.flaky_attempts);
    assert!(
        flaky.flaky_attempts[0].starts_with("attempt 1/2: fail: [step-failed] run `echo"),
        "{:?}",
        flaky.flaky_attempts
    );
    // Both attempts' logs: the failed first one (appended) and the passing rerun.
    assert!(
        flaky.out.contains("---- attempt 1/2 (fail) ----"),
        "{}",
        flaky.out
    );
    assert!(flaky.out.contains("attempt 1\n"), "{}", flaky.out);
    assert!(flaky.out.contains("attempt 2\n"), "{}", flaky.out);

    let always = result(&results, "kcycle@flaky@always");
    assert_eq!(always.status, Status::Fail, "{always:#?}");
    assert!(always.flaky_attempts.is_empty());
    assert!(
        always
            .err
            .contains("failed again on rerun: attempt 2/2: fail: [step-failed]"),
        "{}",
        always.err
    );
    assert_eq!(code, 1, "the real failure fails the run:\n{stderr}");

    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<flakyFailure").count(), 1, "{junit}");
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("## Flaky (1 passed on a rerun"),
        "{summary}"
    );
    // A console file per boot: the first guest and the two fresh ones (one
    // more when a boot fails and is retried).
    let consoles = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("console-flaky-guest0")
        })
        .count();
    assert!(consoles >= 3, "{consoles} console files\n{stderr}");
}
