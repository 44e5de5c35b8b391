//! The one child-process type. Every child kcycle starts:
//!
//! - runs in its own process group, so a terminal's Ctrl-C reaches kcycle
//!   only (kcycle decides how its children end) and one `kill(-pgid)` takes
//!   any grandchildren holding our pipes with it;
//! - gets a parent-death signal, so a SIGKILLed kcycle leaves nothing behind
//!   (Linux ties it to the spawning *thread*: keep a child on the thread that
//!   started it, as the scheduler's guest threads do);
//! - is killed and reaped when its [`Child`] is dropped, on every path.
//!
//! [`capture`] runs a short command with a deadline; [`run_logged`] runs a
//! long one with a deadline and a cancel token, streaming its output.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::shell;
use super::wait::{self, Stop};

/// How long a terminated child gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);
/// How often waits look at the child.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("failed to start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("`{program}` did not finish within {limit:?} and was killed")]
    TimedOut { program: String, limit: Duration },
    #[error("`{program}` was stopped because kcycle received {signal}")]
    Interrupted {
        program: String,
        signal: &'static str,
    },
}

impl ChildError {
    /// The program was not found (or not executable).
    pub fn not_found(&self) -> bool {
        matches!(self, ChildError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// How to start a child.
#[derive(Debug, Clone, Copy)]
pub struct Spawn {
    /// Sent to the child when the spawning thread dies: SIGKILL for QEMU,
    /// SIGTERM for `make` (so it can remove half-written objects).
    pub death_signal: i32,
    /// A file descriptor the child (and its children) inherit, e.g. a held lock.
    pub inherit_fd: Option<i32>,
}

impl Default for Spawn {
    fn default() -> Self {
        Spawn {
            death_signal: libc::SIGKILL,
            inherit_fd: None,
        }
    }
}

/// A running child. Dropping it kills its process group and reaps it.
pub struct Child {
    child: std::process::Child,
    /// The process group id while the child is unreaped, 0 after.
    pgid: Arc<AtomicI32>,
    status: Option<ExitStatus>,
    program: String,
}

/// Kills a child's process group from another thread (a cancel hook).
#[derive(Debug, Clone)]
pub struct Killer {
    pgid: Arc<AtomicI32>,
}

impl Killer {
    /// SIGKILL the process group if it is still unreaped; the owner reaps it.
    pub fn kill(&self) {
        signal_group(self.pgid.load(Ordering::SeqCst), libc::SIGKILL);
    }
}

/// kill(2) on a whole process group; nothing for 0 (already reaped).
fn signal_group(pgid: i32, signal: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals that process group
        // only (the one spawn created); no memory is touched.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

impl Child {
    /// Start `command` (its stdio as the caller set it up) in a new process group.
    pub fn spawn(command: &mut Command, options: Spawn) -> Result<Child, ChildError> {
        let program = shell::render(command);
        command.process_group(0);
        let Spawn {
            death_signal,
            inherit_fd,
        } = options;
        // SAFETY: only async-signal-safe calls (fcntl, prctl) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if let Some(fd) = inherit_fd {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags >= 0 {
                        libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                    }
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, death_signal);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| ChildError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pgid = child.id() as i32;
        Ok(Child {
            child,
            pgid: Arc::new(AtomicI32::new(pgid)),
            status: None,
            program,
        })
    }

    /// The command line, for messages.
    pub fn program(&self) -> &str {
        &self.program
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn killer(&self) -> Killer {
        Killer {
            pgid: Arc::clone(&self.pgid),
        }
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// The exit status if the child has exited (reaping it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.reaped(status),
                Ok(None) => {}
                // Not our child any more (ECHILD): nothing left to wait for.
                Err(_) => {
                    if let Ok(status) = self.child.wait() {
                        self.reaped(status);
                    }
                }
            }
        }
        self.status
    }

    /// Wait until the child exits, `deadline` passes or `cancel` fires.
    pub fn wait(&mut self, deadline: Instant, cancel: Option<&Cancel>) -> Result<ExitStatus, Stop> {
        wait::poll(deadline, cancel, POLL, || self.try_wait())
    }

    /// Wait up to `timeout` for the child to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.wait(Instant::now() + timeout, None).ok()
    }

    /// Wait as [`Child::wait`]; on a deadline or cancel, terminate the child
    /// (with [`GRACE`]) and say why it was stopped.
    pub fn finish(
        &mut self,
        deadline: Instant,
        limit: Duration,
        cancel: Option<&Cancel>,
    ) -> Result<ExitStatus, ChildError> {
        match self.wait(deadline, cancel) {
            Ok(status) => Ok(status),
            Err(stop) => {
                self.terminate(GRACE);
                Err(self.stopped(stop, limit))
            }
        }
    }

    fn stopped(&self, stop: Stop, limit: Duration) -> ChildError {
        let program = self.program.clone();
        match stop {
            Stop::TimedOut => ChildError::TimedOut { program, limit },
            Stop::Cancelled(signal) => ChildError::Interrupted { program, signal },
        }
    }

    /// SIGTERM the group, give it `grace`, then SIGKILL; always reaped after.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.try_wait().is_none() {
            signal_group(self.pgid.load(Ordering::SeqCst), libc::SIGTERM);
            self.wait_timeout(grace);
        }
        self.kill()
    }

    /// SIGKILL the group and reap. Idempotent.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.try_wait().is_none() {
            self.killer().kill();
            if let Ok(status) = self.child.wait() {
                self.reaped(status);
            }
        }
        self.status
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        // The leader is gone; stragglers in its group still get a SIGKILL.
        signal_group(self.pgid.swap(0, Ordering::SeqCst), libc::SIGKILL);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Output of a finished short command.
#[derive(Debug, Clone)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    /// stdout, or stderr when stdout is empty (tools differ in where `--version` goes).
    pub fn text(&self) -> &str {
        if self.stdout.trim().is_empty() {
            &self.stderr
        } else {
            &self.stdout
        }
    }
}

/// Run a short command to completion with captured output, killed after `limit`.
pub fn capture(command: &mut Command, limit: Duration) -> Result<Captured, ChildError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Child::spawn(command, Spawn::default())?;
    let stdout = child.take_stdout().map(read_all);
    let stderr = child.take_stderr().map(read_all);
    let status = child.finish(Instant::now() + limit, limit, None);
    let join = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (stdout, stderr) = (join(stdout), join(stderr));
    Ok(Captured {
        status: status?,
        stdout,
        stderr,
    })
}

fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// What a long command's observer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity<'a> {
    /// An output line (stdout and stderr interleaved), as it arrives.
    Line(&'a str),
    /// About every 100 ms while the command runs.
    Tick,
}

/// Options for a long, logged command.
pub struct Logged<'a> {
    /// Every output line is appended here.
    pub log: &'a mut dyn Write,
    /// Sees every line and a periodic tick, e.g. to update progress.
    pub observe: &'a mut dyn FnMut(Activity<'_>),
    pub limit: Duration,
    pub cancel: &'a Cancel,
    /// A file descriptor the child (and its children) inherit, e.g. a held lock.
    pub inherit_fd: Option<i32>,
}

/// Run a long command, streaming its output to a log, until it exits, its
/// limit passes or the token is cancelled (then it is terminated with grace).
pub fn run_logged(command: &mut Command, options: Logged<'_>) -> Result<ExitStatus, ChildError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn = Spawn {
        // If kcycle dies without cleaning up, make stops instead of running on.
        death_signal: libc::SIGTERM,
        inherit_fd: options.inherit_fd,
    };
    let mut child = Child::spawn(command, spawn)?;
    let (sender, lines) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        child
            .take_stdout()
            .map(|out| forward_lines(out, sender.clone())),
        child
            .take_stderr()
            .map(|err| forward_lines(err, sender.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    drop(sender);

    let deadline = Instant::now() + options.limit;
    let tick = Duration::from_millis(100);
    let mut last_tick = Instant::now();
    let mut stopped = None;
    loop {
        match lines.recv_timeout(tick) {
            Ok(line) => {
                let _ = writeln!(options.log, "{line}");
                (options.observe)(Activity::Line(&line));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Both pipes closed: the child is done (or closed them); reap it below.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= tick {
            (options.observe)(Activity::Tick);
            last_tick = Instant::now();
        }
        if let Some(signal) = options.cancel.reason() {
            stopped = Some(Stop::Cancelled(signal));
        } else if Instant::now() >= deadline {
            stopped = Some(Stop::TimedOut);
        }
        if stopped.is_some() {
            break;
        }
    }
    let result = match stopped {
        Some(stop) => {
            child.terminate(GRACE);
            Err(child.stopped(stop, options.limit))
        }
        None => child.finish(deadline, options.limit, Some(options.cancel)),
    };
    // Output that raced with the stop still goes to the log.
    for line in lines.try_iter() {
        let _ = writeln!(options.log, "{line}");
    }
    for reader in readers {
        let _ = reader.join();
    }
    let _ = options.log.flush();
    result
}

fn forward_lines(
    pipe: impl Read + Send + 'static,
    sender: mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    if sender
                        .send(line.trim_end_matches(['\n', '\r']).to_string())
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exists and is not a zombie (an orphan waits for init to reap it).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                !stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'))
            })
            .unwrap_or(false)
    }

    #[test]
    fn drop_kills_and_reaps_the_group() {
        let mut command = Command::new("sh");
        command
            .args(["-c", "sleep 1000 & echo $!; wait"])
            .stdout(Stdio::piped());
        let mut child = Child::spawn(&mut command, Spawn::default()).unwrap();
        let mut line = String::new();
        BufReader::new(child.take_stdout().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let pid = child.pid();
        assert!(alive(grandchild));
        drop(child);
        assert!(!alive(pid), "the leader is reaped, not a zombie");
        // The grandchild is reparented and reaped by init; it must be gone soon.
        let gone = wait::poll_for(Duration::from_secs(5), None, POLL, || {
            (!alive(grandchild)).then_some(())
        });
        assert_eq!(gone, Ok(()), "the whole group is killed");
    }

    #[test]
    fn killer_works_from_another_thread() {
        let mut child = Child::spawn(Command::new("sleep").arg("1000"), Spawn::default()).unwrap();
        let killer = child.killer();
        std::thread::spawn(move || killer.kill()).join().unwrap();
        let status = child.wait_timeout(Duration::from_secs(5)).unwrap();
        assert!(!status.success());
    }

    #[test]
    fn capture_returns_output_and_status() {
        let out = capture(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn capture_kills_at_the_deadline() {
        let start = Instant::now();
        let err = capture(
            Command::new("sh").args(["-c", "sleep 30"]),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, ChildError::TimedOut { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(15));
    }

    #[test]
    fn capture_names_a_missing_program() {
        let err = capture(
            &mut Command::new("kcycle-no-such-program"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.not_found());
        assert!(err.to_string().contains("kcycle-no-such-program"), "{err}");
    }

    #[test]
    fn run_logged_streams_lines_and_stops_on_cancel() {
        let mut log = Vec::new();
        let mut seen = Vec::new();
        let cancel = Cancel::new();
        let status = run_logged(
            Command::new("sh").args(["-c", "echo one; echo two >&2"]),
            Logged {
                log: &mut log,
                observe: &mut |activity| {
                    if let Activity::Line(line) = activity {
                        seen.push(line.to_string())
                    }
                },
                limit: Duration::from_secs(10),
                cancel: &cancel,
                inherit_fd: None,
            },
        )
        .unwrap();
        assert!(status.success());
        seen.sort();
        assert_eq!(seen, ["one", "two"]);
        assert_eq!(String::from_utf8(log).unwrap().lines().count(), 2);

        cancel.cancel("SIGTERM");
        let start = Instant::now();
        let err = run_logged(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
            Logged {
                log: &mut Vec::new(),
                observe: &mut |_| {},
                limit: Duration::from_secs(60),
                cancel: &cancel,
                inherit_fd: None,
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ChildError::Interrupted {
                    signal: "SIGTERM",
                    ..
                }
            ),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(15));
    }
}
