//! `kcycle passthrough status|bind|unbind`, and what `kcycle run` does for a
//! passthrough guest: preflight before anything boots, bind for the run,
//! give the device back after it (and after a crashed run, at the next start).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kcycle::exit::ExitStatus;
use kcycle::passthrough::{self, bind, preflight, Facts, Held, PciDevice, Roots, Selector};
use kcycle::suite::{GuestMode, Suite};

use super::{ExitOnError, Failure};

#[derive(Debug, Subcommand)]
pub enum PassthroughCommand {
    /// The device, its IOMMU group and every preflight check; exits 2 when a check fails.
    Status(PassthroughArgs),
    /// Move the device to vfio-pci (needs root); its driver is recorded to give it back.
    Bind(PassthroughArgs),
    /// Give the device back to the driver it had before `bind`.
    Unbind(PassthroughArgs),
}

#[derive(Debug, Args)]
pub struct PassthroughArgs {
    /// A PCI address (0000:00:02.0) or `auto`: the host's one Intel display-class device.
    #[arg(default_value = "auto", value_name = "BDF|auto")]
    pub device: Selector,
    /// The sysfs root (tests point it at a fake tree).
    #[arg(long, hide = true, env = "KCYCLE_SYSFS_ROOT", default_value = "/sys")]
    pub sysfs_root: PathBuf,
    /// The /dev root (for /dev/vfio).
    #[arg(long, hide = true, env = "KCYCLE_DEV_ROOT", default_value = "/dev")]
    pub dev_root: PathBuf,
}

impl PassthroughArgs {
    fn roots(&self) -> Roots {
        Roots {
            sys: self.sysfs_root.clone(),
            dev: self.dev_root.clone(),
        }
    }
}

/// Guest RAM the locked-memory check is for: what a guest gets by default.
fn guest_mib() -> u32 {
    kcycle::guest::BootSpec::new(PathBuf::new(), PathBuf::new(), kcycle::vm::Accel::Kvm).memory_mib
}

fn cache() -> Result<PathBuf, Failure> {
    kcycle::sys::dirs::cache_root()
        .ok_or_else(|| anyhow::anyhow!("no cache directory: set KCYCLE_CACHE or HOME"))
        .bad_input()
}

fn kind(device: &PciDevice) -> &'static str {
    if device.is_integrated() {
        "integrated"
    } else {
        "discrete"
    }
}

pub(super) fn passthrough(command: &PassthroughCommand) -> Result<ExitStatus, Failure> {
    match command {
        PassthroughCommand::Status(args) => status(args),
        PassthroughCommand::Bind(args) => bind_device(args),
        PassthroughCommand::Unbind(args) => unbind_device(args),
    }
}

fn status(args: &PassthroughArgs) -> Result<ExitStatus, Failure> {
    let facts = Facts::read(
        &args.roots(),
        args.device,
        passthrough::memlock_limit(),
        guest_mib(),
    );
    if let Ok(device) = preflight::choose(&facts) {
        println!("{} {} ({})", device.bdf, device.describe(), kind(&device));
        for member in facts.group.iter().filter(|m| m.bdf != device.bdf) {
            println!("  group member {} {}", member.bdf, member.describe());
        }
        if let Some(record) = bind::load(&cache()?, device.bdf).infrastructure()? {
            println!(
                "  bound by kcycle; `kcycle passthrough unbind` gives it back to {}",
                record.driver.as_deref().unwrap_or("no driver")
            );
        }
    }
    let checks = passthrough::checks(&facts);
    for check in &checks {
        match &check.result {
            Ok(seen) => println!("  ok    {:<13}{seen}", check.name),
            Err(err) => println!("  FAIL  {:<13}{err}", check.name),
        }
    }
    Ok(if checks.iter().all(|c| c.result.is_ok()) {
        ExitStatus::Passed
    } else {
        ExitStatus::BadInput
    })
}

fn bind_device(args: &PassthroughArgs) -> Result<ExitStatus, Failure> {
    let roots = args.roots();
    let facts = Facts::read(&roots, args.device, None, guest_mib());
    // The memory limit is the run's business, not the bind's.
    passthrough::preflight(&facts).bad_input()?;
    let device = preflight::choose(&facts).bad_input()?;
    let cache = cache()?;
    let after = bind::bind(&roots, &device, &cache, None).infrastructure()?;
    if let Err(err) = bind::ensure_vfio(&after) {
        // Half moved is worse than not moved: give it back.
        bind::unbind(&roots, device.bdf, &cache).infrastructure()?;
        return Err(err).infrastructure();
    }
    println!(
        "{}: on vfio-pci (was {}); `kcycle passthrough unbind {}` gives it back",
        device.bdf,
        device.driver.as_deref().unwrap_or("no driver"),
        device.bdf
    );
    Ok(ExitStatus::Passed)
}

fn unbind_device(args: &PassthroughArgs) -> Result<ExitStatus, Failure> {
    let roots = args.roots();
    let facts = Facts::read(&roots, args.device, None, guest_mib());
    let device = preflight::choose(&facts).bad_input()?;
    let after = bind::unbind(&roots, device.bdf, &cache()?).infrastructure()?;
    println!(
        "{}: on {}",
        device.bdf,
        after.driver.as_deref().unwrap_or("no driver")
    );
    Ok(ExitStatus::Passed)
}

/// At every start: give back devices that a kcycle run bound and did not
/// live to restore. Says what it did on stderr; never fails the command.
pub(super) fn recover() {
    let Some(cache) = kcycle::sys::dirs::cache_root() else {
        return;
    };
    for (bdf, result) in bind::recover(&cache, std::path::Path::new("/proc")) {
        match result {
            Ok(()) => eprintln!("kcycle: gave {bdf} back to its driver (a kcycle run that bound it ended without doing so)"),
            Err(err) => eprintln!(
                "kcycle: warning: {bdf} is still on vfio-pci from a kcycle run that ended: {}; `sudo kcycle passthrough unbind {bdf}` gives it back",
                kcycle::sys::error::chain(&err)
            ),
        }
    }
}

/// The device a run passes through: `--passthrough`, else `auto` when a
/// suite wants a passthrough guest, else none.
pub(super) fn wanted(flag: Option<Selector>, suites: &[Suite]) -> Option<Selector> {
    flag.or_else(|| {
        suites
            .iter()
            .any(|s| s.guest == GuestMode::Passthrough)
            .then_some(Selector::Auto)
    })
}

/// Preflight for a run, before anything is built or booted: exit 2 with the
/// failing check's message.
pub(super) fn check_for_run(selector: Selector, jobs: usize) -> Result<PciDevice, Failure> {
    if jobs > 1 {
        return Err(anyhow::anyhow!(
            "--jobs {jobs} with passthrough: there is one GPU, so run with --jobs 1"
        ))
        .bad_input();
    }
    let facts = Facts::read(
        &Roots::from_env(),
        selector,
        passthrough::memlock_limit(),
        guest_mib(),
    );
    passthrough::preflight(&facts)
        .map(|ready| ready.device)
        .map_err(|err| anyhow::anyhow!("passthrough {selector}: {err}"))
        .bad_input()
}

/// Bind the device for the run; dropped or released, it goes back.
pub(super) fn hold(device: &PciDevice) -> Result<Held, Failure> {
    Held::bind(&Roots::from_env(), device, &cache()?).bad_input()
}

/// Give the device back after the run; a failure is a warning (the record stays).
pub(super) fn release(held: Held) {
    if let Err(err) = held.release() {
        eprintln!(
            "kcycle: warning: failed to give the GPU back: {}",
            kcycle::sys::error::chain(&err)
        );
    }
}
