//! Builds `kcycle-snapshot` (guest/kcycle_snapshot.rs), the helper every
//! guest image carries (the one-process snapshot reader, and the persistent
//! session's command server), with the same rustc that builds kcycle: std
//! only, statically linked, so it needs no library in the guest. kcycle
//! embeds the binary (`snapshot::HELPER`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=guest/kcycle_snapshot.rs");
    println!("cargo:rerun-if-changed=src/snapshot/walk.rs");
    println!("cargo:rerun-if-changed=src/snapshot/klog.rs");
    println!("cargo:rerun-if-changed=src/guest/serve.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let binary = out.join("kcycle-snapshot");
    let output = Command::new(&rustc)
        .args([
            "--edition=2021",
            "--crate-type=bin",
            "--crate-name=kcycle_snapshot",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "opt-level=2",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "target-feature=+crt-static", "-A", "dead_code"])
        // Not position-independent: a static-pie relocates itself at every
        // start, and under TCG its code runs slower too. A snapshot took
        // 51 ms as a static-pie and 28 ms as a plain static binary, a bare
        // start 17 ms and 5 (2026-12-04, 10 runs each in one guest).
        .args(["-C", "relocation-model=static"])
        .arg("-o")
        .arg(&binary)
        .arg("guest/kcycle_snapshot.rs")
        .output()
        .unwrap_or_else(|e| panic!("failed to run {rustc:?} to build kcycle-snapshot: {e}"));
    if !output.status.success() {
        panic!(
            "failed to build kcycle-snapshot (guest/kcycle_snapshot.rs) with {rustc:?} \
             (a static binary: it needs glibc's static libraries, Debian's libc6-dev):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
