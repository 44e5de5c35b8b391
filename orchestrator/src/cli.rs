//! Command-line interface: argument definitions and dispatch.
//!
//! Every subcommand returns an [`ExitStatus`] or a [`Failure`] that carries
//! the exit status it should end with, so the mapping from "what went wrong"
//! to exit code is decided where the error is understood, not guessed later.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
}

#[derive(Debug, Args)]
pub struct CiArgs {
    /// The config that lists kernel source, suites, jobs and results dir.
    #[arg(long, default_value = "kcycle.toml")]
    pub config: PathBuf,
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
#[allow(dead_code)] // the subcommands that use it land one by one
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

/// A subcommand whose issue has not landed: say so and do nothing.
fn not_built(command: &str, issue: u32) -> Result<ExitStatus, Failure> {
    Err(Failure {
        status: ExitStatus::BadInput,
        error: anyhow::anyhow!(
            "`kcycle {command}` is not built yet (tracked in issue {issue}); nothing was done"
        ),
    })
}

pub fn run(cli: Cli) -> Result<ExitStatus, Failure> {
    match cli.command {
        Command::Setup(_) => not_built("setup", 3),
        Command::Kernel(KernelCommand::Build(_)) => not_built("kernel build", 3),
        Command::Image(ImageCommand::Build(args)) => image_build(&args),
        Command::Boot(args) => boot(&args.guest),
        Command::Exec(args) => exec(&args),
        Command::Run(_) => not_built("run", 6),
        Command::Ci(_) => not_built("ci", 7),
        Command::Merge(_) => not_built("merge", 7),
        Command::Dmesg(_) => not_built("dmesg", 2),
    }
}

/// Where the kernel comes from: `--kernel`, else `KCYCLE_KERNEL`.
fn guest_kernel(kernel: Option<&Path>) -> Result<Artifacts, Failure> {
    let dir = match kernel {
        Some(dir) => dir.to_path_buf(),
        None => match std::env::var_os("KCYCLE_KERNEL") {
            Some(dir) => PathBuf::from(dir),
            None => {
                return Err(anyhow::anyhow!(
                    "no guest kernel: pass --kernel DIR or set KCYCLE_KERNEL to the artifact \
                     directory that `kcycle kernel build` prints"
                ))
                .bad_input()
            }
        },
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

/// Build or reuse the image, pick the accelerator, boot, wait for SSH.
/// A failed boot keeps its run directory (console log, QEMU stderr) and says where.
fn boot_guest(args: &GuestArgs) -> Result<(Guest, RunDir), Failure> {
    let artifacts = guest_kernel(args.kernel.as_deref())?;
    let cache = image::cache_root();
    let image = image::build(&artifacts, &cache).infrastructure()?;
    let run_dir = RunDir::temporary().infrastructure()?;
    let requested = match args.accel {
        Accel::Auto => None,
        Accel::Kvm => Some(vm::Accel::Kvm),
        Accel::Tcg => Some(vm::Accel::Tcg),
    };
    // The probe boots the same kernel and image under KVM (only for auto).
    let probe_dir = run_dir.path().join("probe");
    let probe_initrd = run_dir.path().join("probe-initrd.cpio");
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
    let guest = match Guest::boot(spec, run_dir.path()) {
        Ok(guest) => guest,
        Err(error) => {
            eprintln!("kcycle: logs kept in {}", run_dir.keep().display());
            return Err(error).infrastructure();
        }
    };
    eprintln!(
        "kcycle: guest {} ready in {:.1} s (console: {})",
        artifacts.manifest.kernel_release,
        guest.boot_time().as_secs_f64(),
        guest.console().path().display()
    );
    Ok((guest, run_dir))
}

fn boot(args: &GuestArgs) -> Result<ExitStatus, Failure> {
    let interrupted = interrupt_flag();
    // The run directory (key, console log) lives until the guest is gone.
    let (mut guest, _run_dir) = boot_guest(args)?;
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
    let (mut guest, run_dir) = boot_guest(&args.guest)?;
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
