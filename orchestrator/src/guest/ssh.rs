//! SSH to the guest with `ssh2`: one blocking worker thread owns the
//! session; callers send it commands over a channel and wait for the reply
//! with a deadline. When the deadline passes the TCP socket is shut down
//! from the caller's side, which unblocks the worker wherever it is stuck.
//!
//! A command without stdin goes to the guest's command server on one
//! persistent channel ([`super::serve`]); one with stdin, or any command on
//! a guest without the server, gets a channel of its own.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::serve;
use crate::snapshot;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("failed to connect to the guest's sshd at {addr}: {step}")]
    Connect {
        addr: SocketAddr,
        step: String,
        #[source]
        source: Option<ssh2::Error>,
    },
    #[error("failed to run `{command}` in the guest: {step}")]
    Exec {
        command: String,
        step: &'static str,
        #[source]
        source: ssh2::Error,
    },
    #[error("failed to run `{command}` in the guest: connection lost ({source})")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` printed nothing for {after:?} (inactivity timeout); stdout so far: {stdout_tail:?}")]
    Inactive {
        command: String,
        after: Duration,
        stdout_tail: String,
    },
    #[error("`{command}` did not finish within {after:?} (deadline); the SSH session was closed")]
    Deadline { command: String, after: Duration },
    #[error("the SSH session to the guest is gone (the guest reset or died); reconnect first")]
    Gone,
}

/// Whether a libssh2 error is the socket failing (the peer is gone), not
/// something the live session refused: LIBSSH2_ERROR_SOCKET_SEND (-7),
/// SOCKET_DISCONNECT (-13), SOCKET_RECV (-43).
pub fn is_transport(err: &ssh2::Error) -> bool {
    matches!(err.code(), ssh2::ErrorCode::Session(-7 | -13 | -43))
}

/// Where and as whom to log in.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub addr: SocketAddr,
    pub user: String,
    /// Private key (OpenSSH format); its `.pub` is next to it.
    pub key: PathBuf,
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Run by root's login shell in the guest (`$SHELL -c`: bash in
    /// kcycle's image), as sshd runs an exec request.
    pub command: String,
    /// Written to the command's stdin, then EOF.
    pub stdin: Option<Vec<u8>>,
    /// Fail if neither stdout nor stderr gets a byte for this long.
    pub inactivity: Duration,
    /// Fail (and close the session) if the command has not finished by then.
    pub deadline: Duration,
}

impl ExecRequest {
    /// A command with the default limits (60 s quiet, 10 min overall).
    pub fn new(command: impl Into<String>) -> Self {
        ExecRequest {
            command: command.into(),
            stdin: None,
            inactivity: Duration::from_secs(60),
            deadline: Duration::from_secs(600),
        }
    }

    pub fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = Some(data);
        self
    }

    pub fn inactivity(mut self, limit: Duration) -> Self {
        self.inactivity = limit;
        self
    }

    pub fn deadline(mut self, limit: Duration) -> Self {
        self.deadline = limit;
        self
    }

    /// The error for this command still running at its deadline.
    fn past_deadline(&self) -> SshError {
        SshError::Deadline {
            command: self.command.clone(),
            after: self.deadline,
        }
    }

    /// The error for this command going quiet, with the last 200 bytes of
    /// what it printed.
    fn went_quiet(&self, stdout: &[u8]) -> SshError {
        SshError::Inactive {
            command: self.command.clone(),
            after: self.inactivity,
            stdout_tail: String::from_utf8_lossy(&stdout[stdout.len().saturating_sub(200)..])
                .into_owned(),
        }
    }
}

/// What a finished command left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit status (128 + n when killed by signal n is the shell's
    /// business; here a signal shows in `signal` and status is -1).
    pub status: i32,
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == 0 && self.signal.is_none()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Try once: TCP connect, SSH handshake, public-key auth.
pub fn connect_once(
    target: &SshTarget,
    timeout: Duration,
) -> Result<(ssh2::Session, TcpStream), SshError> {
    let fail = |step: String, source: Option<ssh2::Error>| SshError::Connect {
        addr: target.addr,
        step,
        source,
    };
    let tcp = TcpStream::connect_timeout(&target.addr, timeout)
        .map_err(|err| fail(format!("TCP connect: {err}"), None))?;
    let _ = tcp.set_nodelay(true);
    let keep = tcp
        .try_clone()
        .map_err(|err| fail(format!("clone socket: {err}"), None))?;
    let mut session =
        ssh2::Session::new().map_err(|err| fail("create session".into(), Some(err)))?;
    blocking(&session, timeout);
    session.set_tcp_stream(tcp);
    session
        .handshake()
        .map_err(|err| fail("SSH handshake".into(), Some(err)))?;
    let public = public_key_path(&target.key);
    session
        .userauth_pubkey_file(&target.user, Some(&public), &target.key, None)
        .map_err(|err| fail(format!("public key auth as {}", target.user), Some(err)))?;
    if !session.authenticated() {
        return Err(fail("public key auth was not accepted".into(), None));
    }
    Ok((session, keep))
}

fn public_key_path(key: &Path) -> PathBuf {
    let mut public = key.as_os_str().to_owned();
    public.push(".pub");
    PathBuf::from(public)
}

enum Request {
    Exec(ExecRequest, Sender<Reply>),
}

/// A command's result, and whether the session went down with it.
struct Reply {
    result: Result<ExecOutput, SshError>,
    session_lost: bool,
}

/// A connected session, owned by its worker thread.
pub struct Ssh {
    requests: Option<Sender<Request>>,
    socket: TcpStream,
    worker: Option<std::thread::JoinHandle<()>>,
    gone: bool,
}

impl Ssh {
    /// Wrap a session from [`connect_once`] in a worker thread.
    pub fn start(session: ssh2::Session, socket: TcpStream) -> Result<Ssh, SshError> {
        let (requests, inbox) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("ssh".into())
            .spawn(move || worker(session, inbox))
            .map_err(|source| SshError::Io {
                command: "start the SSH worker".into(),
                source,
            })?;
        Ok(Ssh {
            requests: Some(requests),
            socket,
            worker: Some(worker),
            gone: false,
        })
    }

    /// Run a command; returns when it exits, goes quiet for too long, or the
    /// deadline passes (then the session is closed and [`SshError::Gone`]
    /// answers until a reconnect).
    pub fn exec(&mut self, request: ExecRequest) -> Result<ExecOutput, SshError> {
        if self.gone {
            return Err(SshError::Gone);
        }
        let (reply, answer) = mpsc::channel();
        let (command, deadline) = (request.command.clone(), request.deadline);
        let sent = self
            .requests
            .as_ref()
            .is_some_and(|requests| requests.send(Request::Exec(request, reply)).is_ok());
        if !sent {
            self.gone = true;
            return Err(SshError::Gone);
        }
        // The worker enforces the deadline itself; this is the backstop for a
        // worker stuck inside libssh2.
        match answer.recv_timeout(deadline + Duration::from_secs(2)) {
            Ok(Reply {
                result,
                session_lost,
            }) => {
                if session_lost {
                    self.close();
                }
                result
            }
            Err(RecvTimeoutError::Timeout) => {
                self.close();
                Err(SshError::Deadline {
                    command,
                    after: deadline,
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.close();
                Err(SshError::Gone)
            }
        }
    }

    /// True once the session was lost or closed.
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// Shut the socket down (unblocking the worker) and join it.
    pub fn close(&mut self) {
        self.gone = true;
        let _ = self.socket.shutdown(Shutdown::Both);
        self.requests = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        self.close();
    }
}

/// The persistent session's channel: a `kcycle-snapshot serve` that runs
/// each command without stdin (see [`super::serve`]).
enum Server {
    /// Not started yet, or closed after a command failed on it.
    Closed,
    Open(ssh2::Channel, serve::Decoder),
    /// The guest cannot serve (an image without the helper): a channel per
    /// command for the rest of this session.
    Unavailable,
}

fn worker(session: ssh2::Session, inbox: Receiver<Request>) {
    let mut server = Server::Closed;
    while let Ok(Request::Exec(request, reply)) = inbox.recv() {
        let (result, mut session_lost) = if request.stdin.is_some() {
            (run(&session, &request), false)
        } else {
            run_served(&session, &mut server, &request)
        };
        session_lost |= matches!(result, Err(SshError::Io { .. } | SshError::Deadline { .. }));
        let _ = reply.send(Reply {
            result,
            session_lost,
        });
        if session_lost {
            break;
        }
    }
}

/// Run a command on the persistent channel, starting it first when needed;
/// a command that fails on it takes the channel down with it, and the next
/// one starts a fresh server. Also says whether the session must go: when
/// a quiet command's channel would not close.
fn run_served(
    session: &ssh2::Session,
    server: &mut Server,
    request: &ExecRequest,
) -> (Result<ExecOutput, SshError>, bool) {
    let started = Instant::now();
    if matches!(server, Server::Closed) {
        match start_server(session, request, started) {
            Ok(started) => *server = started,
            Err(err) => return (Err(err), false),
        }
    }
    let Server::Open(channel, frames) = server else {
        return (run(session, request), false);
    };
    let result = exec_served(session, channel, frames, request, started);
    let mut session_lost = false;
    if result.is_err() {
        if matches!(result, Err(SshError::Inactive { .. })) {
            session_lost = !retire(session, channel);
        }
        *server = Server::Closed;
    }
    (result, session_lost)
}

/// How long closing a server's channel may take (its command is killed).
const RETIRE_WAIT: Duration = Duration::from_secs(5);

/// End a server's channel and wait until the guest has closed its side,
/// which dropbear does once the server has exited. The next channel must
/// not start before that: dropbear 2022.83 (bookworm's) kills the whole
/// connection on a failed assertion when a child of one channel exits
/// while the next channel's exec is starting (seen here; mkj/dropbear#321,
/// fixed in 2024.86). False if it did not close in time.
fn retire(session: &ssh2::Session, channel: &mut ssh2::Channel) -> bool {
    blocking(session, RETIRE_WAIT);
    channel
        .send_eof()
        .and_then(|()| channel.close())
        .and_then(|()| channel.wait_close())
        .is_ok()
}

/// Open the server's channel and wait for its greeting. A guest that
/// answers anything else (no helper, an older one) is [`Server::Unavailable`].
fn start_server(
    session: &ssh2::Session,
    request: &ExecRequest,
    started: Instant,
) -> Result<Server, SshError> {
    let command = format!("exec {} {}", snapshot::HELPER_PATH, serve::SERVE_ARG);
    blocking(session, request.inactivity);
    let mut channel = session
        .channel_session()
        .map_err(map_lost(&command, "open a channel"))?;
    channel.exec(&command).map_err(|source| SshError::Exec {
        command: command.clone(),
        step: "exec",
        source,
    })?;
    let mut frames = serve::Decoder::default();
    let mut greeting = None;
    let pumped = pump(session, &mut channel, request, started, |stream, bytes| {
        if stream == Stream::Stdout {
            frames.push(bytes);
            greeting = Some(frames.next_frame());
        }
        matches!(greeting, Some(Ok(Some(_)) | Err(_)))
    });
    match (pumped, greeting) {
        (Pumped::Stopped, Some(Ok(Some(serve::Frame::Hello(1))))) => {
            Ok(Server::Open(channel, frames))
        }
        // Whatever answered must be gone before the next channel starts.
        (Pumped::Stopped | Pumped::Ended, _) => {
            retire(session, &mut channel);
            Ok(Server::Unavailable)
        }
        (Pumped::Failed(source), _) => Err(SshError::Io { command, source }),
        (Pumped::Deadline, _) => Err(request.past_deadline()),
        (Pumped::Quiet, _) if retire(session, &mut channel) => Err(SshError::Inactive {
            command: format!("{command} (starting the session for `{}`)", request.command),
            after: request.inactivity,
            stdout_tail: String::new(),
        }),
        (Pumped::Quiet, _) => Err(SshError::Io {
            command: request.command.clone(),
            source: std::io::Error::other(format!(
                "`{command}` neither greeted nor closed within {:?}",
                request.inactivity + RETIRE_WAIT
            )),
        }),
    }
}

/// Send one request to the server and collect its frames until its end.
fn exec_served(
    session: &ssh2::Session,
    channel: &mut ssh2::Channel,
    frames: &mut serve::Decoder,
    request: &ExecRequest,
    started: Instant,
) -> Result<ExecOutput, SshError> {
    let command = &request.command;
    let lost = |detail: String| SshError::Io {
        command: command.clone(),
        source: std::io::Error::other(detail),
    };
    blocking(session, request.inactivity);
    channel
        .write_all(&serve::request(command))
        .and_then(|()| channel.flush())
        .map_err(|source| SshError::Io {
            command: command.clone(),
            source,
        })?;
    let (mut stdout, mut stderr, mut server_said) = (Vec::new(), Vec::new(), Vec::new());
    let mut ending = None;
    let mut broken = None;
    let pumped = pump(session, channel, request, started, |stream, bytes| {
        if stream == Stream::Stderr {
            server_said.extend_from_slice(bytes);
            return false;
        }
        frames.push(bytes);
        loop {
            match frames.next_frame() {
                Ok(None) => return false,
                Ok(Some(serve::Frame::Stdout(data))) => stdout.extend(data),
                Ok(Some(serve::Frame::Stderr(data))) => stderr.extend(data),
                Ok(Some(serve::Frame::End(end))) => {
                    ending = Some(end);
                    return true;
                }
                Ok(Some(serve::Frame::Hello(_))) => {
                    broken = Some("a second greeting".to_string());
                    return true;
                }
                Err(detail) => {
                    broken = Some(detail);
                    return true;
                }
            }
        }
    });
    let said = String::from_utf8_lossy(&server_said).trim().to_string();
    match (pumped, ending) {
        (Pumped::Stopped, Some(serve::Ending::Exited(status))) => Ok(ExecOutput {
            status,
            signal: None,
            stdout,
            stderr,
        }),
        (Pumped::Stopped, Some(serve::Ending::Killed(signal))) => Ok(ExecOutput {
            status: -1,
            signal: Some(serve::signal_name(signal)),
            stdout,
            stderr,
        }),
        (Pumped::Stopped, None) => Err(lost(format!(
            "the guest's command server sent {}",
            broken.unwrap_or_default()
        ))),
        (Pumped::Failed(source), _) => Err(SshError::Io {
            command: command.clone(),
            source,
        }),
        // The server went away mid-command: the guest is resetting or dying.
        (Pumped::Ended, _) => Err(lost(format!(
            "the guest's command server ended before the command did{}",
            if said.is_empty() {
                String::new()
            } else {
                format!(" ({said})")
            }
        ))),
        (Pumped::Deadline, _) => Err(request.past_deadline()),
        (Pumped::Quiet, _) => Err(request.went_quiet(&stdout)),
    }
}

/// Run one command on a channel of its own: stdin written blocking, then
/// stdout and stderr read side by side so a chatty stderr can never stall
/// stdout.
fn run(session: &ssh2::Session, request: &ExecRequest) -> Result<ExecOutput, SshError> {
    let command = &request.command;
    let started = Instant::now();
    let exec_err = |step: &'static str| {
        move |source: ssh2::Error| SshError::Exec {
            command: command.clone(),
            step,
            source,
        }
    };
    blocking(session, request.inactivity);
    let mut channel = session
        .channel_session()
        .map_err(map_lost(command, "open a channel"))?;
    channel.exec(command).map_err(exec_err("exec"))?;
    if let Some(data) = &request.stdin {
        channel.write_all(data).map_err(|source| SshError::Io {
            command: command.clone(),
            source,
        })?;
    }
    channel.send_eof().map_err(exec_err("send EOF"))?;

    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let pumped = pump(session, &mut channel, request, started, |stream, bytes| {
        match stream {
            Stream::Stdout => stdout.extend_from_slice(bytes),
            Stream::Stderr => stderr.extend_from_slice(bytes),
        }
        false
    });
    match pumped {
        Pumped::Ended | Pumped::Stopped => {}
        Pumped::Failed(source) => {
            return Err(SshError::Io {
                command: command.clone(),
                source,
            })
        }
        Pumped::Deadline => return Err(request.past_deadline()),
        Pumped::Quiet => {
            let _ = channel.close();
            return Err(request.went_quiet(&stdout));
        }
    }
    channel
        .wait_close()
        .map_err(exec_err("close the channel"))?;
    let signal = channel
        .exit_signal()
        .ok()
        .and_then(|signal| signal.exit_signal);
    let status = if signal.is_some() {
        -1
    } else {
        channel
            .exit_status()
            .map_err(exec_err("read the exit status"))?
    };
    Ok(ExecOutput {
        status,
        signal,
        stdout,
        stderr,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// Why [`pump`] returned.
#[derive(Debug)]
enum Pumped {
    /// Reading failed: the connection is gone.
    Failed(std::io::Error),
    /// The taker had what it wanted.
    Stopped,
    /// Both streams ended.
    Ended,
    /// The request's deadline passed (the session must go).
    Deadline,
    /// Nothing arrived for the request's inactivity limit.
    Quiet,
}

/// Read a channel's stdout and stderr side by side (the session is made
/// non-blocking meanwhile, blocking again after), giving every piece to `take`, until `take` returns true,
/// both streams end, reading fails, or the request's deadline or
/// inactivity limit passes.
fn pump(
    session: &ssh2::Session,
    channel: &mut ssh2::Channel,
    request: &ExecRequest,
    started: Instant,
    mut take: impl FnMut(Stream, &[u8]) -> bool,
) -> Pumped {
    session.set_blocking(false);
    let pumped = pump_nonblocking(session, channel, request, started, &mut take);
    session.set_blocking(true);
    pumped
}

fn pump_nonblocking(
    session: &ssh2::Session,
    channel: &mut ssh2::Channel,
    request: &ExecRequest,
    started: Instant,
    take: &mut impl FnMut(Stream, &[u8]) -> bool,
) -> Pumped {
    let (mut out_done, mut err_done) = (false, false);
    let mut last_data = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    while !(out_done && err_done) {
        let mut progressed = false;
        for (done, stream, stream_id) in [
            (&mut out_done, Stream::Stdout, 0),
            (&mut err_done, Stream::Stderr, 1),
        ] {
            if *done {
                continue;
            }
            match channel.stream(stream_id).read(&mut buf) {
                Ok(0) => *done = true,
                Ok(n) => {
                    progressed = true;
                    if take(stream, &buf[..n]) {
                        return Pumped::Stopped;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => return Pumped::Failed(err),
            }
        }
        if progressed {
            last_data = Instant::now();
            continue;
        }
        if started.elapsed() >= request.deadline {
            return Pumped::Deadline;
        }
        if last_data.elapsed() >= request.inactivity {
            return Pumped::Quiet;
        }
        wait_readable(session, Duration::from_millis(50));
    }
    Pumped::Ended
}

/// libssh2 errors on opening a channel mostly mean the transport is gone.
fn map_lost<'a>(command: &'a str, step: &'static str) -> impl Fn(ssh2::Error) -> SshError + 'a {
    move |source| SshError::Io {
        command: command.to_string(),
        source: std::io::Error::other(format!("{step}: {source}")),
    }
}

/// Make the session blocking, each call bounded by `limit`.
fn blocking(session: &ssh2::Session, limit: Duration) {
    session.set_blocking(true);
    session.set_timeout(limit.as_millis().min(u32::MAX as u128) as u32);
}

/// Sleep until the session's socket is readable or `timeout` passes.
fn wait_readable(session: &ssh2::Session, timeout: Duration) {
    let fd = session.as_raw_fd();
    if fd < 0 {
        std::thread::sleep(timeout);
        return;
    }
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a bounded timeout.
    unsafe {
        libc::poll(&mut poll, 1, timeout.as_millis() as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_failures_are_transport_and_refusals_are_not() {
        let code = |n| ssh2::Error::new(ssh2::ErrorCode::Session(n), "x");
        assert!(is_transport(&code(-43)));
        assert!(is_transport(&code(-7)));
        assert!(!is_transport(&code(-22))); // CHANNEL_REQUEST_DENIED
        assert!(!is_transport(&code(-37))); // EAGAIN
    }
}
