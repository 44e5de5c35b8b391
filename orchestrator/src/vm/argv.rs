//! The QEMU command line, built by a pure function from a [`QemuConfig`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The CPU accelerator a guest runs under (after `auto` was resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chipset {
    /// PCIe machine: what passthrough of a modern GPU wants.
    Q35,
    /// The older i440FX machine.
    Pc,
}

/// Everything that decides the QEMU command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// The QEMU binary, normally `qemu-system-x86_64` from PATH.
    pub qemu: PathBuf,
    pub accel: Accel,
    pub machine: Chipset,
    /// Guest memory; 2 GiB by default because i915 mock selftests allocate.
    pub memory_mib: u32,
    pub cpus: u32,
    /// The bzImage.
    pub kernel: PathBuf,
    /// The initramfs (image plus the per-run keys archive).
    pub initrd: PathBuf,
    /// Extra kernel parameters (the suite's), after the fixed ones.
    pub cmdline: Vec<String>,
    /// QMP unix socket; its path must stay under [`SUN_PATH_MAX`] bytes.
    pub qmp_socket: PathBuf,
    /// Host port forwarded (127.0.0.1 only) to the guest's sshd.
    pub ssh_port: u16,
    /// A GPU to pass through with vfio-pci.
    pub vfio: Option<Vfio>,
    /// Give the guest the stand-in PCI device ([`STANDIN`]).
    pub standin: bool,
    /// Start paused, waiting for a saved state (`-incoming defer`, [`super::state::load`]).
    pub incoming: bool,
    /// `-bios`: qboot when this QEMU has it ([`super::fast_firmware`]); `None`
    /// keeps QEMU's SeaBIOS. A passed-through GPU always gets SeaBIOS, which
    /// runs option ROMs (IGD's VBIOS) that qboot does not.
    pub firmware: Option<PathBuf>,
}

/// A device the runner can unplug and plug back by its QEMU id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pluggable {
    pub id: &'static str,
    /// QEMU's device model.
    pub driver: &'static str,
    /// The hotplug-capable PCIe root port it sits behind.
    pub bus: &'static str,
}

/// The stand-in for a GPU in emulated guests: QEMU's `edu` (1234:11e8, a BAR, MSI),
/// behind its own PCIe root port so it can be hot-unplugged (rust_i915_table `standin=1`
/// drives it).
pub const STANDIN: Pluggable = Pluggable {
    id: "standin",
    driver: "edu",
    bus: "standin-port",
};

/// The root port the stand-in sits behind; its chassis/slot stay clear of the GPU's.
const STANDIN_PORT: &str = "pcie-root-port,id=standin-port,bus=pcie.0,chassis=11,slot=11";

/// A host GPU in the guest, as QEMU's docs/igd-assign.txt describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vfio {
    /// A discrete card (`0000:03:00.0`): plain vfio-pci, behind its own
    /// PCIe root port on q35.
    Discrete { host: String },
    /// Integrated graphics: at guest 00:02.0 on the root bus with the
    /// host's OpRegion (its VBT says which outputs exist).
    Igd { host: String, mode: IgdMode },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgdMode {
    /// Any machine: no VGA ranges, no VBIOS; i915 in the guest needs only
    /// the OpRegion (`x-igd-opregion=on`).
    Universal,
    /// QEMU enables it on i440fx with the IGD at 00:02.0 and a ROM: it also
    /// maps the VGA ranges and copies the LPC bridge IDs, for a guest VBIOS.
    /// The IGD must be the host's primary display in the firmware setup.
    Legacy,
}

/// The root port a discrete card sits behind; its chassis/slot stay clear of others'.
const GPU_PORT: &str = "pcie-root-port,id=gpu-port,bus=pcie.0,chassis=10,slot=10";

/// sun_path is 108 bytes including the terminating NUL.
pub const SUN_PATH_MAX: usize = 107;

/// Kernel parameters every guest gets: serial console, reboot on panic
/// (which `-no-reboot` turns into QEMU exiting), and no check that the timer
/// interrupt arrives within a few jiffies of boot: a loaded TCG host misses
/// that window and the kernel panics "IO-APIC + timer doesn't work!"
/// (KVM guests skip the check on their own).
pub const BASE_CMDLINE: &[&str] = &["console=ttyS0", "panic=-1", "no_timer_check"];

impl QemuConfig {
    /// Defaults for everything but the files and the port.
    pub fn new(kernel: PathBuf, initrd: PathBuf, qmp_socket: PathBuf, ssh_port: u16) -> Self {
        QemuConfig {
            qemu: PathBuf::from("qemu-system-x86_64"),
            accel: Accel::Tcg,
            machine: Chipset::Q35,
            memory_mib: 2048,
            cpus: 2,
            kernel,
            initrd,
            cmdline: Vec::new(),
            qmp_socket,
            ssh_port,
            vfio: None,
            standin: true,
            incoming: false,
            firmware: None,
        }
    }

    /// The device with QEMU id `id` that can be unplugged and plugged back, if this guest has it.
    pub fn pluggable(&self, id: &str) -> Option<Pluggable> {
        (self.standin && self.machine == Chipset::Q35 && id == STANDIN.id).then_some(STANDIN)
    }

    /// The full kernel command line.
    pub fn kernel_cmdline(&self) -> String {
        BASE_CMDLINE
            .iter()
            .copied()
            .chain(self.cmdline.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The stand-in PCI device's arguments on `chipset`.
fn standin_args(chipset: Chipset) -> Vec<String> {
    let edu = format!("{},id={}", STANDIN.driver, STANDIN.id);
    match chipset {
        // QEMU 6.1+ hands q35's root-port hotplug to ACPI, which a guest without
        // HOTPLUG_PCI_ACPI ignores: keep it native (pciehp), as on real PCIe hardware.
        Chipset::Q35 => vec![
            "-global".into(),
            "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off".into(),
            "-device".into(),
            STANDIN_PORT.into(),
            "-device".into(),
            format!("{edu},bus={}", STANDIN.bus),
        ],
        // i440fx has no PCIe ports: the device is there but cannot be hot-unplugged.
        Chipset::Pc => vec!["-device".into(), edu],
    }
}

/// True when `path` fits in a unix socket address.
pub fn socket_path_fits(path: &Path) -> bool {
    path.as_os_str().len() <= SUN_PATH_MAX
}

/// The QEMU argv (program first). The serial console goes to QEMU's stdout,
/// which the console thread copies to the console log and scans.
pub fn argv(config: &QemuConfig) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&str]| args.extend(parts.iter().map(OsString::from));
    // Legacy IGD mode exists only on i440fx.
    let legacy = matches!(
        &config.vfio,
        Some(Vfio::Igd {
            mode: IgdMode::Legacy,
            ..
        })
    );
    let chipset = if legacy { Chipset::Pc } else { config.machine };
    let machine = match chipset {
        Chipset::Q35 => "q35",
        Chipset::Pc => "pc",
    };
    let cpu = match config.accel {
        Accel::Kvm => "host",
        Accel::Tcg => "max",
    };
    push(&["-name", "kcycle", "-nodefaults", "-no-user-config"]);
    push(&["-machine", machine]);
    match config.accel {
        Accel::Kvm => push(&["-accel", "kvm"]),
        // Multi-threaded TCG (QEMU 7.2) loses the race with the kernel's live code
        // patching: another vCPU runs the int3 that text_poke_bp leaves for a moment
        // and oopses "int3" in sched_clock_cpu at "sched_clock: Marking stable"
        // (1 boot in 120 with three guests on two cores). Any static key flip
        // mid-test could do the same. One thread for all vCPUs has no such race.
        Accel::Tcg => push(&["-accel", "tcg,thread=single"]),
    }
    push(&["-cpu", cpu, "-smp", &config.cpus.to_string()]);
    push(&["-m", &format!("{}M", config.memory_mib)]);
    push(&["-display", "none", "-vga", "none", "-monitor", "none"]);
    push(&["-no-reboot"]);
    push(&["-chardev", "stdio,id=console,signal=off"]);
    push(&["-serial", "chardev:console"]);
    // Before the NIC: on i440fx the NIC would take the free slot 2 that the IGD needs.
    if let Some(vfio) = &config.vfio {
        for device in vfio_devices(vfio, chipset) {
            push(&["-device", &device]);
        }
    }
    push(&[
        "-netdev",
        &format!("user,id=net0,hostfwd=tcp:127.0.0.1:{}-:22", config.ssh_port),
        "-device",
        "virtio-net-pci,netdev=net0",
    ]);
    if config.standin {
        push(
            &standin_args(chipset)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
    }
    push(&["-append", &config.kernel_cmdline()]);
    if config.incoming {
        push(&["-incoming", "defer"]);
    }

    let mut qmp = OsString::from("unix:");
    qmp.push(&config.qmp_socket);
    qmp.push(",server=on,wait=off");
    let mut full = vec![config.qemu.clone().into_os_string()];
    full.extend(args);
    if let (Some(firmware), None) = (&config.firmware, &config.vfio) {
        full.extend(["-bios".into(), firmware.clone().into_os_string()]);
    }
    full.extend([
        "-kernel".into(),
        config.kernel.clone().into_os_string(),
        "-initrd".into(),
        config.initrd.clone().into_os_string(),
        "-qmp".into(),
        qmp,
    ]);
    full
}

/// The `-device` values for a passed-through GPU on `chipset`.
fn vfio_devices(vfio: &Vfio, chipset: Chipset) -> Vec<String> {
    let root_bus = match chipset {
        Chipset::Q35 => "pcie.0",
        Chipset::Pc => "pci.0",
    };
    match vfio {
        Vfio::Discrete { host } if chipset == Chipset::Q35 => vec![
            GPU_PORT.to_string(),
            format!("vfio-pci,host={host},id=gpu,bus=gpu-port"),
        ],
        Vfio::Discrete { host } => vec![format!("vfio-pci,host={host},id=gpu")],
        // The same options for both modes; on i440fx with a ROM QEMU turns legacy on itself.
        Vfio::Igd { host, .. } => vec![format!(
            "vfio-pci,host={host},id=gpu,bus={root_bus},addr=02.0,x-igd-opregion=on"
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With qboot found: the snapshots with a GPU show it is not used then.
    fn config() -> QemuConfig {
        QemuConfig {
            firmware: Some("/usr/share/qemu/qboot.rom".into()),
            ..QemuConfig::new(
                "/cache/kernel/bzImage".into(),
                "/tmp/kcycle-run/initrd".into(),
                "/tmp/kcycle-run/qmp.sock".into(),
                40022,
            )
        }
    }

    fn render(config: &QemuConfig) -> String {
        argv(config)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn default_tcg_argv() {
        insta::assert_snapshot!(render(&config()));
    }

    #[test]
    fn kvm_pc_with_suite_cmdline_and_vfio() {
        let config = QemuConfig {
            accel: Accel::Kvm,
            machine: Chipset::Pc,
            memory_mib: 4096,
            cpus: 4,
            cmdline: vec!["slub_debug=U".into(), "kmemleak=on".into()],
            vfio: Some(Vfio::Discrete {
                host: "0000:03:00.0".into(),
            }),
            ..config()
        };
        insta::assert_snapshot!(render(&config));
    }

    fn gpu_argv(vfio: Vfio) -> String {
        let config = QemuConfig {
            accel: Accel::Kvm,
            vfio: Some(vfio),
            ..config()
        };
        render(&config)
    }

    #[test]
    fn igd_universal_at_02_0_on_the_q35_root_bus_with_opregion() {
        insta::assert_snapshot!(gpu_argv(Vfio::Igd {
            host: "0000:00:02.0".into(),
            mode: IgdMode::Universal,
        }));
    }

    #[test]
    fn igd_legacy_turns_the_machine_into_i440fx() {
        let text = gpu_argv(Vfio::Igd {
            host: "0000:00:02.0".into(),
            mode: IgdMode::Legacy,
        });
        assert!(text.contains("-machine\npc\n-accel\nkvm"), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn discrete_gpu_behind_its_own_root_port_on_q35() {
        insta::assert_snapshot!(gpu_argv(Vfio::Discrete {
            host: "0000:03:00.0".into(),
        }));
    }

    #[test]
    fn an_incoming_guest_waits_for_its_state() {
        let incoming = QemuConfig {
            incoming: true,
            ..config()
        };
        assert!(render(&incoming).contains("-incoming\ndefer"));
        assert!(!render(&config()).contains("-incoming"));
    }

    #[test]
    fn socket_path_limit_is_sun_path() {
        assert!(socket_path_fits(Path::new("/tmp/kcycle-run/qmp.sock")));
        let long = format!("/{}", "x".repeat(107));
        assert!(!socket_path_fits(Path::new(&long)));
        assert!(socket_path_fits(Path::new(&long[..107])));
    }
}
