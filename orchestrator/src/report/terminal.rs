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

use crate::outcome::{RunInfo, TestResult};
use crate::report::{sink, summary};
use crate::run::Event;
use crate::status::Status;

pub struct Terminal {
    bars: Option<Bars>,
    /// Test names of the plan; other results are selftest subtests.
    planned_names: std::collections::BTreeSet<String>,
    planned: usize,
    finished: usize,
    totals: BTreeMap<Status, usize>,
    /// Where the full logs are, to point failures at them.
    results_dir: Option<std::path::PathBuf>,
    /// For the summary printed at the end.
    info: Option<RunInfo>,
    results: Vec<TestResult>,
}

struct Bars {
    multi: MultiProgress,
    guests: BTreeMap<usize, ProgressBar>,
    totals: ProgressBar,
}

impl Terminal {
    /// `fancy`: draw progress bars (stderr is a terminal and --progress allows it).
    pub fn new(fancy: bool) -> Self {
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
            results_dir: None,
            info: None,
            results: Vec::new(),
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
                self.info = Some(info.clone());
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
                self.guest_line(*guest, &format!("booting ({reason})"))
            }
            Event::GuestRestoring { guest, reason } => {
                self.guest_line(*guest, &format!("restoring its saved state ({reason})"))
            }
            Event::GuestReady { guest, seconds } => {
                self.guest_line(*guest, &format!("ready after {seconds:.1}s"))
            }
            Event::TestStarted { guest, test } => self.guest_message(*guest, test),
            Event::StepStarted { guest, test, step } => {
                self.guest_message(*guest, &format!("{test}: {step}"))
            }
            Event::TestFinished { result, guest } => {
                self.finished(result, *guest);
                sink::keep(&mut self.results, result.clone());
            }
            Event::Notice { message } => self.line(&format!("kcycle: {message}")),
            Event::RunFinished => self.run_finished(),
        }
    }

    /// Clear the bars; print the summary and where the results are.
    fn run_finished(&mut self) {
        if let Some(bars) = self.bars.take() {
            for bar in bars.guests.values() {
                bar.finish_and_clear();
            }
            bars.totals.finish_and_clear();
        }
        if let Some(info) = &self.info {
            self.line(&format!("\n{}", summary::render(info, &self.results)));
        }
        if let Some(dir) = &self.results_dir {
            self.line(&format!("kcycle: results in {}", dir.display()));
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
        if let Some(first) = result.flaky_attempts.first() {
            line.push_str(&format!(
                " (flaky: passed on attempt {}; {first})",
                result.flaky_attempts.len() + 1
            ));
        }
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
                    dir.join(format!("console-{}-guest{guest}*.log", result.suite))
                        .display()
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

    /// A guest's news: on its bar, or as a line when there are no bars.
    fn guest_line(&mut self, guest: usize, message: &str) {
        self.guest_message(guest, message);
        if self.bars.is_none() {
            self.line(&format!("guest {guest}: {message}"));
        }
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
