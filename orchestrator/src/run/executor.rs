//! Runs one test on a machine: its steps, `cycles` times, with the kernel log,
//! the leak ledger's namespaces, memory counters and taint checked around
//! every step.
//!
//! Per step: run the action; take the kernel log printed since the previous
//! step (read and cleared, as `dmesg -c`) and a snapshot, both from one
//! `kcycle-snapshot --take-log` in the guest; classify the log; after an unload,
//! compare against the snapshot from before the module's load, so what the
//! module created and left behind is named and charged to the cycle whose
//! unload left it ("left behind by unload in cycle N"). A later load that
//! trips over a leftover (a duplicate-entry warning, -EEXIST) and code that
//! runs in a module's image after its unload are charged to that same unload
//! rather than to whatever ran next ([`super::ledger`]), which is the whole
//! point of kcycle.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::collect;
use super::command::{self, ModuleSources};
use super::event::{Event, Unfit};
use super::ledger::{self, Ledger};
use super::machine::{Machine, MachineError, Output};
use super::pristine::Saved;
use super::sweep;
use super::trend;
use super::verdict;
use crate::dmesg;
use crate::kind::{Fault, FindingKind};
use crate::outcome::{CycleSample, Finding, Severity, TestResult};
use crate::selftest::{self, Subtest, SubtestOutcome};
use crate::snapshot::{self, SlabCounts, Snapshot};
use crate::status::Status;
use crate::suite::{Action, SelftestKind, Suite, SweepMethod, Test};
use crate::symbols::Symbolizer;

/// What a collect read: the kernel log since the last one, and the snapshot after it.
type Collected = (String, Snapshot);

/// Deadline for the runner's own bookkeeping commands (log, snapshot).
const COLLECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything one test produced.
#[derive(Debug)]
pub struct TestRun {
    /// The test's own result first, then one result per selftest subtest.
    pub results: Vec<TestResult>,
    /// The guest should be restarted before the next test: it crashed, hung,
    /// or was left with leftovers, loaded modules or fatal taint.
    pub restart_reason: Option<Unfit>,
}

/// What the executor needs besides the machine.
pub struct TestContext<'a> {
    pub suite: &'a Suite,
    pub test: &'a Test,
    pub sources: &'a ModuleSources,
    pub guest: usize,
    /// When the run started: results carry their start relative to it.
    pub run_start: Instant,
    /// Ask for a restart when the test left fatal taint.
    pub restart_on_taint: bool,
    /// Names addresses in modules that are gone.
    pub symbols: &'a dyn Symbolizer,
    /// 1, then 2 on the first rerun in a fresh guest ([`super::retry`]).
    pub attempt: u32,
}

/// A step's kernel log and its classification, made once per step.
struct StepLog<'a> {
    text: &'a str,
    findings: Vec<dmesg::Finding>,
}

/// One command for [`Recorder::run_planned`]: a suite step's, or one of a
/// sweep point's loads and unloads.
struct Planned<'s> {
    label: String,
    description: String,
    /// Canonical module name; device steps have none.
    module: Option<String>,
    /// The command loads the module (else, with a module, it unloads it).
    loads: bool,
    /// Unbind, bind, hot-unplug, hot-plug: what [`Recorder::act`] does.
    device: Option<&'s Action>,
    shell: String,
    timeout: Duration,
    /// `Some(false)`: must succeed; `Some(true)`: must fail; `None`: either.
    expect_failure: Option<bool>,
    selftest: Option<(&'s str, SelftestKind)>,
    /// How the snapshot after it counts slab objects: exactly when it is a
    /// cycle's sample for the trends.
    counts: SlabCounts,
}

/// The test being run: its accumulating log and findings.
struct Recorder<'a> {
    ctx: &'a TestContext<'a>,
    out: String,
    err: String,
    dmesg: String,
    findings: Vec<Finding>,
    subtests: BTreeMap<String, TestResult>,
    ledger: Ledger,
    /// Counters after each cycle.
    cycles: Vec<CycleSample>,
    /// The console line count when the current step started.
    console_mark: usize,
    /// The module and cycle of the unload step running now, if one is.
    unloading: Option<(String, u32)>,
    /// Snapshot taken before each module's latest load.
    before_load: BTreeMap<String, Snapshot>,
    baseline: Snapshot,
    current: Snapshot,
    /// The suite boots with `kmemleak=on`: scan after every unload.
    kmemleak: bool,
    /// A sweep restarted the guest: prepare fault injection again.
    restarted: bool,
}

pub fn run_test(
    machine: &mut dyn Machine,
    ctx: &TestContext<'_>,
    emit: &mut dyn FnMut(Event),
) -> TestRun {
    let started = Instant::now();
    let start = started.duration_since(ctx.run_start).as_secs_f64();
    emit(Event::TestStarted {
        guest: ctx.guest,
        test: ctx.test.name.clone(),
    });
    let mut rec = Recorder::new(ctx);

    let fault = match rec.run_steps(machine, emit) {
        Ok(()) => None,
        Err(error) => Some(rec.fault(error, machine)),
    };
    let trends = trend::steady_growth(&rec.cycles);
    rec.findings.extend(trends);

    let mut findings = std::mem::take(&mut rec.findings);
    let mut status = verdict::status(fault, &findings);
    verdict::apply_known_issues(&ctx.test.name, &mut findings, &ctx.suite.known_issues);
    status = verdict::apply_controls(&ctx.test.expect, &mut findings, status, |e| {
        (e.kind == FindingKind::STEADY_GROWTH)
            .then(|| trend::near_misses(&rec.cycles, |title| e.title.matches(title), 5))
    });
    // A flagged control's sweep points carry the flagged findings: expected too.
    let flagged_control = !ctx.test.expect.is_empty() && status == Status::Pass;

    let restart_reason = restart_reason(fault, &rec);
    let mut results = vec![TestResult {
        name: ctx.test.name.clone(),
        suite: ctx.suite.name.clone(),
        status,
        start,
        duration: started.elapsed(),
        findings,
        out: rec.out,
        err: rec.err,
        dmesg: rec.dmesg,
        flaky_attempts: Vec::new(),
        cycles: changing_counters(std::mem::take(&mut rec.cycles)),
    }];
    results.extend(
        rec.subtests
            .into_values()
            .map(|subtest| settle_subtest(subtest, ctx, flagged_control)),
    );
    for result in &results {
        emit(Event::TestFinished {
            guest: ctx.guest,
            result: result.clone(),
        });
    }
    TestRun {
        results,
        restart_reason,
    }
}

/// A step's command as it ran.
struct StepRun<'a> {
    label: &'a str,
    description: &'a str,
    shell: &'a str,
    output: &'a Output,
}

/// What a step that ran a module's load or unload is charged as: after an
/// unload, and after a load whose init failed (nothing of the module should
/// remain either way), what appeared since the module's load was left behind.
fn leftovers_by(loads: bool, unloads: bool, succeeded: bool) -> Option<&'static str> {
    match (loads, unloads, succeeded) {
        (_, true, true) => Some("unload"),
        (true, _, false) => Some("failed load"),
        _ => None,
    }
}

/// The devices a step released, by driver, and how: after devices left
/// their driver (unbind, hot-unplug) their remove must have undone what their
/// probe set up, while the module stays loaded; a probe that failed must have
/// released what it claimed, like a remove.
fn released_devices(
    device: Option<&Action>,
    succeeded: bool,
    output: &Output,
    log: &str,
    loads: bool,
) -> Vec<(String, Vec<String>, &'static str)> {
    let released_by = match device {
        Some(Action::Unbind { .. }) => "unbind",
        Some(Action::Hotunplug { .. }) => "hot-unplug",
        _ => "",
    };
    let mut released: Vec<(String, Vec<String>, &'static str)> = Vec::new();
    if let (true, Some(action)) = (succeeded, device) {
        released.extend(
            command::released_devices(action, &output.stdout)
                .into_iter()
                .map(|(driver, devices)| (driver, devices, released_by)),
        );
    }
    // (After a failed load the whole load's diff already says it.)
    let failed_load = loads && !succeeded;
    released.extend(
        ledger::failed_probes(log)
            .into_iter()
            .filter(|_| !failed_load)
            .map(|(driver, devices)| (driver, devices, "failed probe")),
    );
    released
}

/// A subtest's known issues, and under a flagged control, its findings as expected.
fn settle_subtest(
    mut subtest: TestResult,
    ctx: &TestContext<'_>,
    flagged_control: bool,
) -> TestResult {
    verdict::apply_known_issues(
        &subtest.name,
        &mut subtest.findings,
        &ctx.suite.known_issues,
    );
    if flagged_control {
        // Flagged as the control expects: it passes, like the test itself.
        if matches!(
            subtest.status,
            Status::DmesgWarn | Status::Warn | Status::DmesgFail | Status::Fail
        ) {
            subtest.status = Status::Pass;
        }
        for finding in subtest
            .findings
            .iter_mut()
            .filter(|f| f.known_issue.is_none())
        {
            finding.known_issue = Some("expected: this test is a control".into());
        }
    }
    subtest
}

fn restart_reason(fault: Option<Status>, rec: &Recorder<'_>) -> Option<Unfit> {
    if let Some(fault) = fault {
        return Some(Unfit::Fault(fault));
    }
    if let Some(leftover) = rec.ledger.leftovers.first() {
        return Some(Unfit::Leftover(leftover.name.clone()));
    }
    let loaded: Vec<&String> = rec
        .current
        .modules
        .iter()
        .filter(|m| !rec.baseline.modules.contains(m))
        .collect();
    if let Some(module) = loaded.first() {
        return Some(Unfit::ModuleLoaded(module.to_string()));
    }
    let fatal: Vec<String> = rec
        .current
        .taint
        .new_since(rec.baseline.taint)
        .into_iter()
        .filter(|f| f.is_fatal())
        .map(|f| f.to_string())
        .collect();
    (rec.ctx.restart_on_taint && !fatal.is_empty()).then_some(Unfit::Tainted(fatal))
}

impl<'a> Recorder<'a> {
    fn new(ctx: &'a TestContext<'a>) -> Recorder<'a> {
        Recorder {
            ctx,
            out: String::new(),
            err: String::new(),
            dmesg: String::new(),
            findings: Vec::new(),
            subtests: BTreeMap::new(),
            ledger: Ledger::default(),
            cycles: Vec::new(),
            console_mark: 0,
            unloading: None,
            before_load: BTreeMap::new(),
            baseline: Snapshot::default(),
            current: Snapshot::default(),
            kmemleak: ctx.suite.cmdline.iter().any(|arg| arg == "kmemleak=on"),
            restarted: false,
        }
    }

    fn run_steps(
        &mut self,
        machine: &mut dyn Machine,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), MachineError> {
        // Start from a clean log and a baseline snapshot. What the kernel
        // printed before (boot, an earlier test) is not this test's; it is in
        // the console log.
        let (_, baseline) = self.collect(machine, None, SlabCounts::Listed)?;
        self.dmesg.clear();
        self.baseline = baseline.clone();
        self.current = baseline;
        if self.kmemleak {
            machine.exec(command::KMEMLEAK_CLEAR, COLLECT_TIMEOUT)?;
        }

        let test = self.ctx.test;
        // The snapshot after a cycle's last step is the cycle's sample:
        // counted exactly when the test has enough cycles for a trend.
        let sampled = if test.cycles as usize >= trend::MIN_CYCLES {
            SlabCounts::Exact
        } else {
            SlabCounts::Listed
        };
        for cycle in 1..=test.cycles {
            for (i, step) in test.steps.iter().enumerate() {
                let counts = if i + 1 == test.steps.len() {
                    sampled
                } else {
                    SlabCounts::Listed
                };
                self.run_step(machine, emit, step, cycle, counts)?;
            }
            self.cycles.push(CycleSample {
                cycle,
                counters: self.current.counters.0.clone(),
                leftovers: self.ledger.leftovers.len(),
            });
        }
        Ok(())
    }

    fn run_step(
        &mut self,
        machine: &mut dyn Machine,
        emit: &mut dyn FnMut(Event),
        step: &crate::suite::Step,
        cycle: u32,
        counts: SlabCounts,
    ) -> Result<(), MachineError> {
        if let Action::Sweep { .. } = &step.action {
            return self.run_sweep(machine, emit, step, cycle);
        }
        let test = self.ctx.test;
        let description = describe(&step.action);
        let label = if test.cycles > 1 {
            format!("cycle {cycle}/{}: {description}", test.cycles)
        } else {
            description.clone()
        };
        let planned = Planned {
            label,
            description,
            module: step.module().map(command::canonical),
            loads: matches!(
                step.action,
                Action::Load { .. } | Action::Reload { .. } | Action::Selftest { .. }
            ),
            device: matches!(
                step.action,
                Action::Unbind { .. }
                    | Action::Bind { .. }
                    | Action::Hotunplug { .. }
                    | Action::Hotplug { .. }
            )
            .then_some(&step.action),
            shell: command::for_step(&step.action, self.ctx.sources, self.ctx.attempt),
            timeout: step.timeout,
            expect_failure: Some(step.expect_failure),
            selftest: match &step.action {
                Action::Selftest { module, kind, .. } => Some((module.as_str(), *kind)),
                _ => None,
            },
            counts,
        };
        self.run_planned(machine, emit, planned, cycle).map(|_| ())
    }

    /// One command through the checks around it: mark, run, collect,
    /// classify, charge what it left behind. Returns whether it succeeded
    /// and its kernel log.
    fn run_planned(
        &mut self,
        machine: &mut dyn Machine,
        emit: &mut dyn FnMut(Event),
        planned: Planned<'_>,
        cycle: u32,
    ) -> Result<(bool, String), MachineError> {
        let Planned {
            label,
            description,
            module,
            loads,
            device,
            shell,
            timeout,
            expect_failure,
            selftest,
            counts,
        } = planned;
        let unloads = module.is_some() && !loads && device.is_none();
        emit(Event::StepStarted {
            guest: self.ctx.guest,
            test: self.ctx.test.name.clone(),
            step: label.clone(),
        });
        if let (true, Some(module)) = (loads, &module) {
            self.before_load
                .insert(module.clone(), self.current.clone());
        }

        self.console_mark = machine.console_mark();
        self.unloading = module.clone().filter(|_| unloads).map(|m| (m, cycle));
        let loading = module.as_deref().filter(|_| loads);
        let (shell, output, collected) =
            self.act(machine, &label, shell, timeout, device, (loading, counts))?;
        let succeeded = output.status == 0;
        if let (true, Some(module)) = (succeeded && unloads, &module) {
            // Before its log is read: a callback left armed may fire during the collect.
            self.ledger.removed(module, cycle);
        }
        let loaded_now = loading.filter(|_| succeeded);
        let (log, after) = match collected {
            Some(collected) => collected,
            None => self.collect(machine, loaded_now, counts)?,
        };
        // A load or a bind that found its names taken tripped over a leftover.
        let prober = match device {
            Some(Action::Bind { driver }) => Some(command::canonical(driver)),
            _ => module.clone().filter(|_| loads),
        };
        let step = StepRun {
            label: &label,
            description: &description,
            shell: &shell,
            output: &output,
        };
        self.judge_exit(&step, expect_failure, prober, &log);
        if let Some(module) = loaded_now {
            self.ledger
                .loaded(module, &after, after.module_sections.clone(), cycle);
        }
        // Classified once: the test's findings and its subtests' both come from it.
        let step_log = StepLog {
            findings: dmesg::classify(&log),
            text: &log,
        };
        self.check_log(&step_log.findings, &label, &after);
        if let Some((name, kind)) = selftest {
            self.record_selftest(machine, name, kind, &step_log, succeeded, cycle)?;
        }
        if let (Some(by), Some(module)) = (leftovers_by(loads, unloads, succeeded), &module) {
            self.charge_leftovers(machine, module, by, &after, cycle)?;
        }
        let released = released_devices(device, succeeded, &output, &log, loads);
        self.charge_released(released, &after, cycle);
        self.check_taint(&after, &label);
        self.current = after;
        self.unloading = None;
        Ok((succeeded, log))
    }

    /// What each driver's released devices left behind since the driver's load.
    fn charge_released(
        &mut self,
        released: Vec<(String, Vec<String>, &'static str)>,
        after: &Snapshot,
        cycle: u32,
    ) {
        for (driver, devices, by) in released {
            if let Some(before) = self.before_load.get(&driver) {
                let found = self
                    .ledger
                    .released(&driver, &devices, before, after, by, cycle);
                self.findings.extend(found);
            }
        }
    }

    /// What `module` left behind since its load, found by the ledger diff and
    /// (when on) kmemleak, charged to `by` in `cycle`.
    fn charge_leftovers(
        &mut self,
        machine: &mut dyn Machine,
        module: &str,
        by: &str,
        after: &Snapshot,
        cycle: u32,
    ) -> Result<(), MachineError> {
        if let Some(before) = self.before_load.get(module) {
            let found = self.ledger.unloaded(module, before, after, by, cycle);
            self.findings.extend(found);
        }
        if self.kmemleak {
            self.check_kmemleak(machine, module, by, cycle)?;
        }
        Ok(())
    }

    /// A step that failed when it should not have (charged to a leftover
    /// `prober` tripped over), or succeeded when the suite expects a failure.
    fn judge_exit(
        &mut self,
        step: &StepRun<'_>,
        expect_failure: Option<bool>,
        prober: Option<String>,
        log: &str,
    ) {
        match (step.output.status == 0, expect_failure) {
            (false, Some(false)) => {
                let mut failed = step_failed(step.label, step.shell, step.output);
                if let Some(prober) = prober {
                    self.charge_load_failure(&mut failed, &prober, log);
                }
                self.findings.push(failed);
            }
            (true, Some(true)) => self.findings.push(Finding {
                kind: FindingKind::UNEXPECTED_SUCCESS,
                title: format!(
                    "{} succeeded but the suite expects it to fail",
                    step.description
                ),
                severity: Severity::Fail,
                report: format!(
                    "$ {}\n{}{}",
                    step.shell, step.output.stdout, step.output.stderr
                ),
                attribution: Some(step.label.to_string()),
                known_issue: None,
            }),
            _ => {}
        }
    }

    /// Do a step's action: a guest command, or for hotplug steps the QMP exchange between the
    /// guest commands that record and check the guest's view. Returns what to show as the
    /// command, the combined output, and for a plain command the collect that ran in the
    /// same round trip (`collect`: the module whose sections to read if it loaded, and how
    /// its snapshot counts slabs).
    fn act(
        &mut self,
        machine: &mut dyn Machine,
        label: &str,
        shell: String,
        timeout: Duration,
        device: Option<&Action>,
        collect: (Option<&str>, SlabCounts),
    ) -> Result<(String, Output, Option<Collected>), MachineError> {
        match device {
            Some(Action::Hotunplug { device }) => {
                let record = self.exec_logged(machine, label, &shell, COLLECT_TIMEOUT)?;
                if record.status != 0 {
                    return Ok((shell, record, None));
                }
                let unplugged = self.qmp_logged(
                    &format!("device_del {device}; wait for DEVICE_DELETED"),
                    machine.unplug(device, timeout),
                )?;
                if unplugged.status != 0 {
                    return Ok((format!("QMP device_del {device}"), unplugged, None));
                }
                let report = command::unplug_report(device);
                let gone = self.exec_logged(machine, label, &report, COLLECT_TIMEOUT)?;
                Ok((report, gone, None))
            }
            Some(Action::Hotplug { device }) => {
                let plugged = self.qmp_logged(
                    &format!("device_add {device}"),
                    machine.plug(device, timeout),
                )?;
                if plugged.status != 0 {
                    return Ok((format!("QMP device_add {device}"), plugged, None));
                }
                let wait = command::plug_await(device, timeout.as_secs());
                let back =
                    self.exec_logged(machine, label, &wait, timeout + Duration::from_secs(10))?;
                Ok((wait, back, None))
            }
            _ => {
                let (output, collected) =
                    self.exec_collecting(machine, label, &shell, timeout, collect)?;
                Ok((shell, output, collected))
            }
        }
    }

    /// A step's command and the collect after it in one round trip
    /// ([`collect::after`]). The step keeps its own deadline in what is
    /// reported; the collect's is added to the wait. Without the status
    /// mark in its output (the shell died first) the collect is `None` and
    /// runs on its own.
    fn exec_collecting(
        &mut self,
        machine: &mut dyn Machine,
        label: &str,
        shell: &str,
        timeout: Duration,
        (loads, counts): (Option<&str>, SlabCounts),
    ) -> Result<(Output, Option<Collected>), MachineError> {
        let merged = collect::after(shell, loads, counts);
        let result = match machine.exec(&merged, timeout + COLLECT_TIMEOUT) {
            Err(MachineError::Timeout(_)) => Err(MachineError::Timeout(timeout)),
            other => other,
        };
        let (output, collected) = match result {
            Ok(output) => match collect::split_output(&output.stdout) {
                Some((stdout, status, collected)) => {
                    let collected = self.absorb(collected);
                    let step = Output {
                        status,
                        stdout: stdout.to_string(),
                        stderr: output.stderr,
                    };
                    (Ok(step), Some(collected))
                }
                None => (Ok(output), None),
            },
            Err(error) => (Err(error), None),
        };
        self.log_exec(label, shell, &output);
        output.map(|output| (output, collected))
    }

    fn qmp_logged(
        &mut self,
        what: &str,
        result: Result<Output, MachineError>,
    ) -> Result<Output, MachineError> {
        self.out.push_str(&format!("(QMP) {what}\n"));
        match &result {
            Ok(output) => {
                self.out.push_str(&output.stdout);
                self.out.push_str(&output.stderr);
            }
            Err(error) => self.err.push_str(&format!("QMP {what}: {error}\n")),
        }
        result
    }

    fn exec_logged(
        &mut self,
        machine: &mut dyn Machine,
        label: &str,
        shell: &str,
        timeout: Duration,
    ) -> Result<Output, MachineError> {
        let result = machine.exec(shell, timeout);
        self.log_exec(label, shell, &result);
        result
    }

    /// A guest command and what it gave, in the test's own log.
    fn log_exec(&mut self, label: &str, shell: &str, result: &Result<Output, MachineError>) {
        self.out.push_str(&format!("# {label}\n$ {shell}\n"));
        match result {
            Ok(output) => {
                self.out.push_str(&output.stdout);
                self.out.push_str(&output.stderr);
                self.out.push_str(&format!("[exit {}]\n", output.status));
            }
            Err(error) => self.err.push_str(&format!("{label}: {error}\n")),
        }
    }

    /// Take the kernel log since the last call, and a snapshot; after a
    /// load, also where the module's sections are (for naming its code
    /// once it is gone).
    fn collect(
        &mut self,
        machine: &mut dyn Machine,
        loaded: Option<&str>,
        counts: SlabCounts,
    ) -> Result<Collected, MachineError> {
        let output = machine.exec(&collect::command(loaded, counts), COLLECT_TIMEOUT)?;
        Ok(self.absorb(&output.stdout))
    }

    /// A collect's output read: the log kept for the test, the snapshot parsed.
    fn absorb(&mut self, stdout: &str) -> Collected {
        let (log, snap, sections) = collect::parts(stdout);
        self.dmesg.push_str(log);
        if log.len() >= super::qemu::LOG_BUF_FULL {
            self.err.push_str(&format!(
                "kernel log: {} MiB since the previous step; the ring buffer may have \
                 wrapped and lost the oldest lines\n",
                log.len() >> 20
            ));
        }
        let mut snapshot = Snapshot::parse(snap);
        snapshot.module_sections = ledger::parse_sections(sections);
        (log.to_string(), snapshot)
    }

    /// Classify a step's kernel log and charge each finding: a report that
    /// names something an earlier unload left behind goes to that unload,
    /// code running in a gone module's image to the unload that removed it.
    fn check_log(&mut self, found: &[dmesg::Finding], label: &str, now: &Snapshot) {
        for found in found {
            let subject = found.subject.clone();
            self.charge(
                from_dmesg(found.clone()),
                subject,
                label,
                &now.module_ranges,
            );
        }
    }

    /// Attribute one finding and record it (with its use-after-unload finding, if any).
    fn charge(
        &mut self,
        mut finding: Finding,
        subject: Option<String>,
        label: &str,
        loaded: &[snapshot::ModuleRange],
    ) {
        // The classifier's subject (the duplicated path) first, then what
        // the report's first lines name.
        let named = format!(
            "{}\n{}\n{}",
            subject.unwrap_or_default(),
            finding.title,
            first_lines(&finding.report, 3)
        );
        let blamed = self.ledger.blame(&named).or_else(|| {
            finding
                .kind
                .is_duplicate()
                .then(|| self.ledger.leftovers.last())
                .flatten()
        });
        finding.attribution = Some(match blamed {
            Some(leftover) => format!(
                "{} ({}); seen at {label}",
                leftover.attribution(),
                leftover.name
            ),
            None => format!("seen at {label}"),
        });
        let uaf = self
            .ledger
            .use_after_unload(&finding, loaded, self.ctx.symbols);
        self.findings.push(finding);
        self.findings.extend(uaf);
    }

    /// A load that failed because a name is taken (-EEXIST, -EBUSY) after an
    /// earlier unload left that module's names behind is charged to that unload.
    /// The leftover is the one the step's kernel log names, else the
    /// module's latest.
    fn charge_load_failure(&self, failed: &mut Finding, module: &str, log: &str) {
        let text = failed.report.to_ascii_lowercase();
        let taken = ["file exists", "device or resource busy", "eexist", "ebusy"]
            .iter()
            .any(|m| text.contains(m));
        let leftover = self
            .ledger
            .blame(log)
            .or_else(|| self.ledger.latest_of(module));
        if let (true, Some(leftover)) = (taken, leftover) {
            failed.attribution = Some(format!(
                "{}: the load tripped over {} ({})",
                leftover.attribution(),
                leftover.name,
                leftover.kind
            ));
        }
    }

    /// After an unload (or failed load): ask kmemleak for unreferenced
    /// objects, charge them to this cycle, and clear its list so the next
    /// check reports only new ones. Module frames of a gone module are named
    /// from its `.ko`.
    fn check_kmemleak(
        &mut self,
        machine: &mut dyn Machine,
        module: &str,
        by: &str,
        cycle: u32,
    ) -> Result<(), MachineError> {
        let label = format!("kmemleak scan after {by} of {module} in cycle {cycle}");
        let output = self.exec_logged(machine, &label, command::KMEMLEAK_SCAN, COLLECT_TIMEOUT)?;
        for found in dmesg::classify(&output.stdout) {
            let mut finding = from_dmesg(found);
            self.ledger.annotate(&mut finding, self.ctx.symbols);
            finding.attribution = Some(format!(
                "left behind by {by} in cycle {cycle} (reported by kmemleak after it)"
            ));
            self.findings.push(finding);
        }
        Ok(())
    }

    /// New taint bits since the last snapshot that the test did not set on purpose.
    fn check_taint(&mut self, after: &Snapshot, label: &str) {
        let new: Vec<String> = after
            .taint
            .new_since(self.current.taint)
            .into_iter()
            .filter(|f| !f.is_expected())
            .map(|f| f.to_string())
            .collect();
        if !new.is_empty() {
            self.findings.push(Finding {
                kind: FindingKind::TAINT,
                title: format!("kernel tainted: {}", new.join(", ")),
                severity: Severity::Warn,
                report: format!("/proc/sys/kernel/tainted = {}\n", after.taint.0),
                attribution: Some(format!("seen at {label}")),
                known_issue: None,
            });
        }
    }

    fn record_selftest(
        &mut self,
        machine: &mut dyn Machine,
        module: &str,
        kind: SelftestKind,
        log: &StepLog<'_>,
        completed: bool,
        cycle: u32,
    ) -> Result<(), MachineError> {
        let lines: Vec<&str> = log.text.lines().collect();
        let messages: Vec<&str> = lines.iter().map(|l| dmesg::line::parse(l).text).collect();
        let subtests = match kind {
            SelftestKind::Kunit => selftest::ktap_subtests(&messages),
            _ => selftest::i915_subtests(&command::canonical(module), &messages, completed),
        };
        for subtest in &subtests {
            self.record_subtest(subtest, &lines, &log.findings, cycle);
        }
        if let (true, Some(read)) = (completed, command::read_selftest_result(module, kind)) {
            let output = self.exec_logged(machine, "selftest result", &read, COLLECT_TIMEOUT)?;
            let result = output.stdout.trim();
            let any_subtest_failed = subtests
                .iter()
                .any(|s| matches!(s.outcome, SubtestOutcome::Fail(_)));
            if output.status == 0 && !command::selftest_passed(result) && !any_subtest_failed {
                self.findings.push(Finding {
                    kind: FindingKind::SELFTEST_RESULT,
                    title: format!("{module} {} selftests returned {result}", kind.as_str()),
                    severity: Severity::Fail,
                    report: format!("$ {read}\n{result}\n"),
                    attribution: None,
                    known_issue: None,
                });
            }
        }
        Ok(())
    }

    fn record_subtest(
        &mut self,
        subtest: &Subtest,
        lines: &[&str],
        findings: &[dmesg::Finding],
        cycle: u32,
    ) {
        let range = subtest.first_line..subtest.end_line.min(lines.len());
        let mut status = match &subtest.outcome {
            SubtestOutcome::Pass => Status::Pass,
            SubtestOutcome::Fail(_) => Status::Fail,
            SubtestOutcome::Skip(_) => Status::Skip,
            SubtestOutcome::Incomplete => Status::Incomplete,
        };
        let inside: Vec<Finding> = findings
            .iter()
            .filter(|f| range.contains(&(f.line.saturating_sub(1))))
            .cloned()
            .map(from_dmesg)
            .collect();
        if status == Status::Pass {
            status = verdict::status(None, &inside);
        }
        let name = format!("{}@{}", self.ctx.test.name, subtest.name);
        let excerpt = lines.get(range).unwrap_or_default().join("\n");
        let detail = match &subtest.outcome {
            SubtestOutcome::Fail(why) | SubtestOutcome::Skip(why) => format!("{why}\n"),
            _ => String::new(),
        };
        let result = TestResult {
            name: name.clone(),
            suite: self.ctx.suite.name.clone(),
            status,
            start: self.ctx.run_start.elapsed().as_secs_f64(),
            duration: Duration::ZERO,
            findings: inside,
            out: format!("cycle {cycle}: {}\n{detail}", subtest.name),
            err: String::new(),
            dmesg: excerpt,
            flaky_attempts: Vec::new(),
            cycles: Vec::new(),
        };
        // The same subtest in several cycles is one result: the worst one.
        match self.subtests.get_mut(&name) {
            Some(existing) if existing.status >= result.status => {}
            _ => {
                self.subtests.insert(name, result);
            }
        }
    }

    /// A sweep step: for each point, the failing load, an unload if it
    /// loaded anyway, then a clean load and unload to prove the module is
    /// still loadable; one subtest per point. A point that left the guest
    /// unfit (leftovers, a module that no longer loads) restarts it, so
    /// every point starts from a clean kernel.
    fn run_sweep(
        &mut self,
        machine: &mut dyn Machine,
        emit: &mut dyn FnMut(Event),
        step: &crate::suite::Step,
        cycle: u32,
    ) -> Result<(), MachineError> {
        let Action::Sweep {
            module,
            method,
            limit,
            params,
        } = &step.action
        else {
            return Ok(());
        };
        let sources = self.ctx.sources;
        for index in 0.. {
            let Some(point) = sweep::point(method, *limit, module, params, sources, index) else {
                break;
            };
            if index == 0 || self.restarted {
                self.restarted = false;
                let label = format!("sweep {module}: prepare fault injection");
                let setup = command::for_action(&step.action, sources);
                let output = self.exec_logged(machine, &label, &setup, COLLECT_TIMEOUT)?;
                if output.status != 0 {
                    self.findings.push(step_failed(&label, &setup, &output));
                    return Ok(());
                }
            }
            let first = self.findings.len();
            let leftovers = self.ledger.leftovers.len();
            let (loaded, log, proved) = self.run_point(machine, emit, step, &point, cycle)?;
            let injection = sweep::injection(&log, module);
            let unusable = self.ledger.leftovers.len() > leftovers || !proved;
            let done = sweep::is_done(method, loaded, injection.is_some());
            self.record_point(&point, injection.as_ref(), loaded, first, log, cycle);
            if unusable {
                self.restart_clean(machine, &point.name)?;
            }
            if done {
                break;
            }
        }
        Ok(())
    }

    /// One point's loads: the failing one, an unload if it loaded anyway,
    /// then the clean load and unload. Returns whether the failing one
    /// loaded, the point's kernel log, and whether the clean pair worked.
    fn run_point(
        &mut self,
        machine: &mut dyn Machine,
        emit: &mut dyn FnMut(Event),
        step: &crate::suite::Step,
        point: &sweep::Point,
        cycle: u32,
    ) -> Result<(bool, String, bool), MachineError> {
        let Action::Sweep {
            module,
            method,
            params,
            ..
        } = &step.action
        else {
            return Ok((false, String::new(), true));
        };
        let sources = self.ctx.sources;
        let step_at = |what: &str, loads: bool, shell: String, expect: Option<bool>| Planned {
            label: format!("sweep {}: {what} {module}", point.name),
            description: format!("{what} {module}"),
            module: Some(command::canonical(module)),
            loads,
            device: None,
            shell,
            timeout: step.timeout,
            expect_failure: expect,
            selftest: None,
            counts: SlabCounts::Listed,
        };
        let unload = command::for_action(
            &Action::Unload {
                module: module.clone(),
            },
            sources,
        );
        // fail-nth may hit a call whose failure init survives: either outcome is fine.
        let expect = matches!(method, SweepMethod::Param { .. }).then_some(true);
        let inject = step_at(
            "inject into the load of",
            true,
            point.inject.clone(),
            expect,
        );
        let (loaded, mut log) = self.run_planned(machine, emit, inject, cycle)?;
        let mut then = Vec::new();
        if loaded {
            then.push(("unload", false, unload.clone()));
        }
        let proof = self.findings.len();
        then.push((
            "clean load",
            true,
            command::load_command(module, params, sources),
        ));
        then.push(("unload", false, unload));
        for (what, loads, shell) in then {
            let planned = step_at(what, loads, shell, Some(false));
            let (_, more) = self.run_planned(machine, emit, planned, cycle)?;
            log.push_str(&more);
        }
        let proved = !self.findings[proof..]
            .iter()
            .any(|f| f.kind == FindingKind::STEP_FAILED);
        Ok((loaded, log, proved))
    }

    /// One sweep point's subtest, from the findings it added (the fault's
    /// own stack dump is no finding); those stay the test's as well, so a
    /// control's `expect` sees them, each naming the point and call site.
    fn record_point(
        &mut self,
        point: &sweep::Point,
        injection: Option<&sweep::Injection>,
        loaded: bool,
        first: usize,
        log: String,
        cycle: u32,
    ) {
        let found = self.findings.split_off(first);
        let judged = sweep::judge(point, injection, loaded, found);
        self.findings.extend(judged.findings.iter().cloned());
        let name = format!("{}@sweep@{}", self.ctx.test.name, point.name);
        self.subtests.insert(
            name.clone(),
            TestResult {
                name,
                suite: self.ctx.suite.name.clone(),
                status: judged.status,
                start: self.ctx.run_start.elapsed().as_secs_f64(),
                duration: Duration::ZERO,
                out: format!("cycle {cycle}: {}", judged.out),
                findings: judged.findings,
                err: String::new(),
                dmesg: log,
                flaky_attempts: Vec::new(),
                cycles: Vec::new(),
            },
        );
    }

    /// Restart the guest after a sweep point left it unfit, and start the
    /// books afresh: what was left behind is recorded and gone with the reboot.
    fn restart_clean(
        &mut self,
        machine: &mut dyn Machine,
        point: &str,
    ) -> Result<(), MachineError> {
        // The state saved when the guest was first ready is a clean kernel
        // in a fraction of a boot; a failed restore still leaves a reboot.
        let saved = machine.saved() == Saved::Ready;
        self.out.push_str(&format!(
            "# restart the guest{}: sweep point {point} left it unfit\n",
            if saved { " from its saved state" } else { "" }
        ));
        let restored = saved
            && match machine.restore() {
                Ok(()) => true,
                Err(e) => {
                    self.out.push_str(&format!("# {e}; booting it instead\n"));
                    false
                }
            };
        if !restored {
            machine.restart()?;
        }
        self.restarted = true;
        self.ledger = Ledger::default();
        self.before_load.clear();
        let (_, fresh) = self.collect(machine, None, SlabCounts::Listed)?;
        self.baseline = fresh.clone();
        self.current = fresh;
        if self.kmemleak {
            machine.exec(command::KMEMLEAK_CLEAR, COLLECT_TIMEOUT)?;
        }
        Ok(())
    }

    /// Record a guest fault as findings and return its status. The console
    /// since the step began is the evidence (SSH is gone or stuck): its
    /// reports are classified and charged like a step's log.
    fn fault(&mut self, error: MachineError, machine: &mut dyn Machine) -> Status {
        let (status, console) = match &error {
            MachineError::Timeout(_) => (Status::Timeout, machine.console_since(self.console_mark)),
            MachineError::Crashed { console, .. } => (Status::Crash, console.clone()),
            MachineError::Lost(_) => (Status::Incomplete, machine.console_since(self.console_mark)),
            MachineError::Boot(_) | MachineError::Restore(_) => (Status::Abort, String::new()),
        };
        self.findings.push(Finding {
            kind: Fault::from_status(status)
                .map_or_else(|| status.as_str().into(), FindingKind::Fault),
            title: error.to_string(),
            severity: Severity::Fail,
            report: tail(&console, 60),
            attribution: None,
            known_issue: None,
        });
        // A guest that died inside an unload died with the module's image
        // gone or going: what ran there is charged to that unload.
        if let Some((module, cycle)) = self.unloading.take() {
            self.ledger.removed(&module, cycle);
        }
        let loaded: Vec<_> = self
            .current
            .module_ranges
            .iter()
            .filter(|r| !self.ledger.is_gone(&r.module))
            .cloned()
            .collect();
        for found in dmesg::classify(&console) {
            let subject = found.subject.clone();
            self.charge(
                from_dmesg(found),
                subject,
                "the console when the guest gave out",
                &loaded,
            );
        }
        self.err.push_str(&format!("{error}\n"));
        status
    }
}

fn step_failed(label: &str, shell: &str, output: &Output) -> Finding {
    let first = output
        .stderr
        .lines()
        .chain(output.stdout.lines())
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    Finding {
        kind: FindingKind::STEP_FAILED,
        title: format!("{label} failed with exit {}: {first}", output.status),
        severity: Severity::Fail,
        report: format!("$ {shell}\n{}{}", output.stdout, output.stderr),
        attribution: None,
        known_issue: None,
    }
}

fn describe(action: &Action) -> String {
    match action {
        Action::Load { module, .. } => format!("load {module}"),
        Action::Unload { module } => format!("unload {module}"),
        Action::Reload { module, .. } => format!("reload {module}"),
        Action::Selftest { module, kind, .. } => format!("{} selftests of {module}", kind.as_str()),
        Action::Unbind { driver } => format!("unbind {driver}'s devices"),
        Action::Bind { driver } => format!("bind {driver}'s devices"),
        Action::Hotunplug { device } => format!("hot-unplug {device}"),
        Action::Hotplug { device } => format!("hot-plug {device}"),
        Action::Sweep { module, .. } => format!("sweep {module}"),
        Action::Run { command } => format!("run `{command}`"),
    }
}

fn from_dmesg(found: dmesg::Finding) -> Finding {
    Finding {
        kind: found.kind.into(),
        title: found.title,
        severity: found.severity,
        report: found.report,
        attribution: None,
        known_issue: None,
    }
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

/// Keep only the counters that changed during the test: the series is for
/// trends and charts, and a constant counter says nothing.
fn changing_counters(mut samples: Vec<CycleSample>) -> Vec<CycleSample> {
    let Some(first) = samples.first().map(|s| s.counters.clone()) else {
        return samples;
    };
    let constant: Vec<String> = first
        .iter()
        .filter(|(name, value)| samples.iter().all(|s| s.counters.get(*name) == Some(value)))
        .map(|(name, _)| name.clone())
        .collect();
    for sample in &mut samples {
        for name in &constant {
            sample.counters.remove(name);
        }
    }
    samples
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
