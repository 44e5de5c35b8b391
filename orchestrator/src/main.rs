//! The `kcycle` binary: parse arguments, run a subcommand, map the result to
//! an exit code. All work happens in the library; this is the only place
//! that uses `anyhow`.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before anything reads PATH: a QEMU `kcycle setup` unpacked is found like an installed one.
    kcycle::host::unpacked::add_to_path();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(status) => status.into(),
        Err(failure) => {
            // Not eprintln!: after a SIGHUP the terminal is gone and a failed
            // write must not turn exit 3 into a panic.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "kcycle: error: {:#}", failure.error);
            failure.status.into()
        }
    }
}
