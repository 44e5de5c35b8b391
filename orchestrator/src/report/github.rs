//! The GitHub Actions reporter: an `::error` annotation per failing test,
//! each guest console folded into a log group at the end (so a CI log shows
//! why a guest died), and the summary appended to the job summary page.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::outcome::{RunInfo, TestResult};
use crate::report::sink::{self, Reporter, ReporterError};
use crate::report::summary;
use crate::run::event::{Event, Stamped};

/// Console lines shown per guest at the end of a run.
const CONSOLE_LINES: usize = 200;

pub struct GithubActions {
    results_dir: PathBuf,
    /// `GITHUB_STEP_SUMMARY`: the job summary file.
    step_summary: Option<PathBuf>,
    info: Option<RunInfo>,
    results: Vec<TestResult>,
}

impl GithubActions {
    /// When running under GitHub Actions (`GITHUB_ACTIONS=true`).
    pub fn from_env(results_dir: &Path) -> Option<Self> {
        let github = std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true");
        github.then(|| GithubActions {
            results_dir: results_dir.to_path_buf(),
            step_summary: std::env::var_os("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            info: None,
            results: Vec::new(),
        })
    }

    fn finished(&self) -> Result<(), ReporterError> {
        let mut consoles: Vec<PathBuf> = std::fs::read_dir(&self.results_dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        consoles.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("console-"))
        });
        consoles.sort();
        for console in consoles {
            let _ = print_console_group(&console, CONSOLE_LINES);
        }
        let (Some(path), Some(info)) = (&self.step_summary, &self.info) else {
            return Ok(());
        };
        let text = summary::render(info, &self.results);
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{text}"))
            .map_err(|error| ReporterError::new("github", error))
    }
}

impl Reporter for GithubActions {
    fn name(&self) -> &'static str {
        "github"
    }

    fn report(&mut self, event: &Stamped) -> Result<(), ReporterError> {
        match &event.event {
            Event::RunStarted { info, .. } => self.info = Some(info.clone()),
            Event::TestFinished { result, .. } => {
                if result.fails_run() {
                    let _ = writeln!(std::io::stderr(), "{}", annotation(result));
                }
                sink::keep(&mut self.results, result.clone());
            }
            Event::RunFinished => self.finished()?,
            _ => {}
        }
        Ok(())
    }
}

/// `::error title=<test>::<headline>` for a failing result.
pub fn annotation(result: &TestResult) -> String {
    let title = result
        .headline()
        .map_or(result.status.as_str(), |f| f.title.as_str());
    format!(
        "::error title={}::{}",
        workflow_property(&result.name),
        workflow_data(title)
    )
}

/// GitHub workflow command data ends at a newline and treats '%' specially.
fn workflow_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Property values also end at ':' and ','.
fn workflow_property(text: &str) -> String {
    workflow_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The last `lines` lines of `text` as a folded GitHub Actions log group.
/// Workflow commands are switched off inside (`::stop-commands::`), so a
/// guest line that happens to start with `::` cannot act on the workflow;
/// `token` must not occur in `text`.
pub fn github_group(title: &str, text: &str, lines: usize, token: &str) -> String {
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    let mut out = format!("::group::{}\n", workflow_data(title));
    if tail.len() < all.len() {
        out.push_str(&format!("[last {} of {} lines]\n", tail.len(), all.len()));
    }
    out.push_str(&format!("::stop-commands::{token}\n"));
    for line in tail {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("::{token}::\n::endgroup::\n"));
    out
}

/// Print the tail of a guest console log (`path`) to stderr as a GitHub
/// Actions log group; for runs where `GITHUB_ACTIONS=true`.
pub fn print_console_group(path: &Path, lines: usize) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let token = format!("kcycle-{}-{nanos}", std::process::id());
    let title = format!("guest console {}", path.display());
    std::io::stderr().write_all(github_group(&title, &text, lines, &token).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_group_folds_the_tail_with_commands_off() {
        let text = "one\n::error::from the guest\nthree\n";
        assert_eq!(
            github_group("guest console a,b", text, 2, "T"),
            "::group::guest console a,b\n[last 2 of 3 lines]\n::stop-commands::T\n\
             ::error::from the guest\nthree\n::T::\n::endgroup::\n"
        );
        assert_eq!(
            github_group("c", "only\n", 10, "T"),
            "::group::c\n::stop-commands::T\nonly\n::T::\n::endgroup::\n"
        );
    }

    #[test]
    fn print_console_group_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, "Linux version 6.12\n").unwrap();
        print_console_group(&path, 5).unwrap();
        assert!(print_console_group(&dir.path().join("missing.log"), 5).is_err());
    }

    #[test]
    fn annotation_escapes_the_name() {
        assert_eq!(workflow_property("a:b,c%"), "a%3Ab%2Cc%25");
        assert_eq!(workflow_data("x\ny"), "x%0Ay");
    }
}
