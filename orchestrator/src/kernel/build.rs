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
use super::error::{io_err, process_error, BuildError};
use super::external::ModuleSource;
use super::make;
use super::patches::{self, PatchError};
use super::profile::Profile;
use super::progress::BuildEvent;
use super::project::{read_inputs, Inputs, Project};
use super::source::{self, Identified, SourceOrigin, SourceSpec};
use super::steps::{list_modules, Runner, SHORT_MAKE_LIMIT};
use super::toolchain::Toolchain;
use crate::sys::child::{self, Logged};
use crate::sys::Cancel;

/// The build directory remembers which kernel key it last built completely.
const KERNEL_STAMP: &str = ".kcycle-kernel-key";
/// Complete entries kept in the cache (least recently used ones are pruned);
/// about 20 MB each. Generous, because other tools may hold an entry's path
/// (KCYCLE_KERNEL) without going through `kcycle kernel build`.
const KEEP_ENTRIES: usize = 30;
const KERNEL_MAKE_LIMIT: Duration = Duration::from_secs(4 * 3600);
const LOCK_WAIT_LIMIT: Duration = Duration::from_secs(4 * 3600);

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub source: SourceSpec,
    pub project: Project,
    /// Directories to build with `make M=`; one without Kbuild/Makefile is skipped with a warning.
    pub external_modules: Vec<PathBuf>,
    /// Config fragments merged after the project's, in this order (`--fragment`).
    pub extra_fragments: Vec<PathBuf>,
    /// The base config the fragments go onto (`--profile`).
    pub profile: Profile,
    pub cache: Cache,
    /// Rebuild even when the cache holds a complete entry.
    pub force: bool,
    /// Also copy the artifacts here.
    pub out: Option<PathBuf>,
    /// make -j.
    pub jobs: usize,
    /// Stops the build (make is terminated with grace; nothing enters the cache).
    pub cancel: Cancel,
}

impl BuildRequest {
    /// A build of `source` with the project's configuration as it is: the
    /// default profile, no extra fragment, no `--force` or `--out`, `make
    /// -j` [`super::default_jobs`], stopped when the process is interrupted.
    pub fn new(
        source: SourceSpec,
        project: Project,
        cache: Cache,
        external_modules: Vec<PathBuf>,
    ) -> Self {
        BuildRequest {
            source,
            project,
            external_modules,
            extra_fragments: Vec::new(),
            profile: Profile::default(),
            cache,
            force: false,
            out: None,
            jobs: super::default_jobs(),
            cancel: Cancel::process(),
        }
    }
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

/// What the build will produce, known before anything runs.
struct Plan {
    inputs: Inputs,
    identified: Identified,
    toolchain: Toolchain,
    versions: std::collections::BTreeMap<String, String>,
    /// The kernel's key (source, fragments, patches, toolchain).
    kernel_key: String,
    /// The entry's key (the kernel's plus the external modules').
    key: String,
}

/// Build (or find in the cache) the kernel described by `request`. Progress
/// goes to `observe`; nothing is printed. A missing Debian source is
/// [`super::source::SourceError::MissingTarball`]: the caller may install it and retry.
pub fn build(
    request: &BuildRequest,
    observe: &mut dyn FnMut(BuildEvent),
) -> Result<Built, BuildError> {
    let plan = plan(request, observe)?;
    if let Some(hit) = cached(request, &plan.key, observe)? {
        return Ok(hit);
    }
    let started = Instant::now();
    let (src_dir, version) = prepare_source(request, &plan.identified, observe)?;
    let source_id = plan.identified.cache_id(&version);
    // Extra fragments or another profile make another configuration: a build
    // dir of its own, so switching between them rebuilds none from scratch.
    let build_id = if request.extra_fragments.is_empty() && request.profile == Profile::Full {
        source_id.clone()
    } else {
        format!(
            "{source_id}-{}",
            &plan.kernel_key[..12.min(plan.kernel_key.len())]
        )
    };
    let build_dir = request.cache.build_dir(&build_id);
    let lock = lock_build_dir(request, &build_dir, &source_id, observe)?;
    // Another kcycle may have finished this very entry while we waited.
    if let Some(hit) = cached(request, &plan.key, observe)? {
        return Ok(hit);
    }
    let log_path = request.cache.log_file(&plan.key);
    let mut runner = Runner {
        src_dir: &src_dir,
        build_dir: &build_dir,
        toolchain: &plan.toolchain,
        jobs: request.jobs,
        log: open_log(&log_path)?,
        log_path: log_path.clone(),
        cache_root: request.cache.root().to_path_buf(),
        observe,
        cancel: &request.cancel,
        lock_fd: lock.raw_fd(),
    };
    runner.note_log();
    apply_patches(
        &plan.identified,
        &src_dir,
        &plan.inputs.patches,
        request,
        &mut runner,
    )?;
    let kernel_rebuilt = make_kernel(&mut runner, request, &plan)?;
    let described = plan.identified.describe(&version);
    let dir = install_entry(&mut runner, request, &plan, described, started)?;
    drop(lock);
    request.cache.prune_entries(KEEP_ENTRIES);
    let artifacts = open_or_copy_out(request, &dir)?;
    let manifest = &artifacts.manifest;
    (runner.observe)(BuildEvent::Note(format!(
        "built kernel {} in {:.0} s ({}; log: {})",
        manifest.kernel_release,
        manifest.build_seconds,
        if kernel_rebuilt {
            "kernel and modules"
        } else {
            "external modules only"
        },
        log_path.display()
    )));
    Ok(Built {
        artifacts,
        cache_hit: false,
        kernel_rebuilt,
        log: Some(log_path),
    })
}

/// Read the project's inputs, identify the source and compute the keys.
fn plan(request: &BuildRequest, observe: &mut dyn FnMut(BuildEvent)) -> Result<Plan, BuildError> {
    let inputs = read_inputs(
        &request.project,
        request.profile,
        &request.extra_fragments,
        &request.external_modules,
        observe,
    )?;
    let identified = source::identify(&request.source, &request.cache)?;
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
        profile: inputs.profile.key_part(),
    });
    let module_parts: Vec<_> = inputs.modules.iter().map(ModuleSource::key_part).collect();
    let key = cache::entry_key(&kernel_key, &module_parts);
    Ok(Plan {
        inputs,
        identified,
        toolchain,
        versions,
        kernel_key,
        key,
    })
}

/// A complete entry for `key` (unless `--force`), touched and copied out.
fn cached(
    request: &BuildRequest,
    key: &str,
    observe: &mut dyn FnMut(BuildEvent),
) -> Result<Option<Built>, BuildError> {
    if request.force {
        return Ok(None);
    }
    match Artifacts::open(&request.cache.entry_dir(key)) {
        Ok(found) => finish_hit(request, found, observe).map(Some),
        Err(_) => Ok(None),
    }
}

/// Hold the build directory's lock (waiting for another kcycle if need be).
fn lock_build_dir(
    request: &BuildRequest,
    build_dir: &Path,
    source_id: &str,
    observe: &mut dyn FnMut(BuildEvent),
) -> Result<BuildLock, BuildError> {
    // One lock per source, not per build dir: every configuration of a
    // source shares its (patched) tree. Not with_extension: the id holds dots.
    let lock_path = build_dir.with_file_name(format!("{source_id}.lock"));
    BuildLock::acquire(&lock_path, LOCK_WAIT_LIMIT, &request.cancel, || {
        observe(BuildEvent::Note(format!(
            "waiting for another kcycle kernel build of {source_id} (builds of one source share its tree; this one goes to {})",
            build_dir.display()
        )))
    })
    .map_err(|e| match e {
        CacheError::Interrupted { signal, .. } => BuildError::Interrupted {
            step: "the wait for the build directory lock".into(),
            signal,
        },
        other => other.into(),
    })
}

fn open_log(log_path: &Path) -> Result<File, BuildError> {
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    File::create(log_path).map_err(io_err("create", log_path))
}

/// Configure and make the kernel unless the build directory's stamp says it
/// is already built for this kernel key. True if make ran.
fn make_kernel(
    runner: &mut Runner<'_>,
    request: &BuildRequest,
    plan: &Plan,
) -> Result<bool, BuildError> {
    let stamp_path = runner.build_dir.join(KERNEL_STAMP);
    let stamp = std::fs::read_to_string(&stamp_path).unwrap_or_default();
    if !request.force && stamp.trim() == plan.kernel_key {
        runner.note("kernel unchanged; rebuilding external modules only");
        return Ok(false);
    }
    std::fs::create_dir_all(runner.build_dir).map_err(io_err("create", runner.build_dir))?;
    // Before touching the build dir, so a broken toolchain or a rejected
    // fragment leaves it (and its stamp) as it was.
    runner.check_rust()?;
    runner.configure(&plan.inputs)?;
    // Until make succeeds, the build dir matches no key.
    let _ = std::fs::remove_file(&stamp_path);
    runner.make(
        "build the kernel (make bzImage modules)",
        &["bzImage", "modules"],
        KERNEL_MAKE_LIMIT,
    )?;
    std::fs::write(&stamp_path, &plan.kernel_key).map_err(io_err("write", &stamp_path))?;
    Ok(true)
}

/// Install bzImage, config and modules into a pending entry, write its
/// manifest and commit it. Returns the entry directory.
fn install_entry(
    runner: &mut Runner<'_>,
    request: &BuildRequest,
    plan: &Plan,
    source: String,
    started: Instant,
) -> Result<PathBuf, BuildError> {
    let key = &plan.key;
    let pending = request.cache.begin_entry(key)?;
    let release = runner.install(&pending, &plan.inputs.modules, &request.cache, key)?;
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
        source,
        config_hash: cache::sha256_hex(&config_text),
        toolchain: plan.versions.clone(),
        key: key.clone(),
        build_dir: runner.build_dir.to_path_buf(),
        built_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        build_seconds: started.elapsed().as_secs_f64(),
        external_modules: list_modules(&extra_dir),
    };
    write_manifest(pending.dir(), &manifest)?;
    Ok(pending.commit()?)
}

/// The entry itself, or its `--out` copy.
fn open_or_copy_out(request: &BuildRequest, dir: &Path) -> Result<Artifacts, BuildError> {
    match &request.out {
        Some(out) => copy_out(dir, out),
        None => Artifacts::open(dir).map_err(|e| BuildError::Incomplete {
            what: e.to_string(),
            dir: dir.to_path_buf(),
        }),
    }
}

fn finish_hit(
    request: &BuildRequest,
    found: Artifacts,
    observe: &mut dyn FnMut(BuildEvent),
) -> Result<Built, BuildError> {
    request.cache.touch_entry(&found.dir);
    observe(BuildEvent::Note(format!(
        "kernel {} from the cache ({})",
        found.manifest.kernel_release, found.manifest.key
    )));
    Ok(Built {
        artifacts: open_or_copy_out(request, &found.dir)?,
        cache_hit: true,
        kernel_rebuilt: false,
        log: None,
    })
}

/// The directory to build from and its kernel version; extracts the Debian tarball once.
fn prepare_source(
    request: &BuildRequest,
    identified: &Identified,
    observe: &mut dyn FnMut(BuildEvent),
) -> Result<(PathBuf, String), BuildError> {
    let (tarball, sha256) = match &identified.origin {
        SourceOrigin::Tree { dir, .. } => return Ok((dir.clone(), source::read_version(dir)?)),
        SourceOrigin::Debian { tarball, sha256 } => (tarball, sha256),
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
    observe(BuildEvent::Phase(format!(
        "extracting {}",
        tarball.display()
    )));
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
            cancel: &request.cancel,
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
        SourceOrigin::Tree { dir, .. } => Ok(patches::check_applied(dir, wanted)?),
        SourceOrigin::Debian { .. } => {
            runner.phase("applying guest-kernel/patches");
            match patches::sync(src_dir, wanted) {
                Err(PatchError::Revert { name, output, .. }) => {
                    // The tree is in an unknown state: start over from the tarball. The
                    // old objects would look newer than the re-extracted files, so they go too.
                    runner.note(&format!(
                        "reverting {name} failed ({output}); extracting the source again"
                    ));
                    for dir in [src_dir, runner.build_dir] {
                        std::fs::remove_dir_all(dir).map_err(io_err("remove", dir))?;
                    }
                    let (again, _) = prepare_source(request, identified, runner.observe)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
