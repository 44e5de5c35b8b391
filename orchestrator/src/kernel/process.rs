//! Child processes with deadlines: short captured commands (`--version`,
//! `git`, `dpkg-query`) and long logged ones (`make`) that stop cleanly on
//! Ctrl-C/SIGTERM. Every child is reaped, on every path.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("failed to start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to wait for `{program}`")]
    Wait {
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

fn program_name(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Run a short command to completion with captured output, killed after `limit`.
pub fn capture(command: &mut Command, limit: Duration) -> Result<Captured, ProcessError> {
    let program = program_name(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout kills grandchildren that hold our pipes too.
        .process_group(0)
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            program: program.clone(),
            source,
        })?;
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let status = wait_until(&mut child, &program, Instant::now() + limit, limit, None);
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

/// Poll `child` until it exits, `deadline` passes or an interrupt arrives;
/// on the latter two, stop its process group and reap it.
fn wait_until(
    child: &mut Child,
    program: &str,
    deadline: Instant,
    limit: Duration,
    interrupt: Option<&Interrupt>,
) -> Result<ExitStatus, ProcessError> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(source) => {
                stop(child);
                return Err(ProcessError::Wait {
                    program: program.to_string(),
                    source,
                });
            }
        }
        if let Some(signal) = interrupt.and_then(Interrupt::received) {
            stop(child);
            return Err(ProcessError::Interrupted {
                program: program.to_string(),
                signal,
            });
        }
        if Instant::now() >= deadline {
            stop(child);
            return Err(ProcessError::TimedOut {
                program: program.to_string(),
                limit,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM the child's process group, give it 10 s, then SIGKILL; always reap.
fn stop(child: &mut Child) {
    let pid = child.id() as i32;
    // SAFETY: kill(2) with a negative pid signals the group we created with process_group(0)
    // (or just the child when it has none); no memory is touched.
    unsafe {
        libc::kill(-pid, libc::SIGTERM);
        libc::kill(pid, libc::SIGTERM);
    }
    let grace = Instant::now() + Duration::from_secs(10);
    while Instant::now() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            // The leader is gone; make sure stragglers in its group are too.
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
}

/// Ctrl-C, SIGTERM and SIGHUP, turned into a flag the long waits poll. A
/// second signal of the same kind ends kcycle at once (the default action).
#[derive(Debug, Clone)]
pub struct Interrupt {
    flags: Arc<[(AtomicBool, &'static str); 3]>,
}

impl Interrupt {
    /// Install the handlers (once per process) and return the shared flag.
    pub fn install() -> io::Result<Interrupt> {
        static INSTALLED: OnceLock<Interrupt> = OnceLock::new();
        if let Some(existing) = INSTALLED.get() {
            return Ok(existing.clone());
        }
        let interrupt = Interrupt {
            flags: Arc::new([
                (AtomicBool::new(false), "SIGINT (Ctrl-C)"),
                (AtomicBool::new(false), "SIGTERM"),
                (AtomicBool::new(false), "SIGHUP"),
            ]),
        };
        let signals = [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ];
        for (index, signal) in signals.into_iter().enumerate() {
            let flags = interrupt.flags.clone();
            let again = Arc::new(AtomicBool::new(false));
            // First: a repeated signal takes the default action (exit).
            signal_hook::flag::register_conditional_default(signal, again.clone())?;
            // SAFETY: the handler only stores to atomics, which is async-signal-safe.
            unsafe {
                signal_hook::low_level::register(signal, move || {
                    flags[index].0.store(true, Ordering::SeqCst);
                    again.store(true, Ordering::SeqCst);
                })?;
            }
        }
        Ok(INSTALLED.get_or_init(|| interrupt).clone())
    }

    /// A flag nobody sets, for callers that do not want signal handling.
    pub fn none() -> Interrupt {
        Interrupt {
            flags: Arc::new([
                (AtomicBool::new(false), "SIGINT (Ctrl-C)"),
                (AtomicBool::new(false), "SIGTERM"),
                (AtomicBool::new(false), "SIGHUP"),
            ]),
        }
    }

    /// The signal received so far, if any.
    pub fn received(&self) -> Option<&'static str> {
        self.flags
            .iter()
            .find(|(flag, _)| flag.load(Ordering::SeqCst))
            .map(|(_, name)| *name)
    }
}

/// What a long command's observer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
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
    pub on_event: &'a mut dyn FnMut(Event<'_>),
    pub limit: Duration,
    pub interrupt: &'a Interrupt,
    /// A file descriptor the child (and its children) inherit, e.g. a held lock.
    pub inherit_fd: Option<i32>,
}

/// Run a long command in its own process group, streaming its output to a log.
pub fn run_logged(command: &mut Command, options: Logged<'_>) -> Result<ExitStatus, ProcessError> {
    let program = program_name(command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let inherit_fd = options.inherit_fd;
    // SAFETY: only async-signal-safe calls (fcntl, prctl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = inherit_fd {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
            }
            // If kcycle dies without cleaning up, make stops instead of running on.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    let (sender, lines) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(forward_lines(out, sender.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(forward_lines(err, sender.clone()));
    }
    drop(sender);

    let deadline = Instant::now() + options.limit;
    let mut finished = None;
    let tick = Duration::from_millis(100);
    let mut last_tick = Instant::now();
    loop {
        match lines.recv_timeout(tick) {
            Ok(line) => {
                let _ = writeln!(options.log, "{line}");
                (options.on_event)(Event::Line(&line));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Both pipes closed: the child is done (or closed them); reap it below.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= tick {
            (options.on_event)(Event::Tick);
            last_tick = Instant::now();
        }
        if let Some(signal) = options.interrupt.received() {
            stop(&mut child);
            finished = Some(Err(ProcessError::Interrupted {
                program: program.clone(),
                signal,
            }));
            break;
        }
        if Instant::now() >= deadline {
            stop(&mut child);
            finished = Some(Err(ProcessError::TimedOut {
                program: program.clone(),
                limit: options.limit,
            }));
            break;
        }
    }
    let result = match finished {
        Some(result) => result,
        None => wait_until(
            &mut child,
            &program,
            deadline,
            options.limit,
            Some(options.interrupt),
        ),
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
        assert!(matches!(err, ProcessError::TimedOut { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(15));
    }

    #[test]
    fn capture_names_a_missing_program() {
        let err = capture(
            &mut Command::new("kcycle-no-such-program"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("kcycle-no-such-program"), "{err}");
    }

    #[test]
    fn run_logged_streams_lines_and_stops_on_interrupt() {
        let mut log = Vec::new();
        let mut seen = Vec::new();
        let interrupt = Interrupt::none();
        let status = run_logged(
            Command::new("sh").args(["-c", "echo one; echo two >&2"]),
            Logged {
                log: &mut log,
                on_event: &mut |event| {
                    if let Event::Line(line) = event {
                        seen.push(line.to_string())
                    }
                },
                limit: Duration::from_secs(10),
                interrupt: &interrupt,
                inherit_fd: None,
            },
        )
        .unwrap();
        assert!(status.success());
        seen.sort();
        assert_eq!(seen, ["one", "two"]);
        assert_eq!(String::from_utf8(log).unwrap().lines().count(), 2);

        interrupt.flags[1].0.store(true, Ordering::SeqCst);
        let start = Instant::now();
        let err = run_logged(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
            Logged {
                log: &mut Vec::new(),
                on_event: &mut |_| {},
                limit: Duration::from_secs(60),
                interrupt: &interrupt,
                inherit_fd: None,
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ProcessError::Interrupted {
                    signal: "SIGTERM",
                    ..
                }
            ),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(15));
    }
}
