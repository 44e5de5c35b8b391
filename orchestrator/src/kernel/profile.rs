//! Kernel config profiles: the base configuration the project's fragments
//! are merged onto.

use std::path::{Path, PathBuf};

/// The base a guest kernel's `.config` starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// `make x86_64_defconfig`: hundreds of drivers no guest uses, but
    /// what every suite ran on before the minimal profile.
    Full,
    /// `make allnoconfig` plus `guest-kernel/profiles/minimal.config`: only
    /// what the guest (initramfs, virtio-net, serial, ACPI, PCIe hotplug)
    /// needs; the fragments add i915, Rust, KUnit and the debug options.
    /// The default: the guest e2e suites passed on it.
    #[default]
    Minimal,
}

impl Profile {
    /// The make target that writes the base `.config`.
    pub fn base_target(self) -> &'static str {
        match self {
            Profile::Full => "x86_64_defconfig",
            Profile::Minimal => "allnoconfig",
        }
    }

    /// The project fragment that makes the base a bootable guest, merged
    /// before the project's fragments (and so checked like them).
    pub fn base_fragment(self, root: &Path) -> Option<PathBuf> {
        match self {
            Profile::Full => None,
            Profile::Minimal => Some(root.join("guest-kernel/profiles/minimal.config")),
        }
    }

    /// What the kernel key hashes for the profile. None for the full
    /// profile, whose keys predate profiles (its base fragment is none).
    pub fn key_part(self) -> Option<&'static str> {
        match self {
            Profile::Full => None,
            Profile::Minimal => Some(self.base_target()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_minimal_profile_has_a_base_fragment_and_a_key_part() {
        let root = Path::new("/p");
        assert_eq!(Profile::default(), Profile::Minimal);
        assert_eq!(Profile::Full.base_fragment(root), None);
        assert_eq!(Profile::Full.key_part(), None);
        assert_eq!(
            Profile::Minimal.base_fragment(root).unwrap(),
            Path::new("/p/guest-kernel/profiles/minimal.config")
        );
        assert_eq!(Profile::Minimal.key_part(), Some("allnoconfig"));
    }
}
