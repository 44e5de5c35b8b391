//! Classifies kernel logs into findings (pure: text in, findings out).
//!
//! One pass over the lines: [`line::parse`] strips the transport prefix, the
//! table in [`rules`] says whether a line starts a report, and an open report
//! takes the lines that belong to it (its caller id, its stack trace) until
//! the dump ends. Each closed report becomes a [`Finding`] whose title is
//! built from its lines ([`stack`] picks the function it is "in").
//!
//! Cost is linear in the input: each line is parsed and matched once, and a
//! report keeps at most [`MAX_ANALYSED_LINES`] lines for its title.

pub mod line;
pub mod rules;
pub mod stack;

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use line::Origin;
use rules::{Body, Follows, From, Rule, Title, RULES, TABLE};

/// Lines of a finding's `report` at most.
pub const MAX_REPORT_LINES: usize = 100;
/// Bytes of a finding's `report` at most.
pub const MAX_REPORT_BYTES: usize = 8 * 1024;
/// Lines a report may span for title extraction; a report that goes on
/// longer is closed (a flood of unrelated text, or garbage).
pub const MAX_ANALYSED_LINES: usize = 400;

/// What a finding is. Serialized as the issue's names (`debugfs-duplicate`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `debugfs: Directory 'x' with parent 'y' already present!` (5.3-6.16),
    /// `debugfs: 'x' already exists in 'y'` (6.17+).
    DebugfsDuplicate,
    /// `sysfs: cannot create duplicate filename '...'` + stack dump.
    SysfsDuplicate,
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
    pub const ALL: [Kind; 14] = [
        Kind::DebugfsDuplicate,
        Kind::SysfsDuplicate,
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
    /// 1-based line of the report's first line in the input.
    pub line: usize,
    pub severity: Severity,
    /// The report's lines without their transport prefixes, cut at
    /// [`MAX_REPORT_LINES`] lines / [`MAX_REPORT_BYTES`] bytes.
    pub report: String,
}

/// Classify a kernel log. Findings come in line order.
pub fn classify(text: &str) -> Vec<Finding> {
    classify_with_work(text).0
}

/// Classify a kernel log given as bytes (invalid UTF-8 is replaced).
pub fn classify_bytes(bytes: &[u8]) -> Vec<Finding> {
    classify(&String::from_utf8_lossy(bytes))
}

/// The subtest an i915 selftest progress line announces
/// (`i915: Running i915_vma_mock_selftests/igt_vma_create` gives
/// `i915_vma_mock_selftests/igt_vma_create`). Progress lines are not
/// findings; the runner may use them to attribute findings to the subtest
/// that was running.
pub fn i915_selftest_running(text: &str) -> Option<&str> {
    let text = line::parse(text).text;
    text.strip_prefix("i915: Running ")
}

/// [`classify`], also returning the work done: lines walked plus report
/// lines handed to title extraction (which makes a fixed number of passes
/// over them). Tests use it to check the cost stays linear.
pub fn classify_with_work(text: &str) -> (Vec<Finding>, usize) {
    // `dmesg --color=always` output: drop the colours first.
    let uncoloured;
    let text = if text.contains('\x1b') {
        uncoloured = ANSI.replace_all(text, "");
        uncoloured.as_ref()
    } else {
        text
    };
    let mut walk = Walk::default();
    for (index, raw) in text.split('\n').enumerate() {
        walk.line(index + 1, raw);
    }
    walk.close();
    (walk.findings, walk.work)
}

/// The state of the one pass over a log.
#[derive(Default)]
struct Walk<'a> {
    open: Option<Open<'a>>,
    findings: Vec<Finding>,
    work: usize,
    /// KTAP `# Subtest: <name>` lines seen, innermost last, with their
    /// indentation: a `not ok` at that indentation is a test of that suite.
    suites: Vec<(usize, &'a str)>,
}

/// A report whose end has not been seen yet.
struct Open<'a> {
    /// Index into [`RULES`].
    rule: usize,
    /// 1-based line of its start.
    line: usize,
    /// The printk caller id of its start line: lines of other callers are
    /// not part of it.
    caller: Option<&'a str>,
    /// Its lines (without prefixes), at most [`MAX_ANALYSED_LINES`].
    lines: Vec<&'a str>,
    /// A stack trace has started, so the dump ends with the trace.
    in_trace: bool,
    /// Lines before the trace that look like no part of an oops dump.
    stray: usize,
    /// How many lines the report had at its last dump line: stray lines
    /// after it are dropped if the report ends without a trace.
    dump_lines: usize,
    /// Lines of other callers since this report's last line.
    gap: usize,
}

/// What an open report does with the next line.
enum Step {
    Take,
    TakeAndClose,
    Close,
}

impl<'a> Walk<'a> {
    fn line(&mut self, number: usize, raw: &'a str) {
        self.work += 1;
        let line = line::parse(raw);
        if line.origin == Origin::Userspace {
            return;
        }
        self.note_ktap_suite(line.text);
        let foreign = self
            .open
            .as_ref()
            .is_some_and(|open| matches!((open.caller, line.caller), (Some(a), Some(b)) if a != b));
        // Logs pasted into mails and issues are often indented; between
        // reports an indented start line is still a start line.
        let start = TABLE.start(line.text).or_else(|| {
            let trimmed = line.text.trim_start();
            (self.open.is_none() && trimmed.len() < line.text.len())
                .then(|| TABLE.start(trimmed))
                .flatten()
        });
        if let Some(index) = start {
            let rule = &RULES[index];
            if let Some(open) = &mut self.open {
                if open.absorbs(rule, foreign) {
                    open.take(line.text);
                    return;
                }
            }
            self.close();
            if rule.kind == Kind::Panic && !self.findings.is_empty() && is_aftermath(line.text) {
                // The panic that panic_on_warn/panic_on_oops/hung_task_panic
                // adds to a report already found: not a finding of its own.
                return;
            }
            let open = Open {
                rule: index,
                line: number,
                caller: line.caller,
                lines: vec![line.text.trim_start()],
                in_trace: false,
                stray: 0,
                dump_lines: 1,
                gap: 0,
            };
            if matches!(rule.title, Title::Ktap) {
                let suite = self.ktap_suite(line.text);
                self.finish_ktap(open, suite);
            } else if rule.body == Body::Line {
                self.finish(open);
            } else {
                self.open = Some(open);
            }
            return;
        }
        let Some(open) = &mut self.open else {
            return;
        };
        if foreign {
            // Its caller went quiet: the report is over.
            open.gap += 1;
            if open.gap > MAX_FOREIGN_GAP {
                self.close();
            }
            return;
        }
        open.gap = 0;
        match open.step(line.text) {
            Step::Take => open.take(line.text),
            Step::TakeAndClose => {
                open.take(line.text);
                self.close();
            }
            Step::Close => {
                if !open.in_trace {
                    open.lines.truncate(open.dump_lines);
                }
                self.close();
            }
        }
    }

    fn close(&mut self) {
        if let Some(open) = self.open.take() {
            self.finish(open);
        }
    }

    /// Track KTAP's nesting: `# Subtest: name` opens a suite whose tests are
    /// printed at the same indentation.
    fn note_ktap_suite(&mut self, text: &'a str) {
        let trimmed = text.trim_start();
        let Some(name) = trimmed.strip_prefix("# Subtest: ") else {
            return;
        };
        let indent = text.len() - trimmed.len();
        self.suites.retain(|&(i, _)| i < indent);
        self.suites.push((indent, name.trim_end()));
    }

    /// The suite of a KTAP test line, if one is open at its indentation.
    fn ktap_suite(&self, text: &str) -> Option<&'a str> {
        let indent = text.len() - text.trim_start().len();
        self.suites
            .iter()
            .rev()
            .find(|&&(i, _)| i == indent)
            .map(|&(_, name)| name)
    }

    fn finish_ktap(&mut self, open: Open<'a>, suite: Option<&str>) {
        let first = open.lines.first().copied().unwrap_or("");
        let test = TABLE
            .captures(open.rule, first)
            .and_then(|c| c.get(1))
            .map_or("", |m| m.as_str());
        let title = match suite {
            Some(suite) => format!("KTAP: not ok {suite}/{test}"),
            None => format!("KTAP: not ok {test}"),
        };
        self.work += 1;
        self.findings.push(Finding {
            kind: Kind::SelftestFail,
            title,
            line: open.line,
            severity: Kind::SelftestFail.severity(),
            report: report_text(&open.lines),
        });
    }

    fn finish(&mut self, open: Open<'a>) {
        let rule = &RULES[open.rule];
        let mut lines = open.lines;
        while lines.len() > 1 && lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        self.work += lines.len();
        self.findings.push(Finding {
            kind: rule.kind,
            title: title(open.rule, &lines),
            line: open.line,
            severity: rule.kind.severity(),
            report: report_text(&lines),
        });
    }
}

impl<'a> Open<'a> {
    fn rule(&self) -> &'static Rule {
        &RULES[self.rule]
    }

    /// Does the start line of `incoming` belong to this report?
    fn absorbs(&self, incoming: &Rule, foreign: bool) -> bool {
        if incoming.follows == Follows::Consequence {
            return true;
        }
        !foreign
            && self
                .rule()
                .absorbs
                .is_some_and(|(kind, within)| kind == incoming.kind && self.lines.len() <= within)
    }

    fn take(&mut self, text: &'a str) {
        if self.lines.len() < MAX_ANALYSED_LINES {
            self.lines.push(text);
        }
        if text.trim_start().starts_with("---[ end") {
            self.in_trace = true;
        }
    }

    fn step(&mut self, text: &str) -> Step {
        if self.lines.len() >= MAX_ANALYSED_LINES {
            return Step::Close;
        }
        let body = self.rule().body;
        if body == Body::Line {
            return Step::Close;
        }
        if body == Body::Banner && is_banner(text) {
            return Step::TakeAndClose;
        }
        if text.trim().is_empty() {
            return Step::Take;
        }
        if stack::is_trace_start(text) || (body == Body::Trace && stack::is_frame(text)) {
            self.in_trace = true;
            self.dump_lines = self.lines.len() + 1;
            return Step::Take;
        }
        if is_dump_line(text) {
            self.dump_lines = self.lines.len() + 1;
        } else {
            if self.in_trace {
                return Step::Close;
            }
            // An oops dump has few free-form lines before its trace (a WARN
            // message, a task state line); more mean the report was cut
            // short and ordinary log lines follow.
            self.stray += 1;
            if body == Body::Trace && self.stray > MAX_STRAY_LINES {
                return Step::Close;
            }
        }
        Step::Take
    }
}

/// Lines of other callers after which a report with a caller id is over.
const MAX_FOREIGN_GAP: usize = 200;

/// Free-form lines an oops-style report may have before its stack trace.
const MAX_STRAY_LINES: usize = 3;

/// Panic messages that only say another report made the kernel panic.
const AFTERMATH: &[&str] = &[
    "panic_on_warn set",
    "Fatal exception",
    "hung_task: blocked tasks",
    "softlockup: hung tasks",
    "hardlockup: ",
    "RCU Stall",
    "panic_on_oops",
];

fn is_aftermath(text: &str) -> bool {
    text.starts_with("Kernel panic - not syncing: ") && AFTERMATH.iter().any(|a| text.contains(a))
}

/// `=====...` closes KASAN and UBSAN reports.
fn is_banner(text: &str) -> bool {
    let t = text.trim();
    t.len() >= 20 && t.bytes().all(|b| b == b'=')
}

/// Lines that oops dumps print around and after their stack trace.
const DUMP_PREFIXES: &[&str] = &[
    "CPU:",
    "Hardware name:",
    "Workqueue:",
    "Modules linked in:",
    "Tainted:",
    "RIP:",
    "EIP:",
    "IP:",
    "Code:",
    "RSP:",
    "RAX:",
    "RBX:",
    "RDX:",
    "RBP:",
    "R08:",
    "R10:",
    "R13:",
    "FS:",
    "GS:",
    "CS:",
    "DS:",
    "ES:",
    "CR0:",
    "CR2:",
    "DR0:",
    "DR3:",
    "DR6:",
    "EAX:",
    "ESI:",
    "PKRU:",
    "pc :",
    "lr :",
    "sp :",
    "pstate:",
    "epc :",
    "ra :",
    "gp :",
    "status:",
    "NIP:",
    "LR:",
    "MSR:",
    "GPR",
    "Instruction dump:",
    "Exception stack",
    "Stack:",
    "Kernel Offset:",
    "Rebooting in",
    "Dumping ftrace buffer",
    "(ftrace buffer empty)",
    "irq event stamp:",
    "hardirqs last",
    "softirqs last",
    "---[ end",
    "<",
    "[<",
    "? ",
    "#PF:",
    "PGD ",
    "Oops:",
    "Internal error:",
    "Mem abort info:",
    "Data abort info:",
    "ESR =",
    "FAR =",
    "KASAN: null-ptr-deref",
    "KASAN: maybe wild-memory-access",
    "KASAN: probably user-memory-access",
    "Allocated by task",
    "Freed by task",
    "Last potentially related work creation:",
    "Second to last potentially related work creation:",
    "The buggy address",
    "Memory state around the buggy address:",
    "page:",
    "flags:",
    "raw:",
    "head:",
    "page dumped because",
    "page_owner",
    "memcg:",
    "Preemption disabled at:",
    "in_atomic():",
    "Not tainted",
    "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\"",
    "task:",
    "Showing all locks held",
    "Disabling lock debugging",
    "note: ",
    "Fixing recursive fault",
    "NMI backtrace for cpu",
    "Sending NMI from CPU",
    "Register r",
    "Process ",
    "Flags:",
    "Control:",
    "PC is at",
    "LR is at",
    "psr:",
    "unreferenced object",
    "rcu:",
    "All QSes seen",
];

/// Register dumps (`r10: 81de5c68  r9 : ...`, `x29: ffff...`, `R13: ...`) and
/// raw stack words (`de20: 8067b314 ...`, or unindented `ffff8817... ffff...`
/// once syslog has eaten the indentation).
static DUMP_SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[A-Za-z]{1,3}[0-9]{0,2} ?: ?[0-9a-f]{8}|[0-9a-f]{4}: |\d+ locks? held by ",
        r"|[0-9a-f]{8,16}(?: [0-9a-f]{8,16})+\s*$)",
    ))
    .expect("static regex")
});

/// Is this line part of an oops dump (registers, frames, headers)?
fn is_dump_line(text: &str) -> bool {
    text.starts_with([' ', '\t'])
        || DUMP_PREFIXES.iter().any(|p| text.starts_with(p))
        || stack::is_frame(text)
        || DUMP_SHAPE.is_match(text)
}

/// A report's text: its first lines within the size limits.
fn report_text(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines.iter().take(MAX_REPORT_LINES) {
        let needed = line.len() + usize::from(!out.is_empty());
        if out.len() + needed > MAX_REPORT_BYTES {
            if out.is_empty() {
                let mut end = MAX_REPORT_BYTES;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                out.push_str(&line[..end]);
            }
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

/// ANSI colour and cursor sequences (`ESC [ ... m`).
static ANSI: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("\x1b\\[[0-9;?]*[A-Za-z]").expect("static regex"));

/// `, at: func+0x..` in lockdep's lock descriptions.
static LOCK_AT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bat: (?:\[<[0-9a-f]+>\] )?([A-Za-z_][\w.$]*)\+0x").expect("static regex")
});

/// KASAN's access line.
static ACCESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(Read|Write) of size \d+").expect("static regex"));

/// Numbers in titles (`unknown-block(0,0)` -> `unknown-block(NUM,NUM)`).
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:0x[0-9a-fA-F]+|\d+)\b").expect("static regex"));

/// Build the title of the report of rule `index` from its lines.
fn title(index: usize, lines: &[&str]) -> String {
    let rule = &RULES[index];
    let first = lines.first().copied().unwrap_or("");
    let captures = TABLE.captures(index, first);
    let fill = |template: &str| -> String {
        let mut out = template.to_string();
        if let Some(c) = &captures {
            for n in 1..c.len() {
                let value = c.get(n).map_or("", |m| m.as_str());
                out = out.replace(&format!("{{{n}}}"), value);
            }
        }
        out
    };
    let start_func = || {
        captures
            .as_ref()
            .and_then(|c| c.name("func"))
            .map(|m| stack::clean(m.as_str()))
    };
    match rule.title {
        Title::Text(template) => fill(template),
        Title::Numbers(template) => NUMBER.replace_all(&fill(template), "NUM").into_owned(),
        Title::In { fmt, from, skip } => {
            let func = function(from, start_func(), lines, skip);
            with_func(&fill(fmt), func)
        }
        // Named in `Walk::finish_ktap`, which knows the enclosing suite.
        Title::Ktap => fill("KTAP: not ok {1}"),
        Title::Kasan => {
            let kind = captures
                .as_ref()
                .and_then(|c| c.get(1))
                .map_or("", |m| m.as_str());
            let func = function(From::Start, start_func(), lines, &[]);
            let access = lines
                .iter()
                .find_map(|l| ACCESS.captures(l))
                .and_then(|c| c.get(1))
                .map(|m| m.as_str());
            let head = match access {
                Some(access) => format!("KASAN: {kind} {access} in {{func}}"),
                None => format!("KASAN: {kind} in {{func}}"),
            };
            with_func(&head, func)
        }
    }
}

/// Put `func` into a title template, or drop ` in {func}` without one.
fn with_func(template: &str, func: Option<&str>) -> String {
    match func {
        Some(f) => template.replace("{func}", f),
        None => template.replace(" in {func}", "").replace("{func}", "?"),
    }
}

/// The function a report is "in", per its rule's [`From`].
fn function<'a>(
    from: From,
    start: Option<&'a str>,
    lines: &[&'a str],
    skip: &[&str],
) -> Option<&'a str> {
    let pc = || lines.iter().find_map(|l| stack::pc(l));
    let trace = || stack::trace_frames(lines);
    match from {
        From::Start => stack::first_unskipped(start.into_iter().chain(pc()).chain(trace()), skip),
        From::Pc => stack::first_unskipped(pc().into_iter().chain(trace()), skip),
        From::Trace => stack::first_unskipped(trace(), skip),
        From::LockAt(count) => {
            let at = lines
                .iter()
                .filter_map(|l| LOCK_AT.captures(l))
                .filter_map(|c| c.get(1))
                .map(|m| stack::clean(m.as_str()))
                .take(count);
            stack::first_unskipped(at.chain(trace()), skip)
        }
        From::Stall => stack::stall_function(lines),
        From::HungTask => stack::hung_task_function(lines),
        From::Workqueue => lines.iter().find_map(|l| {
            let rest = l.trim_start().strip_prefix("Workqueue: ")?;
            rest.split_whitespace().nth(1).map(stack::clean)
        }),
    }
}

#[cfg(test)]
mod tests;
