//! The process cancel token against real signals, in child processes (this
//! test binary runs itself again), so no other test sees the handlers.
//!
//! First SIGINT/SIGTERM/SIGHUP: the token is cancelled, waits return, the
//! process lives on. Second: the signal's default action ends it at once.

use std::process::Command;
use std::time::Duration;

use kcycle::sys::Cancel;

const ROLE: &str = "KCYCLE_SIGNAL_TEST_ROLE";

/// What a child does, chosen by the parent through [`ROLE`].
fn child_role() -> Option<String> {
    std::env::var(ROLE).ok()
}

fn raise(signal: i32) {
    // SAFETY: raise(3) on this process; the handlers only cancel the token.
    unsafe {
        libc::raise(signal);
    }
}

/// Runs in the child: one signal cancels, the process exits 0 by itself.
fn once(signal: i32) -> ! {
    let cancel = Cancel::process();
    raise(signal);
    let woken = cancel.sleep(Duration::from_secs(20));
    println!("{woken} {}", cancel.reason().unwrap_or("none"));
    std::process::exit(0)
}

/// Runs in the child: a second signal ends the process by that signal.
fn twice(signal: i32) -> ! {
    let cancel = Cancel::process();
    raise(signal);
    cancel.sleep(Duration::from_secs(20));
    raise(signal);
    std::thread::sleep(Duration::from_secs(20));
    std::process::exit(0)
}

fn run_child(role: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "signals_in_a_child", "--nocapture"])
        .env(ROLE, role)
        .output()
        .unwrap()
}

#[test]
fn signals_in_a_child() {
    let signal = |name: &str| match name {
        "hup" => libc::SIGHUP,
        "term" => libc::SIGTERM,
        _ => libc::SIGINT,
    };
    match child_role().as_deref() {
        Some(role) if role.starts_with("once-") => once(signal(&role[5..])),
        Some(role) if role.starts_with("twice-") => twice(signal(&role[6..])),
        _ => {}
    }
}

#[test]
fn first_signal_cancels_the_token_and_the_process_lives_on() {
    if child_role().is_some() {
        return;
    }
    for (role, name) in [
        ("once-hup", "SIGHUP"),
        ("once-term", "SIGTERM"),
        ("once-int", "SIGINT (Ctrl-C)"),
    ] {
        let out = run_child(role);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{role}: {stdout}");
        assert!(stdout.contains(&format!("true {name}")), "{role}: {stdout}");
    }
}

#[test]
fn a_second_signal_takes_the_default_action() {
    use std::os::unix::process::ExitStatusExt;
    if child_role().is_some() {
        return;
    }
    for (role, signal) in [("twice-hup", libc::SIGHUP), ("twice-term", libc::SIGTERM)] {
        let out = run_child(role);
        assert_eq!(
            out.status.signal(),
            Some(signal),
            "{role}: {:?}",
            out.status
        );
    }
}
