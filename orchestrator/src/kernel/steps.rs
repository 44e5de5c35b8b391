//! The make steps of one build in one build directory, all logged to one
//! file: the Rust toolchain check, configuration with verification, the
//! install of bzImage/config/modules into a pending entry, and external modules.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::artifacts;
use super::cache::{Cache, PendingEntry};
use super::config::{self, DotConfig};
use super::error::{explain_text, io_err, process_error, BuildError};
use super::external::{ExternalError, ModuleSource};
use super::kconfig::KconfigFiles;
use super::make;
use super::progress::BuildEvent;
use super::project::Inputs;
use super::toolchain::{self, Toolchain, ToolchainError};
use crate::sys::child::{self, Activity, ChildError, Logged};
use crate::sys::{shell, Cancel};

/// Limit for every make step but the kernel's own.
pub(crate) const SHORT_MAKE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Upstream's guest options, merged before our fragments.
const KVM_GUEST_FRAGMENT: &str = "kernel/configs/kvm_guest.config";

/// Runs the make steps of one build, all logged to one file.
pub struct Runner<'a> {
    pub(super) src_dir: &'a Path,
    pub(super) build_dir: &'a Path,
    pub(super) toolchain: &'a Toolchain,
    pub(super) jobs: usize,
    pub(super) log: File,
    pub(super) log_path: PathBuf,
    pub(super) cache_root: PathBuf,
    pub(super) observe: &'a mut dyn FnMut(BuildEvent),
    pub(super) cancel: &'a Cancel,
    pub(super) lock_fd: i32,
}

impl Runner<'_> {
    pub(super) fn note_log(&mut self) {
        let text = format!("building; full log in {}", self.log_path.display());
        self.note(&text);
    }

    /// A message that must stay visible.
    pub(super) fn note(&mut self, text: &str) {
        (self.observe)(BuildEvent::Note(text.to_string()));
    }

    /// A new phase of the build.
    pub(super) fn phase(&mut self, phase: &str) {
        (self.observe)(BuildEvent::Phase(phase.to_string()));
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("PATH", &self.toolchain.path)
            // A make or cargo above us must not lend its jobserver to this build.
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .env_remove("CARGO_MAKEFLAGS");
        command
    }

    /// `make -C <src> O=<build> LLVM=1 RUSTC=… <args>`
    fn make_command(&self, args: &[&str]) -> Command {
        let mut command = self.command("make");
        command
            .arg("-C")
            .arg(self.src_dir)
            .arg(format!("O={}", self.build_dir.display()))
            .arg(format!("-j{}", self.jobs))
            .args(self.toolchain.make_vars())
            .args(args);
        command
    }

    /// Run a command with its output in the log; turn failures into errors that explain.
    fn run(
        &mut self,
        step: &str,
        mut command: Command,
        limit: Duration,
    ) -> Result<String, BuildError> {
        self.phase(step);
        let _ = writeln!(self.log, "\n$ {}", shell::render(&command));
        let observe = &mut *self.observe;
        let mut captured = String::new();
        let status = child::run_logged(
            &mut command,
            Logged {
                log: &mut self.log,
                observe: &mut |activity| match activity {
                    Activity::Line(line) => {
                        if let Some(stage) = make::stage(line) {
                            observe(BuildEvent::Stage(stage));
                        }
                        captured.push_str(line);
                        captured.push('\n');
                    }
                    Activity::Tick => observe(BuildEvent::Tick),
                },
                limit,
                cancel: self.cancel,
                inherit_fd: Some(self.lock_fd),
            },
        );
        let status = match status {
            Ok(status) => status,
            Err(ChildError::Interrupted { signal, .. }) => {
                return Err(BuildError::Interrupted {
                    step: step.to_string(),
                    signal,
                })
            }
            Err(source) => return Err(process_error(step, source)),
        };
        if status.success() {
            return Ok(captured);
        }
        if make::disk_full(&captured) {
            return Err(BuildError::DiskFull {
                step: step.to_string(),
                place: self.cache_root.clone(),
                log: Some(self.log_path.clone()),
            });
        }
        Err(BuildError::Make {
            step: step.to_string(),
            log: self.log_path.clone(),
            first_error: make::first_error(&captured).map(str::to_string),
            tail: make::tail(&captured, 25),
        })
    }

    pub(super) fn make(
        &mut self,
        step: &str,
        args: &[&str],
        limit: Duration,
    ) -> Result<String, BuildError> {
        let command = self.make_command(args);
        self.run(step, command, limit)
    }

    /// `make rustavailable`, turned into an error that says what to install.
    pub(super) fn check_rust(&mut self) -> Result<(), BuildError> {
        let step = "check the Rust toolchain (make rustavailable)";
        match self.make(step, &["rustavailable"], SHORT_MAKE_LIMIT) {
            Ok(output) => Ok(toolchain::rust_available(&output, true)?),
            Err(BuildError::Make { tail, .. }) => {
                // The tail holds the script's `***` explanation.
                Err(toolchain::rust_available(&tail, false).err().map_or_else(
                    || {
                        BuildError::Toolchain(ToolchainError::RustUnavailable {
                            detail: tail.clone(),
                            hint: "run `kcycle setup --check`".into(),
                        })
                    },
                    BuildError::Toolchain,
                ))
            }
            Err(other) => Err(other),
        }
    }

    /// The profile's base + kvm_guest.config + our fragments into a candidate
    /// file, check every requested value, and only then let it become `.config`
    /// (untouched when equal): a rejected fragment leaves the build dir as it was.
    pub(super) fn configure(&mut self, inputs: &Inputs) -> Result<(), BuildError> {
        let candidate = self.build_dir.join(".config.kcycle");
        let target = inputs.profile.base_target();
        let mut base = self.make_command(&[target]);
        base.env("KCONFIG_CONFIG", &candidate);
        self.run(
            &format!("configure (make {target})"),
            base,
            SHORT_MAKE_LIMIT,
        )?;
        let mut merge = self.command("sh");
        merge
            // merge_config.sh makes its temporary files in the current directory.
            .current_dir(self.build_dir)
            .env("KCONFIG_CONFIG", &candidate)
            .arg(self.src_dir.join("scripts/kconfig/merge_config.sh"))
            .arg("-m")
            .arg(&candidate)
            .arg(self.src_dir.join(KVM_GUEST_FRAGMENT))
            .args(inputs.fragments.iter().map(|(path, _)| path));
        self.run("configure (merge_config.sh)", merge, SHORT_MAKE_LIMIT)?;
        let mut olddefconfig = self.make_command(&["olddefconfig"]);
        olddefconfig.env("KCONFIG_CONFIG", &candidate);
        self.run(
            "configure (make olddefconfig)",
            olddefconfig,
            SHORT_MAKE_LIMIT,
        )?;

        let text = std::fs::read_to_string(&candidate).map_err(io_err("read", &candidate))?;
        self.verify_config(inputs, &text)?;
        let config_path = self.build_dir.join(".config");
        if std::fs::read_to_string(&config_path).ok().as_deref() == Some(text.as_str()) {
            // Same config: keep .config's mtime so make has nothing to resync.
            let _ = std::fs::remove_file(&candidate);
        } else {
            std::fs::rename(&candidate, &config_path).map_err(io_err("replace", &config_path))?;
        }
        Ok(())
    }

    /// Every requested option must hold; otherwise explain each dropped one from Kconfig.
    fn verify_config(&mut self, inputs: &Inputs, text: &str) -> Result<(), BuildError> {
        let dot_config = DotConfig::parse(text);
        let mismatches = config::verify(&inputs.requested, &dot_config);
        if mismatches.is_empty() {
            return Ok(());
        }
        self.phase("explaining dropped config options");
        let kconfig = KconfigFiles::load(self.src_dir, "x86")
            .map_err(io_err("read Kconfig files in", self.src_dir))?;
        let explained = mismatches
            .into_iter()
            .map(|m| {
                let why = explain_text(
                    &m.requested.name,
                    &kconfig.explain(&m.requested.name, &dot_config),
                );
                (m, why)
            })
            .collect();
        Err(BuildError::ConfigDropped(explained))
    }

    /// Fill the pending entry: bzImage, config, stripped modules (in-tree and
    /// external) with modules.dep. Returns the kernel release.
    pub(super) fn install(
        &mut self,
        pending: &PendingEntry,
        modules: &[ModuleSource],
        cache: &Cache,
        key: &str,
    ) -> Result<String, BuildError> {
        let dir = pending.dir();
        let release_path = self.build_dir.join("include/config/kernel.release");
        let release = std::fs::read_to_string(&release_path)
            .map_err(io_err("read", &release_path))?
            .trim()
            .to_string();
        let copies = [
            (
                self.build_dir.join("arch/x86/boot/bzImage"),
                dir.join(artifacts::BZIMAGE_FILE),
            ),
            (
                self.build_dir.join(".config"),
                dir.join(artifacts::CONFIG_FILE),
            ),
        ];
        for (from, to) in copies {
            std::fs::copy(&from, &to).map_err(io_err("copy", &from))?;
        }
        let modules_root = dir.join(artifacts::MODULES_DIR);
        let install_path = format!("INSTALL_MOD_PATH={}", modules_root.display());
        self.make(
            "install modules (make modules_install)",
            &["modules_install", &install_path, "INSTALL_MOD_STRIP=1"],
            SHORT_MAKE_LIMIT,
        )?;

        let scratch_root = cache.scratch_dir(key);
        let result = self.build_external(modules, &scratch_root, &install_path);
        let _ = std::fs::remove_dir_all(&scratch_root);
        result?;

        let module_dir = modules_root.join("lib/modules").join(&release);
        // Links back into the cache make no sense in a guest and tempt `cp -L` to copy GBs.
        for link in ["build", "source"] {
            let _ = std::fs::remove_file(module_dir.join(link));
        }
        let mut depmod = self.command("depmod");
        depmod.arg("-b").arg(&modules_root).arg(&release);
        self.run("index modules (depmod)", depmod, SHORT_MAKE_LIMIT)?;
        if !module_dir.join("modules.dep").is_file() {
            return Err(BuildError::Incomplete {
                what: "modules.dep".into(),
                dir: module_dir,
            });
        }
        Ok(release)
    }

    /// `make M=<scratch copy>` for each external module, installed into `extra/`.
    fn build_external(
        &mut self,
        modules: &[ModuleSource],
        scratch_root: &Path,
        install_path: &str,
    ) -> Result<(), BuildError> {
        for module in modules {
            let scratch = scratch_root.join(&module.name);
            module.copy_to(&scratch)?;
            let m = format!("M={}", scratch.display());
            let mut build = self.command("make");
            build
                .arg("-C")
                .arg(self.build_dir)
                .arg(&m)
                .arg(format!("-j{}", self.jobs))
                .args(self.toolchain.make_vars())
                .arg("modules");
            self.run(
                &format!("build external module {} (make M=)", module.name),
                build,
                SHORT_MAKE_LIMIT,
            )
            .map_err(|e| e.point_at_sources(&scratch, &module.dir))?;
            let mut install = self.command("make");
            install
                .arg("-C")
                .arg(self.build_dir)
                .arg(&m)
                .args(self.toolchain.make_vars())
                .args([
                    "modules_install",
                    install_path,
                    "INSTALL_MOD_DIR=extra",
                    "INSTALL_MOD_STRIP=1",
                ]);
            self.run(
                &format!("install external module {}", module.name),
                install,
                SHORT_MAKE_LIMIT,
            )?;
        }
        Ok(())
    }
}

pub(super) fn list_modules(extra: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(extra)
        .map(|read| {
            read.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".ko"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Default `make -j`: one more job than cores keeps the CPUs busy during I/O.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
}

/// Limit for building one out-of-tree module.
const MODULE_BUILD_LIMIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Build a developer's module directory against a kernel build directory:
/// `make -C <build_dir> M=<scratch copy> LLVM=1 RUSTC=... modules`, the
/// copy so their tree collects no build products. Every output line goes to
/// `line` as make printed it. Returns the `.ko` files built, sorted.
pub fn build_module(
    dir: &Path,
    build_dir: &Path,
    scratch: &Path,
    cancel: &crate::sys::Cancel,
    line: &mut dyn FnMut(&str),
) -> Result<Vec<PathBuf>, ExternalError> {
    let source = ModuleSource::read(dir)?;
    if !source.is_buildable() {
        return Err(ExternalError::NotBuildable {
            dir: dir.to_path_buf(),
        });
    }
    source.copy_to(scratch)?;
    let toolchain = Toolchain::discover();
    let mut make = std::process::Command::new("make");
    make.env("PATH", &toolchain.path)
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .arg("-C")
        .arg(build_dir)
        .arg(format!("M={}", scratch.display()))
        .arg(format!("-j{}", default_jobs()))
        .args(toolchain.make_vars())
        .arg("modules");
    let status = child::run_logged(
        &mut make,
        Logged {
            log: &mut std::io::sink(),
            observe: &mut |activity| {
                if let Activity::Line(text) = activity {
                    line(text);
                }
            },
            limit: MODULE_BUILD_LIMIT,
            cancel,
            inherit_fd: None,
        },
    )
    .map_err(|source| ExternalError::Run {
        dir: dir.to_path_buf(),
        source,
    })?;
    if !status.success() {
        return Err(ExternalError::Make {
            dir: dir.to_path_buf(),
            build_dir: build_dir.to_path_buf(),
            status: status.to_string(),
        });
    }
    let built: Vec<PathBuf> = list_modules(scratch)
        .into_iter()
        .map(|name| scratch.join(name))
        .collect();
    if built.is_empty() {
        return Err(ExternalError::NoModule {
            dir: dir.to_path_buf(),
        });
    }
    Ok(built)
}
