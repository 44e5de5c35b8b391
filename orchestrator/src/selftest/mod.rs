//! Selftest results per subtest, read from the kernel log (pure).
//!
//! Two formats: i915's selftest runner (`i915: Running <caller>/<test>`,
//! `i915/<caller>: <test> failed with error <n>`, also used by
//! `rust_i915_table`) and KTAP, which KUnit prints. Both parsers take the
//! kernel log's message texts with the line prefix (timestamp, level) already
//! removed but the message's own indentation kept.

mod i915;
mod ktap;

pub use i915::i915_subtests;
pub use ktap::ktap_subtests;

/// How one subtest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubtestOutcome {
    Pass,
    /// With the kernel's error number or KTAP's diagnostic.
    Fail(String),
    Skip(String),
    /// Started but the log ends before its result (the guest crashed or hung).
    Incomplete,
}

/// One subtest's result and where it is in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtest {
    /// Name parts joined by '@', e.g. `i915_gem_object_mock_selftests@igt_gem_huge`;
    /// characters outside IGT's `[A-Za-z0-9_-]` are replaced by '-'.
    pub name: String,
    pub outcome: SubtestOutcome,
    /// Index of the message that started this subtest (for log excerpts).
    pub first_line: usize,
    /// Index one past the subtest's last message.
    pub end_line: usize,
}

/// Make one name part fit IGT's subtest alphabet.
fn sanitize(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}
