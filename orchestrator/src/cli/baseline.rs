//! `kcycle baseline update`, and the known-issues files `kcycle run` reads.

use std::path::PathBuf;

use anyhow::Context;
use kcycle::exit::ExitStatus;
use kcycle::outcome::TestResult;
use kcycle::suite::{self, Date, KnownIssue, Suite};

use super::compare::read_run;
use super::{BaselineUpdateArgs, ExitOnError, Failure};

/// `kcycle baseline update RESULTS...`: write or refresh the known-issues
/// file from several runs and say what changed.
pub(super) fn baseline_update(args: &BaselineUpdateArgs) -> Result<ExitStatus, Failure> {
    use kcycle::compare::baseline;

    let runs = args
        .results
        .iter()
        .map(|path| read_run(path))
        .collect::<anyhow::Result<Vec<_>>>()
        .bad_input()?;
    let existing = if args.file.exists() {
        suite::load_known_issues(&args.file).bad_input()?
    } else {
        Vec::new()
    };
    let today = Date::today();
    let updated = baseline::update(&existing, &runs, today);
    let text = baseline::render(&updated, runs.len(), today);
    kcycle::report::results_dir::write_atomic(&args.file, text.as_bytes()).infrastructure()?;
    for issue in &updated.dropped {
        eprintln!(
            "kcycle: dropped known issue {}: its tests ran and it matched nothing (fixed?)",
            issue.describe()
        );
    }
    eprintln!(
        "kcycle: wrote {} from {} runs: {} known issues, {} flakes, {} dropped",
        args.file.display(),
        runs.len(),
        updated.known.len(),
        updated.flakes.len(),
        updated.dropped.len()
    );
    Ok(ExitStatus::Passed)
}

/// Add the entries of `--known-issues` files to every suite.
pub(super) fn add_known_issue_files(
    suites: &mut [Suite],
    files: &[PathBuf],
) -> Result<(), Failure> {
    for file in files {
        let issues = suite::load_known_issues(file)
            .with_context(|| format!("failed to load --known-issues {}", file.display()))
            .bad_input()?;
        for suite in suites.iter_mut() {
            suite.known_issues.extend(issues.iter().cloned());
        }
    }
    Ok(())
}

/// The suites with only the known issues meant for kernel `release`.
pub(super) fn for_kernel(suites: &[Suite], release: &str) -> Vec<Suite> {
    let mut suites = suites.to_vec();
    for suite in &mut suites {
        suite
            .known_issues
            .retain(|k: &KnownIssue| k.applies_to(release));
    }
    suites
}

/// Say which known issues did not happen (unexpected passes) and which expired.
pub(super) fn report_known_issues(suites: &[Suite], results: &[TestResult], release: &str) {
    let today = Date::today();
    let mut said = Vec::new();
    for suite in suites {
        for note in suite::audit(&suite.known_issues, results, release, today) {
            let line = note.to_string();
            if !said.contains(&line) {
                eprintln!("kcycle: {line}");
                said.push(line);
            }
        }
    }
}
