//! Properties of the classifier: it never panics, whatever the bytes, and
//! its work grows linearly with the input.

use kcycle::dmesg::{classify, classify_bytes, classify_with_work};
use proptest::prelude::*;

/// Lines that start, continue and end reports, to build adversarial logs
/// from (kernel formats; the values are made up).
const PIECES: &[&str] = &[
    "[ 1.0] ------------[ cut here ]------------",
    "[ 1.0] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2",
    "[ 1.0] kmem_cache_destroy c: Slab cache still has objects",
    "[ 1.0] BUG: KASAN: use-after-free in f+0x1/0x2",
    "[ 1.0] ==================================================================",
    "[ 1.0] WARNING: possible circular locking dependency detected",
    "[ 1.0] Call Trace:",
    "[ 1.0]  f+0x1/0x2",
    "[ 1.0]  ? g+0x1/0x2",
    "[ 1.0] RIP: 0010:f+0x1/0x2",
    "[ 1.0] ---[ end trace 0000000000000000 ]---",
    "[ 1.0] Kernel panic - not syncing: Fatal exception",
    "[ 1.0] debugfs: Directory 'a' with parent 'b' already present!",
    "unreferenced object 0xffff888000000000 (size 8):",
    "  backtrace:",
    "    not ok 1 t",
    "[ 1.0] usb 1-1: new device",
    "",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let findings = classify_bytes(&bytes);
        for f in findings {
            prop_assert!(f.line >= 1);
            prop_assert!(!f.title.is_empty());
        }
    }

    #[test]
    fn any_mix_of_report_lines_never_panics(picks in proptest::collection::vec(0..PIECES.len(), 0..400)) {
        let log: Vec<&str> = picks.iter().map(|&i| PIECES[i]).collect();
        let log = log.join("\n");
        let lines = log.lines().count();
        for f in classify(&log) {
            prop_assert!(f.line >= 1 && f.line <= lines.max(1));
            prop_assert!(f.report.len() <= kcycle::dmesg::MAX_REPORT_BYTES);
        }
    }

    #[test]
    fn any_text_lines_never_panic(lines in proptest::collection::vec(".{0,200}", 0..100)) {
        let _ = classify(&lines.join("\n"));
    }
}

/// A log of `copies` times the same block of real-looking reports.
fn repeated_log(copies: usize) -> String {
    let block = PIECES.join("\n") + "\n";
    block.repeat(copies)
}

#[test]
fn work_grows_linearly_with_the_input() {
    let (_, small) = classify_with_work(&repeated_log(500));
    let (_, large) = classify_with_work(&repeated_log(2000));
    // Four times the input may cost at most four times the work (plus a
    // little slack for the reports cut at the block boundaries).
    assert!(
        large <= 4 * small + 4 * PIECES.len(),
        "work {small} for n lines but {large} for 4n lines"
    );
    assert!(
        large >= 4 * small - 4 * PIECES.len(),
        "work did not grow: {small} -> {large}"
    );
}

#[test]
fn one_endless_report_costs_linear_work() {
    // A report that never ends must not be re-scanned line by line.
    let mut log = String::from("BUG: soft lockup - CPU#0 stuck for 22s!\nCall Trace:\n");
    let frames = |n: usize| {
        (0..n)
            .map(|i| format!(" f{i}+0x1/0x2\n"))
            .collect::<String>()
    };
    let (_, small) = classify_with_work(&(log.clone() + &frames(10_000)));
    log.push_str(&frames(40_000));
    let (_, large) = classify_with_work(&log);
    assert!(large <= 4 * small + 10, "work {small} vs {large}");
}
