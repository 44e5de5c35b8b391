//! Runs a plan of tests on guests: boots one guest per job, hands out tests
//! in plan order, restarts a guest when a test left it unfit, and turns what
//! could not run into `notrun` results so reports always account for every
//! planned test.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::command::ModuleSources;
use super::event::Event;
use super::executor::{run_test, TestContext};
use super::machine::{Machine, MachineError};
use crate::outcome::{Finding, Severity, TestResult};
use crate::status::Status;
use crate::suite::{Suite, Test};

/// Name of the result that records why a run stopped early (IGT: `igt@runner@aborted`).
pub const ABORTED_TEST: &str = "kcycle@runner@aborted";

/// Boots guests configured for a suite (its command line, its guest mode).
pub trait MachineFactory: Sync {
    fn boot(&self, suite: &Suite, guest: usize) -> Result<Box<dyn Machine>, MachineError>;
    /// Names addresses in the guest's modules once they are unloaded.
    fn symbols(&self) -> &dyn crate::symbols::Symbolizer {
        &crate::symbols::NoSymbols
    }
}

/// How a plan runs.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Guests in parallel.
    pub jobs: usize,
    /// Restart the guest after a test that left fatal taint (WARN, DIE,
    /// BAD_PAGE, MCE), like IGT's abort-on-taint, so one bug does not poison
    /// the tests after it.
    pub restart_on_taint: bool,
}

/// Run `plan` per `options`. `emit` receives every event, from every
/// guest's thread. Returns when every planned test has a result.
pub fn run_plan(
    plan: &[(&Suite, &Test)],
    options: RunOptions,
    factory: &dyn MachineFactory,
    sources: &ModuleSources,
    interrupted: &AtomicBool,
    emit: &(dyn Fn(Event) + Sync),
) {
    let run_start = Instant::now();
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..plan.len()).collect());
    let aborted: Mutex<Option<String>> = Mutex::new(None);

    std::thread::scope(|scope| {
        for guest in 0..options.jobs.clamp(1, plan.len().max(1)) {
            let (queue, aborted) = (&queue, &aborted);
            scope.spawn(move || {
                let mut current: Option<(&str, Box<dyn Machine>)> = None;
                loop {
                    if interrupted.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(index) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                        return;
                    };
                    let (suite, test) = plan[index];
                    let fits = current
                        .as_ref()
                        .is_some_and(|(name, _)| *name == suite.name);
                    if !fits {
                        // Shut down a guest set up for another suite before booting this one.
                        drop(current.take());
                        match boot_with_retries(factory, suite, guest, emit) {
                            Ok(machine) => current = Some((suite.name.as_str(), machine)),
                            Err(error) => {
                                // Give the test back: another guest may still run it.
                                if let Ok(mut q) = queue.lock() {
                                    q.push_front(index);
                                }
                                if let Ok(mut a) = aborted.lock() {
                                    a.get_or_insert(format!("guest {guest}: {error}"));
                                }
                                return;
                            }
                        }
                    }
                    let Some((_, machine)) = current.as_mut() else {
                        return;
                    };
                    let ctx = TestContext {
                        suite,
                        test,
                        sources,
                        guest,
                        run_start,
                        restart_on_taint: options.restart_on_taint,
                        symbols: factory.symbols(),
                    };
                    let run = run_test(machine.as_mut(), &ctx, &mut |e| emit(e));
                    if let Some(reason) = run.restart_reason {
                        emit(Event::GuestBooting { guest, reason });
                        let started = Instant::now();
                        match machine.restart() {
                            Ok(()) => emit(Event::GuestReady {
                                guest,
                                seconds: started.elapsed().as_secs_f64(),
                            }),
                            // Boot afresh for the next test (with retries), or give up then.
                            Err(_) => current = None,
                        }
                    }
                }
            });
        }
    });

    // Whatever is left in the queue did not run.
    let left: Vec<usize> = queue.into_inner().map(Vec::from).unwrap_or_default();
    let reason = aborted.into_inner().ok().flatten();
    let why = match (&reason, interrupted.load(Ordering::SeqCst)) {
        (_, true) => "the run was interrupted".to_string(),
        (Some(reason), false) => format!("not run: {reason}"),
        (None, false) => "not run".to_string(),
    };
    for index in left {
        let (suite, test) = plan[index];
        emit(Event::TestFinished {
            guest: 0,
            result: not_run(suite, test, &why, run_start.elapsed().as_secs_f64()),
        });
    }
    if let Some(reason) = reason {
        emit(Event::TestFinished {
            guest: 0,
            result: TestResult {
                name: ABORTED_TEST.into(),
                suite: "runner".into(),
                status: Status::Abort,
                start: run_start.elapsed().as_secs_f64(),
                duration: Duration::ZERO,
                findings: vec![Finding {
                    kind: "abort".into(),
                    title: reason.clone(),
                    severity: Severity::Fail,
                    report: String::new(),
                    attribution: None,
                    known_issue: None,
                }],
                out: String::new(),
                err: reason,
                dmesg: String::new(),
                flaky_attempts: Vec::new(),
                cycles: Vec::new(),
            },
        });
    }
    emit(Event::RunFinished);
}

/// Boot attempts before a guest is given up.
const BOOT_ATTEMPTS: u32 = 2;

fn boot_with_retries(
    factory: &dyn MachineFactory,
    suite: &Suite,
    guest: usize,
    emit: &(dyn Fn(Event) + Sync),
) -> Result<Box<dyn Machine>, MachineError> {
    let mut last = None;
    for attempt in 1..=BOOT_ATTEMPTS {
        emit(Event::GuestBooting {
            guest,
            reason: if attempt == 1 {
                format!("for suite {}", suite.name)
            } else {
                format!("retry {attempt}/{BOOT_ATTEMPTS} for suite {}", suite.name)
            },
        });
        let started = Instant::now();
        match factory.boot(suite, guest) {
            Ok(machine) => {
                emit(Event::GuestReady {
                    guest,
                    seconds: started.elapsed().as_secs_f64(),
                });
                return Ok(machine);
            }
            Err(error) => {
                emit(Event::Notice {
                    message: format!("guest {guest} failed to boot: {error}"),
                });
                last = Some(error);
            }
        }
    }
    Err(last.unwrap_or_else(|| MachineError::Boot("no boot attempted".into())))
}

/// `start` is when the run gave up on the test, so reports list it after what did run.
fn not_run(suite: &Suite, test: &Test, why: &str, start: f64) -> TestResult {
    TestResult {
        name: test.name.clone(),
        suite: suite.name.clone(),
        status: Status::Notrun,
        start,
        duration: Duration::ZERO,
        findings: Vec::new(),
        out: String::new(),
        err: why.to_string(),
        dmesg: String::new(),
        flaky_attempts: Vec::new(),
        cycles: Vec::new(),
    }
}
