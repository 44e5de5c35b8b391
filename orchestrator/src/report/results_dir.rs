//! The results directory: junit.xml, results.json and summary.md, rewritten
//! after every finished test. Each file is written to a temporary name and
//! renamed over the old one, so at any instant — a crash of kcycle, a killed
//! CI job, a full disk — the directory holds valid reports of every test
//! finished so far.

use std::path::{Path, PathBuf};

use crate::outcome::{RunInfo, TestResult};

pub const JUNIT_FILE: &str = "junit.xml";
pub const RESULTS_FILE: &str = "results.json";
pub const SUMMARY_FILE: &str = "summary.md";

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
        match self.results.iter_mut().find(|r| r.name == result.name) {
            Some(existing) => *existing = result,
            None => self.results.push(result),
        }
        self.flush()
    }

    fn flush(&self) -> Result<(), ResultsError> {
        let junit = super::junit::render(&self.run, &self.results)?;
        write_atomic(&self.dir.join(JUNIT_FILE), junit.as_bytes())?;
        let json = super::igt_json::render(&self.run, &self.results);
        let json = serde_json::to_string_pretty(&json).unwrap_or_default();
        write_atomic(&self.dir.join(RESULTS_FILE), json.as_bytes())?;
        let summary = super::summary::render(&self.run, &self.results);
        write_atomic(&self.dir.join(SUMMARY_FILE), summary.as_bytes())?;
        Ok(())
    }
}
