//! `--bisect`: a run's exit status as `git bisect run` reads it.

use std::path::Path;

use kcycle::exit::ExitStatus;

use super::{BisectArgs, Failure};

/// Map a finished command's outcome with [`kcycle::bisect::exit_status`],
/// reading the results it wrote to `results_dir`. Without `--bisect` the
/// outcome is returned as it is.
pub(super) fn map(
    args: &BisectArgs,
    results_dir: &Path,
    outcome: Result<ExitStatus, Failure>,
) -> Result<ExitStatus, Failure> {
    if !args.bisect {
        return outcome;
    }
    let status = match outcome {
        Ok(status) => status,
        Err(failure) => {
            eprintln!("kcycle: error: {:#}", failure.error);
            failure.status
        }
    };
    let path = results_dir.join(kcycle::report::results_dir::RESULTS_FILE);
    // No results when the run broke down before its first test.
    let results = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| kcycle::report::igt_json::parse(&text).ok())
        .map(|(_, results)| results)
        .unwrap_or_default();
    let mapped = kcycle::bisect::exit_status(status, &results, args.finding.as_deref());
    if let Some(pattern) = &args.finding {
        for (result, finding) in kcycle::bisect::matching(&results, pattern) {
            eprintln!(
                "kcycle: --bisect: {pattern} reproduced in {}: [{}] {} (fingerprint {})",
                result.name,
                finding.kind,
                finding.title,
                kcycle::fingerprint::of(finding)
            );
        }
    }
    let meaning = match mapped {
        ExitStatus::Passed => "good",
        ExitStatus::Failed => "bad",
        ExitStatus::BisectSkip => "skip: this commit could not be tested",
        _ => "abort the bisection: fix the input first",
    };
    eprintln!("kcycle: --bisect: exit {} ({meaning})", mapped.code());
    Ok(mapped)
}
