//! What the classifier reports: a finding's kind, severity and text.

use serde::{Deserialize, Serialize};

/// What a finding is. Serialized as the names (`debugfs-duplicate`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `debugfs: Directory 'x' with parent 'y' already present!` (5.3-6.16),
    /// `debugfs: 'x' already exists in 'y'` (6.17+).
    DebugfsDuplicate,
    /// `sysfs: cannot create duplicate filename '...'` + stack dump.
    SysfsDuplicate,
    /// `proc_dir_entry '<parent>/<name>' already registered` (a WARN).
    ProcDuplicate,
    /// `sysctl duplicate entry: /<path>`.
    SysctlDuplicate,
    /// `kobject_add_internal failed for <name> with -EEXIST` (when it is not
    /// the aftermath of a sysfs duplicate).
    KobjectDuplicate,
    /// `kmem_cache_destroy x: Slab cache still has objects` (pr_err before
    /// 5.17, a WARN since), or SLUB's `Objects remaining in x`.
    SlabLeak,
    /// kmemleak's `unreferenced object` reports and its summary line.
    Kmemleak,
    /// `WARNING:` from WARN()/WARN_ON().
    Warning,
    /// `BUG:` and `kernel BUG at`.
    Bug,
    /// Faults: page faults, general protection faults, `Internal error`.
    Oops,
    /// KASAN (and the other memory sanitizers: KFENCE, KMSAN, KCSAN).
    Kasan,
    /// UBSAN.
    Ubsan,
    /// Lockdep: possible deadlocks, inconsistent lock state, RCU misuse.
    Lockdep,
    /// RCU stall warnings.
    RcuStall,
    /// `INFO: task x blocked for more than N seconds`.
    HungTask,
    /// `Kernel panic - not syncing` (when it is not the end of another report).
    Panic,
    /// i915 selftest failures and KTAP `not ok` lines.
    SelftestFail,
}

/// How bad a finding is; the runner maps `warn` to IGT's dmesg-warn and
/// `fail` to dmesg-fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    Fail,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 17] = [
        Kind::DebugfsDuplicate,
        Kind::SysfsDuplicate,
        Kind::ProcDuplicate,
        Kind::SysctlDuplicate,
        Kind::KobjectDuplicate,
        Kind::SlabLeak,
        Kind::Kmemleak,
        Kind::Warning,
        Kind::Bug,
        Kind::Oops,
        Kind::Kasan,
        Kind::Ubsan,
        Kind::Lockdep,
        Kind::RcuStall,
        Kind::HungTask,
        Kind::Panic,
        Kind::SelftestFail,
    ];

    /// The name used in JSON and titles' listings (`debugfs-duplicate`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::DebugfsDuplicate => "debugfs-duplicate",
            Kind::SysfsDuplicate => "sysfs-duplicate",
            Kind::ProcDuplicate => "proc-duplicate",
            Kind::SysctlDuplicate => "sysctl-duplicate",
            Kind::KobjectDuplicate => "kobject-duplicate",
            Kind::SlabLeak => "slab-leak",
            Kind::Kmemleak => "kmemleak",
            Kind::Warning => "warning",
            Kind::Bug => "bug",
            Kind::Oops => "oops",
            Kind::Kasan => "kasan",
            Kind::Ubsan => "ubsan",
            Kind::Lockdep => "lockdep",
            Kind::RcuStall => "rcu-stall",
            Kind::HungTask => "hung-task",
            Kind::Panic => "panic",
            Kind::SelftestFail => "selftest-fail",
        }
    }

    /// How bad this kind of finding is, and why.
    pub fn severity(self) -> Severity {
        match self {
            // debugfs keeps working without the entry (it is debug-only) and
            // the driver loads: the duplicate is the *symptom* of a leak one
            // load earlier, which slab-leak/the slab diff report as the cause.
            // IGT reports it as dmesg-warn too.
            Kind::DebugfsDuplicate => Severity::Warn,
            // WARN() means the kernel caught an unexpected state and went on;
            // IGT's dmesg-warn.
            Kind::Warning => Severity::Warn,
            // The sysfs entry is not created and the caller gets -EEXIST: the
            // registration (e.g. kmem_cache_create) fails.
            Kind::SysfsDuplicate => Severity::Fail,
            // The same for /proc entries, sysctl tables and kobjects: the
            // registration fails with -EEXIST.
            Kind::ProcDuplicate | Kind::SysctlDuplicate | Kind::KobjectDuplicate => Severity::Fail,
            // Objects outlived their module: a leak, and the next load of the
            // module collides with the leftover cache.
            Kind::SlabLeak => Severity::Fail,
            // Leaked memory is the bug class kcycle exists to catch; the rare
            // kmemleak false positive goes in the suite's known issues.
            Kind::Kmemleak => Severity::Fail,
            // BUG()/oopses/sanitizer reports: the kernel hit a real bug, the
            // task was killed or memory was corrupted.
            Kind::Bug | Kind::Oops | Kind::Kasan | Kind::Ubsan => Severity::Fail,
            // A lock order that can deadlock is a bug even when this run was
            // lucky, and lockdep switches itself off after its first report,
            // so the rest of the run goes unchecked.
            Kind::Lockdep => Severity::Fail,
            // The machine or a task was stuck for tens of seconds or more.
            Kind::RcuStall | Kind::HungTask => Severity::Fail,
            Kind::Panic => Severity::Fail,
            // A test said it failed.
            Kind::SelftestFail => Severity::Fail,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Warn => "warn",
            Severity::Fail => "fail",
        })
    }
}

/// One report found in a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    /// syzkaller-style title, stable across runs: `WARNING in <func>`.
    pub title: String,
    /// 1-based line of the report's first line in the input: its headline
    /// (the `WARNING:`/`BUG:`/`debugfs:` line, or the message a `WARN()`
    /// printed just before its `WARNING:` line).
    pub line: usize,
    pub severity: Severity,
    /// The report's lines without their transport prefixes, cut at
    /// [`super::MAX_REPORT_LINES`] lines / [`super::MAX_REPORT_BYTES`] bytes.
    pub report: String,
    /// The name the report is about, as the kernel printed it: the
    /// duplicated debugfs path (`<parent>/<name>`, no leading `/`), sysfs,
    /// proc or sysctl path, kobject name, or the leaked cache. The runner
    /// matches it to what a module left behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The report went on past the size limits and was cut: its end (and
    /// maybe a better title) is missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub corrupted: bool,
}
