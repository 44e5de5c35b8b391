//! The kernel artifact directory: what `kcycle kernel build` produces and
//! what `boot`, `image` and `run` consume.
//!
//! Layout (fixed; `manifest.json` is written last, so a directory with a
//! manifest is complete):
//!
//! ```text
//! <dir>/bzImage
//! <dir>/config                      the .config the kernel was built with
//! <dir>/modules/lib/modules/<release>/...   modules_install tree with modules.dep
//!                                   (extra/rust_i915_table.ko among them)
//! <dir>/manifest.json               see [`Manifest`]
//! ```
//!
//! The build directory (usable as `make -C <build_dir> M=<dir>`) is named in
//! the manifest rather than copied: it is large and lives in the cache.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const BZIMAGE_FILE: &str = "bzImage";
pub const CONFIG_FILE: &str = "config";
pub const MODULES_DIR: &str = "modules";

/// What went into a kernel build and where its parts are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `uname -r` of the built kernel, e.g. `6.12.117`.
    pub kernel_release: String,
    /// Where the source came from: `debian linux-source-6.12 6.12.117 (sha256 …)` or
    /// `git <dir> <HEAD> (+dirty <hash>)`.
    pub source: String,
    /// sha256 of the final `.config`.
    pub config_hash: String,
    /// Tool name to version, e.g. `rustc` → `rustc 1.85.0 …`.
    pub toolchain: std::collections::BTreeMap<String, String>,
    /// The cache key of this build (hex).
    pub key: String,
    /// The O= build directory, usable for external modules.
    pub build_dir: PathBuf,
    /// RFC 3339 UTC time the build finished.
    pub built_at: String,
    /// Wall time of the build in seconds (0 for a cache hit of a previous build).
    pub build_seconds: f64,
    /// External modules installed under `modules/lib/modules/<release>/extra/`,
    /// e.g. `rust_i915_table.ko`.
    #[serde(default)]
    pub external_modules: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactsError {
    #[error("failed to read kernel artifacts in {dir}: {what} is missing (run `kcycle kernel build` to produce it)")]
    Missing { dir: PathBuf, what: String },
    #[error("failed to parse {path}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A complete kernel artifact directory.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Artifacts {
    /// Open and check an artifact directory: manifest, bzImage and modules must exist.
    pub fn open(dir: &Path) -> Result<Self, ArtifactsError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ArtifactsError::Missing {
                    dir: dir.to_path_buf(),
                    what: MANIFEST_FILE.into(),
                }
            } else {
                ArtifactsError::Io {
                    path: manifest_path.clone(),
                    source,
                }
            }
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|source| ArtifactsError::Manifest {
                path: manifest_path,
                source,
            })?;
        let artifacts = Artifacts {
            dir: dir.to_path_buf(),
            manifest,
        };
        for required in [artifacts.bzimage(), artifacts.modules_dir()] {
            if !required.exists() {
                return Err(ArtifactsError::Missing {
                    dir: dir.to_path_buf(),
                    what: required
                        .strip_prefix(dir)
                        .unwrap_or(&required)
                        .display()
                        .to_string(),
                });
            }
        }
        Ok(artifacts)
    }

    pub fn bzimage(&self) -> PathBuf {
        self.dir.join(BZIMAGE_FILE)
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// The INSTALL_MOD_PATH root: copy it to `/` of the guest.
    pub fn modules_root(&self) -> PathBuf {
        self.dir.join(MODULES_DIR)
    }

    /// `modules/lib/modules/<release>`.
    pub fn modules_dir(&self) -> PathBuf {
        self.modules_root()
            .join("lib/modules")
            .join(&self.manifest.kernel_release)
    }

    /// Loadable modules (from `modules.dep`) and built-in ones (from
    /// `modules.builtin`), with '-' spelled '_' as in /proc/modules.
    pub fn modules(&self) -> Result<KernelModules, ArtifactsError> {
        let read = |name: &str| {
            let path = self.modules_dir().join(name);
            std::fs::read_to_string(&path).map_err(|source| ArtifactsError::Io { path, source })
        };
        let builtin = read("modules.builtin").unwrap_or_default();
        Ok(KernelModules::parse(&read("modules.dep")?, &builtin))
    }
}

/// The modules a kernel has, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelModules {
    pub loadable: std::collections::BTreeSet<String>,
    pub builtin: std::collections::BTreeSet<String>,
}

impl KernelModules {
    /// `kernel/drivers/gpu/drm/i915/i915.ko: deps…` lines; `kernel/lib/x.ko` lines.
    pub fn parse(modules_dep: &str, modules_builtin: &str) -> KernelModules {
        let names = |text: &str| {
            text.lines()
                .filter_map(|line| {
                    let path = line.split(':').next()?.trim();
                    let file = path.rsplit('/').next()?;
                    let stem = file.split(".ko").next()?;
                    (!stem.is_empty()).then(|| stem.replace('-', "_"))
                })
                .collect()
        };
        KernelModules {
            loadable: names(modules_dep),
            builtin: names(modules_builtin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            kernel_release: "6.12.117".into(),
            source: "test".into(),
            config_hash: "00".into(),
            toolchain: Default::default(),
            key: "ab".into(),
            build_dir: "/nowhere".into(),
            built_at: "2026-11-24T00:00:00Z".into(),
            build_seconds: 0.0,
            external_modules: vec!["rust_i915_table.ko".into()],
        }
    }

    #[test]
    fn module_names_from_modules_dep() {
        let modules = KernelModules::parse(
            "kernel/drivers/gpu/drm/i915/i915.ko: kernel/drivers/gpu/drm/drm.ko\nextra/rust_i915_table.ko:\nkernel/lib/list-test.ko.xz:\n",
            "kernel/drivers/tty/serial/8250/8250.ko\n",
        );
        let loadable: Vec<&str> = modules.loadable.iter().map(String::as_str).collect();
        assert_eq!(loadable, ["i915", "list_test", "rust_i915_table"]);
        assert!(modules.builtin.contains("8250"));
    }

    #[test]
    fn open_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = Artifacts::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("manifest.json is missing"), "{err}");

        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            serde_json::to_string(&manifest()).unwrap(),
        )
        .unwrap();
        let err = Artifacts::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bzImage is missing"), "{err}");

        std::fs::write(dir.path().join(BZIMAGE_FILE), b"").unwrap();
        let err = Artifacts::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("modules/lib/modules/6.12.117 is missing"),
            "{err}"
        );

        std::fs::create_dir_all(dir.path().join("modules/lib/modules/6.12.117")).unwrap();
        let artifacts = Artifacts::open(dir.path()).unwrap();
        assert_eq!(artifacts.manifest, manifest());
    }
}
