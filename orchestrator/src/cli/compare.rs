//! `kcycle compare`, and reading a results directory or file for it and
//! for `kcycle baseline`.

use std::path::Path;

use anyhow::Context;
use kcycle::compare::{self, Run};
use kcycle::exit::ExitStatus;

use super::{CompareArgs, ExitOnError, Failure};

/// `kcycle compare BASE NEW`: print the verdict; exit 1 when NEW has a new
/// failure, 0 otherwise, 2 when an input cannot be read or nothing overlaps.
pub(super) fn compare_results(args: &CompareArgs) -> Result<ExitStatus, Failure> {
    let base = read_run(&args.base).bad_input()?;
    let new = read_run(&args.new).bad_input()?;
    let comparison = compare::compare(&base, &new).bad_input()?;
    let text = if args.json {
        compare::json(&comparison)
    } else if args.markdown {
        compare::markdown(&comparison)
    } else {
        compare::text(&comparison)
    };
    print!("{text}");
    Ok(if comparison.has_new_failures() {
        ExitStatus::Failed
    } else {
        ExitStatus::Passed
    })
}

/// A results directory (its results.json) or a results.json file.
pub(super) fn read_run(path: &Path) -> anyhow::Result<Run> {
    use kcycle::report::{igt_json, results_dir};

    let file = if path.is_dir() {
        path.join(results_dir::RESULTS_FILE)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "failed to read {}: pass a results directory or a results.json written by `kcycle run`",
            file.display()
        )
    })?;
    let (info, results) =
        igt_json::parse(&text).with_context(|| format!("failed to read {}", file.display()))?;
    Ok(Run {
        label: path.display().to_string(),
        info,
        results,
    })
}
