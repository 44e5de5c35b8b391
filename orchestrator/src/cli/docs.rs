//! `kcycle completions` and `kcycle man`: generated from the same clap
//! definitions as `--help`, so the names cannot drift apart.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use kcycle::exit::ExitStatus;

use super::{Cli, CompletionsArgs, ExitOnError, Failure, ManArgs};

/// `kcycle completions SHELL`: the completion script on stdout.
pub(super) fn completions(args: &CompletionsArgs) -> Result<ExitStatus, Failure> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "kcycle", &mut script);
    print(&script, "completion script")
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn print(bytes: &[u8], what: &str) -> Result<ExitStatus, Failure> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error)
            .with_context(|| format!("failed to write the {what}"))
            .infrastructure(),
        _ => Ok(ExitStatus::Passed),
    }
}

/// `kcycle man`: kcycle(1) on stdout, or with `--out DIR` a page per
/// subcommand as well (kcycle-run.1, ...).
pub(super) fn man(args: &ManArgs) -> Result<ExitStatus, Failure> {
    let command = Cli::command();
    match &args.out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("failed to render the man page")
                .infrastructure()?;
            print(&page, "man page")
        }
        Some(dir) => {
            write_pages(command, dir)?;
            Ok(ExitStatus::Passed)
        }
    }
}

fn write_pages(command: clap::Command, dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create {}", dir.display()))
        .infrastructure()?;
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("failed to write man pages to {}", dir.display()))
        .infrastructure()?;
    eprintln!("kcycle: man pages in {}", dir.display());
    Ok(())
}
