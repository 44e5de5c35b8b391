//! `kcycle run` for real: the built kernel in QEMU (TCG), the shipped suites,
//! reports read back with the parsers dashboards use. Includes kcycle testing
//! itself: a control against the fixed driver must fail the run.

mod support;

use support::result;

use std::path::{Path, PathBuf};

use kcycle::outcome::TestResult;
use kcycle::status::Status;

fn suites_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites")
}

fn run(tmp: &Path, args: &[&str]) -> Option<(i32, String, Vec<TestResult>, PathBuf)> {
    support::run_suites(tmp, args)
}

#[test]
fn smoke_suite_passes_with_console_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let smoke = suites_dir().join("smoke.toml");
    let Some((code, stderr, results, dir)) = run(tmp.path(), &[smoke.to_str().unwrap()]) else {
        return;
    };
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("[1/2] kcycle@smoke@rust-minimal pass"),
        "{stderr}"
    );
    let smoke = result(&results, "kcycle@smoke@rust-minimal");
    assert!(
        smoke.out.contains("$ modprobe 'rust_minimal'"),
        "{}",
        smoke.out
    );
    assert!(
        smoke.dmesg.contains("Rust minimal sample"),
        "{}",
        smoke.dmesg
    );
    assert!(dir.join("console-smoke-guest0.log").is_file());

    // KUnit: one result per KTAP test case of lib/list-test.
    let cases: Vec<&TestResult> = results
        .iter()
        .filter(|r| {
            r.name
                .starts_with("kcycle@smoke@kunit-list@list-kunit-test@")
        })
        .collect();
    assert!(cases.len() >= 30, "only {} KUnit cases", cases.len());
    assert!(cases.iter().all(|r| r.status == Status::Pass));
    assert!(results
        .iter()
        .any(|r| r.name == "kcycle@smoke@kunit-list@list-kunit-test@list_test_list_init"));
}

#[test]
fn a_module_file_is_copied_in_and_cycled_with_insmod() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(kernel) = support::kernel() else {
        return;
    };
    // An out-of-tree module built against the guest kernel: rust_i915_table's
    // own .ko stands in for a user's driver.
    let built = kernel.modules_dir().join("extra/rust_i915_table.ko");
    let module = tmp.path().join("rust_i915_table.ko");
    std::fs::copy(&built, &module).unwrap();
    let suite = tmp.path().join("mine.toml");
    std::fs::write(
        &suite,
        "name = \"mine\"\n[[test]]\nname = \"cycle\"\ncycles = 2\nsteps = [{ load = \"rust_i915_table\" }, { unload = \"rust_i915_table\" }]\n",
    )
    .unwrap();
    let Some((code, stderr, results, _)) = run(
        tmp.path(),
        &[
            suite.to_str().unwrap(),
            "--module",
            module.to_str().unwrap(),
        ],
    ) else {
        return;
    };
    assert_eq!(code, 0, "{stderr}");
    let cycle = result(&results, "kcycle@mine@cycle");
    assert!(
        cycle
            .out
            .contains("$ insmod '/tmp/kcycle-modules/rust_i915_table.ko'"),
        "{}",
        cycle.out
    );
    assert!(
        cycle.out.contains("$ rmmod 'rust_i915_table'"),
        "{}",
        cycle.out
    );
}

#[test]
fn rust_table_passes_with_every_control_flagged_for_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = suites_dir().join("rust-table.toml");
    let Some((code, stderr, results, _)) = run(tmp.path(), &[suite.to_str().unwrap()]) else {
        return;
    };
    assert_eq!(code, 0, "{stderr}");
    for r in results.iter().filter(|r| r.name.matches('@').count() == 2) {
        assert_eq!(r.status, Status::Pass, "{}: {:#?}", r.name, r.findings);
    }
    let clean = result(&results, "kcycle@rust-table@load-unload");
    assert!(clean.findings.is_empty(), "{:#?}", clean.findings);

    let legacy = result(&results, "kcycle@rust-table@control-legacy-exit");
    let leak = legacy
        .findings
        .iter()
        .find(|f| f.kind == "leaked-slab-cache")
        .expect("leaked caches named");
    // The title names the first few; the report lists every cache.
    assert!(leak.title.contains("rust_i915_"), "{}", leak.title);
    assert!(leak.report.contains("rust_i915_vma"), "{}", leak.report);
    assert_eq!(
        leak.attribution.as_deref(),
        Some("left behind by unload in cycle 1")
    );
    let duplicate = legacy
        .findings
        .iter()
        .find(|f| f.title == "debugfs: duplicate 'rust_i915_table' in '/'")
        .expect("the reload's duplicate debugfs dir");
    assert!(
        duplicate
            .attribution
            .as_deref()
            .unwrap()
            .starts_with("left behind by unload in cycle 1"),
        "{:?}",
        duplicate.attribution
    );

    let objects = result(&results, "kcycle@rust-table@control-leak-objects");
    assert!(objects.findings.iter().any(|f| f.kind == "slab-leak"
        && f.title.starts_with("kmem_cache_destroy rust_i915_")
        && f.title.ends_with(": Slab cache still has objects")));

    for step in ["nomodeset", "globals", "mock-selftests", "pci", "sysctl"] {
        let unwind = result(&results, &format!("kcycle@rust-table@fail-at-{step}"));
        assert!(unwind.findings.is_empty(), "{step}: {:#?}", unwind.findings);
        assert!(
            unwind.out.contains("[exit 1]"),
            "{step}: the load must have failed"
        );
    }
    let subtests: Vec<&TestResult> = results
        .iter()
        .filter(|r| r.name.starts_with("kcycle@rust-table@mock-selftests@"))
        .collect();
    assert_eq!(subtests.len(), 5, "one result per selftest");
}

#[test]
fn a_control_against_the_fixed_driver_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("control.toml");
    std::fs::write(
        &suite,
        r#"
name = "self-check"
cmdline = ["slub_debug=U,rust_i915_*"]
[[test]]
name = "fixed-table-is-not-a-leak"
steps = [
    { selftest = "rust_i915_table", kind = "i915-mock" },
    { unload = "rust_i915_table" },
]
expect = [{ kind = "leaked-slab-cache", title = "*rust_i915_*" }]
"#,
    )
    .unwrap();
    let Some((code, stderr, results, _)) = run(tmp.path(), &[suite.to_str().unwrap()]) else {
        return;
    };
    assert_eq!(code, 1, "{stderr}");
    let control = result(&results, "kcycle@self-check@fixed-table-is-not-a-leak");
    assert_eq!(control.status, Status::Fail);
    assert_eq!(control.findings[0].kind, "control-not-flagged");
    assert!(stderr.contains("control not flagged"), "{stderr}");
}

#[test]
fn a_failing_selftest_is_one_failed_subtest() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("st.toml");
    std::fs::write(
        &suite,
        r#"
name = "st"
[[test]]
name = "one-fails"
steps = [
    { selftest = "rust_i915_table", kind = "i915-mock", params = { st_fail = "rust_i915_vma" } },
    { unload = "rust_i915_table" },
]
"#,
    )
    .unwrap();
    let Some((code, stderr, results, _)) = run(tmp.path(), &[suite.to_str().unwrap()]) else {
        return;
    };
    assert_eq!(code, 1, "{stderr}");
    let failed: Vec<(&str, Status)> = results
        .iter()
        .filter(|r| r.status != Status::Pass)
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    assert!(
        failed.contains(&("kcycle@st@one-fails@mock@rust_i915_vma", Status::Fail)),
        "{failed:?}"
    );
}

#[test]
fn bad_input_is_refused_before_any_guest_boots() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(kernel) = support::kernel() else {
        return;
    };
    let suite = tmp.path().join("typo.toml");
    std::fs::write(
        &suite,
        "[[test]]\nname = \"t\"\nsteps = [{ load = \"rust_i915_tabel\" }]\n",
    )
    .unwrap();
    let output = support::kcycle(tmp.path(), &kernel)
        .args(["run", suite.to_str().unwrap(), "--results"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`rust_i915_tabel` is not in the kernel's modules.dep"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean rust_i915_table"), "{stderr}");
    assert!(
        !tmp.path().join("r").exists(),
        "nothing is written for bad input"
    );

    let output = support::kcycle(tmp.path(), &kernel)
        .args(["run", suite.to_str().unwrap(), "--filter", "*@nothing"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("matches no test"));
}

#[test]
fn i915_mock_selftests_are_reported_per_subtest() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = suites_dir().join("i915-mock.toml");
    let Some((code, stderr, results, dir)) = run(tmp.path(), &[suite.to_str().unwrap()]) else {
        return;
    };
    // Whatever the real driver does: passed (0) or findings (1), never bad
    // input or a broken run.
    assert!(code == 0 || code == 1, "exit {code}: {stderr}");
    let load_unload = result(&results, "kcycle@i915-mock@load-unload");
    assert_eq!(
        load_unload.status,
        Status::Pass,
        "{:#?}",
        load_unload.findings
    );

    let prefix = "kcycle@i915-mock@mock-selftests-then-reload@";
    let subtests: Vec<&TestResult> = results
        .iter()
        .filter(|r| r.name.starts_with(prefix))
        .collect();
    assert!(subtests.len() >= 50, "only {} subtests", subtests.len());
    // Top-level selftests and their subtests, as i915 names them.
    for name in ["sanitycheck", "i915_sw_fence_mock_selftests@test_self"] {
        let wanted = format!("{prefix}{name}");
        assert!(subtests.iter().any(|r| r.name == wanted), "no {wanted}");
    }
    for subtest in &subtests {
        assert!(
            !matches!(subtest.status, Status::Incomplete | Status::Notrun),
            "{}: {}",
            subtest.name,
            subtest.status
        );
        if subtest.status == Status::Fail {
            assert!(
                subtest.dmesg.contains("failed with error"),
                "{}: a failed subtest carries its log",
                subtest.name
            );
        }
    }
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&junit).unwrap();
    let cases: usize = report.test_suites.iter().map(|s| s.test_cases.len()).sum();
    assert_eq!(cases, results.len(), "one testcase per result");
}
