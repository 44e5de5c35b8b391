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
    /// The previous test left the guest unfit.
    Unfit(Unfit),
    /// A test failed: attempt `attempt` of `attempts` in a fresh guest tells a flake from a failure.
    Rerun {
        test: String,
        attempt: u32,
        attempts: u32,
    },
}

/// Why a guest must restart before its next test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// The test ended with a guest fault (crash, timeout, incomplete).
    Fault(crate::status::Status),
    /// Something the test's module created stayed after its unload.
    Leftover(String),
    /// A module the test loaded is still loaded.
    ModuleLoaded(String),
    /// New fatal taint (WARN, DIE, BAD_PAGE, MCE), by flag.
    Tainted(Vec<String>),
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::Fault(status) => write!(f, "the previous test ended with {status}"),
            Unfit::Leftover(name) => write!(f, "the previous test left {name} behind"),
            Unfit::ModuleLoaded(module) => {
                write!(f, "the previous test left module {module} loaded")
            }
            Unfit::Tainted(flags) => write!(f, "the kernel is tainted: {}", flags.join(", ")),
        }
    }
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
            BootReason::Unfit(why) => why.fmt(f),
            BootReason::Rerun {
                test,
                attempt,
                attempts,
            } => write!(
                f,
                "{test} failed: attempt {attempt}/{attempts} in a fresh guest"
            ),
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
    /// Guest `guest` goes back to the state it saved when it was ready.
    GuestRestoring {
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
