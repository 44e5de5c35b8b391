//! The real thing for hosts where installing Debian's QEMU would remove the
//! user's packages: `apt-get download` and `dpkg-deb -x` unpack bookworm's
//! QEMU into a scratch cache, the wrapper probes as a usable QEMU, and a
//! guest boots with it and runs a command over SSH (through `KCYCLE_QEMU`).
//! Needs apt's package lists (`kcycle setup` fetches them) and the QEMU
//! libraries, which `kcycle setup` installs either way.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{kcycle, kernel, qemus_mentioning};

#[test]
fn unpacked_qemu_probes_usable_and_boots_a_guest() {
    if std::process::Command::new("apt-get")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs on Debian: apt-get is missing"
        );
        eprintln!("skipping: no apt-get here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("cache/qemu");
    let wrapper = kcycle::host::unpacked::unpack(&dest).expect("unpack bookworm's QEMU");
    assert_eq!(wrapper, dest.join("bin/qemu-system-x86_64"));
    let script = std::fs::read_to_string(&wrapper).unwrap();
    assert!(
        script.contains(&format!(
            "{}/root/usr/bin/qemu-system-x86_64",
            dest.display()
        )),
        "the wrapper runs the unpacked binary, not the host's:\n{script}"
    );
    assert!(
        std::fs::read_dir(&dest)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(".unpack-")),
        "the scratch directory is gone"
    );

    let found = kcycle::host::qemu::probe(&wrapper).expect("the unpacked QEMU answers");
    assert!(found.usable(), "{found:?}");

    let Some(kernel) = kernel() else { return };
    // A spy in front of the wrapper proves the guest ran on the unpacked QEMU.
    let ran = tmp.path().join("ran");
    let spy = tmp.path().join("spy-qemu");
    std::fs::write(
        &spy,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
            ran.display(),
            wrapper.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&spy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = kcycle(tmp.path(), &kernel)
        .env("KCYCLE_QEMU", &spy)
        .args([
            "--progress",
            "never",
            "exec",
            "--accel",
            "tcg",
            "--",
            "uname",
            "-r",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kcycle exec on the unpacked QEMU: {stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        kernel.manifest.kernel_release
    );
    let calls = std::fs::read_to_string(&ran).unwrap_or_default();
    assert!(
        calls.lines().any(|l| l.contains("-kernel")),
        "the guest booted through KCYCLE_QEMU:\n{calls}"
    );
    assert_eq!(
        qemus_mentioning(&tmp.path().to_string_lossy()),
        Vec::<u32>::new()
    );
}
