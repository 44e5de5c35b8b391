//! External (out-of-tree) modules built against the kernel with `make M=`,
//! e.g. `guest-kernel/rust_i915_table`. Their sources are read once: the same
//! file list goes into the cache key and into the scratch copy that is built,
//! so the project directory never collects build products. The build itself
//! is a make step (`steps::build_module`); this module only knows sources.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("{dir} has no Kbuild or Makefile: kbuild cannot build it (`make M=` needs one)")]
    NotBuildable { dir: PathBuf },
    #[error(
        "failed to build {dir} against {build_dir} ({status}); the compiler's output is above"
    )]
    Make {
        dir: PathBuf,
        build_dir: PathBuf,
        status: String,
    },
    #[error("failed to run make for {dir}")]
    Run {
        dir: PathBuf,
        #[source]
        source: crate::sys::child::ChildError,
    },
    #[error("make M={dir} built no .ko")]
    NoModule { dir: PathBuf },
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

/// The kernel release a module was built for: the first word of its
/// `vermagic=` in the `.modinfo` section (what `modinfo -F vermagic` prints).
pub fn vermagic(elf: &[u8]) -> Option<String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).ok()?;
    let modinfo = file.section_by_name(".modinfo")?.data().ok()?;
    modinfo
        .split(|b| *b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .find_map(|entry| entry.strip_prefix("vermagic="))
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_string)
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

    /// A minimal ELF64 with a `.modinfo` section, as a `.ko` has.
    fn elf_with_modinfo(modinfo: &[u8]) -> Vec<u8> {
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let modinfo_at = 64;
        let shstrtab_at = modinfo_at + modinfo.len();
        let sections_at = (shstrtab_at + shstrtab.len()).next_multiple_of(8);
        let mut elf = vec![0u8; sections_at + 3 * 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        elf[6] = 1; // version
        elf[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[40..48].copy_from_slice(&(sections_at as u64).to_le_bytes());
        elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
        elf[58..60].copy_from_slice(&64u16.to_le_bytes()); // shentsize
        elf[60..62].copy_from_slice(&3u16.to_le_bytes()); // shnum
        elf[62..64].copy_from_slice(&2u16.to_le_bytes()); // shstrndx
        elf[modinfo_at..shstrtab_at].copy_from_slice(modinfo);
        elf[shstrtab_at..shstrtab_at + shstrtab.len()].copy_from_slice(shstrtab);
        let mut header = |index: usize, name: u32, kind: u32, offset: usize, size: usize| {
            let at = sections_at + index * 64;
            elf[at..at + 4].copy_from_slice(&name.to_le_bytes());
            elf[at + 4..at + 8].copy_from_slice(&kind.to_le_bytes());
            elf[at + 24..at + 32].copy_from_slice(&(offset as u64).to_le_bytes());
            elf[at + 32..at + 40].copy_from_slice(&(size as u64).to_le_bytes());
            elf[at + 48..at + 56].copy_from_slice(&1u64.to_le_bytes());
        };
        header(1, 1, 1, modinfo_at, modinfo.len()); // PROGBITS
        header(2, 10, 3, shstrtab_at, shstrtab.len()); // STRTAB
        elf
    }

    #[test]
    fn vermagic_is_read_from_modinfo() {
        let ko = elf_with_modinfo(
            b"license=GPL\0vermagic=6.12.117 SMP preempt mod_unload \0name=my_drv\0",
        );
        assert_eq!(vermagic(&ko).as_deref(), Some("6.12.117"));
        assert_eq!(vermagic(&elf_with_modinfo(b"license=GPL\0")), None);
        assert_eq!(vermagic(b"not an elf"), None);
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
