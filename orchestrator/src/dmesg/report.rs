//! Where reports start and end: the one pass over a log's lines.
//!
//! Each line is parsed ([`super::line`]) and matched against the table
//! ([`super::rules`]) once; an open report takes the lines that belong to it
//! (same caller id, header and stack trace of an oops dump) and is closed at
//! the first line that is not part of it. Closed reports become findings.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, Anchored, Input, StartKind};
use memchr::memmem;
use regex::Regex;

use super::finding::{Finding, Kind};
use super::line::{self, Line, Origin, Shape};
use super::rules::{Body, Follows, Hints, Rule, Title, RULES, TABLE};
use super::{stack, title, MAX_ANALYSED_LINES, MAX_REPORT_BYTES, MAX_REPORT_LINES};

/// The state of the one pass over a log.
pub(super) struct Walk<'a> {
    /// Where the log may have report headers.
    hints: Hints<'a>,
    open: Option<Open<'a>>,
    findings: Vec<Finding>,
    /// Failed KUnit expectations whose test has not said `not ok` yet, with
    /// the test's name: the `not ok` replaces them, or the end of the log
    /// makes them findings.
    pending: Vec<(&'a str, Finding)>,
    work: usize,
    /// KTAP `# Subtest: <name>` lines seen, innermost last, with their
    /// indentation: a `not ok` at that indentation is a test of that suite.
    suites: Vec<(usize, &'a str)>,
    /// The suite of kunit.py's last `==== name (N subtests) ====` banner.
    kunit_suite: Option<&'a str>,
    /// The number of the last line that went into a report.
    last_taken: usize,
    /// The previous line as parsed (continuations of a `#012`-joined record
    /// share its origin and caller).
    previous: Option<Line<'a>>,
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
    /// The indentation of its start line (a paste's).
    indent: usize,
    /// The shape of the unknown prefix its start line had, if any: its
    /// following lines lose a prefix of that shape.
    shape: Option<Shape>,
    /// Its lines (without prefixes), at most [`MAX_ANALYSED_LINES`].
    lines: Vec<&'a str>,
    /// It went on past [`MAX_ANALYSED_LINES`].
    cut: bool,
    /// A stack trace has started, so the dump ends with the trace.
    in_trace: bool,
    /// Its `---[ end trace` line was seen.
    ended: bool,
    /// Lines in a row before the trace that look like no part of an oops dump.
    stray: usize,
    /// Foreign lines in a row inside the trace (another writer's, or a line
    /// cut short): a few do not end the report.
    interruptions: usize,
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
    Skip,
    Close,
}

impl<'a> Walk<'a> {
    /// A walk over `log`, whose lines it is then given in order.
    pub(super) fn new(log: &'a str) -> Self {
        Walk {
            hints: TABLE.hints(log),
            open: None,
            findings: Vec::new(),
            pending: Vec::new(),
            work: 0,
            suites: Vec::new(),
            kunit_suite: None,
            last_taken: 0,
            previous: None,
        }
    }

    /// Take the next line (1-based `number`).
    pub(super) fn line(&mut self, number: usize, raw: &'a str) {
        let line = line::parse(raw);
        self.parsed(number, line);
    }

    /// Take a piece of the previous line's record (rsyslog joins a record's
    /// lines with `#012`): no prefix of its own, the record's origin.
    pub(super) fn continuation(&mut self, number: usize, text: &'a str) {
        let Some(previous) = self.previous else {
            return self.line(number, text);
        };
        self.parsed(
            number,
            Line {
                text: line::parse(text).text,
                ..previous
            },
        );
    }

    fn parsed(&mut self, number: usize, mut line: Line<'a>) {
        self.work += 1;
        self.previous = Some(line);
        if line.origin == Origin::Userspace {
            return;
        }
        // A header on a line that lost the open report's prefix shape
        // starts a report with the same shape (the next kmemleak object).
        let mut inherited = false;
        if let Some(shape) = self.open.as_ref().and_then(|open| open.shape.as_ref()) {
            if let Some(rest) = shape.strip(line.text) {
                line.text = rest;
                inherited = true;
            }
        }
        self.note_ktap_suite(line.text);
        let foreign = self
            .open
            .as_ref()
            .is_some_and(|open| matches!((open.caller, line.caller), (Some(a), Some(b)) if a != b));
        if let Some((at, index)) = self.header(line.text) {
            self.start(number, line, (at, index), foreign, inherited);
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
            Step::Skip => {}
            Step::Close => {
                if !open.in_trace {
                    open.lines.truncate(open.dump_lines);
                }
                self.close();
            }
        }
    }

    /// Where a report header starts in `text`, and its rule. Inside an open
    /// report an indented header is part of the report (a frame, a lock
    /// description), except KTAP results, which are indented by nesting.
    /// A header at the indentation of the open report's own is its sibling.
    fn header(&self, text: &str) -> Option<(usize, usize)> {
        let (at, index) = TABLE.find_hinted(&self.hints, text)?;
        let indented = at > 0 && text[..at].trim().is_empty();
        let ktap = matches!(RULES[index].title, Title::Ktap { .. });
        let sibling = self.open.as_ref().is_none_or(|open| open.indent == at);
        (!indented || sibling || ktap).then_some((at, index))
    }

    /// A header at byte `at` of the line's text, of rule `index`;
    /// `inherited`: the line lost the open report's prefix shape.
    fn start(
        &mut self,
        number: usize,
        line: Line<'a>,
        (at, index): (usize, usize),
        foreign: bool,
        inherited: bool,
    ) {
        let rule = &RULES[index];
        let text = &line.text[at..];
        if let Some(open) = &mut self.open {
            if open.absorbs(index, foreign) {
                open.take(text);
                open.interruptions = 0;
                self.last_taken = number;
                return;
            }
        }
        // Cloned only here, where a report starts: not for every line.
        let inherited = inherited
            .then(|| self.open.as_ref().and_then(|open| open.shape.clone()))
            .flatten();
        self.close();
        if self.is_aftermath(number, rule, text) {
            return;
        }
        self.last_taken = number;
        let prefix = &line.text[..at];
        let blank = prefix.trim().is_empty();
        let open = Open {
            rule: index,
            line: number,
            caller: line.caller,
            indent: if blank { at } else { 0 },
            shape: if blank {
                inherited
            } else {
                Some(Shape::learn(prefix))
            },
            lines: vec![text],
            cut: false,
            in_trace: false,
            ended: false,
            stray: 0,
            interruptions: 0,
            dump_lines: 1,
            gap: 0,
        };
        if let Title::Ktap { pending } = rule.title {
            let suite = self.ktap_suite(indentation(prefix));
            self.finish_ktap(open, suite, pending);
        } else if rule.body == Body::Line {
            self.finish(open);
        } else {
            self.open = Some(open);
        }
    }

    /// Is this start only the consequence of the report just found? The
    /// panic that panic_on_warn/panic_on_oops/hung_task_panic adds, or the
    /// `kobject_add_internal failed` that follows a sysfs duplicate.
    fn is_aftermath(&self, number: usize, rule: &Rule, text: &str) -> bool {
        let Some(last) = self.findings.last() else {
            return false;
        };
        let near = number.saturating_sub(self.last_taken) <= AFTERMATH_DISTANCE;
        match rule.kind {
            Kind::Panic => near && is_aftermath(text),
            Kind::KobjectDuplicate => near && last.kind == Kind::SysfsDuplicate,
            _ => false,
        }
    }

    /// The findings so far and the work done (see [`super::classify_with_work`]).
    pub(super) fn into_findings(mut self) -> (Vec<Finding>, usize) {
        if !self.pending.is_empty() {
            self.findings
                .extend(self.pending.drain(..).map(|(_, finding)| finding));
            self.findings.sort_by_key(|f| f.line);
        }
        (self.findings, self.work)
    }

    /// Close the open report, if any (at the end of the log).
    pub(super) fn close(&mut self) {
        if let Some(open) = self.open.take() {
            self.finish(open);
        }
    }

    /// Track KTAP's nesting: `# Subtest: name` opens a suite whose tests are
    /// printed at the same indentation; kunit.py prints a banner instead.
    /// The indentation is the blank run just before the text, so a prefix
    /// no stripper knows does not change it.
    fn note_ktap_suite(&mut self, text: &'a str) {
        static SUBTEST_WORD: LazyLock<memmem::Finder<'static>> =
            LazyLock::new(|| memmem::Finder::new(" subtest"));
        static SUBTEST_LINE: LazyLock<memmem::Finder<'static>> =
            LazyLock::new(|| memmem::Finder::new(SUBTEST));
        const SUBTEST: &str = "# Subtest: ";
        // What both have in common: most lines have neither.
        static COMMON: LazyLock<memmem::Finder<'static>> =
            LazyLock::new(|| memmem::Finder::new("ubtest"));
        if COMMON.find(text.as_bytes()).is_none() {
            return;
        }
        if SUBTEST_WORD.find(text.as_bytes()).is_some() {
            if let Some(c) = KUNIT_SUITE.captures(text) {
                self.kunit_suite = c.get(1).map(|m| m.as_str());
            }
            return;
        }
        let Some(at) = SUBTEST_LINE.find(text.as_bytes()) else {
            return;
        };
        let name = text[at + SUBTEST.len()..].trim_end();
        let indent = indentation(&text[..at]);
        self.suites.retain(|&(i, _)| i < indent);
        self.suites.push((indent, name));
    }

    /// The suite of a KTAP test line at indentation `indent`, if one is
    /// open there (or kunit.py named one).
    fn ktap_suite(&self, indent: usize) -> Option<&'a str> {
        self.suites
            .iter()
            .rev()
            .find(|&&(i, _)| i == indent)
            .map(|&(_, name)| name)
            .or(self.kunit_suite)
    }

    fn finish_ktap(&mut self, open: Open<'a>, suite: Option<&str>, pending: bool) {
        let first = open.lines.first().copied().unwrap_or("");
        let test = title::ktap_test(open.rule, first);
        let finding = Finding {
            kind: Kind::SelftestFail,
            title: title::ktap(test, suite),
            line: open.line,
            severity: Kind::SelftestFail.severity(),
            report: report_text(&open.lines).0,
            subject: None,
            corrupted: false,
        };
        self.work += 1;
        // One finding per failed test: its `not ok` replaces the failed
        // expectations printed before it.
        self.pending.retain(|(name, _)| *name != test);
        if pending {
            self.pending.push((test, finding));
        } else {
            self.findings.push(finding);
        }
    }

    fn finish(&mut self, open: Open<'a>) {
        let rule = &RULES[open.rule];
        let mut lines = open.lines;
        while lines.len() > 1 && lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        self.work += lines.len();
        let (report, truncated) = report_text(&lines);
        let start = title::Start::new(open.rule, &lines);
        self.findings.push(Finding {
            kind: rule.kind,
            title: title::demangle_rust(&title::build(open.rule, &lines, &start)),
            line: open.line,
            severity: rule.kind.severity(),
            report,
            subject: title::subject(open.rule, &lines, &start),
            corrupted: open.cut || truncated,
        });
    }
}

/// kunit.py's suite banner: `===== list-kunit-test (10 subtests) =====`.
static KUNIT_SUITE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"=+ \[?(\S+?)\]? \(\d+ subtests?\) =+\s*$").expect("static regex")
});

/// The blank run at the end of `prefix`: a KTAP line's nesting depth.
fn indentation(prefix: &str) -> usize {
    prefix.len() - prefix.trim_end_matches([' ', '\t']).len()
}

impl<'a> Open<'a> {
    fn rule(&self) -> &'static Rule {
        &RULES[self.rule]
    }

    /// Does the start line of rule `incoming` belong to this report?
    fn absorbs(&self, incoming: usize, foreign: bool) -> bool {
        let rule = &RULES[incoming];
        if rule.follows == Follows::Consequence {
            return true;
        }
        !foreign
            && incoming != self.rule
            && self.rule().absorbs.is_some_and(|(kinds, within)| {
                kinds.contains(&rule.kind) && self.lines.len() <= within
            })
    }

    fn take(&mut self, text: &'a str) {
        self.interruptions = 0;
        if self.lines.len() < MAX_ANALYSED_LINES {
            self.lines.push(text);
        } else {
            self.cut = true;
        }
        if text.trim_start().starts_with("---[ end") {
            self.in_trace = true;
            self.ended = true;
        }
    }

    fn step(&mut self, text: &str) -> Step {
        if self.lines.len() >= MAX_ANALYSED_LINES {
            self.cut = true;
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
            self.stray = 0;
        } else {
            if self.in_trace {
                // Another writer's line (or one cut short) inside a trace:
                // the trace may go on after it.
                if !self.ended && self.interruptions < MAX_INTERRUPTIONS {
                    self.interruptions += 1;
                    return Step::Skip;
                }
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

/// Foreign lines in a row a stack trace may have inside it.
const MAX_INTERRUPTIONS: usize = 2;

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
    "Hard LOCKUP",
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
    // arm64's page table walk of the faulting address (arch/arm64/mm/fault.c).
    "user pgtable:",
    "swapper pgtable:",
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

/// [`DUMP_PREFIXES`] at the start of a line, in one pass.
static DUMP_START: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .start_kind(StartKind::Anchored)
        .build(DUMP_PREFIXES)
        .expect("static prefixes")
});

/// Register dumps (`r10: 81de5c68  r9 : ...`, `x29: ffff...`, `R13: ...`) and
/// raw stack words (`de20: 8067b314 ...`, or unindented `ffff8817... ffff...`
/// once syslog has eaten the indentation).
static DUMP_SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[A-Za-z]{1,3}[0-9]{0,2} ?: ?[0-9a-f]{8}|[0-9a-f]{4}: |\d+ locks? held by |\[[0-9a-f]{16}\] pgd=",
        r"|[0-9a-f]{8,16}(?: [0-9a-f]{8,16})+\s*$)",
    ))
    .expect("static regex")
});

/// Is this line part of an oops dump (registers, frames, headers)?
fn is_dump_line(text: &str) -> bool {
    text.starts_with([' ', '\t'])
        || DUMP_START
            .find(Input::new(text).anchored(Anchored::Yes))
            .is_some()
        || stack::is_frame(text)
        || DUMP_SHAPE.is_match(text)
}

/// A report's text: its first lines within the size limits, and whether
/// lines were left out.
fn report_text(lines: &[&str]) -> (String, bool) {
    // One allocation: the size it will have, within the limit.
    let size: usize = lines
        .iter()
        .take(MAX_REPORT_LINES)
        .map(|l| l.len() + 1)
        .sum();
    let mut out = String::with_capacity(size.min(MAX_REPORT_BYTES));
    let mut truncated = lines.len() > MAX_REPORT_LINES;
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
            truncated = true;
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    (out, truncated)
}
