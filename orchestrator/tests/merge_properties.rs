//! Sharding then merging equals not sharding: for any suites, any shard
//! count and any results, the shards that `suite::select` picks, written to
//! results.json and read back, merge into exactly the unsharded run's
//! results and reports. And a merge missing any shard is refused.

use std::time::Duration;

use kcycle::outcome::{exit_status, Finding, RunInfo, Severity, TestResult};
use kcycle::report::merge::{self, MergeError, RunResults};
use kcycle::report::{igt_json, junit, summary};
use kcycle::status::Status;
use kcycle::suite::{self, GuestMode, Shard, Suite, Test};
use proptest::prelude::*;

/// The unsharded run starts at this Unix time; whole seconds keep float sums exact.
const STARTED_AT: f64 = 1_700_000_000.0;

fn suites(sizes: &[usize]) -> Vec<Suite> {
    sizes
        .iter()
        .enumerate()
        .map(|(s, &size)| Suite {
            name: format!("s{s}"),
            description: String::new(),
            guest: GuestMode::Emulated,
            cmdline: vec![],
            step_timeout: Duration::from_secs(60),
            tests: (0..size)
                .map(|t| Test {
                    name: format!("kcycle@s{s}@t{t}"),
                    description: String::new(),
                    cycles: 1,
                    steps: vec![],
                    expect: vec![],
                })
                .collect(),
            known_issues: vec![],
        })
        .collect()
}

fn run_info(shard: Option<Shard>, started_at: f64) -> RunInfo {
    let mut cmdline = vec!["kcycle".to_string(), "run".into()];
    if let Some(shard) = shard {
        cmdline.extend(["--shard".into(), shard.to_string()]);
    }
    cmdline.push("suites/all.toml".into());
    RunInfo {
        name: match shard {
            Some(shard) => format!("kcycle shard {shard}"),
            None => "kcycle".into(),
        },
        kernel_release: "6.12.117".into(),
        kernel_source: "debian linux-source-6.12.117".into(),
        qemu_version: "QEMU emulator version 7.2.0".into(),
        accel: "kvm".into(),
        commit: "0123456789ab".into(),
        hostname: "runner".into(),
        cmdline,
        shard: shard.map(|s| s.to_string()),
        started_at,
    }
}

/// The unsharded run's results in plan order, with `statuses` cycled over
/// the tests; test `i` starts `10 * (i + 1)` seconds into the run.
fn unsharded(suites: &[Suite], statuses: &[Status]) -> Vec<TestResult> {
    let plan = suite::select(suites, None, None).unwrap();
    plan.iter()
        .enumerate()
        .map(|(i, (suite, test))| {
            let status = statuses[i % statuses.len()];
            let findings = if status.is_failure() {
                vec![Finding {
                    kind: "warning".into(),
                    title: format!("WARNING in {}", test.name),
                    severity: Severity::Warn,
                    report: "Call Trace:\n dump_stack+0x10\n".into(),
                    attribution: Some("left behind by unload in cycle 1".into()),
                    known_issue: None,
                }]
            } else {
                vec![]
            };
            TestResult {
                name: test.name.clone(),
                suite: suite.name.clone(),
                status,
                start: 10.0 * (i as f64 + 1.0),
                duration: Duration::from_secs(1 + i as u64 % 7),
                findings,
                out: format!("$ modprobe {}\n", test.name),
                err: String::new(),
                dmesg: format!("[    1.0] {}\n", test.name),
                flaky_attempts: vec![],
                cycles: Vec::new(),
            }
        })
        .collect()
}

/// What each shard of `count` would have written: its selected tests, on its
/// own clock (shard `k` starts `k - 1` seconds after the unsharded run), as
/// results.json text read back the way `kcycle merge` reads it.
fn shards(suites: &[Suite], all: &[TestResult], count: usize) -> Vec<RunResults> {
    (1..=count)
        .map(|index| {
            let shard = Shard { index, count };
            let started_at = STARTED_AT + (index - 1) as f64;
            let picked: Vec<TestResult> = suite::select(suites, None, Some(shard))
                .unwrap()
                .iter()
                .map(|(_, test)| {
                    let mut result = all.iter().find(|r| r.name == test.name).unwrap().clone();
                    result.start -= started_at - STARTED_AT;
                    result
                })
                .collect();
            let text = igt_json::render(&run_info(Some(shard), started_at), &picked).to_string();
            merge::parse(&format!("results-{index}"), &text).unwrap()
        })
        .collect()
}

fn status() -> impl Strategy<Value = Status> {
    proptest::sample::select(Status::ALL.to_vec())
}

proptest! {
    #[test]
    fn shard_then_merge_equals_unsharded(
        sizes in proptest::collection::vec(0usize..12, 1..4),
        statuses in proptest::collection::vec(status(), 1..5),
        count in 1usize..9,
        rotate in 0usize..9,
    ) {
        let suites = suites(&sizes);
        let all = unsharded(&suites, &statuses);
        let mut inputs = shards(&suites, &all, count);
        // The order of the directories on the command line does not matter.
        inputs.rotate_left(rotate % count);

        let (run, merged) = merge::merge(inputs).unwrap();
        let expected_run = run_info(None, STARTED_AT);
        prop_assert_eq!(&run, &expected_run);
        prop_assert_eq!(&merged, &all);
        prop_assert_eq!(exit_status(&merged), exit_status(&all));
        prop_assert_eq!(
            igt_json::render(&run, &merged),
            igt_json::render(&expected_run, &all)
        );
        prop_assert_eq!(
            junit::render(&run, &merged).unwrap(),
            junit::render(&expected_run, &all).unwrap()
        );
        prop_assert_eq!(summary::render(&run, &merged), summary::render(&expected_run, &all));
    }

    #[test]
    fn a_missing_shard_is_named(
        sizes in proptest::collection::vec(0usize..12, 1..4),
        count in 2usize..9,
        drop in 0usize..9,
    ) {
        let suites = suites(&sizes);
        let all = unsharded(&suites, &[Status::Pass]);
        let mut inputs = shards(&suites, &all, count);
        let dropped = inputs.remove(drop % count);
        let error = merge::merge(inputs).unwrap_err();
        let missing = dropped.run.shard.unwrap();
        prop_assert!(
            matches!(&error, MergeError::Missing { missing: m, .. } if *m == missing),
            "{}", error
        );
    }

    #[test]
    fn a_shard_given_twice_is_refused(
        sizes in proptest::collection::vec(1usize..12, 1..4),
        count in 1usize..9,
        twice in 0usize..9,
    ) {
        let suites = suites(&sizes);
        let all = unsharded(&suites, &[Status::Pass]);
        let mut inputs = shards(&suites, &all, count);
        let mut copy = inputs[twice % count].clone();
        copy.dir = "copy".into();
        inputs.push(copy);
        let error = merge::merge(inputs).unwrap_err();
        prop_assert!(matches!(error, MergeError::Duplicate { .. }), "{}", error);
    }
}
