//! The terminal view of a run, fed by events.
//!
//! On a terminal: one spinner line per guest (current test, step, elapsed)
//! and a totals line by status. Otherwise (CI logs, pipes): one plain line
//! per finished result, `[n/m] name status time`, plus guest boots and
//! notices. Failures are printed with their finding titles as they happen.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::outcome::TestResult;
use crate::run::Event;
use crate::status::Status;

pub struct Terminal {
    bars: Option<Bars>,
    /// Test names of the plan; other results are selftest subtests.
    planned_names: std::collections::BTreeSet<String>,
    planned: usize,
    finished: usize,
    totals: BTreeMap<Status, usize>,
    /// Emit GitHub Actions workflow commands (`::error`) for failures.
    github: bool,
    /// Where the full logs are, to point failures at them.
    results_dir: Option<std::path::PathBuf>,
}

struct Bars {
    multi: MultiProgress,
    guests: BTreeMap<usize, ProgressBar>,
    totals: ProgressBar,
}

impl Terminal {
    /// `fancy`: draw progress bars (stderr is a terminal and --progress allows it).
    pub fn new(fancy: bool, github: bool) -> Self {
        let bars = fancy.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let totals = multi.add(ProgressBar::new_spinner());
            totals.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            Bars {
                multi,
                guests: BTreeMap::new(),
                totals,
            }
        });
        Terminal {
            bars,
            planned_names: Default::default(),
            planned: 0,
            finished: 0,
            totals: BTreeMap::new(),
            github,
            results_dir: None,
        }
    }

    /// Name the results directory in failure lines.
    pub fn with_results_dir(mut self, dir: &Path) -> Self {
        self.results_dir = Some(dir.to_path_buf());
        self
    }

    pub fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { tests, info } => {
                self.planned = tests.len();
                self.planned_names = tests.iter().cloned().collect();
                self.line(&format!(
                    "kcycle: {} tests on kernel {} ({})",
                    tests.len(),
                    if info.kernel_release.is_empty() {
                        "?"
                    } else {
                        &info.kernel_release
                    },
                    if info.accel.is_empty() {
                        "accel ?"
                    } else {
                        &info.accel
                    },
                ));
            }
            Event::GuestBooting { guest, reason } => {
                self.guest_message(*guest, &format!("booting ({reason})"));
                if self.bars.is_none() {
                    self.line(&format!("guest {guest}: booting ({reason})"));
                }
            }
            Event::GuestReady { guest, seconds } => {
                self.guest_message(*guest, &format!("ready after {seconds:.1}s"));
                if self.bars.is_none() {
                    self.line(&format!("guest {guest}: ready after {seconds:.1}s"));
                }
            }
            Event::TestStarted { guest, test } => self.guest_message(*guest, test),
            Event::StepStarted { guest, test, step } => {
                self.guest_message(*guest, &format!("{test}: {step}"))
            }
            Event::TestFinished { result, guest } => self.finished(result, *guest),
            Event::Notice { message } => self.line(&format!("kcycle: {message}")),
            Event::RunFinished => {
                if let Some(bars) = self.bars.take() {
                    for bar in bars.guests.values() {
                        bar.finish_and_clear();
                    }
                    bars.totals.finish_and_clear();
                }
            }
        }
    }

    fn finished(&mut self, result: &TestResult, guest: usize) {
        *self.totals.entry(result.status).or_default() += 1;
        let mut line = if self.planned_names.contains(&result.name) || self.planned == 0 {
            self.finished += 1;
            let width = self.planned.max(self.finished).to_string().len();
            format!(
                "[{:>width$}/{}] {} {} {}",
                self.finished,
                self.planned.max(self.finished),
                result.name,
                result.status,
                seconds(result.duration),
            )
        } else if result.fails_run() {
            // A selftest subtest: only failures get a line of their own.
            format!("      subtest {} {}", result.name, result.status)
        } else {
            if let Some(bars) = &self.bars {
                bars.totals.set_message(self.totals_line());
            }
            return;
        };
        if result.fails_run() {
            for finding in &result.findings {
                line.push_str(&format!("\n      {}: {}", finding.kind, finding.title));
                if let Some(attribution) = &finding.attribution {
                    line.push_str(&format!(" ({attribution})"));
                }
            }
            if let Some(dir) = &self.results_dir {
                line.push_str(&format!(
                    "\n      logs: {} (test \"{}\": out, err, dmesg), console: {}",
                    dir.join("results.json").display(),
                    result.name,
                    dir.join(format!("console-{}-guest{guest}.log", result.suite))
                        .display()
                ));
            }
            if self.github {
                let title = result
                    .headline()
                    .map_or(result.status.as_str(), |f| f.title.as_str());
                line.push_str(&format!(
                    "\n::error title={}::{}",
                    workflow_property(&result.name),
                    workflow_data(title)
                ));
            }
        }
        self.line(&line);
        if let Some(bars) = &self.bars {
            bars.totals.set_message(self.totals_line());
        }
    }

    fn totals_line(&self) -> String {
        let parts: Vec<String> = self
            .totals
            .iter()
            .rev()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        format!(
            "{}/{} done: {}",
            self.finished,
            self.planned,
            parts.join(", ")
        )
    }

    fn guest_message(&mut self, guest: usize, message: &str) {
        let Some(bars) = &mut self.bars else { return };
        let bar = bars.guests.entry(guest).or_insert_with(|| {
            let bar = bars.multi.insert(0, ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} guest {prefix}: {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(guest.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        bar.reset_elapsed();
        bar.set_message(message.to_string());
    }

    fn line(&self, text: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
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
}
