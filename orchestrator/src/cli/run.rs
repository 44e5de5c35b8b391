//! `kcycle run` and `kcycle ci`.

use std::path::PathBuf;

use kcycle::exit::ExitStatus;
use kcycle::sys::Cancel;

use super::guest::{boot_spec, guest_kernel};
use super::kernel::build_kernel;
use super::{draws_progress, CiArgs, ExitOnError, Failure, GuestArgs, ProgressMode, RunArgs};

/// `kcycle ci`: the main job in one command — host packages, kernel, image,
/// the configured suites (or `--suites`, one `--shard`), results.
pub(super) fn ci(args: &CiArgs, progress: ProgressMode) -> Result<ExitStatus, Failure> {
    use kcycle::host::SetupOutcome;

    let config = ci_config(args)?;
    if let Some(shard) = &args.shard {
        // A bad shard is bad input: say so before minutes of setup and kernel build.
        shard.parse::<kcycle::suite::Shard>().bad_input()?;
    }
    eprintln!("kcycle ci: 1/3 host packages");
    if let SetupOutcome::Missing { commands } = kcycle::host::setup(false).infrastructure()? {
        return Err(anyhow::anyhow!(
            "the host lacks what kcycle needs and kcycle cannot install it here; run:\n  {}",
            commands.join("\n  ")
        ))
        .infrastructure();
    }
    eprintln!("kcycle ci: 2/3 guest kernel");
    let kernel_source = args.kernel_source.clone().or(config.kernel_source.clone());
    let built = build_kernel(
        kernel_source,
        false,
        None,
        &[],
        Default::default(),
        progress,
    )?;
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
        no_restore: false,
        retry: args.retry,
        known_issues: Vec::new(),
        passthrough: None,
        bisect: Default::default(),
        inline_suites: Vec::new(),
    }
}

/// `kcycle run`: check everything that can be checked before a guest boots,
/// then run the session; its exit status is the command's.
pub(super) fn run_suites(args: &RunArgs, progress: ProgressMode) -> Result<ExitStatus, Failure> {
    use kcycle::run::qemu::QemuFactory;
    use kcycle::run::session::{run_info, Session};
    use kcycle::suite;

    let cancel = Cancel::process();
    let Chosen {
        suites,
        shard,
        chosen,
    } = choose(args)?;
    check_module_files(&args.modules)?;
    let sources = QemuFactory::module_sources(&args.modules);

    let gpu = super::passthrough::wanted(args.passthrough, &chosen)
        .map(|selector| super::passthrough::check_for_run(selector, args.jobs))
        .transpose()?;

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
    let mut spec = boot_spec(&args.guest, &artifacts, scratch.path())?;
    let held = match &gpu {
        Some(device) => {
            spec.vfio = Some(kcycle::passthrough::vfio_for(device));
            Some(super::passthrough::hold(device)?)
        }
        None => None,
    };
    let name = match shard {
        Some(shard) => format!("kcycle shard {shard}"),
        None => "kcycle".into(),
    };
    let info = run_info(
        name,
        &artifacts.manifest,
        spec.accel.name(),
        shard.map(|s| s.to_string()),
    );
    let reporters = reporters(&results_dir, &info, progress)?;
    let factory = QemuFactory::new(
        spec,
        artifacts.modules_dir(),
        args.modules.clone(),
        results_dir.clone(),
        cancel.clone(),
        !args.no_restore,
    );
    let session = Session {
        plan: &plan,
        options: kcycle::run::RunOptions {
            jobs: args.jobs,
            restart_on_taint: !args.keep_tainted_guest,
            retries: args.retry.reruns(),
        },
        factory: &factory,
        sources: &sources,
        cancel: &cancel,
        info,
    };
    let finished = session.run(reporters);
    if let Some(held) = held {
        super::passthrough::release(held);
    }
    super::baseline::report_known_issues(&suites, &finished.results, &release);
    outcome(&finished, &results_dir)
}

/// The suites read (files, inline suites, known-issue files), the shard, and
/// the suites that have a test in the plan.
struct Chosen {
    suites: Vec<kcycle::suite::Suite>,
    shard: Option<kcycle::suite::Shard>,
    chosen: Vec<kcycle::suite::Suite>,
}

fn choose(args: &RunArgs) -> Result<Chosen, Failure> {
    use kcycle::suite::{self, Shard, Suite};
    let mut suites = args
        .suites
        .iter()
        .map(|path| Suite::load(path))
        .collect::<Result<Vec<_>, _>>()
        .bad_input()?;
    suites.extend(args.inline_suites.iter().cloned());
    super::baseline::add_known_issue_files(&mut suites, &args.known_issues)?;
    let shard = args
        .shard
        .as_deref()
        .map(str::parse::<Shard>)
        .transpose()
        .bad_input()?;
    let plan = suite::select(&suites, args.filter.as_deref(), shard).bad_input()?;
    let chosen = suites
        .iter()
        .filter(|s| plan.iter().any(|(p, _)| p.name == s.name))
        .cloned()
        .collect();
    Ok(Chosen {
        suites,
        shard,
        chosen,
    })
}

/// A finished session's exit status: interrupted and unwritable reports are
/// infrastructure failures, whatever the tests found.
fn outcome(
    finished: &kcycle::run::session::Finished,
    results_dir: &std::path::Path,
) -> Result<ExitStatus, Failure> {
    if let Some(signal) = finished.cancelled {
        return Err(anyhow::anyhow!(
            "interrupted by {signal}; results so far are in {}",
            results_dir.display()
        ))
        .infrastructure();
    }
    if let Some(failure) = finished.reporter_failures.first() {
        return Err(anyhow::anyhow!(
            "{}; the run's reports are incomplete",
            kcycle::sys::error::chain(failure)
        ))
        .infrastructure();
    }
    Ok(finished.exit_status())
}

/// The results directory's writer, the terminal and, under GitHub Actions, its reporter.
fn reporters(
    results_dir: &std::path::Path,
    info: &kcycle::outcome::RunInfo,
    progress: ProgressMode,
) -> Result<Vec<Box<dyn kcycle::report::sink::Reporter>>, Failure> {
    use kcycle::report::github::GithubActions;
    use kcycle::report::results_dir::ResultsWriter;
    use kcycle::report::terminal::Terminal;

    let mut reporters: Vec<Box<dyn kcycle::report::sink::Reporter>> = vec![
        Box::new(ResultsWriter::create(results_dir, info.clone()).infrastructure()?),
        Box::new(Terminal::new(draws_progress(progress)).with_results_dir(results_dir)),
    ];
    if let Some(github) = GithubActions::from_env(results_dir) {
        reporters.push(Box::new(github));
    }
    Ok(reporters)
}

/// `--module` files must be readable `.ko` files.
fn check_module_files(modules: &[PathBuf]) -> Result<(), Failure> {
    for file in modules {
        if kcycle::run::qemu::module_name(file).is_none() || !file.is_file() {
            return Err(anyhow::anyhow!(
                "--module {}: not a readable .ko file (build it with `make -C <kernel build dir> M=<dir>`)",
                file.display()
            ))
            .bad_input();
        }
    }
    Ok(())
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
