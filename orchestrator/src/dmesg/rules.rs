//! The table of report formats: how a report starts, what kind it is, how far
//! it extends and how its title is built. Table-driven in the manner of
//! syzkaller's `pkg/report/linux.go`; the order matters (first match wins),
//! so specific formats (lockdep's `WARNING: possible circular locking ...`)
//! come before general ones (`WARNING: CPU: ...`).

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::{Regex, RegexSet};

use super::stack;
use super::Kind;

/// Where a report's lines end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// The start line is the whole report.
    Line,
    /// An oops-style report: header lines, then a stack trace (opened by
    /// `Call Trace:` or by the first frame); the report ends at the first
    /// line after the trace that is not part of an oops dump.
    Trace,
    /// Free text first (lockdep chains, KASAN descriptions): only a
    /// `Call Trace:`-style line opens the trace, frames alone do not.
    Text,
    /// Like [`Body::Text`], and a `=====` banner line closes the report
    /// (KASAN, UBSAN print one at each end).
    Banner,
}

/// Where the function in a title comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The start line's `func` capture, then the program counter line, then
    /// the stack trace.
    Start,
    /// The program counter line (`RIP:`, `pc :`), then the stack trace.
    Pc,
    /// The stack trace.
    Trace,
    /// The first N of lockdep's lock descriptions (`..., at: func+0x..`),
    /// then the trace.
    LockAt(usize),
    /// The interrupted code of a stall (see [`stack::stall_function`]).
    Stall,
    /// The blocked task's stack (see [`stack::hung_task_function`]).
    HungTask,
    /// The work function of the first `Workqueue: <name> <function>` line
    /// (a workqueue lockup names the work item it is stuck on).
    Workqueue,
}

/// How a title is built. `{1}`, `{2}` ... are the start line's captures.
#[derive(Debug, Clone, Copy)]
pub enum Title {
    /// A template.
    Text(&'static str),
    /// A template whose numbers are replaced by `NUM`, so that one bug has
    /// one title however its numbers vary.
    Numbers(&'static str),
    /// A template with `{func}`: the first function from `from` that matches
    /// neither the common skip list nor `skip`. Without one, ` in {func}` is
    /// dropped.
    In {
        fmt: &'static str,
        from: From,
        skip: &'static [&'static str],
    },
    /// `KASAN: <type> <Read|Write> in <func>`.
    Kasan,
    /// `KTAP: not ok <suite>/<test>`: the suite is the `# Subtest:` open at
    /// the test's indentation (tracked by the walk over the log).
    Ktap,
}

/// Whether a start line may continue a report that is already open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follows {
    /// Always starts its own report.
    Never,
    /// Printed as part of other reports too (`Kernel panic - not syncing`
    /// after an oops, `invalid opcode` after `kernel BUG at`): when a report
    /// is open, the line belongs to it.
    Consequence,
}

/// One report format.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub kind: Kind,
    /// Regex matched against the line's text (after the transport prefix).
    pub start: &'static str,
    /// A regex that, when it also matches, means the line is not a report.
    pub unless: Option<&'static str>,
    pub title: Title,
    pub body: Body,
    pub follows: Follows,
    /// A report of this rule takes in a start of `Kind` that comes within
    /// its first N lines: the message of `WARN(cond, "msg")` is printed
    /// before the `WARNING:` line, syzkaller's `BUG: memory leak` before
    /// kmemleak's `unreferenced object`.
    pub absorbs: Option<(Kind, usize)>,
}

const fn rule(kind: Kind, start: &'static str, title: Title, body: Body) -> Rule {
    Rule {
        kind,
        start,
        unless: None,
        title,
        body,
        follows: Follows::Never,
        absorbs: None,
    }
}

const fn consequence(mut r: Rule) -> Rule {
    r.follows = Follows::Consequence;
    r
}

const fn absorbing(mut r: Rule, kind: Kind, within: usize) -> Rule {
    r.absorbs = Some((kind, within));
    r
}

const fn unless(mut r: Rule, pattern: &'static str) -> Rule {
    r.unless = Some(pattern);
    r
}

const fn in_func(fmt: &'static str, from: From, skip: &'static [&'static str]) -> Title {
    Title::In { fmt, from, skip }
}

const NONE: &[&str] = &[];
const SKIP_RCU: &[&str] = &[
    "rcu", "kmem", "slab", "kmalloc", "vmalloc", "kcalloc", "kzalloc",
];

/// Every format, most specific first.
pub static RULES: &[Rule] = &[
    // --- lockdep: its reports start with `WARNING:` but are not WARN()s.
    rule(
        Kind::Lockdep,
        r"^(?:\[ )?(?:WARNING|INFO): possible (?:circular locking dependency|recursive locking|irq lock inversion dependency) detected",
        in_func(
            "possible deadlock in {func}",
            From::LockAt(2),
            stack::SKIP_LOCKDEP,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^(?:\[ )?(?:WARNING|INFO): .*-safe -> .*-unsafe lock order detected",
        in_func(
            "possible deadlock in {func}",
            From::LockAt(1),
            stack::SKIP_LOCKDEP,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^(?:\[ )?(?:WARNING|INFO): inconsistent lock state",
        in_func(
            "inconsistent lock state in {func}",
            From::LockAt(1),
            stack::SKIP_LOCKDEP,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^(?:\[ )?(?:WARNING|INFO): suspicious RCU usage",
        in_func(
            "WARNING: suspicious RCU usage in {func}",
            From::Trace,
            SKIP_RCU,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^(?:WARNING|BUG): bad unlock balance detected!",
        in_func(
            "WARNING: bad unlock balance in {func}",
            From::LockAt(1),
            NONE,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^(?:WARNING|BUG): held lock freed!",
        in_func("WARNING: held lock freed in {func}", From::LockAt(1), NONE),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^(?:WARNING|BUG): lock held when returning to user space!",
        in_func(
            "WARNING: lock held when returning to user space in {func}",
            From::LockAt(1),
            NONE,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^(?:\[ )?BUG: Invalid wait context",
        in_func(
            "BUG: invalid wait context in {func}",
            From::Trace,
            &["lock_sock", "release_sock"],
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^(?:WARNING|BUG): .*still has locks held!",
        in_func("BUG: still has locks held in {func}", From::LockAt(1), NONE),
        Body::Text,
    ),
    // DEBUG_LOCKS_WARN_ON() inside lockdep itself.
    rule(
        Kind::Lockdep,
        r"^WARNING: .*kernel/locking/lockdep\.c.*lock_",
        in_func(
            "WARNING: locking bug in {func}",
            From::Pc,
            &["lock_sock", "release_sock"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Lockdep,
        r"^WARNING: Nested lock was not taken",
        in_func(
            "WARNING: nested lock was not taken in {func}",
            From::Trace,
            NONE,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^INFO: trying to register non-static key",
        in_func(
            "INFO: trying to register non-static key in {func}",
            From::Trace,
            &["stack", "lock", "IRQ"],
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        r"^BUG: (MAX_LOCKDEP_\w+|MAX_STACK_TRACE_ENTRIES) too low!",
        Title::Text("BUG: {1} too low!"),
        Body::Trace,
    ),
    // --- sanitizers.
    rule(
        Kind::Kasan,
        r"^BUG: KASAN: double-free or invalid-free in (?P<func>[\w.$]+)",
        in_func(
            "KASAN: invalid-free in {func}",
            From::Start,
            stack::SKIP_FREE,
        ),
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        r"^BUG: KASAN: (double-free|invalid-free) in (?P<func>[\w.$]+)",
        in_func("KASAN: {1} in {func}", From::Start, stack::SKIP_FREE),
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        r"^BUG: KASAN: ([a-z0-9-]+) in (?P<func>[\w.$]+)",
        Title::Kasan,
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        r"^BUG: KASAN: ([a-z0-9 -]+)",
        Title::Text("KASAN: {1}"),
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        r"^BUG: KFENCE: ([a-z0-9 -]+?) in (?P<func>[\w.$]+)",
        in_func("KFENCE: {1} in {func}", From::Start, NONE),
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        r"^BUG: KMSAN: ([a-z0-9-]+) in (?P<func>[\w.$]+)",
        in_func("KMSAN: {1} in {func}", From::Start, NONE),
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        r"^BUG: KCSAN: (.+?)\s*$",
        Title::Text("KCSAN: {1}"),
        Body::Banner,
    ),
    rule(
        Kind::Ubsan,
        r"^UBSAN: Undefined behaviour in",
        in_func(
            "UBSAN: undefined-behaviour in {func}",
            From::Trace,
            stack::SKIP_UBSAN,
        ),
        Body::Banner,
    ),
    rule(
        Kind::Ubsan,
        r"^UBSAN: ([a-z0-9-]+) in",
        in_func("UBSAN: {1} in {func}", From::Trace, stack::SKIP_UBSAN),
        Body::Banner,
    ),
    // --- leaks: what kcycle is for.
    absorbing(
        rule(
            Kind::Kmemleak,
            r"^BUG: memory leak",
            in_func("memory leak in {func}", From::Trace, stack::SKIP_ALLOC),
            Body::Trace,
        ),
        Kind::Kmemleak,
        2,
    ),
    rule(
        Kind::Kmemleak,
        r"^unreferenced object 0x[0-9a-f]+ \(size \d+\):",
        in_func("memory leak in {func}", From::Trace, stack::SKIP_ALLOC),
        Body::Trace,
    ),
    rule(
        Kind::Kmemleak,
        r"^kmemleak: \d+ new suspected memory leaks",
        Title::Text("kmemleak: new suspected memory leaks"),
        Body::Line,
    ),
    absorbing(
        rule(
            Kind::SlabLeak,
            r"^kmem_cache_destroy (\S+): Slab cache still has objects",
            Title::Text("kmem_cache_destroy {1}: Slab cache still has objects"),
            Body::Trace,
        ),
        Kind::Warning,
        3,
    ),
    // SLUB debug's report of the same leak (printed first when slub_debug is on).
    rule(
        Kind::SlabLeak,
        r"^BUG (\S+) \((?:Not tainted|Tainted:[^)]*)\): Objects remaining in ",
        Title::Text("kmem_cache_destroy {1}: Slab cache still has objects"),
        Body::Trace,
    ),
    // The SLAB allocator's wording (before SLAB was removed in 6.8).
    rule(
        Kind::SlabLeak,
        r"^slab error in kmem_cache_destroy\(\): cache `([^']+)': Can't free all objects",
        Title::Text("kmem_cache_destroy {1}: Slab cache still has objects"),
        Body::Trace,
    ),
    // --- duplicate debugfs/sysfs entries: the symptom of a leak one load earlier.
    rule(
        Kind::DebugfsDuplicate,
        r"^debugfs: Directory '(.*)' with parent '(.*)' already present!",
        Title::Text("debugfs: duplicate '{1}' in '{2}'"),
        Body::Line,
    ),
    rule(
        Kind::DebugfsDuplicate,
        r"^debugfs: File '(.*)' in directory '(.*)' already present!",
        Title::Text("debugfs: duplicate '{1}' in '{2}'"),
        Body::Line,
    ),
    rule(
        Kind::DebugfsDuplicate,
        r"^debugfs: '(.*)' already exists in '(.*)'",
        Title::Text("debugfs: duplicate '{1}' in '{2}'"),
        Body::Line,
    ),
    // Before 4.15 sysfs_warn_dup() also WARN()ed: the WARNING belongs to it.
    absorbing(
        rule(
            Kind::SysfsDuplicate,
            r"^sysfs: cannot create duplicate filename '(.*)'",
            Title::Text("sysfs: cannot create duplicate filename '{1}'"),
            Body::Trace,
        ),
        Kind::Warning,
        3,
    ),
    // --- selftests.
    rule(
        Kind::SelftestFail,
        r"^i915/(\S+): (\S+) failed with error (-?\d+)",
        Title::Text("i915/{1}: {2} failed with error {3}"),
        Body::Line,
    ),
    rule(
        Kind::SelftestFail,
        r"^i915/(\S+): setup failed for (\S+)",
        Title::Text("i915/{1}: setup failed for {2}"),
        Body::Line,
    ),
    unless(
        rule(
            Kind::SelftestFail,
            r"^\s*not ok \d+(?: -)? ([^#]*?)\s*(?:#.*)?$",
            Title::Ktap,
            Body::Line,
        ),
        r"#\s*(?i:skip|todo)\b",
    ),
    // --- BUG: reports.
    // Rust's panic handler (rust/kernel/lib.rs) prints the panic, then BUG()s:
    // the `kernel BUG at rust/helpers/bug.c` that follows belongs to it.
    absorbing(
        rule(
            Kind::Bug,
            r"^rust_kernel: panicked at (.+?):\d+:\d+",
            Title::Text("Rust panic at {1}"),
            Body::Trace,
        ),
        Kind::Bug,
        6,
    ),
    rule(
        Kind::Bug,
        r"^kernel BUG at lib/list_debug\.c",
        in_func("BUG: corrupted list in {func}", From::Pc, &["list_"]),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^kernel BUG at mm/usercopy\.c",
        in_func(
            "BUG: bad usercopy in {func}",
            From::Pc,
            &["usercopy", "__check"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^kernel BUG at (\S+?)!?\s*$",
        in_func("kernel BUG in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^BUG: sleeping function called from invalid context",
        in_func(
            "BUG: sleeping function called from invalid context in {func}",
            From::Trace,
            stack::SKIP_SCHED,
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^BUG: scheduling while atomic",
        in_func(
            "BUG: scheduling while atomic in {func}",
            From::Trace,
            stack::SKIP_SCHED,
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^(?:watchdog: )?BUG: soft lockup",
        in_func("BUG: soft lockup in {func}", From::Stall, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^(?:NMI )?(?:watchdog: )?Watchdog detected hard LOCKUP",
        Title::Text("BUG: hard lockup"),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
        in_func(
            "BUG: {1} {2} in {func}",
            From::Trace,
            &["spin_", "_lock", "_unlock"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^BUG: using (\w+)\(\) in preemptible",
        in_func(
            "BUG: using {1}() in preemptible code in {func}",
            From::Trace,
            &["preempt", "debug_", "processor_id", "this_cpu"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^BUG: workqueue lockup",
        in_func("BUG: workqueue lockup in {func}", From::Workqueue, NONE),
        Body::Text,
    ),
    rule(
        Kind::Bug,
        r"^BUG: Bad page (state|map)",
        Title::Text("BUG: Bad page {1}"),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^BUG: Dentry .* still in use \(\d+\) \[unmount of (\S+) ",
        Title::Text("BUG: Dentry still in use [unmount of {1}]"),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^BUG: .*stack guard page was hit",
        in_func("BUG: stack guard page was hit in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        r"^BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access)",
        in_func("BUG: unable to handle page fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        r"^(?:BUG: (?:unable to handle kernel|kernel|Kernel) NULL pointer dereference|Unable to handle kernel NULL pointer dereference)",
        in_func(
            "BUG: unable to handle kernel NULL pointer dereference in {func}",
            From::Pc,
            NONE,
        ),
        Body::Trace,
    ),
    // The rest of the line lost to an interleaved printk: still an oops.
    rule(
        Kind::Oops,
        r"^BUG: (?:unable to handle kernel|Unable to handle kernel)",
        in_func("BUG: unable to handle kernel in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        r"^Unable to handle kernel (?:paging request|access to user memory|execute from non-executable memory|read from unreadable memory|write to read-only memory)",
        in_func("BUG: unable to handle page fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^BUG (\S+) \((?:Not tainted|Tainted:[^)]*)\): (.+?)\s*$",
        Title::Numbers("BUG: {2} in {1}"),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        r"^BUG: (.+?)\s*$",
        Title::Numbers("BUG: {1}"),
        Body::Trace,
    ),
    // --- oopses.
    rule(
        Kind::Oops,
        r"^(?:Oops: )?general protection fault",
        in_func("general protection fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        r"^(?:Oops: )?stack segment: ",
        in_func("stack segment fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        r"^(?:Oops: )?divide error: ",
        in_func("divide error in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    consequence(rule(
        Kind::Oops,
        r"^(?:Oops: )?invalid opcode: ",
        in_func("invalid opcode in {func}", From::Pc, NONE),
        Body::Trace,
    )),
    consequence(rule(
        Kind::Oops,
        r"^Oops: [0-9a-f]+ \[#\d+\]",
        in_func("Oops in {func}", From::Pc, NONE),
        Body::Trace,
    )),
    consequence(rule(
        Kind::Oops,
        r"^Internal error: .*: [0-9a-f]+ \[#\d+\]",
        in_func("Internal error in {func}", From::Pc, NONE),
        Body::Trace,
    )),
    // --- stalls and hangs.
    rule(
        Kind::HungTask,
        r"^INFO: task \S+ blocked (?:in I/O wait )?for more than \d+ seconds",
        in_func("INFO: task hung in {func}", From::HungTask, NONE),
        Body::Trace,
    ),
    rule(
        Kind::HungTask,
        r"^INFO: task .* can't die for more than",
        in_func("INFO: task can't die in {func}", From::Trace, &["schedule"]),
        Body::Trace,
    ),
    rule(
        Kind::RcuStall,
        r"^(?:rcu: )?INFO: rcu_(?:preempt|sched|bh)(?:_state)? (?:self-)?detected(?: expedited)? stall",
        in_func("INFO: rcu detected stall in {func}", From::Stall, NONE),
        Body::Trace,
    ),
    rule(
        Kind::RcuStall,
        r"^(?:rcu: )?INFO: (rcu_tasks\w*) detected stall",
        Title::Text("INFO: {1} detected stall"),
        Body::Trace,
    ),
    // --- panics: usually the last words of another report.
    consequence(rule(
        Kind::Panic,
        r"^Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: (?P<func>[\w.$]+)",
        in_func(
            "kernel panic: stack is corrupted in {func}",
            From::Start,
            NONE,
        ),
        Body::Trace,
    )),
    consequence(rule(
        Kind::Panic,
        r"^Kernel panic - not syncing: Attempted to kill init!",
        Title::Text("kernel panic: Attempted to kill init!"),
        Body::Trace,
    )),
    consequence(rule(
        Kind::Panic,
        r"^Kernel panic - not syncing: (.+?)\s*$",
        Title::Numbers("kernel panic: {1}"),
        Body::Trace,
    )),
    rule(
        Kind::Panic,
        r"^PANIC: double fault",
        in_func("PANIC: double fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    // --- WARN()s of kernel checkers: named after the check, "in" the caller.
    rule(
        Kind::Warning,
        r"^WARNING: .*lib/refcount\.c.* refcount_",
        in_func(
            "WARNING: refcount bug in {func}",
            From::Pc,
            &["refcount", "kobject_"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        r"^WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check)",
        in_func(
            "WARNING: ODEBUG bug in {func}",
            From::Pc,
            &[
                "debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "kmem_", "slab_",
                "kfree", "vunmap", "vfree", "__free_", "kobject_",
            ],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        r"^WARNING: .*lib/kobject\.c.* kobject_",
        in_func("WARNING: kobject bug in {func}", From::Pc, &["kobject_"]),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        r"^WARNING: .*mm/usercopy\.c.* usercopy_",
        in_func(
            "WARNING: bad usercopy in {func}",
            From::Pc,
            &["usercopy", "__check"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        r"^WARNING: .*lib/list_debug\.c",
        in_func("WARNING: corrupted list in {func}", From::Pc, &["list_"]),
        Body::Trace,
    ),
    // --- WARN(): every spelling of the first line since 2.6.
    rule(
        Kind::Warning,
        r"^WARNING: CPU: \d+ PID: \d+ at (?:\S+:\d+ )?(?P<func>[\w.$]+)\+0x",
        in_func("WARNING in {func}", From::Start, stack::SKIP_WARNING),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        r"^WARNING: (?:\[.*\] )?(?:\S+:\d+ )?at (?P<func>[\w.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[\w-]+\])?,? CPU#\d+",
        in_func("WARNING in {func}", From::Start, stack::SKIP_WARNING),
        Body::Trace,
    ),
    // The 6.19+ spelling without a function (file:line and a raw address).
    rule(
        Kind::Warning,
        r"^WARNING: (?:\[.*\] )?\S+:\d+ at 0x[0-9a-f]+,? CPU#\d+",
        in_func("WARNING in {func}", From::Pc, stack::SKIP_WARNING),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        r"^WARNING: at (?:\S+:\d+ )?(?P<func>[\w.$]+)(?:\+0x|\(\))",
        in_func("WARNING in {func}", From::Start, stack::SKIP_WARNING),
        Body::Trace,
    ),
];

/// The compiled table: one pass of a [`RegexSet`] finds the candidates of a
/// line; the first candidate in table order whose `unless` does not match wins.
pub struct Table {
    keywords: AhoCorasick,
    set: RegexSet,
    starts: Vec<Regex>,
    unless: Vec<Option<Regex>>,
}

/// The compiled [`RULES`].
pub static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let set = RegexSet::new(RULES.iter().map(|r| r.start)).expect("static regex set");
    let starts = RULES
        .iter()
        .map(|r| Regex::new(r.start).expect("static regex"))
        .collect();
    let unless = RULES
        .iter()
        .map(|r| r.unless.map(|u| Regex::new(u).expect("static regex")))
        .collect();
    let keywords = AhoCorasick::new(KEYWORDS).expect("static keywords");
    Table {
        keywords,
        set,
        starts,
        unless,
    }
});

/// Keywords one of which every start line contains: lines without any are
/// skipped before the regex set runs (most log lines).
const KEYWORDS: &[&str] = &[
    "WARNING",
    "INFO:",
    "BUG",
    "UBSAN",
    "unreferenced object",
    "kmemleak",
    "kmem_cache_destroy",
    "slab error",
    "debugfs:",
    "sysfs:",
    "i915/",
    "not ok",
    "Oops",
    "fault",
    "opcode",
    "stack segment",
    "error",
    "Unable to handle",
    "Watchdog",
    "panic",
    "PANIC",
];

impl Table {
    /// The index into [`RULES`] of the format `text` starts, if any.
    pub fn start(&self, text: &str) -> Option<usize> {
        if !self.keywords.is_match(text) {
            return None;
        }
        let matches = self.set.matches(text);
        matches.into_iter().find(|&i| {
            self.unless[i]
                .as_ref()
                .is_none_or(|unless| !unless.is_match(text))
        })
    }

    /// The captures of rule `index` on its start line.
    pub fn captures<'t>(&self, index: usize, text: &'t str) -> Option<regex::Captures<'t>> {
        self.starts[index].captures(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles() {
        assert_eq!(TABLE.starts.len(), RULES.len());
    }

    #[test]
    fn every_start_line_contains_a_keyword() {
        // Lines from the kernel sources (and the rules' own examples).
        let starts = [
            "WARNING: CPU: 1 PID: 1 at mm/slab_common.c:502 kmem_cache_destroy+0x1/0x2",
            "kmem_cache_destroy i915_vma: Slab cache still has objects",
            "debugfs: Directory 'x' with parent 'slab' already present!",
            "debugfs: 'x' already exists in 'y'",
            "sysfs: cannot create duplicate filename '/kernel/slab/x'",
            "slab error in kmem_cache_destroy(): cache `x': Can't free all objects",
            "i915/i915_mock_selftests: mock_vma failed with error -22",
            "    not ok 3 test_x",
            "Kernel panic - not syncing: Fatal exception",
            "PANIC: double fault, error_code: 0x0",
            "Internal error: Oops: 96000005 [#1] SMP",
            "Unable to handle kernel paging request at virtual address 1",
            "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
            "divide error: 0000 [#1] SMP",
            "stack segment: 0000 [#1] SMP",
        ];
        for s in starts {
            assert!(TABLE.start(s).is_some(), "no rule for {s:?}");
        }
    }

    #[test]
    fn ktap_skips_are_not_failures() {
        assert!(TABLE.start("not ok 1 test_x # SKIP no hardware").is_none());
        assert!(TABLE.start("    not ok 2 - test_y # TODO later").is_none());
        assert!(TABLE.start("ok 1 test_x").is_none());
    }
}
