//! kcycle's developer tasks in Rust, so that a machine with only Rust runs
//! them: `cargo test-all` (what CI runs) and `cargo unit`, aliases in
//! .cargo/config.toml, and `cargo xtask bench`. The Justfile's `just test`,
//! `just unit` and `just bench` call these.

use std::process::{Command, ExitCode};

mod bench;

const USAGE: &str = "usage: cargo xtask test|unit|bench
  test  fmt check, clippy, then every test (unit and real-QEMU end-to-end);
        builds or reuses the guest kernel for them unless KCYCLE_KERNEL is set
  unit  only the unit tests: no kernel, no QEMU
  bench time kcycle against virtme-ng and the in-guest floor; writes docs/benchmarks.md
        (`cargo xtask bench --help` for its options)";

fn main() -> ExitCode {
    // The tests and benches it starts find a QEMU `kcycle setup` unpacked, as kcycle does.
    kcycle::host::unpacked::add_to_path();
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "test" => test(),
        "unit" => unit(),
        "bench" => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            bench::main(&rest)
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("xtask: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u8,
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Run to the end; a non-zero exit is a failure with that code.
pub(crate) fn run(what: &str, command: &mut Command) -> Result<(), Failure> {
    eprintln!("xtask: {what}");
    let status = command.status().map_err(|e| Failure {
        message: format!("failed to start {what}: {e}"),
        code: 3,
    })?;
    match status.code() {
        Some(0) => Ok(()),
        code => Err(Failure {
            message: format!("{what} failed ({status})"),
            code: code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
        }),
    }
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn test() -> Result<(), Failure> {
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let kernel = match std::env::var("KCYCLE_KERNEL") {
        Ok(kernel) if !kernel.is_empty() => kernel,
        // The end-to-end tests boot the real guest kernel: build it, or take it from the cache.
        _ => guest_kernel()?,
    };
    eprintln!("xtask: guest kernel {kernel}");
    let mut tests = cargo();
    if has_nextest() {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
        if std::env::var_os("CI").is_some() {
            tests.args(["--profile", "ci"]);
        }
    } else {
        eprintln!(
            "xtask: cargo-nextest is not installed (`cargo install --locked cargo-nextest`); \
             running cargo test one test at a time, as nextest's guest group would"
        );
        tests.args([
            "test",
            "--workspace",
            "--no-fail-fast",
            "--",
            "--test-threads=1",
        ]);
    }
    run("tests", tests.env("KCYCLE_KERNEL", &kernel))
}

/// `kcycle kernel build`'s artifact directory (its last stdout line).
fn guest_kernel() -> Result<String, Failure> {
    eprintln!("xtask: guest kernel (kcycle kernel build)");
    let output = cargo()
        .args([
            "run",
            "--quiet",
            "-p",
            "kcycle",
            "--",
            "--progress",
            "never",
        ])
        .args(["kernel", "build"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Failure {
            message: format!("failed to start kcycle kernel build: {e}"),
            code: 3,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(dir) if output.status.success() => Ok(dir.trim().to_string()),
        _ => Err(Failure {
            message: format!("kcycle kernel build failed ({})", output.status),
            code: 3,
        }),
    }
}

fn unit() -> Result<(), Failure> {
    let mut tests = cargo();
    if has_nextest() {
        tests.args(["nextest", "run", "--workspace", "--lib", "--bins"]);
    } else {
        tests.args(["test", "--workspace", "--lib", "--bins"]);
    }
    run("unit tests", &mut tests)
}
