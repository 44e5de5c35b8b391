//! Pristine-guest benchmark: the time to a fresh guest for the next test by
//! restoring the state saved when the guest was first ready, against a cold
//! boot of the same guest, as a ratio (issue 15's target: at most 0.3).
//! Each sample ends with a working SSH login and one `true` round trip; a
//! restore includes its clock resync and PCI header write-back.
//!
//! Needs `KCYCLE_KERNEL` (a kernel artifact directory). `KCYCLE_BENCH_RUNS`
//! sets the number of runs (default 5); `KCYCLE_BENCH_ACCEL` kvm|tcg
//! (default tcg).
//!
//! Run: `KCYCLE_KERNEL=<dir> cargo bench -p kcycle --bench pristine`

use std::path::Path;
use std::time::{Duration, Instant};

use kcycle::guest::{BootSpec, Guest, RunDir};
use kcycle::image;
use kcycle::kernel::Artifacts;
use kcycle::vm::Accel;

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn show(what: &str, command: &str, samples: &[Duration]) -> Duration {
    let m = median(samples);
    let all: Vec<String> = samples
        .iter()
        .map(|s| format!("{:.2}", s.as_secs_f64()))
        .collect();
    println!(
        "{what:<34} median {:>7.3} s  (n={}, runs: {})\n    command: {command}",
        m.as_secs_f64(),
        samples.len(),
        all.join(" ")
    );
    m
}

/// Time `renew`, ending with one `true` over a fresh session.
fn timed(guest: &mut Guest, renew: impl FnOnce(&mut Guest)) -> Duration {
    let started = Instant::now();
    renew(guest);
    assert!(guest.run("true").expect("exec after renewal").success());
    started.elapsed()
}

/// Under TCG on a loaded host a cold boot can die early (the IO-APIC timer
/// check panics); it is retried up to 3 times, and the retry counts in the sample.
fn retried<T, E: std::fmt::Display>(what: &str, mut attempt: impl FnMut() -> Result<T, E>) -> T {
    for n in 1..=3 {
        match attempt() {
            Ok(value) => return value,
            Err(error) if n < 3 => {
                let first = error.to_string();
                println!(
                    "{what} failed, retried: {}",
                    first.lines().next().unwrap_or("")
                );
            }
            Err(error) => panic!("{what} failed 3 times: {error}"),
        }
    }
    unreachable!("the third attempt returns or panics")
}

fn main() {
    let Some(dir) = std::env::var_os("KCYCLE_KERNEL") else {
        eprintln!("pristine bench: set KCYCLE_KERNEL to a kernel artifact directory (`kcycle kernel build`); nothing measured");
        return;
    };
    let kernel =
        Artifacts::open(Path::new(&dir)).expect("KCYCLE_KERNEL is not a kernel artifact directory");
    let runs: usize = std::env::var("KCYCLE_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let accel = match std::env::var("KCYCLE_BENCH_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        _ => Accel::Tcg,
    };
    let image = image::build(
        &kernel,
        &kcycle::sys::dirs::cache_root().expect("cache dir"),
    )
    .expect("image build failed");
    println!(
        "kernel {} ({}), accel {accel}, {runs} runs",
        kernel.manifest.kernel_release,
        kernel.bzimage().display()
    );
    let run_dir = RunDir::temporary().expect("run dir");
    let spec = BootSpec::new(kernel.bzimage(), image.path.clone(), accel);
    let mut guest = retried("boot", || Guest::boot(spec.clone(), run_dir.path()));
    let mut saves = Vec::new();
    let mut state = None;
    let save = timed(&mut guest, |g| {
        state = Some(g.save_state().expect("save failed"))
    });
    saves.push(save);
    let state = state.expect("a saved state");
    let size = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);

    // Alternate so both see the same machine load.
    let (mut restores, mut boots) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let restore = timed(&mut guest, |g| g.restore(&state).expect("restore failed"));
        let boot = timed(&mut guest, |g| retried("cold boot", || g.restart()));
        println!(
            "run {run}: restore {:.2} s, cold boot {:.2} s",
            restore.as_secs_f64(),
            boot.as_secs_f64()
        );
        restores.push(restore);
        boots.push(boot);
    }
    guest.shutdown(Duration::from_secs(10));
    show(
        "save the ready guest's state",
        &format!("Guest::save_state ({} MB file)", size >> 20),
        &saves,
    );
    let restore = show(
        "restore to SSH-ready",
        "Guest::restore (kill QEMU, new QEMU -incoming, clock + PCI fixup, exec true)",
        &restores,
    );
    let boot = show(
        "cold boot to SSH-ready",
        "Guest::restart (kill QEMU, boot, exec true)",
        &boots,
    );
    println!(
        "ratio restore / cold boot: {:.2}",
        restore.as_secs_f64() / boot.as_secs_f64()
    );
}
