//! `kcycle image build`, `kcycle boot`, `kcycle exec`, and finding the guest kernel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kcycle::exit::ExitStatus;
use kcycle::guest::{BootSpec, ExecRequest, Guest, GuestError, RunDir};
use kcycle::kernel::cache::Cache;
use kcycle::kernel::Artifacts;
use kcycle::sys::Cancel;
use kcycle::{image, vm};

use super::kernel::build_kernel;
use super::{AccelArg, ExecArgs, ExitOnError, Failure, GuestArgs, ImageBuildArgs, ProgressMode};

/// Where the kernel comes from: `--kernel`, else `KCYCLE_KERNEL`.
pub(super) fn guest_kernel(kernel: Option<&Path>) -> Result<Artifacts, Failure> {
    let dir = match kernel {
        Some(dir) => dir.to_path_buf(),
        None => {
            match std::env::var_os("KCYCLE_KERNEL") {
                Some(dir) => PathBuf::from(dir),
                None => {
                    // What `--kernel`'s help promises: build it, or take it from the cache.
                    eprintln!("kcycle: no --kernel or KCYCLE_KERNEL: building or reusing the guest kernel");
                    return Ok(build_kernel(
                        None,
                        false,
                        None,
                        &[],
                        Default::default(),
                        ProgressMode::Auto,
                    )?
                    .artifacts);
                }
            }
        }
    };
    Artifacts::open(&dir).bad_input()
}

/// The one cache root (kernel, image, accel probe).
fn cache_root() -> Result<PathBuf, Failure> {
    Ok(Cache::from_env().bad_input()?.root().to_path_buf())
}

pub(super) fn image_build(args: &ImageBuildArgs) -> Result<ExitStatus, Failure> {
    let artifacts = guest_kernel(args.kernel.as_deref())?;
    let image = image::build(&artifacts, &cache_root()?).infrastructure()?;
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
pub(super) fn boot_spec(
    args: &GuestArgs,
    artifacts: &Artifacts,
    scratch: &Path,
) -> Result<BootSpec, Failure> {
    let cache = cache_root()?;
    let image = image::build(artifacts, &cache).infrastructure()?;
    let requested = match args.accel {
        AccelArg::Auto => None,
        AccelArg::Kvm => Some(vm::Accel::Kvm),
        AccelArg::Tcg => Some(vm::Accel::Tcg),
    };
    // The probe boots the same kernel and image under KVM (only for auto).
    let probe_dir = scratch.join("probe");
    let probe_initrd = scratch.join("probe-initrd.cpio");
    if requested.is_none() {
        std::fs::create_dir_all(&probe_dir).infrastructure()?;
        image::write_run_initrd(&image.path, "", &probe_initrd).infrastructure()?;
    }
    let qemu = vm::qemu_binary();
    let probe = vm::accel::ProbeGuest {
        qemu: &qemu,
        kernel: &artifacts.bzimage(),
        initrd: &probe_initrd,
        run_dir: &probe_dir,
    };
    let choice = vm::resolve_accel(requested, &probe, &cache);
    eprintln!("kcycle: accel {} ({})", choice.accel, choice.reason);
    let mut spec = BootSpec::new(artifacts.bzimage(), image.path, choice.accel);
    spec.cancel = Some(Cancel::process());
    Ok(spec)
}

/// Boot one guest and wait for SSH.
fn boot_guest(args: &GuestArgs, run_dir: &RunDir) -> Result<Guest, Failure> {
    let artifacts = guest_kernel(args.kernel.as_deref())?;
    let spec = boot_spec(args, &artifacts, run_dir.path())?;
    let guest = Guest::boot(spec, run_dir.path()).infrastructure()?;
    eprintln!(
        "kcycle: guest {} ready in {:.2} s (console: {})",
        artifacts.manifest.kernel_release,
        guest.boot_time().as_secs_f64(),
        guest.console().path().display()
    );
    Ok(guest)
}

pub(super) fn boot(args: &GuestArgs) -> Result<ExitStatus, Failure> {
    let cancel = Cancel::process();
    let run_dir = RunDir::temporary().infrastructure()?;
    let mut guest = match boot_guest(args, &run_dir) {
        Ok(guest) => guest,
        Err(failure) => return Err(keep_for_debugging(run_dir, failure)),
    };
    println!("{}", guest.ssh_command());
    eprintln!("kcycle: the guest runs until Ctrl-C");
    loop {
        if cancel.is_cancelled() {
            eprintln!("kcycle: shutting the guest down");
            let how = guest.shutdown(Duration::from_secs(10));
            eprintln!("kcycle: guest stopped ({how:?})");
            return Ok(ExitStatus::Passed);
        }
        match guest.state() {
            vm::GuestState::Running => {
                cancel.sleep(Duration::from_millis(200));
            }
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

pub(super) fn exec(args: &ExecArgs) -> Result<ExitStatus, Failure> {
    let cancel = Cancel::process();
    let run_dir = RunDir::temporary().infrastructure()?;
    let mut guest = match boot_guest(&args.guest, &run_dir) {
        Ok(guest) => guest,
        Err(failure) => return Err(keep_for_debugging(run_dir, failure)),
    };
    // Ctrl-C during the command: kill QEMU, which ends the SSH session and
    // lets this thread clean up normally.
    let killer = guest.vm().killer();
    let kill_on_cancel = cancel.on_cancel(move || killer.kill());
    let request = ExecRequest::new(guest_command(args.shell.as_deref(), &args.command))
        .inactivity(Duration::from_secs(600))
        .deadline(Duration::from_secs(3600));
    let result = guest.exec(request);
    drop(kill_on_cancel);
    let how = guest.shutdown(Duration::from_secs(5));
    if cancel.is_cancelled() {
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

/// The line the guest's shell runs: `--shell` as given, else the argv with
/// every word quoted, so argument boundaries survive the guest's shell.
fn guest_command(shell: Option<&str>, argv: &[String]) -> String {
    match shell {
        Some(line) => line.to_string(),
        None => kcycle::sys::shell::command_line(argv),
    }
}

/// Keep a failed boot's run directory (console log, QEMU stderr) and say where.
fn keep_for_debugging(run_dir: RunDir, failure: Failure) -> Failure {
    eprintln!("kcycle: logs kept in {}", run_dir.keep().display());
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in_sh(line: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .args(["-c", line])
            .output()
            .unwrap()
    }

    #[test]
    fn argv_keeps_its_words_and_shell_lines_stay_lines() {
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let exit = guest_command(None, &argv(&["sh", "-c", "exit 7"]));
        assert_eq!(run_in_sh(&exit).status.code(), Some(7));
        let echo = guest_command(None, &argv(&["echo", "a  b", "$HOME"]));
        assert_eq!(
            String::from_utf8_lossy(&run_in_sh(&echo).stdout),
            "a  b $HOME\n"
        );
        let line = guest_command(Some("echo x | tr x y; exit 3"), &[]);
        let out = run_in_sh(&line);
        assert_eq!((out.status.code(), out.stdout), (Some(3), b"y\n".to_vec()));
    }

    #[test]
    fn exec_takes_an_argv_or_a_shell_line_not_both() {
        use clap::Parser;
        let parse = |args: &[&str]| super::super::Cli::try_parse_from(args);
        assert!(parse(&["kcycle", "exec", "--", "true"]).is_ok());
        assert!(parse(&["kcycle", "exec", "--shell", "true"]).is_ok());
        assert!(parse(&["kcycle", "exec"]).is_err());
        assert!(parse(&["kcycle", "exec", "--shell", "true", "--", "true"]).is_err());
    }
}
