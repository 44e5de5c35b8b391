//! Shared by the end-to-end tests: finding the built kernel, running the
//! `kcycle` binary against it, and checking that no QEMU outlives a test.
//!
//! The kernel comes from `KCYCLE_KERNEL` (an artifact directory from
//! `kcycle kernel build`); without it the tests fail when `CI` is set and
//! print a skip notice otherwise.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use kcycle::kernel::Artifacts;
use kcycle::outcome::TestResult;

pub fn kernel() -> Option<Artifacts> {
    let Some(dir) = std::env::var_os("KCYCLE_KERNEL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "KCYCLE_KERNEL is not set: point it at a kernel artifact directory (`kcycle kernel build`)"
        );
        eprintln!(
            "skipping: KCYCLE_KERNEL is not set (a `kcycle kernel build` artifact directory)"
        );
        return None;
    };
    Some(
        Artifacts::open(Path::new(&dir)).expect("KCYCLE_KERNEL is not a kernel artifact directory"),
    )
}

/// PIDs of live QEMU processes whose command line mentions `needle`.
pub fn qemus_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        // By argv[0]'s name: an unpacked or self-built QEMU runs by its full path.
        let program = cmdline.split('\0').next().unwrap_or_default();
        let qemu = Path::new(program)
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("qemu-system"));
        if qemu && cmdline.contains(needle) && !zombie {
            found.push(pid);
        }
    }
    found
}

/// `kcycle` with its temp dir (and so its run dirs) in `tmp`, so leftovers can be found.
pub fn kcycle(tmp: &Path, kernel: &Artifacts) -> Command {
    let mut command = Command::cargo_bin("kcycle").unwrap();
    command
        .env("TMPDIR", tmp)
        .env("KCYCLE_KERNEL", &kernel.dir)
        .timeout(Duration::from_secs(600));
    command
}

/// Run `kcycle run` on `suites` into a fresh results dir; returns exit code,
/// stderr and the results read back from results.json (after checking that
/// junit.xml parses and summary.md exists). One attempt per test unless
/// `args` set `--retries`: a failing control is checked as it came out, and
/// the reruns are flaky_e2e's subject.
pub fn run_suites(tmp: &Path, args: &[&str]) -> Option<(i32, String, Vec<TestResult>, PathBuf)> {
    let kernel = kernel()?;
    let results = tmp.join("results");
    let retries = args.contains(&"--retries");
    let output = kcycle(tmp, &kernel)
        .arg("--progress=never")
        .arg("run")
        .args(if retries { None } else { Some("--no-retry") })
        .args(args)
        .arg("--results")
        .arg(&results)
        .timeout(Duration::from_secs(1500))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code().unwrap_or(-1);
    let json = std::fs::read_to_string(results.join("results.json"))
        .unwrap_or_else(|e| panic!("no results.json ({e}); stderr:\n{stderr}"));
    let (_, parsed) = kcycle::report::igt_json::parse(&json).unwrap();
    let xml = std::fs::read_to_string(results.join("junit.xml")).unwrap();
    quick_junit_parses(&xml);
    assert!(results.join("summary.md").is_file());
    assert!(
        qemus_mentioning(&tmp.to_string_lossy()).is_empty(),
        "a QEMU outlived kcycle run"
    );
    Some((code, stderr, parsed, results))
}

fn quick_junit_parses(xml: &str) {
    let report = quick_junit::Report::deserialize_from_str(xml).expect("junit.xml parses");
    assert!(!report.test_suites.is_empty());
}

/// The result named `name`; a test without it fails here.
pub fn result<'a>(results: &'a [TestResult], name: &str) -> &'a TestResult {
    results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no result {name}"))
}

/// Every result passed (controls included: a flagged control passes) and the run exited 0.
pub fn assert_all_pass(results: &[TestResult], code: i32, stderr: &str) {
    for r in results {
        assert_eq!(
            r.status,
            kcycle::status::Status::Pass,
            "{}: {:#?}\n{stderr}",
            r.name,
            r.findings
        );
    }
    assert_eq!(code, 0, "{stderr}");
}
