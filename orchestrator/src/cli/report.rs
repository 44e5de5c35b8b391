//! `kcycle report`.

use anyhow::Context;
use kcycle::exit::ExitStatus;

use super::{ExitOnError, Failure, ReportArgs};

/// `kcycle report DIR`: render DIR/index.html again from DIR/results.json
/// (older runs, merged shards). The other reports stay as they are.
pub(super) fn report(args: &ReportArgs) -> Result<ExitStatus, Failure> {
    use kcycle::report::{igt_json, results_dir};

    let path = args.dir.join(results_dir::RESULTS_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| {
            format!(
                "failed to read {}: pass a results directory written by `kcycle run` or `kcycle merge`",
                path.display()
            )
        })
        .bad_input()?;
    let (run, results) = igt_json::parse(&text)
        .with_context(|| format!("failed to load {}", path.display()))
        .bad_input()?;
    results_dir::write_html(&args.dir, &run, &results).infrastructure()?;
    println!("{}", args.dir.join(results_dir::HTML_FILE).display());
    Ok(ExitStatus::Passed)
}
