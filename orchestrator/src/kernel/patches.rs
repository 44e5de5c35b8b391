//! Kernel patches from `guest-kernel/patches/*.patch`.
//!
//! In the cache's own copy of the Debian source they are applied in place,
//! and a copy of each applied patch is kept in `.kcycle-patches/` so a
//! changed patch set can be reverted and re-applied (touching only the
//! patched files, so the next build stays incremental). A user's tree is
//! never written to: it is only checked, and a missing patch is named with the
//! command that applies it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::sys::child;

/// Where applied patches are recorded inside a cache-owned source tree.
const RECORD_DIR: &str = ".kcycle-patches";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub name: String,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("failed to read patches in {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to apply {name} to {tree}: {output}; fix or rebase the patch in guest-kernel/patches")]
    DoesNotApply {
        name: String,
        tree: PathBuf,
        output: String,
    },
    #[error("failed to revert the previously applied {name} in {tree}: {output}")]
    Revert {
        name: String,
        tree: PathBuf,
        output: String,
    },
    #[error("{}", missing_message(tree, missing))]
    MissingInTree {
        tree: PathBuf,
        /// (patch, applies cleanly forward?)
        missing: Vec<(Patch, bool)>,
    },
    #[error("failed to run `patch` on {tree} (install it: apt-get install patch)")]
    Process {
        tree: PathBuf,
        #[source]
        source: child::ChildError,
    },
}

fn missing_message(tree: &Path, missing: &[(Patch, bool)]) -> String {
    let mut text = format!(
        "failed to use {}: kcycle needs these patches from guest-kernel/patches, which are not applied there \
         (kcycle never modifies --source trees):",
        tree.display()
    );
    for (patch, applies) in missing {
        if *applies {
            text.push_str(&format!(
                "\n  {}: apply it with `git -C {} apply {}` (or `patch -p1 -d {} -i {}`)",
                patch.name,
                tree.display(),
                patch.path.display(),
                tree.display(),
                patch.path.display()
            ));
        } else {
            text.push_str(&format!(
                "\n  {}: it does not apply to this tree either; port {} by hand",
                patch.name,
                patch.path.display()
            ));
        }
    }
    text
}

/// `*.patch` in `dir`, sorted by name (the apply order). A missing dir means none.
pub fn load(dir: &Path) -> Result<Vec<Patch>, PatchError> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PatchError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut patches = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| PatchError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".patch") {
            continue;
        }
        let path = entry.path();
        let bytes = std::fs::read(&path).map_err(|source| PatchError::Read {
            path: path.clone(),
            source,
        })?;
        patches.push(Patch { name, path, bytes });
    }
    patches.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(patches)
}

/// Run `patch -p1` on `tree` with `file`; `Ok(Err(output))` when it does not apply.
fn run_patch(tree: &Path, file: &Path, extra: &[&str]) -> Result<Result<(), String>, PatchError> {
    let out = child::capture(
        Command::new("patch")
            .args(["-p1", "-f", "-s", "-F0", "--no-backup-if-mismatch"])
            .args(extra)
            .arg("-d")
            .arg(tree)
            .arg("-i")
            .arg(file),
        Duration::from_secs(120),
    )
    .map_err(|source| PatchError::Process {
        tree: tree.to_path_buf(),
        source,
    })?;
    if out.status.success() {
        Ok(Ok(()))
    } else {
        let text = format!("{}{}", out.stdout, out.stderr);
        Ok(Err(text.lines().take(5).collect::<Vec<_>>().join("; ")))
    }
}

/// Make the patches applied to a cache-owned tree exactly `wanted`.
/// A failed revert leaves the tree unknown: the caller re-extracts it.
pub fn sync(tree: &Path, wanted: &[Patch]) -> Result<(), PatchError> {
    let record = tree.join(RECORD_DIR);
    let applied = load(&record)?;
    let same = applied.len() == wanted.len()
        && applied
            .iter()
            .zip(wanted)
            .all(|(a, w)| w.name == a.name && a.bytes == w.bytes);
    if same {
        return Ok(());
    }
    for patch in applied.iter().rev() {
        if let Err(output) = run_patch(tree, &patch.path, &["-R"])? {
            return Err(PatchError::Revert {
                name: patch.name.clone(),
                tree: tree.to_path_buf(),
                output,
            });
        }
        let _ = std::fs::remove_file(&patch.path);
    }
    let io = |source| PatchError::Read {
        path: record.clone(),
        source,
    };
    std::fs::create_dir_all(&record).map_err(io)?;
    for patch in wanted {
        if let Err(output) = run_patch(tree, &patch.path, &["-N"])? {
            return Err(PatchError::DoesNotApply {
                name: patch.name.clone(),
                tree: tree.to_path_buf(),
                output,
            });
        }
        // Recorded only once applied, so the record always matches the tree.
        std::fs::write(record.join(&patch.name), &patch.bytes).map_err(io)?;
    }
    Ok(())
}

/// Check, without writing, that every patch is already applied in a user's tree.
pub fn check_applied(tree: &Path, wanted: &[Patch]) -> Result<(), PatchError> {
    let mut missing = Vec::new();
    for patch in wanted {
        let applied = run_patch(tree, &patch.path, &["-R", "--dry-run"])?.is_ok();
        if !applied {
            let applies = run_patch(tree, &patch.path, &["-N", "--dry-run"])?.is_ok();
            missing.push((patch.clone(), applies));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PatchError::MissingInTree {
            tree: tree.to_path_buf(),
            missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "\
--- a/rust/bindings/bindings_helper.h
+++ b/rust/bindings/bindings_helper.h
@@ -1,2 +1,3 @@
 #include <linux/errname.h>
+#include <linux/debugfs.h>
 #include <linux/slab.h>
";

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rust/bindings")).unwrap();
        std::fs::write(
            dir.path().join("rust/bindings/bindings_helper.h"),
            "#include <linux/errname.h>\n#include <linux/slab.h>\n",
        )
        .unwrap();
        dir
    }

    fn patches(text: &str) -> (tempfile::TempDir, Vec<Patch>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0001-debugfs.patch"), text).unwrap();
        std::fs::write(dir.path().join("README"), "not a patch").unwrap();
        let loaded = load(dir.path()).unwrap();
        (dir, loaded)
    }

    fn helper(tree: &Path) -> String {
        std::fs::read_to_string(tree.join("rust/bindings/bindings_helper.h")).unwrap()
    }

    #[test]
    fn load_reads_patch_files_in_order() {
        let (_dir, loaded) = patches(PATCH);
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].name, "0001-debugfs.patch");
        assert!(load(Path::new("/nonexistent/patches")).unwrap().is_empty());
    }

    #[test]
    fn sync_applies_reverts_and_is_idempotent() {
        let tree = tree();
        let (_dir, wanted) = patches(PATCH);
        sync(tree.path(), &wanted).unwrap();
        assert!(helper(tree.path()).contains("debugfs.h"));
        sync(tree.path(), &wanted).unwrap();
        assert_eq!(helper(tree.path()).matches("debugfs.h").count(), 1);

        sync(tree.path(), &[]).unwrap();
        assert!(!helper(tree.path()).contains("debugfs.h"));
        assert!(load(&tree.path().join(RECORD_DIR)).unwrap().is_empty());
    }

    #[test]
    fn sync_names_a_patch_that_does_not_apply() {
        let tree = tree();
        let (_dir, wanted) = patches(&PATCH.replace("errname", "nothere"));
        let err = sync(tree.path(), &wanted).unwrap_err();
        assert!(
            matches!(&err, PatchError::DoesNotApply { name, .. } if name == "0001-debugfs.patch"),
            "{err}"
        );
    }

    #[test]
    fn user_tree_is_checked_not_modified() {
        let tree = tree();
        let (_dir, wanted) = patches(PATCH);
        let before = helper(tree.path());
        let err = check_applied(tree.path(), &wanted).unwrap_err().to_string();
        assert_eq!(helper(tree.path()), before, "the tree was not touched");
        assert!(
            err.contains("0001-debugfs.patch: apply it with `git -C"),
            "{err}"
        );

        run_patch(tree.path(), &wanted[0].path, &[])
            .unwrap()
            .unwrap();
        check_applied(tree.path(), &wanted).unwrap();
    }
}
