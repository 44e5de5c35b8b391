//! The leak ledger for real: kcycle_leaks (a C driver registering in every
//! namespace the ledger reads) cycled in the built kernel under QEMU. The
//! clean driver must leave nothing over 20 cycles; every control must be
//! flagged for its reason and charged to the right cycle; and a control
//! pointed at the clean driver must fail (so the controls can fail).

mod support;

use support::result;

use std::path::{Path, PathBuf};

use kcycle::outcome::TestResult;
use kcycle::status::Status;

fn suites_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites")
}

fn run(tmp: &Path, suite: &Path) -> Option<(i32, String, Vec<TestResult>)> {
    let (code, stderr, results, _) = support::run_suites(tmp, &[suite.to_str()?])?;
    Some((code, stderr, results))
}

fn finding<'a>(result: &'a TestResult, kind: &str) -> &'a kcycle::outcome::Finding {
    result
        .findings
        .iter()
        .find(|f| f.kind == kind)
        .unwrap_or_else(|| {
            panic!(
                "{}: no {kind} finding in {:#?}",
                result.name, result.findings
            )
        })
}

#[test]
fn every_ledger_control_is_flagged_and_the_clean_driver_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((code, stderr, results)) = run(tmp.path(), &suites_dir().join("leaks.toml")) else {
        return;
    };
    support::assert_all_pass(&results, code, &stderr);

    // 20 cycles of every namespace, torn down: no leftover, no trend, nothing.
    let clean = result(&results, "kcycle@leaks@clean-cycles");
    assert!(clean.findings.is_empty(), "{:#?}", clean.findings);
    assert_eq!(clean.cycles.len(), 20, "a counter sample per cycle");
    assert!(result(&results, "kcycle@leaks@clean-error-path")
        .findings
        .is_empty());

    // The reload that trips over the class is charged to cycle 1's unload, by name.
    let trip = result(&results, "kcycle@leaks@control-reload-trips-over-class");
    let failed = finding(trip, "step-failed");
    assert!(
        failed
            .attribution
            .as_deref()
            .unwrap()
            .contains("/sys/class/kcycle_leaks"),
        "{:?}",
        failed.attribution
    );

    // The armed timer lives in the freed module: named from the .ko (the
    // timer_list or its callback, whichever faults first), charged to the unload.
    let timer = result(&results, "kcycle@leaks@control-timer-left-armed");
    let uaf = finding(timer, "use-after-unload");
    assert!(
        uaf.title.contains(": kcycle_leaks:timer+0x")
            || uaf.title.contains(": kcycle_leaks:timer_fn+0x"),
        "{}",
        uaf.title
    );
    assert!(uaf.report.contains("unloaded in cycle 1"), "{}", uaf.report);

    let growth = result(&results, "kcycle@leaks@control-steady-growth");
    // Slab and SUnreclaim (kB) may grow with it; the leaked cache is counted in objects.
    let trend = growth
        .findings
        .iter()
        .find(|f| f.title == "kmalloc-512 grows every cycle")
        .unwrap_or_else(|| panic!("no kmalloc-512 trend in {:#?}", growth.findings));
    assert!(
        trend.report.contains("objects per cycle"),
        "{}",
        trend.report
    );
}

#[test]
fn kmemleak_charges_an_unreferenced_object_to_its_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((code, stderr, results)) = run(tmp.path(), &suites_dir().join("kmemleak.toml")) else {
        return;
    };
    assert_eq!(code, 0, "{stderr}");
    assert!(result(&results, "kcycle@kmemleak@clean")
        .findings
        .is_empty());
    let control = result(&results, "kcycle@kmemleak@control-kmalloc-leak");
    let leak = finding(control, "kmemleak");
    assert!(leak.report.contains("size 512"), "{}", leak.report);
}

#[test]
fn a_ledger_control_against_the_clean_driver_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("control.toml");
    std::fs::write(
        &suite,
        r#"
name = "self-check"
[[test]]
name = "clean-driver-is-not-a-leak"
steps = [{ load = "kcycle_leaks" }, { unload = "kcycle_leaks" }]
expect = [
    { kind = "leaked-sysctl", title = "*kcycle*" },
    { kind = "leaked-kthread", title = "*kcycle_leaks*" },
]
"#,
    )
    .unwrap();
    let Some((code, stderr, results)) = run(tmp.path(), &suite) else {
        return;
    };
    assert_eq!(code, 1, "{stderr}");
    let control = result(&results, "kcycle@self-check@clean-driver-is-not-a-leak");
    assert_eq!(control.status, Status::Fail);
    let missing: Vec<&str> = control
        .findings
        .iter()
        .filter(|f| f.kind == "control-not-flagged")
        .map(|f| f.title.as_str())
        .collect();
    assert_eq!(missing.len(), 2, "{missing:?}");
}
