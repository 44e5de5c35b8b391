//! A full disk is a clear error (exit 3) and leaves nothing half-written.
//! Mounts a 64 MB tmpfs as the cache, which needs root; skipped otherwise
//! (a capability of the test machine, not of kcycle).

use std::path::Path;
use std::process::Command;

use kcycle::kernel::source::DEBIAN_TARBALL;

struct Mount(tempfile::TempDir);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn small_tmpfs() -> Option<Mount> {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    mounted.then_some(Mount(dir))
}

#[test]
fn a_full_disk_is_named_and_leaves_no_source_behind() {
    if !Path::new(DEBIAN_TARBALL).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{DEBIAN_TARBALL} is missing: run `kcycle setup` (CI must have it)"
        );
        eprintln!("skipping: {DEBIAN_TARBALL} is missing");
        return;
    }
    let Some(mount) = small_tmpfs() else {
        eprintln!("skipping: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_kcycle"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--progress", "never", "kernel", "build"])
        .env("KCYCLE_CACHE", mount.0.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert!(stderr.contains("KCYCLE_CACHE"), "{stderr}");
    let sources: Vec<_> = std::fs::read_dir(mount.0.path().join("kernel/src"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        sources.is_empty(),
        "half-extracted source left: {sources:?}"
    );
}
