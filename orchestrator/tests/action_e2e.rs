//! The composite action (action.yml), used the way the README's example
//! workflow uses it: a driver repository made here, with its module's
//! source in `driver/` and a suite in `kcycle/mydrv.toml`, runs the action
//! with `module: driver`. Every shell step of the action runs for real
//! (host check, `kcycle setup`, the KVM check, the kernel cache key, the
//! kernel and image, `make M=` of the module, `kcycle ci` booting a real
//! guest, the result), through `action/runner.rs`, a local stand-in for
//! GitHub's runner. The `uses:` steps are stood in for here: the caches
//! restore what an earlier run saved (kcycle's binary, the kernel cache),
//! and the upload copies the results directory.
//!
//! A module that forgets its debugfs directory must fail the job, with the
//! leak in the step summary, an `::error` annotation and the uploaded
//! results; the fixed module must pass it.

#[path = "action/runner.rs"]
mod runner;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runner::{Outcome, Runner};

fn module_source(exit_body: &str) -> String {
    format!(
        "#include <linux/module.h>\n\
         #include <linux/debugfs.h>\n\
         static struct dentry *dir;\n\
         static int __init mydrv_init(void)\n{{\n\tdir = debugfs_create_dir(\"mydrv\", NULL);\n\treturn 0;\n}}\n\
         static void __exit mydrv_exit(void)\n{{\n\t{exit_body}\n}}\n\
         module_init(mydrv_init);\nmodule_exit(mydrv_exit);\n\
         MODULE_LICENSE(\"GPL\");\nMODULE_DESCRIPTION(\"kcycle action test module\");\n"
    )
}

const SUITE: &str = r#"name = "mydrv"
[[test]]
name = "cycle"
cycles = 2
steps = [
    { load = "mydrv" },
    { unload = "mydrv" },
]
"#;

/// The driver repository: `driver/` and `kcycle/mydrv.toml`.
fn driver_repository(root: &Path, exit_body: &str) -> PathBuf {
    let repo = root.join("mydrv");
    std::fs::create_dir_all(repo.join("driver")).unwrap();
    std::fs::create_dir_all(repo.join("kcycle")).unwrap();
    std::fs::write(repo.join("driver/mydrv.c"), module_source(exit_body)).unwrap();
    std::fs::write(repo.join("driver/Kbuild"), "obj-m += mydrv.o\n").unwrap();
    std::fs::write(repo.join("kcycle/mydrv.toml"), SUITE).unwrap();
    repo
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What the `uses:` steps stand for, on a runner whose caches hold an
/// earlier run's kcycle binary and kernel cache.
struct Stand {
    home: PathBuf,
    workspace: PathBuf,
    /// A directory holding the kcycle binary under test, as the bin cache.
    bin_cache: PathBuf,
    kernel_cache: PathBuf,
    artifacts: PathBuf,
    saved: Vec<String>,
}

impl Stand {
    fn uses(
        &mut self,
        name: &str,
        with: &BTreeMap<String, String>,
        log: &mut String,
    ) -> Result<BTreeMap<String, String>, String> {
        let action = name.split('@').next().unwrap_or(name);
        let home_path = |p: &str| self.home.join(p.strip_prefix("~/").unwrap_or(p));
        match action {
            // The runner's rustup toolchain is the one building these tests.
            "dtolnay/rust-toolchain" => Ok(BTreeMap::new()),
            "actions/cache" | "actions/cache/restore" => {
                let key = with.get("key").ok_or("no key")?;
                let path = home_path(with.get("path").ok_or("no path")?);
                let entry = if key.starts_with("kcycle-bin-") {
                    &self.bin_cache
                } else if key.starts_with("kcycle-kernel-") {
                    &self.kernel_cache
                } else {
                    return Err(format!("no cache entry stands for key {key:?}"));
                };
                std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
                std::os::unix::fs::symlink(entry, &path).map_err(|e| e.to_string())?;
                log.push_str(&format!("cache: {key} restored to {}\n", path.display()));
                Ok(BTreeMap::from([("cache-hit".into(), "true".into())]))
            }
            "actions/cache/save" => {
                self.saved
                    .push(with.get("key").cloned().unwrap_or_default());
                Ok(BTreeMap::new())
            }
            "actions/upload-artifact" => {
                let name = with.get("name").ok_or("no name")?;
                let path = with.get("path").ok_or("no path")?;
                let from = self.workspace.join(path);
                if !from.is_dir() {
                    return Err(format!("nothing to upload at {}", from.display()));
                }
                copy_dir(&from, &self.artifacts.join(name));
                Ok(BTreeMap::new())
            }
            other => Err(format!("no stand-in for `uses: {other}`")),
        }
    }
}

/// Runs the action on a driver repository whose module's exit does `exit_body`.
fn run_action(scratch: &Path, exit_body: &str) -> Option<(runner::Job, PathBuf)> {
    let kernel = support::kernel()?;
    let action_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let action_path = action_path.canonicalize().unwrap();
    let action = runner::load(&action_path.join("action.yml")).unwrap();

    let home = scratch.join("home");
    let workspace = home.join("workspace");
    std::fs::create_dir_all(&home).unwrap();
    let repo = driver_repository(scratch, exit_body);
    std::fs::rename(&repo, &workspace).unwrap();
    let bin_cache = scratch.join("bin-cache");
    std::fs::create_dir_all(&bin_cache).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_kcycle"), bin_cache.join("kcycle")).unwrap();
    // The kernel cache the test's kernel lives in: a hit, as after a first run.
    let kernel_cache = kcycle::sys::dirs::cache_root().unwrap();
    assert!(
        kernel.dir.starts_with(&kernel_cache),
        "KCYCLE_KERNEL ({}) is not in the kernel cache {}",
        kernel.dir.display(),
        kernel_cache.display()
    );
    let mut stand = Stand {
        home: home.clone(),
        workspace: workspace.clone(),
        bin_cache,
        kernel_cache,
        artifacts: scratch.join("artifacts"),
        saved: Vec::new(),
    };

    // A runner's environment: its own HOME, the toolchains where they are.
    let mut env = BTreeMap::new();
    for var in [
        "PATH",
        "RUSTUP_HOME",
        "CARGO_HOME",
        "LANG",
        "USER",
        "LOGNAME",
    ] {
        if let Ok(value) = std::env::var(var) {
            env.insert(var.to_string(), value);
        }
    }
    let real_home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    env.entry("RUSTUP_HOME".into())
        .or_insert_with(|| format!("{real_home}/.rustup"));
    env.entry("CARGO_HOME".into())
        .or_insert_with(|| format!("{real_home}/.cargo"));
    env.insert("HOME".into(), home.to_string_lossy().into_owned());
    env.insert("TMPDIR".into(), scratch.to_string_lossy().into_owned());

    let runner = Runner {
        action_path,
        workspace: workspace.clone(),
        temp: scratch.join("runner-temp"),
        env,
        step_limit: Duration::from_secs(40 * 60),
    };
    let inputs = BTreeMap::from([("suites", "kcycle/mydrv.toml"), ("module", "driver")]);
    let job = runner
        .run(&action, &inputs, &mut |name, with, log| {
            stand.uses(name, with, log)
        })
        .unwrap();
    eprintln!("{}\n--- job summary ---\n{}", job.log, job.summary);
    // The kernel cache was a hit: nothing to save.
    assert!(stand.saved.is_empty(), "{:?}", stand.saved);
    Some((job, scratch.join("artifacts/kcycle-results")))
}

#[test]
fn the_action_fails_a_driver_that_leaves_its_debugfs_directory() {
    let scratch = tempfile::tempdir().unwrap();
    let Some((job, artifact)) = run_action(
        scratch.path(),
        "/* the directory stays: nothing removes it */",
    ) else {
        return;
    };
    let log = &job.log;
    // Every shell step up to the run succeeded; the result step failed the job.
    for step in [
        "Host is Debian bookworm",
        "kcycle setup",
        "KVM",
        "Kernel cache key",
        "Guest kernel and image",
        "Module",
    ] {
        assert_eq!(job.step(step).outcome, Outcome::Success, "{step}:\n{log}");
    }
    assert_eq!(job.step("Build kcycle").outcome, Outcome::Skipped, "{log}");
    assert_eq!(job.outputs["exit-code"], "1", "{log}");
    assert_eq!(job.step("Result").outcome, Outcome::Failure(1), "{log}");
    assert!(
        log.contains("::error title=kcycle::kcycle found problems (exit 1)"),
        "{log}"
    );
    // kcycle's own annotation names the leak.
    assert!(
        log.lines()
            .any(|l| l.starts_with("::error") && l.contains("/sys/kernel/debug/mydrv")),
        "{log}"
    );
    assert!(job.summary.contains("mydrv"), "{}", job.summary);
    assert!(job.summary.contains("Full report"), "{}", job.summary);
    assert!(job.step("Module").outputs["ko"].ends_with("kcycle-module/mydrv.ko"));
    // The uploaded results hold every report, and the leak.
    for file in ["junit.xml", "results.json", "summary.md", "index.html"] {
        assert!(
            artifact.join(file).is_file(),
            "{file} in {}",
            artifact.display()
        );
    }
    let results = std::fs::read_to_string(artifact.join("results.json")).unwrap();
    assert!(results.contains("/sys/kernel/debug/mydrv"), "{results}");
}

#[test]
fn the_action_passes_the_fixed_driver() {
    let scratch = tempfile::tempdir().unwrap();
    let Some((job, artifact)) = run_action(scratch.path(), "debugfs_remove(dir);") else {
        return;
    };
    assert!(job.succeeded(), "{}", job.log);
    assert_eq!(job.outputs["exit-code"], "0", "{}", job.log);
    assert!(job.log.contains("kcycle: passed"), "{}", job.log);
    assert!(artifact.join("junit.xml").is_file());
}
