//! Probe and remove for real: rust_i915_table drives the stand-in PCI device (QEMU's edu
//! behind a hotplug PCIe port) in the built kernel under QEMU. Unbind/rebind and QMP
//! hot-unplug/replug cycles with the fixed driver pass with nothing left behind, probe runs
//! on every load and bind, and every remove-path control is flagged, charged to the cycle and
//! step (unbind, hot-unplug, unload) that left its leak.

mod support;

use support::result;

use std::path::Path;

#[test]
fn the_stand_in_is_probed_and_removed_every_cycle_and_remove_leaks_are_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/hotunplug.toml");
    let Some((code, stderr, results, _)) =
        support::run_suites(tmp.path(), &[suite.to_str().unwrap()])
    else {
        return;
    };
    support::assert_all_pass(&results, code, &stderr);

    // The clean driver: nothing found, and the probe really ran on the device each time (a
    // load and a bind per cycle), with the interrupt it waits for.
    let rebind = result(&results, "kcycle@hotunplug@unbind-rebind");
    assert!(rebind.findings.is_empty(), "{:#?}", rebind.findings);
    let probes = rebind.dmesg.matches("stand-in: probed").count();
    assert_eq!(probes, 6, "3 cycles of load + bind:\n{}", rebind.dmesg);
    let removes = rebind
        .dmesg
        .matches("stand-in remove after 1 interrupts")
        .count();
    assert_eq!(removes, 6, "3 cycles of unbind + unload:\n{}", rebind.dmesg);

    // QMP hot-unplug went through the guest's pciehp and the replug probed again.
    let replug = result(&results, "kcycle@hotunplug@hotunplug-replug");
    assert!(replug.findings.is_empty(), "{:#?}", replug.findings);
    assert_eq!(
        replug.dmesg.matches("stand-in: probed").count(),
        4,
        "{}",
        replug.dmesg
    );
    assert!(
        replug.out.contains("is back, bound as before"),
        "{}",
        replug.out
    );

    assert!(result(&results, "kcycle@hotunplug@probe-error-paths")
        .findings
        .is_empty());

    // Controls: flagged for their reason, charged where the leak happened.
    let irq = result(&results, "kcycle@hotunplug@control-remove-leaks-irq");
    let leaked = irq
        .findings
        .iter()
        .find(|f| f.kind == "leaked-irq")
        .unwrap();
    assert!(
        leaked.report.contains("rust_i915_table"),
        "{}",
        leaked.report
    );
    let regions = result(&results, "kcycle@hotunplug@control-probe-unwind-leak");
    let leaked = regions
        .findings
        .iter()
        .find(|f| f.kind == "leaked-io-region")
        .unwrap();
    assert!(leaked.report.contains("iomem"), "{}", leaked.report);
}
