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
    let text = if text.contains('\x1b') || text.contains("<LAVA_SIGNAL_") {
        cleaned = SPLICED.replace_all(text, "");
        cleaned.as_ref()
    } else {
        text
    };
    let mut walk = report::Walk::default();
    for (index, raw) in text.split('\n').enumerate() {
        // rsyslog escapes a record's newlines as `#012`: one line, several
        // kernel lines.
        if memchr::memchr(b'#', raw.as_bytes()).is_none() {
            walk.line(index + 1, raw);
            continue;
        }
        let mut pieces = raw.split(RSYSLOG_NEWLINE);
        walk.line(index + 1, pieces.next().unwrap_or(""));
        for piece in pieces {
            walk.continuation(index + 1, piece);
        }
    }
    walk.close();
    walk.into_findings()
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
