//! Test statuses as IGT names them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A test's status, with IGT's names. The declaration order is "how bad":
/// combining statuses (a test's steps, a test's subtests) keeps the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not run (filtered out after a crash, or the run was interrupted).
    Notrun,
    /// The test decided it cannot run here (e.g. passthrough without a GPU).
    Skip,
    Pass,
    /// Passed, but the kernel log had a warning-level finding.
    DmesgWarn,
    /// The test itself reported a warning.
    Warn,
    /// Passed, but the kernel log had a failure-level finding.
    DmesgFail,
    Fail,
    /// A step did not finish within its deadline.
    Timeout,
    /// The guest kernel crashed (panic, oops that killed the guest).
    Crash,
    /// The test started but its result could not be collected (QEMU died, SSH lost).
    Incomplete,
    /// The run stopped here (e.g. the guest never booted).
    Abort,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Status::Notrun,
        Status::Skip,
        Status::Pass,
        Status::DmesgWarn,
        Status::Warn,
        Status::DmesgFail,
        Status::Fail,
        Status::Timeout,
        Status::Crash,
        Status::Incomplete,
        Status::Abort,
    ];

    /// IGT's spelling, as used in results.json and on the terminal.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Notrun => "notrun",
            Status::Skip => "skip",
            Status::Pass => "pass",
            Status::DmesgWarn => "dmesg-warn",
            Status::Warn => "warn",
            Status::DmesgFail => "dmesg-fail",
            Status::Fail => "fail",
            Status::Timeout => "timeout",
            Status::Crash => "crash",
            Status::Incomplete => "incomplete",
            Status::Abort => "abort",
        }
    }

    /// Whether this status makes a run fail (unless it is a known issue).
    pub fn is_failure(self) -> bool {
        !matches!(self, Status::Pass | Status::Skip | Status::Notrun)
    }

    /// The worse of two statuses.
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_uses_igt_names() {
        for status in Status::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            let back: Status = serde_json::from_str(&json).unwrap();
            assert_eq!(back, status);
        }
    }

    #[test]
    fn worst_prefers_failures_over_passes() {
        assert_eq!(Status::Pass.worst(Status::DmesgWarn), Status::DmesgWarn);
        assert_eq!(Status::Fail.worst(Status::DmesgFail), Status::Fail);
        assert_eq!(Status::Crash.worst(Status::Timeout), Status::Crash);
        assert_eq!(Status::Notrun.worst(Status::Pass), Status::Pass);
        assert!(!Status::Skip.is_failure());
        assert!(Status::DmesgWarn.is_failure());
    }
}
