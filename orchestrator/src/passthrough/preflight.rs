//! Everything passthrough needs before QEMU starts, read from the host into
//! [`Facts`] (the one shell here) and judged by pure checks, each failure a
//! [`PreflightError`] that names the fix.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::bdf::{Bdf, BdfError};
use super::sysfs::{self, Framebuffer, PciDevice, Roots};

pub const VFIO_PCI: &str = "vfio-pci";
/// Drivers a device may share an IOMMU group under (besides none and bridges).
const GROUP_SAFE_DRIVERS: &[&str] = &[VFIO_PCI, "pci-stub"];
/// QEMU pins all guest RAM for VFIO, plus ROMs and mappings.
pub const MEMLOCK_HEADROOM_MIB: u64 = 256;

/// `auto` or a PCI address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    Auto,
    Bdf(Bdf),
}

impl FromStr for Selector {
    type Err = BdfError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Selector::Auto),
            _ => text.parse().map(Selector::Bdf),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Auto => f.write_str("auto"),
            Selector::Bdf(bdf) => bdf.fmt(f),
        }
    }
}

/// Whether this user can open a device node for reading and writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Yes,
    Missing,
    Denied,
}

impl Access {
    pub fn of(path: &Path) -> Access {
        use std::os::unix::ffi::OsStrExt;
        if !path.exists() {
            return Access::Missing;
        }
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return Access::Denied;
        };
        // access(2), not open(2): opening a VFIO group claims it.
        // SAFETY: c_path is a valid NUL-terminated string for the call's duration.
        let ok = unsafe { libc::access(c_path.as_ptr(), libc::R_OK | libc::W_OK) } == 0;
        if ok {
            Access::Yes
        } else {
            Access::Denied
        }
    }
}

/// What the host looks like, for one selected device.
#[derive(Debug, Clone)]
pub struct Facts {
    pub selector: Selector,
    pub iommu_on: bool,
    /// Every Intel display-class device.
    pub candidates: Vec<PciDevice>,
    /// The device at the given address (Intel or not), None for `auto`.
    pub named: Option<PciDevice>,
    /// The chosen device's IOMMU group members (itself included).
    pub group: Vec<PciDevice>,
    pub vfio_pci: bool,
    /// `/dev/vfio/vfio`.
    pub container: (PathBuf, Access),
    /// `/dev/vfio/<group>` of the chosen device.
    pub group_node: Option<(PathBuf, Access)>,
    /// RLIMIT_MEMLOCK in bytes; None when unlimited (or the user has CAP_IPC_LOCK).
    pub memlock: Option<u64>,
    pub guest_mib: u32,
    pub framebuffers: Vec<Framebuffer>,
    /// The bound framebuffer console's vtconsole directory.
    pub fbcon: Option<PathBuf>,
}

impl Facts {
    /// Read the host under `roots` for `selector`.
    pub fn read(roots: &Roots, selector: Selector, memlock: Option<u64>, guest_mib: u32) -> Facts {
        let candidates: Vec<PciDevice> = sysfs::devices(roots)
            .into_iter()
            .filter(PciDevice::is_intel_display)
            .collect();
        let named = match selector {
            Selector::Auto => None,
            Selector::Bdf(bdf) => sysfs::device(roots, bdf),
        };
        let chosen = match selector {
            Selector::Auto => candidates.first().cloned(),
            Selector::Bdf(_) => named.clone(),
        };
        let group = chosen.as_ref().and_then(|d| d.iommu_group.clone());
        let container = roots.dev.join("vfio/vfio");
        Facts {
            selector,
            iommu_on: sysfs::iommu_on(roots),
            group: group
                .as_deref()
                .map(|g| sysfs::group_members(roots, g))
                .unwrap_or_default(),
            group_node: group.map(|g| {
                let path = roots.vfio_group_node(&g);
                let access = Access::of(&path);
                (path, access)
            }),
            candidates,
            named,
            vfio_pci: sysfs::driver_registered(roots, VFIO_PCI),
            container: (container.clone(), Access::of(&container)),
            memlock,
            guest_mib,
            framebuffers: sysfs::framebuffers(roots),
            fbcon: sysfs::fbcon_bound(roots),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error("the IOMMU is off (/sys/kernel/iommu_groups is empty): enable VT-d in the firmware setup and boot the host with the kernel parameters `intel_iommu=on iommu=pt` (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)")]
    IommuOff,
    #[error("no Intel display-class device (vendor 0x8086, class 0x03xxxx) on this host: passthrough needs a host with an Intel GPU (`lspci -D -d 8086::0300` lists them)")]
    NoIntelGpu,
    #[error("several Intel GPUs on this host ({list}): name one instead of auto, e.g. --passthrough {first}")]
    Ambiguous { list: String, first: Bdf },
    #[error("no PCI device {bdf} on this host{candidates}; list them with `lspci -D`")]
    NoSuchDevice { bdf: Bdf, candidates: String },
    #[error("{bdf} is not an Intel display controller ({what}): kcycle passes through Intel GPUs only (vendor 0x8086, class 0x03xxxx)")]
    NotIntelDisplay { bdf: Bdf, what: String },
    #[error("{bdf} is in no IOMMU group, so the IOMMU does not cover it: check that VT-d is on in the firmware setup and `intel_iommu=on iommu=pt` on the host's kernel command line")]
    NoGroup { bdf: Bdf },
    #[error("IOMMU group {group} of {bdf} also holds {others}, used by host drivers; VFIO takes whole groups: move those to vfio-pci as well (`echo vfio-pci > /sys/bus/pci/devices/<BDF>/driver_override`, unbind, `echo <BDF> > /sys/bus/pci/drivers_probe`) or put the card in a slot with its own group")]
    GroupShared {
        bdf: Bdf,
        group: String,
        others: String,
    },
    #[error("the vfio-pci driver is not loaded (no /sys/bus/pci/drivers/vfio-pci): run `sudo modprobe vfio-pci` (the host kernel needs CONFIG_VFIO_PCI)")]
    VfioPciMissing,
    #[error("{} does not exist: {fix}", path.display())]
    NodeMissing { path: PathBuf, fix: String },
    #[error("{} is not readable and writable by this user: give it to the user running kcycle, e.g. a udev rule `SUBSYSTEM==\"vfio\", GROUP=\"kvm\", MODE=\"0660\"` with the user in group kvm, or `sudo chown $USER {}`", path.display(), path.display())]
    NodeDenied { path: PathBuf },
    #[error("the locked-memory limit (RLIMIT_MEMLOCK) is {limit_kib} KiB, but VFIO pins all guest RAM: {guest_mib} MiB + {MEMLOCK_HEADROOM_MIB} MiB = {need_kib} KiB; raise it with `ulimit -l {need_kib}` (or unlimited), `memlock` in /etc/security/limits.conf, LimitMEMLOCK=infinity for a systemd service such as a runner, or run as root")]
    Memlock {
        limit_kib: u64,
        need_kib: u64,
        guest_mib: u32,
    },
    #[error("{bdf} carries the firmware framebuffer {} ({name}), which keeps the GPU's memory in use on the host: boot the host with `video=efifb:off,vesafb:off` (with simpledrm also `initcall_blacklist=sysfb_init`) and reach it over SSH or a serial console", fb.display())]
    FirmwareFramebuffer { bdf: Bdf, fb: PathBuf, name: String },
    #[error("the host's text console draws on {bdf} ({} with the framebuffer console bound at {}); taking the GPU from {driver} under it can hang the host: release it first with `echo 0 | sudo tee {}/bind` and use SSH or a serial console", fb.display(), vtcon.display(), vtcon.display())]
    ConsoleOnDevice {
        bdf: Bdf,
        driver: String,
        fb: PathBuf,
        vtcon: PathBuf,
    },
}

/// The outcome of one check: what was seen, or why it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub result: Result<String, PreflightError>,
}

/// A device that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub device: PciDevice,
    pub group: String,
}

fn list(devices: &[PciDevice]) -> String {
    devices
        .iter()
        .map(|d| format!("{} {}", d.bdf, d.describe()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The device the selector names, if it is an Intel GPU.
pub fn choose(facts: &Facts) -> Result<PciDevice, PreflightError> {
    match (facts.selector, &facts.named) {
        (Selector::Auto, _) => match facts.candidates.as_slice() {
            [] => Err(PreflightError::NoIntelGpu),
            [one] => Ok(one.clone()),
            [first, ..] => Err(PreflightError::Ambiguous {
                list: list(&facts.candidates),
                first: first.bdf,
            }),
        },
        (Selector::Bdf(bdf), None) => Err(PreflightError::NoSuchDevice {
            bdf,
            candidates: match facts.candidates.as_slice() {
                [] => String::new(),
                c => format!(" (Intel GPUs here: {})", list(c)),
            },
        }),
        (Selector::Bdf(bdf), Some(d)) if !d.is_intel_display() => {
            Err(PreflightError::NotIntelDisplay {
                bdf,
                what: d.describe(),
            })
        }
        (_, Some(d)) => Ok(d.clone()),
    }
}

fn check_group(device: &PciDevice, members: &[PciDevice]) -> Result<String, PreflightError> {
    let group = device
        .iommu_group
        .clone()
        .ok_or(PreflightError::NoGroup { bdf: device.bdf })?;
    let in_use: Vec<PciDevice> = members
        .iter()
        .filter(|m| m.bdf != device.bdf && !m.is_bridge())
        .filter(|m| {
            m.driver
                .as_deref()
                .is_some_and(|d| !GROUP_SAFE_DRIVERS.contains(&d))
        })
        .cloned()
        .collect();
    if !in_use.is_empty() {
        return Err(PreflightError::GroupShared {
            bdf: device.bdf,
            group,
            others: list(&in_use),
        });
    }
    Ok(format!(
        "group {group}, {} device(s), none in host use",
        members.len()
    ))
}

fn check_nodes(facts: &Facts, device: &PciDevice) -> Result<String, PreflightError> {
    let judge = |(path, access): &(PathBuf, Access), fix: &str| match access {
        Access::Yes => Ok(()),
        Access::Missing => Err(PreflightError::NodeMissing {
            path: path.clone(),
            fix: fix.to_string(),
        }),
        Access::Denied => Err(PreflightError::NodeDenied { path: path.clone() }),
    };
    judge(&facts.container, "load VFIO with `sudo modprobe vfio-pci`")?;
    let bound = device.driver.as_deref() == Some(VFIO_PCI);
    match &facts.group_node {
        Some(node) if bound => {
            judge(
                node,
                "the kernel makes it when the group's devices are on vfio-pci",
            )?;
            Ok(format!("{} usable", node.0.display()))
        }
        _ => Ok(format!(
            "{} usable; /dev/vfio/<group> appears once the device is on vfio-pci",
            facts.container.0.display()
        )),
    }
}

fn check_memlock(facts: &Facts) -> Result<String, PreflightError> {
    let need = (u64::from(facts.guest_mib) + MEMLOCK_HEADROOM_MIB) << 20;
    match facts.memlock {
        None => Ok("unlimited".into()),
        Some(limit) if limit >= need => Ok(format!("{} KiB", limit >> 10)),
        Some(limit) => Err(PreflightError::Memlock {
            limit_kib: limit >> 10,
            need_kib: need >> 10,
            guest_mib: facts.guest_mib,
        }),
    }
}

fn check_console(facts: &Facts, device: &PciDevice) -> Result<String, PreflightError> {
    if device.driver.as_deref() == Some(VFIO_PCI) {
        return Ok("on vfio-pci: no host console".into());
    }
    if device.boot_vga {
        if let Some(fb) = facts.framebuffers.iter().find(|fb| fb.is_firmware()) {
            return Err(PreflightError::FirmwareFramebuffer {
                bdf: device.bdf,
                fb: fb.path.clone(),
                name: fb.name.clone(),
            });
        }
    }
    let on_device = facts
        .framebuffers
        .iter()
        .find(|fb| fb.device == Some(device.bdf));
    if let (Some(fb), Some(vtcon), Some(driver)) = (on_device, &facts.fbcon, &device.driver) {
        return Err(PreflightError::ConsoleOnDevice {
            bdf: device.bdf,
            driver: driver.clone(),
            fb: fb.path.clone(),
            vtcon: vtcon.clone(),
        });
    }
    Ok(match on_device {
        Some(fb) => format!(
            "{} ({}) but no framebuffer console",
            fb.path.display(),
            fb.name
        ),
        None => "no framebuffer console".into(),
    })
}

/// Every check, in order; those that need the device are left out when there is none.
pub fn checks(facts: &Facts) -> Vec<Check> {
    // The device first: on a host without one, that is the whole story.
    let device = choose(facts);
    let mut out = vec![Check {
        name: "device",
        result: device
            .as_ref()
            .map(|d| format!("{} {}", d.bdf, d.describe()))
            .map_err(Clone::clone),
    }];
    out.push(Check {
        name: "iommu",
        result: if facts.iommu_on {
            Ok("on".into())
        } else {
            Err(PreflightError::IommuOff)
        },
    });
    out.push(Check {
        name: "vfio-pci",
        result: if facts.vfio_pci {
            Ok("loaded".into())
        } else {
            Err(PreflightError::VfioPciMissing)
        },
    });
    out.push(Check {
        name: "memlock",
        result: check_memlock(facts),
    });
    if let Ok(device) = &device {
        out.push(Check {
            name: "iommu group",
            result: check_group(device, &facts.group),
        });
        out.push(Check {
            name: "/dev/vfio",
            result: check_nodes(facts, device),
        });
        out.push(Check {
            name: "host console",
            result: check_console(facts, device),
        });
    }
    out
}

/// The device, when every check passes; else the first failure.
pub fn preflight(facts: &Facts) -> Result<Ready, PreflightError> {
    if let Some(err) = checks(facts).into_iter().find_map(|c| c.result.err()) {
        return Err(err);
    }
    let device = choose(facts)?;
    let group = device.iommu_group.clone().unwrap_or_default();
    Ok(Ready { device, group })
}
