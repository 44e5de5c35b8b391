//! What kcycle does when things break, with real QEMU: a guest that panics,
//! a step that hangs, QEMU killed from outside, kcycle itself interrupted, a
//! guest that never boots. In every case the reports stay valid, nothing
//! already measured is lost, and no QEMU is left behind.
//!
//! The faults come from rust_i915_table's `panic_at` / `hang_at` parameters
//! and from signals sent by the test.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use kcycle::outcome::TestResult;
use kcycle::report::igt_json;
use kcycle::status::Status;

fn write_suite(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("faults.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn read_results(dir: &Path) -> Vec<TestResult> {
    let json = std::fs::read_to_string(dir.join("results.json")).expect("results.json exists");
    let xml = std::fs::read_to_string(dir.join("junit.xml")).expect("junit.xml exists");
    quick_junit::Report::deserialize_from_str(&xml).expect("junit.xml parses");
    igt_json::parse(&json).expect("results.json parses").1
}

fn statuses(results: &[TestResult]) -> Vec<(String, Status)> {
    results.iter().map(|r| (r.name.clone(), r.status)).collect()
}

/// `kcycle run` to its end: exit code, stderr, and the results read back.
fn run_to_end(
    tmp: &Path,
    kernel: &kcycle::kernel::Artifacts,
    suite: &Path,
    results_dir: &Path,
) -> (i32, String, Vec<TestResult>) {
    let output = support::kcycle(tmp, kernel)
        .args(["--progress=never", "run", "--no-retry"])
        .arg(suite)
        .arg("--results")
        .arg(results_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (
        output.status.code().unwrap_or(-1),
        stderr,
        read_results(results_dir),
    )
}

/// Start `kcycle run` in the background.
fn spawn_run(tmp: &Path, suite: &Path, results: &Path) -> Option<Child> {
    let kernel = support::kernel()?;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kcycle"))
        .env("TMPDIR", tmp)
        .env("KCYCLE_KERNEL", &kernel.dir)
        .args(["--progress=never", "run", "--no-retry"])
        .arg(suite)
        .arg("--results")
        .arg(results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Some(child)
}

/// Wait (with a deadline) until some guest console under `tmp` shows `needle`.
fn wait_for_console(tmp: &Path, needle: &str, deadline: Duration) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        for entry in std::fs::read_dir(tmp).unwrap().flatten() {
            let console = entry.path().join("console.log");
            if std::fs::read_to_string(&console).is_ok_and(|text| text.contains(needle)) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no guest console showed {needle:?} within {deadline:?}");
}

fn wait_with_deadline(mut child: Child, deadline: Duration) -> (i32, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            return (status.code().unwrap_or(-1), stderr);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!("kcycle did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn panic_and_hang_are_crash_and_timeout_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(kernel) = support::kernel() else {
        return;
    };
    let suite = write_suite(
        tmp.path(),
        r#"
name = "faults"
[[test]]
name = "panic"
# A long deadline: the crash must be noticed from the console, not by waiting.
steps = [{ load = "rust_i915_table", params = { panic_at = "globals" }, timeout = 900 }]
[[test]]
name = "hang"
steps = [{ load = "rust_i915_table", params = { hang_at = "pci" }, timeout = 15 }]
[[test]]
name = "after"
steps = [{ load = "rust_i915_table" }, { unload = "rust_i915_table" }]
"#,
    );
    let results_dir = tmp.path().join("results");
    let (code, stderr, results) = run_to_end(tmp.path(), &kernel, &suite, &results_dir);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        statuses(&results),
        [
            ("kcycle@faults@panic".to_string(), Status::Crash),
            ("kcycle@faults@hang".to_string(), Status::Timeout),
            ("kcycle@faults@after".to_string(), Status::Pass),
        ]
    );
    // The fault itself first, then the console's report of it.
    assert_eq!(results[0].findings[0].kind, "crash");
    let panic = &results[0].findings[1];
    assert_eq!(panic.kind, "panic");
    assert_eq!(
        panic.title,
        "kernel panic: rust_i915_table: panic_at=globals"
    );
    assert!(
        panic.report.contains("Kernel panic - not syncing"),
        "{}",
        panic.report
    );
    assert!(
        stderr.contains("restoring its saved state (the previous test ended with crash)"),
        "{stderr}"
    );
    // Each boot's console is kept.
    assert!(results_dir.join("console-faults-guest0.1.log").is_file());
    assert!(support::qemus_mentioning(&tmp.path().to_string_lossy()).is_empty());
}

/// A two-test suite whose first test hangs in a step: `fault` is applied to
/// the guest's QEMU (by pid) while it hangs. The first test must come out
/// `incomplete` with a reason, the second must pass on a restarted guest,
/// and no QEMU may survive. Returns the first test's result.
fn hang_then_fault(name: &str, fault: impl FnOnce(&Path, u32)) -> Option<TestResult> {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        &format!(
            r#"
name = "{name}"
[[test]]
name = "victim"
steps = [{{ load = "rust_i915_table", params = {{ hang_at = "globals" }}, timeout = 600 }}]
[[test]]
name = "after"
steps = [{{ load = "rust_i915_table" }}, {{ unload = "rust_i915_table" }}]
"#
        ),
    );
    let results_dir = tmp.path().join("results");
    let child = spawn_run(tmp.path(), &suite, &results_dir)?;
    wait_for_console(tmp.path(), "hang_at: waiting", Duration::from_secs(300));
    let qemus = support::qemus_mentioning(&tmp.path().to_string_lossy());
    assert_eq!(qemus.len(), 1, "{qemus:?}");
    fault(tmp.path(), qemus[0]);

    let (code, stderr) = wait_with_deadline(child, Duration::from_secs(600));
    assert_eq!(code, 1, "{stderr}");
    let results = read_results(&results_dir);
    assert_eq!(
        statuses(&results),
        [
            (format!("kcycle@{name}@victim"), Status::Incomplete),
            (format!("kcycle@{name}@after"), Status::Pass),
        ]
    );
    assert!(!results[0].err.is_empty(), "the reason is recorded");
    assert!(support::qemus_mentioning(&tmp.path().to_string_lossy()).is_empty());
    results.into_iter().next()
}

#[test]
fn qemu_killed_from_outside_is_incomplete_and_the_run_goes_on() {
    let victim = hang_then_fault("killed", |_, qemu| {
        // SAFETY: kill(2) on a pid this test found; no memory is involved.
        unsafe { libc::kill(qemu as i32, libc::SIGKILL) };
    });
    if let Some(victim) = victim {
        assert!(victim.err.contains("QEMU exited"), "{}", victim.err);
    }
}

#[test]
fn sigterm_keeps_results_and_reports_the_rest_notrun() {
    stopped_by(libc::SIGTERM, "SIGTERM");
}

/// A closed terminal or SSH session ends the run like SIGTERM: summary,
/// the rest notrun, exit 3 (not death by signal, status 129).
#[test]
fn sighup_ends_the_run_like_sigterm() {
    stopped_by(libc::SIGHUP, "SIGHUP");
}

fn stopped_by(signal: i32, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        r#"
name = "stopped"
[[test]]
name = "done"
steps = [{ load = "rust_i915_table" }, { unload = "rust_i915_table" }]
[[test]]
name = "running"
steps = [{ load = "rust_i915_table", params = { hang_at = "globals" }, timeout = 600 }]
[[test]]
name = "never"
steps = [{ load = "rust_i915_table" }]
"#,
    );
    let results_dir = tmp.path().join("results");
    let Some(child) = spawn_run(tmp.path(), &suite, &results_dir) else {
        return;
    };
    wait_for_console(tmp.path(), "hang_at: waiting", Duration::from_secs(300));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, signal) };

    let (code, stderr) = wait_with_deadline(child, Duration::from_secs(120));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by {name}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("results in"),
        "the summary is printed: {stderr}"
    );
    let results = read_results(&results_dir);
    assert_eq!(
        statuses(&results),
        [
            ("kcycle@stopped@done".to_string(), Status::Pass),
            ("kcycle@stopped@running".to_string(), Status::Incomplete),
            ("kcycle@stopped@never".to_string(), Status::Notrun),
        ]
    );
    assert!(support::qemus_mentioning(&tmp.path().to_string_lossy()).is_empty());
}

#[test]
fn a_guest_that_never_boots_aborts_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(kernel) = support::kernel() else {
        return;
    };
    let suite = write_suite(
        tmp.path(),
        r#"
name = "noboot"
# No init: the guest kernel panics at boot, every time.
cmdline = ["init=/nonexistent", "rdinit=/nonexistent"]
[[test]]
name = "a"
steps = [{ load = "rust_i915_table" }]
[[test]]
name = "b"
steps = [{ load = "rust_i915_table" }]
"#,
    );
    let results_dir = tmp.path().join("results");
    let (code, stderr, results) = run_to_end(tmp.path(), &kernel, &suite, &results_dir);
    assert_eq!(code, 3, "{stderr}");
    let mut got = statuses(&results);
    got.sort();
    assert_eq!(
        got,
        [
            ("kcycle@noboot@a".to_string(), Status::Notrun),
            ("kcycle@noboot@b".to_string(), Status::Notrun),
            ("kcycle@runner@aborted".to_string(), Status::Abort),
        ]
    );
    let aborted = results.iter().find(|r| r.status == Status::Abort).unwrap();
    assert!(aborted.err.contains("panic"), "{}", aborted.err);
    // The console of the failed boot is kept for the post-mortem.
    assert!(results_dir.join("console-noboot-guest0.log").is_file());
    assert!(support::qemus_mentioning(&tmp.path().to_string_lossy()).is_empty());
}

/// The QEMU command line's `hostfwd=tcp:127.0.0.1:<port>-:22` port.
fn ssh_port_of(pid: u32) -> u16 {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    let after = cmdline.split("hostfwd=tcp:127.0.0.1:").nth(1).unwrap();
    after.split('-').next().unwrap().parse().unwrap()
}

#[test]
fn sshd_killed_in_the_guest_is_incomplete_and_the_run_goes_on() {
    hang_then_fault("nossh", |tmp, qemu| {
        let key = std::fs::read_dir(tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("id_ed25519"))
            .find(|k| k.is_file())
            .expect("the run's key");
        // Kill the guest's sshd (and with it the session kcycle is waiting
        // on) over a second connection, as a broken guest would.
        let status = std::process::Command::new("ssh")
            .arg("-i")
            .arg(&key)
            .args(["-p", &ssh_port_of(qemu).to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=30",
                "-o",
                "BatchMode=yes",
            ])
            .args(["root@127.0.0.1", "killall -9 dropbear"])
            .status()
            .unwrap();
        // The ssh client loses its own connection when dropbear dies.
        assert!(status.code().is_some(), "ssh was killed by a signal");
    });
}
