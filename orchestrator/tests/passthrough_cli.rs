//! `kcycle passthrough status|bind|unbind` and `kcycle run --passthrough`
//! against fake sysfs trees (KCYCLE_SYSFS_ROOT, KCYCLE_DEV_ROOT): no GPU needed.

use assert_cmd::Command;
use kcycle::passthrough::bind::{self, Owner};
use kcycle::passthrough::fake::FakeHost;
use kcycle::passthrough::{sysfs, Bdf};
use predicates::prelude::*;

struct Env {
    host: FakeHost,
    cache: tempfile::TempDir,
}

impl Env {
    fn new(host: FakeHost) -> Self {
        Env {
            host,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn kcycle(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("kcycle").unwrap();
        cmd.args(args)
            .env("KCYCLE_SYSFS_ROOT", &self.host.roots.sys)
            .env("KCYCLE_DEV_ROOT", &self.host.roots.dev)
            .env("KCYCLE_CACHE", self.cache.path())
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        cmd
    }
}

/// An IGD host with the GPU on vfio-pci already, as the CI runner's admin leaves it.
fn bound_igd() -> FakeHost {
    let host = FakeHost::igd();
    host.set_driver("0000:00:02.0", Some("vfio-pci"));
    host.vfio_node("1");
    host
}

#[test]
fn status_shows_the_device_and_every_check() {
    let env = Env::new(bound_igd());
    let out = env.kcycle(&["passthrough", "status"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("0000:00:02.0 8086:9a49 class 0x030000, driver vfio-pci (integrated)"),
        "{stdout}"
    );
    for check in [
        "device",
        "iommu",
        "vfio-pci",
        "iommu group",
        "/dev/vfio",
        "host console",
    ] {
        assert!(
            stdout.contains(&format!("  ok    {check:<13}")),
            "{check}: {stdout}"
        );
    }
    // The memlock line depends on who runs the test: root is unlimited.
    let memlock_ok = stdout.contains("  ok    memlock");
    assert!(memlock_ok || stdout.contains("  FAIL  memlock"), "{stdout}");
    assert_eq!(
        out.status.code(),
        Some(if memlock_ok { 0 } else { 2 }),
        "{stdout}"
    );
}

#[test]
fn status_exits_2_with_the_fix_when_a_check_fails() {
    let host = bound_igd();
    std::fs::remove_dir_all(host.roots.iommu_groups()).unwrap();
    let env = Env::new(host);
    env.kcycle(&["passthrough", "status", "0000:00:02.0"])
        .assert()
        .code(2)
        .stdout(
            predicate::str::contains("  FAIL  iommu")
                .and(predicate::str::contains("intel_iommu=on iommu=pt")),
        );

    Env::new(FakeHost::empty())
        .kcycle(&["passthrough", "status"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "FAIL  device       no Intel display-class device",
        ));
}

#[test]
fn a_bad_address_is_a_usage_error() {
    Env::new(FakeHost::empty())
        .kcycle(&["passthrough", "status", "02.0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("lspci -D"));
}

#[test]
fn bind_that_does_not_take_is_given_back() {
    // The fake kernel never moves the device, so vfio-pci "refuses" it.
    let env = Env::new(FakeHost::igd());
    env.kcycle(&["passthrough", "bind", "auto"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("on i915, not vfio-pci"));
    let host = &env.host;
    assert_eq!(host.read("bus/pci/drivers/i915/unbind"), "0000:00:02.0");
    assert_eq!(host.read("bus/pci/drivers_probe"), "0000:00:02.0");
    assert_eq!(
        host.read("bus/pci/devices/0000:00:02.0/driver_override"),
        "\n"
    );
    assert_eq!(host.read("bus/pci/drivers/i915/bind"), "0000:00:02.0");
    assert!(bind::load(env.cache.path(), Bdf::IGD).unwrap().is_none());
}

#[test]
fn unbind_restores_the_recorded_driver() {
    let env = Env::new(FakeHost::igd());
    let device = sysfs::device(&env.host.roots, Bdf::IGD).unwrap();
    bind::bind(&env.host.roots, &device, env.cache.path(), None).unwrap();
    env.host.set_driver("0000:00:02.0", Some("vfio-pci"));
    env.kcycle(&["passthrough", "status"])
        .assert()
        .stdout(predicate::str::contains("gives it back to i915"));
    env.kcycle(&["passthrough", "unbind", "00:02.0"])
        .assert()
        .success();
    assert_eq!(
        env.host.read("bus/pci/drivers/vfio-pci/unbind"),
        "0000:00:02.0"
    );
    assert_eq!(env.host.read("bus/pci/drivers/i915/bind"), "0000:00:02.0");
    assert!(bind::load(env.cache.path(), Bdf::IGD).unwrap().is_none());
}

#[test]
fn the_next_start_restores_what_a_crashed_run_left_bound() {
    let env = Env::new(FakeHost::igd());
    let device = sysfs::device(&env.host.roots, Bdf::IGD).unwrap();
    // An owner that cannot be alive: pid 0 has no /proc entry.
    let gone = Owner {
        pid: 0,
        start_time: 1,
    };
    bind::bind(&env.host.roots, &device, env.cache.path(), Some(gone)).unwrap();
    env.host.set_driver("0000:00:02.0", Some("vfio-pci"));
    env.kcycle(&["dmesg", "-"])
        .write_stdin("")
        .assert()
        .stderr(predicate::str::contains(
            "gave 0000:00:02.0 back to its driver",
        ));
    assert_eq!(env.host.read("bus/pci/drivers/i915/bind"), "0000:00:02.0");
    assert!(bind::load(env.cache.path(), Bdf::IGD).unwrap().is_none());
}

#[test]
fn run_with_passthrough_fails_before_boot_on_a_host_without_the_gpu() {
    let env = Env::new(FakeHost::empty());
    for args in [
        &[
            "run",
            "--passthrough",
            "auto",
            "--kernel",
            "/nonexistent",
            "suites/smoke.toml",
        ][..],
        &["run", "--kernel", "/nonexistent", "suites/passthrough.toml"][..],
    ] {
        env.kcycle(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "passthrough auto: no Intel display-class device",
            ));
    }
    env.kcycle(&[
        "run",
        "--passthrough",
        "0000:03:00.0",
        "--jobs",
        "2",
        "suites/smoke.toml",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("--jobs 1"));
}
