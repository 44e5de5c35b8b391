//! `kcycle-snapshot`: the guest's one helper, built by `build.rs` as a
//! static binary for the guest image's /bin. With no argument it prints a
//! snapshot (`src/snapshot/walk.rs`); with `serve` it is the persistent
//! session's command server (`src/guest/serve.rs`). kcycle compiles and
//! tests both files as well.

#[path = "../src/snapshot/walk.rs"]
mod walk;

#[path = "../src/guest/serve.rs"]
mod serve;

fn main() {
    let mode = std::env::args().nth(1);
    let (what, result) = match mode.as_deref() {
        None => ("write the snapshot", walk::main_with_stdout()),
        Some(serve::SERVE_ARG) => ("serve commands", serve::main()),
        Some(other) => {
            eprintln!("kcycle-snapshot: unknown mode {other:?}; run it bare (a snapshot) or as `kcycle-snapshot serve`");
            std::process::exit(2);
        }
    };
    if let Err(error) = result {
        eprintln!("kcycle-snapshot: failed to {what}: {error}");
        std::process::exit(1);
    }
}
