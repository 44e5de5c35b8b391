//! Kernel build speed (`just bench`): no-op cache hit, module-only rebuild,
//! and with KCYCLE_BENCH_COLD=1 a cold build into a fresh cache.
//!
//! Prints the median of N runs and the command measured. Needs the kernel
//! toolchain (`kcycle setup`); the first run may build the kernel once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use kcycle::kernel::cache::Cache;
use kcycle::kernel::source::SourceSpec;
use kcycle::kernel::{self, BuildRequest, Project};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn report(what: &str, command: &str, samples: Vec<Duration>) {
    let runs = samples.len();
    println!(
        "kernel/{what}: median {:.3} s over {runs} runs  ({command})",
        median(samples).as_secs_f64()
    );
}

fn kcycle_build(cache: Option<&Path>) -> Duration {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kcycle"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "--progress",
        "never",
        "kernel",
        "build",
    ]);
    if let Some(cache) = cache {
        command.env("KCYCLE_CACHE", cache);
    }
    let start = Instant::now();
    let out = command.output().expect("failed to run kcycle");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "kcycle kernel build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Build progress as plain lines on stderr.
fn show(event: kernel::BuildEvent) {
    if event != kernel::BuildEvent::Tick {
        eprintln!("kcycle: {event}");
    }
}

fn request(modules: Vec<PathBuf>) -> BuildRequest {
    BuildRequest {
        source: SourceSpec::from_option(std::env::var_os("KCYCLE_KERNEL_SRC").map(PathBuf::from)),
        project: Project::discover().expect("run inside the kcycle clone"),
        external_modules: modules,
        extra_fragments: Vec::new(),
        profile: kernel::Profile::default(),
        cache: Cache::from_env().expect("cache dir"),
        force: false,
        out: None,
        jobs: kernel::default_jobs(),
        cancel: kcycle::sys::Cancel::process(),
    }
}

/// A copy of the rust_minimal sample, renamed, with a fresh comment each run.
fn smoke_module(parent: &Path, build_dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(build_dir.join("source/samples/rust/rust_minimal.rs"))
        .expect("the build dir links to its source");
    let dir = parent.join("kcycle_bench_smoke");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("kcycle_bench_smoke.rs"),
        format!(
            "// {:?}\n{}",
            SystemTime::now(),
            text.replace("rust_minimal", "kcycle_bench_smoke")
        ),
    )
    .unwrap();
    std::fs::write(dir.join("Kbuild"), "obj-m := kcycle_bench_smoke.o\n").unwrap();
    dir
}

fn main() {
    // `cargo bench` passes --bench; a filter that excludes us means skip.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"kernel".contains(&a))
    {
        return;
    }

    let source_given = std::env::var_os("KCYCLE_KERNEL_SRC").is_some();
    if !source_given && !Path::new(kcycle::kernel::source::DEBIAN_TARBALL).exists() {
        println!(
            "kernel: skipped ({} is missing; run `kcycle setup`)",
            kcycle::kernel::source::DEBIAN_TARBALL
        );
        return;
    }

    // Warm up: make sure the entry exists (may be a full build the first time).
    kcycle_build(None);
    let hits: Vec<Duration> = (0..7).map(|_| kcycle_build(None)).collect();
    report("noop-cache-hit", "kcycle kernel build", hits);

    let scratch = tempfile::tempdir().unwrap();
    let base = kernel::build(&request(Vec::new()), &mut show).expect("kernel build");
    // Warm-up: brings the shared build dir to this kernel (a hit does not look at it).
    let warm = smoke_module(scratch.path(), &base.artifacts.manifest.build_dir);
    kernel::build(&request(vec![warm]), &mut show).expect("module build");
    let mut rebuilds = Vec::new();
    for _ in 0..3 {
        let module = smoke_module(scratch.path(), &base.artifacts.manifest.build_dir);
        let start = Instant::now();
        let built = kernel::build(&request(vec![module]), &mut show).expect("module rebuild");
        rebuilds.push(start.elapsed());
        assert!(!built.kernel_rebuilt, "only the module should rebuild");
    }
    report(
        "module-only-rebuild",
        "kernel::build with one changed external Rust module (make M=, modules_install, depmod)",
        rebuilds,
    );

    if std::env::var_os("KCYCLE_BENCH_COLD").is_some() {
        let cold_cache = tempfile::tempdir().unwrap();
        let cold = kcycle_build(Some(cold_cache.path()));
        report(
            "cold-build",
            "KCYCLE_CACHE=<empty> kcycle kernel build",
            vec![cold],
        );
    } else {
        println!("kernel/cold-build: skipped (set KCYCLE_BENCH_COLD=1; about 15 min with -j3)");
    }
}
