//! Host requirements for `kcycle setup`: apt packages and bindgen.
//!
//! `packages` (the list, and what is missing given `dpkg-query` output),
//! `apt` (what an install would do, from its simulation) and `qemu` (whether
//! the installed QEMU will do) are the pure core; this module runs
//! dpkg-query, apt-cache, apt-get, QEMU and cargo. Installing happens only on
//! Debian/Ubuntu as root (or with password-less sudo), never removes a
//! package (`--no-remove`, after a simulation that says what would conflict),
//! and elsewhere the exact commands are printed instead.

pub mod apt;
pub mod packages;
pub mod qemu;
pub mod unpacked;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::kernel::toolchain::Toolchain;
use crate::sys::child::{self, ChildError, Logged};
use crate::sys::{shell, Cancel};
use packages::{Need, BINDGEN_CRATE, BINDGEN_MIN, PACKAGES};

const INSTALL_LIMIT: Duration = Duration::from_secs(60 * 60);
const QUERY_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("failed to run {step}")]
    Process {
        step: String,
        #[source]
        source: ChildError,
    },
    #[error("failed to {step}: `{command}` exited with {status}; see its output above")]
    Failed {
        step: String,
        command: String,
        status: String,
    },
    /// The install would remove packages; the message says which and what to do.
    #[error("{0}")]
    WouldRemove(String),
}

/// What `kcycle setup --check` found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub needs: Vec<Need>,
    /// bindgen on PATH or in ~/.cargo/bin, with its version line.
    pub bindgen: Option<(PathBuf, String)>,
    pub warnings: Vec<String>,
    /// False when this is not a dpkg system: package state is unknown.
    pub debian: bool,
    /// A usable QEMU already on PATH, used instead of Debian's qemu-system-x86.
    pub qemu: Option<qemu::Found>,
}

impl Report {
    pub fn bindgen_ok(&self) -> bool {
        self.bindgen
            .as_ref()
            .and_then(|(_, v)| packages::parse_bindgen_version(v))
            .is_some_and(|v| v >= BINDGEN_MIN)
    }

    pub fn complete(&self) -> bool {
        self.debian && self.needs.is_empty() && self.bindgen_ok()
    }

    /// The commands that would make this host complete.
    pub fn commands(&self) -> Vec<String> {
        let mut commands = Vec::new();
        if !self.needs.is_empty() || !self.debian {
            let needs = if self.debian {
                self.needs.clone()
            } else {
                packages::missing(PACKAGES, &BTreeMap::new(), &BTreeMap::new())
            };
            let sudo = if is_root() { "" } else { "sudo " };
            commands.push(format!("{sudo}apt-get update"));
            commands.push(format!(
                "{sudo}{}",
                packages::apt_install_argv(&needs).join(" ")
            ));
        }
        if !self.bindgen_ok() {
            commands.push(format!("cargo install --locked {BINDGEN_CRATE}"));
        }
        commands
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A dpkg-based system (Debian, Ubuntu and derivatives).
pub fn is_debian_like() -> bool {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let like = os_release.lines().any(|l| {
        (l.starts_with("ID=") || l.starts_with("ID_LIKE="))
            && (l.contains("debian") || l.contains("ubuntu"))
    });
    like && which("dpkg-query").is_some()
}

/// Can kcycle install packages itself: a dpkg system with apt-get, and root
/// or password-less sudo (as on CI runners)?
pub fn can_install() -> bool {
    is_debian_like() && which("apt-get").is_some() && privilege().is_some()
}

/// How apt-get runs: directly as root, or through `sudo -n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Privilege {
    Root,
    Sudo,
}

fn privilege() -> Option<Privilege> {
    if is_root() {
        return Some(Privilege::Root);
    }
    let sudo_works = which("sudo").is_some()
        && child::capture(Command::new("sudo").args(["-n", "true"]), QUERY_LIMIT)
            .is_ok_and(|out| out.status.success());
    sudo_works.then_some(Privilege::Sudo)
}

/// `apt-get <args>` non-interactively, through sudo when not root.
fn apt_get(args: &[String]) -> Command {
    let mut command = match privilege() {
        Some(Privilege::Sudo) => {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            sudo
        }
        _ => {
            let mut apt = Command::new("apt-get");
            apt.env("DEBIAN_FRONTEND", "noninteractive");
            apt
        }
    };
    command.args(args);
    command
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Look at the host without changing anything.
pub fn check() -> Result<Report, HostError> {
    let debian = is_debian_like();
    let mut report = Report {
        debian,
        ..Report::default()
    };
    if debian {
        let installed = installed_packages(PACKAGES.iter().map(|p| p.name))?;
        let available = pinned_availability(&installed)?;
        report.needs = packages::missing(PACKAGES, &installed, &available);
        report.warnings = packages::version_warnings(PACKAGES, &installed);
    }
    // KCYCLE_QEMU names a QEMU outright; else the one PATH finds.
    let qemu = crate::vm::qemu_binary();
    let qemu = if qemu.components().count() > 1 {
        Some(qemu)
    } else {
        which(qemu::BINARY)
    };
    if let Some(found) = qemu.and_then(|path| qemu::probe(&path)) {
        if found.usable() {
            // A newer QEMU (backports, a source build) will do: do not force bookworm's.
            report.needs.retain(|n| n.package.name != "qemu-system-x86");
            report.qemu = Some(found);
        } else if report
            .needs
            .iter()
            .any(|n| n.package.name == "qemu-system-x86")
        {
            report.warnings.push(format!(
                "{} {} does not do ({}): installing Debian's qemu-system-x86",
                found.path.display(),
                found.version_text(),
                unusable_reason(&found)
            ));
        }
    }
    let toolchain = Toolchain::discover();
    if let Some(bindgen) = toolchain.bindgen {
        let version = child::capture(Command::new(&bindgen).arg("--version"), QUERY_LIMIT)
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.text().trim().to_string())
            .unwrap_or_default();
        report.bindgen = Some((bindgen, version));
    }
    Ok(report)
}

fn unusable_reason(found: &qemu::Found) -> String {
    if found.missing.is_empty() {
        let (a, b, _) = qemu::MIN_VERSION;
        format!("kcycle needs {a}.{b} or newer")
    } else {
        format!("it lacks {}", found.missing.join(", "))
    }
}

/// Which of `names` dpkg has installed, with their versions.
fn installed_packages<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, String>, HostError> {
    let out = child::capture(
        Command::new("dpkg-query")
            .arg("-W")
            .arg("-f=${Package}\t${db:Status-Abbrev}\t${Version}\n")
            .args(names),
        QUERY_LIMIT,
    )
    .map_err(|source| HostError::Process {
        step: "dpkg-query".into(),
        source,
    })?;
    // dpkg-query exits 1 when some names are unknown; what it printed still counts.
    Ok(packages::parse_dpkg_query(&out.stdout))
}

/// For pinned packages not installed yet: the versions apt offers.
fn pinned_availability(
    installed: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<String>>, HostError> {
    let mut available = BTreeMap::new();
    for package in PACKAGES
        .iter()
        .filter(|p| p.pinned.is_some() && !installed.contains_key(p.name))
    {
        let out = child::capture(
            Command::new("apt-cache").args(["madison", package.name]),
            QUERY_LIMIT,
        )
        .map_err(|source| HostError::Process {
            step: "apt-cache madison".into(),
            source,
        })?;
        let versions = packages::parse_madison(&out.stdout);
        // An empty answer usually means no `apt-get update` yet: keep the pin.
        if !versions.is_empty() {
            available.insert(package.name.to_string(), versions);
        }
    }
    Ok(available)
}

/// Run a command with its output on our stderr.
fn run_visible(step: &str, command: &mut Command, limit: Duration) -> Result<(), HostError> {
    let shown = shell::render(command);
    eprintln!("kcycle: $ {shown}");
    let status = child::run_logged(
        command,
        Logged {
            log: &mut std::io::stderr(),
            observe: &mut |_| {},
            limit,
            cancel: &Cancel::process(),
            inherit_fd: None,
        },
    )
    .map_err(|source| HostError::Process {
        step: step.to_string(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(HostError::Failed {
            step: step.to_string(),
            command: shown,
            status: status.to_string(),
        })
    }
}

/// `apt-get install --no-remove` these packages (as root or via sudo), after
/// a simulation shows nothing would be removed; `apt-get update` first when
/// the package lists are empty or the simulation cannot find a package.
pub fn apt_install(apt_args: &[String]) -> Result<(), HostError> {
    apt_install_allowing(apt_args, false)
}

/// [`apt_install`]; with `allow_remove` (`kcycle setup --allow-remove`, the
/// user's explicit consent) what apt must remove is listed and removed.
pub fn apt_install_allowing(apt_args: &[String], allow_remove: bool) -> Result<(), HostError> {
    let lists_empty = std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| d.count() < 3)
        .unwrap_or(true);
    let update = || {
        run_visible(
            "apt-get update",
            &mut apt_get(&["update".to_string()]),
            INSTALL_LIMIT,
        )
    };
    if lists_empty {
        update()?;
    }
    let mut plan = simulate(&[], apt_args)?;
    if !plan.errors.is_empty() && plan.removals.is_empty() && !lists_empty {
        update()?;
        plan = simulate(&[], apt_args)?;
    }
    let rest = match qemu_from_its_release(&plan, apt_args)? {
        Some(rest) => rest,
        None => apt_args.to_vec(),
    };
    if rest.len() != apt_args.len() {
        plan = simulate(&[], &rest)?;
    }
    let sudo = if is_root() { "" } else { "sudo " };
    if let Some(message) = apt::refusal(&plan, &rest, sudo) {
        if !allow_remove {
            if unpack_qemu_instead(&rest)? {
                return Ok(());
            }
            return Err(HostError::WouldRemove(message));
        }
        let names: Vec<&str> = plan.removals.iter().map(|r| r.name.as_str()).collect();
        eprintln!("kcycle: --allow-remove: removing {}", names.join(", "));
        let mut args: Vec<String> = ["install", "-y", "--no-install-recommends"]
            .map(String::from)
            .to_vec();
        args.extend_from_slice(&rest);
        return run_visible("apt-get install", &mut apt_get(&args), INSTALL_LIMIT);
    }
    if !plan.errors.is_empty() {
        return Err(HostError::Failed {
            step: "plan the install".into(),
            command: format!("apt-get -s install {}", rest.join(" ")),
            status: plan.errors.join("; "),
        });
    }
    install(&[], &rest)
}

/// `apt-get install --no-remove [options] packages`.
fn install(options: &[String], packages: &[String]) -> Result<(), HostError> {
    if packages.is_empty() {
        return Ok(());
    }
    let mut args: Vec<String> = ["install", "-y", "--no-install-recommends", "--no-remove"]
        .map(String::from)
        .to_vec();
    args.extend_from_slice(options);
    args.extend_from_slice(packages);
    run_visible("apt-get install", &mut apt_get(&args), INSTALL_LIMIT)
}

/// When bookworm's QEMU would remove the user's newer QEMU packages (say
/// qemu-utils from backports) and that release offers qemu-system-x86 at
/// the same version, install it from there first, alone, if that removes
/// nothing. Returns the packages still to install, or `None` to go on as planned.
fn qemu_from_its_release(
    plan: &apt::Plan,
    apt_args: &[String],
) -> Result<Option<Vec<String>>, HostError> {
    const QEMU: &str = "qemu-system-x86";
    if plan.removals.is_empty() || !apt_args.iter().any(|a| a == QEMU) {
        return Ok(None);
    }
    let madison = child::capture(
        Command::new("apt-cache").args(["madison", QEMU]),
        QUERY_LIMIT,
    )
    .map_err(|source| HostError::Process {
        step: "apt-cache madison".into(),
        source,
    })?;
    let Some(release) = apt::qemu_release(plan, &apt::parse_madison_releases(&madison.stdout))
    else {
        return Ok(None);
    };
    let target = ["-t".to_string(), release.clone()];
    let alone = simulate(&target, &[QEMU.to_string()])?;
    if !alone.removals.is_empty() || !alone.errors.is_empty() {
        return Ok(None);
    }
    eprintln!("kcycle: installing {QEMU} from {release}, where your QEMU packages come from, instead of removing them");
    install(&target, &[QEMU.to_string()])?;
    Ok(Some(
        apt_args.iter().filter(|a| *a != QEMU).cloned().collect(),
    ))
}

/// When only bookworm's QEMU packages conflict with what the host has:
/// install the rest and QEMU's libraries (if that removes nothing), and unpack
/// QEMU itself into the cache ([`unpacked`]) where dpkg does not see it.
/// Returns whether it did.
fn unpack_qemu_instead(apt_args: &[String]) -> Result<bool, HostError> {
    const QEMU: &str = "qemu-system-x86";
    if !apt_args.iter().any(|a| a == QEMU) {
        return Ok(false);
    }
    let Some(dest) = unpacked::dir() else {
        return Ok(false);
    };
    let mut packages: Vec<String> = apt_args.iter().filter(|a| *a != QEMU).cloned().collect();
    // Only the missing ones: naming an installed library to apt upgrades it.
    let libraries = unpacked::libraries()?;
    let installed = installed_packages(libraries.iter().map(String::as_str))?;
    for library in libraries {
        if !installed.contains_key(&library) && !packages.contains(&library) {
            packages.push(library);
        }
    }
    let plan = simulate(&[], &packages)?;
    if !plan.removals.is_empty() || !plan.errors.is_empty() {
        return Ok(false);
    }
    eprintln!(
        "kcycle: installing {QEMU} would remove packages you have; installing the rest, \
         and unpacking Debian's QEMU into {} instead (dpkg does not see it)",
        dest.display()
    );
    install(&[], &packages)?;
    let wrapper = unpacked::unpack(&dest)?;
    match qemu::probe(&wrapper) {
        Some(found) if found.usable() => {
            eprintln!(
                "kcycle: QEMU {} unpacked; kcycle runs {}",
                found.version_text(),
                wrapper.display()
            );
            unpacked::add_to_path();
            Ok(true)
        }
        found => Err(HostError::Failed {
            step: "run the unpacked QEMU".into(),
            command: format!("{} --version", wrapper.display()),
            status: found.map_or("no answer".into(), |f| unusable_reason(&f)),
        }),
    }
}

/// `apt-get -s install`: what apt would do, changing nothing (no root needed).
fn simulate(options: &[String], apt_args: &[String]) -> Result<apt::Plan, HostError> {
    let out = child::capture(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-s", "install", "--no-install-recommends"])
            .args(options)
            .args(apt_args),
        QUERY_LIMIT,
    )
    .map_err(|source| HostError::Process {
        step: "apt-get -s install".into(),
        source,
    })?;
    Ok(apt::parse_simulation(&format!(
        "{}\n{}",
        out.stdout, out.stderr
    )))
}

/// `cargo install --locked bindgen-cli`; if the newest does not build with this
/// rustc, fall back to 0.71 (tested with kernel 6.12).
pub fn install_bindgen() -> Result<(), HostError> {
    let cargo = which("cargo")
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            Some(Path::new(&home).join(".cargo/bin/cargo")).filter(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let latest = run_visible(
        "cargo install bindgen-cli",
        Command::new(&cargo).args(["install", "--locked", BINDGEN_CRATE]),
        INSTALL_LIMIT,
    );
    if latest.is_ok() {
        return Ok(());
    }
    eprintln!("kcycle: the newest {BINDGEN_CRATE} did not install; trying 0.71");
    run_visible(
        "cargo install bindgen-cli 0.71",
        Command::new(&cargo).args(["install", "--locked", BINDGEN_CRATE, "--version", "~0.71"]),
        INSTALL_LIMIT,
    )
}

/// What `setup` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupOutcome {
    /// Everything was present; nothing ran.
    AlreadyComplete,
    /// Missing pieces were installed.
    Installed,
    /// Something is missing and was not installed (`--check`, or not root / not Debian).
    Missing { commands: Vec<String> },
}

/// Print the report; install what is missing unless `check_only` or we cannot.
pub fn setup(check_only: bool) -> Result<SetupOutcome, HostError> {
    setup_allowing(check_only, false)
}

/// [`setup`]; with `allow_remove` the packages apt must remove are removed.
pub fn setup_allowing(check_only: bool, allow_remove: bool) -> Result<SetupOutcome, HostError> {
    let report = check()?;
    print_report(&report);
    if report.complete() {
        return Ok(SetupOutcome::AlreadyComplete);
    }
    let commands = report.commands();
    if check_only || (!report.needs.is_empty() && !can_install()) || !report.debian {
        return Ok(SetupOutcome::Missing { commands });
    }
    if !report.needs.is_empty() {
        for need in &report.needs {
            if let Some(note) = &need.note {
                eprintln!("kcycle: note: {}: {note}", need.package.name);
            }
        }
        let args: Vec<String> = report.needs.iter().map(|n| n.apt_arg.clone()).collect();
        apt_install_allowing(&args, allow_remove)?;
    }
    if !report.bindgen_ok() {
        install_bindgen()?;
    }
    let after = check()?;
    if after.complete() {
        eprintln!("kcycle: host requirements complete");
        Ok(SetupOutcome::Installed)
    } else {
        print_report(&after);
        Ok(SetupOutcome::Missing {
            commands: after.commands(),
        })
    }
}

fn print_report(report: &Report) {
    if !report.debian {
        eprintln!("kcycle: this is not a Debian/Ubuntu system: install the equivalents of these packages yourself");
    }
    for need in &report.needs {
        eprintln!(
            "kcycle: missing package {} ({})",
            need.apt_arg, need.package.why
        );
    }
    if let Some(found) = &report.qemu {
        let unpacked = unpacked::dir().is_some_and(|dir| found.path.starts_with(dir));
        eprintln!(
            "kcycle: QEMU {} at {} ({})",
            found.version_text(),
            found.path.display(),
            if unpacked {
                "Debian's, unpacked by `kcycle setup` where installing it would remove your packages"
            } else {
                "used instead of Debian's qemu-system-x86"
            }
        );
    }
    match &report.bindgen {
        Some((path, version)) if report.bindgen_ok() => {
            eprintln!("kcycle: bindgen: {version} ({})", path.display())
        }
        Some((path, version)) => eprintln!(
            "kcycle: bindgen at {} is too old or broken ({version:?}); need >= {}.{}.{}",
            path.display(),
            BINDGEN_MIN.0,
            BINDGEN_MIN.1,
            BINDGEN_MIN.2
        ),
        None => eprintln!("kcycle: missing bindgen (cargo install --locked {BINDGEN_CRATE})"),
    }
    for warning in &report.warnings {
        eprintln!("kcycle: warning: {warning}");
    }
    if report.debian && report.needs.is_empty() {
        eprintln!("kcycle: all {} apt packages present", PACKAGES.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindgen(version: &str) -> Option<(PathBuf, String)> {
        Some(("/root/.cargo/bin/bindgen".into(), version.into()))
    }

    #[test]
    fn complete_host_needs_no_commands() {
        let report = Report {
            debian: true,
            bindgen: bindgen("bindgen 0.71.1"),
            ..Report::default()
        };
        assert!(report.complete());
        assert!(report.commands().is_empty());
    }

    #[test]
    fn missing_pieces_become_exact_commands() {
        let installed: BTreeMap<String, String> = PACKAGES
            .iter()
            .filter(|p| p.name != "clang")
            .map(|p| (p.name.to_string(), "1".to_string()))
            .collect();
        let report = Report {
            debian: true,
            needs: packages::missing(PACKAGES, &installed, &BTreeMap::new()),
            bindgen: bindgen("bindgen 0.60.0"),
            warnings: Vec::new(),
            qemu: None,
        };
        assert!(!report.bindgen_ok(), "older than the kernel's minimum");
        assert!(!report.complete());
        let commands = report.commands();
        assert!(commands[0].ends_with("apt-get update"), "{commands:?}");
        assert!(
            commands[1].ends_with("apt-get install -y --no-install-recommends --no-remove clang"),
            "{commands:?}"
        );
        assert_eq!(commands[2], "cargo install --locked bindgen-cli");
    }

    #[test]
    fn off_debian_the_whole_list_is_printed() {
        let report = Report::default();
        assert!(!report.complete());
        let commands = report.commands();
        assert!(commands[1].contains("linux-source-6.12"), "{commands:?}");
        assert!(commands[1].contains(&format!("rustc-web={}", packages::RUST_WEB_VERSION)));
    }
}
