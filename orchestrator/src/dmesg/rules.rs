//! The table of report formats: how a report starts, what kind it is, how far
//! it extends and how its title is built. Table-driven in the manner of
//! syzkaller's `pkg/report/linux.go`; the order matters (first match wins),
//! so specific formats (lockdep's `WARNING: possible circular locking ...`)
//! come before general ones (`WARNING: CPU: ...`).

use std::cell::Cell;
use std::sync::{LazyLock, OnceLock};

use aho_corasick::{packed, AhoCorasick, AhoCorasickKind};
use regex::Regex;
use regex_automata::{meta, Anchored, Input};

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
    /// The symbol (`func+0x../0x..`) right after `marker` in the first line
    /// that has it (a report that names its culprit, like `caller is`), then
    /// the stack trace.
    After(&'static str),
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
    /// `KTAP: not ok <suite>/<test>` from capture 1: the suite is the
    /// `# Subtest:` open at the test's indentation, or kunit.py's suite
    /// banner (tracked by the walk over the log). `pending`: a failed
    /// expectation, which the test's own `not ok` replaces when it comes.
    Ktap { pending: bool },
    /// A template filled from the first report line `regex` matches (the
    /// message a `WARNING:` of a known function printed with it), or the
    /// fallback text without one.
    Find {
        regex: &'static str,
        fmt: &'static str,
        fallback: &'static str,
    },
}

/// What a report is about, by name: the duplicated path or the leaked
/// cache, so the runner can match it to what a module left behind.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    /// A template of the start line's captures.
    Start(&'static str),
    /// A template of the captures of the first report line `regex` matches.
    Find(&'static str, &'static str),
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
    /// The literal text a start line begins with (one of them): the
    /// prefilter looks for these, and the start regex is built as
    /// `^(?:keyword|...)` + [`Rule::start`], so no rule can start without
    /// its keyword.
    pub keywords: &'static [&'static str],
    /// Regex of the rest of the start line, after the keyword.
    pub start: &'static str,
    /// A regex that, when it also matches, means the line is not a report.
    pub unless: Option<&'static str>,
    pub title: Title,
    pub body: Body,
    pub follows: Follows,
    /// A report of this rule takes in a start of one of these kinds (by
    /// another rule) that comes within its first N lines: the message of
    /// `WARN(cond, "msg")` is printed before the `WARNING:` line (after it
    /// before 4.11), syzkaller's `BUG: memory leak` before kmemleak's
    /// `unreferenced object`.
    pub absorbs: Option<(&'static [Kind], usize)>,
    /// The name the report is about, if any.
    pub subject: Option<Subject>,
}

const fn rule(
    kind: Kind,
    keywords: &'static [&'static str],
    start: &'static str,
    title: Title,
    body: Body,
) -> Rule {
    Rule {
        kind,
        keywords,
        start,
        unless: None,
        title,
        body,
        follows: Follows::Never,
        absorbs: None,
        subject: None,
    }
}

const fn consequence(mut r: Rule) -> Rule {
    r.follows = Follows::Consequence;
    r
}

const fn absorbing(mut r: Rule, kinds: &'static [Kind], within: usize) -> Rule {
    r.absorbs = Some((kinds, within));
    r
}

const fn unless(mut r: Rule, pattern: &'static str) -> Rule {
    r.unless = Some(pattern);
    r
}

const fn about(mut r: Rule, subject: Subject) -> Rule {
    r.subject = Some(subject);
    r
}

const fn in_func(fmt: &'static str, from: From, skip: &'static [&'static str]) -> Title {
    Title::In { fmt, from, skip }
}

const fn find(regex: &'static str, fmt: &'static str, fallback: &'static str) -> Title {
    Title::Find {
        regex,
        fmt,
        fallback,
    }
}

const NONE: &[&str] = &[];
const SKIP_RCU: &[&str] = &[
    "rcu", "kmem", "slab", "kmalloc", "vmalloc", "kcalloc", "kzalloc",
];
const W: &[&str] = &["WARNING: "];
const WI: &[&str] = &["WARNING: ", "INFO: "];
const WB: &[&str] = &["WARNING: ", "BUG: "];
const B: &[&str] = &["BUG: "];
const SYSFS_DUP: &str = r"sysfs: cannot create duplicate filename '(.*)'";
const PROC_DUP: &str = r"proc_dir_entry '(.*)' already registered";
const SLAB_LEFT: &str = r"kmem_cache_destroy (\S+): Slab cache still has objects";
/// `WARNING: CPU: 1 PID: 2 at path:line func+0x..` (to 6.18), `WARNING:
/// path:line at func+0x..` (6.19+), `WARNING: at path:line func+0x..()` (old):
/// what comes between the keyword and the function.
macro_rules! warn_in {
    ($func:literal) => {
        concat!(
            r"(?:CPU: \d+ PID: \d+ at \S+ |(?:\[.*\] )?\S+ at |at (?:\S+ )?)",
            $func,
            r"\+0x"
        )
    };
}

/// Every format, most specific first.
pub static RULES: &[Rule] = &[
    // --- lockdep: its reports start with `WARNING:` but are not WARN()s.
    rule(
        Kind::Lockdep,
        &["WARNING: possible ", "INFO: possible "],
        r"(?:circular locking dependency|recursive locking|irq lock inversion dependency) detected",
        in_func(
            "possible deadlock in {func}",
            From::LockAt(2),
            stack::SKIP_LOCKDEP,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        WI,
        r".*-safe -> .*-unsafe lock order detected",
        in_func(
            "possible deadlock in {func}",
            From::LockAt(1),
            stack::SKIP_LOCKDEP,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        WI,
        r"inconsistent lock state",
        in_func(
            "inconsistent lock state in {func}",
            From::LockAt(1),
            stack::SKIP_LOCKDEP,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        WI,
        r"suspicious RCU usage",
        in_func(
            "WARNING: suspicious RCU usage in {func}",
            From::Trace,
            SKIP_RCU,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        WB,
        r"bad unlock balance detected!",
        in_func(
            "WARNING: bad unlock balance in {func}",
            From::LockAt(1),
            NONE,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        WB,
        r"held lock freed!",
        in_func("WARNING: held lock freed in {func}", From::LockAt(1), NONE),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        WB,
        r"lock held when returning to user space!",
        in_func(
            "WARNING: lock held when returning to user space in {func}",
            From::LockAt(1),
            NONE,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        &["BUG: Invalid wait context"],
        "",
        in_func(
            "BUG: invalid wait context in {func}",
            From::Trace,
            &["lock_sock", "release_sock"],
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        WB,
        r".*still has locks held!",
        in_func("BUG: still has locks held in {func}", From::LockAt(1), NONE),
        Body::Text,
    ),
    // DEBUG_LOCKS_WARN_ON() inside lockdep itself.
    rule(
        Kind::Lockdep,
        W,
        r".*kernel/locking/lockdep\.c.*lock_",
        in_func(
            "WARNING: locking bug in {func}",
            From::Pc,
            &["lock_sock", "release_sock"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Lockdep,
        &["WARNING: Nested lock was not taken"],
        "",
        in_func(
            "WARNING: nested lock was not taken in {func}",
            From::Trace,
            NONE,
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        &["INFO: trying to register non-static key"],
        "",
        in_func(
            "INFO: trying to register non-static key in {func}",
            From::Trace,
            &["stack", "lock", "IRQ"],
        ),
        Body::Text,
    ),
    rule(
        Kind::Lockdep,
        B,
        r"(MAX_LOCKDEP_\w+|MAX_STACK_TRACE_ENTRIES) too low!",
        Title::Text("BUG: {1} too low!"),
        Body::Trace,
    ),
    // --- sanitizers.
    rule(
        Kind::Kasan,
        &["BUG: KASAN: "],
        r"double-free or invalid-free in (?P<func>[\w.$]+)",
        in_func(
            "KASAN: invalid-free in {func}",
            From::Start,
            stack::SKIP_FREE,
        ),
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        &["BUG: KASAN: "],
        r"(double-free|invalid-free) in (?P<func>[\w.$]+)",
        in_func("KASAN: {1} in {func}", From::Start, stack::SKIP_FREE),
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        &["BUG: KASAN: "],
        r"([a-z0-9-]+) in (?P<func>[\w.$]+)",
        Title::Kasan,
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        &["BUG: KASAN: "],
        r"([a-z0-9 -]+)",
        Title::Text("KASAN: {1}"),
        Body::Banner,
    ),
    // 4.0-4.3: `BUG: KASan: use after free in func+0x../0x.. at addr ...`.
    rule(
        Kind::Kasan,
        &["BUG: KASan: "],
        r"([a-z -]+?) in (?P<func>[\w.$]+)",
        Title::Kasan,
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        &["BUG: KFENCE: "],
        r"([a-z0-9 -]+?) in (?P<func>[\w.$]+)",
        in_func("KFENCE: {1} in {func}", From::Start, NONE),
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        &["BUG: KMSAN: "],
        r"([a-z0-9-]+) in (?P<func>[\w.$]+)",
        in_func("KMSAN: {1} in {func}", From::Start, NONE),
        Body::Banner,
    ),
    rule(
        Kind::Kasan,
        &["BUG: KCSAN: "],
        r"(.+?)\s*$",
        Title::Text("KCSAN: {1}"),
        Body::Banner,
    ),
    rule(
        Kind::Ubsan,
        &["UBSAN: Undefined behaviour in"],
        "",
        in_func(
            "UBSAN: undefined-behaviour in {func}",
            From::Trace,
            stack::SKIP_UBSAN,
        ),
        Body::Banner,
    ),
    rule(
        Kind::Ubsan,
        &["UBSAN: "],
        r"([a-z0-9-]+) in",
        in_func("UBSAN: {1} in {func}", From::Trace, stack::SKIP_UBSAN),
        Body::Banner,
    ),
    // --- leaks: what kcycle is for.
    absorbing(
        rule(
            Kind::Kmemleak,
            &["BUG: memory leak"],
            "",
            in_func("memory leak in {func}", From::Trace, stack::SKIP_ALLOC),
            Body::Trace,
        ),
        &[Kind::Kmemleak],
        2,
    ),
    rule(
        Kind::Kmemleak,
        &["unreferenced object 0x"],
        r"[0-9a-f]+ \(size \d+\):",
        in_func("memory leak in {func}", From::Trace, stack::SKIP_ALLOC),
        Body::Trace,
    ),
    rule(
        Kind::Kmemleak,
        &["kmemleak: "],
        r"\d+ new suspected memory leaks",
        Title::Text("kmemleak: new suspected memory leaks"),
        Body::Line,
    ),
    about(
        absorbing(
            rule(
                Kind::SlabLeak,
                &["kmem_cache_destroy "],
                r"(\S+): Slab cache still has objects",
                Title::Text("kmem_cache_destroy {1}: Slab cache still has objects"),
                Body::Trace,
            ),
            &[Kind::Warning, Kind::SlabLeak],
            3,
        ),
        Subject::Start("{1}"),
    ),
    // The WARN() of 5.17+ when its message was lost (grep, an interleaved
    // writer) or comes after it: still the leak, named by the message if any.
    about(
        absorbing(
            rule(
                Kind::SlabLeak,
                W,
                warn_in!("kmem_cache_destroy"),
                find(
                    SLAB_LEFT,
                    "kmem_cache_destroy {1}: Slab cache still has objects",
                    "kmem_cache_destroy: Slab cache still has objects",
                ),
                Body::Trace,
            ),
            &[Kind::SlabLeak],
            4,
        ),
        Subject::Find(SLAB_LEFT, "{1}"),
    ),
    // SLUB debug's report of the same leak (printed first when slub_debug is on).
    about(
        rule(
            Kind::SlabLeak,
            &["BUG "],
            r"(\S+) \((?:Not tainted|Tainted:[^)]*)\): Objects remaining in ",
            Title::Text("kmem_cache_destroy {1}: Slab cache still has objects"),
            Body::Trace,
        ),
        Subject::Start("{1}"),
    ),
    // The SLAB allocator's wording (before SLAB was removed in 6.8).
    about(
        rule(
            Kind::SlabLeak,
            &["slab error in kmem_cache_destroy(): cache `"],
            r"([^']+)': Can't free all objects",
            Title::Text("kmem_cache_destroy {1}: Slab cache still has objects"),
            Body::Trace,
        ),
        Subject::Start("{1}"),
    ),
    // --- duplicate debugfs/sysfs/proc/sysctl entries: the symptom of a
    // leak one load earlier.
    about(
        rule(
            Kind::DebugfsDuplicate,
            &["debugfs: Directory '"],
            r"(.*)' with parent '(.*)' already present!",
            Title::Text("debugfs: duplicate '{1}' in '{2}'"),
            Body::Line,
        ),
        Subject::Start("{2}/{1}"),
    ),
    about(
        rule(
            Kind::DebugfsDuplicate,
            &["debugfs: File '"],
            r"(.*)' in directory '(.*)' already present!",
            Title::Text("debugfs: duplicate '{1}' in '{2}'"),
            Body::Line,
        ),
        Subject::Start("{2}/{1}"),
    ),
    // 6.17+.
    about(
        rule(
            Kind::DebugfsDuplicate,
            &["debugfs: '"],
            r"(.*)' already exists in '(.*)'",
            Title::Text("debugfs: duplicate '{1}' in '{2}'"),
            Body::Line,
        ),
        Subject::Start("{2}/{1}"),
    ),
    // 5.3-6.16 without a parent: the debugfs root.
    about(
        rule(
            Kind::DebugfsDuplicate,
            &["debugfs: Directory '", "debugfs: File '"],
            r"(.*)' already present!",
            Title::Text("debugfs: duplicate '{1}' in '/'"),
            Body::Line,
        ),
        Subject::Start("{1}"),
    ),
    // Before 4.15 sysfs_warn_dup() also WARN()ed: the WARNING belongs to it,
    // before or after the message.
    about(
        absorbing(
            rule(
                Kind::SysfsDuplicate,
                &["sysfs: cannot create duplicate filename '"],
                r"(.*)'",
                Title::Text("sysfs: cannot create duplicate filename '{1}'"),
                Body::Trace,
            ),
            &[Kind::Warning, Kind::SysfsDuplicate],
            3,
        ),
        Subject::Start("{1}"),
    ),
    about(
        absorbing(
            rule(
                Kind::SysfsDuplicate,
                W,
                r"(?:CPU: \d+ PID: \d+ at \S+ |(?:\[.*\] )?\S+ at |at (?:\S+ )?)sysfs_(?:warn_dup|add_one)\+0x",
                find(
                    SYSFS_DUP,
                    "sysfs: cannot create duplicate filename '{1}'",
                    "sysfs: cannot create duplicate filename",
                ),
                Body::Trace,
            ),
            &[Kind::SysfsDuplicate],
            4,
        ),
        Subject::Find(SYSFS_DUP, "{1}"),
    ),
    about(
        absorbing(
            rule(
                Kind::ProcDuplicate,
                &["proc_dir_entry '"],
                r"(.*)' already registered",
                Title::Text("proc_dir_entry '{1}' already registered"),
                Body::Trace,
            ),
            &[Kind::Warning, Kind::ProcDuplicate],
            3,
        ),
        Subject::Start("{1}"),
    ),
    about(
        absorbing(
            rule(
                Kind::ProcDuplicate,
                W,
                warn_in!("proc_register"),
                find(
                    PROC_DUP,
                    "proc_dir_entry '{1}' already registered",
                    "proc_dir_entry already registered",
                ),
                Body::Trace,
            ),
            &[Kind::ProcDuplicate],
            4,
        ),
        Subject::Find(PROC_DUP, "{1}"),
    ),
    about(
        rule(
            Kind::SysctlDuplicate,
            &["sysctl duplicate entry: "],
            r"(\S+)",
            Title::Text("sysctl duplicate entry: {1}"),
            Body::Trace,
        ),
        Subject::Start("{1}"),
    ),
    about(
        rule(
            Kind::KobjectDuplicate,
            &["kobject_add_internal failed for "],
            r"(\S+) with -EEXIST",
            Title::Text("kobject_add_internal failed for {1} with -EEXIST"),
            Body::Trace,
        ),
        Subject::Start("{1}"),
    ),
    // --- selftests.
    rule(
        Kind::SelftestFail,
        &["i915/"],
        r"(\S+): (\S+) failed with error (-?\d+)",
        Title::Text("i915/{1}: {2} failed with error {3}"),
        Body::Line,
    ),
    rule(
        Kind::SelftestFail,
        &["i915/"],
        r"(\S+): setup failed for (\S+)",
        Title::Text("i915/{1}: setup failed for {2}"),
        Body::Line,
    ),
    unless(
        rule(
            Kind::SelftestFail,
            &["not ok "],
            r"\d+(?: -)? ([^#]*?)\s*(?:#.*)?$",
            Title::Ktap { pending: false },
            Body::Line,
        ),
        r"#\s*(?i:skip|todo)\b",
    ),
    // kunit.py's parsed output.
    rule(
        Kind::SelftestFail,
        &["[FAILED] ", "[CRASHED] "],
        r"(\S+)",
        Title::Ktap { pending: false },
        Body::Line,
    ),
    // A failed KUnit expectation: the test's `not ok` comes later unless the
    // log was cut or filtered.
    rule(
        Kind::SelftestFail,
        &["# "],
        r"(\S+): (?:EXPECTATION|ASSERTION) FAILED at \S+",
        Title::Ktap { pending: true },
        Body::Line,
    ),
    // --- BUG: reports.
    // Rust's panic handler (rust/kernel/lib.rs) prints the panic, then BUG()s:
    // the `kernel BUG at rust/helpers/bug.c` that follows belongs to it.
    // Rust before 1.73 printed `panicked at 'msg', file:line:col`.
    absorbing(
        rule(
            Kind::Bug,
            &["rust_kernel: panicked at "],
            // An absolute path is the build machine's: the file name stays.
            r"(?:'.*', )?(?:/\S*/)?(.+?):\d+:\d+",
            Title::Text("Rust panic at {1}"),
            Body::Trace,
        ),
        &[Kind::Bug],
        6,
    ),
    rule(
        Kind::Bug,
        &["kernel BUG at lib/list_debug.c"],
        "",
        in_func("BUG: corrupted list in {func}", From::Pc, &["list_"]),
        Body::Trace,
    ),
    // CONFIG_DEBUG_LIST's message, before its BUG or WARNING (or alone in a
    // filtered log).
    absorbing(
        rule(
            Kind::Bug,
            &["list_add corruption", "list_del corruption"],
            "",
            in_func("BUG: corrupted list in {func}", From::Pc, &["list_"]),
            Body::Trace,
        ),
        &[Kind::Bug, Kind::Warning],
        4,
    ),
    rule(
        Kind::Bug,
        &["kernel BUG at mm/usercopy.c"],
        "",
        in_func(
            "BUG: bad usercopy in {func}",
            From::Pc,
            &["usercopy", "__check"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        &["kernel BUG at "],
        r"(\S+?)!?\s*$",
        in_func("kernel BUG in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        &["BUG: sleeping function called from invalid context"],
        "",
        in_func(
            "BUG: sleeping function called from invalid context in {func}",
            From::Trace,
            stack::SKIP_SCHED,
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        &["BUG: scheduling while atomic"],
        "",
        in_func(
            "BUG: scheduling while atomic in {func}",
            From::Trace,
            stack::SKIP_SCHED,
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        &["BUG: soft lockup"],
        "",
        in_func("BUG: soft lockup in {func}", From::Stall, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        &["Watchdog detected hard LOCKUP"],
        "",
        Title::Text("BUG: hard lockup"),
        Body::Trace,
    ),
    // powerpc's own watchdog (arch/powerpc/kernel/watchdog.c): `Watchdog
    // CPU:59 Hard LOCKUP` (4.13+), `CPU 3 self-detected hard LOCKUP @ ...`
    // and `CPU 3 detected hard LOCKUP on other CPUs 5` (5.x+).
    rule(
        Kind::Bug,
        &["Watchdog CPU:", "CPU "],
        r"\d+ (?:self-detected |detected )?[Hh]ard LOCKUP",
        Title::Text("BUG: hard lockup"),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        B,
        r"(spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
        in_func(
            "BUG: {1} {2} in {func}",
            From::Trace,
            &["spin_", "_lock", "_unlock"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        &["BUG: using "],
        r"(\w+)\(\) in preemptible",
        in_func(
            "BUG: using {1}() in preemptible code in {func}",
            From::After("caller is "),
            &["check_preemption", "debug_", "processor_id", "this_cpu"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        &["BUG: workqueue lockup"],
        "",
        in_func("BUG: workqueue lockup in {func}", From::Workqueue, NONE),
        Body::Text,
    ),
    rule(
        Kind::Bug,
        &["BUG: Bad page "],
        r"(state|map)",
        Title::Text("BUG: Bad page {1}"),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        &["BUG: Dentry "],
        r".* still in use \(\d+\) \[unmount of (\S+) ",
        Title::Text("BUG: Dentry still in use [unmount of {1}]"),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        B,
        r".*stack guard page was hit",
        in_func("BUG: stack guard page was hit in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        B,
        r"(?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access)",
        in_func("BUG: unable to handle page fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        &[
            "BUG: unable to handle kernel NULL pointer dereference",
            "BUG: kernel NULL pointer dereference",
            "BUG: Kernel NULL pointer dereference",
            "Unable to handle kernel NULL pointer dereference",
        ],
        "",
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
        &[
            "BUG: unable to handle kernel",
            "BUG: Unable to handle kernel",
        ],
        "",
        in_func("BUG: unable to handle kernel in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        &["Unable to handle kernel "],
        r"(?:paging request|access to user memory|execute from non-executable memory|read from unreadable memory|write to read-only memory)",
        in_func("BUG: unable to handle page fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        &["BUG "],
        r"(\S+) \((?:Not tainted|Tainted:[^)]*)\): (.+?)\s*$",
        Title::Numbers("BUG: {2} in {1}"),
        Body::Trace,
    ),
    rule(
        Kind::Bug,
        B,
        r"(.+?)\s*$",
        Title::Numbers("BUG: {1}"),
        Body::Trace,
    ),
    // --- oopses (`Oops: ` in front since 6.9 comes off as a prefix).
    rule(
        Kind::Oops,
        &["general protection fault"],
        r"(?:,[^:]*)?: [0-9a-f]+ \[#\d+\]",
        in_func("general protection fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        &["stack segment: "],
        "",
        in_func("stack segment fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    rule(
        Kind::Oops,
        &["divide error: "],
        "",
        in_func("divide error in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    consequence(rule(
        Kind::Oops,
        &["invalid opcode: "],
        "",
        in_func("invalid opcode in {func}", From::Pc, NONE),
        Body::Trace,
    )),
    consequence(rule(
        Kind::Oops,
        &["Oops: "],
        r"[0-9a-f]+ \[#\d+\]",
        in_func("Oops in {func}", From::Pc, NONE),
        Body::Trace,
    )),
    consequence(rule(
        Kind::Oops,
        &["Internal error: "],
        r".*: [0-9a-f]+ \[#\d+\]",
        in_func("Internal error in {func}", From::Pc, NONE),
        Body::Trace,
    )),
    // --- stalls and hangs.
    rule(
        Kind::HungTask,
        &["INFO: task "],
        r"\S+ blocked (?:in I/O wait )?for more than \d+ seconds",
        in_func("INFO: task hung in {func}", From::HungTask, NONE),
        Body::Trace,
    ),
    rule(
        Kind::HungTask,
        &["INFO: task "],
        r".* can't die for more than",
        in_func("INFO: task can't die in {func}", From::Trace, &["schedule"]),
        Body::Trace,
    ),
    rule(
        Kind::RcuStall,
        &["INFO: rcu_"],
        r"(?:preempt|sched|bh)(?:_state)? (?:self-)?detected(?: expedited)? stall",
        in_func("INFO: rcu detected stall in {func}", From::Stall, NONE),
        Body::Trace,
    ),
    rule(
        Kind::RcuStall,
        &["INFO: "],
        r"(rcu_tasks\w*) detected stall",
        Title::Text("INFO: {1} detected stall"),
        Body::Trace,
    ),
    // --- panics: usually the last words of another report.
    consequence(rule(
        Kind::Panic,
        &["Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: "],
        r"(?P<func>[\w.$]+)",
        in_func(
            "kernel panic: stack is corrupted in {func}",
            From::Start,
            NONE,
        ),
        Body::Trace,
    )),
    consequence(rule(
        Kind::Panic,
        &["Kernel panic - not syncing: Attempted to kill init!"],
        "",
        Title::Text("kernel panic: Attempted to kill init!"),
        Body::Trace,
    )),
    consequence(rule(
        Kind::Panic,
        &["Kernel panic - not syncing: "],
        r"(.+?)\s*$",
        Title::Numbers("kernel panic: {1}"),
        Body::Trace,
    )),
    rule(
        Kind::Panic,
        &["PANIC: double fault"],
        "",
        in_func("PANIC: double fault in {func}", From::Pc, NONE),
        Body::Trace,
    ),
    // --- WARN()s of kernel checkers: named after the check, "in" the caller.
    // refcount_warn_saturate()'s message, before its WARNING.
    absorbing(
        rule(
            Kind::Warning,
            &["refcount_t: "],
            r"(?:underflow|overflow|saturated|addition on 0|decrement hit 0)",
            in_func(
                "WARNING: refcount bug in {func}",
                From::Pc,
                &["refcount", "kobject_"],
            ),
            Body::Trace,
        ),
        &[Kind::Warning],
        3,
    ),
    rule(
        Kind::Warning,
        W,
        r".*lib/refcount\.c.* refcount_",
        in_func(
            "WARNING: refcount bug in {func}",
            From::Pc,
            &["refcount", "kobject_"],
        ),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        W,
        r".*lib/debugobjects\.c.* (?:debug_print|debug_check)",
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
        W,
        r".*lib/kobject\.c.* kobject_",
        in_func("WARNING: kobject bug in {func}", From::Pc, &["kobject_"]),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        W,
        r".*mm/usercopy\.c.* usercopy_",
        in_func(
            "WARNING: bad usercopy in {func}",
            From::Pc,
            &["usercopy", "__check"],
        ),
        Body::Trace,
    ),
    absorbing(
        rule(
            Kind::Warning,
            W,
            r".*lib/list_debug\.c:\d+ (?:(?P<func>[\w.$]+)\+0x)?",
            in_func("WARNING: corrupted list in {func}", From::Start, &["list_"]),
            Body::Trace,
        ),
        &[Kind::Bug],
        3,
    ),
    // --- WARN(): every spelling of the first line since 2.6.
    rule(
        Kind::Warning,
        W,
        r"CPU: \d+ PID: \d+ at (?:\S+:\d+ )?(?P<func>[\w.$]+)\+0x",
        in_func("WARNING in {func}", From::Start, stack::SKIP_WARNING),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        W,
        r"(?:\[.*\] )?(?:\S+:\d+ )?at (?P<func>[\w.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[\w-]+\])?,? CPU#\d+",
        in_func("WARNING in {func}", From::Start, stack::SKIP_WARNING),
        Body::Trace,
    ),
    // The 6.19+ spelling without a function (file:line and a raw address).
    rule(
        Kind::Warning,
        W,
        r"(?:\[.*\] )?\S+:\d+ at 0x[0-9a-f]+,? CPU#\d+",
        in_func("WARNING in {func}", From::Pc, stack::SKIP_WARNING),
        Body::Trace,
    ),
    rule(
        Kind::Warning,
        W,
        r"at (?:\S+:\d+ )?(?P<func>[\w.$]+)(?:\+0x|\(\))",
        in_func("WARNING in {func}", From::Start, stack::SKIP_WARNING),
        Body::Trace,
    ),
];

/// Keyword places in one line that are tried as a header before the line
/// counts as none: a kernel line has a header after a prefix or two, and
/// each try may read the rest of the line, so a line full of keywords
/// (garbage, or an attack on the log) would cost its length squared.
pub const MAX_CANDIDATES: usize = 8;

/// The compiled table: the keywords find where a start line may begin, one
/// search of the start regexes of the rules the keyword found there can
/// start (its family) finds the first of them in table order that matches,
/// and it wins unless its `unless` matches too (then the family's next
/// rules are tried one by one). Regexes are compiled on first use: a
/// family's the first time its keyword is in a log, a rule's own (with its
/// captures) the first time a report of it needs one. Most rules never fire
/// in a log, and compiling all of them was most of a short log's time.
pub struct Table {
    keywords: AhoCorasick,
    /// The keywords' first [`PREFILTER_PREFIX`] bytes for one SIMD pass over
    /// a whole log (see [`Hints`]); `None` where the CPU has no SIMD for it.
    prefilter: Option<packed::Searcher>,
    /// Keywords too short for that pass, looked for one by one.
    short: Vec<memchr::memmem::Finder<'static>>,
    /// For each keyword (by its index in `keywords`), its family in `families`.
    family_of: Vec<usize>,
    /// The rules a keyword can start, as one multi-pattern regex each.
    families: Vec<Family>,
    starts: Vec<OnceLock<Regex>>,
    unless: Vec<Option<Regex>>,
}

/// Keywords shorter than this are left out of the SIMD prefilter: the
/// shorter its patterns, the more places it stops at.
const PREFILTER_MIN: usize = 4;
/// The bytes of each keyword the prefilter looks for: the SIMD searcher
/// takes at most 64 patterns, and the keywords' prefixes are fewer.
const PREFILTER_PREFIX: usize = 8;

/// Bytes of lazy DFA cache a family's regex may use (regex's default is 2 MiB):
/// the largest families have dozens of rules to track.
const DFA_CACHE: usize = 64 << 20;

/// The source of a rule's start regex: its keywords, then its `start`.
fn start_source(rule: &Rule) -> String {
    let keywords: Vec<String> = rule.keywords.iter().map(|k| regex::escape(k)).collect();
    format!("^(?:{}){}", keywords.join("|"), rule.start)
}

/// The rules a header with some keyword may be of: those with a keyword
/// that the keyword starts with or that starts with it (another keyword at
/// the same place is one or the other), in table order.
struct Family {
    rules: Vec<usize>,
    /// Their start regexes as the patterns of one regex: its leftmost-first
    /// match (all are anchored) is the first of them in table order that
    /// matches, found without the overlapping search of a set. Compiled the
    /// first time a log has one of the family's keywords: compiling every
    /// family was nearly all of what classifying a short log cost.
    starts: OnceLock<meta::Regex>,
}

impl Family {
    fn starts(&self) -> &meta::Regex {
        self.starts.get_or_init(|| {
            let sources: Vec<String> = self
                .rules
                .iter()
                .map(|&i| start_source(&RULES[i]))
                .collect();
            meta::Regex::builder()
                .configure(meta::Regex::config().hybrid_cache_capacity(DFA_CACHE))
                .build_many(&sources)
                .expect("static regexes")
        })
    }
}

/// Each keyword's family, and the families (keywords that have the same
/// rules share one).
fn families(keywords: &[&str]) -> (Vec<usize>, Vec<Family>) {
    let mut families: Vec<Family> = Vec::new();
    let family_of = keywords
        .iter()
        .map(|keyword| {
            let rules: Vec<usize> = (0..RULES.len())
                .filter(|&i| {
                    RULES[i]
                        .keywords
                        .iter()
                        .any(|k| k.starts_with(keyword) || keyword.starts_with(k))
                })
                .collect();
            if let Some(known) = families.iter().position(|f| f.rules == rules) {
                return known;
            }
            families.push(Family {
                rules,
                starts: OnceLock::new(),
            });
            families.len() - 1
        })
        .collect();
    (family_of, families)
}

/// The compiled [`RULES`].
pub static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let starts = RULES.iter().map(|_| OnceLock::new()).collect();
    let unless = RULES
        .iter()
        .map(|r| r.unless.map(|u| Regex::new(u).expect("static regex")))
        .collect();
    let mut keywords: Vec<&str> = RULES
        .iter()
        .flat_map(|r| r.keywords.iter().copied())
        .collect();
    keywords.sort_unstable();
    keywords.dedup();
    let (family_of, families) = families(&keywords);
    let (short, long): (Vec<&str>, Vec<&str>) =
        keywords.iter().partition(|k| k.len() < PREFILTER_MIN);
    // Sorted keywords give sorted prefixes.
    let mut prefixes: Vec<&str> = long
        .iter()
        .map(|k| k.get(..PREFILTER_PREFIX).unwrap_or(k))
        .collect();
    prefixes.dedup();
    let prefilter = packed::Config::new().builder().extend(&prefixes).build();
    let short = short
        .iter()
        .map(|k| memchr::memmem::Finder::new(*k))
        .collect();
    // A full DFA: every line of a log goes through it.
    let keywords = AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::DFA))
        .build(keywords)
        .expect("static keywords");
    Table {
        keywords,
        prefilter,
        short,
        family_of,
        families,
        starts,
        unless,
    }
});

impl Table {
    /// The index into [`RULES`] of the format a header in `text` starts, if
    /// any (see [`Table::find`]).
    pub fn start(&self, text: &str) -> Option<usize> {
        self.find(text).map(|(_, index)| index)
    }

    /// The leftmost report header in `text` and its rule: `(offset, index)`.
    /// A header starts at the start of the text or after a character that is
    /// not part of a word; what is before it is the line's prefix.
    /// At most [`MAX_CANDIDATES`] places in a line are tried.
    pub fn find(&self, text: &str) -> Option<(usize, usize)> {
        let mut tried = usize::MAX;
        let mut candidates = 0;
        for m in self.keywords.find_overlapping_iter(text) {
            let at = m.start();
            if at == tried {
                continue;
            }
            tried = at;
            let boundary = text[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            if !boundary {
                continue;
            }
            if let Some(index) = self.at(&text[at..], m.pattern().as_usize()) {
                return Some((at, index));
            }
            candidates += 1;
            if candidates == MAX_CANDIDATES {
                return None;
            }
        }
        None
    }

    /// The places in `log` where a keyword may be, for [`Table::find_hinted`].
    pub(super) fn hints<'l>(&self, log: &'l str) -> Hints<'l> {
        let Some(prefilter) = &self.prefilter else {
            return Hints {
                log,
                spans: None,
                next: Cell::new(0),
            };
        };
        // From the first keyword in a line to the line's end: one range per
        // line with keywords, however many it has (the rest of the line is
        // then skipped), found in order.
        let bytes = log.as_bytes();
        let long = |at: usize| {
            prefilter
                .find_in(bytes, aho_corasick::Span::from(at..bytes.len()))
                .map(|m| m.start())
        };
        let short = |i: usize, at: usize| self.short[i].find(&bytes[at..]).map(|found| at + found);
        // The next place of each searcher: searched again only once passed,
        // so that each one reads the log once.
        let mut next: Vec<Option<usize>> = std::iter::once(long(0))
            .chain((0..self.short.len()).map(|i| short(i, 0)))
            .collect();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        while let Some(from) = next.iter().flatten().copied().min() {
            let to = memchr::memchr(b'\n', &bytes[from..]).map_or(bytes.len(), |end| from + end);
            merged.push((from, to.max(from + 1)));
            let at = (to + 1).min(bytes.len());
            for (i, place) in next.iter_mut().enumerate() {
                if place.is_some_and(|p| p < at) {
                    *place = if i == 0 { long(at) } else { short(i - 1, at) };
                }
            }
        }
        Hints {
            log,
            spans: Some(merged),
            next: Cell::new(0),
        }
    }

    /// [`Table::find`], told by `hints` of the log `text` is part of: most
    /// lines have no keyword, and one pass over the whole log says which.
    pub(super) fn find_hinted(&self, hints: &Hints<'_>, text: &str) -> Option<(usize, usize)> {
        if hints.may_hold(text) {
            self.find(text)
        } else {
            None
        }
    }

    /// The rule whose header `text` begins with, given the keyword (by its
    /// index) found at its start.
    fn at(&self, text: &str, keyword: usize) -> Option<usize> {
        let family = &self.families[self.family_of[keyword]];
        let found = family
            .starts()
            .find(Input::new(text).anchored(Anchored::Yes))?;
        let place = found.pattern().as_usize();
        let unless = |i: usize| self.unless[i].as_ref().is_some_and(|u| u.is_match(text));
        let first = family.rules[place];
        if !unless(first) {
            return Some(first);
        }
        // Its `unless` matched: the family's later rules (only they can
        // start at this keyword, and the earlier ones did not match).
        family.rules[place + 1..]
            .iter()
            .copied()
            .find(|&i| self.start_regex(i).is_match(text) && !unless(i))
    }

    /// The start regex of rule `index`, compiled on first use.
    fn start_regex(&self, index: usize) -> &Regex {
        self.starts[index]
            .get_or_init(|| Regex::new(&start_source(&RULES[index])).expect("static regex"))
    }

    /// The captures of rule `index` on its start line.
    pub fn captures<'t>(&self, index: usize, text: &'t str) -> Option<regex::Captures<'t>> {
        self.start_regex(index).captures(text)
    }
}

/// Where a log may have keywords: from each place where the prefilter
/// matched (a keyword's prefix) to the end of its line.
pub(super) struct Hints<'l> {
    log: &'l str,
    /// Byte ranges in `log`, sorted and disjoint; `None`: anywhere.
    spans: Option<Vec<(usize, usize)>>,
    /// The first range that ends after the last text asked about: lines
    /// come in order, so most questions start there.
    next: Cell<usize>,
}

impl Hints<'_> {
    /// May `text` hold a keyword? A keyword in it starts at or after the
    /// first prefix the prefilter found in its line (keywords have no
    /// newline), so a found range meets `text`. Text that is not part of
    /// the log may.
    fn may_hold(&self, text: &str) -> bool {
        let Some(spans) = &self.spans else {
            return true;
        };
        let start = (text.as_ptr() as usize).wrapping_sub(self.log.as_ptr() as usize);
        if start > self.log.len() || self.log.len() - start < text.len() {
            return true;
        }
        let end = start + text.len();
        let mut first = self.next.get();
        if first > 0 && spans[first - 1].1 > start {
            // An earlier text than the last one.
            first = spans.partition_point(|&(_, to)| to <= start);
        }
        while spans.get(first).is_some_and(|&(_, to)| to <= start) {
            first += 1;
        }
        self.next.set(first);
        spans.get(first).is_some_and(|&(from, _)| from < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefilter_takes_every_keyword() {
        // The SIMD searcher's limit: more prefixes and it is not built.
        #[cfg(target_arch = "x86_64")]
        assert!(TABLE.prefilter.is_some());
        let log = "a\n# Subtest: x\n[ 1.0] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2\nb";
        let hints = TABLE.hints(log);
        for line in log.lines() {
            assert_eq!(
                TABLE.find_hinted(&hints, line),
                TABLE.find(line),
                "{line:?}"
            );
        }
        assert!(!hints.may_hold(&log[..1]));
        assert!(hints.may_hold("WARNING: not part of the log"));
    }

    #[test]
    fn every_rule_compiles() {
        assert_eq!(TABLE.starts.len(), RULES.len());
        for i in 0..RULES.len() {
            TABLE.start_regex(i);
        }
        for family in &TABLE.families {
            family.starts();
        }
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
    fn every_rule_starts_with_its_keyword() {
        // The prefilter only ever looks for keywords, so a rule fires only
        // if each of its start lines begins with one of its keywords.
        for (i, rule) in RULES.iter().enumerate() {
            assert!(!rule.keywords.is_empty(), "rule {i} has no keyword");
            for keyword in rule.keywords {
                assert!(!keyword.is_empty(), "rule {i} has an empty keyword");
                assert!(
                    TABLE
                        .keywords
                        .find_overlapping_iter(keyword)
                        .any(|m| m.start() == 0 && m.end() == keyword.len()),
                    "rule {i}: keyword {keyword:?} is not in the prefilter"
                );
                let source = TABLE.start_regex(i).as_str();
                assert!(
                    source.starts_with("^(?:") && source.contains(&regex::escape(keyword)),
                    "rule {i}: start regex {source:?} does not begin with {keyword:?}"
                );
            }
        }
    }

    #[test]
    fn headers_are_found_after_any_prefix() {
        let header = "WARNING: CPU: 1 PID: 1 at a.c:1 f+0x1/0x2";
        for prefix in [
            "",
            "2024-06-02 06:00:57 | node | ",
            "kmemleak: ",
            "\u{2502} ",
            "x\t",
        ] {
            let text = format!("{prefix}{header}");
            let (at, _) = TABLE.find(&text).expect("found");
            assert_eq!(&text[at..], header, "{prefix:?}");
        }
        assert!(TABLE
            .find("XWARNING: CPU: 1 PID: 1 at a.c:1 f+0x1/0x2")
            .is_none());
        assert!(TABLE.find("traps: a.out[3615] general protection fault ip:7feb96eb56a1 sp:20000fd0 error:0 in a.out").is_none());
    }

    #[test]
    fn a_line_full_of_keywords_is_tried_a_bounded_number_of_times() {
        let header = "WARNING: CPU: 1 PID: 1 at a.c:1 f+0x1/0x2";
        let near = "INFO: ";
        let few = format!("{}{header}", near.repeat(MAX_CANDIDATES - 1));
        assert_eq!(TABLE.find(&few).map(|(at, _)| &few[at..]), Some(header));
        let many = format!("{}{header}", near.repeat(MAX_CANDIDATES));
        assert_eq!(TABLE.find(&many), None);
    }

    #[test]
    fn ktap_skips_are_not_failures() {
        assert!(TABLE.start("not ok 1 test_x # SKIP no hardware").is_none());
        assert!(TABLE.start("    not ok 2 - test_y # TODO later").is_none());
        assert!(TABLE.start("ok 1 test_x").is_none());
    }
}
