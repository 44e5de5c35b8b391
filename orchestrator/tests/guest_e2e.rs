//! The real thing: the built guest kernel in QEMU (TCG), the real image,
//! real dropbear. Finds the kernel through `KCYCLE_KERNEL` (an artifact
//! directory from `kcycle kernel build`); without it the tests fail when
//! `CI` is set and print a skip notice otherwise.
//!
//! Tests run one at a time (a lock): each boots a 2 GiB guest on a 2-core
//! machine, and the "no QEMU left" checks look at all of this test's QEMUs.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use assert_cmd::Command;
use kcycle::guest::{BootSpec, ExecRequest, Guest, GuestError, RunDir};
use kcycle::image;
use kcycle::kernel::Artifacts;
use kcycle::vm::{self, Accel, QemuConfig, Vm, VmError};

use support::{kcycle, kernel, qemus_mentioning};

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn exec_prints_uname_and_proc_version_and_leaves_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let tmp = tempfile::tempdir().unwrap();

    let out = kcycle(tmp.path(), &kernel)
        .args(["exec", "--accel", "tcg", "--", "uname", "-r"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kcycle exec failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        kernel.manifest.kernel_release
    );
    assert!(stderr.contains("accel tcg"), "{stderr}");

    let out = kcycle(tmp.path(), &kernel)
        .args(["exec", "--accel", "tcg", "--", "cat", "/proc/version"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "Linux version {} ",
            kernel.manifest.kernel_release
        )),
        "{stdout}"
    );
    assert_eq!(
        qemus_mentioning(&tmp.path().to_string_lossy()),
        Vec::<u32>::new()
    );
}

#[test]
fn exec_exits_with_the_commands_status_and_streams() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = kcycle(tmp.path(), &kernel)
        .args([
            "exec",
            "--accel",
            "tcg",
            "--shell",
            "echo out; echo err >&2; lsmod >/dev/null; exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err\n"));
    assert_eq!(
        qemus_mentioning(&tmp.path().to_string_lossy()),
        Vec::<u32>::new()
    );
}

/// Every word after `--` reaches the guest as one argument.
#[test]
fn exec_keeps_argument_boundaries() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let exit = kcycle(tmp.path(), &kernel)
        .args(["exec", "--accel", "tcg", "--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(
        exit.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&exit.stderr)
    );
    let echo = kcycle(tmp.path(), &kernel)
        .args(["exec", "--accel", "tcg", "--", "echo", "a  b", "$HOME"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&echo.stdout), "a  b $HOME\n");
    assert_eq!(
        qemus_mentioning(&tmp.path().to_string_lossy()),
        Vec::<u32>::new()
    );
}

#[test]
fn missing_kernel_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("kcycle")
        .unwrap()
        .env_remove("KCYCLE_KERNEL")
        .args(["exec", "--kernel"])
        .arg(tmp.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("manifest.json is missing"), "{stderr}");
}

fn base_image(kernel: &Artifacts, cache: &Path) -> PathBuf {
    image::build(kernel, cache).unwrap().path
}

/// The runner's base image on this kernel, under TCG.
fn base_spec(kernel: &Artifacts) -> BootSpec {
    BootSpec::new(
        kernel.bzimage(),
        base_image(kernel, &kcycle::sys::dirs::cache_root().unwrap()),
        Accel::Tcg,
    )
}

/// A guest of [`base_spec`], booted in `run_dir`.
fn boot_tcg(kernel: &Artifacts, run_dir: &RunDir) -> Guest {
    Guest::boot(base_spec(kernel), run_dir.path()).unwrap()
}

/// A kernel that cannot find init panics; the boot fails at once with the
/// panic in the error, not after the boot deadline.
#[test]
fn boot_panic_is_reported_with_console_lines() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let run_dir = RunDir::temporary().unwrap();
    let mut spec = base_spec(&kernel);
    spec.cmdline = vec!["rdinit=/nonexistent".into(), "root=/dev/nonexistent".into()];
    spec.memory_mib = 512;
    let started = std::time::Instant::now();
    let err = Guest::boot(spec, run_dir.path())
        .err()
        .expect("boot must fail");
    let text = err.to_string();
    assert!(matches!(err, GuestError::Panicked { .. }), "{text}");
    assert!(text.contains("Kernel panic - not syncing"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(170),
        "noticed before the boot deadline"
    );
    assert_eq!(
        qemus_mentioning(&run_dir.path().to_string_lossy()),
        Vec::<u32>::new()
    );
}

/// An image without dropbear: init says so and boot fails with that, fast.
#[test]
fn image_without_sshd_is_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let cache = tempfile::tempdir().unwrap();
    let files = image::resolve_host_files(&[image::HostFile {
        host: "/usr/bin/busybox".into(),
        guest: "/bin/busybox".into(),
    }])
    .unwrap();
    let no_sshd = image::build_with(&files, None, cache.path()).unwrap();
    let run_dir = RunDir::temporary().unwrap();
    let mut spec = BootSpec::new(kernel.bzimage(), no_sshd.path, Accel::Tcg);
    spec.memory_mib = 512;
    let err = Guest::boot(spec, run_dir.path())
        .err()
        .expect("boot must fail");
    let text = err.to_string();
    assert!(matches!(err, GuestError::SshdFailed { .. }), "{text}");
    assert!(text.contains("kcycle-init: sshd failed"), "{text}");
    assert_eq!(
        qemus_mentioning(&run_dir.path().to_string_lossy()),
        Vec::<u32>::new()
    );
}

/// A host port already taken: QEMU refuses the forward and we say which port.
#[test]
fn port_in_use_is_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let run_dir = RunDir::temporary().unwrap();
    let config = QemuConfig::new(
        kernel.bzimage(),
        base_image(&kernel, &kcycle::sys::dirs::cache_root().unwrap()),
        run_dir.path().join(vm::QMP_SOCKET),
        port,
    );
    let err = Vm::launch(config, run_dir.path())
        .err()
        .expect("launch must fail");
    assert!(
        matches!(err, VmError::PortInUse { port: p, .. } if p == port),
        "{err}"
    );
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
}

/// Commands without stdin run on one persistent channel, each a child of
/// the guest's `kcycle-snapshot serve`; a guest without that server (an
/// older image) gets a channel per command, each a child of dropbear, with
/// the same results.
#[test]
fn commands_share_one_server_and_fall_back_to_a_channel_each() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let run_dir = RunDir::temporary().unwrap();
    let mut guest = boot_tcg(&kernel, &run_dir);
    let parent = |guest: &mut Guest| {
        let out = guest
            .run("echo $PPID $(cat /proc/$PPID/comm); echo err >&2; exit 4")
            .unwrap();
        assert_eq!(
            (out.status, out.stderr_text().as_str()),
            (4, "err\n"),
            "{out:?}"
        );
        out.stdout_text().trim().to_string()
    };
    let first = parent(&mut guest);
    assert!(first.ends_with(" kcycle-snapshot"), "{first}");
    assert_eq!(parent(&mut guest), first, "one server for every command");
    // Longer than dropbear takes in an exec request (MAX_CMD_LEN, 9000).
    let long = guest
        .run(&format!(": {}; echo ok", "x".repeat(20_000)))
        .unwrap();
    assert_eq!(long.stdout_text(), "ok\n", "{long:?}");

    let helper = kcycle::snapshot::HELPER_PATH;
    let moved = guest.run(&format!("mv {helper} {helper}.away")).unwrap();
    assert!(moved.success(), "{moved:?}");
    guest.reconnect(Duration::from_secs(60)).unwrap();
    let fallback = parent(&mut guest);
    assert!(fallback.ends_with(" dropbear"), "{fallback}");
    let big = guest.run("head -c 200000 /dev/zero | tr '\\0' x").unwrap();
    assert_eq!(big.stdout.len(), 200_000);

    let back = guest.run(&format!("mv {helper}.away {helper}")).unwrap();
    assert!(back.success(), "{back:?}");
    guest.reconnect(Duration::from_secs(60)).unwrap();
    assert!(parent(&mut guest).ends_with(" kcycle-snapshot"));
    assert_eq!(
        guest.shutdown(Duration::from_secs(30)),
        vm::Shutdown::PoweredOff
    );
}

/// The runner's path: boot once, several commands, copy a file in, QMP
/// status, restart after a reset, clean shutdown through the power button.
#[test]
fn guest_api_exec_copy_qmp_restart_shutdown() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let run_dir = RunDir::temporary().unwrap();
    let mut guest = boot_tcg(&kernel, &run_dir);

    let out = guest
        .run("cat /proc/modules | wc -l; ls /lib/modules")
        .unwrap();
    assert!(out.success());
    assert!(
        out.stdout_text().contains(&kernel.manifest.kernel_release),
        "{out:?}"
    );
    let out = guest.run("mount | grep -c debugfs; modprobe -V").unwrap();
    assert!(out.stdout_text().starts_with("1\nkmod version"), "{out:?}");

    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    guest
        .copy_in(payload.clone(), "/tmp/payload.bin", 0o600)
        .unwrap();
    let out = guest
        .run("wc -c < /tmp/payload.bin; stat -c %a /tmp/payload.bin")
        .unwrap();
    assert_eq!(out.stdout_text(), format!("{}\n600\n", payload.len()));

    let err = guest
        .exec(ExecRequest::new("sleep 20").inactivity(Duration::from_secs(1)))
        .unwrap_err();
    assert!(err.to_string().contains("inactivity"), "{err}");
    // The quiet command died with its channel, and sshd lived on (bookworm's
    // dropbear can abort a connection when a channel starts as another's
    // process exits).
    let out = guest.run("ps -o args; cat /run/dropbear.log").unwrap();
    let seen = out.stdout_text();
    assert!(!seen.lines().any(|l| l.starts_with("sleep 20")), "{seen}");
    assert!(!seen.contains("Failed assertion"), "{seen}");

    // A deadline closes the session; the next exec logs in again by itself.
    let err = guest
        .exec(
            ExecRequest::new("while :; do echo .; sleep 0.2; done")
                .deadline(Duration::from_secs(2)),
        )
        .unwrap_err();
    assert!(err.to_string().contains("deadline"), "{err}");
    assert!(guest.run("true").unwrap().success());

    let status = guest.vm().qmp().unwrap().query_status().unwrap();
    assert!(status.running);

    let first_pid = guest.vm().pid();
    guest.restart().unwrap();
    assert_ne!(guest.vm().pid(), first_pid);
    assert!(run_dir.path().join("console.1.log").exists());
    assert!(guest.run("true").unwrap().success());

    let how = guest.shutdown(Duration::from_secs(30));
    assert_eq!(
        how,
        vm::Shutdown::PoweredOff,
        "ACPI power button powers the guest off"
    );
    assert_eq!(
        qemus_mentioning(&run_dir.path().to_string_lossy()),
        Vec::<u32>::new()
    );
}

/// A dying guest in the middle of a command is reported as a panic.
#[test]
fn panic_during_exec_is_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let run_dir = RunDir::temporary().unwrap();
    let mut guest = boot_tcg(&kernel, &run_dir);
    let err = guest
        .exec(ExecRequest::new("echo c > /proc/sysrq-trigger").deadline(Duration::from_secs(60)))
        .unwrap_err();
    assert!(matches!(err, GuestError::Panicked { .. }), "{err}");
    assert!(matches!(guest.state(), vm::GuestState::Panicked { .. }));
    drop(guest);
    assert_eq!(
        qemus_mentioning(&run_dir.path().to_string_lossy()),
        Vec::<u32>::new()
    );
}

/// `--accel auto` (the default) probes KVM with a tiny boot, says what it
/// chose and why, and caches a probe's answer for the next run.
#[test]
fn auto_accel_probes_once_and_says_which() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(kernel) = kernel() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let accel_line = |out: &std::process::Output| {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
            .lines()
            .find(|l| l.starts_with("kcycle: accel "))
            .unwrap_or_else(|| panic!("no accel line in: {stderr}"))
            .to_string()
    };
    let first = kcycle(tmp.path(), &kernel)
        .env("KCYCLE_CACHE", cache.path())
        .args(["exec", "--", "uname", "-r"])
        .output()
        .unwrap();
    let first = accel_line(&first);
    assert!(first.starts_with("kcycle: accel kvm") || first.starts_with("kcycle: accel tcg"));
    if first.contains("probe") {
        let second = kcycle(tmp.path(), &kernel)
            .env("KCYCLE_CACHE", cache.path())
            .args(["exec", "--", "true"])
            .output()
            .unwrap();
        let second = accel_line(&second);
        assert!(second.contains("cached"), "{second}");
    }
    assert_eq!(
        qemus_mentioning(&tmp.path().to_string_lossy()),
        Vec::<u32>::new()
    );
}

/// `kcycle image build` prints the cached image; the same inputs give the same key.
#[test]
fn image_build_prints_a_cached_image() {
    let Some(kernel) = kernel() else { return };
    let cache = tempfile::tempdir().unwrap();
    let build = || {
        let out = Command::cargo_bin("kcycle")
            .unwrap()
            .env("KCYCLE_CACHE", cache.path())
            .args(["image", "build", "--kernel"])
            .arg(&kernel.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (path, stderr) = build();
    assert!(stderr.contains("(built)"), "{stderr}");
    assert!(path.starts_with(&*cache.path().to_string_lossy()) && Path::new(&path).is_file());
    let (again, stderr) = build();
    assert_eq!(again, path);
    assert!(stderr.contains("(cached)"), "{stderr}");
}
