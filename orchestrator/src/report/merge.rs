//! Joining the results of `kcycle run --shard I/N` into one run: the pure
//! half of `kcycle merge` (results in, results out). Every reason to refuse a
//! merge is decided here, so the command only reads and writes files.
//!
//! A merge is refused rather than guessed at: a test in two inputs, a shard
//! given twice or missing, shards of different splits or of different
//! kernels would all make the merged report claim something no run showed.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::outcome::{RunInfo, TestResult};
use crate::report::igt_json::{self, IgtJsonError};
use crate::suite::Shard;

/// One results directory's run, named by where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResults {
    /// The results directory, as error messages name it.
    pub dir: String,
    pub run: RunInfo,
    pub results: Vec<TestResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("failed to read the results.json of {dir}")]
    Parse {
        dir: String,
        #[source]
        source: IgtJsonError,
    },
    #[error(
        "failed to read the results.json of {dir}: it is an IGT TestrunResult but not kcycle's \
         (no \"kcycle-run\" object); pass directories written by `kcycle run`"
    )]
    NotKcycle { dir: String },
    #[error("nothing to merge: pass the results directory of every shard")]
    Empty,
    #[error("failed to merge: {dir} says it is shard {given:?}, which is not I/N")]
    BadShard { dir: String, given: String },
    #[error(
        "failed to merge: {sharded} is shard {shard} but {unsharded} is not a shard; \
         merge the shards of one `--shard I/N` split"
    )]
    Mixed {
        sharded: String,
        shard: String,
        unsharded: String,
    },
    #[error(
        "failed to merge: {first} is one of {first_count} shards but {second} is one of \
         {second_count}; merge the shards of one `--shard I/N` split"
    )]
    Counts {
        first: String,
        first_count: usize,
        second: String,
        second_count: usize,
    },
    #[error("failed to merge: shard {shard} is given twice, in {first} and in {second}")]
    Duplicate {
        shard: String,
        first: String,
        second: String,
    },
    #[error(
        "failed to merge: shard(s) {missing} missing; pass the results directory of every \
         shard 1..{count}"
    )]
    Missing { missing: String, count: usize },
    #[error(
        "failed to merge: {first} ran kernel {first_kernel} but {second} ran {second_kernel}; \
         shards must test the same kernel"
    )]
    Kernels {
        first: String,
        first_kernel: String,
        second: String,
        second_kernel: String,
    },
    #[error(
        "failed to merge: test {test} is in both {first} and {second} (overlapping shards); \
         pass each shard's results once"
    )]
    Overlap {
        test: String,
        first: String,
        second: String,
    },
}

/// Read one directory's results.json text; `dir` only names it in errors.
pub fn parse(dir: &str, text: &str) -> Result<RunResults, MergeError> {
    let parse_error = |source| MergeError::Parse {
        dir: dir.into(),
        source,
    };
    // igt_json::parse accepts any TestrunResult; a merge needs kcycle's run facts.
    let value: Value = serde_json::from_str(text).map_err(|e| parse_error(e.into()))?;
    let (run, results) = igt_json::parse(text).map_err(parse_error)?;
    if value.get("kcycle-run").is_none() {
        return Err(MergeError::NotKcycle { dir: dir.into() });
    }
    Ok(RunResults {
        dir: dir.into(),
        run,
        results,
    })
}

/// Join runs into one: either every shard of one `--shard I/N` split, each
/// once, or runs that were not sharded at all (e.g. different suites). The
/// merged run starts when the first input started; test start times are
/// moved onto that clock and results are ordered by them.
pub fn merge(mut runs: Vec<RunResults>) -> Result<(RunInfo, Vec<TestResult>), MergeError> {
    let shards = shards_of(&runs)?;
    if let Some(order) = shards {
        // Shard order, so the merged run's facts come from shard 1.
        let mut keyed: Vec<_> = order.into_iter().zip(runs).collect();
        keyed.sort_by_key(|(index, _)| *index);
        runs = keyed.into_iter().map(|(_, run)| run).collect();
    }
    let first = runs.first().ok_or(MergeError::Empty)?;
    for other in &runs[1..] {
        if (&other.run.kernel_release, &other.run.kernel_source)
            != (&first.run.kernel_release, &first.run.kernel_source)
        {
            return Err(MergeError::Kernels {
                first: first.dir.clone(),
                first_kernel: kernel(&first.run),
                second: other.dir.clone(),
                second_kernel: kernel(&other.run),
            });
        }
    }

    let started_at = runs
        .iter()
        .map(|r| r.run.started_at)
        .fold(f64::INFINITY, f64::min);
    let run = merged_info(&first.run, &runs, started_at);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut results = Vec::new();
    for input in runs {
        let shift = input.run.started_at - started_at;
        for mut result in input.results {
            if let Some(first) = seen.insert(result.name.clone(), input.dir.clone()) {
                return Err(MergeError::Overlap {
                    test: result.name,
                    first,
                    second: input.dir,
                });
            }
            result.start += shift;
            results.push(result);
        }
    }
    results.sort_by(|a, b| {
        a.start
            .total_cmp(&b.start)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok((run, results))
}

/// Each run's shard index when all are shards of one complete split, `None`
/// when none is a shard; an error for anything in between.
fn shards_of(runs: &[RunResults]) -> Result<Option<Vec<usize>>, MergeError> {
    let mut parsed: Vec<(&RunResults, Shard)> = Vec::new();
    let mut unsharded = None;
    for input in runs {
        match &input.run.shard {
            None => unsharded = unsharded.or(Some(input)),
            Some(given) => {
                let shard = given.parse::<Shard>().map_err(|_| MergeError::BadShard {
                    dir: input.dir.clone(),
                    given: given.clone(),
                })?;
                parsed.push((input, shard));
            }
        }
    }
    let Some(&(first, first_shard)) = parsed.first() else {
        return Ok(None);
    };
    if let Some(unsharded) = unsharded {
        return Err(MergeError::Mixed {
            sharded: first.dir.clone(),
            shard: first_shard.to_string(),
            unsharded: unsharded.dir.clone(),
        });
    }
    let count = first_shard.count;
    let mut by_index: BTreeMap<usize, &RunResults> = BTreeMap::new();
    for &(input, shard) in &parsed {
        if shard.count != count {
            return Err(MergeError::Counts {
                first: first.dir.clone(),
                first_count: count,
                second: input.dir.clone(),
                second_count: shard.count,
            });
        }
        if let Some(earlier) = by_index.insert(shard.index, input) {
            return Err(MergeError::Duplicate {
                shard: shard.to_string(),
                first: earlier.dir.clone(),
                second: input.dir.clone(),
            });
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|index| !by_index.contains_key(index))
        .map(|index| Shard { index, count }.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing: missing.join(", "),
            count,
        });
    }
    Ok(Some(parsed.iter().map(|(_, shard)| shard.index).collect()))
}

fn kernel(run: &RunInfo) -> String {
    if run.kernel_source.is_empty() {
        format!("{:?}", run.kernel_release)
    } else {
        format!("{:?} ({})", run.kernel_release, run.kernel_source)
    }
}

/// The first run's facts as if it had not been sharded; facts that differ
/// between inputs (hosts, accelerators) list each distinct value.
fn merged_info(first: &RunInfo, runs: &[RunResults], started_at: f64) -> RunInfo {
    let distinct = |field: fn(&RunInfo) -> &str| {
        let mut values: Vec<&str> = Vec::new();
        for value in runs.iter().map(|r| field(&r.run)) {
            if !value.is_empty() && !values.contains(&value) {
                values.push(value);
            }
        }
        values.join(", ")
    };
    let name = match &first.shard {
        Some(shard) => first
            .name
            .strip_suffix(&format!(" shard {shard}"))
            .unwrap_or(&first.name)
            .to_string(),
        None => first.name.clone(),
    };
    RunInfo {
        name,
        kernel_release: first.kernel_release.clone(),
        kernel_source: first.kernel_source.clone(),
        qemu_version: distinct(|r| &r.qemu_version),
        accel: distinct(|r| &r.accel),
        commit: distinct(|r| &r.commit),
        hostname: distinct(|r| &r.hostname),
        cmdline: without_shard(&first.cmdline),
        shard: None,
        started_at,
    }
}

/// The command line with `--shard I/N` (or `--shard=I/N`) taken out: the
/// unsharded command the shards together ran.
fn without_shard(cmdline: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(cmdline.len());
    let mut args = cmdline.iter();
    while let Some(arg) = args.next() {
        if arg == "--shard" {
            args.next();
        } else if !arg.starts_with("--shard=") {
            out.push(arg.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::status::Status;

    fn info(shard: Option<&str>, started_at: f64) -> RunInfo {
        let mut cmdline = vec!["kcycle".to_string(), "run".into()];
        if let Some(shard) = shard {
            cmdline.extend(["--shard".to_string(), shard.to_string()]);
        }
        cmdline.push("suites/smoke.toml".into());
        RunInfo {
            name: match shard {
                Some(shard) => format!("kcycle shard {shard}"),
                None => "kcycle".into(),
            },
            kernel_release: "6.12.117".into(),
            kernel_source: "debian linux-source-6.12".into(),
            qemu_version: "7.2.0".into(),
            accel: "kvm".into(),
            commit: "abc".into(),
            hostname: "runner".into(),
            cmdline,
            shard: shard.map(Into::into),
            started_at,
        }
    }

    fn result(name: &str, status: Status, start: f64) -> TestResult {
        TestResult {
            name: format!("kcycle@smoke@{name}"),
            suite: "smoke".into(),
            status,
            start,
            duration: Duration::from_secs(2),
            findings: vec![],
            out: String::new(),
            err: String::new(),
            dmesg: String::new(),
            flaky_attempts: vec![],
            cycles: Vec::new(),
        }
    }

    fn shard(dir: &str, shard: Option<&str>, started_at: f64, tests: &[&str]) -> RunResults {
        RunResults {
            dir: dir.into(),
            run: info(shard, started_at),
            results: tests
                .iter()
                .enumerate()
                .map(|(i, t)| result(t, Status::Pass, 1.0 + i as f64))
                .collect(),
        }
    }

    fn names(results: &[TestResult]) -> Vec<&str> {
        results.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn shards_join_on_the_earliest_clock() {
        let (run, results) = merge(vec![
            shard("r2", Some("2/2"), 1010.0, &["b", "d"]),
            shard("r1", Some("1/2"), 1000.0, &["a", "c"]),
        ])
        .unwrap();
        assert_eq!(run, info(None, 1000.0));
        // r1's tests start at 1 and 2, r2's at 11 and 12 on r1's clock.
        assert_eq!(
            names(&results),
            [
                "kcycle@smoke@a",
                "kcycle@smoke@c",
                "kcycle@smoke@b",
                "kcycle@smoke@d"
            ]
        );
        assert_eq!(results[2].start, 11.0);
    }

    #[test]
    fn differing_facts_are_listed_not_dropped() {
        let mut second = shard("r2", Some("2/2"), 5.0, &["b"]);
        second.run.hostname = "other".into();
        second.run.accel = "tcg".into();
        let (run, _) = merge(vec![shard("r1", Some("1/2"), 5.0, &["a"]), second]).unwrap();
        assert_eq!(run.hostname, "runner, other");
        assert_eq!(run.accel, "kvm, tcg");
        assert_eq!(run.qemu_version, "7.2.0");
    }

    #[test]
    fn unsharded_runs_join_when_they_do_not_overlap() {
        let (run, results) = merge(vec![
            shard("x", None, 7.0, &["a"]),
            shard("y", None, 7.0, &["b"]),
        ])
        .unwrap();
        assert_eq!(run.name, "kcycle");
        assert_eq!(results.len(), 2);
    }

    #[test]
    fn overlapping_tests_name_the_test_and_both_dirs() {
        let error = merge(vec![
            shard("r1", None, 0.0, &["a", "b"]),
            shard("r2", None, 0.0, &["b"]),
        ])
        .unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, MergeError::Overlap { .. }), "{text}");
        assert!(
            text.contains("kcycle@smoke@b") && text.contains("r1") && text.contains("r2"),
            "{text}"
        );
    }

    #[test]
    fn missing_shards_are_named() {
        let error = merge(vec![
            shard("r1", Some("1/4"), 0.0, &["a"]),
            shard("r3", Some("3/4"), 0.0, &["c"]),
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "failed to merge: shard(s) 2/4, 4/4 missing; pass the results directory of every \
             shard 1..4"
        );
    }

    #[test]
    fn inconsistent_shards_are_refused() {
        let error = merge(vec![
            shard("r1", Some("1/2"), 0.0, &["a"]),
            shard("s1", Some("1/2"), 0.0, &["b"]),
        ])
        .unwrap_err();
        assert!(matches!(error, MergeError::Duplicate { .. }), "{error}");
        assert!(error.to_string().contains("r1 and in s1"), "{error}");

        let error = merge(vec![
            shard("r1", Some("1/2"), 0.0, &["a"]),
            shard("r2", Some("2/3"), 0.0, &["b"]),
        ])
        .unwrap_err();
        assert!(matches!(error, MergeError::Counts { .. }), "{error}");

        let error = merge(vec![
            shard("r1", Some("1/1"), 0.0, &["a"]),
            shard("x", None, 0.0, &["b"]),
        ])
        .unwrap_err();
        assert!(matches!(error, MergeError::Mixed { .. }), "{error}");

        let error = merge(vec![shard("r1", Some("one of two"), 0.0, &["a"])]).unwrap_err();
        assert!(matches!(error, MergeError::BadShard { .. }), "{error}");

        assert!(matches!(merge(vec![]), Err(MergeError::Empty)));
    }

    #[test]
    fn different_kernels_are_refused() {
        let mut other = shard("r2", Some("2/2"), 0.0, &["b"]);
        other.run.kernel_release = "6.13.0".into();
        let error = merge(vec![shard("r1", Some("1/2"), 0.0, &["a"]), other]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "failed to merge: r1 ran kernel \"6.12.117\" (debian linux-source-6.12) but r2 ran \
             \"6.13.0\" (debian linux-source-6.12); shards must test the same kernel"
        );
    }

    #[test]
    fn parse_reads_kcycle_results_only() {
        let run = info(Some("1/2"), 3.0);
        let results = vec![result("a", Status::Fail, 1.0)];
        let text = igt_json::render(&run, &results).to_string();
        let parsed = parse("r1", &text).unwrap();
        assert_eq!((parsed.run, parsed.results), (run, results));

        let mut igt = igt_json::render(&info(None, 0.0), &[]);
        igt.as_object_mut().unwrap().remove("kcycle-run");
        let error = parse("igt", &igt.to_string()).unwrap_err();
        assert!(matches!(error, MergeError::NotKcycle { .. }), "{error}");

        let error = parse("junk", "{\"tests\": {}}").unwrap_err();
        assert!(matches!(error, MergeError::Parse { .. }), "{error}");
    }

    #[test]
    fn shard_options_leave_the_command_line() {
        let cmdline: Vec<String> = ["kcycle", "run", "--shard", "1/2", "--shard=1/2", "s.toml"]
            .map(Into::into)
            .to_vec();
        assert_eq!(without_shard(&cmdline), ["kcycle", "run", "s.toml"]);
    }
}
