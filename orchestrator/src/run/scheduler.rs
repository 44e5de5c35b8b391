//! Runs a plan of tests on guests: boots one guest per job, hands out tests
//! in plan order, restarts a guest when a test left it unfit, and turns what
//! could not run into `notrun` results so reports always account for every
//! planned test.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::command::ModuleSources;
use super::event::{BootReason, Event};
use super::executor::{run_test, TestContext};
use super::machine::{Machine, MachineError};
use super::pristine::{self, Renewal};
use super::retry;
use crate::outcome::{Finding, Severity, TestResult};
use crate::status::Status;
use crate::suite::{Suite, Test};
use crate::sys::Cancel;

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
    /// Reruns of a test that fails the run, each in a fresh guest; a pass on
    /// a rerun makes it flaky ([`super::retry`]).
    pub retries: u32,
}

/// One guest slot: what its guest is fit for. A dirty guest restarts only
/// when a next test exists and the run is not cancelled, so the last test's
/// leftovers and a Ctrl-C cost no boot.
enum Slot<'p> {
    /// No guest (before the first test, or after a boot failed).
    Empty,
    /// A guest ready for tests of this suite.
    Ready {
        suite: &'p str,
        machine: Box<dyn Machine>,
    },
    /// A guest of this suite that must be restored or restarted before its next test.
    Dirty {
        suite: &'p str,
        machine: Box<dyn Machine>,
        reason: BootReason,
    },
}

/// What one guest thread shares with the others.
struct Shared<'a, 'p> {
    plan: &'a [(&'p Suite, &'p Test)],
    options: RunOptions,
    factory: &'a dyn MachineFactory,
    sources: &'a ModuleSources,
    cancel: &'a Cancel,
    emit: &'a (dyn Fn(Event) + Sync),
    queue: Mutex<VecDeque<usize>>,
    aborted: Mutex<Option<String>>,
    run_start: Instant,
}

/// Run `plan` per `options`. `emit` receives every event, from every
/// guest's thread. Returns when every planned test has a result.
pub fn run_plan(
    plan: &[(&Suite, &Test)],
    options: RunOptions,
    factory: &dyn MachineFactory,
    sources: &ModuleSources,
    cancel: &Cancel,
    emit: &(dyn Fn(Event) + Sync),
) {
    let shared = Shared {
        plan,
        options,
        factory,
        sources,
        cancel,
        emit,
        queue: Mutex::new((0..plan.len()).collect()),
        aborted: Mutex::new(None),
        run_start: Instant::now(),
    };
    std::thread::scope(|scope| {
        for guest in 0..options.jobs.clamp(1, plan.len().max(1)) {
            let shared = &shared;
            scope.spawn(move || shared.guest_thread(guest));
        }
    });
    shared.account_for_the_rest();
    emit(Event::RunFinished);
}

impl<'p> Shared<'_, 'p> {
    /// Take tests in plan order until none are left, the run is cancelled or
    /// this slot cannot get a guest.
    fn guest_thread(&self, guest: usize) {
        let mut slot = Slot::Empty;
        while !self.cancel.is_cancelled() {
            let Some(index) = self.queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                break;
            };
            let (suite, test) = self.plan[index];
            let machine = match self.fit(slot, suite, guest) {
                Ok(machine) => machine,
                Err(error) => {
                    // Give the test back: another guest may still run it.
                    if let Ok(mut q) = self.queue.lock() {
                        q.push_front(index);
                    }
                    if !self.cancel.is_cancelled() {
                        if let Ok(mut a) = self.aborted.lock() {
                            a.get_or_insert(format!("guest {guest}: {error}"));
                        }
                    }
                    return;
                }
            };
            slot = self.run_attempts(machine, suite, test, guest);
        }
    }

    /// Run one test, and again in a fresh guest while it fails the run and
    /// reruns are left. Its results are emitted once settled. Returns the
    /// slot as the last attempt left it.
    fn run_attempts(
        &self,
        mut machine: Box<dyn Machine>,
        suite: &'p Suite,
        test: &Test,
        guest: usize,
    ) -> Slot<'p> {
        let attempts = 1 + self.options.retries;
        let mut runs = Vec::new();
        let slot = loop {
            let ctx = TestContext {
                suite,
                test,
                sources: self.sources,
                guest,
                run_start: self.run_start,
                restart_on_taint: self.options.restart_on_taint,
                symbols: self.factory.symbols(),
                attempt: runs.len() as u32 + 1,
            };
            // Results wait until the attempts are settled; the rest flows on.
            let run = run_test(machine.as_mut(), &ctx, &mut |event| {
                if !matches!(event, Event::TestFinished { .. }) {
                    (self.emit)(event);
                }
            });
            let again = retry::needs_rerun(&run.results)
                && runs.len() + 1 < attempts as usize
                && !self.cancel.is_cancelled();
            runs.push(run.results);
            let name = suite.name.as_str();
            if !again {
                break match run.restart_reason {
                    Some(unfit) => Slot::Dirty {
                        suite: name,
                        machine,
                        reason: BootReason::Unfit(unfit),
                    },
                    None => Slot::Ready {
                        suite: name,
                        machine,
                    },
                };
            }
            let reason = BootReason::Rerun {
                test: test.name.clone(),
                attempt: runs.len() as u32 + 1,
                attempts,
            };
            let dirty = Slot::Dirty {
                suite: name,
                machine,
                reason,
            };
            match self.fit(dirty, suite, guest) {
                Ok(fresh) => machine = fresh,
                Err(error) => {
                    (self.emit)(Event::Notice {
                        message: format!(
                            "guest {guest}: no fresh guest to rerun {}: {error}",
                            test.name
                        ),
                    });
                    break Slot::Empty;
                }
            }
        };
        for result in retry::settle(runs) {
            (self.emit)(Event::TestFinished { guest, result });
        }
        slot
    }

    /// A guest ready for `suite`: the slot's own, restored to its saved
    /// state or restarted if dirty ([`pristine::renewal`] decides), or a
    /// fresh boot (another suite's guest is shut down first).
    fn fit(
        &self,
        slot: Slot<'p>,
        suite: &'p Suite,
        guest: usize,
    ) -> Result<Box<dyn Machine>, MachineError> {
        let (mut machine, unfit) = match slot {
            Slot::Ready {
                suite: name,
                machine,
            } if name == suite.name => (machine, None),
            Slot::Dirty {
                suite: name,
                machine,
                reason,
            } if name == suite.name => (machine, Some(reason)),
            other => {
                // Shut down a guest set up for another suite before booting this one.
                drop(other);
                return self.boot_with_retries(suite, guest);
            }
        };
        // A rerun, like an unfit guest, gets the saved state: a pristine guest either way.
        let renewal = pristine::renewal(unfit.as_ref(), &machine.saved());
        let Some(reason) = unfit else {
            return Ok(machine);
        };
        let notice = |message: String| {
            if !self.cancel.is_cancelled() {
                (self.emit)(Event::Notice { message });
            }
        };
        match renewal {
            Renewal::Keep => return Ok(machine),
            Renewal::Restore => {
                (self.emit)(Event::GuestRestoring {
                    guest,
                    reason: reason.clone(),
                });
                let started = Instant::now();
                match machine.restore() {
                    Ok(()) => {
                        self.ready(guest, started);
                        return Ok(machine);
                    }
                    Err(error) => notice(format!("guest {guest}: {error}; booting it afresh")),
                }
            }
            Renewal::Reboot {
                no_state: Some(why),
            } => notice(format!(
                "guest {guest} has no saved state to restore ({why}); booting it afresh"
            )),
            Renewal::Reboot { no_state: None } => {}
        }
        (self.emit)(Event::GuestBooting { guest, reason });
        let started = Instant::now();
        match machine.restart() {
            Ok(()) => {
                self.ready(guest, started);
                Ok(machine)
            }
            Err(error) => {
                notice(format!(
                    "guest {guest} failed to restart: {error}; booting a fresh one"
                ));
                drop(machine);
                self.boot_with_retries(suite, guest)
            }
        }
    }

    fn ready(&self, guest: usize, started: Instant) {
        (self.emit)(Event::GuestReady {
            guest,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    fn boot_with_retries(
        &self,
        suite: &Suite,
        guest: usize,
    ) -> Result<Box<dyn Machine>, MachineError> {
        let mut last = None;
        for attempt in 1..=BOOT_ATTEMPTS {
            if let Some(signal) = self.cancel.reason() {
                // No boot for a run that is ending.
                return Err(MachineError::Boot(format!(
                    "the run was interrupted ({signal})"
                )));
            }
            let reason = BootReason::Suite {
                suite: suite.name.clone(),
                attempt,
                attempts: BOOT_ATTEMPTS,
            };
            (self.emit)(Event::GuestBooting { guest, reason });
            let started = Instant::now();
            match self.factory.boot(suite, guest) {
                Ok(machine) => {
                    self.ready(guest, started);
                    return Ok(machine);
                }
                Err(error) => {
                    (self.emit)(Event::Notice {
                        message: format!("guest {guest} failed to boot: {error}"),
                    });
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| MachineError::Boot("no boot attempted".into())))
    }

    /// Whatever is left in the queue did not run; a boot failure is a result too.
    fn account_for_the_rest(self) {
        let run_start = self.run_start;
        let left: Vec<usize> = self.queue.into_inner().map(Vec::from).unwrap_or_default();
        let reason = self.aborted.into_inner().ok().flatten();
        let why = match (&reason, self.cancel.reason()) {
            (_, Some(signal)) => format!("the run was interrupted ({signal})"),
            (Some(reason), None) => format!("not run: {reason}"),
            (None, None) => "not run".to_string(),
        };
        for index in left {
            let (suite, test) = self.plan[index];
            (self.emit)(Event::TestFinished {
                guest: 0,
                result: not_run(suite, test, &why, run_start.elapsed().as_secs_f64()),
            });
        }
        if let Some(reason) = reason {
            (self.emit)(Event::TestFinished {
                guest: 0,
                result: aborted(reason, run_start),
            });
        }
    }
}

/// Boot attempts before a guest is given up. TCG guests on a loaded host now
/// and then panic at boot ("IO-APIC + timer doesn't work!": the timer check
/// waits 40e9/HZ TSC cycles for five ticks that a starved QEMU did not
/// deliver); such a boot fails within a second, so a third one is cheap.
const BOOT_ATTEMPTS: u32 = 3;

/// The result that says why the run stopped early.
fn aborted(reason: String, run_start: Instant) -> TestResult {
    TestResult {
        name: ABORTED_TEST.into(),
        suite: "runner".into(),
        status: Status::Abort,
        start: run_start.elapsed().as_secs_f64(),
        duration: Duration::ZERO,
        findings: vec![Finding {
            kind: crate::kind::FindingKind::Fault(crate::kind::Fault::Abort),
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
    }
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
