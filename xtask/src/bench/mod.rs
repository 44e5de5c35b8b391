//! `cargo xtask bench` (`just bench`): time kcycle against virtme-ng and
//! against the in-guest floor, and write docs/benchmarks.md.
//!
//! Every figure runs `--runs` times in this one invocation; the document holds
//! median and min–max and ratios of medians of this run. Figures that cannot
//! be measured here say why in the document instead of a number. The shell
//! (processes, guests, files) is this module; statistics and the markdown are
//! pure (`stats`, `doc`, `kconfig`, `parse`).

mod classifier;
mod doc;
mod kconfig;
mod parse;
mod profile;
mod rebuild;
mod stats;
mod sweep;
mod vng;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kcycle::guest::{BootSpec, ExecRequest, Guest, RunDir};
use kcycle::kernel::Artifacts;
use kcycle::snapshot::SlabCounts;
use kcycle::sys::child::{self, Child, Spawn};
use kcycle::vm::Accel;

use crate::Failure;
use doc::{Figure, Ratio, Report, Section, Unit};

const USAGE: &str = "usage: cargo xtask bench [--runs K] [--cycles N] [--long-cycles L] [--accel tcg|kvm] [--kernel DIR] [--out FILE]
  --runs K         runs of every figure (default 3)
  --cycles N       load/unload cycles per per-cycle run (default 5)
  --long-cycles L  cycles of the long run that samples kcycle's memory and fds (default 40)
  --accel A        QEMU accelerator for every guest, kcycle's and virtme-ng's (default tcg)
  --kernel DIR     kernel artifact directory (default: KCYCLE_KERNEL, else `kcycle kernel build`)
  --out FILE       where the document goes (default docs/benchmarks.md)
  --skip LIST      leave out sections, comma-separated: cache,boot,cycles,classifier,sweep
                   (the document says they were skipped)";

/// The module the per-cycle figures cycle.
const MODULE: &str = "rust_i915_table";
/// The suite's kernel command line with every check on (slab caches unmerged
/// so a leaked one shows by name; kmemleak scanning after every unload).
const CMDLINE_ALL: &[&str] = &["slub_debug=U,rust_i915_*", "kmemleak=on"];
const CMDLINE_NO_KMEMLEAK: &[&str] = &["slub_debug=U,rust_i915_*"];

struct Options {
    runs: usize,
    cycles: usize,
    long_cycles: usize,
    accel: Accel,
    kernel: Option<PathBuf>,
    out: PathBuf,
    skip: Vec<String>,
}

/// Sections `--skip` knows.
const SECTIONS: &[&str] = &["cache", "boot", "cycles", "classifier", "sweep"];

/// Sections that boot guests.
const GUEST_SECTIONS: &[&str] = &["boot", "cycles", "sweep"];

impl Options {
    fn skips(&self, name: &str) -> bool {
        self.skip.iter().any(|s| s == name)
    }

    fn needs_guests(&self) -> bool {
        GUEST_SECTIONS.iter().any(|g| !self.skips(g))
    }

    fn runs_section(&self, name: &str) -> bool {
        let run = !self.skips(name);
        if !run {
            progress(&format!("{name}: skipped (--skip)"));
        }
        run
    }
}

fn skipped(title: &str) -> Section {
    Section {
        title: title.into(),
        notes: vec!["Skipped in this run (`--skip`).".into()],
        ..Section::default()
    }
}

fn usage(message: String) -> Failure {
    Failure {
        message: format!("{message}\n{USAGE}"),
        code: 2,
    }
}

fn infra(message: String) -> Failure {
    Failure { message, code: 3 }
}

fn parse_options(args: &[String]) -> Result<Options, Failure> {
    let mut options = Options {
        runs: 3,
        cycles: 5,
        long_cycles: 40,
        accel: Accel::Tcg,
        kernel: std::env::var_os("KCYCLE_KERNEL")
            .filter(|k| !k.is_empty())
            .map(PathBuf::from),
        out: PathBuf::from("docs/benchmarks.md"),
        skip: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| usage(format!("bench: {flag} needs a value")))
        };
        let count = |v: String| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(usage(format!(
                "bench: {flag} must be a positive whole number, not `{v}`"
            ))),
        };
        match flag.as_str() {
            "--runs" => options.runs = count(value()?)?,
            "--cycles" => options.cycles = count(value()?)?,
            "--long-cycles" => options.long_cycles = count(value()?)?,
            "--accel" => {
                options.accel = match value()?.as_str() {
                    "tcg" => Accel::Tcg,
                    "kvm" => Accel::Kvm,
                    other => {
                        return Err(usage(format!(
                            "bench: --accel is tcg or kvm, not `{other}`"
                        )))
                    }
                }
            }
            "--kernel" => options.kernel = Some(PathBuf::from(value()?)),
            "--out" => options.out = PathBuf::from(value()?),
            "--skip" => {
                for name in value()?.split(',') {
                    if !SECTIONS.contains(&name) {
                        return Err(usage(format!(
                            "bench: --skip takes {}, not `{name}`",
                            SECTIONS.join(",")
                        )));
                    }
                    options.skip.push(name.to_string());
                }
            }
            "-h" | "--help" => {
                return Err(Failure {
                    message: USAGE.into(),
                    code: 0,
                })
            }
            other => return Err(usage(format!("bench: unknown option `{other}`"))),
        }
    }
    Ok(options)
}

/// The workspace root (xtask's parent).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn shell_line(command: &Command) -> String {
    kcycle::sys::shell::render(command)
}

/// Run a command to the end (killed after `limit`); its wall time and output.
fn timed(command: &mut Command, limit: Duration) -> Result<(f64, child::Captured), String> {
    let line = shell_line(command);
    let started = Instant::now();
    let out = child::capture(command, limit).map_err(|e| format!("`{line}`: {e}"))?;
    Ok((started.elapsed().as_secs_f64(), out))
}

fn first_line(program: &str, args: &[&str]) -> String {
    child::capture(Command::new(program).args(args), Duration::from_secs(20))
        .map(|c| c.text().lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|e| format!("unavailable ({e})"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unreadable ({e})"))
}

fn progress(what: &str) {
    eprintln!("bench: {what}");
}

pub fn main(args: &[String]) -> Result<(), Failure> {
    let options = parse_options(args)?;
    let root = root();
    std::env::set_current_dir(&root)
        .map_err(|e| infra(format!("failed to enter {}: {e}", root.display())))?;
    let load_start = loadavg();
    let started = Instant::now();

    crate::run(
        "cargo build --release -p kcycle",
        crate::cargo().args(["build", "--release", "--quiet", "-p", "kcycle"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let kcycle = root.join(target).join("release/kcycle");
    let scratch =
        tempfile::tempdir().map_err(|e| infra(format!("failed to make a scratch dir: {e}")))?;

    // The cache is measured last: a build still running elsewhere (holding the
    // build dir's lock) has the longest time to finish. Without --kernel, the
    // guests need its artifact directory first.
    let mut cache = None;
    if options.kernel.is_none() && options.runs_section("cache") {
        cache = Some(cache_section(&kcycle, &options));
    }
    let kernel_dir = options
        .kernel
        .clone()
        .or_else(|| cache.as_ref().and_then(|(_, dir)| dir.clone()))
        // `--skip cache`: the guests still need the default kernel.
        .or_else(|| {
            (cache.is_none() && options.needs_guests())
                .then(|| default_kernel(&kcycle))
                .flatten()
        });
    let artifacts = match &kernel_dir {
        Some(dir) => Some(Artifacts::open(dir).map_err(|e| {
            usage(format!(
                "bench: {} is not a kernel artifact directory ({e}); give --kernel or KCYCLE_KERNEL",
                dir.display()
            ))
        })?),
        None => None,
    };
    let out = root.join(&options.out);
    // Read before the first section is written: the document itself would
    // make the tree look dirty afterwards.
    let machine_at_start = machine(&options, artifacts.as_ref());
    // The document is written after every section, so a run cut short keeps
    // what it measured (and says it is partial).
    let write = |sections: &[Section], done: bool| -> Result<String, Failure> {
        let mut machine = machine_at_start.clone();
        machine.push((
            "load average (1, 5, 15 min) at start".into(),
            load_start.clone(),
        ));
        machine.push(("load average at end".into(), loadavg()));
        machine.push((
            "whole bench wall time".into(),
            format!(
                "{:.0} s{}",
                started.elapsed().as_secs_f64(),
                if done {
                    ""
                } else {
                    " so far (partial: the run had not finished)"
                }
            ),
        ));
        let report = Report {
            date: chrono_free_date(),
            invocation: invocation(&options),
            machine,
            sections: sections.to_vec(),
        };
        let text = doc::render(&report);
        std::fs::write(&out, &text)
            .map_err(|e| infra(format!("failed to write {}: {e}", out.display())))?;
        Ok(text)
    };
    let mut sections = Vec::new();
    // Cheapest first; the virtme-ng boots (minutes each under TCG) late.
    sections.push(if options.runs_section("classifier") {
        classifier::section(&kcycle, &options, scratch.path())
    } else {
        skipped(classifier::TITLE)
    });
    write(&sections, false)?;
    match &artifacts {
        Some(artifacts) => {
            if options.runs_section("cycles") {
                let (cycles, memory) =
                    cycle_sections(&kcycle, artifacts, &options, scratch.path());
                sections.push(cycles);
                sections.push(memory);
            } else {
                sections.push(skipped("Per-cycle overhead"));
            }
            write(&sections, false)?;
            sections.push(if options.runs_section("boot") {
                boot_section(&kcycle, artifacts, &options, scratch.path())
            } else {
                skipped("Boot")
            });
            write(&sections, false)?;
        }
        None if !options.needs_guests() => {
            sections.push(skipped("Per-cycle overhead"));
            sections.push(skipped("Boot"));
        }
        None => sections.push(Section {
            title: "Guests".into(),
            notes: vec!["Not measured: no kernel (`kcycle kernel build` gave no artifact directory and neither --kernel nor KCYCLE_KERNEL was set).".into()],
            ..Section::default()
        }),
    }
    let cache = match cache {
        Some((section, _)) => section,
        None if options.runs_section("cache") => cache_section(&kcycle, &options).0,
        None => skipped("Kernel cache"),
    };
    sections.push(cache);
    write(&sections, false)?;
    sections.push(match &artifacts {
        Some(artifacts) if options.runs_section("sweep") => {
            sweep::section(&kcycle, artifacts, &options, scratch.path())
        }
        _ => skipped("Sweep"),
    });
    let text = write(&sections, true)?;
    println!("{text}");
    progress(&format!("wrote {}", out.display()));
    Ok(())
}

fn invocation(options: &Options) -> String {
    let mut line = format!(
        "just bench: cargo xtask bench --runs {} --cycles {} --long-cycles {} --accel {}",
        options.runs, options.cycles, options.long_cycles, options.accel
    );
    if let Some(k) = &options.kernel {
        line.push_str(&format!(" --kernel {}", k.display()));
    }
    if !options.skip.is_empty() {
        line.push_str(&format!(" --skip {}", options.skip.join(",")));
    }
    line
}

/// `date -u` (no date crate for one line).
fn chrono_free_date() -> String {
    first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

fn machine(options: &Options, artifacts: Option<&Artifacts>) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let commit = first_line("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = child::capture(
        Command::new("git").args(["status", "--porcelain"]),
        Duration::from_secs(20),
    )
    .map(|c| !c.stdout.trim().is_empty())
    .unwrap_or(false);
    let mut rows = vec![
        ("cores".to_string(), cores.to_string()),
        ("CPU".into(), model),
        ("host kernel".into(), first_line("uname", &["-srm"])),
        ("accel (every guest)".into(), options.accel.to_string()),
        (
            "QEMU".into(),
            first_line(&kcycle::vm::qemu_binary().to_string_lossy(), &["--version"]),
        ),
        (
            "virtme-ng".into(),
            if options.skips("boot") {
                "not used (boot skipped)".into()
            } else {
                // Installed here if missing: the row says which one ran.
                match vng::program() {
                    Ok(program) => vng::version(&program),
                    Err(why) => format!("unavailable ({why})"),
                }
            },
        ),
        (
            "kcycle commit".into(),
            format!(
                "{commit}{}",
                if dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            ),
        ),
        ("runs per figure".into(), options.runs.to_string()),
    ];
    if let Some(a) = artifacts {
        rows.push((
            "guest kernel".into(),
            format!("{} ({})", a.manifest.kernel_release, a.dir.display()),
        ));
    }
    rows
}

// ---- kernel cache ----------------------------------------------------------

/// A warm `kcycle kernel build` is a cache hit; returns the artifact directory too.
/// The default kernel's artifact directory: `kcycle kernel build`, a hit or
/// a whole build (hence the long deadline).
fn default_kernel(kcycle: &Path) -> Option<PathBuf> {
    progress("kernel: `kcycle kernel build` for the guests");
    match timed(&mut kernel_build(kcycle), Duration::from_secs(2 * 3600)) {
        Ok((_, out)) if out.status.success() => artifact_dir(&out.stdout),
        _ => None,
    }
}

/// `kcycle kernel build` of the default kernel.
fn kernel_build(kcycle: &Path) -> Command {
    let mut build = Command::new(kcycle);
    build.args(["--progress", "never", "kernel", "build"]);
    build
}

/// The artifact directory `kcycle kernel build` printed: its last line.
fn artifact_dir(stdout: &str) -> Option<PathBuf> {
    stdout.lines().last().map(|l| PathBuf::from(l.trim()))
}

fn cache_section(kcycle: &Path, options: &Options) -> (Section, Option<PathBuf>) {
    let command = || kernel_build(kcycle);
    let line = format!("{} --progress never kernel build", kcycle.display());
    let figure = Figure::new("cache-hit", "no-op cache hit", Unit::Seconds, line.clone());
    let mut notes = vec![
        "The cold build is not re-run (it would take the bench from minutes to half an hour): its figure is what \
         the cache entry's one build took, from its manifest, on whatever machine and load it ran. The boot \
         section's bench kernel says how long its own cold build took."
            .to_string(),
    ];
    // Warm-up: must already be a hit. A build that starts is stopped: cold builds are not this figure.
    progress("kernel cache: warm-up `kcycle kernel build` (must be a hit)");
    let warm = timed(&mut command(), Duration::from_secs(180));
    let dir = match &warm {
        Ok((_, out)) if out.status.success() => artifact_dir(&out.stdout),
        _ => None,
    };
    let figure = match warm {
        Err(e) => figure.not_measured(format!(
            "the warm-up did not finish within 180 s, so the cache has no entry for this tree ({e}); build it once with `kcycle kernel build`"
        )),
        Ok((_, out)) if !out.status.success() => figure.not_measured(format!(
            "the warm-up failed ({}): {}",
            out.status,
            parse::tail(&out.stderr, 3)
        )),
        Ok(_) => {
            let runs = options.runs.max(5);
            let mut samples = Vec::new();
            let mut failure = None;
            for i in 0..runs {
                progress(&format!("kernel cache: hit {}/{runs}", i + 1));
                match timed(&mut command(), Duration::from_secs(60)) {
                    Ok((t, out)) if out.status.success() => samples.push(t),
                    Ok((_, out)) => failure = Some(format!("{}: {}", out.status, parse::tail(&out.stderr, 3))),
                    Err(e) => failure = Some(e),
                }
            }
            if let Some(f) = failure {
                notes.push(format!("A hit run failed: {f}"));
            }
            figure.samples(samples)
        }
    };
    let mut figures = vec![figure];
    match &dir {
        Some(dir) => {
            figures.push(rebuild::module_only(dir, options.runs));
            figures.push(rebuild::cold(dir));
        }
        None => {
            notes.push("No cache entry, so no module-only rebuild and no cold build figure.".into())
        }
    }
    (
        Section {
            title: "Kernel cache".into(),
            figures,
            ratios: Vec::new(),
            notes,
        },
        dir,
    )
}

// ---- boot: kcycle exec vs virtme-ng -------------------------------------------

/// Runs of each boot figure: a boot is seconds, and its spread under TCG
/// on a shared host is a tenth of it, so three medians decide too little.
fn boot_runs(options: &Options) -> usize {
    options.runs.max(5)
}

fn boot_section(kcycle: &Path, guest: &Artifacts, options: &Options, scratch: &Path) -> Section {
    // Both boot the same bzImage: one that has what vng needs as well.
    let (bench, kernel_note) = match profile::vng_kernel(kcycle, guest, scratch) {
        Ok((artifacts, note)) => (artifacts, note),
        Err(why) => (
            guest.clone(),
            format!("Boot figures use the guest kernel as it is: the bench kernel with virtme-ng's options could not be had ({why}), so the vng figure is vng on a kernel it was not configured for."),
        ),
    };
    let artifacts = &bench;
    let mut exec = Command::new(kcycle);
    exec.args([
        "--progress",
        "never",
        "exec",
        "--accel",
        options.accel.name(),
        "--kernel",
    ])
    .arg(&artifacts.dir)
    .args(["--", "true"]);
    let exec_line = shell_line(&exec);
    let (mut ready, mut whole, mut failure) = (Vec::new(), Vec::new(), None);
    let runs = boot_runs(options);
    for i in 0..runs {
        progress(&format!("boot: kcycle exec -- true {}/{runs}", i + 1));
        match timed(&mut exec, Duration::from_secs(600)) {
            Ok((t, out)) if out.status.success() => {
                whole.push(t);
                ready.extend(parse::exec_ready_seconds(&out.stderr));
            }
            Ok((t, out)) => {
                failure = Some(format!(
                    "exited {} after {t:.1} s: {}",
                    out.status,
                    parse::tail(&out.stderr, 4)
                ))
            }
            Err(e) => failure = Some(e),
        }
    }
    let with_failure = |f: Figure, samples: Vec<f64>| match (&failure, samples.is_empty()) {
        (Some(why), true) => f.not_measured(why.clone()),
        _ => f.samples(samples),
    };
    let mut figures = vec![
        with_failure(
            Figure::new(
                "boot-ready",
                "boot to SSH-ready (QEMU start to first SSH login, as `kcycle exec` reports it)",
                Unit::Seconds,
                format!("{exec_line}  (its \"ready in N s\" line)"),
            ),
            ready,
        ),
        with_failure(
            Figure::new(
                "exec-true",
                "`kcycle exec -- true`, cold boot to power-off",
                Unit::Seconds,
                exec_line,
            ),
            whole,
        ),
    ];
    let (vng, vng_notes) = vng_figure(artifacts, options);
    figures.push(vng);
    let mut notes = vec![kernel_note];
    notes.extend(vng_notes);
    if let Some(f) = failure {
        notes.push(format!("A `kcycle exec` run failed: {f}"));
    }
    Section {
        title: "Boot: kcycle vs virtme-ng, same bzImage, same accel".into(),
        figures,
        ratios: vec![
            Ratio::new(
                "boot to SSH-ready / vng boot-to-exec",
                "boot-ready",
                "vng-exec-true",
                Some("≤ 0.5×"),
            ),
            Ratio::new(
                "`kcycle exec -- true` / `vng --exec true`",
                "exec-true",
                "vng-exec-true",
                None,
            ),
        ],
        notes,
    }
}

/// virtme-ng-init's line when the `--exec` command ended well; in its console
/// fallback vng itself exits 255 even then, so this line is the criterion.
const VNG_SCRIPT_OK: &str = "virtme-ng-init: script exited with code 0";

fn vng_figure(artifacts: &Artifacts, options: &Options) -> (Figure, Vec<String>) {
    // --verbose: in the console fallback (below) the script's end shows only there.
    let program = vng::program();
    let mut vng = Command::new(program.clone().unwrap_or_else(|_| PathBuf::from("vng")));
    vng.args(["--verbose", "--run"]).arg(artifacts.bzimage());
    if options.accel == Accel::Tcg {
        vng.arg("--disable-kvm");
    }
    vng.args(["--exec", "true"]);
    let line = shell_line(&vng);
    let figure = Figure::new(
        "vng-exec-true",
        "`vng --run <bzImage> --exec true`, cold boot to exit",
        Unit::Seconds,
        format!("{line}  (done when vng exits and its console says \"{VNG_SCRIPT_OK}\")"),
    );
    let mut notes = Vec::new();
    if let Err(why) = program {
        return (figure.not_measured(why), notes);
    }
    let mut samples = Vec::new();
    let mut exits = Vec::new();
    // A guest that panics in its timer check (host starvation under TCG) is
    // retried, up to `runs` times in all, and each one is written down.
    let mut panics = 0;
    let mut i = 0;
    let runs = boot_runs(options);
    while samples.len() < runs {
        progress(&format!(
            "boot: vng --exec true, attempt {} ({}/{runs} counted)",
            i + 1,
            samples.len()
        ));
        i += 1;
        match timed(&mut vng, Duration::from_secs(600)) {
            Ok((t, out))
                if out.status.success()
                    || out.stderr.contains(VNG_SCRIPT_OK)
                    || out.stdout.contains(VNG_SCRIPT_OK) =>
            {
                samples.push(t);
                exits.push(out.status.to_string());
                let console = format!("{}\n{}", out.stdout, out.stderr);
                if samples.len() == 1 && !out.status.success() {
                    let reasons: Vec<&str> = console
                        .lines()
                        .filter(|l| {
                            l.contains("ENODEV")
                                || l.contains("cannot find script")
                                || l.contains("console fallback")
                                || l.contains("Read-only file system (os")
                        })
                        .collect();
                    notes.push(format!(
                        "vng ran the command (its console says \"{VNG_SCRIPT_OK}\") but exits {}: virtme-ng-init fell back \
                         to running the script on the console. Its console lines that say why (first run):\n\n```\n{}\n```\n\n\
                         The vng figure is vng's time to run the command in that fallback.",
                        out.status,
                        reasons.join("\n")
                    ));
                }
            }
            Ok((t, out))
                if panics < runs
                    && format!("{}{}", out.stdout, out.stderr).contains("Kernel panic") =>
            {
                panics += 1;
                let console = format!("{}\n{}", out.stdout, out.stderr);
                let panic_line = console
                    .lines()
                    .find(|l| l.contains("Kernel panic"))
                    .unwrap_or("")
                    .trim();
                notes.push(format!(
                    "A vng run's guest panicked after {t:.1} s (`{}`) and was retried; not counted.",
                    panic_line.replace('`', "'")
                ));
            }
            Ok((t, out)) => {
                notes.push(format!(
                    "`{line}` exited {} after {t:.1} s and its console never said the command ran. The end of its output:\n\n```\n{}\n```",
                    out.status,
                    parse::tail(&format!("{}\n{}", out.stdout, out.stderr), 12)
                ));
                return (
                    figure.not_measured(format!(
                        "vng exited {} after {t:.1} s without running the command (see below)",
                        out.status
                    )),
                    notes,
                );
            }
            Err(e) => {
                let why = if e.contains("failed to start") {
                    format!("{e}; install it with `pip install virtme-ng`")
                } else {
                    e
                };
                return (figure.not_measured(why), notes);
            }
        }
    }
    exits.dedup();
    notes.push(format!(
        "vng's exit status in the measured runs: {}.",
        exits.join(", ")
    ));
    (figure.samples(samples), notes)
}

// ---- per-cycle overhead and kcycle's memory ------------------------------------

fn suite_text(cycles: usize, cmdline: &[&str]) -> String {
    let cmdline: Vec<String> = cmdline.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "name = \"bench\"\ncmdline = [{}]\nstep_timeout = 120\n\n[[test]]\nname = \"cycle\"\ncycles = {cycles}\n\
         steps = [{{ load = \"{MODULE}\" }}, {{ unload = \"{MODULE}\" }}]\n",
        cmdline.join(", ")
    )
}

/// Peak memory and fds of one kcycle run, sampled while it ran.
#[derive(Default)]
struct Sampled {
    hwm_kib: u64,
    /// kcycle's own user+system CPU in clock ticks, at the last sample.
    cpu_ticks: u64,
    max_fds: u64,
    first_fds: Option<u64>,
    last_fds: u64,
}

impl Sampled {
    fn take(&mut self, pid: u32) {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(hwm) = parse::status_kib(&status, "VmHWM") {
                self.hwm_kib = self.hwm_kib.max(hwm);
            }
        }
        if let Some(ticks) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parse::stat_cpu_ticks(&stat))
        {
            self.cpu_ticks = ticks;
        }
        if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            let fds = entries.count() as u64;
            self.max_fds = self.max_fds.max(fds);
            self.first_fds.get_or_insert(fds);
            self.last_fds = fds;
        }
    }
}

/// One `kcycle run` of the bench suite: seconds per cycle and what was sampled.
fn kcycle_run(
    kcycle: &Path,
    artifacts: &Artifacts,
    options: &Options,
    dir: &Path,
    cycles: usize,
    cmdline: &[&str],
) -> Result<(f64, Sampled), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
    let suite = dir.join("bench.toml");
    std::fs::write(&suite, suite_text(cycles, cmdline))
        .map_err(|e| format!("failed to write {}: {e}", suite.display()))?;
    let results = dir.join("results");
    let stderr_path = dir.join("stderr");
    let stderr = std::fs::File::create(&stderr_path)
        .map_err(|e| format!("failed to create {}: {e}", stderr_path.display()))?;
    let mut command = Command::new(kcycle);
    command
        .args(["--progress", "never", "run"])
        .arg(&suite)
        .args(["--accel", options.accel.name(), "--kernel"])
        .arg(&artifacts.dir)
        .arg("--results")
        .arg(&results)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let limit = Duration::from_secs(300 + 60 * cycles as u64);
    let mut child = Child::spawn(&mut command, Spawn::default()).map_err(|e| e.to_string())?;
    let pid = child.pid();
    let mut sampled = Sampled::default();
    let status = kcycle::sys::wait::poll(
        Instant::now() + limit,
        None,
        Duration::from_millis(200),
        || {
            sampled.take(pid);
            child.try_wait()
        },
    );
    let stderr_text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let status = match status {
        Ok(status) => status,
        Err(_) => {
            child.terminate(Duration::from_secs(10));
            return Err(format!(
                "`kcycle run` did not finish within {limit:?}: {}",
                parse::tail(&stderr_text, 4)
            ));
        }
    };
    let json = std::fs::read_to_string(results.join("results.json")).map_err(|e| {
        format!(
            "kcycle run exited {status} and left no results.json ({e}): {}",
            parse::tail(&stderr_text, 4)
        )
    })?;
    let (result, seconds) = parse::test_time(&json, "kcycle@bench@cycle")?;
    if !status.success() || result != "pass" {
        return Err(format!(
            "kcycle run exited {status}, the test is `{result}`:\n{}",
            parse::test_lines(&stderr_text)
        ));
    }
    Ok((seconds / cycles as f64, sampled))
}

fn run_line(
    kcycle: &Path,
    artifacts: &Artifacts,
    options: &Options,
    cycles: usize,
    cmdline: &[&str],
) -> String {
    format!(
        "{} --progress never run bench.toml --accel {} --kernel {}  (bench.toml: {cycles} cycles of {{load, unload}} {MODULE}, cmdline {:?}; test time from results.json / {cycles})",
        kcycle.display(),
        options.accel,
        artifacts.dir.display(),
        cmdline
    )
}

fn cycle_sections(
    kcycle: &Path,
    artifacts: &Artifacts,
    options: &Options,
    scratch: &Path,
) -> (Section, Section) {
    let mut notes = Vec::new();
    let (mut hwm, mut fds, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut series = |key: &str,
                      what: &str,
                      cmdline: &[&str],
                      cycles: usize,
                      runs: usize,
                      notes: &mut Vec<String>| {
        let mut samples = Vec::new();
        let mut failure = None;
        for i in 0..runs {
            progress(&format!("cycles: {key} {}/{runs} ({cycles} cycles)", i + 1));
            match kcycle_run(
                kcycle,
                artifacts,
                options,
                &scratch.join(format!("{key}-{i}")),
                cycles,
                cmdline,
            ) {
                Ok((per_cycle, sampled)) => {
                    samples.push(per_cycle * 1000.0);
                    hwm.push(sampled.hwm_kib as f64);
                    fds.push(sampled.max_fds as f64);
                    if sampled.cpu_ticks > 0 {
                        cpu.push(
                            sampled.cpu_ticks as f64 / ticks_per_second / cycles as f64 * 1000.0,
                        );
                    }
                    if let Some(first) = sampled.first_fds {
                        if sampled.last_fds > first {
                            notes.push(format!(
                                "{key} run {}: kcycle's fds grew from {first} to {} over the run",
                                i + 1,
                                sampled.last_fds
                            ));
                        }
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        let figure = Figure::new(
            key,
            what,
            Unit::Millis,
            run_line(kcycle, artifacts, options, cycles, cmdline),
        );
        match failure {
            Some(why) if samples.is_empty() => figure.not_measured(why),
            Some(why) => {
                notes.push(format!("A `{key}` run failed: {why}"));
                figure.samples(samples)
            }
            None => figure.samples(samples),
        }
    };
    let all = series(
        "kcycle-cycle-all",
        "kcycle, one load+unload cycle, every check on (dmesg, ledger snapshot, debugfs/sysfs, taint, kmemleak)",
        CMDLINE_ALL,
        options.cycles,
        options.runs,
        &mut notes,
    );
    let no_kmemleak = series(
        "kcycle-cycle-no-kmemleak",
        "kcycle, one cycle, every check but kmemleak",
        CMDLINE_NO_KMEMLEAK,
        options.cycles,
        options.runs,
        &mut notes,
    );
    let long = series(
        "kcycle-cycle-long",
        &format!(
            "kcycle, one cycle over a long run of {} cycles (no kmemleak)",
            options.long_cycles
        ),
        CMDLINE_NO_KMEMLEAK,
        options.long_cycles,
        1,
        &mut notes,
    );
    let mut figures = vec![all, no_kmemleak, long];
    let ratios = vec![
        Ratio::new(
            "kcycle cycle (no kmemleak) / in-guest loop",
            "kcycle-cycle-no-kmemleak",
            "floor-cycle",
            Some("≤ 1.10×"),
        ),
        Ratio::new(
            "kcycle cycle (every check) / in-guest loop with kmemleak on",
            "kcycle-cycle-all",
            "floor-cycle-kmemleak",
            None,
        ),
    ];
    for kind in [FloorGuest::Plain, FloorGuest::Kmemleak] {
        match floor_figures(artifacts, options, kind) {
            Ok(mut f) => figures.append(&mut f),
            Err(why) => figures.push(
                Figure::new(kind.key(), "in-guest floor", Unit::Millis, "").not_measured(why),
            ),
        }
    }
    let runner = kcycle::run::qemu::RUNNER_CMDLINE;
    notes.push(format!(
        "Each floor is measured in a guest booted as the kcycle runs it is compared with: kcycle's own \
         arguments ({runner:?}) and the suite's. Each check's own cost is its command timed from the host \
         over kcycle's SSH session (one persistent channel: `kcycle-snapshot serve` runs each command) in the floor guest without kmemleak (the kmemleak scan in \
         the one with it), `{MODULE}` not loaded; each includes \
         one SSH round trip (`ssh-true`). Per cycle kcycle runs two steps (load, unload), each one SSH round trip \
         holding the step's command and the collect after it (`check-collect`: the kernel log read and the snapshot in one \
         guest process; in a test of 8 cycles or more the last step's snapshot is `check-snapshot-exact`), and a kmemleak \
         scan after the unload. \
         The kmemleak scan holds `sleep 5` (kmemleak reports only objects older than its 5 s minimum age), \
         so a kmemleak cycle cannot come near the floor; the no-kmemleak figure is the one the target is about."
    ));
    let memory = Section {
        title: "kcycle's own memory, CPU and file descriptors".into(),
        figures: vec![
            Figure::new(
                "kcycle-host-cpu",
                "kcycle's own CPU (user + system, host) per cycle of a `kcycle run`: boot, steps, checks, reports",
                Unit::Millis,
                "/proc/<kcycle pid>/stat utime + stime at its last sample (every 200 ms) / the run's cycles, every run above",
            )
            .samples(cpu),
            Figure::new(
                "kcycle-peak-rss",
                "kcycle peak RSS (VmHWM) per `kcycle run`",
                Unit::KiB,
                "/proc/<kcycle pid>/status VmHWM, sampled every 200 ms during every run above",
            )
            .samples(hwm),
            Figure::new(
                "kcycle-max-fds",
                "kcycle open fds, most seen per `kcycle run`",
                Unit::Count,
                "ls /proc/<kcycle pid>/fd | wc -l, sampled every 200 ms during every run above",
            )
            .samples(fds),
        ],
        ratios: Vec::new(),
        notes: vec![format!(
            "Sampled over every `kcycle run` of the per-cycle section, the longest being {} cycles. \
             The CPU figure is kcycle alone (QEMU is another process): what the host side of a cycle costs, \
             its start and boot spread over the run's cycles. \
             A growing fd count within a run is listed under the per-cycle section. docs/soak.md (`just soak`) is the 200-cycle run.",
            options.long_cycles
        )],
    };
    (
        Section {
            title: "Per-cycle overhead: kcycle vs the same loop inside the guest".into(),
            figures,
            ratios,
            notes,
        },
        memory,
    )
}

/// Which guest a floor is measured in: one booted as the kcycle runs it is
/// compared with, so that both pay for the same kernel arguments.
#[derive(Clone, Copy, PartialEq)]
enum FloorGuest {
    /// [`CMDLINE_NO_KMEMLEAK`]: the floor, the SSH round trip, the log read, the snapshot.
    Plain,
    /// [`CMDLINE_ALL`]: the floor with kmemleak tracking every allocation, and its scan.
    Kmemleak,
}

impl FloorGuest {
    /// The floor figure's name, as the ratios name it.
    fn key(self) -> &'static str {
        match self {
            FloorGuest::Plain => "floor-cycle",
            FloorGuest::Kmemleak => "floor-cycle-kmemleak",
        }
    }

    fn description(self) -> &'static str {
        match self {
            FloorGuest::Plain => "in-guest floor: one modprobe + modprobe -r cycle, the whole loop as one shell command, in a guest booted as `kcycle-cycle-no-kmemleak`'s",
            FloorGuest::Kmemleak => "in-guest floor with kmemleak on, in a guest booted as `kcycle-cycle-all`'s",
        }
    }

    /// What a `kcycle run` guest of the bench suite is booted with.
    fn cmdline(self) -> Vec<String> {
        kcycle::run::qemu::guest_cmdline(match self {
            FloorGuest::Plain => CMDLINE_NO_KMEMLEAK,
            FloorGuest::Kmemleak => CMDLINE_ALL,
        })
    }
}

/// Boot one guest as a `kcycle run` guest of the bench suite and time,
/// from the host: the modprobe/rmmod loop as one shell command (the
/// floor), and each check.
fn floor_figures(
    artifacts: &Artifacts,
    options: &Options,
    kind: FloorGuest,
) -> Result<Vec<Figure>, String> {
    progress("floor: booting a guest for the in-guest loop and the checks");
    let cache = kcycle::sys::dirs::cache_root().ok_or("no cache dir (set HOME or KCYCLE_CACHE)")?;
    let image = kcycle::image::build(artifacts, &cache)
        .map_err(|e| format!("failed to build the image: {e}"))?;
    let mut spec = BootSpec::new(artifacts.bzimage(), image.path, options.accel);
    spec.cmdline = kind.cmdline();
    // One retry: under heavy host load a TCG guest can panic in its timer check.
    let mut failures = Vec::new();
    let mut booted = None;
    for _ in 0..2 {
        let run_dir = RunDir::temporary().map_err(|e| e.to_string())?;
        match Guest::boot(spec.clone(), run_dir.path()) {
            Ok(guest) => {
                booted = Some((guest, run_dir));
                break;
            }
            Err(e) => failures.push(format!("failed to boot: {}", kcycle::sys::error::chain(&e))),
        }
    }
    let Some((mut guest, _run_dir)) = booted else {
        return Err(failures.join("\n\nthen, retried:\n"));
    };
    let result = floor_in(&mut guest, options, kind);
    guest.shutdown(Duration::from_secs(10));
    result
}

fn floor_in(guest: &mut Guest, options: &Options, kind: FloorGuest) -> Result<Vec<Figure>, String> {
    let n = options.cycles;
    let floor = format!(
        "i=0; while [ $i -lt {n} ]; do modprobe {MODULE} && modprobe -r {MODULE} || exit 1; i=$((i+1)); done"
    );
    let mut time = |command: &str, reps: usize, what: &str| -> Result<Vec<f64>, String> {
        let mut samples = Vec::new();
        for i in 0..reps {
            progress(&format!("floor: {what} {}/{reps}", i + 1));
            let started = Instant::now();
            let mut request = ExecRequest::new(command);
            request.deadline = Duration::from_secs(300);
            let out = guest
                .exec(request)
                .map_err(|e| format!("`{command}`: {}", kcycle::sys::error::chain(&e)))?;
            let elapsed = started.elapsed().as_secs_f64();
            if !out.success() {
                return Err(format!(
                    "`{command}` exited {}: {}",
                    out.status,
                    parse::tail(&String::from_utf8_lossy(&out.stderr), 4)
                ));
            }
            samples.push(elapsed * 1000.0);
        }
        Ok(samples)
    };
    // Warm the module's files into the page cache, as kcycle's first cycle does.
    time(
        &format!("modprobe {MODULE} && modprobe -r {MODULE}"),
        1,
        "warm-up cycle",
    )?;
    let loops = time(&floor, options.runs, "in-guest loop")?;
    let per_cycle: Vec<f64> = loops.iter().map(|ms| ms / n as f64).collect();
    let via = "Guest::exec over kcycle's SSH session, host wall time";
    let floor_figure = Figure::new(
        kind.key(),
        kind.description(),
        Unit::Millis,
        format!(
            "{floor}  (one command; its host wall time / {n}; cmdline {:?})",
            kind.cmdline()
        ),
    )
    .samples(per_cycle);
    if kind == FloorGuest::Kmemleak {
        let kmemleak = time(
            kcycle::run::command::KMEMLEAK_SCAN,
            options.runs,
            "kmemleak scan",
        )?;
        return Ok(vec![
            floor_figure,
            Figure::new(
                "check-kmemleak",
                "check: kmemleak scan (scan, sleep 5, scan, read, clear)",
                Unit::Millis,
                format!("{}  ({via})", kcycle::run::command::KMEMLEAK_SCAN),
            )
            .samples(kmemleak),
        ]);
    }
    let reps = options.runs.max(3) * 3;
    let ssh = time("true", reps, "ssh round trip")?;
    let listed = kcycle::snapshot::command(SlabCounts::Listed);
    let exact = kcycle::snapshot::command(SlabCounts::Exact);
    let collect = kcycle::snapshot::with_log_command(SlabCounts::Listed);
    let snapshot = time(&listed, reps, "ledger snapshot")?;
    let sample = time(&exact, reps, "ledger snapshot, exact slab counts")?;
    let collected = time(&collect, reps, "kernel log read and snapshot")?;
    Ok(vec![
        floor_figure,
        Figure::new(
            "ssh-true",
            "SSH round trip (`true`)",
            Unit::Millis,
            format!("true  ({via})"),
        )
        .samples(ssh),
        Figure::new(
            "check-snapshot",
            "check: ledger snapshot (slab, taint, modules, debugfs, sysfs, procfs, …)",
            Unit::Millis,
            format!("{listed}  ({via})"),
        )
        .samples(snapshot),
        Figure::new(
            "check-snapshot-exact",
            "check: a cycle's sample, the snapshot with every slab cache shrunk first (tests of 8 cycles or more)",
            Unit::Millis,
            format!("{exact}  ({via})"),
        )
        .samples(sample),
        Figure::new(
            "check-collect",
            "check: the kernel log read and cleared, then the snapshot (every step's collect)",
            Unit::Millis,
            format!("{collect}  ({via})"),
        )
        .samples(collected),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_and_their_errors() {
        let o = parse_options(&args(&[
            "--runs", "5", "--cycles", "2", "--accel", "kvm", "--out", "x.md",
        ]))
        .unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!(
            (o.runs, o.cycles, o.accel, o.out),
            (5, 2, Accel::Kvm, PathBuf::from("x.md"))
        );
        for (bad, says) in [
            (
                &["--runs", "0"][..],
                "--runs must be a positive whole number, not `0`",
            ),
            (&["--runs"][..], "--runs needs a value"),
            (&["--accel", "hvf"][..], "--accel is tcg or kvm, not `hvf`"),
            (&["--fast"][..], "unknown option `--fast`"),
            (
                &["--skip", "boot,vng"][..],
                "--skip takes cache,boot,cycles,classifier,sweep, not `vng`",
            ),
        ] {
            match parse_options(&args(bad)) {
                Err(f) => assert!(f.message.contains(says) && f.code == 2, "{}", f.message),
                Ok(_) => panic!("{bad:?} was accepted"),
            }
        }
    }

    #[test]
    fn the_suite_is_a_valid_kcycle_suite() {
        let text = suite_text(4, CMDLINE_ALL);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, &text).unwrap();
        let suite = kcycle::suite::Suite::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(suite.cmdline, ["slub_debug=U,rust_i915_*", "kmemleak=on"]);
        assert_eq!(suite.tests[0].cycles, 4);
        assert_eq!(suite.tests[0].steps.len(), 2);
    }

    #[test]
    fn a_floor_guest_boots_as_the_runs_it_is_compared_with() {
        let plain = FloorGuest::Plain.cmdline();
        let leak = FloorGuest::Kmemleak.cmdline();
        for args in [&plain, &leak] {
            assert!(args.iter().any(|a| a == "loglevel=5"), "{args:?}");
            assert!(
                args.iter().any(|a| a == "slub_debug=U,rust_i915_*"),
                "{args:?}"
            );
        }
        assert!(!plain.iter().any(|a| a == "kmemleak=on"), "{plain:?}");
        assert!(leak.iter().any(|a| a == "kmemleak=on"), "{leak:?}");
    }
}
