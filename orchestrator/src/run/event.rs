//! Events the executor emits while it runs. Reporters (the terminal view,
//! the results directory) consume them and never call back into the run.

use crate::outcome::{RunInfo, TestResult};

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
        reason: String,
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
