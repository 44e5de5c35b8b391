//! Executor and scheduler against a scripted fake kernel. The fake models
//! just enough (modules, slab caches, debugfs, a log, taint) to check the
//! runner's bookkeeping; the real thing is covered by the end-to-end tests.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::command::ModuleSources;
use super::executor::{run_test, TestContext};
use super::machine::{Machine, MachineError, Output, Saved};
use super::scheduler::{run_plan, MachineFactory, RunOptions, ABORTED_TEST};
use super::Event;
use crate::kind::FindingKind;
use crate::outcome::TestResult;
use crate::status::Status;
use crate::suite::Suite;
use crate::sys::Cancel;

/// A kernel with one driver, `drv`, that creates slab cache `drv_cache` and
/// debugfs dir `drv` on load. With `legacy_exit=1` its unload leaks both, and
/// the next load trips over them like i915 did before the table patch.
#[derive(Default)]
struct FakeKernel {
    loaded: BTreeSet<String>,
    caches: BTreeSet<String>,
    debugfs: BTreeSet<String>,
    log: String,
    taint: u64,
    legacy_exit: bool,
    /// Commands containing this never return.
    hang_on: Option<&'static str>,
    /// Commands containing this crash the guest.
    crash_on: Option<&'static str>,
    /// Unloading WARNs (and so taints the kernel W).
    warn_on_unload: bool,
    /// Commands containing this fail with exit 1 until the guest restarts
    /// (a restart is a fresh kernel): a flake.
    fail_until_restart: Option<&'static str>,
    restarts: usize,
    /// `standin=1`: the driver has a device, `0000:01:00.0`, with a debugfs dir of its own.
    bound: Option<bool>,
    /// `remove_leak=1`: remove forgets the device's debugfs dir.
    remove_leak: bool,
    /// fail-nth: how many injectable calls drv's init makes; a restart keeps it.
    init_calls: u32,
    /// The fail-nth point whose error path forgets to destroy drv_cache.
    leak_on_nth: Option<u32>,
    /// The fail-nth point whose call asks for __GFP_NOWARN and has a
    /// fallback: injected without a stack, and the load survives.
    silent_on_nth: Option<u32>,
    /// Every collect the runner asked for (alone or after a step), in order.
    collects: Vec<String>,
}

const DEVICE_DIR: &str = "drv/0000:01:00.0";

impl FakeKernel {
    fn printk(&mut self, line: &str) {
        self.log.push_str(&format!("[    1.000000] {line}\n"));
    }

    fn snapshot(&self) -> String {
        let mut out = String::from("@@slab\nkmalloc-64\n");
        for cache in &self.caches {
            out.push_str(&format!("{cache}\n"));
        }
        out.push_str(&format!("@@slabinfo\n@@taint\n{}\n@@modules\n", self.taint));
        for module in &self.loaded {
            out.push_str(&format!("{module} 16384 0 - Live 0x0\n"));
        }
        out.push_str("@@debugfs\nslab\n");
        for entry in &self.debugfs {
            out.push_str(&format!("{entry}\n"));
        }
        out
    }

    fn load(&mut self, args: &str) -> Output {
        if self.caches.contains("drv_cache") {
            self.printk("sysfs: cannot create duplicate filename '/kernel/slab/drv_cache'");
            self.printk("CPU: 0 PID: 1 Comm: modprobe Not tainted 6.12.117 #1");
            self.printk("Call Trace:");
            self.printk(" <TASK>");
            self.printk(" dump_stack_lvl+0x5d/0x80");
            self.printk(" sysfs_warn_dup+0x5a/0x70");
            self.printk(" kmem_cache_create_usercopy+0x1ac/0x2a0");
            self.printk(" </TASK>");
            return Output {
                status: 1,
                stdout: String::new(),
                stderr: "modprobe: ERROR: could not insert 'drv': Cannot allocate memory\n".into(),
            };
        }
        if args.contains("fail_at=") {
            // A correct unwind removes what init created; a broken one keeps the cache.
            if args.contains("fail_at=broken") {
                self.caches.insert("drv_cache".into());
            }
            return Output {
                status: 1,
                stdout: String::new(),
                stderr: "modprobe: ERROR: could not insert 'drv': Cannot allocate memory\n".into(),
            };
        }
        self.legacy_exit = args.contains("legacy_exit=1");
        self.remove_leak = args.contains("remove_leak=1");
        if args.contains("standin=1") {
            self.bound = Some(false);
            self.probe();
        }
        self.caches.insert("drv_cache".into());
        self.debugfs.insert("drv".into());
        self.loaded.insert("drv".into());
        if args.contains("mock_selftests=-1") {
            self.taint |= 64; // TAINT_USER, expected
            self.printk("drv: Running sanity");
            self.printk("drv: Running drv_mock_selftests/alloc");
            self.printk("drv: Running drv_mock_selftests/free");
            self.printk("drv/drv_mock_selftests: free failed with error -22");
        }
        Output::default()
    }

    fn probe(&mut self) {
        if !self.debugfs.insert(DEVICE_DIR.into()) {
            self.printk("debugfs: Directory '0000:01:00.0' with parent 'drv' already present!");
        }
        self.bound = Some(true);
    }

    fn unbind(&mut self) -> Output {
        if self.bound != Some(true) {
            return Output {
                status: 1,
                stderr: "kcycle: no device is bound to drv\n".into(),
                ..Output::default()
            };
        }
        if !self.remove_leak {
            self.debugfs.remove(DEVICE_DIR);
        }
        self.bound = Some(false);
        Output {
            stdout: "kcycle: unbound 0000:01:00.0\n".into(),
            ..Output::default()
        }
    }

    /// `sh -c '... echo N > /proc/self/fail-nth && exec insmod ...'`: the
    /// Nth call of init fails (verbose fault injection prints its stack).
    fn load_failing(&mut self, command: &str) -> Output {
        let n: u32 = command
            .split_once(" > /proc/self/fail-nth")
            .and_then(|(before, _)| before.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("fail-nth N");
        if n > self.init_calls || self.silent_on_nth == Some(n) {
            let loaded = self.load("");
            let left = if n > self.init_calls { 1000 } else { 999 };
            self.printk(&format!("kcycle-sweep: faults left {left} 1000"));
            return loaded;
        }
        self.printk("FAULT_INJECTION: forcing a failure.");
        self.printk("name failslab, interval 1, probability 0, space 0, times 1");
        self.printk("Call Trace:");
        self.printk(" <TASK>");
        self.printk(" dump_stack_lvl+0x5d/0x80");
        self.printk(" should_failslab+0x4d/0x70");
        self.printk(&format!(" drv_step{n}+0x1e/0x60 [drv]"));
        self.printk(" do_init_module+0x60/0x230");
        self.printk(" </TASK>");
        if self.leak_on_nth == Some(n) {
            self.caches.insert("drv_cache".into());
        }
        self.printk("kcycle-sweep: faults left 999 1000");
        Output {
            status: 1,
            stdout: String::new(),
            stderr: "modprobe: ERROR: could not insert 'drv': Cannot allocate memory\n".into(),
        }
    }

    /// What a collect prints: the log since the last one, then the snapshot.
    fn take_collect(&mut self) -> Output {
        let log = std::mem::take(&mut self.log);
        Output {
            status: 0,
            stdout: format!("{log}@@kcycle-snapshot\n{}", self.snapshot()),
            stderr: String::new(),
        }
    }

    fn unload(&mut self) -> Output {
        if self.bound == Some(true) {
            self.unbind();
        }
        self.bound = None;
        self.loaded.remove("drv");
        if self.warn_on_unload {
            self.taint |= 1 << 9;
        }
        if !self.legacy_exit {
            self.caches.remove("drv_cache");
            self.debugfs.remove("drv");
        }
        Output::default()
    }
}

impl Machine for FakeKernel {
    fn exec(&mut self, command: &str, timeout: Duration) -> Result<Output, MachineError> {
        // A step with its collect (one round trip): the fake shell runs the
        // two parts and prints what the real one would.
        if let Some((step, collect)) = super::collect::split_after(command) {
            self.collects.push(collect.to_string());
            let done = self.exec(step, timeout)?;
            let collected = self.take_collect();
            return Ok(Output {
                status: done.status,
                stdout: format!(
                    "{}\n{} {}\n{}",
                    done.stdout,
                    super::collect::STEP_MARK,
                    done.status,
                    collected.stdout
                ),
                stderr: done.stderr,
            });
        }
        if self.hang_on.is_some_and(|h| command.contains(h)) {
            return Err(MachineError::Timeout(timeout));
        }
        if self.crash_on.is_some_and(|c| command.contains(c)) {
            return Err(MachineError::Crashed {
                summary: "kernel panic".into(),
                console: "[    2.000000] Kernel panic - not syncing: drv: step panicked\n".into(),
            });
        }
        if self.fail_until_restart.is_some_and(|f| command.contains(f)) {
            return Ok(Output {
                status: 1,
                stdout: String::new(),
                stderr: "modprobe: ERROR: could not insert 'drv': Device or resource busy\n".into(),
            });
        }
        if let Some(line) = command.strip_prefix("KCYCLE_ATTEMPT=") {
            // The fake shell knows one line: `test "$KCYCLE_ATTEMPT" -gt 1`.
            let attempt: u32 = line.split(' ').next().unwrap_or("0").parse().unwrap_or(0);
            let status = i32::from(attempt <= 1);
            return Ok(Output {
                status,
                ..Output::default()
            });
        }
        if command.starts_with(crate::snapshot::HELPER_PATH)
            && command.contains(crate::snapshot::klog::TAKE_ARG)
        {
            self.collects.push(command.to_string());
            return Ok(self.take_collect());
        }
        if command.contains("\"$d/unbind\"") {
            return Ok(self.unbind());
        }
        if command.contains("\"$d/bind\"") {
            self.probe();
            return Ok(Output::default());
        }
        if command.contains("sh -c ") && command.contains("/proc/self/fail-nth") {
            return Ok(self.load_failing(command));
        }
        if command.starts_with("D=/sys/kernel/debug;") {
            return Ok(Output::default());
        }
        if command.starts_with("modprobe -r") {
            return Ok(self.unload());
        }
        if command.starts_with("modprobe 'drv'") {
            return Ok(self.load(command));
        }
        if command.starts_with("cat /sys/module/drv/parameters/mock_selftests") {
            return Ok(Output {
                status: 0,
                stdout: "-22\n".into(),
                stderr: String::new(),
            });
        }
        Ok(Output {
            status: 1,
            stdout: String::new(),
            stderr: format!("modprobe: FATAL: Module {command} not found\n"),
        })
    }

    fn upload(&mut self, _: &Path, _: &str) -> Result<(), MachineError> {
        Ok(())
    }

    fn restart(&mut self) -> Result<(), MachineError> {
        let restarts = self.restarts + 1;
        *self = FakeKernel {
            restarts,
            init_calls: self.init_calls,
            leak_on_nth: self.leak_on_nth,
            ..FakeKernel::default()
        };
        Ok(())
    }
}

fn suite(text: &str) -> Suite {
    Suite::parse(Path::new("suites/fake.toml"), text).unwrap()
}

fn run_one(kernel: &mut FakeKernel, suite: &Suite) -> (Vec<TestResult>, Option<String>) {
    let sources = ModuleSources::default();
    let ctx = TestContext {
        suite,
        test: &suite.tests[0],
        sources: &sources,
        guest: 0,
        run_start: Instant::now(),
        restart_on_taint: true,
        symbols: &crate::symbols::NoSymbols,
        attempt: 1,
    };
    let mut events = Vec::new();
    let run = run_test(kernel, &ctx, &mut |e| events.push(e));
    let finished = events
        .iter()
        .filter(|e| matches!(e, Event::TestFinished { .. }))
        .count();
    assert_eq!(finished, run.results.len());
    (run.results, run.restart_reason.map(|r| r.to_string()))
}

#[test]
fn fixed_driver_cycles_clean() {
    let suite = suite(
        "[[test]]\nname = \"cycles\"\ncycles = 3\nsteps = [{ load = \"drv\" }, { unload = \"drv\" }]\n",
    );
    let (results, restart) = run_one(&mut FakeKernel::default(), &suite);
    assert_eq!(
        results[0].status,
        Status::Pass,
        "{:#?}",
        results[0].findings
    );
    assert!(restart.is_none());
    assert_eq!(results[0].out.matches("modprobe -r 'drv'").count(), 3);
}

#[test]
fn each_cycles_sample_counts_slabs_exactly_when_a_trend_is_judged() {
    let exact = |collect: &String| collect.contains("--exact-slabs");
    let steps = "steps = [{ load = \"drv\" }, { reload = \"drv\" }, { unload = \"drv\" }]\n";
    let cycles = crate::run::trend::MIN_CYCLES;
    let long = suite(&format!(
        "[[test]]\nname = \"long\"\ncycles = {cycles}\n{steps}"
    ));
    let mut kernel = FakeKernel::default();
    run_one(&mut kernel, &long);
    // The baseline, then three steps a cycle: only each cycle's last is its sample.
    assert_eq!(
        kernel.collects.len(),
        1 + 3 * cycles,
        "{:#?}",
        kernel.collects
    );
    assert!(!exact(&kernel.collects[0]));
    for (i, collect) in kernel.collects[1..].iter().enumerate() {
        assert_eq!(exact(collect), i % 3 == 2, "collect {i}: {collect}");
    }

    let short = suite(&format!(
        "[[test]]\nname = \"short\"\ncycles = {}\n{steps}",
        cycles - 1
    ));
    let mut kernel = FakeKernel::default();
    run_one(&mut kernel, &short);
    assert!(!kernel.collects.is_empty());
    assert!(!kernel.collects.iter().any(exact), "no trend, no shrinking");
}

#[test]
fn leak_is_charged_to_the_unload_that_left_it() {
    let suite = suite(
        r#"
[[test]]
name = "legacy"
steps = [
    { load = "drv", params = { legacy_exit = true } },
    { unload = "drv" },
    { load = "drv", expect_failure = true },
]
"#,
    );
    let (results, restart) = run_one(&mut FakeKernel::default(), &suite);
    let result = &results[0];
    assert_eq!(result.status, Status::DmesgFail, "{:#?}", result.findings);
    let leak = result
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::LEAKED_SLAB_CACHE)
        .expect("leaked cache found");
    assert_eq!(
        leak.title,
        "slab caches left after unload of drv: drv_cache"
    );
    assert_eq!(
        leak.attribution.as_deref(),
        Some("left behind by unload in cycle 1")
    );
    let debugfs = result
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Leaked(crate::snapshot::Namespace::Debugfs))
        .expect("leaked debugfs entry found");
    assert!(debugfs.title.ends_with(": drv"), "{}", debugfs.title);
    let dup = result
        .findings
        .iter()
        .find(|f| f.kind == "sysfs-duplicate")
        .expect("duplicate warning classified");
    assert!(
        dup.attribution
            .as_deref()
            .unwrap()
            .starts_with("left behind by unload in cycle 1 (drv_cache); seen at load drv"),
        "{:?}",
        dup.attribution
    );
    assert_eq!(
        restart.as_deref(),
        Some("the previous test left drv_cache behind")
    );
}

#[test]
fn fatal_taint_asks_for_a_restart_unless_told_otherwise() {
    let suite =
        suite("[[test]]\nname = \"t\"\nsteps = [{ load = \"drv\" }, { unload = \"drv\" }]\n");
    // TAINT_WARN appears during the test.
    let mut tainted = FakeKernel {
        warn_on_unload: true,
        ..FakeKernel::default()
    };
    let (results, restart) = run_one(&mut tainted, &suite);
    assert_eq!(
        restart.as_deref(),
        Some("the kernel is tainted: TAINT_WARN (W)")
    );
    assert!(results[0]
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::TAINT));

    let sources = ModuleSources::default();
    let ctx = TestContext {
        suite: &suite,
        test: &suite.tests[0],
        sources: &sources,
        guest: 0,
        run_start: Instant::now(),
        restart_on_taint: false,
        symbols: &crate::symbols::NoSymbols,
        attempt: 1,
    };
    let mut tainted = FakeKernel {
        warn_on_unload: true,
        ..FakeKernel::default()
    };
    let run = run_test(&mut tainted, &ctx, &mut |_| {});
    assert_eq!(run.restart_reason, None);
}

#[test]
fn a_failed_load_must_unwind_everything() {
    let clean = suite(
        "[[test]]\nname = \"t\"\nsteps = [{ load = \"drv\", params = { fail_at = \"globals\" }, expect_failure = true }]\n",
    );
    let (results, restart) = run_one(&mut FakeKernel::default(), &clean);
    assert_eq!(
        results[0].status,
        Status::Pass,
        "{:#?}",
        results[0].findings
    );
    assert!(restart.is_none());

    let broken = suite(
        "[[test]]\nname = \"t\"\nsteps = [{ load = \"drv\", params = { fail_at = \"broken\" }, expect_failure = true }]\n",
    );
    let (results, _) = run_one(&mut FakeKernel::default(), &broken);
    let leak = &results[0].findings[0];
    assert_eq!(
        leak.title,
        "slab caches left after failed load of drv: drv_cache"
    );
    assert_eq!(
        leak.attribution.as_deref(),
        Some("left behind by failed load in cycle 1")
    );

    // Without expect_failure the failed load itself is the failure.
    let unexpected = suite(
        "[[test]]\nname = \"t\"\nsteps = [{ load = \"drv\", params = { fail_at = \"x\" } }]\n",
    );
    let (results, _) = run_one(&mut FakeKernel::default(), &unexpected);
    assert_eq!(results[0].status, Status::Fail);
    assert!(results[0].findings[0]
        .title
        .starts_with("load drv failed with exit 1: modprobe: ERROR"));
}

fn failing_subtests(results: &[TestResult]) -> Vec<(&str, Status)> {
    results[1..]
        .iter()
        .filter(|r| r.status != Status::Pass)
        .map(|r| (r.name.as_str(), r.status))
        .collect()
}

#[test]
fn fail_nth_sweep_names_the_one_leaking_error_path() {
    let sweep = suite("[[test]]\nname = \"sweep\"\nsteps = [{ sweep = \"drv\" }]\n");
    let mut kernel = FakeKernel {
        init_calls: 5,
        leak_on_nth: Some(3),
        ..FakeKernel::default()
    };
    let (results, restart) = run_one(&mut kernel, &sweep);
    let names: Vec<&str> = results[1..].iter().map(|r| r.name.as_str()).collect();
    // Five injected points, then a quiet load ends the sweep.
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(
        failing_subtests(&results),
        [("kcycle@fake@sweep@sweep@fail-nth-3", Status::Fail)]
    );
    let point = results
        .iter()
        .find(|r| r.name.ends_with("fail-nth-3"))
        .unwrap();
    let leak = &point.findings[0];
    assert_eq!(leak.kind, FindingKind::LEAKED_SLAB_CACHE);
    assert_eq!(
        leak.attribution.as_deref(),
        Some("left behind by failed load in cycle 1 (sweep point fail-nth-3, fault injected in drv_step3 (failslab))")
    );
    assert!(
        point
            .out
            .contains("the load failed: fault injected in drv_step3"),
        "{}",
        point.out
    );
    // The test fails with the point's finding; the leaking point restarted the guest.
    assert_eq!(results[0].status, Status::Fail);
    assert_eq!(kernel.restarts, 1);
    assert_eq!(restart, None);
}

#[test]
fn a_clean_driver_sweeps_clean() {
    let sweep = suite("[[test]]\nname = \"sweep\"\nsteps = [{ sweep = \"drv\", limit = 50 }]\n");
    let mut kernel = FakeKernel {
        init_calls: 4,
        silent_on_nth: Some(2),
        ..FakeKernel::default()
    };
    let (results, restart) = run_one(&mut kernel, &sweep);
    assert_eq!(
        results[0].status,
        Status::Pass,
        "{:#?}",
        results[0].findings
    );
    // A silent fault (no stack, the load survives) does not end the sweep:
    // four injected points, then the quiet load.
    assert_eq!(results.len(), 1 + 4 + 1);
    let silent = results
        .iter()
        .find(|r| r.name.ends_with("fail-nth-2"))
        .unwrap();
    assert!(
        silent
            .out
            .contains("survived a fault injected in a __GFP_NOWARN call"),
        "{}",
        silent.out
    );
    assert_eq!(failing_subtests(&results), []);
    assert_eq!((kernel.restarts, restart), (0, None));
}

#[test]
fn param_sweep_control_flags_only_its_point() {
    let control = r#"
[[test]]
name = "control"
steps = [{ sweep = "drv", method = "param", points = ["globals", "broken", "late"] }]
expect = [{ kind = "leaked-slab-cache", attribution = "*sweep point fail_at-broken*" }]
"#;
    let (results, _) = run_one(&mut FakeKernel::default(), &suite(control));
    assert_eq!(
        results[0].status,
        Status::Pass,
        "{:#?}",
        results[0].findings
    );
    // Flagged as the control expects: every point passes, the flagged one
    // keeps its finding as expected.
    assert_eq!(failing_subtests(&results), []);
    let flagged: Vec<&str> = results[1..]
        .iter()
        .filter(|r| !r.findings.is_empty())
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(flagged, ["kcycle@fake@control@sweep@fail_at-broken"]);
    assert!(results[1..]
        .iter()
        .flat_map(|r| &r.findings)
        .all(|f| f.known_issue.as_deref() == Some("expected: this test is a control")));
    // The run does not fail on it.
    assert!(results.iter().all(|r| !r.fails_run()));

    let wrong = control.replace("fail_at-broken", "fail_at-late");
    let (results, _) = run_one(&mut FakeKernel::default(), &suite(&wrong));
    assert_eq!(results[0].status, Status::Fail);
}

#[test]
fn controls_pass_when_flagged_and_fail_when_not() {
    let control = r#"
[[test]]
name = "control"
steps = [
    { load = "drv", params = { legacy_exit = true } },
    { unload = "drv" },
    { load = "drv", expect_failure = true },
]
expect = [
    { kind = "leaked-slab-cache", title = "*drv_cache*" },
    { kind = "sysfs-duplicate", title = "*/kernel/slab/drv_cache*" },
]
"#;
    let (results, _) = run_one(&mut FakeKernel::default(), &suite(control));
    assert_eq!(
        results[0].status,
        Status::Pass,
        "{:#?}",
        results[0].findings
    );
    assert!(!results[0].fails_run());

    // The same control against a driver that does not leak must fail.
    let fixed = control.replace("legacy_exit = true", "legacy_exit = false");
    let (results, _) = run_one(&mut FakeKernel::default(), &suite(&fixed));
    assert_eq!(results[0].status, Status::Fail);
    assert!(results[0]
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::CONTROL_NOT_FLAGGED));
}

#[test]
fn selftests_give_one_result_per_subtest() {
    let suite = suite(
        "[[test]]\nname = \"mock\"\nsteps = [{ selftest = \"drv\", kind = \"i915-mock\" }, { unload = \"drv\" }]\n",
    );
    let (results, _) = run_one(&mut FakeKernel::default(), &suite);
    let names: Vec<(&str, Status)> = results
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    assert_eq!(
        names,
        [
            ("kcycle@fake@mock", Status::Pass),
            ("kcycle@fake@mock@drv_mock_selftests@alloc", Status::Pass),
            ("kcycle@fake@mock@drv_mock_selftests@free", Status::Fail),
            ("kcycle@fake@mock@sanity", Status::Pass),
        ]
    );
    // TAINT_USER from the dangerous selftest parameter is expected, not a finding.
    assert!(results[0]
        .findings
        .iter()
        .all(|f| f.kind != FindingKind::TAINT));
}

#[test]
fn hang_and_crash_become_timeout_and_crash() {
    let suite = suite(
        "[[test]]\nname = \"t\"\nsteps = [{ load = \"drv\", timeout = 3 }, { unload = \"drv\" }]\n",
    );
    let mut hanging = FakeKernel {
        hang_on: Some("modprobe 'drv'"),
        ..FakeKernel::default()
    };
    let (results, restart) = run_one(&mut hanging, &suite);
    assert_eq!(results[0].status, Status::Timeout);
    assert!(results[0].err.contains("within 3s"), "{}", results[0].err);
    assert!(restart.unwrap().contains("timeout"));

    let mut crashing = FakeKernel {
        crash_on: Some("modprobe -r"),
        ..FakeKernel::default()
    };
    let (results, restart) = run_one(&mut crashing, &suite);
    assert_eq!(results[0].status, Status::Crash);
    // The fault itself, then what the console says about it.
    assert_eq!(results[0].findings[0].kind, "crash");
    let panic = &results[0].findings[1];
    assert_eq!(panic.kind, "panic", "{panic:#?}");
    assert!(restart.is_some());
}

#[derive(Default)]
struct FakeFactory {
    boots: Mutex<usize>,
    fail: bool,
    /// Restarts of every machine this factory booted.
    restarts: Arc<AtomicUsize>,
    /// Every restart fails.
    fail_restart: bool,
    /// Cancel the run when a command containing this runs.
    cancel_on: Option<(&'static str, Cancel)>,
    /// Every booted kernel fails commands containing this until it restarts.
    fail_until_restart: Option<&'static str>,
    /// Machines save their state when booted and can restore it.
    saves: bool,
    /// Restores of every machine this factory booted.
    restores: Arc<AtomicUsize>,
    /// Every restore fails.
    fail_restore: bool,
}

impl MachineFactory for FakeFactory {
    fn boot(&self, _: &Suite, _: usize) -> Result<Box<dyn Machine>, MachineError> {
        *self.boots.lock().unwrap() += 1;
        if self.fail {
            return Err(MachineError::Boot("kernel panicked at boot".into()));
        }
        Ok(Box::new(Counted {
            kernel: FakeKernel {
                fail_until_restart: self.fail_until_restart,
                ..FakeKernel::default()
            },
            restarts: Arc::clone(&self.restarts),
            fail_restart: self.fail_restart,
            cancel_on: self.cancel_on.clone(),
            saved: if self.saves { Saved::Ready } else { Saved::Off },
            restores: Arc::clone(&self.restores),
            fail_restore: self.fail_restore,
        }))
    }
}

/// A fake kernel whose restarts are counted (and can fail) and whose
/// commands can cancel the run, as Ctrl-C would in the middle of a test.
struct Counted {
    kernel: FakeKernel,
    restarts: Arc<AtomicUsize>,
    fail_restart: bool,
    cancel_on: Option<(&'static str, Cancel)>,
    saved: Saved,
    restores: Arc<AtomicUsize>,
    fail_restore: bool,
}

impl Machine for Counted {
    fn exec(&mut self, command: &str, timeout: Duration) -> Result<Output, MachineError> {
        if let Some((needle, cancel)) = &self.cancel_on {
            if command.contains(needle) {
                cancel.cancel("SIGINT (Ctrl-C)");
            }
        }
        self.kernel.exec(command, timeout)
    }

    fn upload(&mut self, host: &Path, guest: &str) -> Result<(), MachineError> {
        self.kernel.upload(host, guest)
    }

    fn restart(&mut self) -> Result<(), MachineError> {
        self.restarts.fetch_add(1, Ordering::SeqCst);
        if self.fail_restart {
            return Err(MachineError::Boot("the guest did not come back".into()));
        }
        self.kernel.restart()
    }

    fn saved(&self) -> Saved {
        self.saved.clone()
    }

    /// The state saved at boot is a fresh kernel: what a restart gives.
    fn restore(&mut self) -> Result<(), MachineError> {
        self.restores.fetch_add(1, Ordering::SeqCst);
        if self.fail_restore {
            self.saved = Saved::Unavailable("failed to restore it before".into());
            return Err(MachineError::Restore("QEMU refused the state".into()));
        }
        self.kernel = FakeKernel::default();
        Ok(())
    }
}

fn plan_results(suite: &Suite, factory: &FakeFactory, jobs: usize) -> Vec<TestResult> {
    plan_events(suite, factory, jobs, &Cancel::new())
        .into_iter()
        .filter_map(|event| match event {
            Event::TestFinished { result, .. } => Some(result),
            _ => None,
        })
        .collect()
}

fn plan_events(suite: &Suite, factory: &FakeFactory, jobs: usize, cancel: &Cancel) -> Vec<Event> {
    let options = RunOptions {
        jobs,
        restart_on_taint: true,
        retries: 0,
    };
    plan_events_with(suite, factory, options, cancel)
}

fn plan_events_with(
    suite: &Suite,
    factory: &FakeFactory,
    options: RunOptions,
    cancel: &Cancel,
) -> Vec<Event> {
    let plan: Vec<_> = suite.tests.iter().map(|t| (suite, t)).collect();
    let events = Mutex::new(Vec::new());
    let emit = |event: Event| events.lock().unwrap().push(event);
    run_plan(
        &plan,
        options,
        factory,
        &ModuleSources::default(),
        cancel,
        &emit,
    );
    events.into_inner().unwrap()
}

#[test]
fn scheduler_restarts_after_leftovers_and_runs_everything() {
    let suite = suite(
        r#"
[[test]]
name = "leaky"
steps = [{ load = "drv", params = { legacy_exit = true } }, { unload = "drv" }]
[[test]]
name = "after"
steps = [{ load = "drv" }, { unload = "drv" }]
[[test]]
name = "third"
steps = [{ load = "drv" }, { unload = "drv" }]
"#,
    );
    let factory = FakeFactory::default();
    let results = plan_results(&suite, &factory, 1);
    let statuses: Vec<_> = results
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    // The leak fails its own test; the restart keeps it from poisoning the next.
    assert_eq!(
        statuses,
        [
            ("kcycle@fake@leaky", Status::DmesgFail),
            ("kcycle@fake@after", Status::Pass),
            ("kcycle@fake@third", Status::Pass),
        ]
    );
    assert_eq!(*factory.boots.lock().unwrap(), 1);
    assert_eq!(
        factory.restarts.load(Ordering::SeqCst),
        1,
        "one restart, after leaky"
    );
}

const LEAKY: &str = r#"
[[test]]
name = "leaky"
steps = [{ load = "drv", params = { legacy_exit = true } }, { unload = "drv" }]
"#;
const CLEAN: &str = r#"
[[test]]
name = "clean"
steps = [{ load = "drv" }, { unload = "drv" }]
"#;

#[test]
fn a_dirty_guest_after_the_last_test_is_not_restarted() {
    let suite = suite(&format!("{CLEAN}{LEAKY}"));
    let factory = FakeFactory::default();
    let events = plan_events(&suite, &factory, 1, &Cancel::new());
    assert_eq!(factory.restarts.load(Ordering::SeqCst), 0);
    let boots = events
        .iter()
        .filter(|e| matches!(e, Event::GuestBooting { .. }))
        .count();
    assert_eq!((boots, *factory.boots.lock().unwrap()), (1, 1));
}

#[test]
fn a_cancelled_run_restarts_nothing_and_leaves_the_rest_notrun() {
    let suite = suite(&format!("{LEAKY}{CLEAN}"));
    let cancel = Cancel::new();
    let factory = FakeFactory {
        // Ctrl-C while leaky unloads: it still finishes, nothing else starts.
        cancel_on: Some(("modprobe -r", cancel.clone())),
        ..FakeFactory::default()
    };
    let events = plan_events(&suite, &factory, 1, &cancel);
    assert_eq!(factory.restarts.load(Ordering::SeqCst), 0, "no wasted boot");
    let statuses: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::TestFinished { result, .. } => Some((result.name.as_str(), result.status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("kcycle@fake@leaky", Status::DmesgFail),
            ("kcycle@fake@clean", Status::Notrun),
        ]
    );
    assert!(matches!(events.last(), Some(Event::RunFinished)));
}

#[test]
fn a_failed_restart_is_reported_and_a_fresh_guest_boots() {
    let suite = suite(&format!("{LEAKY}{CLEAN}"));
    let factory = FakeFactory {
        fail_restart: true,
        ..FakeFactory::default()
    };
    let events = plan_events(&suite, &factory, 1, &Cancel::new());
    assert!(
        events.iter().any(|e| matches!(e, Event::Notice { message }
            if message.contains("failed to restart: failed to boot the guest: the guest did not come back"))),
        "{events:#?}"
    );
    let reasons: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::GuestBooting { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons[0], "for suite fake");
    assert!(reasons[1].contains("left"), "{reasons:?}");
    assert_eq!(reasons[2], "for suite fake");
    assert_eq!(*factory.boots.lock().unwrap(), 2);
    let clean = events.iter().find_map(|e| match e {
        Event::TestFinished { result, .. } if result.name == "kcycle@fake@clean" => {
            Some(result.status)
        }
        _ => None,
    });
    assert_eq!(clean, Some(Status::Pass));
}

#[test]
fn a_guest_that_never_boots_aborts_with_notrun_results() {
    let suite = suite(
        "[[test]]\nname = \"a\"\nsteps = [{ load = \"drv\" }]\n[[test]]\nname = \"b\"\nsteps = [{ load = \"drv\" }]\n",
    );
    let factory = FakeFactory {
        fail: true,
        ..FakeFactory::default()
    };
    let results = plan_results(&suite, &factory, 2);
    let mut statuses: Vec<_> = results
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("kcycle@fake@a", Status::Notrun),
            ("kcycle@fake@b", Status::Notrun),
            (ABORTED_TEST, Status::Abort),
        ]
    );
    assert!(results
        .iter()
        .any(|r| r.err.contains("kernel panicked at boot")));
    assert_eq!(
        crate::outcome::exit_status(&results),
        crate::exit::ExitStatus::Infrastructure
    );
}

/// A reporter that cannot write anything.
struct Broken;

impl crate::report::sink::Reporter for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }

    fn report(
        &mut self,
        _: &super::event::Stamped,
    ) -> Result<(), crate::report::sink::ReporterError> {
        Err(crate::report::sink::ReporterError::new(
            "broken",
            "disk full",
        ))
    }
}

#[test]
fn a_session_whose_reporter_fails_ends_with_exit_status_3() {
    use crate::exit::ExitStatus;
    let suite = suite(CLEAN);
    let plan: Vec<_> = suite.tests.iter().map(|t| (&suite, t)).collect();
    let factory = FakeFactory::default();
    let cancel = Cancel::new();
    let session = |reporters: Vec<Box<dyn crate::report::sink::Reporter>>| {
        super::Session {
            plan: &plan,
            options: RunOptions {
                jobs: 1,
                restart_on_taint: true,
                retries: 0,
            },
            factory: &factory,
            sources: &ModuleSources::default(),
            cancel: &cancel,
            info: Default::default(),
        }
        .run(reporters)
    };
    let fine = session(Vec::new());
    assert_eq!(fine.results.len(), 1);
    assert_eq!(fine.exit_status(), ExitStatus::Passed);
    let broken = session(vec![Box::new(Broken)]);
    assert_eq!(broken.results.len(), 1, "the run itself goes on");
    assert_eq!(broken.reporter_failures.len(), 1);
    assert_eq!(broken.exit_status(), ExitStatus::Infrastructure);
}

#[test]
fn a_remove_that_leaves_per_device_state_is_charged_to_its_unbind() {
    let text = |params: &str| {
        format!(
            "[[test]]\nname = \"rebind\"\ncycles = 2\nsteps = [\n\
             {{ load = \"drv\", params = {{ standin = true{params} }} }},\n\
             {{ unbind = \"drv\" }},\n{{ bind = \"drv\" }},\n{{ unload = \"drv\" }},\n]\n"
        )
    };
    let (results, _) = run_one(&mut FakeKernel::default(), &suite(&text("")));
    assert_eq!(
        results[0].status,
        Status::Pass,
        "{:#?}",
        results[0].findings
    );
    assert_eq!(
        results[0]
            .out
            .matches("kcycle: unbound 0000:01:00.0")
            .count(),
        2
    );

    let (results, _) = run_one(
        &mut FakeKernel::default(),
        &suite(&text(", remove_leak = true")),
    );
    let findings = &results[0].findings;
    let leak = findings
        .iter()
        .find(|f| f.kind == FindingKind::Leaked(crate::snapshot::Namespace::Debugfs))
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(
        leak.title,
        "debugfs entries left after unbind of drv: drv/0000:01:00.0"
    );
    assert_eq!(
        leak.attribution.as_deref(),
        Some("left behind by unbind in cycle 1")
    );
    // The rebind's probe trips over it, and that is charged to the same unbind.
    let dup = findings
        .iter()
        .find(|f| f.kind == "debugfs-duplicate")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(
        dup.attribution
            .as_deref()
            .unwrap()
            .starts_with("left behind by unbind in cycle 1 (drv/0000:01:00.0); seen at cycle 1/2: bind drv's devices"),
        "{:?}",
        dup.attribution
    );
}

/// Guest lifecycle events of a run, as the terminal would name them.
fn lifecycle(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::GuestBooting { reason, .. } => Some(format!("boot: {reason}")),
            Event::GuestRestoring { reason, .. } => Some(format!("restore: {reason}")),
            Event::Notice { message } => Some(format!("notice: {message}")),
            _ => None,
        })
        .collect()
}

#[test]
fn a_dirty_guest_is_restored_from_its_saved_state_not_rebooted() {
    let again = |test: &str| test.replace("name = \"", "name = \"again-");
    let suite = suite(&format!("{LEAKY}{CLEAN}{}{}", again(LEAKY), again(CLEAN)));
    let factory = FakeFactory {
        saves: true,
        ..FakeFactory::default()
    };
    let events = plan_events(&suite, &factory, 1, &Cancel::new());
    assert_eq!(
        lifecycle(&events),
        [
            "boot: for suite fake",
            "restore: the previous test left drv_cache behind",
            "restore: the previous test left drv_cache behind",
        ]
    );
    assert_eq!(factory.restores.load(Ordering::SeqCst), 2);
    assert_eq!(factory.restarts.load(Ordering::SeqCst), 0);
    // The restored guest has none of leaky's leftovers: clean passes both times.
    let clean: Vec<Status> = events
        .iter()
        .filter_map(|e| match e {
            Event::TestFinished { result, .. } if result.name.ends_with("clean") => {
                Some(result.status)
            }
            _ => None,
        })
        .collect();
    assert_eq!(clean, [Status::Pass, Status::Pass]);
}

#[test]
fn a_failed_restore_says_why_and_boots_and_the_next_one_reboots() {
    let again = LEAKY.replace("name = \"", "name = \"again-");
    let suite = suite(&format!("{LEAKY}{again}{CLEAN}"));
    let factory = FakeFactory {
        saves: true,
        fail_restore: true,
        ..FakeFactory::default()
    };
    let events = plan_events(&suite, &factory, 1, &Cancel::new());
    assert_eq!(
        lifecycle(&events),
        [
            "boot: for suite fake",
            "restore: the previous test left drv_cache behind",
            "notice: guest 0: failed to restore the guest's saved state: QEMU refused the state; booting it afresh",
            "boot: the previous test left drv_cache behind",
            "notice: guest 0 has no saved state to restore (failed to restore it before); booting it afresh",
            "boot: the previous test left drv_cache behind",
        ]
    );
    assert_eq!(factory.restores.load(Ordering::SeqCst), 1);
    assert_eq!(factory.restarts.load(Ordering::SeqCst), 2);
}

fn finished(events: &[Event]) -> Vec<&TestResult> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TestFinished { result, .. } => Some(result),
            _ => None,
        })
        .collect()
}

fn boot_reasons(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::GuestBooting { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect()
}

const RETRY_ONCE: RunOptions = RunOptions {
    jobs: 1,
    restart_on_taint: true,
    retries: 1,
};

#[test]
fn a_test_that_passes_in_a_fresh_guest_is_flaky_and_does_not_fail_the_run() {
    let suite = suite(CLEAN);
    let factory = FakeFactory {
        fail_until_restart: Some("modprobe 'drv'"),
        ..FakeFactory::default()
    };
    let events = plan_events_with(&suite, &factory, RETRY_ONCE, &Cancel::new());
    let results = finished(&events);
    assert_eq!(results.len(), 1, "one result per test, not per attempt");
    let clean = results[0];
    assert_eq!(clean.status, Status::Pass);
    assert!(!clean.fails_run());
    assert_eq!(clean.flaky_attempts.len(), 1, "{clean:#?}");
    assert!(
        clean.flaky_attempts[0].starts_with("attempt 1/2: fail: [step-failed] load drv failed"),
        "{:?}",
        clean.flaky_attempts
    );
    assert!(clean.out.contains("---- attempt 1/2 (fail) ----"));
    assert_eq!(
        boot_reasons(&events),
        [
            "for suite fake",
            "kcycle@fake@clean failed: attempt 2/2 in a fresh guest"
        ]
    );
    assert_eq!(factory.restarts.load(Ordering::SeqCst), 1);
    assert_eq!(
        crate::outcome::exit_status(std::slice::from_ref(clean)),
        crate::exit::ExitStatus::Passed
    );
}

#[test]
fn a_test_that_fails_in_every_guest_fails_and_no_retry_means_one_attempt() {
    let broken = suite(
        "[[test]]\nname = \"broken\"\nsteps = [{ load = \"drv\", params = { fail_at = \"x\" } }]\n",
    );
    let factory = FakeFactory::default();
    let events = plan_events_with(&broken, &factory, RETRY_ONCE, &Cancel::new());
    let results = finished(&events);
    assert_eq!(results.len(), 1);
    assert!(results[0].fails_run());
    assert!(results[0].flaky_attempts.is_empty());
    assert!(
        results[0]
            .err
            .contains("failed again on rerun: attempt 2/2: fail:"),
        "{}",
        results[0].err
    );
    assert_eq!(factory.restarts.load(Ordering::SeqCst), 1);

    // --no-retry: the flake fails the run, and no guest restarts for it.
    let flaky = FakeFactory {
        fail_until_restart: Some("modprobe 'drv'"),
        ..FakeFactory::default()
    };
    let clean = suite(CLEAN);
    let once = RunOptions {
        retries: 0,
        ..RETRY_ONCE
    };
    let events = plan_events_with(&clean, &flaky, once, &Cancel::new());
    assert!(finished(&events)[0].fails_run());
    assert_eq!(flaky.restarts.load(Ordering::SeqCst), 0);
    assert_eq!(boot_reasons(&events), ["for suite fake"]);
}

#[test]
fn run_steps_see_their_attempt_and_a_first_try_failure_is_flaky() {
    let suite = suite(
        r#"
[[test]]
name = "second-try"
steps = [{ run = 'test "$KCYCLE_ATTEMPT" -gt 1' }, { load = "drv" }, { unload = "drv" }]
"#,
    );
    let events = plan_events_with(&suite, &FakeFactory::default(), RETRY_ONCE, &Cancel::new());
    let result = finished(&events)[0];
    assert_eq!(result.status, Status::Pass, "{result:#?}");
    assert!(
        result
            .out
            .contains("$ KCYCLE_ATTEMPT=2 sh -c 'test \"$KCYCLE_ATTEMPT\" -gt 1'"),
        "{}",
        result.out
    );
    assert!(
        result.flaky_attempts[0].starts_with("attempt 1/2: fail: [step-failed] run `test"),
        "{:?}",
        result.flaky_attempts
    );
}
