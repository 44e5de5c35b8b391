//! Debian's QEMU unpacked into the cache instead of installed, for hosts
//! where installing it would remove the user's own QEMU packages (say
//! qemu-utils 10 from backports, which bookworm's qemu-system-common
//! cannot sit beside). `apt-get download` and `dpkg-deb -x` put the QEMU
//! packages under `<cache>/qemu/root`, their shared libraries (which
//! conflict with nothing) are installed as usual, and a wrapper at
//! `<cache>/qemu/bin/qemu-system-x86_64` points QEMU at its modules (TCG
//! itself is one) and firmware there. dpkg never hears of it, so nothing
//! the user has changes.
//!
//! [`depends`] and [`wrapper`] are pure; [`unpack`] runs apt-get and dpkg-deb.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::HostError;
use crate::sys::child;

/// The packages unpacked rather than installed: QEMU's own (the ones that
/// conflict) and the firmware QEMU looks for beside them.
pub const UNPACKED: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-system-data",
    "seabios",
    "ipxe-qemu",
];

/// Where the QEMU firmware lives in Debian's packages, relative to the root:
/// QEMU's compiled-in search path, which the wrapper repeats with `-L`.
const FIRMWARE: &[&str] = &["usr/share/qemu", "usr/share/seabios", "usr/lib/ipxe/qemu"];

const LIMIT: Duration = Duration::from_secs(15 * 60);

/// `<cache>/qemu`: the unpacked tree and its wrapper.
pub fn dir() -> Option<PathBuf> {
    crate::sys::dirs::cache_root().map(|root| root.join("qemu"))
}

/// The wrapper's directory when an unpacked QEMU is there.
pub fn bin_dir() -> Option<PathBuf> {
    dir()
        .map(|d| d.join("bin"))
        .filter(|bin| bin.join(super::qemu::BINARY).is_file())
}

/// Put the unpacked QEMU's wrapper at the end of PATH, so that every
/// `qemu-system-x86_64` kcycle (and what it starts) runs finds it, and a QEMU
/// the host has installed still comes first.
pub fn add_to_path() {
    let Some(bin) = bin_dir() else { return };
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
    if dirs.contains(&bin) {
        return;
    }
    dirs.push(bin);
    if let Ok(joined) = std::env::join_paths(dirs) {
        // Called at startup and after setup unpacks, before any thread reads PATH.
        std::env::set_var("PATH", joined);
    }
}

/// The packages in a `Depends:` field of `apt-cache show` output that are not
/// themselves unpacked: the first choice of each alternative, without versions.
pub fn depends(show: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in show.lines() {
        let Some(field) = line
            .strip_prefix("Depends:")
            .or_else(|| line.strip_prefix("Pre-Depends:"))
        else {
            continue;
        };
        for dependency in field.split(',') {
            let first = dependency.split('|').next().unwrap_or_default();
            let name = first
                .split(['(', ':'])
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            if !name.is_empty() && !UNPACKED.contains(&name.as_str()) && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The wrapper script: the unpacked binary with its module directory and
/// every firmware directory, then the caller's arguments.
pub fn wrapper(root: &Path, module_dir: &Path) -> String {
    let firmware: Vec<String> = FIRMWARE
        .iter()
        .map(|dir| format!("-L {}", shell_quote(&root.join(dir))))
        .collect();
    format!(
        "#!/bin/sh\n\
         # Debian's QEMU, unpacked by `kcycle setup` because installing it would have\n\
         # removed packages this host has. dpkg does not know of it; delete\n\
         # {} to remove it.\n\
         QEMU_MODULE_DIR={} exec {} {} \"$@\"\n",
        root.parent().unwrap_or(root).display(),
        shell_quote(module_dir),
        shell_quote(&root.join("usr/bin/qemu-system-x86_64")),
        firmware.join(" "),
    )
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// Download [`UNPACKED`] (no root needed), unpack them under `dest/root`
/// (built beside and renamed into place, so a half-done unpack is never
/// used) and write the wrapper. Returns the wrapper's path. The libraries of
/// [`libraries`] must be installed for it to run.
pub fn unpack(dest: &Path) -> Result<PathBuf, HostError> {
    let failed = |step: &str, error: std::io::Error| HostError::Failed {
        step: step.to_string(),
        command: dest.display().to_string(),
        status: error.to_string(),
    };
    std::fs::create_dir_all(dest).map_err(|e| failed("create the unpacked QEMU's directory", e))?;
    let scratch = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(dest)
        .map_err(|e| failed("create a scratch directory", e))?;
    let debs = scratch.path().join("debs");
    let root = scratch.path().join("root");
    for dir in [&debs, &root] {
        std::fs::create_dir_all(dir).map_err(|e| failed("create a scratch directory", e))?;
    }
    let mut download = Command::new("apt-get");
    if super::is_root() {
        // Root's apt hands downloads to the `_apt` user, who cannot enter
        // this private directory: it warns, then downloads as root anyway.
        download.args(["-o", "APT::Sandbox::User=root"]);
    }
    download.arg("download").args(UNPACKED).current_dir(&debs);
    super::run_visible("apt-get download QEMU", &mut download, LIMIT)?;
    let mut packages: Vec<PathBuf> = std::fs::read_dir(&debs)
        .map_err(|e| failed("list the downloaded packages", e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    packages.sort();
    for deb in &packages {
        super::run_visible(
            "dpkg-deb -x",
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root),
            LIMIT,
        )?;
    }
    let final_root = dest.join("root");
    let module_dir = module_dir(&root)
        .and_then(|m| m.strip_prefix(&root).ok().map(|rel| final_root.join(rel)))
        .ok_or_else(|| HostError::Failed {
            step: "find QEMU's module directory in the unpacked packages".into(),
            command: format!("{}/usr/lib/*/qemu", root.display()),
            status: "no such directory (is qemu-system-common among the downloads?)".into(),
        })?;
    if final_root.exists() {
        std::fs::remove_dir_all(&final_root)
            .map_err(|e| failed("remove the old unpacked QEMU", e))?;
    }
    std::fs::rename(&root, &final_root)
        .map_err(|e| failed("move the unpacked QEMU into place", e))?;
    let bin = dest.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| failed("create the wrapper's directory", e))?;
    let script = bin.join(super::qemu::BINARY);
    let staged = bin.join(format!(".{}.new", super::qemu::BINARY));
    std::fs::write(&staged, wrapper(&final_root, &module_dir))
        .map_err(|e| failed("write the QEMU wrapper", e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| failed("make the QEMU wrapper executable", e))?;
    std::fs::rename(&staged, &script).map_err(|e| failed("move the QEMU wrapper into place", e))?;
    Ok(script)
}

/// `usr/lib/<multiarch>/qemu` under `root`, where QEMU's modules are.
fn module_dir(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root.join("usr/lib"))
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("qemu")))
        .find(|dir| dir.is_dir())
}

/// The shared libraries the unpacked QEMU needs: qemu-system-x86's `Depends`
/// that are not unpacked themselves, from `apt-cache show`. The one module it
/// loads (TCG) needs only libc; qemu-system-common's own list is for display
/// and audio modules a headless guest never loads.
pub fn libraries() -> Result<Vec<String>, HostError> {
    let show = child::capture(
        Command::new("apt-cache").args(["show", "--no-all-versions", UNPACKED[0]]),
        Duration::from_secs(120),
    )
    .map_err(|source| HostError::Process {
        step: "apt-cache show".into(),
        source,
    })?;
    Ok(depends(&show.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    // `apt-cache show --no-all-versions qemu-system-x86 seabios`, bookworm, trimmed.
    const SHOW: &str = "Package: qemu-system-x86\n\
        Version: 1:7.2+dfsg-7+deb12u18+b3\n\
        Depends: libaio1 (>= 0.3.93), libc6 (>= 2.34), libslirp0 (>= 4.7.0), \
        qemu-system-common (= 1:7.2+dfsg-7+deb12u18+b3), qemu-system-data (>> 1:7.2+dfsg~), seabios, ipxe-qemu\n\
        Description: QEMU full system emulation binaries (x86)\n\
        \n\
        Package: qemu-system-common\n\
        Pre-Depends: init-system-helpers (>= 1.54~)\n\
        Depends: libaio1 (>= 0.3.93), libfuse3-3 (>= 3.2.3), default-dbus-session-bus | dbus-session-bus, libc6:any\n\
        Recommends: qemu-block-extra\n";

    #[test]
    fn depends_keeps_libraries_once_and_drops_what_is_unpacked() {
        assert_eq!(
            depends(SHOW),
            [
                "libaio1",
                "libc6",
                "libslirp0",
                "init-system-helpers",
                "libfuse3-3",
                "default-dbus-session-bus",
            ]
        );
    }

    #[test]
    fn the_wrapper_names_modules_and_every_firmware_dir_quoted() {
        let root = Path::new("/home/o'neil/.cache/kcycle/qemu/root");
        let script = wrapper(root, &root.join("usr/lib/x86_64-linux-gnu/qemu"));
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        let exec = script.lines().last().unwrap();
        assert!(
            exec.starts_with(
                r"QEMU_MODULE_DIR='/home/o'\''neil/.cache/kcycle/qemu/root/usr/lib/x86_64-linux-gnu/qemu' exec '/home/o'\''neil/.cache/kcycle/qemu/root/usr/bin/qemu-system-x86_64' -L "
            ),
            "{exec}"
        );
        for dir in FIRMWARE {
            assert!(exec.contains(&format!("/root/{dir}' ")), "{dir} in {exec}");
        }
        assert!(exec.ends_with("\"$@\""), "{exec}");
    }
}
