//! Choosing KVM or TCG.
//!
//! `/dev/kvm` opening is not proof that KVM works: on a nested "PVM" host it
//! opens and stock guests then hang at 100% system time. So `auto` boots the
//! real guest kernel and image under KVM with `kcycle.probe` on the command
//! line (the init prints `kcycle-init: probe ok` and powers off at once) and
//! a short deadline; anything else means TCG. The answer is cached per host,
//! QEMU and kernel in `<cache>/accel/<key>.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{free_port, Accel, QemuConfig, Vm, QMP_SOCKET};
use crate::sys::fs::write_atomic;

/// How long a KVM guest gets to reach init and power off. A working KVM
/// needs about a second; a hanging one never finishes.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(20);
const PROBE_MARKER: &str = "kcycle-init: probe ok";

/// The accelerator to use and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccelChoice {
    pub accel: Accel,
    /// One line for the user: "requested", "probe: ...", "cached probe: ...".
    pub reason: String,
}

/// What the probe boots.
#[derive(Debug, Clone)]
pub struct ProbeGuest<'a> {
    pub qemu: &'a Path,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// A directory for the probe's console log and QMP socket.
    pub run_dir: &'a Path,
}

/// `requested` wins; `None` (auto) uses the cached probe result or probes.
pub fn resolve_accel(
    requested: Option<Accel>,
    guest: &ProbeGuest<'_>,
    cache: &Path,
) -> AccelChoice {
    if let Some(accel) = requested {
        return AccelChoice {
            accel,
            reason: "requested with --accel".into(),
        };
    }
    if let Err(err) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return AccelChoice {
            accel: Accel::Tcg,
            reason: format!("/dev/kvm is not usable ({err})"),
        };
    }
    let entry = cache_entry(cache, guest);
    if let Some(cached) = entry
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str::<AccelChoice>(&text).ok())
    {
        return AccelChoice {
            accel: cached.accel,
            reason: format!("cached: {}", cached.reason),
        };
    }
    let choice = probe_kvm(guest);
    if let Some(path) = entry {
        if let (Some(dir), Ok(text)) = (path.parent(), serde_json::to_string(&choice)) {
            // A lost cache entry only costs another probe.
            let _ =
                std::fs::create_dir_all(dir).and_then(|()| write_atomic(&path, text.as_bytes()));
        }
    }
    choice
}

/// Boot the probe guest under KVM; TCG unless it reached init and powered off.
pub fn probe_kvm(guest: &ProbeGuest<'_>) -> AccelChoice {
    let tcg = |why: String| AccelChoice {
        accel: Accel::Tcg,
        reason: format!("KVM probe failed: {}", why.replace('\n', "; ")),
    };
    let port = match free_port() {
        Ok(port) => port,
        Err(err) => return tcg(format!("no free port ({err})")),
    };
    let config = QemuConfig {
        qemu: guest.qemu.to_path_buf(),
        accel: Accel::Kvm,
        memory_mib: 256,
        cpus: 1,
        cmdline: vec!["kcycle.probe".into(), "quiet".into()],
        standin: false,
        ..QemuConfig::new(
            guest.kernel.to_path_buf(),
            guest.initrd.to_path_buf(),
            guest.run_dir.join(QMP_SOCKET),
            port,
        )
    };
    let mut vm = match Vm::launch(config, guest.run_dir) {
        Ok(vm) => vm,
        Err(err) => return tcg(err.to_string()),
    };
    let seen = vm.console().wait_for(PROBE_MARKER, 0, PROBE_DEADLINE);
    let exited = vm.wait_exit(Duration::from_secs(2)).is_some();
    vm.kill();
    match (seen, exited) {
        (true, true) => AccelChoice {
            accel: Accel::Kvm,
            reason: "KVM probe guest booted and powered off".into(),
        },
        (true, false) => tcg("the probe guest reached init but did not power off".into()),
        (false, _) => tcg(format!(
            "the probe guest did not reach init within {PROBE_DEADLINE:?}"
        )),
    }
}

/// `<cache>/accel/<sha256(host kernel, cpu, qemu version, bzImage)>.json`.
fn cache_entry(cache: &Path, guest: &ProbeGuest<'_>) -> Option<PathBuf> {
    let mut hasher = Sha256::new();
    hasher.update(std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    hasher.update(
        cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .unwrap_or(""),
    );
    hasher.update(super::qemu_version(guest.qemu).ok()?);
    hasher.update(Sha256::digest(std::fs::read(guest.kernel).ok()?));
    Some(
        cache
            .join("accel")
            .join(format!("{}.json", hex::encode(hasher.finalize()))),
    )
}
