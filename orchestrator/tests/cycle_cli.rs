//! `kcycle cycle`'s bad input, refused before any guest boots (exit 2):
//! against a stand-in kernel artifact directory, so no kernel build is needed.

use std::path::Path;

use assert_cmd::Command;

const RELEASE: &str = "6.12.117";

/// An artifact directory with what `cycle` reads before a boot: the manifest
/// (release, build dir) and modules.dep.
fn fake_kernel(dir: &Path) {
    let modules = dir.join("modules/lib/modules").join(RELEASE);
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(
        modules.join("modules.dep"),
        "extra/kcycle_leaks.ko:\nextra/rust_i915_table.ko:\nkernel/drivers/gpu/drm/i915/i915.ko:\n",
    )
    .unwrap();
    std::fs::write(
        modules.join("modules.builtin"),
        "kernel/drivers/tty/serial/8250/8250.ko\n",
    )
    .unwrap();
    std::fs::write(dir.join("bzImage"), "").unwrap();
    let manifest = serde_json::json!({
        "kernel_release": RELEASE,
        "source": "test",
        "config_hash": "00",
        "toolchain": {},
        "key": "ab",
        "build_dir": dir.join("no-build-dir"),
        "built_at": "2026-12-01T00:00:00Z",
        "build_seconds": 0.0,
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

fn cycle(kernel: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::cargo_bin("kcycle")
        .unwrap()
        .arg("--progress=never")
        .arg("cycle")
        .args(args)
        .arg("--kernel")
        .arg(kernel)
        .env_remove("KCYCLE_KERNEL")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_module_name_says_did_you_mean() {
    let tmp = tempfile::tempdir().unwrap();
    fake_kernel(tmp.path());
    let (code, stderr) = cycle(tmp.path(), &["kcycle_laeks"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`kcycle_laeks` is neither a module of the guest kernel 6.12.117"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean kcycle_leaks?"), "{stderr}");
    let (code, stderr) = cycle(tmp.path(), &["8250"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("built into the guest kernel"), "{stderr}");
}

#[test]
fn a_ko_that_is_no_module_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fake_kernel(tmp.path());
    let ko = tmp.path().join("my_drv.ko");
    std::fs::write(&ko, "not an ELF").unwrap();
    let (code, stderr) = cycle(tmp.path(), &[ko.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("has no vermagic"), "{stderr}");
}

#[test]
fn a_directory_that_does_not_build_keeps_its_output() {
    let tmp = tempfile::tempdir().unwrap();
    fake_kernel(tmp.path());
    let empty = tmp.path().join("no-kbuild");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("drv.c"), "int x;\n").unwrap();
    let (code, stderr) = cycle(tmp.path(), &[empty.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("has no Kbuild or Makefile"), "{stderr}");

    // The kernel build dir is missing: make's own error is shown as printed.
    let drv = tmp.path().join("drv");
    std::fs::create_dir_all(&drv).unwrap();
    std::fs::write(drv.join("Kbuild"), "obj-m := drv.o\n").unwrap();
    std::fs::write(drv.join("drv.c"), "#error broken\n").unwrap();
    let (code, stderr) = cycle(tmp.path(), &[drv.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no-build-dir"), "{stderr}");
    assert!(stderr.contains("failed to build"), "{stderr}");
}

#[test]
fn print_suite_writes_a_suite_that_kcycle_run_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("kcycle")
        .unwrap()
        .args([
            "cycle",
            "kcycle_leaks",
            "--cycles",
            "5",
            "--sweep",
            "--print-suite",
        ])
        .args(["--params", "leak_objects=1", "--selftest", "kunit"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    let path = tmp.path().join("kept.toml");
    std::fs::write(&path, &text).unwrap();
    let suite = kcycle::suite::Suite::load(&path).unwrap();
    let names: Vec<&str> = suite.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "kcycle@cycle@kcycle_leaks",
            "kcycle@cycle@kcycle_leaks-reload",
            "kcycle@cycle@kcycle_leaks-sweep"
        ]
    );
    assert_eq!(suite.tests[0].cycles, 5);
    assert_eq!(kcycle::suite::to_toml(&suite), text);
}
