//! `kcycle setup` and `kcycle kernel build`.

use std::path::PathBuf;

use kcycle::exit::ExitStatus;

use super::{draws_progress, ExitOnError, Failure, KernelBuildArgs, Progress, SetupArgs};

/// `kcycle setup [--check]`: 0 when the host is complete, 1 when something is missing.
pub(super) fn setup(args: SetupArgs) -> Result<ExitStatus, Failure> {
    use kcycle::host::Outcome;
    match kcycle::host::setup_allowing(args.check, args.allow_remove).infrastructure()? {
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
pub(super) fn kernel_build(
    args: KernelBuildArgs,
    progress: Progress,
) -> Result<ExitStatus, Failure> {
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
pub(super) fn build_kernel(
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
