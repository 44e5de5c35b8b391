//! `kcycle run` and `kcycle ci`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kcycle::exit::ExitStatus;

use super::guest::{boot_spec, guest_kernel};
use super::kernel::build_kernel;
use super::{
    draws_progress, interrupt_flag, CiArgs, ExitOnError, Failure, GuestArgs, Progress, RunArgs,
};

/// `kcycle ci`: the main job in one command — host packages, kernel, image,
/// the configured suites (or `--suites`, one `--shard`), results.
pub(super) fn ci(args: &CiArgs, progress: Progress) -> Result<ExitStatus, Failure> {
    use kcycle::host::Outcome;

    let config = ci_config(args)?;
    if let Some(shard) = &args.shard {
        // A bad shard is bad input: say so before minutes of setup and kernel build.
        shard.parse::<kcycle::suite::Shard>().bad_input()?;
    }
    eprintln!("kcycle ci: 1/3 host packages");
    if let Outcome::Missing { commands } = kcycle::host::setup(false).infrastructure()? {
        return Err(anyhow::anyhow!(
            "the host lacks what kcycle needs and kcycle cannot install it here; run:\n  {}",
            commands.join("\n  ")
        ))
        .infrastructure();
    }
    eprintln!("kcycle ci: 2/3 guest kernel");
    let kernel_source = args.kernel_source.clone().or(config.kernel_source.clone());
    let built = build_kernel(kernel_source, false, None, progress)?;
    eprintln!("kcycle ci: kernel {}", built.artifacts.dir.display());
    eprintln!("kcycle ci: 3/3 suites");
    run_suites(&ci_run_args(config, args, built.artifacts.dir), progress)
}

/// kcycle.toml, or with `--suites` and no such file, its defaults.
fn ci_config(args: &CiArgs) -> Result<kcycle::config::CiConfig, Failure> {
    use kcycle::config::CiConfig;
    if !args.suites.is_empty() && !args.config.exists() {
        return Ok(CiConfig {
            kernel_source: None,
            suites: Vec::new(),
            jobs: 1,
            results: PathBuf::from("results"),
            filter: None,
        });
    }
    CiConfig::load(&args.config).bad_input()
}

/// What `kcycle ci` runs: the config, with the command line's choices over it.
fn ci_run_args(config: kcycle::config::CiConfig, args: &CiArgs, kernel: PathBuf) -> RunArgs {
    RunArgs {
        suites: if args.suites.is_empty() {
            config.suites
        } else {
            args.suites.clone()
        },
        guest: GuestArgs {
            kernel: Some(kernel),
            accel: args.accel,
        },
        results: args.results.clone().unwrap_or(config.results),
        filter: config.filter,
        jobs: config.jobs,
        modules: args.modules.clone(),
        shard: args.shard.clone(),
        keep_tainted_guest: false,
        known_issues: Vec::new(),
        bisect: Default::default(),
    }
}

/// `kcycle run`: check everything that can be checked before a guest boots,
/// then run the plan and write reports as results arrive.
pub(super) fn run_suites(args: &RunArgs, progress: Progress) -> Result<ExitStatus, Failure> {
    use kcycle::outcome::RunInfo;
    use kcycle::report::results_dir::ResultsWriter;
    use kcycle::report::terminal::Terminal;
    use kcycle::run::qemu::QemuFactory;
    use kcycle::suite::{self, Shard, Suite};

    let interrupted = interrupt_flag();
    let mut suites = args
        .suites
        .iter()
        .map(|path| Suite::load(path))
        .collect::<Result<Vec<_>, _>>()
        .bad_input()?;
    super::baseline::add_known_issue_files(&mut suites, &args.known_issues)?;
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
    // Known issues for other kernels do not apply: plan again with the rest.
    let release = artifacts.manifest.kernel_release.clone();
    let suites = super::baseline::for_kernel(&suites, &release);
    let plan = suite::select(&suites, args.filter.as_deref(), shard).bad_input()?;
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
        symbols: kcycle::symbols::KoSymbols::new(
            vec![artifacts.modules_dir()],
            args.modules.clone(),
        ),
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
    if let Err(error) = writer.finish() {
        eprintln!("kcycle: {:#}", anyhow::Error::from(error));
    }
    let summary = kcycle::report::summary::render(writer.run_info(), writer.results());
    eprintln!("\n{summary}");
    super::baseline::report_known_issues(&suites, writer.results(), &release);
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn ci_args(argv: &[&str]) -> CiArgs {
        let cli = super::super::Cli::parse_from(["kcycle", "ci"].iter().chain(argv));
        match cli.command {
            super::super::Command::Ci(args) => args,
            other => panic!("not ci: {other:?}"),
        }
    }

    fn config() -> kcycle::config::CiConfig {
        kcycle::config::CiConfig::parse(
            std::path::Path::new("/repo/kcycle.toml"),
            "[run]\nsuites = [\"suites/a.toml\", \"suites/b.toml\"]\njobs = 2\nfilter = \"kcycle@a@*\"\n",
        )
        .unwrap()
    }

    #[test]
    fn ci_runs_the_config_unless_told_otherwise() {
        let run = ci_run_args(config(), &ci_args(&[]), "/k".into());
        assert_eq!(
            run.suites,
            [
                PathBuf::from("/repo/suites/a.toml"),
                "/repo/suites/b.toml".into()
            ]
        );
        assert_eq!(run.results, PathBuf::from("/repo/results"));
        assert_eq!((run.jobs, run.shard), (2, None));
        assert_eq!(run.filter.as_deref(), Some("kcycle@a@*"));
        assert_eq!(run.guest.kernel, Some(PathBuf::from("/k")));
    }

    #[test]
    fn ci_shard_suites_and_results_override_the_config() {
        let args = ci_args(&[
            "--shard",
            "2/3",
            "--suites",
            "x.toml,y.toml",
            "--suites",
            "z.toml",
            "--results",
            "results-2",
            "--module",
            "drv.ko",
        ]);
        let run = ci_run_args(config(), &args, "/k".into());
        assert_eq!(
            run.suites,
            [PathBuf::from("x.toml"), "y.toml".into(), "z.toml".into()]
        );
        assert_eq!(run.shard.as_deref(), Some("2/3"));
        assert_eq!(run.results, PathBuf::from("results-2"));
        assert_eq!(run.modules, [PathBuf::from("drv.ko")]);
    }

    #[test]
    fn ci_with_suites_needs_no_config_file() {
        let args = ci_args(&["--config", "/nonexistent/kcycle.toml", "--suites", "s.toml"]);
        let config = ci_config(&args).unwrap();
        assert_eq!(
            ci_run_args(config, &args, "/k".into()).results,
            PathBuf::from("results")
        );
        let without = ci_args(&["--config", "/nonexistent/kcycle.toml"]);
        let error = ci_config(&without).unwrap_err();
        assert_eq!(error.status, ExitStatus::BadInput);
    }
}
