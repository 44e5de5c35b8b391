//! Command-line interface: argument definitions and dispatch.
//!
//! Every subcommand returns an [`ExitStatus`] or a [`Failure`] that carries
//! the exit status it should end with, so the mapping from "what went wrong"
//! to exit code is decided where the error is understood, not guessed later.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kcycle::exit::ExitStatus;
use kcycle::guest::{BootSpec, ExecRequest, Guest, GuestError, RunDir};
use kcycle::kernel::Artifacts;
use kcycle::{image, vm};

const ABOUT: &str = "Catch kernel drivers that do not undo what they set up.";

const LONG_ABOUT: &str = "\
Catch kernel drivers that do not undo what they set up.

kcycle builds a guest kernel with Intel's i915 driver and a Rust port of
i915's init/exit table, boots it in QEMU, drives load -> selftest -> unload ->
reload cycles over SSH and reads dmesg, /sys/kernel/slab and kmemleak to find
duplicate debugfs/sysfs entries, leaked slab caches, WARNs, oopses and
selftest failures. Results go to JUnit XML, an IGT-style results.json and the
terminal.";

const AFTER_HELP: &str = "\
Typical use:
  kcycle ci                          build or reuse kernel and image, run the default suites
  kcycle run suites/rust-table.toml  run one suite, results in results/
  kcycle dmesg console.log           classify a kernel log you already have
  kcycle exec -- cat /proc/version   boot the guest, run one command, shut down

Exit codes (every subcommand):
  0  passed, or only known issues
  1  test failures or findings
  2  bad input or usage (the message names the file, field or option)
  3  infrastructure failure (QEMU, SSH, kernel build, disk)";

#[derive(Debug, Parser)]
#[command(name = "kcycle", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// When to draw progress bars: `auto` draws them only when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = Progress::Auto, global = true)]
    pub progress: Progress,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the host packages kcycle needs (apt as root), or check them with --check.
    Setup(SetupArgs),
    /// Build the guest kernel (Linux 6.12 + i915 selftests + Rust), cached.
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Build the guest initramfs (busybox, sshd, module tools), cached.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Boot the guest and keep it running; prints how to reach it over SSH.
    Boot(BootArgs),
    /// Boot the guest, run one command in it, shut down; exits with the command's status.
    Exec(ExecArgs),
    /// Run suites: load/selftest/unload/reload cycles with dmesg, slab and kmemleak checks.
    Run(RunArgs),
    /// The main job: set up, build kernel and image, run the default suites, write results.
    Ci(CiArgs),
    /// Merge results directories from shards into one junit.xml and results.json.
    Merge(MergeArgs),
    /// Classify kernel logs: WARNs, oopses, KASAN, duplicate debugfs/sysfs entries, leaks.
    ///
    /// Exits 0 when nothing is found, 1 when something is, 2 on error (like grep).
    Dmesg(DmesgArgs),
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Only report what is missing; install nothing.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Build (or reuse from the cache) the guest kernel; prints the artifact directory last.
    Build(KernelBuildArgs),
}

#[derive(Debug, Args)]
pub struct KernelBuildArgs {
    /// A kernel tree to build instead of Debian's linux-source-6.12 (never modified in place).
    #[arg(long, env = "KCYCLE_KERNEL_SRC")]
    pub source: Option<PathBuf>,
    /// Copy the artifacts here as well as into the cache.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rebuild even when the cache has a complete entry.
    #[arg(long)]
    pub force: bool,
    /// Print the manifest as JSON instead of the artifact directory.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build (or reuse from the cache) the guest initramfs for a kernel.
    Build(ImageBuildArgs),
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// Kernel artifact directory (from `kcycle kernel build`); default: build or reuse it.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GuestArgs {
    /// Kernel artifact directory (from `kcycle kernel build`); default: build or reuse it.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// CPU accelerator: `auto` probes KVM with a tiny guest and falls back to TCG.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Args)]
pub struct BootArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// The command to run in the guest, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Suite files (TOML), e.g. suites/rust-table.toml.
    #[arg(required = true)]
    pub suites: Vec<PathBuf>,
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Where junit.xml, results.json, console logs and summary.md go.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Run only tests whose name matches this glob (e.g. 'kcycle@rust-table@*').
    #[arg(long)]
    pub filter: Option<String>,
    /// Guests to run in parallel.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// An out-of-tree module (.ko) to copy into the guest and cycle with insmod.
    #[arg(long = "module")]
    pub modules: Vec<PathBuf>,
    /// Run only shard I of N (e.g. 2/4); every test lands in exactly one shard.
    #[arg(long)]
    pub shard: Option<String>,
    /// Keep using a guest after a test left fatal taint (WARN, DIE, BAD_PAGE,
    /// MCE). By default it is restarted so one bug does not poison later tests.
    #[arg(long)]
    pub keep_tainted_guest: bool,
}

#[derive(Debug, Args)]
pub struct CiArgs {
    /// The config that lists kernel source, suites, jobs and results dir.
    #[arg(long, default_value = "kcycle.toml")]
    pub config: PathBuf,
    /// CPU accelerator: `auto` probes KVM with a tiny guest and falls back to TCG.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Results directories written by `kcycle run --shard`.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged junit.xml and results.json go.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DmesgArgs {
    /// Print one JSON object per input file: {"file", "findings": [...]}.
    #[arg(long)]
    pub json: bool,
    /// Kernel logs to classify; `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// A failed command: the error and the exit status it ends with.
#[derive(Debug)]
pub struct Failure {
    pub status: ExitStatus,
    pub error: anyhow::Error,
}

/// Attach the exit status to an error where its meaning is known.
pub trait ExitOnError<T> {
    /// The user gave something wrong: exit 2.
    fn bad_input(self) -> Result<T, Failure>;
    /// Something kcycle depends on broke: exit 3.
    fn infrastructure(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> ExitOnError<T> for Result<T, E> {
    fn bad_input(self) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            status: ExitStatus::BadInput,
            error: error.into(),
        })
    }

    fn infrastructure(self) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            status: ExitStatus::Infrastructure,
            error: error.into(),
        })
    }
}

pub fn run(cli: Cli) -> Result<ExitStatus, Failure> {
    let progress = cli.progress;
    match cli.command {
        Command::Setup(args) => setup(args),
        Command::Kernel(KernelCommand::Build(args)) => kernel_build(args, progress),
        Command::Image(ImageCommand::Build(args)) => image_build(&args),
        Command::Boot(args) => boot(&args.guest),
        Command::Exec(args) => exec(&args),
        Command::Run(args) => run_suites(&args, progress),
        Command::Ci(args) => ci(&args, progress),
        Command::Merge(args) => merge_results(&args),
        Command::Dmesg(args) => dmesg(&args),
    }
}

/// `kcycle setup [--check]`: 0 when the host is complete, 1 when something is missing.
fn setup(args: SetupArgs) -> Result<ExitStatus, Failure> {
    use kcycle::host::Outcome;
    match kcycle::host::setup(args.check).infrastructure()? {
        Outcome::AlreadyComplete | Outcome::Installed => Ok(ExitStatus::Passed),
        Outcome::Missing { commands } => {
            eprintln!("kcycle: to complete the host, run:");
            for command in commands {
                eprintln!("  {command}");
            }
            Ok(ExitStatus::Failed)
        }
    }
}

/// `kcycle kernel build`: the artifact directory as the last stdout line, or
/// with `--json` the manifest plus `"dir"`.
fn kernel_build(args: KernelBuildArgs, progress: Progress) -> Result<ExitStatus, Failure> {
    let built = build_kernel(args.source, args.force, args.out, progress)?;
    if args.json {
        let mut value = serde_json::to_value(&built.artifacts.manifest).infrastructure()?;
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "dir".into(),
                built.artifacts.dir.display().to_string().into(),
            );
        }
        println!("{}", serde_json::to_string_pretty(&value).infrastructure()?);
    } else {
        println!("{}", built.artifacts.dir.display());
    }
    Ok(ExitStatus::Passed)
}

/// Build (or take from the cache) the guest kernel with this project's
/// fragments, patches and modules.
fn build_kernel(
    source: Option<PathBuf>,
    force: bool,
    out: Option<PathBuf>,
    progress: Progress,
) -> Result<kcycle::kernel::Built, Failure> {
    use kcycle::kernel::{self, build, cache::Cache, source::SourceSpec, BuildRequest, Project};

    let project = Project::discover().bad_input()?;
    let cache = Cache::from_env().bad_input()?;
    let jobs = std::env::var("KCYCLE_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or_else(build::default_jobs);
    let request = BuildRequest {
        source: SourceSpec::from_option(source),
        external_modules: project.default_modules(),
        project,
        cache,
        force,
        out,
        spinner: draws_progress(progress),
        jobs,
    };
    kernel::build(&request).map_err(|error| Failure {
        status: if error.is_bad_input() {
            ExitStatus::BadInput
        } else {
            ExitStatus::Infrastructure
        },
        error: error.into(),
    })
}

/// Whether to draw spinners and bars: `auto` only on a terminal.
fn draws_progress(progress: Progress) -> bool {
    use std::io::IsTerminal;
    match progress {
        Progress::Auto => std::io::stderr().is_terminal(),
        Progress::Always => true,
        Progress::Never => false,
    }
}

/// `kcycle ci`: the main job in one command — host packages, kernel, image,
/// the configured suites, results.
fn ci(args: &CiArgs, progress: Progress) -> Result<ExitStatus, Failure> {
    use kcycle::config::CiConfig;
    use kcycle::host::Outcome;

    let config = CiConfig::load(&args.config).bad_input()?;
    eprintln!("kcycle ci: 1/3 host packages");
    if let Outcome::Missing { commands } = kcycle::host::setup(false).infrastructure()? {
        return Err(anyhow::anyhow!(
            "the host lacks what kcycle needs and kcycle cannot install it here; run:\n  {}",
            commands.join("\n  ")
        ))
        .infrastructure();
    }
    eprintln!("kcycle ci: 2/3 guest kernel");
    let built = build_kernel(config.kernel_source.clone(), false, None, progress)?;
    eprintln!("kcycle ci: kernel {}", built.artifacts.dir.display());
    eprintln!("kcycle ci: 3/3 suites");
    let run = RunArgs {
        suites: config.suites.clone(),
        guest: GuestArgs {
            kernel: Some(built.artifacts.dir.clone()),
            accel: args.accel,
        },
        results: config.results.clone(),
        filter: config.filter.clone(),
        jobs: config.jobs,
        modules: Vec::new(),
        shard: None,
        keep_tainted_guest: false,
    };
    run_suites(&run, progress)
}

/// `kcycle dmesg`: classify each log, print its findings, exit like grep
/// (0 nothing found, 1 found, 2 when a file could not be read: the others
/// are still classified).
fn dmesg(args: &DmesgArgs) -> Result<ExitStatus, Failure> {
    use std::io::Write;

    let mut out = std::io::stdout().lock();
    let mut found = false;
    let mut unreadable = Vec::new();
    for path in &args.files {
        let name = path.to_string_lossy();
        let bytes = match read_log(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                unreadable.push(format!("{error:#}"));
                continue;
            }
        };
        let findings = kcycle::dmesg::classify_bytes(&bytes);
        found |= !findings.is_empty();
        if args.json {
            let record = DmesgRecord {
                file: &name,
                findings: &findings,
            };
            serde_json::to_writer(&mut out, &record)
                .context("failed to write the findings as JSON to stdout")
                .infrastructure()?;
            writeln!(out)
                .context("failed to write to stdout")
                .infrastructure()?;
        } else {
            for f in &findings {
                writeln!(out, "{name}:{}: {}: {}", f.line, f.kind, f.title)
                    .context("failed to write to stdout")
                    .infrastructure()?;
            }
        }
    }
    out.flush()
        .context("failed to write to stdout")
        .infrastructure()?;
    if !unreadable.is_empty() {
        return Err(Failure {
            status: ExitStatus::BadInput,
            error: anyhow::anyhow!("{}", unreadable.join("; ")),
        });
    }
    Ok(if found {
        ExitStatus::Failed
    } else {
        ExitStatus::Passed
    })
}

/// One line of `kcycle dmesg --json`.
#[derive(serde::Serialize)]
struct DmesgRecord<'a> {
    file: &'a str,
    findings: &'a [kcycle::dmesg::Finding],
}

/// The bytes of a kernel log; `-` is standard input.
fn read_log(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;

    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("failed to read the kernel log from standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| {
        format!(
            "failed to read kernel log {}: check the path and its permissions",
            path.display()
        )
    })
}

/// Where the kernel comes from: `--kernel`, else `KCYCLE_KERNEL`.
fn guest_kernel(kernel: Option<&Path>) -> Result<Artifacts, Failure> {
    let dir = match kernel {
        Some(dir) => dir.to_path_buf(),
        None => {
            match std::env::var_os("KCYCLE_KERNEL") {
                Some(dir) => PathBuf::from(dir),
                None => {
                    // What `--kernel`'s help promises: build it, or take it from the cache.
                    eprintln!("kcycle: no --kernel or KCYCLE_KERNEL: building or reusing the guest kernel");
                    return Ok(build_kernel(None, false, None, Progress::Auto)?.artifacts);
                }
            }
        }
    };
    Artifacts::open(&dir).bad_input()
}

fn image_build(args: &ImageBuildArgs) -> Result<ExitStatus, Failure> {
    let artifacts = guest_kernel(args.kernel.as_deref())?;
    let image = image::build(&artifacts, &image::cache_root()).infrastructure()?;
    eprintln!(
        "kcycle: image {} ({})",
        image.key,
        if image.cached { "cached" } else { "built" }
    );
    println!("{}", image.path.display());
    Ok(ExitStatus::Passed)
}

/// Build or reuse the image and pick the accelerator: everything a boot
/// needs. `scratch` holds the accel probe's files.
fn boot_spec(args: &GuestArgs, artifacts: &Artifacts, scratch: &Path) -> Result<BootSpec, Failure> {
    let cache = image::cache_root();
    let image = image::build(artifacts, &cache).infrastructure()?;
    let requested = match args.accel {
        Accel::Auto => None,
        Accel::Kvm => Some(vm::Accel::Kvm),
        Accel::Tcg => Some(vm::Accel::Tcg),
    };
    // The probe boots the same kernel and image under KVM (only for auto).
    let probe_dir = scratch.join("probe");
    let probe_initrd = scratch.join("probe-initrd.cpio");
    if requested.is_none() {
        std::fs::create_dir_all(&probe_dir).infrastructure()?;
        image::write_run_initrd(&image.path, "", &probe_initrd).infrastructure()?;
    }
    let probe = vm::accel::ProbeGuest {
        qemu: Path::new("qemu-system-x86_64"),
        kernel: &artifacts.bzimage(),
        initrd: &probe_initrd,
        run_dir: &probe_dir,
    };
    let choice = vm::resolve_accel(requested, &probe, &cache);
    eprintln!("kcycle: accel {} ({})", choice.accel, choice.reason);
    let mut spec = BootSpec::new(artifacts.bzimage(), image.path, choice.accel);
    spec.cancel = Some(std::sync::Arc::clone(interrupt_flag()));
    Ok(spec)
}

/// Boot one guest and wait for SSH.
fn boot_guest(args: &GuestArgs, run_dir: &RunDir) -> Result<Guest, Failure> {
    let artifacts = guest_kernel(args.kernel.as_deref())?;
    let spec = boot_spec(args, &artifacts, run_dir.path())?;
    let guest = Guest::boot(spec, run_dir.path()).infrastructure()?;
    eprintln!(
        "kcycle: guest {} ready in {:.1} s (console: {})",
        artifacts.manifest.kernel_release,
        guest.boot_time().as_secs_f64(),
        guest.console().path().display()
    );
    Ok(guest)
}

fn boot(args: &GuestArgs) -> Result<ExitStatus, Failure> {
    let interrupted = interrupt_flag();
    let run_dir = RunDir::temporary().infrastructure()?;
    let mut guest = match boot_guest(args, &run_dir) {
        Ok(guest) => guest,
        Err(failure) => return Err(keep_for_debugging(run_dir, failure)),
    };
    println!("{}", guest.ssh_command());
    eprintln!("kcycle: the guest runs until Ctrl-C");
    loop {
        if interrupted.load(Ordering::SeqCst) {
            eprintln!("kcycle: shutting the guest down");
            let how = guest.shutdown(Duration::from_secs(10));
            eprintln!("kcycle: guest stopped ({how:?})");
            return Ok(ExitStatus::Passed);
        }
        match guest.state() {
            vm::GuestState::Running => std::thread::sleep(Duration::from_millis(200)),
            vm::GuestState::Panicked { lines } => {
                return Err(GuestError::Panicked { lines }).infrastructure()
            }
            // `poweroff` in the guest: a normal end.
            vm::GuestState::Exited { success: true, .. } => {
                eprintln!("kcycle: the guest powered off");
                return Ok(ExitStatus::Passed);
            }
            vm::GuestState::Exited { status, lines, .. } => {
                return Err(GuestError::Exited { status, lines }).infrastructure();
            }
        }
    }
}

fn exec(args: &ExecArgs) -> Result<ExitStatus, Failure> {
    let interrupted = interrupt_flag();
    let run_dir = RunDir::temporary().infrastructure()?;
    let mut guest = match boot_guest(&args.guest, &run_dir) {
        Ok(guest) => guest,
        Err(failure) => return Err(keep_for_debugging(run_dir, failure)),
    };
    // Ctrl-C during the command: kill QEMU, which ends the SSH session and
    // lets this thread clean up normally.
    let killer = guest.vm().killer();
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if interrupted.load(Ordering::SeqCst) {
                    killer.kill();
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Like ssh: the words are joined and the guest's shell parses them.
    let request = ExecRequest::new(args.command.join(" "))
        .inactivity(Duration::from_secs(600))
        .deadline(Duration::from_secs(3600));
    let result = guest.exec(request);
    done.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    let how = guest.shutdown(Duration::from_secs(5));
    if interrupted.load(Ordering::SeqCst) {
        return Err(anyhow::anyhow!("interrupted; the guest was killed")).infrastructure();
    }
    let output = result.infrastructure()?;
    use std::io::Write;
    let _ = std::io::stdout().write_all(&output.stdout);
    let _ = std::io::stderr().write_all(&output.stderr);
    let _ = std::io::stdout().flush();
    eprintln!("kcycle: guest stopped ({how:?})");
    let code = match (output.status, &output.signal) {
        (0, None) => return Ok(ExitStatus::Passed),
        (status, None) => status,
        (_, Some(signal)) => {
            eprintln!("kcycle: the command was killed by SIG{signal}");
            255
        }
    };
    // The command's own status, as `ssh` would return it. QEMU is reaped;
    // the run directory goes now because exit() skips destructors.
    drop(run_dir);
    std::process::exit(code)
}

/// Keep a failed boot's run directory (console log, QEMU stderr) and say where.
fn keep_for_debugging(run_dir: RunDir, failure: Failure) -> Failure {
    eprintln!("kcycle: logs kept in {}", run_dir.keep().display());
    failure
}

/// `kcycle run`: check everything that can be checked before a guest boots,
/// then run the plan and write reports as results arrive.
fn run_suites(args: &RunArgs, progress: Progress) -> Result<ExitStatus, Failure> {
    use kcycle::outcome::RunInfo;
    use kcycle::report::results_dir::ResultsWriter;
    use kcycle::report::terminal::Terminal;
    use kcycle::run::qemu::QemuFactory;
    use kcycle::suite::{self, Shard, Suite};

    let interrupted = interrupt_flag();
    let suites = args
        .suites
        .iter()
        .map(|path| Suite::load(path))
        .collect::<Result<Vec<_>, _>>()
        .bad_input()?;
    let shard = args
        .shard
        .as_deref()
        .map(str::parse::<Shard>)
        .transpose()
        .bad_input()?;
    let plan = suite::select(&suites, args.filter.as_deref(), shard).bad_input()?;
    for file in &args.modules {
        if kcycle::run::qemu::module_name(file).is_none() || !file.is_file() {
            return Err(anyhow::anyhow!(
                "--module {}: not a readable .ko file (build it with `make -C <kernel build dir> M=<dir>`)",
                file.display()
            ))
            .bad_input();
        }
    }
    let sources = QemuFactory::module_sources(&args.modules);
    let chosen: Vec<Suite> = suites
        .iter()
        .filter(|s| plan.iter().any(|(p, _)| p.name == s.name))
        .cloned()
        .collect();

    let artifacts = guest_kernel(args.guest.kernel.as_deref())?;
    let kernel_modules = artifacts.modules().infrastructure()?;
    kcycle::run::plan::check(&chosen, &kernel_modules, &sources).bad_input()?;

    let results_dir = args.results.clone();
    kcycle::report::results_dir::create(&results_dir).infrastructure()?;
    let scratch = tempfile::tempdir().infrastructure()?;
    let spec = boot_spec(&args.guest, &artifacts, scratch.path())?;

    let info = RunInfo {
        name: match shard {
            Some(shard) => format!("kcycle shard {shard}"),
            None => "kcycle".into(),
        },
        kernel_release: artifacts.manifest.kernel_release.clone(),
        kernel_source: artifacts.manifest.source.clone(),
        qemu_version: qemu_version(),
        accel: spec.accel.name().into(),
        commit: git_commit(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        cmdline: std::env::args().collect(),
        shard: shard.map(|s| s.to_string()),
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default(),
    };
    let writer = ResultsWriter::create(&results_dir, info.clone()).infrastructure()?;
    let fancy = draws_progress(progress);
    let github = std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true");
    let reporters = std::sync::Mutex::new((
        Terminal::new(fancy, github).with_results_dir(&results_dir),
        writer,
        None,
    ));
    let emit = |event: kcycle::run::Event| {
        let Ok(mut guard) = reporters.lock() else {
            return;
        };
        let (terminal, writer, write_error) = &mut *guard;
        terminal.event(&event);
        if let kcycle::run::Event::TestFinished { result, .. } = event {
            if let Err(error) = writer.record(result) {
                // Keep running: the previous reports stay valid; say so once.
                if write_error.is_none() {
                    eprintln!("kcycle: {:#}", anyhow::Error::from(error));
                    *write_error = Some(());
                }
            }
        }
    };
    emit(kcycle::run::Event::RunStarted {
        info,
        tests: plan.iter().map(|(_, t)| t.name.clone()).collect(),
    });

    let killers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let factory = QemuFactory {
        spec,
        module_files: args.modules.clone(),
        results_dir: results_dir.clone(),
        killers: std::sync::Arc::clone(&killers),
    };
    // Ctrl-C: kill every QEMU so in-flight commands end; the scheduler then
    // stops handing out tests and reports the rest as notrun.
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, killers) = (
            std::sync::Arc::clone(&done),
            std::sync::Arc::clone(&killers),
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if interrupted.load(Ordering::SeqCst) {
                    if let Ok(killers) = killers.lock() {
                        killers.iter().for_each(|k| k.kill());
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let options = kcycle::run::RunOptions {
        jobs: args.jobs,
        restart_on_taint: !args.keep_tainted_guest,
    };
    kcycle::run::run_plan(&plan, options, &factory, &sources, interrupted, &emit);
    done.store(true, Ordering::SeqCst);
    let _ = watcher.join();

    let Ok((_, writer, _)) = reporters.into_inner() else {
        return Err(anyhow::anyhow!("a reporter panicked")).infrastructure();
    };
    let summary = kcycle::report::summary::render(writer.run_info(), writer.results());
    eprintln!("\n{summary}");
    if github {
        // Each guest console, folded, so a CI log shows why a guest died.
        let mut consoles: Vec<PathBuf> = std::fs::read_dir(&results_dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        consoles.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("console-"))
        });
        consoles.sort();
        for console in consoles {
            let _ = kcycle::report::terminal::print_console_group(&console, 200);
        }
    }
    eprintln!("kcycle: results in {}", results_dir.display());
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = writeln!(file, "{summary}");
        }
    }
    if interrupted.load(Ordering::SeqCst) {
        return Err(anyhow::anyhow!(
            "interrupted; results so far are in {}",
            results_dir.display()
        ))
        .infrastructure();
    }
    Ok(kcycle::outcome::exit_status(writer.results()))
}

/// `kcycle merge`: join the results directories of shards into one. Every
/// input is read and checked before anything is written; the merged run
/// exits like the unsharded run would have (0, 1 or 3).
fn merge_results(args: &MergeArgs) -> Result<ExitStatus, Failure> {
    use kcycle::report::{igt_json, junit, merge, results_dir, summary};

    let mut runs = Vec::with_capacity(args.dirs.len());
    for dir in &args.dirs {
        let path = dir.join(results_dir::RESULTS_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| {
                format!(
                    "failed to read {}: pass results directories written by `kcycle run --shard I/N`",
                    path.display()
                )
            })
            .bad_input()?;
        runs.push(merge::parse(&dir.display().to_string(), &text).bad_input()?);
    }
    refuse_out_among_inputs(&args.out, &args.dirs)?;
    // Console logs keep their names inside one subdirectory per input.
    let consoles: Vec<(PathBuf, String)> = runs
        .iter()
        .zip(&args.dirs)
        .enumerate()
        .map(|(i, (input, dir))| {
            let label = match &input.run.shard {
                Some(shard) => format!("shard-{}", shard.replace('/', "-of-")),
                None => format!("run-{}", i + 1),
            };
            (dir.clone(), label)
        })
        .collect();
    let inputs = runs.len();
    let (run, results) = merge::merge(runs).bad_input()?;

    results_dir::create(&args.out).infrastructure()?;
    let junit = junit::render(&run, &results).infrastructure()?;
    results_dir::write_atomic(&args.out.join(results_dir::JUNIT_FILE), junit.as_bytes())
        .infrastructure()?;
    let json = serde_json::to_string_pretty(&igt_json::render(&run, &results))
        .context("failed to serialize the merged results.json")
        .infrastructure()?;
    results_dir::write_atomic(&args.out.join(results_dir::RESULTS_FILE), json.as_bytes())
        .infrastructure()?;
    let summary = summary::render(&run, &results);
    results_dir::write_atomic(
        &args.out.join(results_dir::SUMMARY_FILE),
        summary.as_bytes(),
    )
    .infrastructure()?;
    for (dir, label) in &consoles {
        copy_console_logs(dir, &args.out.join(label)).infrastructure()?;
    }
    eprintln!("{summary}");
    eprintln!(
        "kcycle: merged {} tests from {inputs} results directories into {}",
        results.len(),
        args.out.display()
    );
    Ok(kcycle::outcome::exit_status(&results))
}

/// Writing the merge over one of its inputs would destroy a shard's own results.
fn refuse_out_among_inputs(out: &Path, dirs: &[PathBuf]) -> Result<(), Failure> {
    let Ok(out_real) = out.canonicalize() else {
        return Ok(()); // does not exist yet, so it is no input
    };
    for dir in dirs {
        if dir.canonicalize().is_ok_and(|d| d == out_real) {
            return Err(anyhow::anyhow!(
                "--out {} is one of the directories being merged; choose another --out",
                out.display()
            ))
            .bad_input();
        }
    }
    Ok(())
}

/// Copy the guest console logs (`console-*.log`) of a results directory into `to`.
fn copy_console_logs(from: &Path, to: &Path) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(from).with_context(|| format!("failed to list {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", from.display()))?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("console") {
            continue;
        }
        std::fs::create_dir_all(to)
            .with_context(|| format!("failed to create {}", to.display()))?;
        let target = to.join(&name);
        std::fs::copy(entry.path(), &target).with_context(|| {
            format!(
                "failed to copy {} to {}",
                entry.path().display(),
                target.display()
            )
        })?;
    }
    Ok(())
}

/// `qemu-system-x86_64 --version`'s first line, or empty.
fn qemu_version() -> String {
    std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// kcycle's own commit, when run from a git checkout.
fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A flag set by SIGINT/SIGTERM, so that commands can shut QEMU down
/// themselves instead of dying with it half-way.
fn interrupt_flag() -> &'static std::sync::Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<std::sync::Arc<AtomicBool>> = std::sync::OnceLock::new();
    extern "C" fn on_signal(_: libc::c_int) {
        // Installed only after FLAG is set; get() is an atomic load.
        if let Some(flag) = FLAG.get() {
            flag.store(true, Ordering::SeqCst);
        }
    }
    FLAG.get_or_init(|| {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
            libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        }
        std::sync::Arc::new(AtomicBool::new(false))
    })
}
