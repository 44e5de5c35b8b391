//! What the user sees while a kernel builds: a spinner with the phase, the
//! current make stage and elapsed time on a terminal; plain lines (phase
//! changes and a heartbeat) otherwise. Everything goes to stderr; stdout is
//! reserved for the artifact directory or the manifest.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often plain mode repeats the current stage, so CI logs show life.
const HEARTBEAT: Duration = Duration::from_secs(60);

pub struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
    phase: String,
    stage: String,
    last_line: Instant,
}

impl Progress {
    /// `spinner`: draw an indicatif spinner (the caller decided from
    /// `--progress` and whether stderr is a terminal); else print plain lines.
    pub fn new(spinner: bool) -> Self {
        let bar = spinner.then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner:.green} [{elapsed_precise}] {prefix:.bold} {wide_msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            start: Instant::now(),
            phase: String::new(),
            stage: String::new(),
            last_line: Instant::now(),
        }
    }

    /// A new phase of the build, e.g. `configuring` or `make bzImage modules`.
    pub fn phase(&mut self, phase: &str) {
        self.phase = phase.to_string();
        self.stage.clear();
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(phase.to_string());
                bar.set_message("");
            }
            None => {
                eprintln!("kcycle: [{}] {phase}", elapsed(self.start));
                self.last_line = Instant::now();
            }
        }
    }

    /// A line of make output: updates the stage if it names one.
    pub fn line(&mut self, line: &str) {
        if let Some(stage) = super::make::stage(line) {
            if let Some(bar) = &self.bar {
                bar.set_message(stage.clone());
            }
            self.stage = stage;
        }
    }

    /// Called periodically: plain mode prints a heartbeat.
    pub fn tick(&mut self) {
        if self.bar.is_none() && self.last_line.elapsed() >= HEARTBEAT {
            eprintln!(
                "kcycle: [{}] {}: {}",
                elapsed(self.start),
                self.phase,
                if self.stage.is_empty() {
                    "working"
                } else {
                    &self.stage
                }
            );
            self.last_line = Instant::now();
        }
    }

    /// A message that must stay visible (warnings).
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("kcycle: {text}")),
            None => eprintln!("kcycle: {text}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn elapsed(start: Instant) -> String {
    let secs = start.elapsed().as_secs();
    format!("{:02}:{:02}", secs / 60, secs % 60)
}
