//! Errors of the kernel build, and the helpers that make them explain
//! themselves (a dropped config option's Kconfig reason, a full disk).

use std::path::{Path, PathBuf};

use super::cache::CacheError;
use super::config::{FragmentError, Mismatch};
use super::external::ExternalError;
use super::kconfig::Explanation;
use super::patches::PatchError;
use super::source::SourceError;
use super::toolchain::ToolchainError;
use crate::sys::child::ChildError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "failed to find the kcycle project (guest-kernel/configs): run kcycle inside its clone \
         or set KCYCLE_ROOT to it"
    )]
    NoProject,
    #[error("failed to read config fragments in {dir}: there are none (expected *.config files)")]
    NoFragments { dir: PathBuf },
    #[error(transparent)]
    Fragment(#[from] FragmentError),
    #[error("{}", dropped_message(.0))]
    ConfigDropped(Vec<(Mismatch, String)>),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error(transparent)]
    External(#[from] ExternalError),
    #[error(transparent)]
    Toolchain(#[from] ToolchainError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(
        "failed to {step}: {}\n--- last lines of {} ---\n{tail}",
        first_error.as_deref().unwrap_or("make failed without an error line"),
        log.display()
    )]
    Make {
        step: String,
        log: PathBuf,
        first_error: Option<String>,
        tail: String,
    },
    #[error(
        "failed to {step}: no space left on device under {}; free some space or point \
         KCYCLE_CACHE at a larger disk (the kernel cache needs about 3 GB: 1.7 GB source, \
         0.9 GB build){}",
        place.display(),
        log.as_ref().map(|l| format!(". Full log: {}", l.display())).unwrap_or_default()
    )]
    DiskFull {
        step: String,
        place: PathBuf,
        log: Option<PathBuf>,
    },
    #[error(
        "kernel build interrupted by {signal} during {step}; nothing was added to the cache \
         (the build directory keeps its objects, so the next run continues from there)"
    )]
    Interrupted { step: String, signal: &'static str },
    #[error("failed to {step}")]
    Process {
        step: String,
        #[source]
        source: ChildError,
    },
    #[error("failed to {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to extract {tarball} (is it a complete .tar.xz?): {output}")]
    Extract { tarball: PathBuf, output: String },
    #[error("failed to install {package}: {detail}")]
    Install { package: String, detail: String },
    #[error("failed to find {what} after the build in {dir}")]
    Incomplete { what: String, dir: PathBuf },
}

impl BuildError {
    /// Compiler messages about the scratch copy of a module name its real sources.
    pub(super) fn point_at_sources(self, scratch: &Path, sources: &Path) -> Self {
        match self {
            BuildError::Make {
                step,
                log,
                first_error,
                tail,
            } => {
                let (from, to) = (scratch.to_string_lossy(), sources.to_string_lossy());
                BuildError::Make {
                    step,
                    log,
                    first_error: first_error.map(|l| l.replace(&*from, &to)),
                    tail: tail.replace(&*from, &to),
                }
            }
            other => other,
        }
    }

    /// The user's input (fragments, source tree, patches) is at fault rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            BuildError::NoProject
                | BuildError::NoFragments { .. }
                | BuildError::Fragment(_)
                | BuildError::ConfigDropped(_)
                | BuildError::Source(
                    SourceError::MissingTree { .. }
                        | SourceError::NotKernelTree { .. }
                        | SourceError::InTreeBuild { .. }
                        | SourceError::NoVersion { .. }
                )
                | BuildError::Patch(
                    PatchError::DoesNotApply { .. } | PatchError::MissingInTree { .. }
                )
        )
    }
}

fn dropped_message(dropped: &[(Mismatch, String)]) -> String {
    let mut text = String::from(
        "failed to configure the kernel: Kconfig did not keep these requested options:",
    );
    for (mismatch, why) in dropped {
        text.push_str(&format!(
            "\n  {} ({}:{}) -> {}: {why}",
            mismatch.requested.spelled(),
            mismatch.requested.file.display(),
            mismatch.requested.line,
            mismatch.actual_spelled(),
        ));
    }
    text
}

/// Turn a Kconfig explanation into the "why" of a dropped option.
pub fn explain_text(name: &str, explanation: &Explanation) -> String {
    match explanation {
        Explanation::Unknown => {
            format!("CONFIG_{name} is not a Kconfig symbol of this tree (a typo, or gone in this version)")
        }
        Explanation::Unmet(unmet) => unmet
            .iter()
            .map(|(condition, symbols)| {
                let unset = if symbols.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} not set; add {} to a fragment)",
                        symbols
                            .iter()
                            .map(|s| format!("CONFIG_{s}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        symbols
                            .iter()
                            .map(|s| format!("CONFIG_{s}=y"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                };
                format!(
                    "unmet dependency `{}` from {} at {}{unset}",
                    condition.expr, condition.from, condition.at
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Explanation::Undetermined { defined_at } => format!(
            "its dependencies hold; check `select`, `choice` or the option type at {}",
            defined_at.join(", ")
        ),
    }
}

pub(crate) fn process_error(step: &str, source: ChildError) -> BuildError {
    match source {
        ChildError::Interrupted { signal, .. } => BuildError::Interrupted {
            step: step.to_string(),
            signal,
        },
        source => BuildError::Process {
            step: step.to_string(),
            source,
        },
    }
}

/// io errors with the path; ENOSPC becomes [`BuildError::DiskFull`].
pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            BuildError::DiskFull {
                step: format!("{what} {}", path.display()),
                place: path,
                log: None,
            }
        } else {
            BuildError::Io { what, path, source }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::config;
    use crate::kernel::kconfig::Condition;

    #[test]
    fn dropped_option_message_names_option_dependency_and_fix() {
        let requested = config::parse_fragment(
            Path::new("guest-kernel/configs/20-i915-selftest.config"),
            "CONFIG_DRM_I915_SELFTEST=y\n",
        )
        .unwrap();
        let mismatch = Mismatch {
            requested: requested[0].clone(),
            actual: None,
        };
        let why = explain_text(
            "DRM_I915_SELFTEST",
            &Explanation::Unmet(vec![(
                Condition {
                    expr: "EXPERT".into(),
                    from: "menu \"drm/i915 Debugging\"".into(),
                    at: "drivers/gpu/drm/i915/Kconfig:172".into(),
                },
                vec!["EXPERT".into()],
            )]),
        );
        let text = BuildError::ConfigDropped(vec![(mismatch, why)]).to_string();
        assert_eq!(
            text,
            "failed to configure the kernel: Kconfig did not keep these requested options:\n  \
             CONFIG_DRM_I915_SELFTEST=y (guest-kernel/configs/20-i915-selftest.config:1) -> \
             CONFIG_DRM_I915_SELFTEST is absent: unmet dependency `EXPERT` from menu \
             \"drm/i915 Debugging\" at drivers/gpu/drm/i915/Kconfig:172 (CONFIG_EXPERT not set; \
             add CONFIG_EXPERT=y to a fragment)"
        );
    }

    #[test]
    fn unknown_symbol_reads_as_a_typo() {
        assert!(explain_text("FOO", &Explanation::Unknown).contains("not a Kconfig symbol"));
    }

    #[test]
    fn bad_input_is_told_apart_from_infrastructure() {
        let typo = BuildError::Fragment(FragmentError::BadValue {
            file: "f".into(),
            line: 1,
            text: "CONFIG_FOO=q".into(),
            value: "q".into(),
        });
        assert!(typo.is_bad_input());
        let disk = BuildError::DiskFull {
            step: "build".into(),
            place: "/c".into(),
            log: Some("/c/l".into()),
        };
        assert!(!disk.is_bad_input());
        assert!(disk.to_string().contains("no space left on device"));
    }

    #[test]
    fn enospc_becomes_disk_full() {
        let err =
            io_err("write", Path::new("/c/x"))(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(err, BuildError::DiskFull { .. }), "{err}");
    }
}
