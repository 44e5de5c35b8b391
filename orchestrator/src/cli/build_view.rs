//! What the user sees while a kernel builds, drawn from the library's
//! [`BuildEvent`]s: a spinner with the phase, the current make stage and
//! elapsed time on a terminal; plain lines (phase changes and a heartbeat)
//! otherwise. Everything goes to stderr; stdout is reserved for the artifact
//! directory or the manifest.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use kcycle::kernel::BuildEvent;

/// How often plain mode repeats the current stage, so CI logs show life.
const HEARTBEAT: Duration = Duration::from_secs(60);

pub struct BuildView {
    bar: Option<ProgressBar>,
    start: Instant,
    phase: String,
    stage: String,
    last_line: Instant,
}

impl BuildView {
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
        BuildView {
            bar,
            start: Instant::now(),
            phase: String::new(),
            stage: String::new(),
            last_line: Instant::now(),
        }
    }

    /// A new phase of the build, e.g. `configuring` or `make bzImage modules`.
    fn phase(&mut self, phase: &str) {
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

    /// Draw one event of the build.
    pub fn show(&mut self, event: BuildEvent) {
        match event {
            BuildEvent::Phase(phase) => self.phase(&phase),
            BuildEvent::Stage(stage) => self.stage(stage),
            BuildEvent::Tick => self.tick(),
            BuildEvent::Note(note) => self.note(&note),
        }
    }

    /// The make stage changed.
    fn stage(&mut self, stage: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(stage.clone());
        }
        self.stage = stage;
    }

    /// Called periodically: plain mode prints a heartbeat.
    fn tick(&mut self) {
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
    fn note(&self, text: &str) {
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
}

impl Drop for BuildView {
    fn drop(&mut self) {
        self.finish();
    }
}

fn elapsed(start: Instant) -> String {
    let secs = start.elapsed().as_secs();
    format!("{:02}:{:02}", secs / 60, secs % 60)
}
