//! Boot benchmark: QEMU start to a working SSH login, one `exec` round
//! trip, the whole `kcycle exec -- uname -r`, and beside it virtme-ng's
//! `vng --run <bzImage> --exec 'uname -r'` on the same kernel, as a ratio.
//!
//! Needs `KCYCLE_KERNEL` (a kernel artifact directory). `KCYCLE_BENCH_RUNS`
//! sets the number of runs (default 5); `KCYCLE_BENCH_ACCEL` kvm|tcg
//! (default tcg: this project's machines have no working KVM).
//!
//! Run: `KCYCLE_KERNEL=<dir> cargo bench -p kcycle --bench boot`

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kcycle::guest::{BootSpec, ExecRequest, Guest, RunDir};
use kcycle::image;
use kcycle::kernel::Artifacts;
use kcycle::vm::Accel;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn show(what: &str, command: &str, samples: &[Duration]) -> Duration {
    let m = median(samples.to_vec());
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

fn main() {
    let Some(dir) = std::env::var_os("KCYCLE_KERNEL") else {
        eprintln!("boot bench: set KCYCLE_KERNEL to a kernel artifact directory (`kcycle kernel build`); nothing measured");
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

    // 1. Library path: boot to SSH-ready, then exec round trips on that guest.
    let (mut ready, mut round_trips) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let run_dir = RunDir::temporary().expect("run dir");
        let spec = BootSpec::new(kernel.bzimage(), image.path.clone(), accel);
        let mut guest = Guest::boot(spec, run_dir.path()).expect("boot failed");
        ready.push(guest.boot_time());
        for _ in 0..5 {
            let started = Instant::now();
            let out = guest
                .exec(ExecRequest::new("uname -r"))
                .expect("exec failed");
            assert!(out.success());
            round_trips.push(started.elapsed());
        }
        guest.shutdown(Duration::from_secs(10));
    }
    show(
        "boot to SSH-ready",
        "Guest::boot (QEMU start to first SSH login)",
        &ready,
    );
    show(
        "exec round trip (uname -r)",
        "Guest::exec(\"uname -r\") on a booted guest",
        &round_trips,
    );

    // 2. The whole CLI: boot, run, power off.
    let kcycle = env!("CARGO_BIN_EXE_kcycle");
    let mut whole = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let out = Command::new(kcycle)
            .args(["exec", "--accel", accel.name(), "--kernel"])
            .arg(&kernel.dir)
            .args(["--", "uname", "-r"])
            .output()
            .expect("run kcycle");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        whole.push(started.elapsed());
    }
    let ours = show(
        "kcycle exec -- uname -r",
        &format!(
            "{kcycle} exec --accel {accel} --kernel {} -- uname -r",
            kernel.dir.display()
        ),
        &whole,
    );

    // 3. virtme-ng on the same bzImage. `--verbose` because on this kernel
    // (no CONFIG_OVERLAY_FS, and virtme-ng-init finds no virtio-serial script
    // ports) vng falls back to running the script on the console, which it
    // only shows in verbose mode; without it vng exits 255 with no output.
    let vng_args = |bz: &Path| {
        let mut args = vec![
            "--verbose".to_string(),
            "--run".to_string(),
            bz.display().to_string(),
        ];
        if accel == Accel::Tcg {
            args.push("--disable-kvm".into());
        }
        args.extend(["--exec".into(), "uname -r".into()]);
        args
    };
    let args = vng_args(&kernel.bzimage());
    let vng_line = format!(
        "vng {}",
        args.iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut theirs = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let out = match Command::new("vng").args(&args).output() {
            Ok(out) => out,
            Err(err) => {
                println!("vng: not measured: cannot run vng ({err}); `pip install virtme-ng`");
                return;
            }
        };
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // In the console fallback the command's output arrives with the
        // console on stderr.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let printed = stdout
            .lines()
            .chain(stderr.lines())
            .any(|l| l.trim() == kernel.manifest.kernel_release);
        // vng exits 255 in the console fallback even when the command ran: the
        // printed `uname -r` is the success criterion.
        if !printed {
            let tail: Vec<&str> = stderr
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            println!(
                "vng: not measured: `{vng_line}` failed ({}):\n    {}\n    stdout: {}",
                out.status,
                tail.join("\n    "),
                stdout.trim()
            );
            return;
        }
        theirs.push(elapsed);
    }
    let theirs = show("vng --run --exec 'uname -r'", &vng_line, &theirs);
    println!(
        "ratio kcycle exec / vng: {:.2}",
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}
