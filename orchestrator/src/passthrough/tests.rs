//! Preflight, bind, unbind and recovery on fake sysfs trees.

use std::path::Path;

use super::bind::{self, Owner};
use super::fake::{FakeDevice, FakeHost};
use super::preflight::{Access, MEMLOCK_HEADROOM_MIB};
use super::*;

const GIB: u64 = 1 << 30;

fn facts(host: &FakeHost, selector: &str) -> Facts {
    Facts::read(&host.roots, selector.parse().unwrap(), Some(4 * GIB), 2048)
}

fn failure(host: &FakeHost, selector: &str) -> PreflightError {
    preflight(&facts(host, selector)).unwrap_err()
}

/// The IGD host with its GPU already on vfio-pci and /dev/vfio/1 made.
fn bound_igd() -> FakeHost {
    let host = FakeHost::igd();
    host.set_driver("0000:00:02.0", Some("vfio-pci"));
    host.vfio_node("1");
    host
}

#[test]
fn a_ready_host_passes_for_auto_and_the_address() {
    let host = bound_igd();
    for selector in ["auto", "0000:00:02.0", "00:02.0"] {
        let ready = preflight(&facts(&host, selector)).unwrap();
        assert_eq!(ready.device.bdf, Bdf::IGD);
        assert_eq!((ready.group.as_str(), ready.device.device), ("1", 0x9a49));
        assert!(ready.device.is_integrated());
    }
    let names: Vec<&str> = checks(&facts(&host, "auto"))
        .iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        [
            "device",
            "iommu",
            "vfio-pci",
            "memlock",
            "iommu group",
            "/dev/vfio",
            "host console"
        ]
    );
}

#[test]
fn a_host_still_on_i915_passes_before_the_bind() {
    // No /dev/vfio/1 yet: the kernel makes it at bind time.
    let host = FakeHost::igd();
    let ready = preflight(&facts(&host, "auto")).unwrap();
    assert_eq!(ready.device.driver.as_deref(), Some("i915"));
}

#[test]
fn iommu_off_names_the_kernel_parameters() {
    let host = bound_igd();
    std::fs::remove_dir_all(host.roots.iommu_groups()).unwrap();
    let err = failure(&host, "auto");
    assert_eq!(err, PreflightError::IommuOff);
    assert!(err.to_string().contains("intel_iommu=on iommu=pt"), "{err}");
}

#[test]
fn auto_without_an_intel_gpu_fails_and_a_missing_address_lists_what_is_there() {
    let empty = FakeHost::empty();
    assert_eq!(failure(&empty, "auto"), PreflightError::NoIntelGpu);

    let host = bound_igd();
    let err = failure(&host, "0000:03:00.0");
    assert!(matches!(err, PreflightError::NoSuchDevice { .. }), "{err}");
    assert!(err.to_string().contains("0000:00:02.0 8086:9a49"), "{err}");
}

#[test]
fn a_device_that_is_not_intel_display_class_is_refused() {
    let host = bound_igd();
    host.add(FakeDevice {
        bdf: "0000:01:00.0",
        vendor: 0x10de,
        device: 0x2204,
        class: 0x030000,
        driver: Some("nouveau"),
        group: "2",
    });
    host.add(FakeDevice {
        bdf: "0000:00:14.0",
        vendor: 0x8086,
        device: 0xa0ed,
        class: 0x0c0330,
        driver: Some("xhci_hcd"),
        group: "3",
    });
    for (bdf, what) in [
        ("0000:01:00.0", "10de:2204"),
        ("0000:00:14.0", "class 0x0c0330"),
    ] {
        let err = failure(&host, bdf);
        assert!(
            matches!(err, PreflightError::NotIntelDisplay { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(what), "{err}");
    }
    // auto still finds the one Intel GPU among them.
    assert_eq!(
        preflight(&facts(&host, "auto")).unwrap().device.bdf,
        Bdf::IGD
    );
}

#[test]
fn auto_with_two_intel_gpus_asks_for_one() {
    let host = bound_igd();
    host.add_dgpu("0000:03:00.0");
    let err = failure(&host, "auto");
    assert!(
        matches!(
            err,
            PreflightError::Ambiguous {
                first: Bdf::IGD,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("0000:03:00.0"), "{err}");
}

#[test]
fn group_members_on_host_drivers_fail_but_bridges_and_unbound_ones_pass() {
    let host = bound_igd();
    let member = |bdf, class, driver| {
        host.add(FakeDevice {
            bdf,
            vendor: 0x8086,
            device: 0x1234,
            class,
            driver,
            group: "1",
        })
    };
    member("0000:00:01.0", 0x060400, Some("pcieport"));
    member("0000:00:02.1", 0x040300, None);
    preflight(&facts(&host, "auto")).unwrap();

    member("0000:00:1f.3", 0x040380, Some("snd_hda_intel"));
    let err = failure(&host, "auto");
    assert!(matches!(err, PreflightError::GroupShared { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("0000:00:1f.3") && text.contains("snd_hda_intel"),
        "{text}"
    );
    assert!(!text.contains("pcieport"), "{text}");
}

#[test]
fn a_device_outside_any_group_is_named() {
    let host = bound_igd();
    std::fs::remove_file(host.roots.device_dir(Bdf::IGD).join("iommu_group")).unwrap();
    assert_eq!(
        failure(&host, "auto"),
        PreflightError::NoGroup { bdf: Bdf::IGD }
    );
}

#[test]
fn vfio_pci_must_be_loaded() {
    let host = FakeHost::igd();
    std::fs::remove_dir_all(host.roots.driver_dir("vfio-pci")).unwrap();
    let err = failure(&host, "auto");
    assert_eq!(err, PreflightError::VfioPciMissing);
    assert!(err.to_string().contains("modprobe vfio-pci"), "{err}");
}

#[test]
fn dev_vfio_nodes_must_exist_and_be_usable() {
    let host = FakeHost::igd();
    host.set_driver("0000:00:02.0", Some("vfio-pci"));
    let err = failure(&host, "auto");
    match &err {
        PreflightError::NodeMissing { path, .. } => assert!(path.ends_with("dev/vfio/1"), "{err}"),
        other => panic!("{other}"),
    }

    let host = bound_igd();
    std::fs::remove_file(host.roots.dev.join("vfio/vfio")).unwrap();
    let err = failure(&host, "auto");
    assert!(
        err.to_string().contains("vfio/vfio does not exist"),
        "{err}"
    );

    // Permissions do not bind root, so judge a denied node from its facts.
    let mut denied = facts(&bound_igd(), "auto");
    let node = denied.group_node.clone().unwrap().0;
    denied.group_node = Some((node, Access::Denied));
    let err = preflight(&denied).unwrap_err();
    assert!(matches!(err, PreflightError::NodeDenied { .. }), "{err}");
    assert!(err.to_string().contains("udev rule"), "{err}");
}

#[test]
fn locked_memory_must_cover_guest_ram() {
    let host = bound_igd();
    let need = (2048 + MEMLOCK_HEADROOM_MIB) << 20;
    let with = |limit| preflight(&Facts::read(&host.roots, Selector::Auto, limit, 2048));
    with(None).unwrap();
    with(Some(need)).unwrap();
    let err = with(Some(64 << 10)).unwrap_err();
    assert_eq!(
        err,
        PreflightError::Memlock {
            limit_kib: 64,
            need_kib: need >> 10,
            guest_mib: 2048
        }
    );
    assert!(err.to_string().contains("ulimit -l"), "{err}");
}

#[test]
fn a_host_console_on_the_device_must_be_released_first() {
    let host = FakeHost::igd();
    host.framebuffer("fb0", "i915drmfb", "0000:00:02.0");
    host.fbcon(false);
    preflight(&facts(&host, "auto")).unwrap();
    host.fbcon(true);
    let err = failure(&host, "auto");
    assert!(
        matches!(err, PreflightError::ConsoleOnDevice { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("vtcon1/bind"), "{err}");
}

#[test]
fn a_firmware_framebuffer_on_the_boot_gpu_needs_video_off() {
    let host = FakeHost::igd();
    host.set_driver("0000:00:02.0", None);
    host.framebuffer("fb0", "EFI VGA", "0000:00:02.0");
    let err = failure(&host, "auto");
    assert!(
        matches!(err, PreflightError::FirmwareFramebuffer { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("video=efifb:off"), "{err}");
    // Once on vfio-pci nothing of the host draws on it.
    host.set_driver("0000:00:02.0", Some("vfio-pci"));
    host.vfio_node("1");
    preflight(&facts(&host, "auto")).unwrap();
}

fn device(host: &FakeHost) -> PciDevice {
    sysfs::device(&host.roots, Bdf::IGD).unwrap()
}

#[test]
fn bind_records_then_writes_override_unbind_probe() {
    let host = FakeHost::igd();
    let cache = tempfile::tempdir().unwrap();
    let after = bind::bind(&host.roots, &device(&host), cache.path(), None).unwrap();
    assert_eq!(
        host.read("bus/pci/devices/0000:00:02.0/driver_override"),
        "vfio-pci"
    );
    assert_eq!(host.read("bus/pci/drivers/i915/unbind"), "0000:00:02.0");
    assert_eq!(host.read("bus/pci/drivers_probe"), "0000:00:02.0");
    // The fake kernel did not move it, and the check says so.
    let err = bind::ensure_vfio(&after).unwrap_err();
    assert!(err.to_string().contains("on i915, not vfio-pci"), "{err}");
    let record = bind::load(cache.path(), Bdf::IGD).unwrap().unwrap();
    assert_eq!(record.driver.as_deref(), Some("i915"));
    assert_eq!((record.driver_override, record.owner), (None, None));
    assert_eq!(record.sysfs_root, host.roots.sys);
}

#[test]
fn unbind_gives_the_device_back_to_its_recorded_driver() {
    let host = FakeHost::igd();
    let cache = tempfile::tempdir().unwrap();
    bind::bind(&host.roots, &device(&host), cache.path(), None).unwrap();
    host.set_driver("0000:00:02.0", Some("vfio-pci"));
    bind::unbind(&host.roots, Bdf::IGD, cache.path()).unwrap();
    assert_eq!(
        host.read("bus/pci/devices/0000:00:02.0/driver_override"),
        "\n"
    );
    assert_eq!(host.read("bus/pci/drivers/vfio-pci/unbind"), "0000:00:02.0");
    assert_eq!(host.read("bus/pci/drivers/i915/bind"), "0000:00:02.0");
    assert!(bind::load(cache.path(), Bdf::IGD).unwrap().is_none());
}

#[test]
fn unbind_without_a_record_lets_the_kernel_pick_and_restores_no_driver_as_none() {
    let host = FakeHost::igd();
    host.set_driver("0000:00:02.0", Some("vfio-pci"));
    let cache = tempfile::tempdir().unwrap();
    bind::unbind(&host.roots, Bdf::IGD, cache.path()).unwrap();
    assert_eq!(host.read("bus/pci/drivers_probe"), "0000:00:02.0");
    assert_eq!(host.read("bus/pci/drivers/i915/bind"), "");

    // A device that had no driver gets none back (no probe, no bind).
    let host = FakeHost::igd();
    host.set_driver("0000:00:02.0", None);
    bind::bind(&host.roots, &device(&host), cache.path(), None).unwrap();
    std::fs::write(host.roots.drivers_probe(), "").unwrap();
    host.set_driver("0000:00:02.0", Some("vfio-pci"));
    bind::unbind(&host.roots, Bdf::IGD, cache.path()).unwrap();
    assert_eq!(host.read("bus/pci/drivers_probe"), "");
    assert_eq!(host.read("bus/pci/drivers/i915/bind"), "");
}

#[test]
fn a_device_on_vfio_pci_already_is_left_alone() {
    let host = bound_igd();
    let cache = tempfile::tempdir().unwrap();
    let held = Held::bind(&host.roots, &device(&host), cache.path()).unwrap();
    held.release().unwrap();
    assert_eq!(host.read("bus/pci/drivers_probe"), "");
    assert_eq!(host.read("bus/pci/drivers/vfio-pci/unbind"), "");
    assert!(!cache.path().join("passthrough").exists());
}

#[test]
fn a_failed_bind_is_undone_and_leaves_no_record() {
    let host = FakeHost::igd();
    // The i915 unbind attribute is gone: the second write fails.
    std::fs::remove_dir_all(host.roots.driver_dir("i915")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = bind::bind(&host.roots, &device(&host), cache.path(), None).unwrap_err();
    assert!(err.to_string().contains("drivers/i915/unbind"), "{err}");
    assert_eq!(
        host.read("bus/pci/devices/0000:00:02.0/driver_override"),
        "\n"
    );
    assert!(bind::load(cache.path(), Bdf::IGD).unwrap().is_none());
}

#[test]
fn a_held_device_is_restored_when_dropped() {
    let host = FakeHost::igd();
    let cache = tempfile::tempdir().unwrap();
    // The bind "does not take" in the fake tree, so Held::bind fails and restores at once.
    let err = Held::bind(&host.roots, &device(&host), cache.path())
        .err()
        .unwrap();
    assert!(matches!(err, BindError::NotBound { .. }), "{err}");
    assert_eq!(host.read("bus/pci/drivers/i915/bind"), "0000:00:02.0");
    assert!(bind::load(cache.path(), Bdf::IGD).unwrap().is_none());
}

fn fake_proc(dir: &Path, pid: u32, start: u64) {
    let stat = format!(
        "{pid} (kcycle run (x)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 {start} 0 0\n"
    );
    std::fs::create_dir_all(dir.join(pid.to_string())).unwrap();
    std::fs::write(dir.join(pid.to_string()).join("stat"), stat).unwrap();
}

#[test]
fn recover_restores_bindings_of_runs_that_are_gone_only() {
    let host = FakeHost::igd();
    let cache = tempfile::tempdir().unwrap();
    let proc_root = tempfile::tempdir().unwrap();
    fake_proc(proc_root.path(), 4242, 777);
    let live = Owner {
        pid: 4242,
        start_time: 777,
    };
    assert!(live.alive(proc_root.path()));
    bind::bind(&host.roots, &device(&host), cache.path(), Some(live)).unwrap();
    host.set_driver("0000:00:02.0", Some("vfio-pci"));
    assert!(bind::recover(cache.path(), proc_root.path()).is_empty());

    // The same pid, reused by another process: the run is gone.
    fake_proc(proc_root.path(), 4242, 999);
    let restored = bind::recover(cache.path(), proc_root.path());
    assert_eq!(restored.len(), 1);
    assert!(restored[0].1.is_ok(), "{:?}", restored[0].1);
    assert_eq!(host.read("bus/pci/drivers/i915/bind"), "0000:00:02.0");
    assert!(bind::load(cache.path(), Bdf::IGD).unwrap().is_none());
}

#[test]
fn recover_leaves_explicit_binds_alone() {
    let host = FakeHost::igd();
    let cache = tempfile::tempdir().unwrap();
    bind::bind(&host.roots, &device(&host), cache.path(), None).unwrap();
    assert!(bind::recover(cache.path(), Path::new("/nonexistent")).is_empty());
    assert!(bind::load(cache.path(), Bdf::IGD).unwrap().is_some());
}

#[test]
fn owner_reads_this_process() {
    let me = Owner::current().unwrap();
    assert_eq!(me.pid, std::process::id());
    assert!(me.alive(Path::new("/proc")));
}

#[test]
fn integrated_gets_igd_arguments_and_discrete_plain_vfio() {
    use crate::vm::argv::{IgdMode, Vfio};
    let host = FakeHost::igd();
    assert_eq!(
        vfio_for(&device(&host)),
        Vfio::Igd {
            host: "0000:00:02.0".into(),
            mode: IgdMode::Universal
        }
    );
    host.add_dgpu("0000:03:00.0");
    let dgpu = sysfs::device(&host.roots, "0000:03:00.0".parse().unwrap()).unwrap();
    assert_eq!(
        vfio_for(&dgpu),
        Vfio::Discrete {
            host: "0000:03:00.0".into()
        }
    );
}
