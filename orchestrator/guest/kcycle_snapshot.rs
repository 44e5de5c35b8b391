//! `kcycle-snapshot`: the guest's one helper, built by `build.rs` as a
//! static binary for the guest image's /bin. With no argument it prints a
//! snapshot (`src/snapshot/walk.rs`); `--exact-slabs` shrinks every slab
//! cache first, `--take-log` prints the kernel log before it (read and
//! cleared, `src/snapshot/klog.rs`); with `serve` it is the persistent
//! session's command server (`src/guest/serve.rs`). kcycle compiles and
//! tests these files as well.

use std::io::Write;

#[path = "../src/snapshot/walk.rs"]
mod walk;

#[path = "../src/snapshot/klog.rs"]
mod klog;

#[path = "../src/guest/serve.rs"]
mod serve;

const USAGE: &str = "run it as `kcycle-snapshot [--take-log] [--exact-slabs]` (a snapshot) or `kcycle-snapshot serve`";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (what, result) = if args.first().map(String::as_str) == Some(serve::SERVE_ARG) {
        ("serve commands", serve::main())
    } else {
        let mut counts = walk::SlabCounts::Listed;
        let mut take_log = false;
        for arg in &args {
            match arg.as_str() {
                walk::EXACT_ARG => counts = walk::SlabCounts::Exact,
                klog::TAKE_ARG => take_log = true,
                other => {
                    eprintln!("kcycle-snapshot: unknown argument {other:?}; {USAGE}");
                    std::process::exit(2);
                }
            }
        }
        // A log that cannot be read still leaves the snapshot to print.
        let logged = if take_log { log() } else { Ok(()) };
        let snapshot = walk::main_with_stdout(counts);
        match (logged, snapshot) {
            (Err(error), Ok(())) => ("read the kernel log", Err(error)),
            (_, snapshot) => ("write the snapshot", snapshot),
        }
    };
    if let Err(error) = result {
        eprintln!("kcycle-snapshot: failed to {what}: {error}");
        std::process::exit(1);
    }
}

/// The kernel log since the last read, then the mark that ends it. The mark
/// is printed even when the read fails, so the snapshot still parses.
fn log() -> std::io::Result<()> {
    let taken = klog::take();
    let mut out = std::io::stdout().lock();
    if let Ok(text) = &taken {
        out.write_all(text)?;
    }
    writeln!(out, "{}", klog::LOG_END)?;
    out.flush()?;
    taken.map(|_| ())
}
