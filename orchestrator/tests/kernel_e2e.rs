//! The real `kcycle kernel build`: Linux 6.12 with Rust and i915 selftests,
//! through the cache (cold on a fresh machine, a cache hit afterwards).
//!
//! Needs Debian's linux-source-6.12 and the Rust kernel toolchain
//! (`kcycle setup`). Without them these tests fail when `CI` is set and are
//! skipped with a notice otherwise.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use kcycle::kernel::cache::Cache;
use kcycle::kernel::source::{SourceSpec, DEBIAN_TARBALL};
use kcycle::kernel::{self, Artifacts, BuildRequest, Project};

fn kcycle() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kcycle"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--progress", "never"]);
    command
}

/// Is there something to build? If not: fail in CI, skip elsewhere.
fn kernel_source_available() -> bool {
    if std::env::var_os("KCYCLE_KERNEL_SRC").is_some() || Path::new(DEBIAN_TARBALL).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{DEBIAN_TARBALL} is missing and KCYCLE_KERNEL_SRC is unset: run `kcycle setup` first"
    );
    eprintln!("skipping: {DEBIAN_TARBALL} is missing (run `kcycle setup`)");
    false
}

/// Run `kcycle kernel build <extra>`; returns (artifact dir, stderr).
fn build_cli(extra: &[&str]) -> (PathBuf, String) {
    let out = kcycle()
        .args(["kernel", "build"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kcycle kernel build failed ({}):\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().expect("stdout has the artifact dir");
    (PathBuf::from(last), stderr)
}

fn modules_dep(artifacts: &Artifacts) -> String {
    std::fs::read_to_string(artifacts.modules_dir().join("modules.dep")).unwrap()
}

#[test]
fn kernel_build_has_rust_i915_selftests_and_then_hits_the_cache() {
    if !kernel_source_available() {
        return;
    }
    let (dir, _) = build_cli(&[]);
    let artifacts = Artifacts::open(&dir).unwrap();
    let manifest = &artifacts.manifest;
    assert!(manifest.kernel_release.starts_with("6.12"), "{manifest:?}");

    // A real x86 bzImage: the setup header magic "HdrS" at 0x202.
    let bzimage = std::fs::read(artifacts.bzimage()).unwrap();
    assert!(
        bzimage.len() > 1 << 20,
        "bzImage is {} bytes",
        bzimage.len()
    );
    assert_eq!(&bzimage[0x202..0x206], b"HdrS");

    let config = std::fs::read_to_string(artifacts.config()).unwrap();
    for line in [
        "CONFIG_RUST=y",
        "CONFIG_DRM_I915=m",
        "CONFIG_DRM_I915_SELFTEST=y",
        "CONFIG_DEBUG_FS=y",
        "CONFIG_DEBUG_KMEMLEAK=y",
        "CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y",
        "CONFIG_MODULE_UNLOAD=y",
        "# CONFIG_MODVERSIONS is not set",
        "CONFIG_SAMPLE_RUST_MINIMAL=m",
        "CONFIG_LIST_KUNIT_TEST=m",
    ] {
        assert!(config.lines().any(|l| l == line), "config lacks {line}");
    }

    let i915 = artifacts
        .modules_dir()
        .join("kernel/drivers/gpu/drm/i915/i915.ko");
    let i915_bytes = std::fs::read(&i915).unwrap();
    // The selftest entry point's parameter is compiled in.
    assert!(
        i915_bytes
            .windows(b"mock_selftests".len())
            .any(|w| w == b"mock_selftests"),
        "i915.ko has no mock_selftests parameter"
    );
    let dep = modules_dep(&artifacts);
    for module in ["i915.ko:", "rust_minimal.ko:", "list-test.ko:"] {
        assert!(dep.contains(module), "modules.dep lacks {module}");
    }
    assert!(
        !artifacts.modules_dir().join("build").exists(),
        "no link back into the cache"
    );
    let table = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-kernel/rust_i915_table");
    if table.join("Kbuild").exists() || table.join("Makefile").exists() {
        assert!(
            manifest
                .external_modules
                .contains(&"rust_i915_table.ko".to_string()),
            "{manifest:?}"
        );
        assert!(dep.contains("extra/rust_i915_table.ko:"), "{dep}");
    } else {
        eprintln!("note: guest-kernel/rust_i915_table has no Kbuild yet; not checked");
    }
    assert!(manifest.build_dir.join("Module.symvers").exists());

    // Nothing changed: a cache hit, same directory, no make.
    let start = Instant::now();
    let (again, stderr) = build_cli(&[]);
    let hit_time = start.elapsed();
    assert_eq!(again, dir);
    assert!(stderr.contains("from the cache"), "{stderr}");
    assert!(!stderr.contains("(make "), "a hit runs no make: {stderr}");
    eprintln!("cache hit took {hit_time:?}");
    assert_eq!(Artifacts::open(&again).unwrap().manifest, *manifest);

    // --out copies the entry; the copy is what stdout names.
    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().join("kernel");
    let (copied, _) = build_cli(&["--out", out_path.to_str().unwrap()]);
    assert_eq!(copied, out_path);
    let copy = Artifacts::open(&copied).unwrap();
    assert_eq!(copy.manifest, *manifest);
    assert!(copy
        .modules_dir()
        .join("kernel/drivers/gpu/drm/i915/i915.ko")
        .exists());

    // --json prints the manifest plus the directory.
    let out = kcycle()
        .args(["kernel", "build", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["dir"], dir.display().to_string());
    assert_eq!(json["kernel_release"], manifest.kernel_release);
}

/// A small Rust module (the in-tree rust_minimal sample, renamed) whose
/// source carries `nonce`, so every call is a new module version.
fn smoke_module(parent: &Path, build_dir: &Path, nonce: &str) -> PathBuf {
    let sample = build_dir.join("source/samples/rust/rust_minimal.rs");
    let text = std::fs::read_to_string(&sample)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", sample.display()));
    let dir = parent.join("kcycle_smoke");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("kcycle_smoke.rs"),
        format!(
            "// {nonce}\n{}",
            text.replace("rust_minimal", "kcycle_smoke")
        ),
    )
    .unwrap();
    std::fs::write(dir.join("Kbuild"), "obj-m := kcycle_smoke.o\n").unwrap();
    dir
}

/// Build progress as plain lines on stderr.
fn show(event: kernel::BuildEvent) {
    if event != kernel::BuildEvent::Tick {
        eprintln!("kcycle: {event}");
    }
}

fn request(modules: Vec<PathBuf>) -> BuildRequest {
    BuildRequest::new(
        SourceSpec::from_option(std::env::var_os("KCYCLE_KERNEL_SRC").map(PathBuf::from)),
        Project::discover().unwrap(),
        Cache::from_env().unwrap(),
        modules,
    )
}

#[test]
fn changing_an_external_module_rebuilds_only_that_module() {
    if !kernel_source_available() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    // The default kernel itself (a hit, or the one whole build of this run).
    let base = kernel::build(&request(Vec::new()), &mut show).unwrap();
    let build_dir = base.artifacts.manifest.build_dir.clone();

    // A first module version brings the shared build dir to this kernel (a
    // hit above does not look at it, and another checkout may have moved it).
    let first = smoke_module(scratch.path(), &build_dir, "first");
    kernel::build(&request(vec![first]), &mut show).unwrap();

    let nonce = format!("{:?}", SystemTime::now());
    let module = smoke_module(scratch.path(), &build_dir, &nonce);
    let built = kernel::build(&request(vec![module.clone()]), &mut show).unwrap();
    assert!(!built.cache_hit, "a new module version is not a hit");
    assert!(
        !built.kernel_rebuilt,
        "only the module was rebuilt; log: {:?}",
        built.log
    );
    assert_eq!(
        built.artifacts.manifest.external_modules,
        ["kcycle_smoke.ko"]
    );
    let dep = modules_dep(&built.artifacts);
    assert!(dep.contains("extra/kcycle_smoke.ko:"), "{dep}");
    assert!(dep.contains("i915.ko:"), "in-tree modules are there too");
    assert_ne!(built.artifacts.dir, base.artifacts.dir);

    // The same module again: a hit.
    let again = kernel::build(&request(vec![module]), &mut show).unwrap();
    assert!(again.cache_hit);
    assert_eq!(again.artifacts.dir, built.artifacts.dir);
}

/// A copy of the project whose rust_i915_table is the smoke module: same
/// kernel key, so a build of it only runs the external module steps.
fn project_with_smoke_module(parent: &Path, build_dir: &Path) -> PathBuf {
    let root = parent.join("project");
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-kernel");
    for dir in ["configs", "patches", "profiles"] {
        let target = root.join("guest-kernel").join(dir);
        std::fs::create_dir_all(&target).unwrap();
        if let Ok(read) = std::fs::read_dir(real.join(dir)) {
            for entry in read {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
            }
        }
    }
    let nonce = format!("{:?}", SystemTime::now());
    let module = smoke_module(parent, build_dir, &nonce);
    std::fs::rename(module, root.join("guest-kernel/rust_i915_table")).unwrap();
    root
}

#[test]
fn an_interrupted_build_leaves_no_entry_behind() {
    if !kernel_source_available() {
        return;
    }
    // A complete entry and a built kernel first.
    let (dir, _) = build_cli(&[]);
    let manifest = Artifacts::open(&dir).unwrap().manifest;
    let scratch = tempfile::tempdir().unwrap();
    let project = project_with_smoke_module(scratch.path(), &manifest.build_dir);

    // Interrupt the module build (the kernel build dir stays valid for everyone else).
    let mut child = kcycle()
        .args(["kernel", "build"])
        .env("KCYCLE_ROOT", &project)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(1800);
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("(make M=)") || Instant::now() > deadline {
            break;
        }
    }
    // SAFETY: signalling our own child process, as `kill` would.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{seen}");
    assert!(seen.contains("interrupted by SIGTERM"), "{seen}");
    assert!(seen.contains("nothing was added to the cache"), "{seen}");

    let artifacts_dir = dir.parent().unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(artifacts_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-") && n.ends_with(&format!("-{}", child.id())))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The entry from before is still complete, and still a hit.
    let (again, stderr) = build_cli(&[]);
    assert_eq!(again, dir);
    assert!(stderr.contains("from the cache"), "{stderr}");
}

#[test]
fn a_missing_rust_compiler_is_a_clear_error() {
    if !kernel_source_available() {
        return;
    }
    let out = kcycle()
        .args(["kernel", "build"])
        .env("KCYCLE_RUSTC", "/nonexistent/rustc")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("failed to find a Rust toolchain for the kernel"),
        "{stderr}"
    );
    assert!(stderr.contains("/nonexistent/rustc"), "{stderr}");
    assert!(stderr.contains("rustc-web"), "{stderr}");
}

#[test]
fn a_failing_module_build_shows_the_first_error_and_the_log_tail() {
    if !kernel_source_available() {
        return;
    }
    let (dir, _) = build_cli(&[]);
    let manifest = Artifacts::open(&dir).unwrap().manifest;
    let scratch = tempfile::tempdir().unwrap();
    let project = project_with_smoke_module(scratch.path(), &manifest.build_dir);
    let source = project.join("guest-kernel/rust_i915_table/kcycle_smoke.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(
        &source,
        format!("{text}\nfn broken() -> u32 {{ \"not a number\" }}\n"),
    )
    .unwrap();

    let out = kcycle()
        .args(["kernel", "build"])
        .env("KCYCLE_ROOT", &project)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("failed to build external module rust_i915_table (make M=): error[E0308]: mismatched types"),
        "{stderr}"
    );
    assert!(stderr.contains("--- last lines of "), "{stderr}");
    // Messages name the module's own sources, not kcycle's scratch copy.
    assert!(
        stderr.contains(&format!("{}:", source.display())),
        "{stderr}"
    );
}

#[test]
fn a_dropped_option_is_named_with_its_dependency_and_the_build_dir_is_kept() {
    if !kernel_source_available() {
        return;
    }
    let (dir, _) = build_cli(&[]);
    let build_dir = Artifacts::open(&dir).unwrap().manifest.build_dir;
    let config_before = std::fs::read(build_dir.join(".config")).unwrap();

    // The project's fragments, minus the CONFIG_EXPERT=y that i915 selftests need.
    let scratch = tempfile::tempdir().unwrap();
    let project = project_with_smoke_module(scratch.path(), &build_dir);
    let fragment = project.join("guest-kernel/configs/20-i915-selftest.config");
    let text = std::fs::read_to_string(&fragment).unwrap();
    assert!(text.contains("CONFIG_EXPERT=y\n"), "{text}");
    std::fs::write(&fragment, text.replace("CONFIG_EXPERT=y\n", "")).unwrap();

    let out = kcycle()
        .args(["kernel", "build"])
        .env("KCYCLE_ROOT", &project)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("CONFIG_DRM_I915_SELFTEST=y (")
            && stderr.contains("20-i915-selftest.config:"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "unmet dependency `EXPERT` from menu \"drm/i915 Debugging\" at drivers/gpu/drm/i915/Kconfig:"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("add CONFIG_EXPERT=y to a fragment"),
        "{stderr}"
    );

    // The rejected config never reached the build dir.
    assert_eq!(
        std::fs::read(build_dir.join(".config")).unwrap(),
        config_before
    );
    let (again, stderr) = build_cli(&[]);
    assert_eq!(again, dir);
    assert!(stderr.contains("from the cache"), "{stderr}");
}
