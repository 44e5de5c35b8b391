//! Where reports start and end: the one pass over a log's lines.
//!
//! Each line is parsed ([`super::line`]) and matched against the table
//! ([`super::rules`]) once; an open report takes the lines that belong to it
//! (same caller id, header and stack trace of an oops dump) and is closed at
//! the first line that is not part of it. Closed reports become findings.

use std::sync::LazyLock;

use regex::Regex;

use super::finding::{Finding, Kind};
use super::line::{self, Origin};
use super::rules::{Body, Follows, Rule, Title, RULES, TABLE};
use super::{stack, title, MAX_ANALYSED_LINES, MAX_REPORT_BYTES, MAX_REPORT_LINES};

/// The state of the one pass over a log.
#[derive(Default)]
pub(super) struct Walk<'a> {
    open: Option<Open<'a>>,
    findings: Vec<Finding>,
    work: usize,
    /// KTAP `# Subtest: <name>` lines seen, innermost last, with their
    /// indentation: a `not ok` at that indentation is a test of that suite.
    suites: Vec<(usize, &'a str)>,
    /// The number of the last line that went into a report.
    last_taken: usize,
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
    /// Take the next line (1-based `number`).
    pub(super) fn line(&mut self, number: usize, raw: &'a str) {
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
                    self.last_taken = number;
                    return;
                }
            }
            self.close();
            let after_report = !self.findings.is_empty()
                && number.saturating_sub(self.last_taken) <= AFTERMATH_DISTANCE;
            if rule.kind == Kind::Panic && after_report && is_aftermath(line.text) {
                // The panic that panic_on_warn/panic_on_oops/hung_task_panic
                // adds to the report just found: not a finding of its own.
                return;
            }
            self.last_taken = number;
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
            Step::Take => {
                open.take(line.text);
                self.last_taken = number;
            }
            Step::TakeAndClose => {
                open.take(line.text);
                self.last_taken = number;
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

    /// The findings so far and the work done (see [`super::classify_with_work`]).
    pub(super) fn into_findings(self) -> (Vec<Finding>, usize) {
        (self.findings, self.work)
    }

    /// Close the open report, if any (at the end of the log).
    pub(super) fn close(&mut self) {
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
        let title = title::ktap(open.rule, first, suite);
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
            title: title::demangle_rust(&title::build(open.rule, &lines)),
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

/// Lines after a report within which an aftermath panic belongs to it.
const AFTERMATH_DISTANCE: usize = 200;

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
