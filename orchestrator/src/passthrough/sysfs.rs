//! Reading the host's PCI devices, IOMMU groups and consoles from a sysfs
//! root given as a path: `/sys` on a host, a temporary tree in tests.

use std::path::{Path, PathBuf};

use super::bdf::Bdf;

pub const INTEL: u16 = 0x8086;
/// PCI base class 0x03: display controller (VGA 0x0300, 3D 0x0302, other 0x0380).
const DISPLAY_CLASS: u32 = 0x03;
/// PCI-to-PCI bridge (root ports, switches): harmless in an IOMMU group.
const BRIDGE_CLASS: u32 = 0x0604;

/// The two trees passthrough reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// `/sys`.
    pub sys: PathBuf,
    /// `/dev` (for `/dev/vfio/<group>`).
    pub dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sys: PathBuf::from("/sys"),
            dev: PathBuf::from("/dev"),
        }
    }
}

impl Roots {
    /// `KCYCLE_SYSFS_ROOT` and `KCYCLE_DEV_ROOT` over `/sys` and `/dev` (for tests on fake trees).
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let default = Roots::default();
        Roots {
            sys: var("KCYCLE_SYSFS_ROOT").unwrap_or(default.sys),
            dev: var("KCYCLE_DEV_ROOT").unwrap_or(default.dev),
        }
    }

    pub fn device_dir(&self, bdf: Bdf) -> PathBuf {
        self.sys.join("bus/pci/devices").join(bdf.to_string())
    }

    pub fn driver_dir(&self, driver: &str) -> PathBuf {
        self.sys.join("bus/pci/drivers").join(driver)
    }

    pub fn drivers_probe(&self) -> PathBuf {
        self.sys.join("bus/pci/drivers_probe")
    }

    pub fn iommu_groups(&self) -> PathBuf {
        self.sys.join("kernel/iommu_groups")
    }

    pub fn vfio_group_node(&self, group: &str) -> PathBuf {
        self.dev.join("vfio").join(group)
    }
}

/// One PCI function as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    /// 24 bits: base class, subclass, programming interface.
    pub class: u32,
    /// The bound driver (`i915`, `vfio-pci`), if any.
    pub driver: Option<String>,
    pub iommu_group: Option<String>,
    /// `boot_vga` is 1: the firmware's console came up on this device.
    pub boot_vga: bool,
    /// `driver_override`, None when it reads `(null)`.
    pub driver_override: Option<String>,
}

impl PciDevice {
    pub fn is_intel_display(&self) -> bool {
        self.vendor == INTEL && self.class >> 16 == DISPLAY_CLASS
    }

    pub fn is_bridge(&self) -> bool {
        self.class >> 8 == BRIDGE_CLASS
    }

    /// Integrated graphics: Intel display class at 00:02.0 (discrete cards sit behind a port).
    pub fn is_integrated(&self) -> bool {
        self.is_intel_display() && self.bdf == Bdf::IGD
    }

    /// `8086:9a49 class 0x030000 driver i915`.
    pub fn describe(&self) -> String {
        let driver = self.driver.as_deref().unwrap_or("none");
        format!(
            "{:04x}:{:04x} class 0x{:06x}, driver {driver}",
            self.vendor, self.device, self.class
        )
    }
}

/// A framebuffer (`/sys/class/graphics/fbN`): its name and the PCI device it draws on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framebuffer {
    pub path: PathBuf,
    /// `EFI VGA`, `VESA VGA`, `simple`, `i915drmfb`, ...
    pub name: String,
    pub device: Option<Bdf>,
}

impl Framebuffer {
    /// A firmware framebuffer: it holds the boot GPU's memory without any PCI driver.
    pub fn is_firmware(&self) -> bool {
        matches!(
            self.name.as_str(),
            "EFI VGA" | "VESA VGA" | "simple" | "simpledrmfb"
        )
    }
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_hex(path: &Path) -> Option<u32> {
    let text = read_trim(path)?;
    u32::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

/// The last component of a symlink's target (`driver -> ../../bus/pci/drivers/i915`).
fn link_name(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Names in a directory, sorted; empty when it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The device at `bdf`, or None when sysfs has no such device.
pub fn device(roots: &Roots, bdf: Bdf) -> Option<PciDevice> {
    let dir = roots.device_dir(bdf);
    let vendor = read_hex(&dir.join("vendor"))?;
    let driver_override =
        read_trim(&dir.join("driver_override")).filter(|s| s != "(null)" && !s.is_empty());
    Some(PciDevice {
        bdf,
        vendor: vendor as u16,
        device: read_hex(&dir.join("device")).unwrap_or(0) as u16,
        class: read_hex(&dir.join("class")).unwrap_or(0),
        driver: link_name(&dir.join("driver")),
        iommu_group: link_name(&dir.join("iommu_group")),
        boot_vga: read_trim(&dir.join("boot_vga")).as_deref() == Some("1"),
        driver_override,
    })
}

/// Every PCI device, by address.
pub fn devices(roots: &Roots) -> Vec<PciDevice> {
    entries(&roots.sys.join("bus/pci/devices"))
        .iter()
        .filter_map(|name| name.parse().ok())
        .filter_map(|bdf| device(roots, bdf))
        .collect()
}

/// The IOMMU is on when the kernel made at least one group.
pub fn iommu_on(roots: &Roots) -> bool {
    !entries(&roots.iommu_groups()).is_empty()
}

/// The devices in IOMMU group `group`.
pub fn group_members(roots: &Roots, group: &str) -> Vec<PciDevice> {
    entries(&roots.iommu_groups().join(group).join("devices"))
        .iter()
        .filter_map(|name| name.parse().ok())
        .filter_map(|bdf| device(roots, bdf))
        .collect()
}

/// A PCI driver is registered (its module is loaded or built in).
pub fn driver_registered(roots: &Roots, driver: &str) -> bool {
    roots.driver_dir(driver).is_dir()
}

pub fn framebuffers(roots: &Roots) -> Vec<Framebuffer> {
    let class = roots.sys.join("class/graphics");
    entries(&class)
        .iter()
        .filter(|name| name.starts_with("fb"))
        .map(|name| {
            let path = class.join(name);
            Framebuffer {
                name: read_trim(&path.join("name")).unwrap_or_default(),
                device: link_name(&path.join("device")).and_then(|d| d.parse().ok()),
                path,
            }
        })
        .collect()
}

/// The framebuffer console's vtconsole entry when it is bound (`bind` reads 1).
pub fn fbcon_bound(roots: &Roots) -> Option<PathBuf> {
    let class = roots.sys.join("class/vtconsole");
    entries(&class)
        .iter()
        .map(|name| class.join(name))
        .find(|dir| {
            read_trim(&dir.join("name")).is_some_and(|n| n.contains("frame buffer"))
                && read_trim(&dir.join("bind")).as_deref() == Some("1")
        })
}
