//! Events the executor emits while it runs. Reporters (the terminal view,
//! the results directory) consume them and never call back into the run.

use crate::outcome::{RunInfo, TestResult};

/// Why a guest slot boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootReason {
    /// A fresh guest for a suite: attempt `attempt` of `attempts`.
    Suite {
        suite: String,
        attempt: u32,
        attempts: u32,
    },
    /// The previous test left the guest unfit (crash, hang, leftovers,
    /// fatal taint), in the executor's words.
    Unfit(String),
}

impl std::fmt::Display for BootReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootReason::Suite {
                suite, attempt: 1, ..
            } => write!(f, "for suite {suite}"),
            BootReason::Suite {
                suite,
                attempt,
                attempts,
            } => write!(f, "retry {attempt}/{attempts} for suite {suite}"),
            BootReason::Unfit(why) => f.write_str(why),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    /// The plan is known: test names in run order.
    RunStarted {
        info: RunInfo,
        tests: Vec<String>,
    },
    /// Guest `guest` is booting (first boot or a restart, with the reason).
    GuestBooting {
        guest: usize,
        reason: BootReason,
    },
    GuestReady {
        guest: usize,
        seconds: f64,
    },
    TestStarted {
        guest: usize,
        test: String,
    },
    /// A step started, e.g. "cycle 2/3: unload rust_i915_table".
    StepStarted {
        guest: usize,
        test: String,
        step: String,
    },
    /// A result is final (a test, or one selftest subtest of it).
    TestFinished {
        guest: usize,
        result: TestResult,
    },
    /// Something the user should know that is not a test result.
    Notice {
        message: String,
    },
    RunFinished,
}

/// An event with the wall-clock time it was emitted, as reporters get it.
#[derive(Debug, Clone)]
pub struct Stamped {
    pub at: std::time::SystemTime,
    pub event: Event,
}

impl Stamped {
    /// `event`, stamped now.
    pub fn now(event: Event) -> Stamped {
        Stamped {
            at: std::time::SystemTime::now(),
            event,
        }
    }
}
