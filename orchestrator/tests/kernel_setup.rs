//! `kcycle setup` on the real host: `--check` reports, and on a complete
//! host `setup` is a no-op that runs no apt at all.

use std::process::Command;

fn kcycle(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kcycle"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn setup_check_reports_and_setup_is_idempotent() {
    let (code, report) = kcycle(&["setup", "--check"]);
    assert!(report.contains("bindgen"), "{report}");
    match code {
        Some(0) => {}
        Some(1) => {
            // Something is missing: the report says what and how to get it.
            assert!(report.contains("to complete the host, run:"), "{report}");
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs `kcycle setup` before the tests, yet:\n{report}"
            );
            eprintln!("skipping the idempotence check: this host is incomplete\n{report}");
            return;
        }
        other => panic!("unexpected exit {other:?}:\n{report}"),
    }
    assert!(report.contains("apt packages present"), "{report}");

    let (code, again) = kcycle(&["setup"]);
    assert_eq!(code, Some(0), "{again}");
    assert!(
        !again.contains("$ apt-get"),
        "no apt on a complete host: {again}"
    );
    assert!(!again.contains("cargo install"), "{again}");
}
