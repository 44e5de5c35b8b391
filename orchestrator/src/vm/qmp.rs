//! QMP over a unix socket: `qapi` types, our own line transport.
//!
//! qapi's own stream drops the connection when QEMU sends an event its
//! schema does not know; here every line is parsed as JSON first, events are
//! decoded when known and kept as [`QmpEvent::Unknown`] otherwise, and only
//! responses finish a command. Every exchanged line is appended to a
//! transcript file when one is given (the run directory's `qmp.log`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qapi::qmp;

use crate::sys::wait;
use qapi::Command;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("failed to connect to QMP socket {path} within {waited:?}")]
    Connect {
        path: PathBuf,
        waited: Duration,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to talk to QMP ({step})")]
    Io {
        step: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to get a QMP reply to {command} within {timeout:?}")]
    Timeout {
        command: &'static str,
        timeout: Duration,
    },
    #[error("QEMU closed the QMP connection while waiting for {command}")]
    Closed { command: &'static str },
    #[error("QEMU rejected {command}: {source}")]
    Rejected {
        command: &'static str,
        #[source]
        source: qapi::Error,
    },
    #[error("failed to decode QMP {what}: {line}")]
    Decode {
        what: &'static str,
        line: String,
        #[source]
        source: serde_json::Error,
    },
}

/// An asynchronous event QEMU sent.
#[derive(Debug, Clone)]
pub enum QmpEvent {
    Known(qmp::Event),
    /// An event this schema does not know: name and the raw line.
    Unknown {
        name: String,
        line: String,
    },
}

/// A negotiated QMP connection.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<QmpEvent>,
    transcript: Option<std::fs::File>,
}

/// Default deadline for one command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

impl Qmp {
    /// Connect (retrying until `deadline` while QEMU creates the socket), read
    /// the greeting and leave capabilities negotiation mode.
    pub fn connect(
        path: &Path,
        wait: Duration,
        transcript: Option<&Path>,
    ) -> Result<Qmp, QmpError> {
        let mut last = None;
        // Not cancellable: callers pass waits of a few hundred milliseconds.
        let connected = wait::poll_for(wait, None, Duration::from_millis(20), || {
            UnixStream::connect(path)
                .map_err(|source| last = Some(source))
                .ok()
        });
        match (connected, last) {
            (Ok(stream), _) => Self::negotiate(stream, transcript),
            (Err(_), last) => Err(QmpError::Connect {
                path: path.to_path_buf(),
                waited: wait,
                source: last.unwrap_or_else(|| std::io::ErrorKind::TimedOut.into()),
            }),
        }
    }

    /// Take over a connected stream (tests use a socketpair).
    pub fn negotiate(stream: UnixStream, transcript: Option<&Path>) -> Result<Qmp, QmpError> {
        let io = |step: &str| {
            let step = step.to_string();
            move |source| QmpError::Io { step, source }
        };
        let writer = stream.try_clone().map_err(io("clone socket"))?;
        let transcript = transcript.and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        });
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
            transcript,
        };
        let greeting = qmp.read_line("greeting", COMMAND_TIMEOUT)?;
        serde_json::from_str::<qmp::QapiCapabilities>(&greeting).map_err(|source| {
            QmpError::Decode {
                what: "greeting",
                line: greeting.clone(),
                source,
            }
        })?;
        qmp.execute(&qmp::qmp_capabilities { enable: None }, COMMAND_TIMEOUT)?;
        Ok(qmp)
    }

    /// Run one command and wait up to `timeout` for its reply; events that
    /// arrive meanwhile are queued.
    pub fn execute<C: Command>(
        &mut self,
        command: &C,
        timeout: Duration,
    ) -> Result<C::Ok, QmpError> {
        let line =
            serde_json::to_string(&qapi::Execute::<&C>::from(command)).map_err(|source| {
                QmpError::Decode {
                    what: "command",
                    line: C::NAME.to_string(),
                    source,
                }
            })?;
        self.log("->", &line);
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|source| QmpError::Io {
                step: format!("send {}", C::NAME),
                source,
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.read_line(C::NAME, left) {
                Err(QmpError::Timeout { .. }) => {
                    return Err(QmpError::Timeout {
                        command: C::NAME,
                        timeout,
                    })
                }
                other => other?,
            };
            let value: serde_json::Value = match serde_json::from_str(&line) {
                Ok(value) => value,
                Err(_) => continue, // not JSON: logged in the transcript, skipped
            };
            if let Some(event) = event_of(&value, &line) {
                self.events.push(event);
                continue;
            }
            if value.get("return").is_none() && value.get("error").is_none() {
                continue;
            }
            let response = match serde_json::from_value::<qmp::QmpMessage<C::Ok>>(value) {
                Ok(qmp::QmpMessage::Response(response)) => response,
                Ok(qmp::QmpMessage::Event(_)) => continue,
                Err(source) => {
                    return Err(QmpError::Decode {
                        what: "response",
                        line,
                        source,
                    })
                }
            };
            return response.result().map_err(|source| QmpError::Rejected {
                command: C::NAME,
                source,
            });
        }
    }

    pub fn query_status(&mut self) -> Result<qmp::StatusInfo, QmpError> {
        self.execute(&qmp::query_status {}, COMMAND_TIMEOUT)
    }

    /// Press the ACPI power button (the guest's acpid powers off).
    pub fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute(&qmp::system_powerdown {}, COMMAND_TIMEOUT)
            .map(drop)
    }

    /// Reset the machine. With `-no-reboot` (always set) QEMU treats this as
    /// a shutdown and exits: restart a guest by launching a new VM instead.
    pub fn system_reset(&mut self) -> Result<(), QmpError> {
        self.execute(&qmp::system_reset {}, COMMAND_TIMEOUT)
            .map(drop)
    }

    /// Ask QEMU to exit now. The connection closing right after is expected.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute(&qmp::quit {}, COMMAND_TIMEOUT) {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Ask QEMU to unplug device `id`; the guest must cooperate (PCIe hotplug), so it is
    /// gone only when [`Qmp::wait_device_deleted`] says so.
    pub fn device_del(&mut self, id: &str) -> Result<(), QmpError> {
        self.execute(&qmp::device_del { id: id.to_string() }, COMMAND_TIMEOUT)
            .map(drop)
    }

    /// Plug a device in: `driver` with `id` on `bus`.
    pub fn device_add(&mut self, driver: &str, id: &str, bus: &str) -> Result<(), QmpError> {
        let command = qmp::device_add {
            driver: driver.to_string(),
            id: Some(id.to_string()),
            bus: Some(bus.to_string()),
            arguments: Default::default(),
        };
        self.execute(&command, COMMAND_TIMEOUT).map(drop)
    }

    /// Wait until QEMU reports device `id` deleted (DEVICE_DELETED), at most `timeout`.
    pub fn wait_device_deleted(&mut self, id: &str, timeout: Duration) -> Result<(), QmpError> {
        let is_it = |event: &QmpEvent| match event {
            QmpEvent::Known(qmp::Event::DEVICE_DELETED { data, .. }) => {
                data.device.as_deref() == Some(id)
            }
            _ => false,
        };
        if let Some(i) = self.events.iter().position(is_it) {
            self.events.remove(i);
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(QmpError::Timeout {
                    command: "DEVICE_DELETED",
                    timeout,
                });
            }
            let line = match self.read_line("DEVICE_DELETED", left) {
                Err(QmpError::Timeout { .. }) => continue,
                other => other?,
            };
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            match event_of(&value, &line) {
                Some(event) if is_it(&event) => return Ok(()),
                Some(event) => self.events.push(event),
                None => {}
            }
        }
    }

    /// Events received so far, oldest first; the queue is emptied.
    pub fn take_events(&mut self) -> Vec<QmpEvent> {
        std::mem::take(&mut self.events)
    }

    fn read_line(&mut self, command: &'static str, timeout: Duration) -> Result<String, QmpError> {
        // A zero read timeout means "block forever" to the OS: never pass it.
        let timeout = timeout.max(Duration::from_millis(1));
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .map_err(|source| QmpError::Io {
                step: "set read timeout".into(),
                source,
            })?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(QmpError::Closed { command }),
            Ok(_) => {
                let line = line.trim_end().to_string();
                self.log("<-", &line);
                Ok(line)
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(QmpError::Timeout { command, timeout })
            }
            Err(source) => Err(QmpError::Io {
                step: format!("read reply to {command}"),
                source,
            }),
        }
    }

    fn log(&mut self, direction: &str, line: &str) {
        if let Some(file) = &mut self.transcript {
            // The transcript is for people debugging; losing a line is not an error.
            let _ = writeln!(file, "{direction} {line}");
        }
    }
}

/// The event in a QMP line, if it is one: decoded when this schema knows it.
fn event_of(value: &serde_json::Value, line: &str) -> Option<QmpEvent> {
    let name = value.get("event")?.as_str()?;
    Some(match serde_json::from_value::<qmp::Event>(value.clone()) {
        Ok(event) => QmpEvent::Known(event),
        Err(_) => QmpEvent::Unknown {
            name: name.to_string(),
            line: line.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#;

    /// A fake QEMU: greets, then answers each command from a script of
    /// (expected command name, lines to send back).
    /// With `hold_open` it keeps the connection until the client hangs up.
    fn fake_server(
        script: Vec<(&'static str, Vec<&'static str>)>,
        hold_open: bool,
    ) -> (UnixStream, std::thread::JoinHandle<Vec<String>>) {
        let (client, server) = UnixStream::pair().unwrap();
        let handle = std::thread::spawn(move || {
            let mut writer = server.try_clone().unwrap();
            let mut reader = BufReader::new(server);
            writeln!(writer, "{GREETING}").unwrap();
            let mut seen = Vec::new();
            for (expected, replies) in script {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                let value: serde_json::Value = serde_json::from_str(&line).unwrap();
                let name = value["execute"].as_str().unwrap().to_string();
                assert_eq!(name, expected);
                seen.push(name);
                for reply in replies {
                    writeln!(writer, "{reply}").unwrap();
                }
            }
            if hold_open {
                let _ = reader.read_line(&mut String::new());
            }
            seen
        });
        (client, handle)
    }

    #[test]
    fn unknown_events_are_kept_and_skipped() {
        let (client, server) = fake_server(
            vec![
                ("qmp_capabilities", vec![r#"{"return": {}}"#]),
                (
                    "query-status",
                    vec![
                        r#"{"event": "KCYCLE_FUTURE_EVENT", "data": {"x": 1}, "timestamp": {"seconds": 1, "microseconds": 2}}"#,
                        "not json at all",
                        r#"{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 3}}"#,
                        r#"{"return": {"status": "running", "singlestep": false, "running": true}}"#,
                    ],
                ),
                ("system_powerdown", vec![r#"{"return": {}}"#]),
            ],
            true,
        );
        let transcript = tempfile::NamedTempFile::new().unwrap();
        let mut qmp = Qmp::negotiate(client, Some(transcript.path())).unwrap();
        let status = qmp.query_status().unwrap();
        assert!(status.running);
        assert_eq!(status.status, qmp::RunState::running);
        qmp.system_powerdown().unwrap();

        let events = qmp.take_events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            matches!(&events[0], QmpEvent::Unknown { name, .. } if name == "KCYCLE_FUTURE_EVENT")
        );
        assert!(matches!(
            &events[1],
            QmpEvent::Known(qmp::Event::STOP { .. })
        ));
        drop(qmp);
        assert_eq!(
            server.join().unwrap(),
            ["qmp_capabilities", "query-status", "system_powerdown"]
        );
        let log = std::fs::read_to_string(transcript.path()).unwrap();
        assert!(log.contains("<- not json at all"), "{log}");
    }

    #[test]
    fn an_unplug_waits_for_its_own_device_deleted_event() {
        let (client, _server) = fake_server(
            vec![
                ("qmp_capabilities", vec![r#"{"return": {}}"#]),
                (
                    "device_del",
                    vec![
                        r#"{"return": {}}"#,
                        r#"{"event": "DEVICE_DELETED", "data": {"device": "other", "path": "/machine/peripheral/other"}, "timestamp": {"seconds": 1, "microseconds": 2}}"#,
                        r#"{"event": "DEVICE_DELETED", "data": {"device": "standin", "path": "/machine/peripheral/standin"}, "timestamp": {"seconds": 1, "microseconds": 3}}"#,
                    ],
                ),
                ("device_del", vec![r#"{"return": {}}"#]),
            ],
            true,
        );
        let mut qmp = Qmp::negotiate(client, None).unwrap();
        qmp.device_del("standin").unwrap();
        qmp.wait_device_deleted("standin", Duration::from_secs(5))
            .unwrap();
        // The other device's event stays queued; a second unplug that never completes times out.
        qmp.device_del("other2").unwrap();
        let err = qmp
            .wait_device_deleted("other2", Duration::from_millis(200))
            .unwrap_err();
        assert!(
            matches!(
                err,
                QmpError::Timeout {
                    command: "DEVICE_DELETED",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(qmp.take_events().len(), 1);
    }

    #[test]
    fn errors_and_silence_are_reported() {
        let (client, _server) = fake_server(
            vec![
                ("qmp_capabilities", vec![r#"{"return": {}}"#]),
                (
                    "system_reset",
                    vec![r#"{"error": {"class": "GenericError", "desc": "nope"}}"#],
                ),
                ("query-status", vec![]),
            ],
            true,
        );
        let mut qmp = Qmp::negotiate(client, None).unwrap();
        let err = qmp.system_reset().unwrap_err().to_string();
        assert!(err.contains("rejected system_reset: nope"), "{err}");
        let err = qmp
            .execute(&qmp::query_status {}, Duration::from_millis(200))
            .unwrap_err();
        assert!(
            matches!(
                err,
                QmpError::Timeout {
                    command: "query-status",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn quit_tolerates_the_connection_closing() {
        let (client, _server) = fake_server(
            vec![
                ("qmp_capabilities", vec![r#"{"return": {}}"#]),
                ("quit", vec![]),
            ],
            false,
        );
        let mut qmp = Qmp::negotiate(client, None).unwrap();
        // The fake server thread ends after "quit" and closes the socket.
        qmp.quit().unwrap();
    }
}
