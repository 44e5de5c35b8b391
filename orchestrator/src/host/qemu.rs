//! Whether the QEMU already on the host will do, so that `kcycle setup` does
//! not force bookworm's 7.2 over a newer one (a backports or self-built
//! QEMU). The checks are pure; `probe` runs the binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::sys::child;

/// The oldest QEMU kcycle was run with (bookworm's).
pub const MIN_VERSION: (u32, u32, u32) = (7, 2, 0);
pub const BINARY: &str = "qemu-system-x86_64";

/// What kcycle's QEMU command line needs (vm/argv.rs): a q35 machine, a
/// virtio NIC and user networking (slirp, which some builds leave out).
const FEATURES: &[(&str, &str)] = &[
    ("-machine", "q35"),
    ("-device", "virtio-net-pci"),
    ("-netdev", "user"),
];

/// A QEMU found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    /// `None` when `--version` said nothing kcycle could read.
    pub version: Option<(u32, u32, u32)>,
    /// Features of [`FEATURES`] its help lists do not have, as `-device virtio-net-pci`.
    pub missing: Vec<String>,
}

impl Found {
    /// New enough and able to run kcycle's guests.
    pub fn usable(&self) -> bool {
        self.version.is_some_and(|v| v >= MIN_VERSION) && self.missing.is_empty()
    }

    pub fn version_text(&self) -> String {
        match self.version {
            Some((a, b, c)) => format!("{a}.{b}.{c}"),
            None => "of unknown version".into(),
        }
    }
}

/// `QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)` -> (8, 2, 2).
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text.split("QEMU emulator version").nth(1)?;
    super::packages::parse_dotted(rest.split_whitespace().next()?)
}

/// Which features are absent, given each `<option> help` output (same order as FEATURES).
fn missing_features(helps: &[String]) -> Vec<String> {
    FEATURES
        .iter()
        .zip(helps)
        .filter(|((_, name), help)| !lists(help, name))
        .map(|((option, name), _)| format!("{option} {name}"))
        .collect()
}

/// Whether a QEMU `help` listing has `name` as one of its entries: the first
/// word of a line, or a `name "..."` / `name,` device entry.
fn lists(help: &str, name: &str) -> bool {
    help.lines().any(|line| {
        line.split(|c: char| c.is_whitespace() || c == ',' || c == '"')
            .filter(|w| !w.is_empty())
            .any(|w| w == name)
    })
}

/// Run `path --version` and the help listings kcycle depends on.
pub fn probe(path: &Path) -> Option<Found> {
    let limit = Duration::from_secs(20);
    let run = |args: &[&str]| {
        child::capture(Command::new(path).args(args), limit)
            .ok()
            .filter(|o| o.status.success())
            .map(|o| format!("{}{}", o.stdout, o.stderr))
    };
    let version = parse_version(&run(&["--version"])?);
    let helps: Vec<String> = FEATURES
        .iter()
        .map(|(option, _)| run(&[option, "help"]).unwrap_or_default())
        .collect();
    Some(Found {
        path: path.to_path_buf(),
        version,
        missing: missing_features(&helps),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_debian_ubuntu_and_source_builds() {
        let bookworm = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n\
                        Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";
        assert_eq!(parse_version(bookworm), Some((7, 2, 22)));
        assert_eq!(
            parse_version("QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)"),
            Some((8, 2, 2))
        );
        assert_eq!(
            parse_version("QEMU emulator version 9.1.50 (v9.1.0-1234-gdeadbeef)"),
            Some((9, 1, 50))
        );
        assert_eq!(parse_version("QEMU emulator version 6.2"), Some((6, 2, 0)));
        assert_eq!(parse_version("qemu-img version 8.0.0"), None);
    }

    fn found(version: Option<(u32, u32, u32)>, missing: &[&str]) -> Found {
        Found {
            path: "/usr/bin/qemu-system-x86_64".into(),
            version,
            missing: missing.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn newer_than_7_2_with_the_features_is_usable() {
        assert!(found(Some((7, 2, 0)), &[]).usable());
        assert!(found(Some((9, 2, 0)), &[]).usable());
        assert!(
            !found(Some((6, 2, 0)), &[]).usable(),
            "Ubuntu 22.04's is too old"
        );
        assert!(!found(None, &[]).usable());
        assert!(!found(Some((8, 2, 2)), &["-netdev user"]).usable());
    }

    #[test]
    fn the_installed_qemu_probes_as_usable() {
        let Some(path) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(BINARY))
            .find(|p| p.is_file())
        else {
            eprintln!("skipping: no {BINARY} on PATH");
            return;
        };
        let found = probe(&path).expect("it runs");
        assert!(found.usable(), "{found:?}");
    }

    #[test]
    fn feature_listings_are_read_by_entry_not_substring() {
        // Shapes of QEMU 7.2's `-machine help`, `-device help` and `-netdev help`.
        let machine = "Supported machines are:\nmicrovm              microvm (i386)\n\
                       pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)\nq35                  \
                       Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)\n";
        let device = "Network devices:\nname \"e1000\", bus PCI, desc \"Intel Gigabit Ethernet\"\n\
                      name \"virtio-net-pci\", bus PCI, alias \"virtio-net\"\n";
        let netdev = "Available netdev backend types:\nsocket\nstream\ndgram\nhubport\ntap\nuser\n";
        let helps = [machine, device, netdev].map(String::from);
        assert!(missing_features(&helps).is_empty());

        let no_slirp = "Available netdev backend types:\nsocket\ntap\nvhost-user\n";
        let no_q35 = "Supported machines are:\npc-q35-7.2   Standard PC\n";
        let helps = [no_q35, device, no_slirp].map(String::from);
        assert_eq!(missing_features(&helps), ["-machine q35", "-netdev user"]);
    }
}
