//! The guest initramfs: busybox, dropbear sshd, kmod, kcycle's snapshot
//! reader and the kernel's modules, with the init from `images/`.
//!
//! The recipe (`images/init`, `images/files.txt`, `images/etc/*`) is compiled
//! into the binary, so a kcycle built anywhere builds the same image. The
//! archive is written by the deterministic [`cpio`] writer and cached under
//! `<cache>/images/<key>/initramfs.cpio`; the key hashes the recipe, every
//! host file that goes in (contents) and the kernel build key (which decides
//! the modules tree). The per-run SSH key is *not* in the cached image: it
//! goes in a tiny second archive ([`authorized_keys_archive`]) appended per
//! run (the kernel unpacks concatenated archives in order).

pub mod cpio;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::kernel::Artifacts;
use crate::snapshot;
use crate::sys::child::{self, ChildError};
use crate::sys::fs::write_atomic;
use crate::sys::shell;
use cpio::Archive;

/// Bumped when the image layout changes in a way the inputs do not show.
const FORMAT: &str = "kcycle-image-1";
pub const IMAGE_FILE: &str = "initramfs.cpio";

/// The recipe files compiled in: (guest path, mode, contents).
const RECIPE: &[(&str, u32, &str)] = &[
    ("init", 0o755, include_str!("../../../images/init")),
    (
        "etc/passwd",
        0o644,
        include_str!("../../../images/etc/passwd"),
    ),
    (
        "etc/group",
        0o644,
        include_str!("../../../images/etc/group"),
    ),
    (
        "etc/shells",
        0o644,
        include_str!("../../../images/etc/shells"),
    ),
    (
        "etc/profile",
        0o644,
        include_str!("../../../images/etc/profile"),
    ),
    (
        "etc/inittab",
        0o644,
        include_str!("../../../images/etc/inittab"),
    ),
    (
        "etc/acpi/PWRF/00000080",
        0o755,
        include_str!("../../../images/etc/acpi/PWRF/00000080"),
    ),
];
const FILES_TXT: &str = include_str!("../../../images/files.txt");

/// How long `ldd` or `busybox --list` may take.
const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// Applets kmod provides; busybox's versions of these are not installed.
const KMOD_TOOLS: &[&str] = &["modprobe", "rmmod", "insmod", "lsmod", "modinfo", "depmod"];

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("failed to read {path} for the guest image (install the Debian package that provides it, e.g. `kcycle setup`)")]
    HostFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to run `{command}` while building the guest image")]
    Tool {
        command: String,
        #[source]
        source: ChildError,
    },
    #[error("failed to parse images/files.txt line {line}: {text:?}")]
    FilesTxt { line: usize, text: String },
    #[error("failed to read the kernel modules tree {path}")]
    Modules {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write the guest image {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A built (or cached) initramfs.
#[derive(Debug, Clone)]
pub struct Image {
    /// The cpio archive (uncompressed newc).
    pub path: PathBuf,
    /// The content key (hex sha256 of the inputs).
    pub key: String,
    /// True when the image came from the cache.
    pub cached: bool,
}

/// One host file to copy: where it is and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    pub host: PathBuf,
    pub guest: String,
}

/// Build the image for a kernel, or reuse the cached one with the same key.
pub fn build(artifacts: &Artifacts, cache: &Path) -> Result<Image, ImageError> {
    let files = resolve_host_files(&parse_files_txt(FILES_TXT)?)?;
    let modules = Some((
        artifacts.modules_dir(),
        artifacts.manifest.kernel_release.as_str(),
        artifacts.manifest.key.as_str(),
    ));
    build_with(&files, modules, cache)
}

/// Build from explicit inputs: host files and an optional modules tree
/// `(lib/modules/<release> dir, release, kernel key)`.
pub fn build_with(
    files: &[HostFile],
    modules: Option<(PathBuf, &str, &str)>,
    cache: &Path,
) -> Result<Image, ImageError> {
    let contents = files
        .iter()
        .map(|file| {
            std::fs::read(&file.host).map_err(|source| ImageError::HostFile {
                path: file.host.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut hasher = Sha256::new();
    hasher.update(FORMAT);
    for (path, mode, text) in RECIPE {
        hasher.update(format!("{path} {mode:o} {}\n", text.len()));
        hasher.update(text);
    }
    hasher.update(format!(
        "{} {}\n",
        snapshot::HELPER_PATH,
        snapshot::HELPER.len()
    ));
    hasher.update(snapshot::HELPER);
    for (file, data) in files.iter().zip(&contents) {
        hasher.update(format!("{} {}\n", file.guest, data.len()));
        hasher.update(Sha256::digest(data));
    }
    if let Some((_, release, kernel_key)) = &modules {
        hasher.update(format!("modules {release} {kernel_key}\n"));
    }
    let key = hex::encode(hasher.finalize());

    let dir = cache.join("images").join(&key);
    let path = dir.join(IMAGE_FILE);
    if path.is_file() {
        return Ok(Image {
            path,
            key,
            cached: true,
        });
    }

    let mut archive = base_archive();
    for (file, data) in files.iter().zip(contents) {
        archive.file(&file.guest, 0o755, data);
    }
    add_applet_links(&mut archive, files)?;
    if let Some((modules_dir, release, _)) = &modules {
        add_modules(&mut archive, modules_dir, release)?;
    }
    write_atomically(&path, &archive.to_bytes())?;
    Ok(Image {
        path,
        key,
        cached: false,
    })
}

/// Directories, device node and recipe files every image has.
fn base_archive() -> Archive {
    let mut archive = Archive::new();
    for dir in [
        "bin", "sbin", "dev", "proc", "sys", "tmp", "run", "etc", "var", "lib", "mnt",
    ] {
        archive.dir(dir, 0o755);
    }
    archive.dir("tmp", 0o1777).dir("root", 0o700);
    archive.char_device("dev/console", 0o600, 5, 1);
    archive
        .symlink("usr/bin", "../bin")
        .symlink("usr/sbin", "../sbin");
    for (path, mode, text) in RECIPE {
        archive.file(path, *mode, text.as_bytes().to_vec());
    }
    let helper = snapshot::HELPER_PATH.trim_start_matches('/');
    archive.file(helper, 0o755, snapshot::HELPER.to_vec());
    archive
}

/// busybox applets as symlinks in /bin, kmod's tools in /sbin.
fn add_applet_links(archive: &mut Archive, files: &[HostFile]) -> Result<(), ImageError> {
    let Some(busybox) = files.iter().find(|f| f.guest.ends_with("/busybox")) else {
        return Ok(());
    };
    let list = run_tool(Command::new(&busybox.host).arg("--list"))?;
    let has_kmod = files.iter().any(|f| f.guest == "/sbin/kmod");
    for applet in list.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if has_kmod && KMOD_TOOLS.contains(&applet) {
            continue;
        }
        let path = format!("bin/{applet}");
        if !archive.contains(&path) && !archive.contains(&format!("sbin/{applet}")) {
            archive.symlink(&path, "busybox");
        }
    }
    if has_kmod {
        for tool in KMOD_TOOLS {
            archive.symlink(&format!("sbin/{tool}"), "kmod");
        }
    }
    Ok(())
}

/// The modules tree under `/lib/modules/<release>`, minus the `build` and
/// `source` links into the host's build directory.
fn add_modules(archive: &mut Archive, dir: &Path, release: &str) -> Result<(), ImageError> {
    let mut stack = vec![(dir.to_path_buf(), format!("lib/modules/{release}"))];
    while let Some((host, guest)) = stack.pop() {
        let error = |source| ImageError::Modules {
            path: host.clone(),
            source,
        };
        archive.dir(&guest, 0o755);
        for entry in std::fs::read_dir(&host).map_err(error)? {
            let entry = entry.map_err(error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type().map_err(error)?;
            let (host_path, guest_path) = (entry.path(), format!("{guest}/{name}"));
            if kind.is_dir() {
                stack.push((host_path, guest_path));
            } else if kind.is_file() {
                let data = std::fs::read(&host_path).map_err(|source| ImageError::Modules {
                    path: host_path.clone(),
                    source,
                })?;
                archive.file(&guest_path, 0o644, data);
            }
            // Symlinks (`build`, `source`) point into the host: left out.
        }
    }
    Ok(())
}

/// `images/files.txt`: `<host path> [guest path]`, `#` comments.
pub fn parse_files_txt(text: &str) -> Result<Vec<HostFile>, ImageError> {
    let mut files = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(host), guest, None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ImageError::FilesTxt {
                line: index + 1,
                text: raw.to_string(),
            });
        };
        files.push(HostFile {
            host: host.into(),
            guest: guest.unwrap_or(host).to_string(),
        });
    }
    Ok(files)
}

/// The listed files plus the shared libraries each needs (ldd), deduplicated.
pub fn resolve_host_files(listed: &[HostFile]) -> Result<Vec<HostFile>, ImageError> {
    let mut all: Vec<HostFile> = listed.to_vec();
    for file in listed {
        if !file.host.is_file() {
            return Err(ImageError::HostFile {
                path: file.host.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        // ldd exits 1 for static binaries ("not a dynamic executable"): no libraries.
        let output = run_tool(Command::new("ldd").arg(&file.host))?;
        for lib in parse_ldd(&output) {
            if !all.iter().any(|f| f.guest == lib) {
                all.push(HostFile {
                    host: lib.clone().into(),
                    guest: lib,
                });
            }
        }
    }
    Ok(all)
}

/// Absolute library paths from `ldd` output, in order.
pub fn parse_ldd(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// A second archive with root's authorized_keys for one run.
pub fn authorized_keys_archive(public_key: &str) -> Vec<u8> {
    let mut archive = Archive::new();
    archive.dir("root", 0o700).dir("root/.ssh", 0o700).file(
        "root/.ssh/authorized_keys",
        0o600,
        public_key.as_bytes().to_vec(),
    );
    archive.to_bytes()
}

/// Write `image` followed by the per-run keys archive to `out` (the initrd QEMU loads).
pub fn write_run_initrd(image: &Path, public_key: &str, out: &Path) -> Result<(), ImageError> {
    let mut bytes = std::fs::read(image).map_err(|source| ImageError::Write {
        path: image.to_path_buf(),
        source,
    })?;
    bytes.extend_from_slice(&authorized_keys_archive(public_key));
    std::fs::write(out, bytes).map_err(|source| ImageError::Write {
        path: out.to_path_buf(),
        source,
    })
}

/// A short host tool's stdout (its exit status does not matter here).
fn run_tool(command: &mut Command) -> Result<String, ImageError> {
    child::capture(command, TOOL_LIMIT)
        .map(|captured| captured.stdout)
        .map_err(|source| ImageError::Tool {
            command: shell::render(command),
            source,
        })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let error = |source| ImageError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).map_err(error)?;
    write_atomic(path, bytes).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_paths() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(out),
            [
                "/lib/x86_64-linux-gnu/libz.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn files_txt_parses_and_rejects_garbage() {
        let files = parse_files_txt("# c\n/usr/bin/busybox /bin/busybox\n/usr/bin/x\n").unwrap();
        assert_eq!(files[0].guest, "/bin/busybox");
        assert_eq!(files[1].guest, "/usr/bin/x");
        let err = parse_files_txt("a b c\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    fn fake_modules(root: &Path) -> PathBuf {
        let dir = root.join("lib/modules/6.12.0-test");
        std::fs::create_dir_all(dir.join("kernel/drivers")).unwrap();
        std::fs::write(dir.join("modules.dep"), "kernel/drivers/a.ko:\n").unwrap();
        std::fs::write(dir.join("kernel/drivers/a.ko"), b"\x7fELFmodule").unwrap();
        std::os::unix::fs::symlink("/nowhere", dir.join("build")).unwrap();
        dir
    }

    /// Two builds from the same inputs give identical bytes, and the second is a cache hit.
    #[test]
    fn builds_are_reproducible_and_cached() {
        let tmp = tempfile::tempdir().unwrap();
        let modules = fake_modules(tmp.path());
        let files = resolve_host_files(&parse_files_txt(FILES_TXT).unwrap());
        let files = match files {
            Ok(files) => files,
            Err(err) => {
                assert!(std::env::var_os("CI").is_none(), "{err}");
                eprintln!("skipping: {err}");
                return;
            }
        };
        let first = build_with(
            &files,
            Some((modules.clone(), "6.12.0-test", "k1")),
            &tmp.path().join("a"),
        )
        .unwrap();
        let second = build_with(
            &files,
            Some((modules.clone(), "6.12.0-test", "k1")),
            &tmp.path().join("b"),
        )
        .unwrap();
        assert!(!first.cached && !second.cached);
        assert_eq!(first.key, second.key);
        assert_eq!(
            std::fs::read(&first.path).unwrap(),
            std::fs::read(&second.path).unwrap()
        );
        let again = build_with(
            &files,
            Some((modules, "6.12.0-test", "k1")),
            &tmp.path().join("a"),
        )
        .unwrap();
        assert!(again.cached);

        let listing = std::process::Command::new("cpio")
            .args(["-t", "--quiet", "-F"])
            .arg(&first.path)
            .output()
            .unwrap();
        let listing = String::from_utf8(listing.stdout).unwrap();
        for expected in [
            "init",
            "bin/busybox",
            "bin/sh",
            "sbin/dropbear",
            "sbin/modprobe",
            "dev/console",
            "lib/x86_64-linux-gnu/libc.so.6",
            "lib/modules/6.12.0-test/kernel/drivers/a.ko",
        ] {
            assert!(listing.lines().any(|l| l == expected), "{expected} missing");
        }
        assert!(!listing.contains("6.12.0-test/build"));
        assert!(
            !listing.lines().any(|l| l == "bin/modprobe"),
            "kmod's modprobe wins"
        );
    }

    #[test]
    fn keys_archive_holds_authorized_keys_0600() {
        let bytes = authorized_keys_archive("ssh-ed25519 AAAA test\n");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("root/.ssh/authorized_keys\0"));
        assert!(text.contains("ssh-ed25519 AAAA test"));
    }
}
