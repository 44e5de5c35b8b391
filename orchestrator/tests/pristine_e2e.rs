//! A pristine guest without a reboot, with real QEMU: the state saved when
//! the guest was first ready is restored after a test left the guest dirty
//! or crashed it, and the restored guest has none of that test's leftovers,
//! a fresh SSH session, the host's clock, a console and kernel log that
//! start at the restore point, and a working stand-in PCI device.

mod support;

use std::time::{Duration, SystemTime};

use kcycle::guest::{BootSpec, Guest, RunDir};
use kcycle::status::Status;
use kcycle::vm::Accel;

/// What only a cold boot prints on the console.
const BOOT_LINE: &str = "kcycle-init: sshd started";

#[test]
fn a_dirty_or_crashed_guest_is_restored_with_none_of_the_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("pristine.toml");
    std::fs::write(
        &suite,
        r#"
name = "pristine"
[[test]]
name = "leave-proc-entry"
steps = [{ load = "kcycle_leaks", params = { leak = "proc" } }, { unload = "kcycle_leaks" }]
expect = [{ kind = "leaked-proc-entry", title = "*/proc/kcycle_leaks*", attribution = "left behind by unload in cycle 1*" }]
[[test]]
name = "panic"
steps = [{ load = "rust_i915_table", params = { panic_at = "globals" }, timeout = 900 }]
# A /proc/kcycle_leaks still there would make this load warn (already registered).
[[test]]
name = "after"
steps = [{ load = "kcycle_leaks" }, { unload = "kcycle_leaks" }]
"#,
    )
    .unwrap();
    let Some((code, stderr, results, results_dir)) =
        support::run_suites(tmp.path(), &[suite.to_str().unwrap()])
    else {
        return;
    };
    assert_eq!(code, 1, "the panic fails the run\n{stderr}");
    let status = |name: &str| support::result(&results, name).status;
    assert_eq!(status("kcycle@pristine@leave-proc-entry"), Status::Pass);
    assert_eq!(status("kcycle@pristine@panic"), Status::Crash);
    let after = support::result(&results, "kcycle@pristine@after");
    assert_eq!(
        (after.status, after.findings.len()),
        (Status::Pass, 0),
        "{:#?}\n{stderr}",
        after.findings
    );
    // Restored both times, booted once.
    assert!(
        stderr.contains(
            "guest 0: restoring its saved state (the previous test left /proc/kcycle_leaks"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("guest 0: restoring its saved state (the previous test ended with crash)"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("guest 0: booting").count(), 1, "{stderr}");
    assert!(!stderr.contains("failed to restore"), "{stderr}");
    // The boot's console has the boot; each restore's starts at the restore point.
    let console = |n: &str| {
        std::fs::read_to_string(results_dir.join(format!("console-pristine-guest0{n}.log")))
            .unwrap()
    };
    assert!(console("").contains(BOOT_LINE));
    assert!(
        console(".1").contains("Kernel panic"),
        "the crash is in the first restore's console"
    );
    for restored in [console(".1"), console(".2")] {
        assert!(!restored.contains(BOOT_LINE), "{restored}");
    }
}

#[test]
fn a_restored_guest_is_the_saved_one_with_the_hosts_clock() {
    let Some(kernel) = support::kernel() else {
        return;
    };
    let cache = kcycle::sys::dirs::cache_root().unwrap();
    let image = kcycle::image::build(&kernel, &cache).unwrap().path;
    let run_dir = RunDir::temporary().unwrap();
    let spec = BootSpec::new(kernel.bzimage(), image, Accel::Tcg);
    let mut guest = Guest::boot(spec, run_dir.path()).unwrap();
    let run = |guest: &mut Guest, command: &str| {
        let out = guest.run(command).unwrap();
        assert!(out.success(), "{command}: {out:?}");
        out.stdout_text().trim().to_string()
    };
    run(&mut guest, "echo saved > /tmp/before");
    // Memory decoding on, as a driver's pci_enable_device turns it on (qboot,
    // unlike SeaBIOS, leaves it off): the header a restore must write back.
    let standin = "d=$(dirname $(grep -l 0x11e8 /sys/bus/pci/devices/*/device))";
    run(&mut guest, &format!("{standin}; echo 1 > $d/enable"));
    let state = guest.save_state().unwrap();
    // The guest runs on after the save; dirty it.
    run(
        &mut guest,
        "echo dirty > /tmp/after && modprobe rust_minimal && dmesg | grep -q 'Rust minimal sample'",
    );
    let first_pid = guest.vm().pid();
    // Long enough that a clock left at the save would be visibly behind.
    std::thread::sleep(Duration::from_secs(5));
    let booted = guest.boot_time();
    guest.restore(&state).unwrap();
    assert_ne!(guest.vm().pid(), first_pid);
    eprintln!(
        "boot {:.1}s, restore {:.1}s (not a benchmark: `cargo bench --bench pristine`)",
        booted.as_secs_f64(),
        guest.boot_time().as_secs_f64()
    );

    assert_eq!(run(&mut guest, "cat /tmp/before"), "saved");
    assert_eq!(
        run(
            &mut guest,
            "test -e /tmp/after; echo $?; grep -c rust_minimal /proc/modules; dmesg | grep -c 'Rust minimal sample'; true"
        ),
        "1\n0\n0",
        "the restored guest has none of what happened after the save"
    );
    let guest_now: u64 = run(&mut guest, "date +%s").parse().unwrap();
    let host_now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        guest_now.abs_diff(host_now) <= 2,
        "guest clock {guest_now}, host {host_now}"
    );
    // QEMU does not migrate edu's config space; the guest wrote it back.
    assert_eq!(
        run(
            &mut guest,
            &format!("{standin}; devmem $(cut -d' ' -f1 $d/resource | head -1) 32")
        ),
        "0x010000ED",
        "the stand-in answers at its BAR"
    );
    assert!(!guest.console().contents().contains(BOOT_LINE));
    let boot_console = std::fs::read_to_string(run_dir.path().join("console.1.log")).unwrap();
    assert!(boot_console.contains(BOOT_LINE));
    // A state that is gone is an error that says so, and the old QEMU is not kept.
    std::fs::remove_file(&state).unwrap();
    let err = kcycle::sys::error::chain(&guest.restore(&state).unwrap_err());
    assert!(err.contains("no saved state at"), "{err}");
    let _ = guest.shutdown(Duration::from_secs(10));
    assert!(support::qemus_mentioning(&run_dir.path().to_string_lossy()).is_empty());
}
