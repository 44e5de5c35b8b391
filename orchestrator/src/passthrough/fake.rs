//! A fake sysfs and /dev tree in a temporary directory, for tests of
//! preflight, bind and unbind (here and in the CLI's tests). Writes the
//! kernel would act on stay plain files; [`FakeHost::set_driver`] plays the kernel.

use std::os::unix::fs::symlink;
use std::path::Path;

use super::bdf::Bdf;
use super::sysfs::Roots;

pub struct FakeHost {
    pub dir: tempfile::TempDir,
    pub roots: Roots,
}

/// One device to put in the tree.
pub struct FakeDevice<'a> {
    pub bdf: &'a str,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub driver: Option<&'a str>,
    pub group: &'a str,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

impl FakeHost {
    /// An empty host: no devices, no IOMMU groups, no drivers.
    pub fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots {
            sys: dir.path().join("sys"),
            dev: dir.path().join("dev"),
        };
        std::fs::create_dir_all(roots.sys.join("bus/pci/devices")).unwrap();
        write(&roots.drivers_probe(), "");
        std::fs::create_dir_all(&roots.dev).unwrap();
        FakeHost { dir, roots }
    }

    /// A laptop-like host ready for passthrough of its integrated GPU except
    /// for the binding: IGD 8086:9a49 at 00:02.0 on i915 in group 1 (alone),
    /// boot_vga 1, vfio-pci loaded, /dev/vfio/vfio present.
    pub fn igd() -> Self {
        let host = FakeHost::empty();
        host.driver("i915");
        host.driver("vfio-pci");
        host.add(FakeDevice {
            bdf: "0000:00:00.0",
            vendor: 0x8086,
            device: 0x9a14,
            class: 0x060000,
            driver: None,
            group: "0",
        });
        host.add(FakeDevice {
            bdf: "0000:00:02.0",
            vendor: 0x8086,
            device: 0x9a49,
            class: 0x030000,
            driver: Some("i915"),
            group: "1",
        });
        host.boot_vga("0000:00:02.0");
        write(&host.roots.dev.join("vfio/vfio"), "");
        host
    }

    /// A discrete Intel card (8086:56a0, an Arc A770) on i915, alone in group 12.
    pub fn add_dgpu(&self, bdf: &str) {
        self.add(FakeDevice {
            bdf,
            vendor: 0x8086,
            device: 0x56a0,
            class: 0x030000,
            driver: Some("i915"),
            group: "12",
        });
    }

    /// A registered PCI driver with its `bind` and `unbind` files.
    pub fn driver(&self, name: &str) {
        let dir = self.roots.driver_dir(name);
        write(&dir.join("bind"), "");
        write(&dir.join("unbind"), "");
    }

    pub fn add(&self, d: FakeDevice<'_>) {
        let dir = self.roots.sys.join("bus/pci/devices").join(d.bdf);
        write(&dir.join("vendor"), &format!("0x{:04x}\n", d.vendor));
        write(&dir.join("device"), &format!("0x{:04x}\n", d.device));
        write(&dir.join("class"), &format!("0x{:06x}\n", d.class));
        write(&dir.join("driver_override"), "(null)\n");
        let group = self.roots.iommu_groups().join(d.group);
        write(&group.join("devices").join(d.bdf), "");
        symlink(&group, dir.join("iommu_group")).unwrap();
        if let Some(driver) = d.driver {
            self.set_driver(d.bdf, Some(driver));
        }
    }

    /// What the kernel does on bind or unbind: the `driver` link.
    pub fn set_driver(&self, bdf: &str, driver: Option<&str>) {
        let link = self
            .roots
            .sys
            .join("bus/pci/devices")
            .join(bdf)
            .join("driver");
        let _ = std::fs::remove_file(&link);
        if let Some(driver) = driver {
            symlink(self.roots.driver_dir(driver), link).unwrap();
        }
    }

    pub fn boot_vga(&self, bdf: &str) {
        write(
            &self
                .roots
                .sys
                .join("bus/pci/devices")
                .join(bdf)
                .join("boot_vga"),
            "1\n",
        );
    }

    /// `/sys/class/graphics/<fb>` named `name`, drawing on `bdf`.
    pub fn framebuffer(&self, fb: &str, name: &str, bdf: &str) {
        let dir = self.roots.sys.join("class/graphics").join(fb);
        write(&dir.join("name"), &format!("{name}\n"));
        symlink(
            self.roots.sys.join("bus/pci/devices").join(bdf),
            dir.join("device"),
        )
        .unwrap();
    }

    /// The framebuffer console as vtcon1, bound or not.
    pub fn fbcon(&self, bound: bool) {
        let dir = self.roots.sys.join("class/vtconsole/vtcon1");
        write(&dir.join("name"), "(M) frame buffer device\n");
        write(&dir.join("bind"), if bound { "1\n" } else { "0\n" });
    }

    /// `/dev/vfio/<group>`, as the kernel makes it once the group is on vfio-pci.
    pub fn vfio_node(&self, group: &str) {
        write(&self.roots.vfio_group_node(group), "");
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.roots.sys.join(relative)).unwrap_or_default()
    }

    pub fn bdf(text: &str) -> Bdf {
        text.parse().unwrap()
    }
}
