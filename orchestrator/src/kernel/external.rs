//! External (out-of-tree) modules built against the kernel with `make M=`,
//! e.g. `guest-kernel/rust_i915_table`. Their sources are read once: the same
//! file list goes into the cache key and into the scratch copy that is built,
//! so the project directory never collects build products.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("failed to read external module sources in {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to copy external module {name} to {path}")]
    Copy {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One external module directory and its source files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSource {
    /// The directory name, e.g. `rust_i915_table`.
    pub name: String,
    pub dir: PathBuf,
    /// (path relative to `dir`, contents), sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
}

impl ModuleSource {
    /// Read the sources of `dir`, skipping hidden files, `target/` (cargo) and
    /// anything kbuild produces, so an in-place build there does not change the key.
    pub fn read(dir: &Path) -> Result<Self, ExternalError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "module".into());
        let mut files = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            let read = std::fs::read_dir(&current).map_err(|source| ExternalError::Read {
                path: current.clone(),
                source,
            })?;
            for entry in read {
                let entry = entry.map_err(|source| ExternalError::Read {
                    path: current.clone(),
                    source,
                })?;
                let file_name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                let kind = entry.file_type().map_err(|source| ExternalError::Read {
                    path: path.clone(),
                    source,
                })?;
                if file_name.starts_with('.') {
                    continue;
                }
                if kind.is_dir() {
                    if file_name != "target" {
                        pending.push(path);
                    }
                } else if kind.is_file() && !is_build_product(&file_name) {
                    let bytes = std::fs::read(&path).map_err(|source| ExternalError::Read {
                        path: path.clone(),
                        source,
                    })?;
                    let relative = path.strip_prefix(dir).unwrap_or(&path);
                    files.push((relative.to_string_lossy().into_owned(), bytes));
                }
            }
        }
        files.sort();
        Ok(ModuleSource {
            name,
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// kbuild needs a `Kbuild` or `Makefile` to build anything here.
    pub fn is_buildable(&self) -> bool {
        self.files
            .iter()
            .any(|(path, _)| path == "Kbuild" || path == "Makefile")
    }

    /// Write the sources into `scratch` (created fresh).
    pub fn copy_to(&self, scratch: &Path) -> Result<(), ExternalError> {
        let copy_err = |path: &Path| {
            let name = self.name.clone();
            let path = path.to_path_buf();
            move |source| ExternalError::Copy { name, path, source }
        };
        if scratch.exists() {
            std::fs::remove_dir_all(scratch).map_err(copy_err(scratch))?;
        }
        for (relative, bytes) in &self.files {
            let target = scratch.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(copy_err(parent))?;
            }
            std::fs::write(&target, bytes).map_err(copy_err(&target))?;
        }
        Ok(())
    }

    /// For the cache key.
    pub fn key_part(&self) -> super::cache::ModuleFiles {
        (self.name.clone(), self.files.clone())
    }
}

fn is_build_product(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        ".o", ".ko", ".mod", ".mod.c", ".mod.o", ".cmd", ".rmeta", ".a", ".d",
    ];
    matches!(name, "modules.order" | "Module.symvers" | "Cargo.lock")
        || SUFFIXES.iter().any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("rust_demo");
        std::fs::create_dir_all(m.join("src")).unwrap();
        std::fs::create_dir_all(m.join("target/debug")).unwrap();
        std::fs::write(m.join("Kbuild"), "obj-m := rust_demo.o\n").unwrap();
        std::fs::write(m.join("rust_demo.rs"), "// module\n").unwrap();
        std::fs::write(m.join("src/table.rs"), "// core\n").unwrap();
        std::fs::write(m.join("rust_demo.ko"), "elf").unwrap();
        std::fs::write(m.join(".rust_demo.o.cmd"), "cmd").unwrap();
        std::fs::write(m.join("modules.order"), "x").unwrap();
        std::fs::write(m.join("target/debug/junk"), "x").unwrap();
        dir
    }

    #[test]
    fn reads_sources_only() {
        let dir = module();
        let source = ModuleSource::read(&dir.path().join("rust_demo")).unwrap();
        assert_eq!(source.name, "rust_demo");
        let paths: Vec<&str> = source.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["Kbuild", "rust_demo.rs", "src/table.rs"]);
        assert!(source.is_buildable());
    }

    #[test]
    fn build_products_do_not_change_the_key_but_sources_do() {
        let dir = module();
        let path = dir.path().join("rust_demo");
        let before = ModuleSource::read(&path).unwrap().key_part();
        std::fs::write(path.join("rust_demo.mod.o"), "more").unwrap();
        assert_eq!(ModuleSource::read(&path).unwrap().key_part(), before);
        std::fs::write(path.join("rust_demo.rs"), "// changed\n").unwrap();
        assert_ne!(ModuleSource::read(&path).unwrap().key_part(), before);
    }

    #[test]
    fn without_kbuild_it_is_not_buildable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("table.rs"), "// host build only\n").unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\n").unwrap();
        assert!(!ModuleSource::read(dir.path()).unwrap().is_buildable());
    }

    #[test]
    fn copy_recreates_the_sources() {
        let dir = module();
        let source = ModuleSource::read(&dir.path().join("rust_demo")).unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::write(scratch.join("stale.o"), "old").unwrap();
        source.copy_to(&scratch).unwrap();
        assert!(!scratch.join("stale.o").exists());
        assert_eq!(
            std::fs::read_to_string(scratch.join("src/table.rs")).unwrap(),
            "// core\n"
        );
        assert_eq!(ModuleSource::read(&scratch).unwrap().files, source.files);
    }
}
