//! Classifies kernel logs into findings (pure: text in, findings out).
//!
//! One pass over the lines (module `report`): [`line::parse`] strips the
//! transport prefixes it knows, the table in [`rules`] finds a report header
//! anywhere in a line (what is before it is that line's prefix, whose shape
//! the report's following lines lose too), and an open report takes the
//! lines that belong to it (its caller id, its stack trace) until the dump
//! ends. Each closed report becomes a
//! [`Finding`] whose title (module `title`) is built from its lines
//! ([`stack`] picks the function it is "in").
//!
//! Cost is linear in the input: each line is parsed and matched once, and a
//! report keeps at most [`MAX_ANALYSED_LINES`] lines for its title.

pub mod finding;
pub mod line;
mod report;
pub mod rules;
pub mod stack;
mod title;

use std::sync::LazyLock;

use regex::Regex;

pub use finding::{Finding, Kind, Severity};

/// Lines of a finding's `report` at most.
pub const MAX_REPORT_LINES: usize = 100;
/// Bytes of a finding's `report` at most.
pub const MAX_REPORT_BYTES: usize = 8 * 1024;
/// Lines a report may span for title extraction; a report that goes on
/// longer is closed (a flood of unrelated text, or garbage).
pub const MAX_ANALYSED_LINES: usize = 400;

/// Classify a kernel log. Findings come in line order.
pub fn classify(text: &str) -> Vec<Finding> {
    classify_with_work(text).0
}

/// Classify a kernel log given as bytes (invalid UTF-8 is replaced).
pub fn classify_bytes(bytes: &[u8]) -> Vec<Finding> {
    classify(&String::from_utf8_lossy(bytes))
}

/// Rust symbols in `text` read as Rust paths (`_RNvCs…_15rust_i915_table12globals_init`
/// becomes `rust_i915_table::globals_init`), as titles have them.
pub fn demangle(text: &str) -> String {
    title::demangle_rust(text)
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
    // Text other writers put anywhere in a line: `dmesg --color=always` and
    // serial consoles' colours, LAVA's test markers. Dropped first.
    let cleaned;
    let spliced = memchr::memchr(b'\x1b', text.as_bytes()).is_some()
        || memchr::memmem::find(text.as_bytes(), b"<LAVA_SIGNAL_").is_some();
    let text = if spliced {
        cleaned = SPLICED.replace_all(text, "");
        cleaned.as_ref()
    } else {
        text
    };
    let mut walk = report::Walk::new(text);
    // One memchr iterator over the whole log: cheaper than a search per line.
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    let mut from = 0;
    for (index, to) in ends.enumerate() {
        let raw = &text[from..to];
        from = to + 1;
        // rsyslog escapes a record's newlines as `#012`: one line, several
        // kernel lines.
        if memchr::memchr(b'#', raw.as_bytes()).is_none() {
            for record in records(raw) {
                walk.line(index + 1, record);
            }
            continue;
        }
        let mut pieces = raw.split(RSYSLOG_NEWLINE);
        for record in records(pieces.next().unwrap_or("")) {
            walk.line(index + 1, record);
        }
        for piece in pieces {
            walk.continuation(index + 1, piece);
        }
    }
    walk.close();
    walk.into_findings()
}

/// The kernel records in one line of text. A paste that lost its newlines
/// (`[ 1.000001] a [ 1.000002] b`) or another writer's text glued to a
/// record (`INFO: task jbd2/[ 1.000002]  schedule+0x46/0xb0`) puts a printk
/// timestamp inside a line: a new record starts there. In a line that does
/// not start with one, the first timestamp after a separator is a prefix's
/// (`Jun  2 host kernel: [ 1.000001] ...`, `> [ 1.000001] ...`, `<4>[ 1.000001] ...`)
/// and stays.
fn records(line: &str) -> impl Iterator<Item = &str> {
    let bytes = line.as_bytes();
    let mut starts = memchr::memchr_iter(b'[', bytes)
        .filter(|&at| at > 0 && is_timestamp(&bytes[at..]))
        .peekable();
    // Text that runs into a timestamp without a separator is another writer's.
    let glued = |c: u8| c.is_ascii_alphanumeric() || b"_/.-)".contains(&c);
    let leading = bytes.first() == Some(&b'[') && is_timestamp(bytes);
    if !leading && starts.peek().is_some_and(|&at| !glued(bytes[at - 1])) {
        starts.next();
    }
    let mut from = 0;
    starts
        .chain(std::iter::once(line.len()))
        .filter_map(move |to| {
            let record = &line[from..to];
            from = to;
            (!record.is_empty()).then_some(record)
        })
}

/// Does `text` start with a printk timestamp, `[` blanks, seconds, `.`, six digits, `]`?
fn is_timestamp(text: &[u8]) -> bool {
    let rest = &text[1..];
    let blanks = rest.iter().take_while(|&&c| c == b' ').count();
    let rest = &rest[blanks..];
    let secs = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = &rest[secs..];
    secs > 0
        && rest.len() >= 8
        && rest[0] == b'.'
        && rest[1..7].iter().all(u8::is_ascii_digit)
        && rest[7] == b']'
}

/// rsyslog's escape of a newline inside a record.
const RSYSLOG_NEWLINE: &str = "#012";

/// ANSI colour and cursor sequences (`ESC [ ... m`) and LAVA's
/// `<LAVA_SIGNAL_ENDTC name>` markers.
static SPLICED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("\x1b\\[[0-9;?]*[A-Za-z]|<LAVA_SIGNAL_[A-Z]+[^>]{0,200}>").expect("static regex")
});

#[cfg(test)]
mod tests;
