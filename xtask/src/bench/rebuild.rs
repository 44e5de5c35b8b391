//! The kernel cache's two slow figures: a module-only rebuild (the default
//! kernel plus one external Rust module that changed: `make M=`,
//! modules_install, depmod, no kernel build), run here each time; and the
//! cold build, read from the cache entry's manifest (what its one build
//! took when it ran: re-running it would take the bench from minutes to
//! half an hour).

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use kcycle::kernel::cache::Cache;
use kcycle::kernel::source::SourceSpec;
use kcycle::kernel::{self, Artifacts, BuildRequest, Project};

use super::doc::{Figure, Unit};
use super::progress;

/// How the module-only rebuild is measured, for the document.
const REBUILD_COMMAND: &str =
    "kcycle::kernel::build of the default kernel with one external Rust module \
     changed (a copy of samples/rust/rust_minimal with a fresh comment)";

/// `runs` module-only rebuilds of the default kernel (the entry in `dir`), after one warm-up.
pub fn module_only(dir: &Path, runs: usize) -> Figure {
    let figure = Figure::new(
        "module-rebuild",
        "module-only rebuild (make M=, modules_install, depmod)",
        Unit::Seconds,
        REBUILD_COMMAND,
    );
    match rebuilds(dir, runs) {
        Ok(samples) => figure.samples(samples),
        Err(why) => figure.not_measured(why),
    }
}

fn rebuilds(dir: &Path, runs: usize) -> Result<Vec<f64>, String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("no scratch directory: {e}"))?;
    let build_dir = open(dir)?.manifest.build_dir;
    // The first module brings the shared build directory to this kernel (a
    // hit does not look at it, and another checkout may have moved it).
    progress("kernel cache: module-only rebuild warm-up");
    kernel::build(
        &request(vec![module(scratch.path(), &build_dir)?])?,
        &mut |_| {},
    )
    .map_err(|e| format!("the warm-up failed: {}", kcycle::sys::error::chain(&e)))?;
    let mut samples = Vec::new();
    for i in 0..runs {
        progress(&format!(
            "kernel cache: module-only rebuild {}/{runs}",
            i + 1
        ));
        let module = module(scratch.path(), &build_dir)?;
        let started = Instant::now();
        let built = kernel::build(&request(vec![module])?, &mut |_| {})
            .map_err(|e| format!("the rebuild failed: {}", kcycle::sys::error::chain(&e)))?;
        samples.push(started.elapsed().as_secs_f64());
        if built.kernel_rebuilt {
            return Err("the kernel itself was rebuilt, so this is no module-only figure".into());
        }
    }
    Ok(samples)
}

/// The cold build of the kernel in `dir`, as its manifest recorded it.
pub fn cold(dir: &Path) -> Figure {
    let figure = Figure::new(
        "cold-build",
        "cold build of the default kernel (recorded in its cache entry when it was built)",
        Unit::Seconds,
        format!("build_seconds in {}/manifest.json", dir.display()),
    );
    match open(dir) {
        Ok(artifacts) if artifacts.manifest.build_seconds > 0.0 => {
            figure.samples(vec![artifacts.manifest.build_seconds])
        }
        Ok(_) => figure.not_measured("the manifest records no build time"),
        Err(why) => figure.not_measured(why),
    }
}

/// The cache entry in `dir`.
fn open(dir: &Path) -> Result<Artifacts, String> {
    Artifacts::open(dir)
        .map_err(|e| format!("no cache entry to read: {}", kcycle::sys::error::chain(&e)))
}

/// The default kernel's build request with `modules` as its only external ones.
fn request(modules: Vec<PathBuf>) -> Result<BuildRequest, String> {
    let chain = |e: &dyn std::error::Error| kcycle::sys::error::chain(e);
    Ok(BuildRequest::new(
        SourceSpec::from_option(std::env::var_os("KCYCLE_KERNEL_SRC").map(PathBuf::from)),
        Project::discover().map_err(|e| format!("no kcycle checkout here: {}", chain(&e)))?,
        Cache::from_env().map_err(|e| format!("no kernel cache: {}", chain(&e)))?,
        modules,
    ))
}

/// A copy of the rust_minimal sample, renamed, with a fresh comment.
fn module(parent: &Path, build_dir: &Path) -> Result<PathBuf, String> {
    let sample = build_dir.join("source/samples/rust/rust_minimal.rs");
    let text = std::fs::read_to_string(&sample)
        .map_err(|e| format!("failed to read {}: {e}", sample.display()))?;
    let dir = parent.join("kcycle_bench_smoke");
    let write = |name: &str, text: String| {
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(name), text))
            .map_err(|e| format!("failed to write {}: {e}", dir.join(name).display()))
    };
    write(
        "kcycle_bench_smoke.rs",
        format!(
            "// {:?}\n{}",
            SystemTime::now(),
            text.replace("rust_minimal", "kcycle_bench_smoke")
        ),
    )?;
    write("Kbuild", "obj-m := kcycle_bench_smoke.o\n".to_string())?;
    Ok(dir)
}
