//! `kcycle cycle MODULE|FILE.ko|DIR`: the whole check of one module without
//! a suite file. What can be refused is refused before a guest boots: an
//! unknown module name (with the nearest names), a `.ko` built for another
//! kernel, a directory that does not build (its compiler output as printed).

use std::path::{Path, PathBuf};

use kcycle::exit::ExitStatus;
use kcycle::kernel::Artifacts;
use kcycle::suite::implicit::{self, CycleSpec};
use kcycle::suite::{ParamValue, Params, SelftestKind};

use super::guest::guest_kernel;
use super::kernel::build_kernel;
use super::run::run_suites;
use super::{CycleArgs, ExitOnError, Failure, GuestArgs, ProgressMode, RunArgs, SelftestArg};

/// What the developer named.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A module of the guest kernel, by name.
    Name(String),
    /// A built `.ko`.
    File(PathBuf),
    /// A source directory with a Kbuild or Makefile.
    Dir(PathBuf),
}

impl Target {
    fn of(arg: &str) -> Result<Target, String> {
        let path = Path::new(arg);
        if path.is_dir() {
            return Ok(Target::Dir(path.to_path_buf()));
        }
        if path.is_file() {
            return match kcycle::run::qemu::module_name(path) {
                Some(_) => Ok(Target::File(path.to_path_buf())),
                None => Err(format!(
                    "{arg} is a file but not a kernel module (.ko); give a module name, a .ko or a source directory"
                )),
            };
        }
        if arg.contains('/') || arg.ends_with(".ko") {
            return Err(format!("{arg}: no such file or directory"));
        }
        Ok(Target::Name(kcycle::run::command::canonical(arg)))
    }
}

pub(super) fn cycle(args: &CycleArgs, progress: ProgressMode) -> Result<ExitStatus, Failure> {
    let params = parse_params(&args.params)
        .map_err(anyhow::Error::msg)
        .bad_input()?;
    let target = Target::of(&args.target)
        .map_err(anyhow::Error::msg)
        .bad_input()?;
    let spec = |module: String| CycleSpec {
        module,
        params: params.clone(),
        cycles: args.cycles,
        selftest: args.selftest.map(selftest_kind),
        cmdline: args.cmdline.clone(),
        sweep: args.sweep,
        sweep_limit: args.sweep_limit,
    };
    // A name or a file says the module's name: printing needs no kernel.
    if args.print_suite {
        let module = match &target {
            Target::Name(name) => Some(name.clone()),
            Target::File(file) => kcycle::run::qemu::module_name(file),
            Target::Dir(_) => None,
        };
        if let Some(module) = module {
            return print_suite(&spec(module));
        }
    }

    let artifacts = match &args.source {
        Some(source) => {
            build_kernel(
                Some(source.clone()),
                false,
                None,
                &[],
                Default::default(),
                progress,
            )?
            .artifacts
        }
        None => guest_kernel(args.guest.kernel.as_deref())?,
    };
    let scratch = tempfile::tempdir().infrastructure()?;
    let (module, file) = match target {
        Target::Name(name) => {
            check_known(&name, &artifacts)?;
            (name, None)
        }
        Target::File(file) => module_file(file, &artifacts)?,
        Target::Dir(dir) => {
            let built = build(&dir, &artifacts, scratch.path()).map_err(|failure| {
                // A commit whose module does not build cannot be tested: skip it.
                match failure.status {
                    ExitStatus::BadInput if args.bisect.bisect => Failure {
                        status: ExitStatus::BisectSkip,
                        ..failure
                    },
                    _ => failure,
                }
            })?;
            module_file(built, &artifacts)?
        }
    };
    let suite = implicit::suite(&spec(module))
        .map_err(anyhow::Error::msg)
        .bad_input()?;
    if args.print_suite {
        return print_suite_value(&suite);
    }
    let names: Vec<&str> = suite.tests.iter().map(|t| t.name.as_str()).collect();
    eprintln!(
        "kcycle cycle: {} (the suite: {}/cycle-suite.toml)",
        names.join(", "),
        args.results.display()
    );
    let run = run_args(args, &artifacts, &suite, file);
    let status = run_suites(&run, progress);
    // Beside the reports, so the run can be repeated with `kcycle run`.
    let kept = args.results.join("cycle-suite.toml");
    if let Err(error) =
        kcycle::sys::fs::write_atomic(&kept, kcycle::suite::to_toml(&suite).as_bytes())
    {
        eprintln!("kcycle cycle: failed to write {}: {error}", kept.display());
    }
    status
}

/// The `kcycle run` of the implicit suite: one guest, the default flake reruns.
fn run_args(
    args: &CycleArgs,
    artifacts: &Artifacts,
    suite: &kcycle::suite::Suite,
    file: Option<PathBuf>,
) -> RunArgs {
    RunArgs {
        suites: Vec::new(),
        inline_suites: vec![suite.clone()],
        guest: GuestArgs {
            kernel: Some(artifacts.dir.clone()),
            accel: args.guest.accel,
        },
        results: args.results.clone(),
        filter: None,
        jobs: 1,
        modules: file.into_iter().collect(),
        shard: None,
        keep_tainted_guest: false,
        known_issues: Vec::new(),
        passthrough: None,
        bisect: Default::default(),
        no_restore: false,
        retry: args.retry,
    }
}

fn print_suite(spec: &CycleSpec) -> Result<ExitStatus, Failure> {
    let suite = implicit::suite(spec)
        .map_err(anyhow::Error::msg)
        .bad_input()?;
    print_suite_value(&suite)
}

fn print_suite_value(suite: &kcycle::suite::Suite) -> Result<ExitStatus, Failure> {
    print!("{}", kcycle::suite::to_toml(suite));
    Ok(ExitStatus::Passed)
}

fn selftest_kind(arg: SelftestArg) -> SelftestKind {
    match arg {
        SelftestArg::I915Mock => SelftestKind::I915Mock,
        SelftestArg::I915Live => SelftestKind::I915Live,
        SelftestArg::Kunit => SelftestKind::Kunit,
    }
}

/// `--params k=v`: integers stay integers, anything else is a string.
fn parse_params(pairs: &[String]) -> Result<Params, String> {
    pairs
        .iter()
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("--params {pair:?}: expected NAME=VALUE"))?;
            let value = match value.parse::<i64>() {
                Ok(n) => ParamValue::Int(n),
                Err(_) => ParamValue::Str(value.to_string()),
            };
            Ok((name.to_string(), value))
        })
        .collect()
}

/// A module name must be in the guest kernel's modules.dep.
fn check_known(name: &str, artifacts: &Artifacts) -> Result<(), Failure> {
    let modules = artifacts.modules().infrastructure()?;
    if modules.loadable.contains(name) {
        return Ok(());
    }
    let release = &artifacts.manifest.kernel_release;
    if modules.builtin.contains(name) {
        return Err(anyhow::anyhow!(
            "`{name}` is built into the guest kernel {release}, so it cannot be unloaded or loaded again; build it as a module (=m)"
        ))
        .bad_input();
    }
    let close = kcycle::run::plan::nearest(name, modules.loadable.iter().map(String::as_str), 5);
    let hint = if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", close.join(", "))
    };
    Err(anyhow::anyhow!(
        "`{name}` is neither a module of the guest kernel {release} (its modules.dep) nor a file{hint}"
    ))
    .bad_input()
}

/// A `.ko` must be built for the guest's kernel release.
fn module_file(file: PathBuf, artifacts: &Artifacts) -> Result<(String, Option<PathBuf>), Failure> {
    let bytes = std::fs::read(&file)
        .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", file.display()))
        .bad_input()?;
    let needed = &artifacts.manifest.kernel_release;
    check_vermagic(&file, kcycle::kernel::vermagic(&bytes).as_deref(), needed)
        .map_err(anyhow::Error::msg)
        .bad_input()?;
    let module = kcycle::run::qemu::module_name(&file).unwrap_or_default();
    Ok((module, Some(file)))
}

fn check_vermagic(file: &Path, built_for: Option<&str>, needed: &str) -> Result<(), String> {
    match built_for {
        Some(release) if release == needed => Ok(()),
        Some(release) => Err(format!(
            "{} was built for kernel {release}, but the guest kernel is {needed}: rebuild it against the guest's build directory (give kcycle cycle its source directory)",
            file.display()
        )),
        None => Err(format!(
            "{} has no vermagic in its .modinfo: it is not a kernel module",
            file.display()
        )),
    }
}

/// Build a source directory against the guest kernel's build directory;
/// the compiler's output goes to stderr as it prints it.
fn build(dir: &Path, artifacts: &Artifacts, scratch: &Path) -> Result<PathBuf, Failure> {
    let build_dir = &artifacts.manifest.build_dir;
    eprintln!(
        "kcycle cycle: make -C {} M={} (a copy of {})",
        build_dir.display(),
        scratch.join("module").display(),
        dir.display()
    );
    let cancel = kcycle::sys::Cancel::process();
    let built = kcycle::kernel::build_module(
        dir,
        build_dir,
        &scratch.join("module"),
        &cancel,
        &mut |line| eprintln!("{line}"),
    );
    let built = match built {
        Ok(built) => built,
        // make itself could not run (missing, killed, interrupted): not the module's fault.
        Err(error @ kcycle::kernel::ExternalError::Run { .. }) => {
            return Err(error).infrastructure()
        }
        Err(error) => return Err(error).bad_input(),
    };
    pick_module(dir, &built)
        .map_err(anyhow::Error::msg)
        .bad_input()
}

/// One module per directory: the only one, or the one named like the directory.
fn pick_module(dir: &Path, built: &[PathBuf]) -> Result<PathBuf, String> {
    if let [only] = built {
        return Ok(only.clone());
    }
    let wanted = dir
        .file_name()
        .map(|n| kcycle::run::command::canonical(&n.to_string_lossy()));
    built
        .iter()
        .find(|ko| kcycle::run::qemu::module_name(ko) == wanted)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<String> = built
                .iter()
                .filter_map(|ko| kcycle::run::qemu::module_name(ko))
                .collect();
            format!(
                "{} builds several modules ({}); kcycle cycle takes one: give its .ko",
                dir.display(),
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_names_files_or_directories() {
        let dir = tempfile::tempdir().unwrap();
        let ko = dir.path().join("my-drv.ko");
        std::fs::write(&ko, "elf").unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "x").unwrap();
        assert_eq!(Target::of("i915"), Ok(Target::Name("i915".into())));
        assert_eq!(
            Target::of("drm-buddy"),
            Ok(Target::Name("drm_buddy".into()))
        );
        assert_eq!(
            Target::of(ko.to_str().unwrap()),
            Ok(Target::File(ko.clone()))
        );
        assert_eq!(
            Target::of(dir.path().to_str().unwrap()),
            Ok(Target::Dir(dir.path().to_path_buf()))
        );
        assert!(Target::of(text.to_str().unwrap())
            .unwrap_err()
            .contains("not a kernel module"));
        assert!(Target::of("./gone.ko")
            .unwrap_err()
            .contains("no such file"));
    }

    #[test]
    fn params_keep_integers() {
        let params = parse_params(&["leak_objects=8".into(), "fail_at=misc".into()]).unwrap();
        assert_eq!(params["leak_objects"], ParamValue::Int(8));
        assert_eq!(params["fail_at"], ParamValue::Str("misc".into()));
        assert!(parse_params(&["oops".into()])
            .unwrap_err()
            .contains("NAME=VALUE"));
    }

    #[test]
    fn vermagic_mismatch_names_both_kernels() {
        let file = Path::new("/tmp/my_drv.ko");
        check_vermagic(file, Some("6.12.117"), "6.12.117").unwrap();
        let error = check_vermagic(file, Some("6.1.0-18-amd64"), "6.12.117").unwrap_err();
        assert!(
            error.contains("built for kernel 6.1.0-18-amd64, but the guest kernel is 6.12.117"),
            "{error}"
        );
        assert!(check_vermagic(file, None, "6.12.117")
            .unwrap_err()
            .contains("no vermagic"));
    }

    #[test]
    fn one_module_per_directory() {
        let dir = Path::new("/src/my-drv");
        let one = [PathBuf::from("/s/helper.ko")];
        assert_eq!(pick_module(dir, &one).unwrap(), one[0]);
        let two = [PathBuf::from("/s/helper.ko"), PathBuf::from("/s/my_drv.ko")];
        assert_eq!(pick_module(dir, &two).unwrap(), two[1]);
        let error = pick_module(Path::new("/src/other"), &two).unwrap_err();
        assert!(
            error.contains("several modules (helper, my_drv)"),
            "{error}"
        );
    }
}
