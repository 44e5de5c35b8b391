//! What the host needs, and what is missing given `dpkg-query` output. Pure.

use std::collections::BTreeMap;

/// The rustc-web build kcycle's kernel (6.12.117) was tested with; bookworm-security
/// also carries 1.96, which needs a newer libLLVM.
pub const RUST_WEB_VERSION: &str = "1.85.0+dfsg3-1~deb12u3";

/// One apt package kcycle needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    pub name: &'static str,
    /// Preferred version (`apt-get install name=version`), if pinned.
    pub pinned: Option<&'static str>,
    /// Why kcycle needs it, for the report.
    pub why: &'static str,
}

const fn package(name: &'static str, why: &'static str) -> Package {
    Package {
        name,
        pinned: None,
        why,
    }
}

const fn pinned(name: &'static str, why: &'static str) -> Package {
    Package {
        name,
        pinned: Some(RUST_WEB_VERSION),
        why,
    }
}

/// Debian/Ubuntu packages, in install order.
pub const PACKAGES: &[Package] = &[
    package("linux-source-6.12", "the guest kernel source tarball"),
    package("qemu-system-x86", "boots the guest"),
    pinned("rustc-web", "Rust compiler for the kernel (/usr/bin/rustc)"),
    pinned("libstd-rust-web-dev", "Rust standard library for rustc-web"),
    pinned("rust-web-src", "core/alloc sources the kernel compiles"),
    package("clang", "LLVM=1 kernel build"),
    package("lld", "LLVM=1 kernel build"),
    package("llvm", "LLVM=1 kernel build (llvm-ar, llvm-strip, ...)"),
    package("libclang-dev", "bindgen"),
    package("make", "kernel build"),
    package("patch", "applies guest-kernel/patches"),
    package("flex", "kernel build (Kconfig)"),
    package("bison", "kernel build (Kconfig)"),
    package("bc", "kernel build"),
    package("libelf-dev", "kernel build (objtool)"),
    package("libssl-dev", "kernel build (module signing tools)"),
    package("cpio", "guest initramfs"),
    package("kmod", "depmod/modprobe"),
    package("busybox-static", "guest userland"),
    package("dropbear-bin", "guest sshd"),
    package("bash-static", "guest login shell (fast to start)"),
    package("xz-utils", "kernel tarball"),
    package("zstd", "initramfs compression"),
    package("pkg-config", "building ssh2/openssl for kcycle"),
    package("openssh-client", "ssh-keygen for guest keys"),
];

/// The cargo-installed tool the kernel's Rust build needs.
pub const BINDGEN_CRATE: &str = "bindgen-cli";
/// The kernel 6.12 minimum (scripts/min-tool-version.sh).
pub const BINDGEN_MIN: (u32, u32, u32) = (0, 65, 1);

/// Installed packages from
/// `dpkg-query -W -f='${Package}\t${db:Status-Abbrev}\t${Version}\n'`:
/// name -> version, only for packages whose status is "ii" (installed).
pub fn parse_dpkg_query(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let name = fields.next()?.trim();
            let status = fields.next()?.trim();
            let version = fields.next().unwrap_or("").trim();
            // Multi-arch names come as name:arch.
            let name = name.split(':').next().unwrap_or(name);
            (status.starts_with("ii") && !name.is_empty())
                .then(|| (name.to_string(), version.to_string()))
        })
        .collect()
}

/// Versions apt can install, from `apt-cache madison <pkg>` lines
/// (`rustc-web | 1.85.0+dfsg3-1~deb12u3 | http://… Packages`).
pub fn parse_madison(output: &str) -> Vec<String> {
    super::apt::parse_madison_releases(output)
        .into_iter()
        .map(|(version, _)| version)
        .collect()
}

/// A package that must be installed, and the exact apt argument for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub package: Package,
    /// `name=version` when the pinned version is available, else `name`.
    pub apt_arg: String,
    /// Set when the pinned version is not in the archive and apt's choice is used.
    pub note: Option<String>,
}

/// What is not installed. `available` maps a pinned package to the versions apt
/// offers (absent: unknown, keep the pin).
pub fn missing(
    packages: &[Package],
    installed: &BTreeMap<String, String>,
    available: &BTreeMap<String, Vec<String>>,
) -> Vec<Need> {
    packages
        .iter()
        .filter(|p| !installed.contains_key(p.name))
        .map(|&package| {
            let offered = available.get(package.name);
            match package.pinned {
                Some(version) if offered.is_none_or(|v| v.iter().any(|o| o == version)) => Need {
                    package,
                    apt_arg: format!("{}={version}", package.name),
                    note: None,
                },
                Some(version) => Need {
                    package,
                    apt_arg: package.name.to_string(),
                    note: Some(format!(
                        "{version} (the tested version) is not in the archive; installing what apt offers ({})",
                        offered.map(|v| v.join(", ")).unwrap_or_default()
                    )),
                },
                None => Need {
                    package,
                    apt_arg: package.name.to_string(),
                    note: None,
                },
            }
        })
        .collect()
}

/// Installed pinned packages at a different version: worth a warning, not a failure.
pub fn version_warnings(packages: &[Package], installed: &BTreeMap<String, String>) -> Vec<String> {
    packages
        .iter()
        .filter_map(|p| {
            let want = p.pinned?;
            let have = installed.get(p.name)?;
            (have != want).then(|| {
                format!(
                    "{} {have} is installed; kcycle was tested with {want} (`make rustavailable` decides)",
                    p.name
                )
            })
        })
        .collect()
}

/// `apt-get install` argv for the needed packages.
pub fn apt_install_argv(needs: &[Need]) -> Vec<String> {
    let mut argv = vec![
        "apt-get".to_string(),
        "install".to_string(),
        "-y".to_string(),
        "--no-install-recommends".to_string(),
        // Never remove what the user has; `kcycle setup` explains a conflict.
        "--no-remove".to_string(),
    ];
    argv.extend(needs.iter().map(|n| n.apt_arg.clone()));
    argv
}

/// `bindgen 0.71.1` -> (0, 71, 1).
pub fn parse_bindgen_version(output: &str) -> Option<(u32, u32, u32)> {
    let word = output
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    parse_dotted(word)
}

/// `0.71.1-dev` -> (0, 71, 1); `6.2` -> (6, 2, 0).
pub fn parse_dotted(word: &str) -> Option<(u32, u32, u32)> {
    let mut parts = word.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    Some((
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next().and_then(Result::ok).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPKG: &str = "\
linux-source-6.12\tii \t6.12.117-1~deb12u1
qemu-system-x86\tii \t1:7.2+dfsg-7+deb12u18
rustc-web\tii \t1.85.0+dfsg3-1~deb12u3
clang\trc \t1:14.0-55.7~deb12u1
libc6:amd64\tii \t2.36-9
";

    #[test]
    fn dpkg_query_keeps_installed_packages_only() {
        let installed = parse_dpkg_query(DPKG);
        assert_eq!(installed["rustc-web"], RUST_WEB_VERSION);
        assert!(installed.contains_key("libc6"));
        assert!(
            !installed.contains_key("clang"),
            "rc = removed, config left"
        );
    }

    #[test]
    fn missing_lists_absent_packages_with_pins() {
        let installed = parse_dpkg_query(DPKG);
        let needs = missing(PACKAGES, &installed, &BTreeMap::new());
        let names: Vec<&str> = needs.iter().map(|n| n.package.name).collect();
        assert!(names.contains(&"clang"));
        assert!(!names.contains(&"rustc-web"));
        assert!(!names.contains(&"linux-source-6.12"));
        let src = needs
            .iter()
            .find(|n| n.package.name == "rust-web-src")
            .unwrap();
        assert_eq!(src.apt_arg, format!("rust-web-src={RUST_WEB_VERSION}"));
        let argv = apt_install_argv(&needs);
        assert_eq!(
            &argv[..5],
            [
                "apt-get",
                "install",
                "-y",
                "--no-install-recommends",
                "--no-remove"
            ]
        );
        assert!(argv.contains(&"clang".to_string()));
    }

    #[test]
    fn nothing_missing_means_no_apt() {
        let everything: BTreeMap<String, String> = PACKAGES
            .iter()
            .map(|p| (p.name.to_string(), p.pinned.unwrap_or("1").to_string()))
            .collect();
        assert!(missing(PACKAGES, &everything, &BTreeMap::new()).is_empty());
        assert!(version_warnings(PACKAGES, &everything).is_empty());
    }

    #[test]
    fn pin_falls_back_when_the_archive_lacks_it() {
        let available: BTreeMap<String, Vec<String>> = [(
            "rustc-web".to_string(),
            vec!["1.96.0+dfsg1-1~deb12u1".to_string()],
        )]
        .into();
        let needs = missing(PACKAGES, &BTreeMap::new(), &available);
        let rustc = needs
            .iter()
            .find(|n| n.package.name == "rustc-web")
            .unwrap();
        assert_eq!(rustc.apt_arg, "rustc-web");
        assert!(
            rustc.note.as_deref().unwrap().contains("1.96.0"),
            "{:?}",
            rustc.note
        );
    }

    #[test]
    fn other_installed_versions_warn() {
        let installed: BTreeMap<String, String> = [(
            "rustc-web".to_string(),
            "1.96.0+dfsg1-1~deb12u1".to_string(),
        )]
        .into();
        let warnings = version_warnings(PACKAGES, &installed);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("tested with 1.85.0"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn madison_and_bindgen_versions() {
        let madison = " rustc-web | 1.85.0+dfsg3-1~deb12u3 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n";
        assert_eq!(parse_madison(madison), [RUST_WEB_VERSION]);
        assert_eq!(parse_bindgen_version("bindgen 0.73.2\n"), Some((0, 73, 2)));
        assert_eq!(
            parse_bindgen_version("bindgen 0.71.1-dev"),
            Some((0, 71, 1))
        );
        assert_eq!(parse_bindgen_version("garbage"), None);
        assert!(parse_bindgen_version("bindgen 0.65.1").unwrap() >= BINDGEN_MIN);
    }
}
