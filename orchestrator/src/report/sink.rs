//! Reporters as event sinks: the terminal view, the results directory and
//! the GitHub Actions output each implement [`Reporter`]; a [`FanOut`]
//! hands every event to each of them in order. A reporter that fails is
//! dropped from the fan-out, the others are told (a notice), and the
//! failure is kept for the run's exit status.

use crate::outcome::TestResult;
use crate::report::results_dir::ResultsWriter;
use crate::report::terminal::Terminal;
use crate::run::event::{Event, Stamped};

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A reporter could not write.
#[derive(Debug, thiserror::Error)]
#[error("failed to write the {reporter} report")]
pub struct ReporterError {
    pub reporter: &'static str,
    #[source]
    pub source: Cause,
}

impl ReporterError {
    pub fn new(reporter: &'static str, source: impl Into<Cause>) -> Self {
        ReporterError {
            reporter,
            source: source.into(),
        }
    }
}

/// Consumes the events of a run. Called from one thread, in event order.
pub trait Reporter: Send {
    /// Short name for messages: "terminal", "results", "github".
    fn name(&self) -> &'static str;
    fn report(&mut self, event: &Stamped) -> Result<(), ReporterError>;
    /// No event is waiting: the moment to write what a burst of events
    /// changed once, rather than once per event.
    fn idle(&mut self) -> Result<(), ReporterError> {
        Ok(())
    }
}

/// Every event to every working reporter, in the order they were given.
#[derive(Default)]
pub struct FanOut<'a> {
    reporters: Vec<Box<dyn Reporter + 'a>>,
    failures: Vec<ReporterError>,
}

impl<'a> FanOut<'a> {
    pub fn new(reporters: Vec<Box<dyn Reporter + 'a>>) -> Self {
        FanOut {
            reporters,
            failures: Vec::new(),
        }
    }

    pub fn report(&mut self, event: &Stamped) {
        self.each(|reporter| reporter.report(event));
    }

    /// Tell every reporter that no event is waiting.
    pub fn idle(&mut self) {
        self.each(|reporter| reporter.idle());
    }

    fn each(
        &mut self,
        mut call: impl FnMut(&mut Box<dyn Reporter + 'a>) -> Result<(), ReporterError>,
    ) {
        let mut failed = Vec::new();
        self.reporters.retain_mut(|reporter| match call(reporter) {
            Ok(()) => true,
            Err(error) => {
                failed.push(error);
                false
            }
        });
        for error in failed {
            // Its earlier output stays valid; it just stops here. Say so.
            let message = format!(
                "{}; it gets no further events",
                crate::sys::error::chain(&error)
            );
            self.failures.push(error);
            self.report(&Stamped::now(Event::Notice { message }));
        }
    }

    /// The reporters that failed, in order.
    pub fn failures(&self) -> &[ReporterError] {
        &self.failures
    }

    pub fn into_failures(self) -> Vec<ReporterError> {
        self.failures
    }
}

impl Reporter for Terminal {
    fn name(&self) -> &'static str {
        "terminal"
    }

    fn report(&mut self, event: &Stamped) -> Result<(), ReporterError> {
        self.event(&event.event);
        Ok(())
    }
}

impl Reporter for ResultsWriter {
    fn name(&self) -> &'static str {
        "results"
    }

    fn report(&mut self, event: &Stamped) -> Result<(), ReporterError> {
        match &event.event {
            // Written when the burst is over (`idle`): a test ends with its
            // result and every subtest's (a sweep's hundreds), and rewriting
            // every report per result would make that burst quadratic.
            Event::TestFinished { result, .. } => {
                self.keep(result.clone());
                Ok(())
            }
            // Once more at the end: the guests' consoles are in the directory
            // now, so the HTML report can link them.
            Event::RunFinished => self
                .finish()
                .map_err(|error| ReporterError::new("results", error)),
            _ => Ok(()),
        }
    }

    fn idle(&mut self) -> Result<(), ReporterError> {
        self.flush_pending()
            .map_err(|error| ReporterError::new("results", error))
    }
}

/// Keep a result, replacing an earlier one of the same name (a rerun).
pub fn keep(results: &mut Vec<TestResult>, result: TestResult) {
    match results.iter_mut().find(|r| r.name == result.name) {
        Some(existing) => *existing = result,
        None => results.push(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what it saw; fails on the `fail_at`th event.
    struct Probe {
        name: &'static str,
        seen: Arc<Mutex<Vec<String>>>,
        fail_at: Option<usize>,
        count: usize,
    }

    impl Reporter for Probe {
        fn name(&self) -> &'static str {
            self.name
        }

        fn report(&mut self, event: &Stamped) -> Result<(), ReporterError> {
            self.count += 1;
            if self.fail_at == Some(self.count) {
                return Err(ReporterError::new(self.name, "disk full"));
            }
            let text = match &event.event {
                Event::Notice { message } => format!("notice: {message}"),
                other => format!("{other:?}")
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            };
            self.seen.lock().unwrap().push(text);
            Ok(())
        }
    }

    fn probe(
        name: &'static str,
        fail_at: Option<usize>,
    ) -> (Box<dyn Reporter>, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let probe = Probe {
            name,
            seen: Arc::clone(&seen),
            fail_at,
            count: 0,
        };
        (Box::new(probe), seen)
    }

    #[test]
    fn every_reporter_gets_every_event_in_order() {
        let (a, seen_a) = probe("a", None);
        let (b, seen_b) = probe("b", None);
        let mut fan = FanOut::new(vec![a, b]);
        fan.report(&Stamped::now(Event::Notice {
            message: "one".into(),
        }));
        fan.report(&Stamped::now(Event::RunFinished));
        assert!(fan.failures().is_empty());
        for seen in [seen_a, seen_b] {
            assert_eq!(*seen.lock().unwrap(), ["notice: one", "RunFinished"]);
        }
    }

    #[test]
    fn a_failing_reporter_is_dropped_named_and_kept_for_the_exit_status() {
        let (broken, seen_broken) = probe("results", Some(2));
        let (terminal, seen_terminal) = probe("terminal", None);
        let mut fan = FanOut::new(vec![broken, terminal]);
        for message in ["one", "two", "three"] {
            fan.report(&Stamped::now(Event::Notice {
                message: message.into(),
            }));
        }
        assert_eq!(*seen_broken.lock().unwrap(), ["notice: one"]);
        assert_eq!(
            *seen_terminal.lock().unwrap(),
            [
                "notice: one",
                "notice: two",
                "notice: failed to write the results report: disk full; it gets no further events",
                "notice: three"
            ]
        );
        let failures = fan.into_failures();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].reporter, "results");
    }
}
