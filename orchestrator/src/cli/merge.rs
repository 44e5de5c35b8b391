//! `kcycle merge`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kcycle::exit::ExitStatus;

use super::{ExitOnError, Failure, MergeArgs};

/// `kcycle merge`: join the results directories of shards into one. Every
/// input is read and checked before anything is written; the merged run
/// exits like the unsharded run would have (0, 1 or 3).
pub(super) fn merge_results(args: &MergeArgs) -> Result<ExitStatus, Failure> {
    use kcycle::report::{merge, results_dir, summary};

    let mut runs = Vec::with_capacity(args.dirs.len());
    for dir in &args.dirs {
        let path = dir.join(results_dir::RESULTS_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| {
                format!(
                    "failed to read {}: pass results directories written by `kcycle run --shard I/N`",
                    path.display()
                )
            })
            .bad_input()?;
        runs.push(merge::parse(&dir.display().to_string(), &text).bad_input()?);
    }
    refuse_out_among_inputs(&args.out, &args.dirs)?;
    // Console logs keep their names inside one subdirectory per input.
    let consoles: Vec<(PathBuf, String)> = runs
        .iter()
        .zip(&args.dirs)
        .enumerate()
        .map(|(i, (input, dir))| {
            let label = match &input.run.shard {
                Some(shard) => format!("shard-{}", shard.replace('/', "-of-")),
                None => format!("run-{}", i + 1),
            };
            (dir.clone(), label)
        })
        .collect();
    let inputs = runs.len();
    let (run, results) = merge::merge(runs).bad_input()?;

    results_dir::create(&args.out).infrastructure()?;
    // Consoles first, so index.html links them.
    for (dir, label) in &consoles {
        copy_console_logs(dir, &args.out.join(label)).infrastructure()?;
    }
    results_dir::write_reports(&args.out, &run, &results).infrastructure()?;
    let summary = summary::render(&run, &results);
    eprintln!("{summary}");
    eprintln!(
        "kcycle: merged {} tests from {inputs} results directories into {}",
        results.len(),
        args.out.display()
    );
    Ok(kcycle::outcome::exit_status(&results))
}

/// Writing the merge over one of its inputs would destroy a shard's own results.
fn refuse_out_among_inputs(out: &Path, dirs: &[PathBuf]) -> Result<(), Failure> {
    let Ok(out_real) = out.canonicalize() else {
        return Ok(()); // does not exist yet, so it is no input
    };
    for dir in dirs {
        if dir.canonicalize().is_ok_and(|d| d == out_real) {
            return Err(anyhow::anyhow!(
                "--out {} is one of the directories being merged; choose another --out",
                out.display()
            ))
            .bad_input();
        }
    }
    Ok(())
}

/// Copy the guest console logs (`console-*.log`) of a results directory into `to`.
fn copy_console_logs(from: &Path, to: &Path) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(from).with_context(|| format!("failed to list {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", from.display()))?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("console") {
            continue;
        }
        std::fs::create_dir_all(to)
            .with_context(|| format!("failed to create {}", to.display()))?;
        let target = to.join(&name);
        std::fs::copy(entry.path(), &target).with_context(|| {
            format!(
                "failed to copy {} to {}",
                entry.path().display(),
                target.display()
            )
        })?;
    }
    Ok(())
}
