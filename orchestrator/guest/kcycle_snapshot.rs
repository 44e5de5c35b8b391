//! `kcycle-snapshot`: the guest's snapshot reader, built by `build.rs` as a
//! static binary for the guest image's /bin. The code is
//! `src/snapshot/walk.rs`, which kcycle compiles and tests as well.

#[path = "../src/snapshot/walk.rs"]
mod walk;

fn main() {
    if let Err(error) = walk::main_with_stdout() {
        eprintln!("kcycle-snapshot: failed to write the snapshot: {error}");
        std::process::exit(1);
    }
}
