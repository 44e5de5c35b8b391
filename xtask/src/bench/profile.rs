//! The bench kernel for a fair virtme-ng comparison: the project's
//! fragments plus the options `vng --kconfig` requires that the guest kernel
//! lacks, built with `kcycle kernel build --fragment` (cached like any
//! kernel, in a build directory of its own).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kcycle::kernel::Artifacts;
use kcycle::sys::child;

use super::{kconfig, parse, progress, timed};

/// The fragment's file name (part of the kernel's cache key: keep it).
const FRAGMENT: &str = "vng-bench.config";

/// How often an option Kconfig refused is dropped and the build tried again.
const ATTEMPTS: usize = 3;

/// virtme-ng's required options and the file they were read from.
pub fn vng_required() -> Result<(PathBuf, Vec<String>), String> {
    let source = child::capture(
        Command::new("python3").args([
            "-c",
            "import virtme.commands.configkernel as c; print(c.__file__)",
        ]),
        Duration::from_secs(30),
    );
    let path = match source {
        Ok(out) if out.status.success() => PathBuf::from(out.stdout.trim()),
        _ => return Err("virtme-ng's kconfig list was not found (`python3 -c 'import virtme.commands.configkernel'` failed; `pip install virtme-ng`)".into()),
    };
    let py = std::fs::read_to_string(&path)
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    Ok((path, kconfig::vng_required(&py)))
}

/// The options of our fragment Kconfig did not keep, from `kcycle kernel
/// build`'s error (`  CONFIG_X=y (<fragment>:<line>) -> why`), with why.
fn refused<'a>(stderr: &'a str, fragment: &str) -> Vec<(&'a str, &'a str)> {
    stderr
        .lines()
        .filter_map(|l| {
            let (option, rest) = l.trim().split_once('=')?;
            let (place, why) = rest.split_once(") -> ")?;
            place
                .contains(&format!("{fragment}:"))
                .then_some((option, why.trim()))
        })
        .collect()
}

/// The bench kernel and what the document should say about it.
pub fn vng_kernel(
    kcycle: &Path,
    guest: &Artifacts,
    scratch: &Path,
) -> Result<(Artifacts, String), String> {
    let (source, required) = vng_required()?;
    let config = std::fs::read_to_string(guest.dir.join("config")).map_err(|e| {
        format!(
            "failed to read the kernel's config in {}: {e}",
            guest.dir.display()
        )
    })?;
    // Debug info is vng's for gdb, not for booting; the guest kernel builds
    // without it on purpose (build time), and the choice is the project's.
    let (debug, mut wanted): (Vec<String>, Vec<String>) = kconfig::missing(&config, &required)
        .into_iter()
        .map(str::to_string)
        .partition(|o| o.starts_with("CONFIG_DEBUG_INFO"));
    if wanted.is_empty() {
        return Ok((
            guest.clone(),
            format!(
                "The guest kernel already builds in all {} options virtme-ng requires ({}).",
                required.len(),
                source.display()
            ),
        ));
    }
    let fragment = scratch.join(FRAGMENT);
    let mut dropped: Vec<String> = debug
        .iter()
        .map(|o| format!("`{o}` (debug info: the guest kernel's `CONFIG_DEBUG_INFO_NONE` is the project's choice)"))
        .collect();
    for _ in 0..ATTEMPTS {
        let text: String = wanted.iter().map(|o| format!("{o}=y\n")).collect();
        std::fs::write(&fragment, text)
            .map_err(|e| format!("failed to write {}: {e}", fragment.display()))?;
        progress(&format!(
            "boot: the bench kernel (+{} vng options; a cold build takes a while)",
            wanted.len()
        ));
        let mut build = Command::new(kcycle);
        build
            .args(["--progress", "never", "kernel", "build", "--fragment"])
            .arg(&fragment);
        let (_, out) = timed(&mut build, Duration::from_secs(2 * 3600))?;
        if out.status.success() {
            let dir = out.stdout.lines().last().unwrap_or("").trim().to_string();
            let artifacts = Artifacts::open(Path::new(&dir))
                .map_err(|e| format!("`kcycle kernel build --fragment` printed {dir:?}: {e}"))?;
            let note = format!(
                "Boot figures use a bench kernel, the same bzImage for kcycle and vng: the project's fragments plus `{FRAGMENT}` \
                 with the {} options of virtme-ng's required list (`_GENERIC_CONFIG` in {}, what `vng --kconfig` adds) that the \
                 guest kernel lacks: {}; built by `kcycle kernel build --fragment {FRAGMENT}` ({}; its cold build took {:.0} s).{}",
                wanted.len(),
                source.display(),
                wanted.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", "),
                artifacts.dir.display(),
                artifacts.manifest.build_seconds,
                if dropped.is_empty() { String::new() } else { format!(" Left out: {}.", dropped.join("; ")) }
            );
            return Ok((artifacts, note));
        }
        let refusals = refused(&out.stderr, FRAGMENT);
        if refusals.is_empty() {
            return Err(format!(
                "`kcycle kernel build --fragment {FRAGMENT}` exited {}: {}",
                out.status,
                parse::tail(&out.stderr, 6)
            ));
        }
        for (option, why) in refusals {
            wanted.retain(|o| o != option);
            dropped.push(format!("`{option}` ({why})"));
        }
    }
    Err(format!(
        "Kconfig kept refusing options of {FRAGMENT} after {ATTEMPTS} tries: {}",
        dropped.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_refused_options_of_our_fragment_only() {
        let stderr = "kcycle: error: failed to configure the kernel: Kconfig did not keep these requested options:\n  \
CONFIG_DAX_DRIVER=y (/tmp/x/vng-bench.config:8) -> CONFIG_DAX_DRIVER is absent: not a Kconfig symbol of this tree\n  \
CONFIG_DEBUG_INFO_NONE=y (/work/guest-kernel/configs/40-guest.config:13) -> # CONFIG_DEBUG_INFO_NONE is not set\n";
        assert_eq!(
            refused(stderr, FRAGMENT),
            [(
                "CONFIG_DAX_DRIVER",
                "CONFIG_DAX_DRIVER is absent: not a Kconfig symbol of this tree"
            )]
        );
    }
}
