//! Stack traces: which function a report is "in".
//!
//! A title names the first function of the report that is not generic
//! machinery (the WARN/BUG trap, dump_stack, locking, allocators, string
//! helpers): the same idea and mostly the same skip list as syzkaller's
//! `pkg/report/linux.go`, so titles stay stable across kernels and configs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

/// Functions that never name a bug: reporting machinery, sanitizer hooks,
/// locking primitives, allocators and library helpers. Regexes matched
/// anywhere in the name (syzkaller's list, `pkg/report/linux.go`).
const SKIP_PATTERNS: &[&str] = &[
    "__sanitizer",
    "__asan",
    "kasan",
    "hwasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "(read|write)_once_.*nocheck",
    "print_address_description",
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "handle_bug",
    "print_report",
    "print_usage_bug",
    "do_error",
    "_trap$|do_trap",
    "show_stack",
    "dump_stack",
    "walk_stack",
    "dump_backtrace",
    // ARM's dump_stack.
    "unwind_backtrace",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "folio_(?:alloc|unlock)",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "debug_object",
    "timer_is_static_object",
    "work_is_static_object",
    "__might_fault",
    "print_unlock",
    "imbalance_bug",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "perf_trace",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "(reacquire|mark)_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(set|clear|change|test)_bit",
    "__wake_up",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "memdup",
    "strcmp",
    "strncmp",
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
    "copy_to_user",
    "copy_from_user",
    "copy_(page_|folio_)?(to|from)_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "might_fault",
    "might_sleep",
    "__might_resched",
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "_indirect_thunk_",
    "string",
    "pointer",
    "snprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "^dev_(info|notice|warn|err|alert|crit|emerg)",
    "del_timer",
    "flush_work",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "finish_wait",
    "kthread_stop",
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "device_for_each_child",
    "sysfs_remove",
    "device_remove_file",
    "^complete$",
    "wait_for_completion",
    "wait_for_common",
    "^kv?free$",
    "kfree_skb",
    "^crc\\d+",
    "crc_itu_t",
    "^iput$",
    "^iput_final$",
    "^ihold$",
    "hex_dump_to_buffer",
    "print_hex_dump",
    "^klist_",
    "(trace|lockdep)_(hard|soft)irq",
    "^(un)?lock_page",
    "stack_trace_consume_entry",
    "arch_stack_walk",
    "stack_trace_save",
    "insert_work",
    "__queue_delayed_work",
    "queue_delayed_work_on",
    "ida_free",
    "do_(kernel|translation)_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync",
    "print_tainted",
    // Rust's panic path: the helper BUG() and core::panicking (v0-mangled).
    "rust_helper_BUG",
    "rust_begin_unwind",
    "9panicking",
    "__phys_addr",
    "__fortify_report",
    "^put_device$",
    "dput",
];

/// [`SKIP_PATTERNS`] as one regex.
static SKIP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&SKIP_PATTERNS.join("|")).expect("static regex"));

/// Does `name` match [`SKIP`]? Remembered per name: the same few hundred
/// functions (dump_stack, __warn, the allocators) come up in every report,
/// and the big alternation is slow to run on each. The memory is bounded.
fn generic(name: &str) -> bool {
    const REMEMBERED: usize = 4096;
    thread_local! {
        static SEEN: RefCell<HashMap<Box<str>, bool>> = RefCell::new(HashMap::new());
    }
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if let Some(&known) = seen.get(name) {
            return known;
        }
        let skip = SKIP.is_match(name);
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(name.into(), skip);
        skip
    })
}

/// Extra functions skipped in memory leak backtraces: the allocators.
pub const SKIP_ALLOC: &[&str] = &[
    "kmemleak",
    "kmalloc",
    "kcalloc",
    "kzalloc",
    "vmalloc",
    "mmap",
    "kmem",
    "slab",
    "alloc",
    "create_object",
    "idr_get",
    "list_lru_init",
    "kasprintf",
    "kvasprintf",
    "pcpu_create",
    "strdup",
    "strndup",
    "memdup",
    // allocates the superblock for sget()
    "sget_userns",
];

/// Extra functions skipped for "sleeping/scheduling in atomic context": the
/// scheduler and the helpers that may sleep are where it is detected, not why.
pub const SKIP_SCHED: &[&str] = &[
    "schedule",
    "rwsem",
    "kmem_cache_alloc",
    "kmalloc",
    "might_alloc",
    "slab_pre_alloc_hook",
    "preempt",
];

/// Extra functions skipped in WARNINGs: helpers that warn about their caller.
pub const SKIP_WARNING: &[&str] = &["mark_buffer_dirty"];

/// Extra functions skipped in lockdep reports: workqueue functions take locks
/// for their work items, and iput drops inodes for whichever fs holds them.
pub const SKIP_LOCKDEP: &[&str] = &[
    "process_one_work",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "^iput$",
];

/// Extra functions skipped in UBSAN reports: the UBSAN handlers.
pub const SKIP_UBSAN: &[&str] = &["ubsan", "overflow"];

/// Extra functions skipped in KASAN invalid-free reports: the free path.
pub const SKIP_FREE: &[&str] = &["kmem_", "slab_", "kfree", "vunmap", "vfree"];

/// Does `name` match one of `patterns`? A rule's own skip list is plain
/// text: `^x` matches a prefix, `x$` a suffix, `^x$` exactly, anything else
/// a substring.
pub fn skipped(name: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| {
        let (anchored_start, p) = match p.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, *p),
        };
        let (anchored_end, p) = match p.strip_suffix('$') {
            Some(rest) => (true, rest),
            None => (false, p),
        };
        match (anchored_start, anchored_end) {
            (true, true) => name == p,
            (true, false) => name.starts_with(p),
            (false, true) => name.ends_with(p),
            (false, false) => name.contains(p),
        }
    })
}

/// The first function of `candidates` matching none of the skip lists.
pub fn first_unskipped<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    extra: &[&str],
) -> Option<&'a str> {
    candidates
        .into_iter()
        .find(|f| !f.is_empty() && !generic(f) && !skipped(f, extra))
}

/// Syscall wrappers name the syscall: `__se_sys_mremap` is "mremap"
/// (syzkaller's `stripFramePrefixes`, applied until none matches).
const SYSCALL_PREFIXES: &[&str] = &[
    "compat_SYSC_",
    "compat_SyS_",
    "__se_sys_",
    "__do_sys_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "__se_",
    "SYSC_",
    "SyS_",
    "sys_",
    "ksys_",
];

/// A function name as titles use it: compiler suffixes (`.isra.0`, `.cold`,
/// `.part.1`, `.constprop.0`) and syscall wrapper prefixes removed.
pub fn clean(name: &str) -> &str {
    let mut name = name.split('.').next().unwrap_or(name);
    'strip: loop {
        for prefix in SYSCALL_PREFIXES {
            if let Some(rest) = name.strip_prefix(prefix) {
                if !rest.is_empty() {
                    name = rest;
                    continue 'strip;
                }
            }
        }
        return name;
    }
}

/// `func+0x12/0x34` (optionally after `[<addr>]`s, `<IRQ>` markers, a `? `
/// for unreliable frames), `func file.c:12 [inline]` (symbolized inline
/// frames), `func (file.c:12)` and `func (file.c:12 (discriminator 1))`
/// (decode_stacktrace.sh), ARM's
/// `[<addr>] (func) from [<addr>] (caller+0x1/0x2)` and newer ARM's
/// `func from caller+0x1/0x2`.
static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^\s*(?:<(?:IRQ|EOI|NMI|TASK|/IRQ|/TASK|/NMI)>\s*)*",
        r"(?:\[<?(?:0x)?[0-9a-f]+>?\]\s*){0,2}",
        r"(\?\s+)?",
        r"(?:\(([A-Za-z0-9_.$]+)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?(?: \[[\w-]+\])?\) from ",
        r"|([A-Za-z_][A-Za-z0-9_.$]*) from [A-Za-z_][A-Za-z0-9_.$]*\+0x",
        r"|(?:[0-9]+:)?([A-Za-z_][A-Za-z0-9_.$]*)",
        r"(?:\+0x[0-9a-f]+/0x[0-9a-f]+|\s+\S+\.\w+:\d+\s+\[inline\]|\s+\([\w/.-]+\.\w+:\d+(?: \(discriminator \d+\))?\)))",
    ))
    .expect("static regex")
});

/// The function a register dump says the CPU was in: `RIP: 0010:func+0x..`,
/// `pc : func+0x..`, `PC is at func+0x..`, `epc : func+0x..`, `NIP [..] func+0x..`.
static PC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^\s*(?:[REN]?IP:? (?:[0-9a-f]+:)?(?:\[<[0-9a-f]+>\] )?|pc : (?:\[<[0-9a-f]+>\] )?|PC is at |epc : |NIP \[[0-9a-f]+\] )",
        r"([A-Za-z_][A-Za-z0-9_.$]*)\+0x[0-9a-f]+",
    ))
    .expect("static regex")
});

/// Can `text` be a frame at all? Every [`FRAME`] shape has an offset
/// (`+0x`), a `file:line` (a colon, then a digit) or an ARM ` from `: most
/// lines have none of them (register dumps have colons, then blanks), and
/// this byte scan spares them the regex.
fn may_be_frame(text: &str) -> bool {
    static FROM: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(" from "));
    let b = text.as_bytes();
    // The regex's `\d` takes other scripts' digits: any non-ASCII byte may be one.
    let marked = memchr::memchr2_iter(b'+', b':', b).any(|at| match b[at] {
        b'+' => b[at + 1..].starts_with(b"0x"),
        _ => b
            .get(at + 1)
            .is_some_and(|c| c.is_ascii_digit() || !c.is_ascii()),
    });
    marked || FROM.find(b).is_some()
}

/// The most common frame, `  func+0x12/0x34` or `  ? func+0x12/0x34`
/// (blanks, up to two `[<addr>]`, an optional `? `, a name, an offset), read
/// without [`FRAME`]: whether it is unreliable, and the name. Where this
/// answers, it is the regex's answer (its first-preferred path is this one);
/// any other shape gives `None` and goes to the regex, whose captures cost
/// microseconds.
fn plain_frame(text: &str) -> Option<(bool, &str)> {
    let b = text.as_bytes();
    let blanks = |from: usize| {
        b[from..]
            .iter()
            .take_while(|c| matches!(c, b' ' | b'\t'))
            .count()
    };
    let hex = |from: usize| {
        b[from..]
            .iter()
            .take_while(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            .count()
    };
    let mut i = blanks(0);
    // `[<ffffffff81000000>] `, `[ffff8880]`, `[<0x1234>]`, at most twice.
    for _ in 0..2 {
        if b.get(i) != Some(&b'[') {
            break;
        }
        i += 1;
        i += usize::from(b.get(i) == Some(&b'<'));
        if b[i..].starts_with(b"0x") {
            i += 2;
        }
        let digits = hex(i);
        if digits == 0 {
            return None;
        }
        i += digits;
        i += usize::from(b.get(i) == Some(&b'>'));
        if b.get(i) != Some(&b']') {
            return None;
        }
        i += 1 + blanks(i + 1);
    }
    let unreliable = b.get(i) == Some(&b'?');
    if unreliable {
        let after = blanks(i + 1);
        if after == 0 {
            return None;
        }
        i += 1 + after;
    }
    if !b
        .get(i)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    {
        return None;
    }
    let start = i;
    i += 1 + b[i + 1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'$'))
        .count();
    let name = &text[start..i];
    if !b[i..].starts_with(b"+0x") {
        return None;
    }
    let digits = hex(i + 3);
    if digits == 0 || !b[i + 3 + digits..].starts_with(b"/0x") || hex(i + 6 + digits) == 0 {
        return None;
    }
    Some((unreliable, name))
}

/// A stack frame's function, unless the frame is marked unreliable (`? `).
pub fn frame(text: &str) -> Option<&str> {
    // `? func` (x86) and `func (unreliable)` (powerpc) are guesses.
    let guessed = || text.trim_end().ends_with("(unreliable)");
    if let Some((unreliable, name)) = plain_frame(text) {
        return (!unreliable && !guessed()).then(|| clean(name));
    }
    if !may_be_frame(text) {
        return None;
    }
    let c = FRAME.captures(text)?;
    if c.get(1).is_some() || guessed() {
        return None;
    }
    c.get(2)
        .or_else(|| c.get(3))
        .or_else(|| c.get(4))
        .map(|m| clean(m.as_str()))
}

/// Is this line a stack frame (reliable or not)?
pub fn is_frame(text: &str) -> bool {
    plain_frame(text).is_some() || (may_be_frame(text) && FRAME.is_match(text))
}

/// The function of a register dump's program counter line.
pub fn pc(text: &str) -> Option<&str> {
    // Every [`PC`] shape starts with one of these letters.
    let first = text.trim_start().bytes().next()?;
    if !matches!(first, b'R' | b'E' | b'N' | b'I' | b'p' | b'P' | b'e') {
        return None;
    }
    let c = PC.captures(text)?;
    c.get(1).map(|m| clean(m.as_str()))
}

/// A user-space register dump (`RIP: 0033:`): the kernel stack ended.
pub fn is_user_pc(text: &str) -> bool {
    text.trim_start().starts_with("RIP: 0033:")
}

/// Does this line open a stack trace (`Call Trace:`, `Call trace:`,
/// `Backtrace:`, kmemleak's `backtrace:` / `backtrace (crc ..):`)?
pub fn is_trace_start(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("Call Trace")
        || t.starts_with("Call trace:")
        || t.starts_with("Backtrace:")
        || t.starts_with("backtrace:")
        || t.starts_with("backtrace (")
        || t.starts_with("stack backtrace:")
}

/// The frames of the first stack trace in `lines` (reliable frames only,
/// kernel part only: the walk stops at a user-space register dump).
/// Read lazily: a title needs the first frame that is not skipped, which
/// is usually one of the first few.
pub fn trace_frames<'a, 'l>(lines: &'l [&'a str]) -> impl Iterator<Item = &'a str> + 'l {
    let start = lines
        .iter()
        .position(|l| is_trace_start(l))
        .map_or(lines.len(), |start| start + 1);
    frames_from(&lines[start..])
}

/// The frames a title reads: those of the first stack trace, or, in a
/// report without a trace header (KFENCE's access stack under its first
/// line, ARM dumps of old kernels), those of its lines after the first.
pub fn report_frames<'a, 'l>(lines: &'l [&'a str]) -> impl Iterator<Item = &'a str> + 'l {
    let start = lines
        .iter()
        .position(|l| is_trace_start(l))
        .map_or(1, |start| start + 1);
    frames_from(lines.get(start..).unwrap_or_default())
}

/// Reliable frames of `lines` up to the end of the kernel stack.
pub fn frames_from<'a, 'l>(lines: &'l [&'a str]) -> impl Iterator<Item = &'a str> + 'l {
    lines
        .iter()
        .take_while(|line| !(is_user_pc(line) || line.trim_start().starts_with("---[ end")))
        .filter_map(|line| frame(line))
}

/// Frames where syscalls, work items, softirqs and faults dispatch into the
/// code that stalled; the frame just above one of them names the stall.
const STALL_ANCHORS: &[&str] = &[
    "process_one_work",
    "do_syscall_",
    "do_fast_syscall_",
    "netif_receive_skb",
    "do_softirq",
    "call_timer_fn",
    "_run_timers",
    "run_timer_softirq",
    "run_ksoftirqd",
    "smpboot_thread_fn",
    "^kthread$",
    "start_secondary",
    "cpu_startup_entry",
    "ret_from_fork",
    "^vfs_write$",
    "^vfs_read$",
    "vfs_iter_read",
    "vfs_iter_write",
    "do_iter_read",
    "do_iter_write",
    "^new_sync_read$",
    "^new_sync_write$",
    "vfs_ioctl",
    "ksys_ioctl",
    "^call_read_iter",
    "^call_write_iter",
    "do_iter_readv_writev",
    "mmap_region",
    "do_mmap",
    "do_dentry_open",
    "^sock_sendmsg",
    "^sock_recvmsg",
    "^__sock_release",
    "__sys_setsockopt",
    "sock_common_setsockopt",
    "^nfnetlink_rcv_msg",
    "^rtnetlink_rcv_msg",
    "handle_mm_fault",
    "__fput",
    "task_work_run",
    "exit_to_user",
    "smp_call_function",
];

/// Frames of the stall detector itself (the timer interrupt, RCU, the task
/// dump it prints) and of the scheduler a dumped task sits in.
const STALL_MACHINERY: &[&str] = &[
    "apic_timer_interrupt",
    "rcu",
    "sched_show_task",
    "dump_cpu_task",
    "__switch_to",
    "cond_resched",
    "schedule",
];

/// The function an RCU stall or soft lockup is "in": the interrupted kernel
/// code's frames (after the timer interrupt that detected it; a nested
/// exception's `RIP:` restarts the list), and of those the one just above
/// the first dispatch anchor.
pub fn stall_function<'a>(lines: &[&'a str]) -> Option<&'a str> {
    let start = lines
        .iter()
        .position(|l| l.contains("apic_timer_interrupt"))
        .or_else(|| lines.iter().position(|l| is_trace_start(l)))?;
    let mut frames: Vec<&str> = Vec::new();
    for line in &lines[start + 1..] {
        if is_user_pc(line) || line.trim_start().starts_with("</TASK>") {
            break;
        }
        if let Some(f) = pc(line) {
            frames.clear();
            frames.push(f);
        } else if let Some(f) = frame(line) {
            frames.push(f);
        }
    }
    let frames: Vec<&str> = frames
        .into_iter()
        .filter(|f| !generic(f) && !skipped(f, STALL_MACHINERY))
        .collect();
    // A stack that starts at a dispatch anchor (a task dump of a worker
    // between items) does not show the code that stalled: no function.
    let mut prev = None;
    for f in &frames {
        if skipped(f, STALL_ANCHORS) {
            return prev;
        }
        prev = Some(*f);
    }
    frames.first().copied()
}

/// The function a hung task is blocked in: rtnl_lock and synchronize_rcu
/// hangs are grouped by that call; otherwise the first frame that is not
/// scheduling, locking or waiting machinery.
pub fn hung_task_function<'a>(lines: &[&'a str]) -> Option<&'a str> {
    let frames: Vec<&str> = trace_frames(lines).collect();
    for f in &frames {
        if f.contains("rtnl_lock") {
            return Some("rtnl_lock");
        }
        if ["synchronize_rcu", "synchronize_srcu", "synchronize_net"]
            .iter()
            .any(|a| f.contains(a))
        {
            return Some("synchronize_rcu");
        }
    }
    const WAITING: &[&str] = &[
        "sched",
        "_lock",
        "_slowlock",
        "down",
        "rwsem",
        "completion",
        "kthread",
        "wait",
        "synchronize",
        "context_switch",
        "__switch_to",
        "cancel_delayed_work",
        "rcu_barrier",
        // Where every kernel thread starts (arm, mips, powerpc).
        "kernel_thread_helper",
        "ret_from_kernel_thread",
        "ret_from_fork",
    ];
    frames
        .into_iter()
        .find(|f| !generic(f) && !skipped(f, WAITING))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_frames_with_a_discriminator_and_xen_register_dumps() {
        assert_eq!(
            frame(" vma_merge (mm/mmap.c:952 (discriminator 1))"),
            Some("vma_merge")
        );
        assert_eq!(
            pc("RIP: e030:xen_hypercall_sched_op+0xa/0x20"),
            Some("xen_hypercall_sched_op")
        );
    }

    #[test]
    fn a_stall_names_the_interrupted_code_not_the_detector_or_scheduler() {
        // 4.19 on Xen: the detector's frames, then the interrupted code's RIP.
        let xen = [
            "Call Trace:",
            " <IRQ>",
            " sched_show_task.cold.14+0xa6/0xd3",
            " rcu_check_callbacks.cold.35+0x416/0x43c",
            " update_process_times+0x28/0x60",
            " </IRQ>",
            "RIP: e030:xen_hypercall_sched_op+0xa/0x20",
        ];
        assert_eq!(stall_function(&xen), Some("xen_hypercall_sched_op"));
        // A task dump of a worker between items shows no stalled code.
        let worker = [
            "Call Trace:",
            " <TASK>",
            " __schedule+0x246/0x5c0",
            " __cond_resched+0x33/0x50",
            " process_one_work+0x23c/0x3f0",
            " worker_thread+0x50/0x3e0",
        ];
        assert_eq!(stall_function(&worker), None);
        let idle = ["Call trace:", "[<ffffffc000086ed4>] __switch_to+0xd4/0xf8"];
        assert_eq!(stall_function(&idle), None);
    }

    #[test]
    fn reads_every_frame_format() {
        assert_eq!(frame("  dump_stack_lvl+0xcd/0x134"), Some("dump_stack_lvl"));
        assert_eq!(frame(" ? crc16+0xcb/0xe0"), None);
        assert_eq!(
            frame(" [<ffffffff839560e2>] schedule+0x92/0x1b0"),
            Some("schedule")
        );
        assert_eq!(
            frame("    [<000000005cb5aa0e>] kmem_cache_alloc_node_trace+0x1d3/0x3f0"),
            Some("kmem_cache_alloc_node_trace")
        );
        assert_eq!(
            frame("    lookup_or_create_module_kobject kernel/params.c:774 [inline]"),
            Some("lookup_or_create_module_kobject")
        );
        assert_eq!(
            frame("[<80c1e5e8>] (__schedule) from [<80c1eb20>] (schedule+0x60/0xdc)"),
            Some("__schedule")
        );
        assert_eq!(
            frame(
                "[<7f0d0248>] (cfg_set [wilc_sdio]) from [<7f0d04ac>] (x+0xc8/0x258 [wilc_sdio])"
            ),
            Some("cfg_set")
        );
        assert_eq!(
            frame(" <IRQ>  [<ffffffff816ecb37>] _sched_show_task+0x31a/0x325"),
            Some("_sched_show_task")
        );
        assert_eq!(
            frame("  lkdtm_ARRAY_BOUNDS.cold.2+0x3c1/0x52e [lkdtm]"),
            Some("lkdtm_ARRAY_BOUNDS")
        );
        assert_eq!(
            frame(" __schedule from schedule+0x20/0xac"),
            Some("__schedule")
        );
        assert_eq!(
            frame("dump_stack_lvl (lib/dump_stack.c:107) "),
            Some("dump_stack_lvl")
        );
        assert_eq!(
            frame("[c7363c70] [c0631338] schedule+0x30/0xbc (unreliable)"),
            None
        );
        assert_eq!(frame("CPU: 1 PID: 48 Comm: kworker/u5:0"), None);
        assert_eq!(frame("Hardware name: QEMU Standard PC"), None);
    }

    #[test]
    fn reads_program_counters() {
        assert_eq!(pc("RIP: 0010:klist_next+0x49/0x510"), Some("klist_next"));
        assert_eq!(pc("pc : clear_page+0x14/0x28"), Some("clear_page"));
        assert_eq!(
            pc("epc : io_ring_exit_work+0x44c/0xbc0"),
            Some("io_ring_exit_work")
        );
        assert_eq!(pc("LR is at gsmld_receive_buf+0xc0/0x15c"), None);
        assert_eq!(pc("RIP: 0033:0x7fc4826295e9"), None);
    }

    #[test]
    fn cleans_names() {
        assert_eq!(clean("__se_sys_mremap"), "mremap");
        assert_eq!(clean("do_ipv6_setsockopt.isra.7"), "do_ipv6_setsockopt");
        assert_eq!(
            clean("print_circular_bug.isra.40.cold.57"),
            "print_circular_bug"
        );
    }

    #[test]
    fn skip_patterns_anchor_as_documented() {
        assert!(skipped("down", &["^down$"]));
        assert!(!skipped("shutdown", &["^down$"]));
        assert!(SKIP.is_match("__asan_load8"));
        assert!(SKIP.is_match("crc16"));
        assert!(!SKIP.is_match("ext4_group_desc_csum"));
    }
}
