//! Unit tests of the walk with small synthetic logs. Each message line is
//! the kernel's format string (cited) with made-up values; real logs are in
//! `tests/fixtures/dmesg` and `../shared/corpus/dmesg`.

use super::*;

fn kinds_and_titles(log: &str) -> Vec<(Kind, String)> {
    classify(log)
        .into_iter()
        .map(|f| (f.kind, f.title))
        .collect()
}

#[test]
fn empty_and_clean_logs_have_no_findings() {
    assert!(classify("").is_empty());
    assert!(classify("\n\n").is_empty());
    let clean = "\
[    0.000000] Linux version 6.12.0 (root@host) #1 SMP
[    1.234567] i915: Performing mock selftests with st_random_seed=0x1 st_timeout=500
[    1.234568] i915: Running i915_gem_object_mock_selftests/igt_gem_huge
[    2.000000] Setting dangerous option mock_selftests - tainting kernel
[    2.100000] i915 0000:00:02.0: [drm] GT0: GUC: timed out waiting for reply
[    2.200000] i915 0000:00:02.0: Direct firmware load for i915/tgl_dmc.bin failed with error -2
[    3.000000] traps: a.out[3615] general protection fault ip:7feb96eb56a1 sp:20000fd0 error:0 in a.out
";
    assert_eq!(classify(clean), vec![]);
}

#[test]
fn debugfs_duplicates_old_and_new_wording_get_one_title() {
    // fs/debugfs/inode.c, 5.3-6.16 and 6.17+.
    let log = "\
[   10.1] debugfs: Directory 'i915_vma' with parent 'slab' already present!
[   10.2] debugfs: File 'total_objects' in directory 'i915_vma' already present!
[   10.3] debugfs: 'i915_vma' already exists in 'slab'
";
    assert_eq!(
        kinds_and_titles(log),
        vec![
            (
                Kind::DebugfsDuplicate,
                "debugfs: duplicate 'i915_vma' in 'slab'".into()
            ),
            (
                Kind::DebugfsDuplicate,
                "debugfs: duplicate 'total_objects' in 'i915_vma'".into()
            ),
            (
                Kind::DebugfsDuplicate,
                "debugfs: duplicate 'i915_vma' in 'slab'".into()
            ),
        ]
    );
    let first = &classify(log)[0];
    assert_eq!((first.line, first.severity), (1, Severity::Warn));
    assert_eq!(
        first.report,
        "debugfs: Directory 'i915_vma' with parent 'slab' already present!"
    );
}

#[test]
fn slab_leak_warn_takes_in_its_warning_line() {
    // mm/slab_common.c (6.12): WARN(err, "%s %s: Slab cache still has objects when called from %pS", ...)
    let log = "\
[   20.0] ------------[ cut here ]------------
[   20.1] kmem_cache_destroy i915_vma: Slab cache still has objects when called from i915_vma_module_exit+0x15/0x30 [i915]
[   20.2] WARNING: CPU: 0 PID: 77 at mm/slab_common.c:529 kmem_cache_destroy+0x10d/0x130
[   20.3] Modules linked in: i915(-)
[   20.4] CPU: 0 UID: 0 PID: 77 Comm: rmmod Tainted: G     U             6.12.0 #1
[   20.5] RIP: 0010:kmem_cache_destroy+0x10d/0x130
[   20.6] Call Trace:
[   20.7]  <TASK>
[   20.8]  i915_exit+0x2a/0x40 [i915]
[   20.9]  __do_sys_delete_module+0x1a1/0x2b0
[   21.0]  </TASK>
[   21.1] ---[ end trace 0000000000000000 ]---
[   21.2] i915: unloaded
";
    let findings = classify(log);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f.kind, Kind::SlabLeak);
    assert_eq!(
        f.title,
        "kmem_cache_destroy i915_vma: Slab cache still has objects"
    );
    assert_eq!(f.line, 2);
    assert!(f.report.ends_with("---[ end trace 0000000000000000 ]---"));
}

#[test]
fn lockdep_warning_is_lockdep_not_warning() {
    let log = "\
======================================================
WARNING: possible circular locking dependency detected
------------------------------------------------------
modprobe/123 is trying to acquire lock:
ffff8880 (&dev->lock){+.+.}, at: foo_unbind+0x1/0x2
";
    assert_eq!(
        kinds_and_titles(log),
        vec![(Kind::Lockdep, "possible deadlock in foo_unbind".into())]
    );
}

#[test]
fn warning_first_line_before_and_after_6_19() {
    // kernel/panic.c __warn(): before 6.19 and since 28ea295f941e (6.19-rc1).
    let old = "WARNING: CPU: 3 PID: 9 at drivers/gpu/drm/i915/i915_vma.c:12 i915_vma_unpin+0x1/0x2 [i915]";
    let new = "WARNING: drivers/gpu/drm/i915/i915_vma.c:12 at i915_vma_unpin+0x1/0x2 [i915], CPU#3: modprobe/9";
    let no_file = "WARNING: at i915_vma_unpin+0x1/0x2 [i915], CPU#3: modprobe/9";
    let cond = "WARNING: [!vma->pin] drivers/gpu/drm/i915/i915_vma.c:12 at i915_vma_unpin+0x1/0x2, CPU#3: modprobe/9";
    let ancient = "WARNING: at drivers/gpu/drm/i915/i915_vma.c:12 i915_vma_unpin+0x1/0x2()";
    for l in [old, new, no_file, cond, ancient] {
        assert_eq!(
            kinds_and_titles(l),
            vec![(Kind::Warning, "WARNING in i915_vma_unpin".into())],
            "{l}"
        );
    }
}

#[test]
fn banner_warnings_are_not_findings() {
    let log = "\
Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks possible via Spectre v2 BHB attacks!
WARNING: the mand mount option is being deprecated and
XFS (loop4): WARNING: Reset corrupted AGFL on AG 0.
";
    assert_eq!(classify(log), vec![]);
}

#[test]
fn panic_after_a_report_is_part_of_it() {
    let log = "\
[ 5.0] BUG: kernel NULL pointer dereference, address: 0000000000000008
[ 5.1] #PF: supervisor read access in kernel mode
[ 5.2] Oops: 0000 [#1] PREEMPT SMP NOPTI
[ 5.3] RIP: 0010:i915_gem_object_put+0x5/0x20 [i915]
[ 5.4] Call Trace:
[ 5.5]  i915_exit+0x2a/0x40 [i915]
[ 5.6] ---[ end trace 0000000000000000 ]---
[ 5.7] Kernel panic - not syncing: Fatal exception
[ 5.8] Kernel Offset: disabled
";
    let findings = classify(log);
    assert_eq!(
        findings
            .iter()
            .map(|f| (f.kind, f.title.as_str()))
            .collect::<Vec<_>>(),
        vec![(
            Kind::Oops,
            "BUG: unable to handle kernel NULL pointer dereference in i915_gem_object_put"
        )]
    );
    assert!(findings[0]
        .report
        .contains("Kernel panic - not syncing: Fatal exception"));
}

#[test]
fn a_panic_alone_is_a_finding_with_numbers_normalized() {
    assert_eq!(
        kinds_and_titles(
            "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"
        ),
        vec![(
            Kind::Panic,
            "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)".into()
        )]
    );
}

#[test]
fn i915_selftest_failures_and_ktap() {
    // drivers/gpu/drm/i915/selftests/i915_selftest.c, lib/kunit (KTAP).
    let log = "\
[ 1.0] i915: Running i915_gem_object_mock_selftests/igt_gem_huge
[ 1.1] i915/i915_gem_object_mock_selftests: igt_gem_huge failed with error -22
[ 2.0]     ok 1 test_a
[ 2.1]     not ok 2 test_b
[ 2.2]     not ok 3 test_c # SKIP needs hardware
[ 2.3] not ok 1 example # FAIL
";
    assert_eq!(
        kinds_and_titles(log),
        vec![
            (
                Kind::SelftestFail,
                "i915/i915_gem_object_mock_selftests: igt_gem_huge failed with error -22".into()
            ),
            (Kind::SelftestFail, "KTAP: not ok test_b".into()),
            (Kind::SelftestFail, "KTAP: not ok example".into()),
        ]
    );
    assert_eq!(
        i915_selftest_running("[ 1.0] i915: Running i915_gem_object_mock_selftests/igt_gem_huge"),
        Some("i915_gem_object_mock_selftests/igt_gem_huge")
    );
}

#[test]
fn interleaved_lines_of_other_callers_stay_out_of_a_report() {
    let log = "\
[ 1.0][ T10] sysfs: cannot create duplicate filename '/kernel/slab/i915_vma'
[ 1.1][ T10] CPU: 0 PID: 10 Comm: modprobe
[ 1.1][ T11] usb 1-1: new high-speed USB device number 2
[ 1.2][ T10] Call Trace:
[ 1.3][ T10]  dump_stack_lvl+0x1/0x2
[ 1.4][ T10]  sysfs_warn_dup+0x1/0x2
[ 1.5][ T10] kobject_add_internal failed for i915_vma with -EEXIST
";
    let findings = classify(log);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, Kind::SysfsDuplicate);
    assert_eq!(
        findings[0].title,
        "sysfs: cannot create duplicate filename '/kernel/slab/i915_vma'"
    );
    assert!(!findings[0].report.contains("usb"));
    assert!(!findings[0].report.contains("kobject_add_internal failed"));
}

#[test]
fn userspace_lines_in_syslog_are_ignored() {
    let log = "\
Jun  2 06:00:57 host myapp[12]: BUG: this is not the kernel
Jun  2 06:00:58 host kernel: [  1.0] debugfs: Directory 'x' with parent 'y' already present!
";
    assert_eq!(
        kinds_and_titles(log),
        vec![(
            Kind::DebugfsDuplicate,
            "debugfs: duplicate 'x' in 'y'".into()
        )]
    );
}

#[test]
fn a_report_without_a_trace_ends_at_ordinary_log_lines() {
    let log = "\
WARNING: CPU: 0 PID: 1 at drivers/a.c:1 f+0x1/0x2
Modules linked in: i915
usb 1-1: new high-speed USB device number 2
EXT4-fs (sda1): mounted filesystem
systemd[1]: Started foo.
e1000e: link up
";
    let findings = classify(log);
    assert_eq!(findings.len(), 1);
    assert_eq!(
        findings[0].report,
        "WARNING: CPU: 0 PID: 1 at drivers/a.c:1 f+0x1/0x2\nModules linked in: i915"
    );
}

#[test]
fn reports_are_cut_at_the_size_limits() {
    let mut log = String::from("BUG: soft lockup - CPU#0 stuck for 22s! [a:1]\nCall Trace:\n");
    for i in 0..1000 {
        log.push_str(&format!(" frame_{i}+0x1/0x2\n"));
    }
    let findings = classify(&log);
    assert_eq!(findings.len(), 1);
    assert!(findings[0].report.lines().count() <= MAX_REPORT_LINES);
    assert!(findings[0].report.len() <= MAX_REPORT_BYTES);
}

#[test]
fn kinds_serialize_as_the_issue_names() {
    for kind in Kind::ALL {
        let json = serde_json::to_string(&kind).expect("serialize");
        assert_eq!(json, format!("\"{}\"", kind.name()));
    }
    assert_eq!(
        serde_json::to_string(&Severity::Warn).expect("json"),
        "\"warn\""
    );
}

#[test]
fn panic_on_warn_after_a_closed_report_is_not_a_new_finding() {
    let log = "\
==================================================================
BUG: KASAN: use-after-free in foo+0x1/0x2
Read of size 8 at addr ffff888000000000 by task a/1
Call Trace:
 foo+0x1/0x2
==================================================================
Kernel panic - not syncing: panic_on_warn set ...
CPU: 0 PID: 1 Comm: a
";
    assert_eq!(
        kinds_and_titles(log),
        vec![(Kind::Kasan, "KASAN: use-after-free Read in foo".into())]
    );
}

#[test]
fn checker_warnings_are_named_after_the_check() {
    // lib/refcount.c refcount_warn_saturate(), old and 6.19 first lines.
    for first in [
        "WARNING: CPU: 0 PID: 9 at lib/refcount.c:28 refcount_warn_saturate+0x1/0x2",
        "WARNING: lib/refcount.c:28 at refcount_warn_saturate+0x1/0x2, CPU#0: rmmod/9",
    ] {
        let log = format!(
            "refcount_t: underflow; use-after-free.\n{first}\nRIP: 0010:refcount_warn_saturate+0x1/0x2\nCall Trace:\n <TASK>\n i915_vma_put+0x1/0x2 [i915]\n"
        );
        assert_eq!(
            kinds_and_titles(&log),
            vec![(
                Kind::Warning,
                "WARNING: refcount bug in i915_vma_put".into()
            )],
            "{first}"
        );
    }
    let list = "kernel BUG at lib/list_debug.c:30!\nRIP: 0010:__list_add_valid+0x1/0x2\nCall Trace:\n intel_foo+0x1/0x2\n";
    assert_eq!(
        kinds_and_titles(list),
        vec![(Kind::Bug, "BUG: corrupted list in intel_foo".into())]
    );
}

#[test]
fn a_report_ends_when_its_caller_stays_quiet() {
    let mut log = String::from(
        "[ 1.0][ T10] WARNING: CPU: 0 PID: 10 at a.c:1 f+0x1/0x2\n[ 1.0][ T10] Call Trace:\n[ 1.0][ T10]  g+0x1/0x2\n",
    );
    for _ in 0..300 {
        log.push_str("[ 2.0][ T11] usb 1-1: chatter\n");
    }
    log.push_str("[ 3.0][ T10]  much_later+0x1/0x2\n");
    let findings = classify(&log);
    assert_eq!(findings.len(), 1);
    assert!(
        !findings[0].report.contains("much_later"),
        "{}",
        findings[0].report
    );
}

#[test]
fn a_rust_panic_takes_in_the_bug_it_raises() {
    // rust/kernel/lib.rs panic handler: pr_emerg!("{}\n", info); BUG().
    let log = "\
[ 5.0] rust_kernel: panicked at drivers/gpu/drm/i915/rust/table.rs:42:9:
[ 5.0] init_progress out of range
[ 5.1] ------------[ cut here ]------------
[ 5.1] kernel BUG at rust/helpers/bug.c:7!
[ 5.1] Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[ 5.1] RIP: 0010:rust_helper_BUG+0x8/0x10
[ 5.1] Call Trace:
[ 5.1]  _RNvCs1234_4core9panicking9panic_fmt+0x30/0x40
[ 5.1]  rust_i915_table_exit+0x20/0x30 [rust_i915_table]
";
    assert_eq!(
        kinds_and_titles(log),
        vec![(
            Kind::Bug,
            "Rust panic at drivers/gpu/drm/i915/rust/table.rs".into()
        )]
    );
    let bug = "kernel BUG at rust/helpers/bug.c:7!\nRIP: 0010:rust_helper_BUG+0x8/0x10\nCall Trace:\n _RNvCs1234_4core9panicking9panic_fmt+0x30/0x40\n rust_i915_table_exit+0x20/0x30 [rust_i915_table]\n";
    assert_eq!(
        kinds_and_titles(bug),
        vec![(Kind::Bug, "kernel BUG in rust_i915_table_exit".into())]
    );
}

#[test]
fn ktap_failures_are_named_with_their_suite() {
    // lib/kunit output (KTAP v1), made-up names.
    let log = "\
[ 1.0] KTAP version 1
[ 1.0] 1..1
[ 1.0]     KTAP version 1
[ 1.0]     # Subtest: outer
[ 1.0]     1..2
[ 1.0]         KTAP version 1
[ 1.0]         # Subtest: param_case
[ 1.0]         not ok 1 \"a\"
[ 1.0]     not ok 1 param_case
[ 1.0]     not ok 2 plain_case
[ 1.0] not ok 1 outer
";
    assert_eq!(
        kinds_and_titles(log)
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>(),
        vec![
            "KTAP: not ok param_case/\"a\"",
            "KTAP: not ok outer/param_case",
            "KTAP: not ok outer/plain_case",
            "KTAP: not ok outer",
        ]
    );
}

#[test]
fn coloured_dmesg_and_serial_line_ends_are_read() {
    // `dmesg --color=always` and a serial console's `\r\r\n`.
    let log = "\x1b[32m[   12.345678] \x1b[0m\x1b[33mdebugfs: Directory 'i915_vma' with parent 'slab' already present!\x1b[0m\r\r\n";
    assert_eq!(
        kinds_and_titles(log),
        vec![(
            Kind::DebugfsDuplicate,
            "debugfs: duplicate 'i915_vma' in 'slab'".into()
        )]
    );
}

#[test]
fn a_fatal_exception_panic_long_after_a_finding_is_its_own_finding() {
    let mut log = String::from("debugfs: Directory 'a' with parent 'b' already present!\n");
    for _ in 0..500 {
        log.push_str("usb 1-1: chatter\n");
    }
    log.push_str("Kernel panic - not syncing: Fatal exception\n");
    assert_eq!(
        kinds_and_titles(&log),
        vec![
            (
                Kind::DebugfsDuplicate,
                "debugfs: duplicate 'a' in 'b'".into()
            ),
            (Kind::Panic, "kernel panic: Fatal exception".into()),
        ]
    );
}

#[test]
fn duplicates_name_what_they_collide_with() {
    // fs/debugfs/inode.c (5.3 root, 6.17+), fs/proc/generic.c proc_register(),
    // fs/proc/proc_sysctl.c insert_entry(), lib/kobject.c kobject_add_internal().
    let log = "\
debugfs: Directory 'i915_vma' already present!
debugfs: 'i915_vma' already exists in 'slab'
proc_dir_entry 'driver/rust_i915_table' already registered
sysctl duplicate entry: /dev/i915/perf_stream_paranoid
kobject_add_internal failed for rust_i915_table with -EEXIST, don't try to register things with the same name in the same directory.
";
    let found: Vec<(Kind, String, Option<String>)> = classify(log)
        .into_iter()
        .map(|f| (f.kind, f.title, f.subject))
        .collect();
    let subjects: Vec<(Kind, Option<&str>)> =
        found.iter().map(|(k, _, s)| (*k, s.as_deref())).collect();
    assert_eq!(
        subjects,
        vec![
            (Kind::DebugfsDuplicate, Some("i915_vma")),
            (Kind::DebugfsDuplicate, Some("slab/i915_vma")),
            (Kind::ProcDuplicate, Some("driver/rust_i915_table")),
            (
                Kind::SysctlDuplicate,
                Some("/dev/i915/perf_stream_paranoid")
            ),
            (Kind::KobjectDuplicate, Some("rust_i915_table")),
        ]
    );
    assert_eq!(found[0].1, "debugfs: duplicate 'i915_vma' in '/'");
}

#[test]
fn a_warning_in_a_leak_reporter_is_the_leak() {
    // 6.19+ first line, message lost to grep; then the message after it.
    for log in [
        "WARNING: mm/slab_common.c:529 at kmem_cache_destroy+0x10d/0x130, CPU#0: rmmod/77\nCall Trace:\n i915_exit+0x2a/0x40 [i915]\n",
        "WARNING: CPU: 0 PID: 77 at mm/slab_common.c:529 kmem_cache_destroy+0x10d/0x130\nkmem_cache_destroy i915_vma: Slab cache still has objects when called from i915_exit+0x15/0x30\nCall Trace:\n i915_exit+0x2a/0x40 [i915]\n",
    ] {
        let findings = classify(log);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].kind, Kind::SlabLeak);
    }
    let sysfs = "WARNING: fs/sysfs/dir.c:31 at sysfs_warn_dup+0x62/0x80, CPU#0: modprobe/9\nsysfs: cannot create duplicate filename '/kernel/slab/i915_vma'\n";
    let findings = classify(sysfs);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].kind, Kind::SysfsDuplicate);
    assert_eq!(
        findings[0].subject.as_deref(),
        Some("/kernel/slab/i915_vma")
    );
}

#[test]
fn rust_panics_of_old_and_new_toolchains() {
    // rust/kernel/lib.rs panic handler; Rust < 1.73 quoted the message first.
    for line in [
        "rust_kernel: panicked at 'index out of bounds', drivers/gpu/drm/i915/rust/table.rs:42:9",
        "rust_kernel: panicked at drivers/gpu/drm/i915/rust/table.rs:42:9:",
    ] {
        assert_eq!(
            kinds_and_titles(line),
            vec![(
                Kind::Bug,
                "Rust panic at drivers/gpu/drm/i915/rust/table.rs".into()
            )],
            "{line}"
        );
    }
}

#[test]
fn kunit_py_output_and_lone_expectations() {
    // tools/testing/kunit/kunit_parser.py output, made-up names.
    let parsed = "\
[06:00:57] ================= list-kunit-test (2 subtests) =================
[06:00:57] [PASSED] list_test_list_init
[06:00:57]     # list_test_list_add: EXPECTATION FAILED at lib/list-test.c:45
[06:00:57]     Expected list.next == &a, but
[06:00:57] [FAILED] list_test_list_add
";
    assert_eq!(
        kinds_and_titles(parsed),
        vec![(
            Kind::SelftestFail,
            "KTAP: not ok list-kunit-test/list_test_list_add".into()
        )]
    );
    // A grep-filtered log with only the expectation.
    assert_eq!(
        kinds_and_titles("    # list_test_list_add: EXPECTATION FAILED at lib/list-test.c:45\n"),
        vec![(Kind::SelftestFail, "KTAP: not ok list_test_list_add".into())]
    );
}

#[test]
fn reports_cut_at_the_limit_are_marked_corrupted() {
    let mut log = String::from("BUG: soft lockup - CPU#0 stuck for 22s! [a:1]\nCall Trace:\n");
    for i in 0..1000 {
        log.push_str(&format!(" frame_{i}+0x1/0x2\n"));
    }
    assert!(classify(&log)[0].corrupted);
    assert!(!classify("debugfs: 'a' already exists in 'b'")[0].corrupted);
}

#[test]
fn records_glued_into_one_line_are_split_at_their_timestamps() {
    assert_eq!(
        records("[    1.000001] a [    1.000002] b").collect::<Vec<_>>(),
        ["[    1.000001] a ", "[    1.000002] b"]
    );
    assert_eq!(
        records("INFO: task jbd2/[34315.188943]  schedule+0x46/0xb0").collect::<Vec<_>>(),
        ["INFO: task jbd2/", "[34315.188943]  schedule+0x46/0xb0"]
    );
    // A prefix's timestamp stays with its line.
    for line in [
        "Jun  2 06:00:57 host kernel: [   12.345678] text",
        "> [  346.527467][  T100] text",
        "<4>[   12.345678] text",
        "\r[   12.345678] text",
        "[   12.345678] no other timestamp [12.34] here",
    ] {
        assert_eq!(records(line).collect::<Vec<_>>(), [line], "{line:?}");
    }
    // A paste that lost its newlines still gives its report and a clean title.
    let flat = "[ 2052.051866][ T1668] ---[ end trace 5a027cdb2540a822 ]--- [ 2052.051868][ T1668] Kernel panic - not syncing: Oops: Fatal exception [ 2052.051872][ T1668] SMP: stopping secondary CPUs";
    assert_eq!(
        kinds_and_titles(flat),
        vec![(Kind::Panic, "kernel panic: Oops: Fatal exception".into())]
    );
}

#[test]
fn titles_name_the_culprit_the_report_names() {
    // lib/smp_processor_id.c prints `caller is` for the function to blame.
    let log = "\
[  346.5] BUG: using smp_processor_id() in preemptible [00000000] code: rcu_torture_rea/100
[  346.5] caller is rcu_preempt_deferred_qs_irqrestore+0x74/0xed0
[  346.5] Call Trace:
[  346.5] [c0000000094876c0] [c000000000ce2b68] dump_stack_lvl+0xbc/0x108 (unreliable)
[  346.5] [c000000009487710] [c000000001712954] check_preemption_disabled+0x154/0x160
[  346.5] [c0000000094877a0] [c0000000002ce2d4] rcu_preempt_deferred_qs_irqrestore+0x74/0xed0
[  346.5] [c000000009487930] [c0000000002b7ff8] rcutorture_one_extend+0x198/0x810
";
    assert_eq!(
        kinds_and_titles(log)[0].1,
        "BUG: using smp_processor_id() in preemptible code in rcu_preempt_deferred_qs_irqrestore"
    );
    // No trace, and the CPU was in a helper the skip list ignores: it still names it.
    let log = "\
[ 4131.5] kernel BUG at mm/slub.c:305!
[ 4131.5] invalid opcode: 0000 [#1] SMP PTI
[ 4131.5] RIP: 0010:__slab_free+0x1e2/0x3d0
";
    assert_eq!(kinds_and_titles(log)[0].1, "kernel BUG in __slab_free");
}

#[test]
fn old_and_tag_based_kasan_wordings() {
    // 4.0-4.3 (mm/kasan/report.c).
    let log = "\
[  797.7] ==================================================================
[  797.7] BUG: KASan: use after free in tfw_http_msg_free+0x2c9/0x340 [tempesta_fw] at addr ffff880d59947040
[  797.7] Read of size 8 by task ksoftirqd/2/15
";
    assert_eq!(
        kinds_and_titles(log)[0],
        (
            Kind::Kasan,
            "KASAN: use-after-free Read in tfw_http_msg_free".into()
        )
    );
    // Tag-based KASAN has no size.
    let log = "\
[70338.6] BUG: KASAN: invalid-access in dhd_ioctl_entry_local+0x64/0x428 [bcmdhd4398]
[70338.7] Read at addr f4ff4a04d5529e08 by task init/1
";
    assert_eq!(
        kinds_and_titles(log)[0].1,
        "KASAN: invalid-access Read in dhd_ioctl_entry_local"
    );
}

#[test]
fn a_rust_panic_built_elsewhere_is_named_by_its_file() {
    let log = "[   31.3] rust_kernel: panicked at 'called `Option::unwrap()` on a `None` value', /srv/users/x/e1000-driver/src/linux/../e1000_for_linux.rs:86:54\n";
    assert_eq!(
        kinds_and_titles(log)[0].1,
        "Rust panic at e1000_for_linux.rs"
    );
    let log = "[   31.3] rust_kernel: panicked at rust/kernel/alloc.rs:12:5:\n";
    assert_eq!(
        kinds_and_titles(log)[0].1,
        "Rust panic at rust/kernel/alloc.rs"
    );
}
