//! Command-line interface: argument definitions and dispatch.
//!
//! Every subcommand returns an [`ExitStatus`] or a [`Failure`] that carries
//! the exit status it should end with, so the mapping from "what went wrong"
//! to exit code is decided where the error is understood, not guessed later.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kcycle::exit::ExitStatus;

mod baseline;
mod bisect;
mod build_view;
mod compare;
mod cycle;
mod dmesg;
mod docs;
mod guest;
mod kernel;
mod merge;
mod passthrough;
mod report;
mod run;

use baseline::baseline_update;
use compare::compare_results;
use cycle::cycle;
use dmesg::dmesg;
use docs::{completions, man};
use guest::{boot, exec, image_build};
use kernel::{kernel_build, setup};
use merge::merge_results;
use passthrough::{passthrough, PassthroughCommand};
use report::report;
use run::{ci, run_suites};

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
  kcycle compare base/ results/      what a change broke or fixed since a baseline run
  kcycle exec -- cat /proc/version   boot the guest, run one command, shut down
  kcycle exec --shell 'dmesg | tail' the same with a whole shell line

Exit codes (every subcommand):
  0  passed, or only known issues
  1  test failures or findings
  2  bad input or usage (the message names the file, field or option)
  3  infrastructure failure (QEMU, SSH, kernel build, disk)
`kcycle run --bisect` exits for `git bisect run` instead: 0 good, 1 bad,
125 skip (infrastructure failure), 128 abort (bad input).";

#[derive(Debug, Parser)]
#[command(name = "kcycle", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// When to draw progress bars: `auto` draws them only when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, global = true)]
    pub progress: ProgressMode,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
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
    /// Check one module with no suite file: load -> unload N cycles, a reload, optionally
    /// a selftest and a sweep of every init error path.
    ///
    /// MODULE is a module of the guest kernel (`i915`), a built `.ko`, or a source
    /// directory with a Kbuild or Makefile (built with `make M=` against the guest kernel).
    Cycle(CycleArgs),
    /// Merge results directories from shards into one junit.xml and results.json.
    Merge(MergeArgs),
    /// Render index.html again from a results directory's results.json (older runs, merged shards).
    Report(ReportArgs),
    /// Compare two runs: possible regressions, fixes, still failing, flaky, known, newly skipped.
    ///
    /// Exits 1 when NEW has a new failure, 0 otherwise, 2 when an input is unreadable
    /// or the runs have no test in common.
    Compare(CompareArgs),
    /// Known-issue files from runs: `baseline update` writes consistent failures as
    /// known issues and inconsistent ones as flakes.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Find the commit that brought a finding in: a binary search between a good and a
    /// bad commit of a kernel tree or an out-of-tree module's repository.
    ///
    /// Each step checks the commit out in --source, builds what it must (the guest
    /// kernel from a kernel tree, incrementally in kcycle's cache; the module with
    /// `make M=` for a module repository) and runs `kcycle cycle` or `kcycle run`
    /// with `--bisect`. The bad commit is tested first, twice unless --runs is
    /// given: a finding that shows in one run of two makes every later commit need
    /// five good runs before it counts as good (95% confidence). A commit that does
    /// not build or whose guest breaks is skipped. The tree's checkout is restored
    /// at the end. Every step's results stay in --results (step-N-COMMIT/), with
    /// bisect.md listing the steps.
    ///
    /// Example: kcycle bisect --source ~/src/mydrv --good v1.0 --bad main \
    ///   --cycle . --finding '*mydrv*'
    Bisect(BisectCommandArgs),
    /// Classify kernel logs: WARNs, oopses, KASAN, duplicate debugfs/sysfs entries, leaks.
    ///
    /// Exits 0 when nothing is found, 1 when something is, 2 on error (like grep).
    Dmesg(DmesgArgs),
    /// A real Intel GPU for passthrough guests: preflight checks, bind to vfio-pci and back.
    #[command(subcommand)]
    Passthrough(PassthroughCommand),
    /// Print a shell completion script: `kcycle completions bash > /etc/bash_completion.d/kcycle`.
    Completions(CompletionsArgs),
    /// Print the man page kcycle(1), or with --out DIR write one per subcommand.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish (or elvish, powershell).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write kcycle.1 and kcycle-<subcommand>.1 into this directory instead of printing kcycle.1.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Only report what is missing; install nothing.
    #[arg(long)]
    pub check: bool,
    /// Accept that apt removes packages to install kcycle's (by default setup
    /// stops and names them, e.g. a newer qemu-utils that bookworm's QEMU conflicts with).
    #[arg(long, conflicts_with = "check")]
    pub allow_remove: bool,
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
    /// A config fragment merged after the project's (repeat for more), e.g. a
    /// profile for a benchmark; it is part of the cache key, and the build
    /// gets a build directory of its own.
    #[arg(long = "fragment", value_name = "FILE")]
    pub fragments: Vec<PathBuf>,
    /// The base config: `minimal` (the default) starts from allnoconfig plus
    /// guest-kernel/profiles/minimal.config, about half the options; `full` from
    /// x86_64_defconfig. Boot the result with KCYCLE_KERNEL=<dir>.
    #[arg(long, value_enum, default_value_t, env = "KCYCLE_KERNEL_PROFILE")]
    pub profile: kcycle::kernel::Profile,
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
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
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
    /// A whole shell line for the guest's /bin/sh, e.g. 'dmesg | tail'
    /// (instead of a command after `--`).
    #[arg(long, value_name = "LINE", conflicts_with = "command")]
    pub shell: Option<String>,
    /// The command and its arguments, after `--`: each one reaches the
    /// guest as one word, exactly as given (no globbing, no `$` expansion).
    #[arg(last = true, required_unless_present = "shell")]
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
    /// Boot a guest that a test left dirty or crashed again, instead of
    /// restoring the state it saved when it was first ready.
    #[arg(long)]
    pub no_restore: bool,
    #[command(flatten)]
    pub retry: RetryArgs,
    /// A known-issues file (`[[known_issue]]`, `[[flake]]`), e.g. from `kcycle baseline update`.
    #[arg(long = "known-issues")]
    pub known_issues: Vec<PathBuf>,
    /// Pass a real Intel GPU through to the guest (`auto`: the host's one
    /// Intel display device); the default for suites with `guest = "passthrough"`.
    #[arg(long, value_name = "auto|BDF")]
    pub passthrough: Option<kcycle::passthrough::Selector>,
    #[command(flatten)]
    pub bisect: BisectArgs,
    /// Suites built in memory (`kcycle cycle`), run with the files'.
    #[arg(skip)]
    pub inline_suites: Vec<kcycle::suite::Suite>,
}

#[derive(Debug, Args)]
pub struct CycleArgs {
    /// A module name, a .ko file, or a module source directory.
    #[arg(value_name = "MODULE|FILE.ko|DIR")]
    pub target: String,
    /// A module parameter for every load, NAME=VALUE (repeat for more).
    #[arg(long = "params", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Load/unload cycles.
    #[arg(long, default_value_t = 3)]
    pub cycles: u32,
    /// Load with selftests instead of a plain load.
    #[arg(long, value_enum)]
    pub selftest: Option<SelftestArg>,
    #[command(flatten)]
    pub guest: GuestArgs,
    /// A kernel tree to build the guest kernel from (instead of --kernel or the cached build).
    #[arg(long, conflicts_with = "kernel")]
    pub source: Option<PathBuf>,
    /// Where junit.xml, results.json, console logs, summary.md and the suite go.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Added to the guest kernel command line (repeat for more), e.g. `slub_debug=U`.
    #[arg(long, value_name = "ARG")]
    pub cmdline: Vec<String>,
    /// Also sweep every init error path with fault injection (fail-nth).
    #[arg(long)]
    pub sweep: bool,
    /// The highest fail-nth the sweep tries (a suite step's `limit`).
    #[arg(long, value_name = "N", requires = "sweep", default_value_t = kcycle::suite::DEFAULT_SWEEP_LIMIT)]
    pub sweep_limit: u32,
    /// Print the suite as TOML (a suite file to keep) and exit without running it.
    #[arg(long)]
    pub print_suite: bool,
    #[command(flatten)]
    pub retry: RetryArgs,
    #[command(flatten)]
    pub bisect: BisectArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SelftestArg {
    I915Mock,
    I915Live,
    Kunit,
}

/// Reruns that tell a flake from a failure.
#[derive(Debug, Clone, Copy, Args)]
pub struct RetryArgs {
    /// Rerun a test that fails the run this many times, each in a fresh guest;
    /// a pass on a rerun is reported as flaky and does not fail the run.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub retries: u32,
    /// Do not rerun failing tests (the same as --retries 0).
    #[arg(long, conflicts_with = "retries")]
    pub no_retry: bool,
}

impl Default for RetryArgs {
    fn default() -> Self {
        RetryArgs {
            retries: 1,
            no_retry: false,
        }
    }
}

impl RetryArgs {
    pub fn reruns(&self) -> u32 {
        if self.no_retry {
            0
        } else {
            self.retries
        }
    }
}

#[derive(Debug, Args)]
pub struct BisectCommandArgs {
    /// A commit without the finding.
    #[arg(long)]
    pub good: String,
    /// A later commit with the finding.
    #[arg(long)]
    pub bad: String,
    /// The git tree to bisect: a kernel tree, or an out-of-tree module's repository.
    /// Its working tree must be clean; its checkout is restored at the end.
    #[arg(long)]
    pub source: PathBuf,
    /// Only a failing finding that matches this (a fingerprint, an id prefix, or a glob
    /// over its title) makes a commit bad; without it any failure does.
    #[arg(long)]
    pub finding: Option<String>,
    /// Check this module at each step with `kcycle cycle`: a module name, or a
    /// directory of the tree (relative to --source; `.` for its top).
    #[arg(long, value_name = "MODULE|DIR", conflicts_with = "suites")]
    pub cycle: Option<String>,
    /// With --cycle: a module parameter, NAME=VALUE (repeat for more).
    #[arg(long = "params", value_name = "NAME=VALUE", requires = "cycle")]
    pub params: Vec<String>,
    /// With --cycle: load/unload cycles per run.
    #[arg(long, default_value_t = 3, requires = "cycle")]
    pub cycles: u32,
    /// Runs per commit before it counts as good; default: measured on the bad commit
    /// (two runs there).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: Option<u32>,
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Where every step's results and bisect.md go.
    #[arg(long, default_value = "bisect-results")]
    pub results: PathBuf,
    /// Suite files to run at each step (instead of --cycle).
    #[arg(value_name = "SUITE")]
    pub suites: Vec<PathBuf>,
}

/// Exit codes for `git bisect run`.
#[derive(Debug, Clone, Default, Args)]
pub struct BisectArgs {
    /// Exit as `git bisect run` expects: 0 good, 1 bad, 125 skip (infrastructure
    /// failure), 128 abort (bad input).
    #[arg(long)]
    pub bisect: bool,
    /// With --bisect: only a failing finding that matches this (a fingerprint, an
    /// id prefix, or a glob over its title) makes the commit bad.
    #[arg(long, requires = "bisect")]
    pub finding: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Write or refresh a known-issues file from results directories (or results.json files).
    Update(BaselineUpdateArgs),
}

#[derive(Debug, Args)]
pub struct BaselineUpdateArgs {
    /// Results directories or results.json files of several runs of the same suites.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// The known-issues file to write; an existing one is refreshed, keeping its fields.
    #[arg(long, default_value = "known-issues.toml")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct CiArgs {
    /// The config that lists kernel source, suites, jobs and results dir
    /// (optional with --suites).
    #[arg(long, default_value = "kcycle.toml")]
    pub config: PathBuf,
    /// CPU accelerator: `auto` probes KVM with a tiny guest and falls back to TCG.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// Suite files to run instead of the config's `[run] suites` (repeat, or comma-separate).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub suites: Vec<PathBuf>,
    /// Run only shard I of N (e.g. 2/4) of the suites' tests.
    #[arg(long)]
    pub shard: Option<String>,
    /// Where the reports go, instead of the config's `[run] results`.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// An out-of-tree module (.ko) to copy into the guest and cycle with insmod.
    #[arg(long = "module")]
    pub modules: Vec<PathBuf>,
    /// A kernel tree to build instead of the config's `[kernel] source` or Debian's linux-source-6.12.
    #[arg(long, env = "KCYCLE_KERNEL_SRC")]
    pub kernel_source: Option<PathBuf>,
    #[command(flatten)]
    pub retry: RetryArgs,
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
pub struct ReportArgs {
    /// A results directory (from `kcycle run` or `kcycle merge`); index.html is written there.
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a results directory or its results.json.
    pub base: PathBuf,
    /// The run to judge: a results directory or its results.json.
    pub new: PathBuf,
    /// Print markdown for a pull-request comment.
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
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
    passthrough::recover();
    match cli.command {
        Command::Setup(args) => setup(args),
        Command::Kernel(KernelCommand::Build(args)) => kernel_build(args, progress),
        Command::Image(ImageCommand::Build(args)) => image_build(&args),
        Command::Boot(args) => boot(&args.guest),
        Command::Exec(args) => exec(&args),
        Command::Run(args) => bisect::map(&args.bisect, &args.results, {
            bisect::forget(&args.bisect, &args.results);
            run_suites(&args, progress)
        }),
        Command::Ci(args) => ci(&args, progress),
        Command::Cycle(args) => bisect::map(&args.bisect, &args.results, {
            bisect::forget(&args.bisect, &args.results);
            cycle(&args, progress)
        }),
        Command::Merge(args) => merge_results(&args),
        Command::Report(args) => report(&args),
        Command::Compare(args) => compare_results(&args),
        Command::Baseline(BaselineCommand::Update(args)) => baseline_update(&args),
        Command::Bisect(args) => bisect::bisect(&args),
        Command::Dmesg(args) => dmesg(&args),
        Command::Passthrough(command) => passthrough(&command),
        Command::Completions(args) => completions(&args),
        Command::Man(args) => man(&args),
    }
}

/// Whether to draw spinners and bars: `auto` only on a terminal.
fn draws_progress(progress: ProgressMode) -> bool {
    use std::io::IsTerminal;
    match progress {
        ProgressMode::Auto => std::io::stderr().is_terminal(),
        ProgressMode::Always => true,
        ProgressMode::Never => false,
    }
}
