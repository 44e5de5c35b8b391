//! Runs one test on a machine: its steps, `cycles` times, with the kernel log,
//! slab caches, debugfs and taint checked around every step.
//!
//! Per step: run the action; take the kernel log printed since the previous
//! step (`dmesg -c`) and a snapshot; classify the log; after an unload,
//! compare against the snapshot from before the module's load, so what the
//! module created and left behind is named and charged to the cycle whose
//! unload left it ("left behind by unload in cycle N"). A later load that
//! trips over a leftover (duplicate debugfs/sysfs entries) is charged to that
//! same unload rather than to itself, which is the whole point of kcycle.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::command::{self, ModuleSources};
use super::event::{Event, Unfit};
use super::machine::{Machine, MachineError, Output};
use super::verdict::{self, kind};
use crate::dmesg;
use crate::outcome::{Finding, Severity, TestResult};
use crate::selftest::{self, Subtest, SubtestOutcome};
use crate::snapshot::{self, Snapshot};
use crate::status::Status;
use crate::suite::{Action, SelftestKind, Suite, Test};

/// Deadline for the runner's own bookkeeping commands (log, snapshot).
const COLLECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Marks the end of the kernel log in the collect command's output.
const SNAPSHOT_MARK: &str = "@@kcycle-snapshot";

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
}

/// A step's kernel log and its classification, made once per step.
struct StepLog<'a> {
    text: &'a str,
    findings: Vec<dmesg::Finding>,
}

/// Something an unload left behind, remembered for attributing later warnings.
struct Leftover {
    name: String,
    cycle: u32,
}

/// The test being run: its accumulating log and findings.
struct Recorder<'a> {
    ctx: &'a TestContext<'a>,
    out: String,
    err: String,
    dmesg: String,
    findings: Vec<Finding>,
    subtests: BTreeMap<String, TestResult>,
    leftovers: Vec<Leftover>,
    /// Snapshot taken before each module's latest load.
    before_load: BTreeMap<String, Snapshot>,
    baseline: Snapshot,
    current: Snapshot,
    /// The suite boots with `kmemleak=on`: scan after every unload.
    kmemleak: bool,
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
    let mut rec = Recorder {
        ctx,
        out: String::new(),
        err: String::new(),
        dmesg: String::new(),
        findings: Vec::new(),
        subtests: BTreeMap::new(),
        leftovers: Vec::new(),
        before_load: BTreeMap::new(),
        baseline: Snapshot::default(),
        current: Snapshot::default(),
        kmemleak: ctx.suite.cmdline.iter().any(|arg| arg == "kmemleak=on"),
    };

    let fault = match rec.run_steps(machine, emit) {
        Ok(()) => None,
        Err(error) => Some(rec.fault(error)),
    };

    let mut findings = std::mem::take(&mut rec.findings);
    let mut status = verdict::status(fault, &findings);
    verdict::apply_known_issues(&ctx.test.name, &mut findings, &ctx.suite.known_issues);
    status = verdict::apply_controls(&ctx.test.expect, &mut findings, status);

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
    }];
    results.extend(rec.subtests.into_values().map(|mut subtest| {
        verdict::apply_known_issues(
            &subtest.name,
            &mut subtest.findings,
            &ctx.suite.known_issues,
        );
        subtest
    }));
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

fn restart_reason(fault: Option<Status>, rec: &Recorder<'_>) -> Option<Unfit> {
    if let Some(fault) = fault {
        return Some(Unfit::Fault(fault));
    }
    if let Some(leftover) = rec.leftovers.first() {
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

impl Recorder<'_> {
    fn run_steps(
        &mut self,
        machine: &mut dyn Machine,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), MachineError> {
        // Start from a clean log and a baseline snapshot. What the kernel
        // printed before (boot, an earlier test) is not this test's; it is in
        // the console log.
        let (_, baseline) = self.collect(machine)?;
        self.dmesg.clear();
        self.baseline = baseline.clone();
        self.current = baseline;

        let test = self.ctx.test;
        for cycle in 1..=test.cycles {
            for step in &test.steps {
                let description = describe(&step.action);
                let label = if test.cycles > 1 {
                    format!("cycle {cycle}/{}: {description}", test.cycles)
                } else {
                    description.clone()
                };
                emit(Event::StepStarted {
                    guest: self.ctx.guest,
                    test: test.name.clone(),
                    step: label.clone(),
                });
                let module = command::canonical(step.module());
                if !matches!(step.action, Action::Unload { .. }) {
                    self.before_load
                        .insert(module.clone(), self.current.clone());
                }

                let shell = command::for_action(&step.action, self.ctx.sources);
                let output = self.exec_logged(machine, &label, &shell, step.timeout)?;
                let succeeded = output.status == 0;
                match (succeeded, step.expect_failure) {
                    (false, false) => self.findings.push(step_failed(&label, &shell, &output)),
                    (true, true) => self.findings.push(Finding {
                        kind: kind::UNEXPECTED_SUCCESS.into(),
                        title: format!("{description} succeeded but the suite expects it to fail"),
                        severity: Severity::Fail,
                        report: format!("$ {shell}\n{}{}", output.stdout, output.stderr),
                        attribution: Some(label.clone()),
                        known_issue: None,
                    }),
                    _ => {}
                }

                let (log, after) = self.collect(machine)?;
                // Classified once: the test's findings and its subtests' both come from it.
                let step_log = StepLog {
                    findings: dmesg::classify(&log),
                    text: &log,
                };
                self.check_log(&step_log.findings, &label);
                if let Action::Selftest {
                    module: name, kind, ..
                } = &step.action
                {
                    self.record_selftest(machine, name, *kind, &step_log, succeeded, cycle)?;
                }
                // After an unload, and after a load whose init failed (nothing
                // of the module should remain either way), what appeared since
                // the module's load was left behind.
                match (&step.action, succeeded) {
                    (Action::Unload { .. }, true) => {
                        self.check_leftovers(&module, &after, "unload", cycle)
                    }
                    (
                        Action::Load { .. } | Action::Reload { .. } | Action::Selftest { .. },
                        false,
                    ) => self.check_leftovers(&module, &after, "failed load", cycle),
                    _ => {}
                }
                self.check_taint(&after, &label);
                self.current = after;
            }
        }
        // kmemleak reports objects only once they are a few seconds old, so
        // one scan at the end of the test finds what every cycle leaked.
        if self.kmemleak {
            self.check_kmemleak(machine)?;
        }
        Ok(())
    }

    fn exec_logged(
        &mut self,
        machine: &mut dyn Machine,
        label: &str,
        shell: &str,
        timeout: Duration,
    ) -> Result<Output, MachineError> {
        self.out.push_str(&format!("# {label}\n$ {shell}\n"));
        let result = machine.exec(shell, timeout);
        match &result {
            Ok(output) => {
                self.out.push_str(&output.stdout);
                self.out.push_str(&output.stderr);
                self.out.push_str(&format!("[exit {}]\n", output.status));
            }
            Err(error) => self.err.push_str(&format!("{label}: {error}\n")),
        }
        result
    }

    /// Take the kernel log since the last call, and a snapshot.
    fn collect(&mut self, machine: &mut dyn Machine) -> Result<(String, Snapshot), MachineError> {
        let shell = format!(
            "{}; echo {SNAPSHOT_MARK}; {}",
            command::TAKE_DMESG,
            snapshot::COMMAND
        );
        let output = machine.exec(&shell, COLLECT_TIMEOUT)?;
        let (log, snap) = output
            .stdout
            .split_once(&format!("{SNAPSHOT_MARK}\n"))
            .unwrap_or((output.stdout.as_str(), ""));
        self.dmesg.push_str(log);
        Ok((log.to_string(), Snapshot::parse(snap)))
    }

    /// Classify a step's kernel log; charge duplicates to the unload that left their entry behind.
    fn check_log(&mut self, found: &[dmesg::Finding], label: &str) {
        for found in found {
            let mut finding = from_dmesg(found.clone());
            finding.attribution = Some(if is_duplicate(&finding.kind) {
                match self.blame(&finding.title) {
                    Some(leftover) => format!(
                        "left behind by unload in cycle {}; seen at {label}",
                        leftover.cycle
                    ),
                    None => format!("seen at {label}"),
                }
            } else {
                format!("seen at {label}")
            });
            self.findings.push(finding);
        }
    }

    /// The leftover a duplicate warning is about: the one it names, else the latest.
    fn blame(&self, title: &str) -> Option<&Leftover> {
        self.leftovers
            .iter()
            .rev()
            .find(|l| title.contains(&l.name))
            .or_else(|| self.leftovers.last())
    }

    /// Name what appeared since `module`'s load and is still there; `by` is
    /// the step that left it ("unload", "failed load"). Titles carry no cycle
    /// number so known issues and controls can match them; attributions do.
    fn check_leftovers(&mut self, module: &str, after: &Snapshot, by: &str, cycle: u32) {
        let Some(before) = self.before_load.get(module) else {
            return;
        };
        let attribution = format!("left behind by {by} in cycle {cycle}");
        let leaked = after.slab.appeared_since(&before.slab);
        if !leaked.is_empty() {
            let names: Vec<&str> = leaked.iter().map(|c| c.name.as_str()).collect();
            let counted: Vec<String> = leaked
                .iter()
                .map(|c| match c.active_objects {
                    Some(n) => format!("{} ({n} objects)", c.name),
                    None => c.name.clone(),
                })
                .collect();
            self.findings.push(Finding {
                kind: kind::LEAKED_SLAB_CACHE.into(),
                title: format!("slab caches left after {by} of {module}: {}", names.join(", ")),
                severity: Severity::Fail,
                report: format!(
                    "Present in /sys/kernel/slab after the {by} of {module} but not before its load:\n  {}\n",
                    counted.join("\n  ")
                ),
                attribution: Some(attribution.clone()),
                known_issue: None,
            });
            self.leftovers
                .extend(names.into_iter().map(|name| Leftover {
                    name: name.into(),
                    cycle,
                }));
        }
        let entries: Vec<String> = after
            .debugfs_appeared_since(before)
            .into_iter()
            .map(str::to_string)
            .collect();
        if !entries.is_empty() {
            self.findings.push(Finding {
                kind: kind::LEAKED_DEBUGFS_ENTRY.into(),
                title: format!("debugfs entries left after {by} of {module}: {}", entries.join(", ")),
                severity: Severity::Fail,
                report: format!(
                    "Present in /sys/kernel/debug after the {by} of {module} but not before its load:\n  {}\n",
                    entries.join("\n  ")
                ),
                attribution: Some(attribution),
                known_issue: None,
            });
            self.leftovers
                .extend(entries.into_iter().map(|name| Leftover { name, cycle }));
        }
    }

    /// Ask kmemleak for unreferenced objects, report them, and clear its list
    /// so the next test reports only its own.
    fn check_kmemleak(&mut self, machine: &mut dyn Machine) -> Result<(), MachineError> {
        let output = self.exec_logged(
            machine,
            "kmemleak scan",
            command::KMEMLEAK_SCAN,
            COLLECT_TIMEOUT,
        )?;
        for found in dmesg::classify(&output.stdout) {
            let mut finding = from_dmesg(found);
            finding.attribution = Some("reported by kmemleak at the end of the test".into());
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
                kind: kind::TAINT.into(),
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
                    kind: kind::SELFTEST_RESULT.into(),
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
        };
        // The same subtest in several cycles is one result: the worst one.
        match self.subtests.get_mut(&name) {
            Some(existing) if existing.status >= result.status => {}
            _ => {
                self.subtests.insert(name, result);
            }
        }
    }

    /// Record a guest fault as findings and return its status.
    fn fault(&mut self, error: MachineError) -> Status {
        let (status, report) = match &error {
            MachineError::Timeout(_) => (Status::Timeout, String::new()),
            MachineError::Crashed { console, .. } => (Status::Crash, console.clone()),
            MachineError::Lost(_) => (Status::Incomplete, String::new()),
            MachineError::Boot(_) => (Status::Abort, String::new()),
        };
        let from_console = dmesg::classify(&report);
        if from_console.is_empty() {
            self.findings.push(Finding {
                kind: status.to_string(),
                title: error.to_string(),
                severity: Severity::Fail,
                report: tail(&report, 60),
                attribution: None,
                known_issue: None,
            });
        } else {
            self.findings
                .extend(from_console.into_iter().map(from_dmesg));
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
        kind: kind::STEP_FAILED.into(),
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
    }
}

fn is_duplicate(kind: &str) -> bool {
    kind == dmesg::Kind::DebugfsDuplicate.name() || kind == dmesg::Kind::SysfsDuplicate.name()
}

fn from_dmesg(found: dmesg::Finding) -> Finding {
    Finding {
        kind: found.kind.name().to_string(),
        title: found.title,
        severity: found.severity,
        report: found.report,
        attribution: None,
        known_issue: None,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
