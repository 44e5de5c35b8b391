//! A run session: the plan, the guests and the reporters, from the first
//! event to the exit status. Guest threads only send events into a channel;
//! one reporter thread feeds the [`FanOut`], so a guest never waits for a
//! reporter's fsync.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use super::command::ModuleSources;
use super::event::{Event, Stamped};
use super::scheduler::{run_plan, MachineFactory, RunOptions};
use crate::exit::ExitStatus;
use crate::kernel::Manifest;
use crate::outcome::{self, RunInfo, TestResult};
use crate::report::sink::{self, FanOut, Reporter, ReporterError};
use crate::suite::{Suite, Test};
use crate::sys::{child, Cancel};

/// Everything a run needs besides its reporters.
pub struct Session<'a> {
    pub plan: &'a [(&'a Suite, &'a Test)],
    pub options: RunOptions,
    pub factory: &'a dyn MachineFactory,
    pub sources: &'a ModuleSources,
    /// Cancelled: the scheduler stops handing out tests, the rest is notrun.
    pub cancel: &'a Cancel,
    pub info: RunInfo,
}

/// How a session ended.
#[derive(Debug)]
pub struct Finished {
    /// Every planned test's result (and selftest subtests'), last one per name.
    pub results: Vec<TestResult>,
    /// Reporters that could not write; their files stop at the last good write.
    pub reporter_failures: Vec<ReporterError>,
    /// What cancelled the run (e.g. "SIGHUP"), if anything did.
    pub cancelled: Option<&'static str>,
}

impl Finished {
    /// 3 when the run was cancelled or a reporter failed, else from the results.
    pub fn exit_status(&self) -> ExitStatus {
        if self.cancelled.is_some() || !self.reporter_failures.is_empty() {
            ExitStatus::Infrastructure
        } else {
            outcome::exit_status(&self.results)
        }
    }
}

impl Session<'_> {
    /// Run the plan, every event going to `reporters` in order.
    pub fn run(self, reporters: Vec<Box<dyn Reporter + '_>>) -> Finished {
        let (sender, events) = mpsc::channel::<Stamped>();
        let (results, reporter_failures) = std::thread::scope(|scope| {
            let reporting = scope.spawn(move || report_all(events, FanOut::new(reporters)));
            let emit = |event: Event| {
                // The reporter thread only ends when the sender is dropped.
                let _ = sender.send(Stamped::now(event));
            };
            emit(Event::RunStarted {
                info: self.info.clone(),
                tests: self.plan.iter().map(|(_, t)| t.name.clone()).collect(),
            });
            run_plan(
                self.plan,
                self.options,
                self.factory,
                self.sources,
                self.cancel,
                &emit,
            );
            drop(sender);
            reporting.join().unwrap_or_else(|_| {
                let panicked = ReporterError::new("reporter thread", "it panicked");
                (Vec::new(), vec![panicked])
            })
        });
        Finished {
            results,
            reporter_failures,
            cancelled: self.cancel.reason(),
        }
    }
}

/// The reporter thread: every event to the fan-out; the results kept.
fn report_all(
    events: mpsc::Receiver<Stamped>,
    mut fan: FanOut<'_>,
) -> (Vec<TestResult>, Vec<ReporterError>) {
    let mut results = Vec::new();
    loop {
        let event = match events.try_recv() {
            Ok(event) => event,
            Err(mpsc::TryRecvError::Empty) => {
                fan.idle();
                match events.recv() {
                    Ok(event) => event,
                    Err(_) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        if let Event::TestFinished { result, .. } = &event.event {
            sink::keep(&mut results, result.clone());
        }
        fan.report(&event);
    }
    fan.idle();
    (results, fan.into_failures())
}

/// The facts about a run that reports carry: kernel, QEMU, accel, host, commit.
pub fn run_info(name: String, kernel: &Manifest, accel: &str, shard: Option<String>) -> RunInfo {
    RunInfo {
        name,
        kernel_release: kernel.kernel_release.clone(),
        kernel_source: kernel.source.clone(),
        qemu_version: qemu_version(),
        accel: accel.into(),
        commit: git_commit(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        cmdline: std::env::args().collect(),
        shard,
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default(),
    }
}

/// `qemu-system-x86_64 --version`'s first line, or empty.
fn qemu_version() -> String {
    crate::vm::qemu_version(&crate::vm::qemu_binary())
        .ok()
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// kcycle's own commit, when run from a git checkout.
fn git_commit() -> String {
    let mut git = Command::new("git");
    git.args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    child::capture(&mut git, Duration::from_secs(30))
        .ok()
        .filter(|o| o.status.success())
        .map(|o| o.stdout.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Counts events and idles, in order.
    struct Counter(Arc<Mutex<Vec<&'static str>>>);

    impl Reporter for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn report(&mut self, _: &Stamped) -> Result<(), ReporterError> {
            self.0.lock().unwrap().push("event");
            Ok(())
        }
        fn idle(&mut self) -> Result<(), ReporterError> {
            self.0.lock().unwrap().push("idle");
            Ok(())
        }
    }

    #[test]
    fn reporters_hear_of_idleness_once_a_burst_is_drained() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (send, receive) = mpsc::channel();
        for _ in 0..3 {
            send.send(Stamped::now(Event::RunFinished)).unwrap();
        }
        drop(send);
        let fan = FanOut::new(vec![Box::new(Counter(Arc::clone(&seen)))]);
        report_all(receive, fan);
        // Queued events come one after another; the end is an idle too.
        assert_eq!(*seen.lock().unwrap(), ["event", "event", "event", "idle"]);
    }
}
