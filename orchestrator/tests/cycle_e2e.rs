//! `kcycle cycle` for real: the implicit suite of kcycle_leaks by name, as
//! a built .ko and from its source directory; and fail-nth sweeps of the
//! whole init range, with no limit (the stack filter counts only the
//! module's own calls): rust_i915_table clean, and with the control whose
//! unwind forgets one step; kcycle_leaks with the control whose unwind
//! forgets its proc entry, clean before that step. Under TCG on CI's kind
//! of machine a point takes about 1.3 s (about 5 s when it restores the
//! guest): rust_i915_table walks about 196 points, kcycle_leaks about 175.

mod support;

use std::path::Path;
use std::time::Duration;

use kcycle::outcome::TestResult;
use kcycle::report::igt_json;
use kcycle::status::Status;

/// `kcycle cycle <args>` into a fresh results dir: exit code, stderr, results.
fn cycle(tmp: &Path, args: &[&str], limit: Duration) -> Option<(i32, String, Vec<TestResult>)> {
    let kernel = support::kernel()?;
    let results = tmp.join("results");
    let output = support::kcycle(tmp, &kernel)
        .arg("--progress=never")
        .arg("cycle")
        .args(args)
        .arg("--results")
        .arg(&results)
        .timeout(limit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = std::fs::read_to_string(results.join("results.json"))
        .unwrap_or_else(|e| panic!("no results.json ({e}); stderr:\n{stderr}"));
    let (_, parsed) = igt_json::parse(&json).unwrap();
    // The suite it ran is kept beside the reports, and reads back.
    kcycle::suite::Suite::load(&results.join("cycle-suite.toml")).unwrap();
    assert!(
        support::qemus_mentioning(&tmp.to_string_lossy()).is_empty(),
        "a QEMU outlived kcycle cycle"
    );
    Some((output.status.code().unwrap_or(-1), stderr, parsed))
}

fn describe(results: &[TestResult]) -> String {
    results
        .iter()
        .map(|r| format!("{} {}: {:?}\n{}", r.name, r.status, r.findings, r.out))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn cycle_runs_the_implicit_suite_of_an_in_tree_module() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((code, stderr, results)) = cycle(
        tmp.path(),
        &["kcycle_leaks", "--cycles", "2"],
        Duration::from_secs(900),
    ) else {
        return;
    };
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "kcycle@cycle@kcycle_leaks",
            "kcycle@cycle@kcycle_leaks-reload"
        ],
        "{stderr}"
    );
    for r in &results {
        assert_eq!(r.status, Status::Pass, "{}\n{stderr}", describe(&results));
    }
    assert_eq!(code, 0, "{stderr}");
}

/// kcycle_leaks as built into the kernel's artifacts, copied out.
fn built_ko(tmp: &Path) -> Option<std::path::PathBuf> {
    let kernel = support::kernel()?;
    let release = &kernel.manifest.kernel_release;
    let built = kernel.dir.join(format!(
        "modules/lib/modules/{release}/extra/kcycle_leaks.ko"
    ));
    let copy = tmp.join("kcycle_leaks.ko");
    std::fs::copy(&built, &copy).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
    Some(copy)
}

#[test]
fn cycle_runs_a_built_ko_and_a_source_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(ko) = built_ko(tmp.path()) else {
        return;
    };
    let by_file = tmp.path().join("file");
    std::fs::create_dir(&by_file).unwrap();
    let (code, stderr, results) = cycle(
        &by_file,
        &[ko.to_str().unwrap(), "--cycles", "1"],
        Duration::from_secs(900),
    )
    .unwrap();
    assert_eq!(code, 0, "{}\n{stderr}", describe(&results));
    // The .ko was uploaded and loaded with insmod, not the kernel's own copy.
    let cycled = support::result(&results, "kcycle@cycle@kcycle_leaks");
    assert!(cycled.out.contains("insmod '/"), "{}", cycled.out);

    // The source directory is built with make M= against the guest kernel.
    let src = tmp.path().join("kcycle_leaks");
    std::fs::create_dir(&src).unwrap();
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-kernel/kcycle_leaks");
    for entry in std::fs::read_dir(&tree).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), src.join(entry.file_name())).unwrap();
    }
    let by_dir = tmp.path().join("dir");
    std::fs::create_dir(&by_dir).unwrap();
    let (code, stderr, results) = cycle(
        &by_dir,
        &[src.to_str().unwrap(), "--cycles", "1"],
        Duration::from_secs(900),
    )
    .unwrap();
    assert_eq!(code, 0, "{}\n{stderr}", describe(&results));
    assert!(stderr.contains("make -C"), "{stderr}");
    let cycled = support::result(&results, "kcycle@cycle@kcycle_leaks");
    assert!(cycled.out.contains("insmod '/"), "{}", cycled.out);
}

#[test]
fn sweep_names_the_error_paths_that_forget_a_teardown() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((code, stderr, results)) = cycle(
        tmp.path(),
        &[
            "kcycle_leaks",
            "--cycles",
            "1",
            "--sweep",
            "--params",
            "unwind_leak=proc",
            // Its failure is the point: a rerun would walk it all again.
            "--no-retry",
        ],
        Duration::from_secs(3600),
    ) else {
        return;
    };
    let failing: Vec<&TestResult> = results
        .iter()
        .filter(|r| r.name.contains("@sweep@") && r.status > Status::Pass)
        .collect();
    assert!(!failing.is_empty(), "{}", describe(&results));
    for r in &failing {
        // Each names the leftover and the call site that failed.
        let leak = r
            .findings
            .iter()
            .find(|f| f.kind == "leaked-proc-entry")
            .unwrap_or_else(|| panic!("{}", describe(&results)));
        let attribution = leak.attribution.as_deref().unwrap();
        assert!(attribution.contains("fault injected in"), "{attribution}");
        // Steps before proc cannot leak proc's entry.
        for early in [
            "kl_slab_",
            "kl_debugfs_",
            "kl_class_",
            "kl_kobject_",
            "kl_platform_",
        ] {
            assert!(!attribution.contains(early), "{attribution}");
        }
    }
    // The steps before proc unwind everything: their points are clean, and
    // the sweep ran on to a quiet load.
    let walked = points(&results);
    let early: Vec<&&TestResult> = walked
        .iter()
        .filter(|r| r.out.contains("fault injected in kl_slab_init"))
        .collect();
    assert!(!early.is_empty(), "{}", describe(&results));
    for r in early {
        assert_eq!(r.status, Status::Pass, "{}", describe(&results));
    }
    let last = walked.last().unwrap();
    assert!(
        last.out
            .contains("the load succeeded with nothing injected"),
        "{}",
        describe(&results)
    );
    assert_eq!(code, 1, "{stderr}");
}

/// The sweep's subtests of `results`, in point order.
fn points(results: &[TestResult]) -> Vec<&TestResult> {
    let mut points: Vec<&TestResult> = results
        .iter()
        .filter(|r| r.name.contains("-sweep@sweep@fail-nth-"))
        .collect();
    points.sort_by_key(|r| r.name.rsplit('-').next().unwrap().parse::<u32>().unwrap());
    points
}

#[test]
fn sweep_of_rust_i915_table_is_clean_and_its_control_names_the_one_leaking_path() {
    let tmp = tempfile::tempdir().unwrap();
    let fixed = tmp.path().join("fixed");
    std::fs::create_dir(&fixed).unwrap();
    let Some((code, stderr, results)) = cycle(
        &fixed,
        &["rust_i915_table", "--cycles", "1", "--sweep"],
        Duration::from_secs(1800),
    ) else {
        return;
    };
    let walked = points(&results);
    assert!(
        walked.iter().any(|r| r.out.contains("fault injected in")),
        "no fault hit rust_i915_table's init:\n{}",
        describe(&results)
    );
    let last = walked.last().unwrap();
    assert!(
        last.out
            .contains("the load succeeded with nothing injected"),
        "{}",
        describe(&results)
    );
    for r in &results {
        assert!(
            matches!(r.status, Status::Pass | Status::Skip),
            "{}\n{stderr}",
            describe(&results)
        );
    }
    assert_eq!(code, 0, "{stderr}");

    // The control: a failed init's unwind forgets the globals step (its
    // slab caches and debugfs dir). Only a fault after that step has
    // succeeded takes that path: in the pci or the sysctl step.
    let control = tmp.path().join("control");
    std::fs::create_dir(&control).unwrap();
    let (code, stderr, results) = cycle(
        &control,
        &[
            "rust_i915_table",
            "--cycles",
            "1",
            "--sweep",
            "--params",
            "unwind_leak=globals",
            "--no-retry",
        ],
        Duration::from_secs(1800),
    )
    .unwrap();
    let walked = points(&results);
    let failing: Vec<&&TestResult> = walked.iter().filter(|r| r.status > Status::Pass).collect();
    assert!(!failing.is_empty(), "{}", describe(&results));
    for r in &failing {
        let leak = r
            .findings
            .iter()
            .find(|f| f.kind == "leaked-slab-cache" || f.kind == "leaked-debugfs-entry")
            .unwrap_or_else(|| panic!("{}", describe(&results)));
        let attribution = leak.attribution.as_deref().unwrap_or_default();
        assert!(attribution.contains("fault injected in"), "{attribution}");
        assert!(!attribution.contains("globals_init"), "{attribution}");
    }
    // Faults inside the globals step itself unwind nothing of it: clean.
    let in_globals: Vec<&&TestResult> = walked
        .iter()
        .filter(|r| {
            r.out
                .contains("fault injected in rust_i915_table::globals_init")
        })
        .collect();
    assert!(!in_globals.is_empty(), "{}", describe(&results));
    for r in in_globals {
        assert_eq!(r.status, Status::Pass, "{}", describe(&results));
    }
    assert_eq!(code, 1, "{stderr}");
}
