//! Process exit codes, the same for every subcommand.

/// What a kcycle invocation ended with. The numbers are part of the CLI's
/// contract (scripts and CI branch on them), so they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitStatus {
    /// Everything passed, or only known issues were found.
    Passed = 0,
    /// Tests failed or findings were made.
    Failed = 1,
    /// Bad input or usage: a broken suite file, a missing path, an unknown option.
    BadInput = 2,
    /// Infrastructure failure: QEMU, SSH, the kernel build, the disk.
    Infrastructure = 3,
    /// `--bisect`: this commit cannot be tested (`git bisect run` skips it).
    BisectSkip = 125,
    /// `--bisect`: stop the bisection (bad input would fail every commit alike).
    BisectAbort = 128,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status as u8)
    }
}
