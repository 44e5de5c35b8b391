//! The persistent guest session: one long-lived `kcycle-snapshot serve` on
//! one SSH channel runs every command that needs no stdin, so a step costs
//! a frame each way instead of a channel's open, exec and close (about
//! 50 ms under TCG, a cycle's biggest fixed cost after the snapshot).
//!
//! Like [`crate::snapshot::walk`], this file is compiled twice: into kcycle
//! (the host's [`Decoder`], and tests) and, by `build.rs`, into the guest
//! helper, where [`main`] is the server. So it uses std only.
//!
//! The protocol, all lengths decimal:
//! - server → host, once at start: `h 1\n` (the protocol version);
//! - host → server, one request at a time: `r <len>\n<command>`;
//! - server → host, for each request: any number of `o <len>\n<bytes>`
//!   (stdout) and `e <len>\n<bytes>` (stderr), then `x <code>\n` (exited)
//!   or `k <signal>\n` (killed by that signal).
//!
//! A command runs as `$SHELL -c <command>` (dropbear's own choice for an
//! exec request, so `modprobe` resolves the same way in both), with stdin
//! from /dev/null and in its own process group. When the server's stdin
//! ends (the host closed the channel: inactivity, a deadline, a dropped
//! session), that whole group is killed and the server exits, so nothing
//! the host gave up on keeps running in the guest.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};

/// The server's greeting; a host that reads anything else falls back to a
/// channel per command.
pub const HELLO: &[u8] = b"h 1\n";
/// The guest command that starts a server on an SSH channel.
pub const SERVE_ARG: &str = "serve";
/// Longest header line either side accepts (a letter, a blank, a number).
const MAX_HEADER: usize = 32;
/// Most bytes in one output frame.
const CHUNK: usize = 64 * 1024;
/// Longest command a request may carry (a header that claims more is not
/// one of ours).
const MAX_COMMAND: usize = 16 << 20;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Killed(i32),
}

/// One message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(u32),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    End(Ending),
}

/// The request frame for `command`.
pub fn request(command: &str) -> Vec<u8> {
    let mut frame = format!("r {}\n", command.len()).into_bytes();
    frame.extend_from_slice(command.as_bytes());
    frame
}

fn data_frame(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut frame = format!("{} {}\n", tag as char, bytes.len()).into_bytes();
    frame.extend_from_slice(bytes);
    frame
}

fn end_frame(ending: Ending) -> Vec<u8> {
    match ending {
        Ending::Exited(code) => format!("x {code}\n"),
        Ending::Killed(signal) => format!("k {signal}\n"),
    }
    .into_bytes()
}

/// Splits the server's byte stream into frames as it arrives (pure).
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` until more bytes arrive, or what
    /// was wrong with the stream (it cannot be trusted after that).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        let Some(newline) = self.pending.iter().position(|&b| b == b'\n') else {
            if self.pending.len() > MAX_HEADER {
                return Err(format!("no frame header in {:?}", self.shown()));
            }
            return Ok(None);
        };
        let header = std::str::from_utf8(&self.pending[..newline])
            .ok()
            .and_then(|line| line.split_once(' '))
            .filter(|(tag, _)| tag.len() == 1)
            .map(|(tag, value)| (tag.as_bytes()[0], value.to_string()))
            .ok_or_else(|| format!("bad frame header {:?}", self.shown()))?;
        let bad = |what: &str| format!("bad {what} in the frame header {:?}", self.shown());
        let frame = match header {
            (tag @ (b'o' | b'e'), len) => {
                let len: usize = len.parse().map_err(|_| bad("length"))?;
                if len > CHUNK {
                    return Err(bad("length"));
                }
                let end = newline + 1 + len;
                if self.pending.len() < end {
                    return Ok(None);
                }
                let bytes = self.pending[newline + 1..end].to_vec();
                self.pending.drain(..end);
                return Ok(Some(if tag == b'o' {
                    Frame::Stdout(bytes)
                } else {
                    Frame::Stderr(bytes)
                }));
            }
            (b'h', version) => Frame::Hello(version.parse().map_err(|_| bad("version"))?),
            (b'x', code) => Frame::End(Ending::Exited(code.parse().map_err(|_| bad("status"))?)),
            (b'k', signal) => {
                Frame::End(Ending::Killed(signal.parse().map_err(|_| bad("signal"))?))
            }
            _ => return Err(bad("tag")),
        };
        self.pending.drain(..=newline);
        Ok(Some(frame))
    }

    fn shown(&self) -> String {
        let end = self.pending.len().min(MAX_HEADER);
        String::from_utf8_lossy(&self.pending[..end]).into_owned()
    }
}

/// The name `ssh` reports for a signal (`KILL`), as in an exit-signal.
pub fn signal_name(signal: i32) -> String {
    const NAMES: [&str; 16] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT",
    ];
    usize::try_from(signal - 1)
        .ok()
        .and_then(|index| NAMES.get(index))
        .map_or_else(|| format!("SIG{signal}"), |name| name.to_string())
}

extern "C" {
    fn kill(pid: i32, signal: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// The process group of the command that runs now, and whether the host
/// has gone (then no new command may start).
#[derive(Default)]
struct Running {
    group: Option<i32>,
    host_gone: bool,
}

/// The server: requests from stdin, frames to stdout, until stdin ends.
pub fn main() -> io::Result<()> {
    let out = Arc::new(Mutex::new(io::stdout()));
    send(&out, HELLO)?;
    let running = Arc::new(Mutex::new(Running::default()));
    let (requests, inbox) = mpsc::channel();
    let watcher = Arc::clone(&running);
    std::thread::spawn(move || {
        let mut input = BufReader::new(io::stdin().lock());
        while let Ok(Some(command)) = read_request(&mut input) {
            if requests.send(command).is_err() {
                break;
            }
        }
        // The host is gone: nothing it started may outlive it.
        let mut running = watcher.lock().unwrap_or_else(|e| e.into_inner());
        running.host_gone = true;
        if let Some(group) = running.group {
            // SAFETY: kill(2) of a process group this server created.
            unsafe { kill(-group, SIGKILL) };
        }
        std::process::exit(0);
    });
    let shell = std::env::var("SHELL")
        .ok()
        .filter(|shell| !shell.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    for command in inbox {
        run(&shell, &command, &out, &running)?;
    }
    Ok(())
}

/// One `r <len>\n<command>`; `Ok(None)` at a clean end of input.
fn read_request(input: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut header = Vec::new();
    if input.read_until(b'\n', &mut header)? == 0 {
        return Ok(None);
    }
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "bad request header");
    let len: usize = std::str::from_utf8(&header)
        .ok()
        .and_then(|line| line.trim_end().strip_prefix("r "))
        .and_then(|len| len.parse().ok())
        .filter(|&len| len <= MAX_COMMAND)
        .ok_or_else(invalid)?;
    let mut command = vec![0; len];
    input.read_exact(&mut command)?;
    String::from_utf8(command).map(Some).map_err(|_| invalid())
}

fn send(out: &Mutex<io::Stdout>, frame: &[u8]) -> io::Result<()> {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    out.write_all(frame)?;
    out.flush()
}

/// Run one command and send its output and its end.
fn run(
    shell: &str,
    command: &str,
    out: &Arc<Mutex<io::Stdout>>,
    running: &Mutex<Running>,
) -> io::Result<()> {
    let spawned = Command::new(shell)
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            let message = format!("kcycle-snapshot serve: failed to start {shell}: {error}\n");
            send(out, &data_frame(b'e', message.as_bytes()))?;
            return send(out, &end_frame(Ending::Exited(127)));
        }
    };
    {
        let mut running = running.lock().unwrap_or_else(|e| e.into_inner());
        if running.host_gone {
            // SAFETY: kill(2) of the group just created.
            unsafe { kill(-(child.id() as i32), SIGKILL) };
            std::process::exit(0);
        }
        running.group = Some(child.id() as i32);
    }
    let relays: Vec<_> = [
        child
            .stdout
            .take()
            .map(|pipe| (b'o', Box::new(pipe) as Box<dyn Read + Send>)),
        child
            .stderr
            .take()
            .map(|pipe| (b'e', Box::new(pipe) as Box<dyn Read + Send>)),
    ]
    .into_iter()
    .flatten()
    .map(|(tag, pipe)| {
        let out = Arc::clone(out);
        std::thread::spawn(move || relay(tag, pipe, &out))
    })
    .collect();
    let mut relayed = Ok(());
    for relay in relays {
        let result = relay
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("relay panicked")));
        relayed = relayed.and(result);
    }
    let status = child.wait()?;
    running.lock().unwrap_or_else(|e| e.into_inner()).group = None;
    relayed?;
    let ending = match (status.code(), status.signal()) {
        (Some(code), _) => Ending::Exited(code),
        (None, Some(signal)) => Ending::Killed(signal),
        (None, None) => Ending::Exited(-1),
    };
    send(out, &end_frame(ending))
}

/// Copy one pipe into frames until it ends.
fn relay(tag: u8, mut pipe: Box<dyn Read + Send>, out: &Mutex<io::Stdout>) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => send(out, &data_frame(tag, &buf[..n]))?,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8], step: usize) -> Vec<Frame> {
        let mut decoder = Decoder::default();
        let mut frames = Vec::new();
        for piece in bytes.chunks(step) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        frames
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_arrive() {
        let mut stream = HELLO.to_vec();
        stream.extend(data_frame(b'o', b"line one\nline two\n"));
        stream.extend(data_frame(b'e', b""));
        stream.extend(data_frame(b'e', b"x 3\n"));
        stream.extend(end_frame(Ending::Exited(3)));
        stream.extend(end_frame(Ending::Killed(9)));
        let want = vec![
            Frame::Hello(1),
            Frame::Stdout(b"line one\nline two\n".to_vec()),
            Frame::Stderr(Vec::new()),
            Frame::Stderr(b"x 3\n".to_vec()),
            Frame::End(Ending::Exited(3)),
            Frame::End(Ending::Killed(9)),
        ];
        for step in [1, 2, 7, stream.len()] {
            assert_eq!(frames(&stream, step), want, "{step} bytes at a time");
        }
    }

    #[test]
    fn a_stream_that_is_not_frames_is_an_error_not_a_wait() {
        for garbage in [
            &b"sh: /bin/kcycle-snapshot: not found\n"[..],
            b"o many\n",
            b"o 999999999\n",
            b"z 1\n",
            b"no newline in a long run of bytes here",
        ] {
            let mut decoder = Decoder::default();
            decoder.push(garbage);
            assert!(
                decoder.next_frame().is_err(),
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
        }
    }

    #[test]
    fn requests_read_back_as_sent() {
        let command = "echo 'a\nb' && modprobe x";
        let mut input = request(command);
        input.extend(request(""));
        let mut reader = &input[..];
        assert_eq!(read_request(&mut reader).unwrap().as_deref(), Some(command));
        assert_eq!(read_request(&mut reader).unwrap().as_deref(), Some(""));
        assert_eq!(read_request(&mut reader).unwrap(), None);
        assert!(read_request(&mut &b"r x\n"[..]).is_err());
        assert!(read_request(&mut &b"r 99999999999\n"[..]).is_err());
    }

    #[test]
    fn signals_are_named_as_ssh_names_them() {
        assert_eq!(signal_name(9), "KILL");
        assert_eq!(signal_name(11), "SEGV");
        assert_eq!(signal_name(1), "HUP");
        assert_eq!(signal_name(40), "SIG40");
        assert_eq!(signal_name(0), "SIG0");
    }

    /// The real guest helper, built by build.rs, serving on this host.
    struct Served {
        child: std::process::Child,
        frames: Decoder,
        _dir: tempfile::TempDir,
    }

    impl Served {
        fn start() -> Served {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir().unwrap();
            let helper = dir.path().join("kcycle-snapshot");
            std::fs::write(&helper, crate::snapshot::HELPER).unwrap();
            std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
            // Another test thread's fork may hold the file open for writing
            // for a moment (ETXTBSY).
            let child = (0..50)
                .find_map(|_| {
                    let spawned = Command::new(&helper)
                        .arg(SERVE_ARG)
                        .env("SHELL", "/bin/sh")
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .spawn();
                    if spawned.is_err() {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    spawned.ok()
                })
                .expect("failed to start the helper");
            let mut served = Served {
                child,
                frames: Decoder::default(),
                _dir: dir,
            };
            assert_eq!(served.frame(), Frame::Hello(1));
            served
        }

        fn frame(&mut self) -> Frame {
            let mut buf = [0; 4096];
            loop {
                if let Some(frame) = self.frames.next_frame().unwrap() {
                    return frame;
                }
                let n = self.child.stdout.as_mut().unwrap().read(&mut buf).unwrap();
                assert!(n > 0, "the server ended mid-frame");
                self.frames.push(&buf[..n]);
            }
        }

        fn send(&mut self, command: &str) {
            let stdin = self.child.stdin.as_mut().unwrap();
            stdin.write_all(&request(command)).unwrap();
            stdin.flush().unwrap();
        }

        /// Run a command: (stdout, stderr, ending).
        fn exec(&mut self, command: &str) -> (String, String, Ending) {
            self.send(command);
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            loop {
                match self.frame() {
                    Frame::Stdout(data) => stdout.extend(data),
                    Frame::Stderr(data) => stderr.extend(data),
                    Frame::End(ending) => {
                        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
                        return (text(stdout), text(stderr), ending);
                    }
                    Frame::Hello(_) => panic!("a second greeting"),
                }
            }
        }
    }

    #[test]
    fn the_helper_serves_commands_one_after_another_on_one_stream() {
        let mut served = Served::start();
        let (out, err, end) = served.exec("echo out; echo err >&2; exit 3");
        assert_eq!(
            (out.as_str(), err.as_str(), end),
            ("out\n", "err\n", Ending::Exited(3))
        );
        // stdin is /dev/null, not the request stream.
        assert_eq!(served.exec("cat; echo done").0, "done\n");
        let (_, _, end) = served.exec("kill -SEGV $$");
        assert_eq!(end, Ending::Killed(11));
        // More than one frame's worth, byte for byte.
        let (out, _, end) = served.exec("head -c 300000 /dev/zero | tr '\\0' a");
        assert_eq!((out.len(), end), (300_000, Ending::Exited(0)));
        assert!(out.bytes().all(|b| b == b'a'));
        assert_eq!(served.exec("echo $0").0, "/bin/sh\n", "runs $SHELL -c");
    }

    #[test]
    fn a_host_that_goes_away_takes_the_running_command_with_it() {
        let mut served = Served::start();
        // A grandchild too: the whole process group goes.
        served.send("sleep 300 & echo $!; wait");
        let Frame::Stdout(pid) = served.frame() else {
            panic!("no pid")
        };
        let pid = String::from_utf8(pid).unwrap().trim().to_string();
        let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
        assert!(proc_dir.exists());
        drop(served.child.stdin.take());
        let status = served.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        // kill(2) is done before the server exits; reaping the zombie by
        // its parent (the killed shell's init) can lag a moment.
        let gone = (0..200).any(|_| {
            let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
            let stopped = state.is_empty() || state.contains(") Z ");
            if !stopped {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            stopped
        });
        assert!(gone, "sleep {pid} outlived the server");
    }
}
