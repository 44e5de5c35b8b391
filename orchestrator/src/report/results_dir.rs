//! The results directory: junit.xml, results.json, summary.md and index.html, rewritten
//! after every finished test. Each file is written to a temporary name and
//! renamed over the old one, so at any instant — a crash of kcycle, a killed
//! CI job, a full disk — the directory holds valid reports of every test
//! finished so far.

use std::path::{Path, PathBuf};

use crate::outcome::{RunInfo, TestResult};

pub const JUNIT_FILE: &str = "junit.xml";
pub const RESULTS_FILE: &str = "results.json";
pub const SUMMARY_FILE: &str = "summary.md";
pub const HTML_FILE: &str = "index.html";

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("failed to create results directory {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to write {path} (results so far are still in the previous version of the file)"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Junit(#[from] super::junit::JunitError),
}

/// Create `dir` (and parents) if needed.
pub fn create(dir: &Path) -> Result<(), ResultsError> {
    std::fs::create_dir_all(dir).map_err(|source| ResultsError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

/// Replace `path` with `bytes` atomically ([`crate::sys::fs::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    crate::sys::fs::write_atomic(path, bytes).map_err(|source| ResultsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Keeps the results of a run and rewrites the reports as results arrive.
pub struct ResultsWriter {
    dir: PathBuf,
    run: RunInfo,
    results: Vec<TestResult>,
    /// Results kept since the reports were last written.
    pending: bool,
}

impl ResultsWriter {
    /// Start a run's reports: writes empty but valid files at once, so even a
    /// run that dies before its first test leaves something to read.
    pub fn create(dir: &Path, run: RunInfo) -> Result<Self, ResultsError> {
        create(dir)?;
        let writer = ResultsWriter {
            dir: dir.to_path_buf(),
            run,
            results: Vec::new(),
            pending: false,
        };
        writer.flush()?;
        Ok(writer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn results(&self) -> &[TestResult] {
        &self.results
    }

    pub fn run_info(&self) -> &RunInfo {
        &self.run
    }

    /// Update the facts about the run (e.g. once the guest reports its kernel).
    pub fn set_run_info(&mut self, run: RunInfo) -> Result<(), ResultsError> {
        self.run = run;
        self.flush()
    }

    /// Add a finished test (replacing an earlier result of the same name) and rewrite the reports.
    pub fn record(&mut self, result: TestResult) -> Result<(), ResultsError> {
        self.keep(result);
        self.flush_pending()
    }

    /// Add a finished test without writing yet ([`ResultsWriter::flush_pending`] writes).
    pub fn keep(&mut self, result: TestResult) {
        super::sink::keep(&mut self.results, result);
        self.pending = true;
    }

    /// Rewrite the reports if a result was kept since they were last written.
    pub fn flush_pending(&mut self) -> Result<(), ResultsError> {
        if std::mem::take(&mut self.pending) {
            self.flush()?;
        }
        Ok(())
    }

    /// Rewrite the reports once more at the end of the run: the guests'
    /// console logs are copied in when they shut down, after the last test,
    /// and index.html links them.
    pub fn finish(&mut self) -> Result<(), ResultsError> {
        self.pending = false;
        self.flush()
    }

    fn flush(&self) -> Result<(), ResultsError> {
        write_reports(&self.dir, &self.run, &self.results)
    }
}

/// Write every report of `results` into `dir`, each file atomically: the
/// writer after each test, `kcycle merge` and `kcycle report` all go through here.
pub fn write_reports(
    dir: &Path,
    run: &RunInfo,
    results: &[TestResult],
) -> Result<(), ResultsError> {
    let junit = super::junit::render(run, results)?;
    write_atomic(&dir.join(JUNIT_FILE), junit.as_bytes())?;
    let json = super::igt_json::render(run, results);
    let json = serde_json::to_string_pretty(&json).unwrap_or_default();
    write_atomic(&dir.join(RESULTS_FILE), json.as_bytes())?;
    let summary = super::summary::render(run, results);
    write_atomic(&dir.join(SUMMARY_FILE), summary.as_bytes())?;
    write_html(dir, run, results)
}

/// Write only index.html (for `kcycle report`, which leaves the other files as they are).
pub fn write_html(dir: &Path, run: &RunInfo, results: &[TestResult]) -> Result<(), ResultsError> {
    let links = super::html::Links {
        consoles: console_logs(dir),
    };
    let html = super::html::render(run, results, &links);
    write_atomic(&dir.join(HTML_FILE), html.as_bytes())
}

/// Guest console logs in `dir` and one level below (merged shards keep
/// theirs in `shard-I-of-N/`), relative to `dir`, sorted.
pub fn console_logs(dir: &Path) -> Vec<String> {
    fn consoles_in(dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("console-") && n.ends_with(".log"))
            .collect()
    }
    let mut logs = consoles_in(dir);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten().filter(|e| e.path().is_dir()) {
            let Ok(sub) = entry.file_name().into_string() else {
                continue;
            };
            logs.extend(
                consoles_in(&entry.path())
                    .into_iter()
                    .map(|n| format!("{sub}/{n}")),
            );
        }
    }
    logs.sort();
    logs
}
