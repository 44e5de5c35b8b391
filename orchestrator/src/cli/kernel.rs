//! `kcycle setup` and `kcycle kernel build`.

use std::path::PathBuf;

use kcycle::exit::ExitStatus;

use super::build_view::BuildView;
use super::{draws_progress, ExitOnError, Failure, KernelBuildArgs, ProgressMode, SetupArgs};

/// `kcycle setup [--check]`: 0 when the host is complete, 1 when something is missing.
pub(super) fn setup(args: SetupArgs) -> Result<ExitStatus, Failure> {
    use kcycle::host::SetupOutcome;
    match kcycle::host::setup_allowing(args.check, args.allow_remove).infrastructure()? {
        SetupOutcome::AlreadyComplete | SetupOutcome::Installed => Ok(ExitStatus::Passed),
        SetupOutcome::Missing { commands } => {
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
    progress: ProgressMode,
) -> Result<ExitStatus, Failure> {
    let built = build_kernel(
        args.source,
        args.force,
        args.out,
        &args.fragments,
        args.profile,
        progress,
    )?;
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
/// fragments, patches and modules. A missing Debian source is installed
/// (when kcycle can) and the build tried once more.
pub(super) fn build_kernel(
    source: Option<PathBuf>,
    force: bool,
    out: Option<PathBuf>,
    fragments: &[PathBuf],
    profile: kcycle::kernel::Profile,
    progress: ProgressMode,
) -> Result<kcycle::kernel::Built, Failure> {
    use kcycle::kernel::source::{SourceError, SourceSpec, DEBIAN_PACKAGE};
    use kcycle::kernel::{self, cache::Cache, BuildError, BuildRequest, Project};

    let project = Project::discover().bad_input()?;
    let cache = Cache::from_env().bad_input()?;
    let jobs = std::env::var("KCYCLE_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or_else(kernel::default_jobs);
    let modules = project.default_modules();
    let request = BuildRequest {
        extra_fragments: fragments.to_vec(),
        profile,
        force,
        out,
        jobs,
        ..BuildRequest::new(SourceSpec::from_option(source), project, cache, modules)
    };
    let mut view = BuildView::new(draws_progress(progress));
    let mut observe = |event| view.show(event);
    let built = match kernel::build(&request, &mut observe) {
        Err(BuildError::Source(SourceError::MissingTarball { .. }))
            if kcycle::host::can_install() =>
        {
            observe(kernel::BuildEvent::Phase(format!(
                "installing {DEBIAN_PACKAGE} (apt-get)"
            )));
            kcycle::host::apt_install(&[DEBIAN_PACKAGE.to_string()]).infrastructure()?;
            kernel::build(&request, &mut observe)
        }
        other => other,
    };
    view.finish();
    built.map_err(|error| Failure {
        status: if error.is_bad_input() {
            ExitStatus::BadInput
        } else {
            ExitStatus::Infrastructure
        },
        error: error.into(),
    })
}
