//! The suite model: TOML suites parsed and validated into plain values.
//!
//! A suite file names the tests to run in one kind of guest; a test is an
//! ordered list of steps (load, selftest, unload, reload) repeated `cycles`
//! times. Parsing is strict (`deny_unknown_fields`) and every error names the
//! file, line, column and field, because a typo in a suite must never turn
//! into a silently skipped check.

mod file;
pub mod implicit;
mod known;
mod pattern;
mod select;
mod step;
mod write;

pub use file::{load_known_issues, parse_known_issues, SuiteError, SuiteSource};
pub use known::{audit, Date, KernelRange, Note};
pub use pattern::{glob_matches, Pattern};
pub use select::{select, SelectError, Shard};
pub use step::{Action, ParamValue, Params, SelftestKind, Step, SweepMethod, DEFAULT_SWEEP_LIMIT};
pub use write::to_toml;

use std::time::Duration;

/// Where the tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestMode {
    /// QEMU with emulated devices: i915 mock selftests and the Rust table need no GPU.
    Emulated,
    /// A real Intel GPU passed through with VFIO (self-hosted runners only).
    Passthrough,
}

/// A parsed, validated suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// Short name used in test names: `kcycle@<suite>@<test>`.
    pub name: String,
    pub description: String,
    pub guest: GuestMode,
    /// Added to the guest kernel command line (e.g. `slub_debug=U,rust_i915_*`).
    pub cmdline: Vec<String>,
    /// Default per-step deadline.
    pub step_timeout: Duration,
    pub tests: Vec<Test>,
    pub known_issues: Vec<KnownIssue>,
}

/// One test: steps run in order, `cycles` times.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// Full IGT-style name: `kcycle@<suite>@<test>`.
    pub name: String,
    pub description: String,
    pub cycles: u32,
    pub steps: Vec<Step>,
    /// A control: the test must come out flagged with each of these, or it fails.
    pub expect: Vec<Expectation>,
}

/// A finding a control test must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Finding kind, e.g. `sysfs-duplicate` or `leaked-slab-cache`: one some check produces.
    pub kind: crate::kind::FindingKind,
    /// Glob the finding's title must match (default `*`).
    pub title: Pattern,
    /// Glob the finding's attribution must match (default `*`), e.g.
    /// `*unload in cycle 2*`: a control checks the blame, not only the find.
    pub attribution: Pattern,
}

/// A finding that is known and does not fail the run; it keeps its status in the reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownIssue {
    /// Glob over full test names.
    pub test: String,
    /// Glob over finding titles.
    pub title: String,
    /// Why it is known: a bug link or a sentence.
    pub reason: String,
    /// The bug tracker's link or id.
    pub bug: Option<String>,
    /// The kernels it happens on; other kernels do not get the entry.
    pub kernel: Option<KernelRange>,
    /// When it was first seen (kept by `kcycle baseline update`).
    pub first_seen: Option<Date>,
    /// After this date the entry still applies but the run warns about it.
    pub expires: Option<Date>,
    /// A flake (`[[flake]]` in a known-issues file): it may or may not
    /// happen, so matching nothing is no unexpected pass.
    pub flake: bool,
}

impl Suite {
    /// Parse a suite from text; `path` is only used in error messages and for
    /// the default suite name.
    pub fn parse(path: &std::path::Path, text: &str) -> Result<Suite, SuiteError> {
        file::parse(SuiteSource::new(path, text))
    }

    /// Read and parse a suite file.
    pub fn load(path: &std::path::Path) -> Result<Suite, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Suite::parse(path, &text)
    }

    /// Every module a step of this suite loads or unloads, in first-use order.
    pub fn modules(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for step in self.tests.iter().flat_map(|t| &t.steps) {
            if let Some(module) = step.module().filter(|m| !seen.contains(m)) {
                seen.push(module);
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests;
