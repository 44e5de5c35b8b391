//! i915's selftest progress lines (drivers/gpu/drm/i915/selftests/i915_selftest.c, 6.12):
//!
//! ```text
//! i915: Running <selftest>                      top level (i915_mock_selftests.h)
//! i915: Running <caller>/<subtest>              i915_subtests()
//! i915/<caller>: <subtest> failed with error <n>
//! i915/<caller>: setup failed for <subtest>
//! ```

use super::{sanitize, Subtest, SubtestOutcome};

/// Subtests of one selftest load of `module` (`i915`, or a module that
/// prints the same lines). `completed` says whether the load returned: if
/// not, the last subtest started is incomplete rather than passed.
pub fn i915_subtests(module: &str, messages: &[&str], completed: bool) -> Vec<Subtest> {
    let running = format!("{module}: Running ");
    let failure_prefix = format!("{module}/");
    let mut subtests: Vec<Subtest> = Vec::new();
    let mut open: Option<usize> = None;

    for (index, message) in messages.iter().enumerate() {
        let message = message.trim();
        if let Some(name) = message.strip_prefix(&running) {
            close(&mut subtests, open.take(), index, SubtestOutcome::Pass);
            let name = name.split('/').map(sanitize).collect::<Vec<_>>().join("@");
            subtests.push(Subtest {
                name,
                outcome: SubtestOutcome::Incomplete,
                first_line: index,
                end_line: index + 1,
            });
            open = Some(subtests.len() - 1);
        } else if let Some(rest) = message.strip_prefix(&failure_prefix) {
            // "<caller>: <subtest> failed with error <n>" / "<caller>: setup failed for <subtest>"
            let Some((caller, what)) = rest.split_once(": ") else {
                continue;
            };
            let (test, reason) = if let Some((test, err)) = what.rsplit_once(" failed with error ")
            {
                (test, format!("error {err}"))
            } else if let Some(test) = what.strip_prefix("setup failed for ") {
                (test, "setup failed".to_string())
            } else {
                continue;
            };
            let name = format!("{}@{}", sanitize(caller), sanitize(test));
            match subtests.iter().rposition(|s| s.name == name) {
                Some(i) => {
                    subtests[i].outcome = SubtestOutcome::Fail(reason);
                    subtests[i].end_line = index + 1;
                    if open == Some(i) {
                        open = None;
                    }
                }
                // setup failures come before any "Running" line of the subtest.
                None => subtests.push(Subtest {
                    name,
                    outcome: SubtestOutcome::Fail(reason),
                    first_line: index,
                    end_line: index + 1,
                }),
            }
        }
    }
    let end = messages.len();
    close(
        &mut subtests,
        open,
        end,
        if completed {
            SubtestOutcome::Pass
        } else {
            SubtestOutcome::Incomplete
        },
    );
    subtests
}

fn close(subtests: &mut [Subtest], open: Option<usize>, end: usize, outcome: SubtestOutcome) {
    if let Some(i) = open {
        subtests[i].outcome = outcome;
        subtests[i].end_line = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[&str] = &[
        "i915: Performing mock selftests with st_random_seed=0x1 st_timeout=500",
        "i915: Running sanitycheck",
        "i915: i915_mock_sanitycheck() - ok!",
        "i915: Running shmem_utils",
        "i915: Running shmem_utils_mock_selftests/igt_shmem_basic",
        "i915: Running fence",
        "i915: Running i915_sw_fence_mock_selftests/test_self",
        "some chatter",
        "i915/i915_sw_fence_mock_selftests: test_self failed with error -22",
    ];

    fn summary(subtests: &[Subtest]) -> Vec<(String, SubtestOutcome)> {
        subtests
            .iter()
            .map(|s| (s.name.clone(), s.outcome.clone()))
            .collect()
    }

    #[test]
    fn passes_failures_and_names() {
        let subtests = i915_subtests("i915", LOG, true);
        assert_eq!(
            summary(&subtests),
            [
                ("sanitycheck".into(), SubtestOutcome::Pass),
                ("shmem_utils".into(), SubtestOutcome::Pass),
                (
                    "shmem_utils_mock_selftests@igt_shmem_basic".into(),
                    SubtestOutcome::Pass
                ),
                ("fence".into(), SubtestOutcome::Pass),
                (
                    "i915_sw_fence_mock_selftests@test_self".into(),
                    SubtestOutcome::Fail("error -22".into())
                ),
            ]
        );
        let failed = &subtests[4];
        assert_eq!((failed.first_line, failed.end_line), (6, 9));
    }

    #[test]
    fn a_crash_leaves_the_running_subtest_incomplete() {
        let subtests = i915_subtests("i915", &LOG[..6], false);
        assert_eq!(subtests.last().unwrap().outcome, SubtestOutcome::Incomplete);
        assert_eq!(subtests[0].outcome, SubtestOutcome::Pass);
    }

    #[test]
    fn setup_failure_and_other_modules() {
        let log = [
            "rust_i915_table: Running globals",
            "rust_i915_table/mock: setup failed for alloc",
        ];
        let subtests = i915_subtests("rust_i915_table", &log, true);
        assert_eq!(
            summary(&subtests),
            [
                ("globals".into(), SubtestOutcome::Pass),
                (
                    "mock@alloc".into(),
                    SubtestOutcome::Fail("setup failed".into())
                ),
            ]
        );
        assert!(i915_subtests("i915", &log, true).is_empty());
    }
}
