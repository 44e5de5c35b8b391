//! `kcycle kernel build`: source -> config -> make -> external modules ->
//! artifact directory, through the cache.
//!
//! Three levels of reuse:
//! - entry hit: a complete artifact directory for the full key exists; no make runs;
//! - kernel hit: the build directory's stamp matches the kernel key (only the
//!   external modules changed): install the in-tree modules again and build the
//!   external ones;
//! - otherwise: configure and `make` in the same build directory, which kbuild
//!   turns into an incremental build.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use super::artifacts::{self, Artifacts, Manifest};
use super::cache::{self, BuildLock, Cache, CacheError, KeyInputs};
use super::config::{FragmentError, Mismatch};
use super::external::{ExternalError, ModuleSource};
use super::kconfig::Explanation;
use super::make;
use super::patches::{self, PatchError};
use super::progress::Progress;
use super::project::{read_inputs, Project};
use super::source::{self, Identified, Origin, SourceError, SourceSpec};
use super::steps::{list_modules, Runner};
use super::toolchain::{Toolchain, ToolchainError};
use crate::sys::child::{self, ChildError, Logged};
use crate::sys::Cancel;

/// The build directory remembers which kernel key it last built completely.
const KERNEL_STAMP: &str = ".kcycle-kernel-key";
/// Complete entries kept in the cache (least recently used ones are pruned);
/// about 20 MB each. Generous, because other tools may hold an entry's path
/// (KCYCLE_KERNEL) without going through `kcycle kernel build`.
const KEEP_ENTRIES: usize = 30;
const KERNEL_MAKE_LIMIT: Duration = Duration::from_secs(4 * 3600);
pub(super) const SHORT_MAKE_LIMIT: Duration = Duration::from_secs(30 * 60);
const LOCK_WAIT_LIMIT: Duration = Duration::from_secs(4 * 3600);

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

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub source: SourceSpec,
    pub project: Project,
    /// Directories to build with `make M=`; one without Kbuild/Makefile is skipped with a warning.
    pub external_modules: Vec<PathBuf>,
    pub cache: Cache,
    /// Rebuild even when the cache holds a complete entry.
    pub force: bool,
    /// Also copy the artifacts here.
    pub out: Option<PathBuf>,
    /// Draw a spinner (else plain progress lines).
    pub spinner: bool,
    /// make -j.
    pub jobs: usize,
}

/// What a build produced and how much work it took.
#[derive(Debug)]
pub struct Built {
    /// The cache entry (or `--out` copy).
    pub artifacts: Artifacts,
    /// A complete entry existed: nothing ran.
    pub cache_hit: bool,
    /// `make bzImage modules` ran (false for an entry hit or a module-only rebuild).
    pub kernel_rebuilt: bool,
    /// The full build log, when anything was built.
    pub log: Option<PathBuf>,
}

/// Default `make -j`: one more job than cores keeps the CPUs busy during I/O.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
}

/// Build (or find in the cache) the kernel described by `request`.
pub fn build(request: &BuildRequest) -> Result<Built, BuildError> {
    let mut progress = Progress::new(request.spinner);
    let inputs = read_inputs(request, &progress)?;
    let identified = identify_or_install(request, &mut progress)?;
    let toolchain = Toolchain::discover();
    let versions = toolchain.versions();
    let file_name = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let kernel_key = cache::kernel_key(&KeyInputs {
        source: identified.identity.clone(),
        fragments: inputs
            .fragments
            .iter()
            .map(|(p, b)| (file_name(p), b.clone()))
            .collect(),
        patches: inputs
            .patches
            .iter()
            .map(|p| (p.name.clone(), p.bytes.clone()))
            .collect(),
        toolchain: versions.clone(),
    });
    let module_parts: Vec<_> = inputs.modules.iter().map(ModuleSource::key_part).collect();
    let key = cache::entry_key(&kernel_key, &module_parts);

    if !request.force {
        if let Ok(found) = Artifacts::open(&request.cache.entry_dir(&key)) {
            progress.finish();
            return finish_hit(request, found);
        }
    }

    let interrupt = Cancel::process();
    let started = Instant::now();
    let (src_dir, version) = prepare_source(request, &identified, &mut progress, &interrupt)?;
    let source_id = identified.cache_id(&version);
    let build_dir = request.cache.build_dir(&source_id);
    // Not with_extension: the id holds dots (linux-6.12.117-…).
    let lock_path = build_dir.with_file_name(format!("{source_id}.lock"));
    let lock = BuildLock::acquire(&lock_path, LOCK_WAIT_LIMIT, &interrupt, || {
        progress.note(&format!(
            "waiting for another kcycle kernel build that uses {}",
            build_dir.display()
        ))
    })
    .map_err(|e| match e {
        CacheError::Interrupted { signal, .. } => BuildError::Interrupted {
            step: "the wait for the build directory lock".into(),
            signal,
        },
        other => other.into(),
    })?;
    // Another kcycle may have finished this very entry while we waited.
    if !request.force {
        if let Ok(found) = Artifacts::open(&request.cache.entry_dir(&key)) {
            progress.finish();
            return finish_hit(request, found);
        }
    }

    let log_path = request.cache.log_file(&key);
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    let log = File::create(&log_path).map_err(io_err("create", &log_path))?;
    let mut runner = Runner {
        src_dir: &src_dir,
        build_dir: &build_dir,
        toolchain: &toolchain,
        jobs: request.jobs,
        log,
        log_path: log_path.clone(),
        cache_root: request.cache.root().to_path_buf(),
        progress: &mut progress,
        cancel: &interrupt,
        lock_fd: lock.raw_fd(),
    };
    runner.note_log();

    apply_patches(&identified, &src_dir, &inputs.patches, request, &mut runner)?;

    let stamp_path = build_dir.join(KERNEL_STAMP);
    let stamp = std::fs::read_to_string(&stamp_path).unwrap_or_default();
    let kernel_rebuilt = request.force || stamp.trim() != kernel_key;
    if kernel_rebuilt {
        std::fs::create_dir_all(&build_dir).map_err(io_err("create", &build_dir))?;
        // Before touching the build dir, so a broken toolchain or a rejected
        // fragment leaves it (and its stamp) as it was.
        runner.check_rust()?;
        runner.configure(&inputs)?;
        // Until make succeeds, the build dir matches no key.
        let _ = std::fs::remove_file(&stamp_path);
        runner.make(
            "build the kernel (make bzImage modules)",
            &["bzImage", "modules"],
            KERNEL_MAKE_LIMIT,
        )?;
        std::fs::write(&stamp_path, &kernel_key).map_err(io_err("write", &stamp_path))?;
    } else {
        runner
            .progress
            .note("kernel unchanged; rebuilding external modules only");
    }

    let pending = request.cache.begin_entry(&key)?;
    let release = runner.install(&pending, &inputs.modules, &request.cache, &key)?;
    let config_text = std::fs::read(pending.dir().join(artifacts::CONFIG_FILE))
        .map_err(io_err("read", pending.dir()))?;
    let extra_dir = pending
        .dir()
        .join(artifacts::MODULES_DIR)
        .join("lib/modules")
        .join(&release)
        .join("extra");
    let manifest = Manifest {
        kernel_release: release,
        source: identified.describe(&version),
        config_hash: cache::sha256_hex(&config_text),
        toolchain: versions,
        key: key.clone(),
        build_dir: build_dir.clone(),
        built_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        build_seconds: started.elapsed().as_secs_f64(),
        external_modules: list_modules(&extra_dir),
    };
    write_manifest(pending.dir(), &manifest)?;
    let dir = pending.commit()?;
    drop(lock);
    request.cache.prune_entries(KEEP_ENTRIES);
    progress.finish();
    eprintln!(
        "kcycle: built kernel {} in {:.0} s ({}; log: {})",
        manifest.kernel_release,
        manifest.build_seconds,
        if kernel_rebuilt {
            "kernel and modules"
        } else {
            "external modules only"
        },
        log_path.display()
    );
    let artifacts = match &request.out {
        Some(out) => copy_out(&dir, out)?,
        None => Artifacts::open(&dir).map_err(|e| BuildError::Incomplete {
            what: e.to_string(),
            dir: dir.clone(),
        })?,
    };
    Ok(Built {
        artifacts,
        cache_hit: false,
        kernel_rebuilt,
        log: Some(log_path),
    })
}

fn finish_hit(request: &BuildRequest, found: Artifacts) -> Result<Built, BuildError> {
    request.cache.touch_entry(&found.dir);
    eprintln!(
        "kcycle: kernel {} from the cache ({})",
        found.manifest.kernel_release, found.manifest.key
    );
    let artifacts = match &request.out {
        Some(out) => copy_out(&found.dir, out)?,
        None => found,
    };
    Ok(Built {
        artifacts,
        cache_hit: true,
        kernel_rebuilt: false,
        log: None,
    })
}

/// Identify the source; install Debian's tarball first if it is missing and we can.
fn identify_or_install(
    request: &BuildRequest,
    progress: &mut Progress,
) -> Result<Identified, BuildError> {
    match source::identify(&request.source, &request.cache) {
        Err(SourceError::MissingTarball { path }) if crate::host::can_install() => {
            progress.phase(&format!("installing {} (apt-get)", source::DEBIAN_PACKAGE));
            crate::host::apt_install(&[source::DEBIAN_PACKAGE.to_string()]).map_err(|e| {
                BuildError::Install {
                    package: source::DEBIAN_PACKAGE.into(),
                    detail: format!("{e:#}"),
                }
            })?;
            if !path.exists() {
                return Err(SourceError::MissingTarball { path }.into());
            }
            Ok(source::identify(&request.source, &request.cache)?)
        }
        other => Ok(other?),
    }
}

/// The directory to build from and its kernel version; extracts the Debian tarball once.
fn prepare_source(
    request: &BuildRequest,
    identified: &Identified,
    progress: &mut Progress,
    interrupt: &Cancel,
) -> Result<(PathBuf, String), BuildError> {
    let (tarball, sha256) = match &identified.origin {
        Origin::Tree { dir, .. } => return Ok((dir.clone(), source::read_version(dir)?)),
        Origin::Debian { tarball, sha256 } => (tarball, sha256),
    };
    let src_root = request.cache.sources_root();
    if let Some(existing) = find_extracted(&src_root, &sha256[..12]) {
        let version = source::read_version(&existing)?;
        return Ok((existing, version));
    }
    std::fs::create_dir_all(&src_root).map_err(io_err("create", &src_root))?;
    // A killed extraction leaves 1.5 GB behind; its pid tells it is dead.
    cache::remove_stale_temporaries(&src_root);
    let tmp = src_root.join(format!(".tmp-{}-{}", &sha256[..12], std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
    progress.phase(&format!("extracting {}", tarball.display()));
    let mut log = Vec::new();
    let status = child::run_logged(
        Command::new("tar")
            .arg("-xJf")
            .arg(tarball)
            .arg("-C")
            .arg(&tmp)
            .arg("--strip-components=1"),
        Logged {
            log: &mut log,
            observe: &mut |_| {},
            limit: SHORT_MAKE_LIMIT,
            cancel: interrupt,
            inherit_fd: None,
        },
    );
    let fail = |tmp: &Path| {
        let _ = std::fs::remove_dir_all(tmp);
    };
    let status = status.map_err(|source| {
        fail(&tmp);
        process_error("extract the kernel tarball", source)
    })?;
    let output = String::from_utf8_lossy(&log).into_owned();
    if !status.success() {
        fail(&tmp);
        if make::disk_full(&output) {
            return Err(BuildError::DiskFull {
                step: format!("extract {}", tarball.display()),
                place: request.cache.root().to_path_buf(),
                log: None,
            });
        }
        return Err(BuildError::Extract {
            tarball: tarball.clone(),
            output: make::tail(&output, 5),
        });
    }
    let version = source::read_version(&tmp).inspect_err(|_| fail(&tmp))?;
    let dest = src_root.join(identified.cache_id(&version));
    if let Err(source) = std::fs::rename(&tmp, &dest) {
        fail(&tmp);
        // Another kcycle extracted the same tarball first: use its copy.
        if !dest.is_dir() {
            return Err(io_err("rename into place", &dest)(source));
        }
    }
    Ok((dest, version))
}

/// An extracted source for this tarball hash (`linux-<version>-<sha12>`).
fn find_extracted(src_root: &Path, sha_prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(src_root)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("linux-") && name.ends_with(&format!("-{sha_prefix}"))
        })
}

fn apply_patches(
    identified: &Identified,
    src_dir: &Path,
    wanted: &[patches::Patch],
    request: &BuildRequest,
    runner: &mut Runner<'_>,
) -> Result<(), BuildError> {
    match &identified.origin {
        Origin::Tree { dir, .. } => Ok(patches::check_applied(dir, wanted)?),
        Origin::Debian { .. } => {
            runner.progress.phase("applying guest-kernel/patches");
            match patches::sync(src_dir, wanted) {
                Err(PatchError::Revert { name, output, .. }) => {
                    // The tree is in an unknown state: start over from the tarball. The
                    // old objects would look newer than the re-extracted files, so they go too.
                    runner.progress.note(&format!(
                        "reverting {name} failed ({output}); extracting the source again"
                    ));
                    for dir in [src_dir, runner.build_dir] {
                        std::fs::remove_dir_all(dir).map_err(io_err("remove", dir))?;
                    }
                    let (again, _) =
                        prepare_source(request, identified, runner.progress, runner.cancel)?;
                    Ok(patches::sync(&again, wanted)?)
                }
                other => Ok(other?),
            }
        }
    }
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), BuildError> {
    let path = dir.join(artifacts::MANIFEST_FILE);
    let text = serde_json::to_string_pretty(manifest).map_err(|e| BuildError::Io {
        what: "serialize",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, text + "\n").map_err(io_err("write", &path))
}

/// Copy a complete entry to `out`, manifest last, and open it there.
fn copy_out(entry: &Path, out: &Path) -> Result<Artifacts, BuildError> {
    std::fs::create_dir_all(out).map_err(io_err("create", out))?;
    // A stale manifest must not vouch for a half-copied directory.
    let _ = std::fs::remove_file(out.join(artifacts::MANIFEST_FILE));
    let modules = out.join(artifacts::MODULES_DIR);
    if modules.exists() {
        std::fs::remove_dir_all(&modules).map_err(io_err("remove", &modules))?;
    }
    copy_tree(&entry.join(artifacts::MODULES_DIR), &modules)?;
    for file in [
        artifacts::BZIMAGE_FILE,
        artifacts::CONFIG_FILE,
        artifacts::MANIFEST_FILE,
    ] {
        std::fs::copy(entry.join(file), out.join(file))
            .map_err(io_err("copy", &entry.join(file)))?;
    }
    Artifacts::open(out).map_err(|e| BuildError::Incomplete {
        what: e.to_string(),
        dir: out.to_path_buf(),
    })
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(to).map_err(io_err("create", to))?;
    for entry in std::fs::read_dir(from).map_err(io_err("read", from))? {
        let entry = entry.map_err(io_err("read", from))?;
        let kind = entry.file_type().map_err(io_err("read", &entry.path()))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(io_err("read", &entry.path()))?;
            std::os::unix::fs::symlink(link, &target).map_err(io_err("link", &target))?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io_err("copy", &entry.path()))?;
        }
    }
    Ok(())
}

pub(super) fn process_error(step: &str, source: ChildError) -> BuildError {
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
pub(super) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
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

    #[test]
    fn extracted_source_is_found_by_tarball_hash() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("linux-6.12.117-585a4a074597")).unwrap();
        std::fs::create_dir_all(root.path().join(".tmp-585a4a074597-1")).unwrap();
        assert_eq!(
            find_extracted(root.path(), "585a4a074597"),
            Some(root.path().join("linux-6.12.117-585a4a074597"))
        );
        assert_eq!(find_extracted(root.path(), "000000000000"), None);
    }
}
