//! `--source DIR` trees are never modified: a missing guest-kernel patch is
//! named with the command that applies it. Uses the real Makefile, Kconfig
//! and bindings_helper.h of Debian's 6.12 tarball and the real patch files.

use std::path::{Path, PathBuf};
use std::process::Command;

use kcycle::kernel::patches;
use kcycle::kernel::source::DEBIAN_TARBALL;

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tree with just the files the source and patch checks read.
fn small_tree() -> Option<tempfile::TempDir> {
    if !Path::new(DEBIAN_TARBALL).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{DEBIAN_TARBALL} is missing: run `kcycle setup` (CI must have it)"
        );
        eprintln!("skipping: {DEBIAN_TARBALL} is missing (run `kcycle setup`)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xJf")
        .arg(DEBIAN_TARBALL)
        .arg("-C")
        .arg(dir.path())
        .arg("--strip-components=1")
        .args([
            "linux-source-6.12/Makefile",
            "linux-source-6.12/Kconfig",
            "linux-source-6.12/rust/bindings/bindings_helper.h",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    Some(dir)
}

#[test]
fn a_user_tree_without_the_patches_is_named_not_modified() {
    let wanted = patches::load(&project_root().join("guest-kernel/patches")).unwrap();
    if wanted.is_empty() {
        eprintln!("note: guest-kernel/patches is empty; nothing to check");
        return;
    }
    let Some(tree) = small_tree() else { return };
    let helper = tree.path().join("rust/bindings/bindings_helper.h");
    let before = std::fs::read(&helper).unwrap();
    let cache = tempfile::tempdir().unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_kcycle"))
        .current_dir(project_root())
        .args(["--progress", "never", "kernel", "build", "--source"])
        .arg(tree.path())
        .env("KCYCLE_CACHE", cache.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kcycle never modifies --source trees"),
        "{stderr}"
    );
    for patch in &wanted {
        assert!(stderr.contains(&patch.name), "{stderr}");
    }
    assert!(
        stderr.contains(&format!(
            "git -C {} apply",
            tree.path().canonicalize().unwrap().display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&helper).unwrap(),
        before,
        "the tree is untouched"
    );

    // Once the user applies them, the check passes.
    for patch in &wanted {
        let status = Command::new("patch")
            .args(["-p1", "-s", "-d"])
            .arg(tree.path())
            .arg("-i")
            .arg(&patch.path)
            .status()
            .unwrap();
        assert!(status.success());
    }
    patches::check_applied(tree.path(), &wanted).unwrap();
}
