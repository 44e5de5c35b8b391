//! A guest's whole state in a file, and a new QEMU started from it.
//!
//! [`save`] stops the guest, migrates it to `exec:cat > FILE` (QEMU 7.2 has no
//! `file:` URI) and lets it run on; [`load`] feeds the file to a QEMU started
//! with `-incoming defer` ([`super::QemuConfig::incoming`]) and starts it.
//! A stopped guest migrates in one pass, so the file is the guest at one
//! instant. Every wait here has a deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qapi::qmp;

use super::qmp::{Qmp, QmpError, COMMAND_TIMEOUT};
use crate::sys::shell::quote;
use crate::sys::wait;

/// The saved state's file name in a run directory.
pub const STATE_FILE: &str = "ready.state";

/// The default migration bandwidth (128 MiB/s) would throttle a local file.
const BANDWIDTH: u64 = 1 << 34;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("failed to {step} (QMP)")]
    Qmp {
        step: &'static str,
        #[source]
        source: QmpError,
    },
    #[error("QEMU failed to {step}: {detail}")]
    Failed { step: &'static str, detail: String },
    #[error("QEMU did not {step} within {}s", .waited.as_secs())]
    Timeout {
        step: &'static str,
        waited: Duration,
    },
    #[error("there is no saved state at {path}")]
    Missing { path: PathBuf },
}

/// Where a migration stands, from `query-migrate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Running,
    Done,
    Failed(String),
}

/// `query-migrate`'s status and error text -> progress. Anything but the end
/// states (none, setup, active, device, ...) is still running.
pub fn progress(status: Option<&str>, error: Option<&str>) -> Progress {
    match status {
        Some("completed") => Progress::Done,
        Some(end @ ("failed" | "cancelled")) => Progress::Failed(error.unwrap_or(end).to_string()),
        _ => Progress::Running,
    }
}

/// TCP connections through user-net that are still open, from HMP `info
/// usernet`: the listening forward and connections closed on both sides
/// (TIME_WAIT) do not count.
pub fn open_connections(usernet: &str) -> usize {
    usernet
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("TCP["))
        .filter_map(|rest| rest.split(']').next())
        .filter(|state| !matches!(*state, "HOST_FORWARD" | "TIME_WAIT" | "CLOSED"))
        .count()
}

/// Save the guest's state to `path` within `deadline`. The guest runs on
/// afterwards, whether or not the save worked.
pub fn save(qmp: &mut Qmp, path: &Path, deadline: Duration) -> Result<(), StateError> {
    let until = Instant::now() + deadline;
    run(qmp, "stop the guest", &qmp::stop {})?;
    let saved = run(
        qmp,
        "raise the migration bandwidth",
        &SetBandwidth {
            max_bandwidth: BANDWIDTH,
        },
    )
    .and_then(|()| {
        let uri = format!("exec:cat > {}", quote(&path.to_string_lossy()));
        let migrate = qmp::migrate {
            uri: Some(uri),
            channels: None,
            detach: None,
            resume: None,
        };
        run(qmp, "start saving the guest's state", &migrate)
    })
    .and_then(|()| finish(qmp, "save the guest's state", until));
    if saved.is_err() {
        let _ = qmp.execute(&qmp::migrate_cancel {}, COMMAND_TIMEOUT);
        let _ = std::fs::remove_file(path);
    }
    let resumed = run(qmp, "resume the guest", &qmp::cont {});
    saved.and(resumed)
}

/// Load the state at `path` into a QEMU started with `-incoming defer` and
/// start the guest, within `deadline`.
pub fn load(qmp: &mut Qmp, path: &Path, deadline: Duration) -> Result<(), StateError> {
    if !path.is_file() {
        return Err(StateError::Missing {
            path: path.to_path_buf(),
        });
    }
    let until = Instant::now() + deadline;
    let incoming = qmp::migrate_incoming {
        uri: Some(format!("exec:cat {}", quote(&path.to_string_lossy()))),
        channels: None,
        exit_on_error: None,
    };
    run(qmp, "start loading the saved state", &incoming)?;
    finish(qmp, "load the saved state", until)?;
    // The state was saved stopped, so it arrives stopped.
    run(qmp, "start the restored guest", &qmp::cont {})
}

/// User-net's TCP connections that are still open (HMP `info usernet`).
pub fn connections(qmp: &mut Qmp) -> Result<usize, StateError> {
    let command = qmp::human_monitor_command {
        command_line: "info usernet".into(),
        cpu_index: None,
    };
    let text = qmp
        .execute(&command, COMMAND_TIMEOUT)
        .map_err(|source| StateError::Qmp {
            step: "list user-net connections",
            source,
        })?;
    Ok(open_connections(&text))
}

fn run<C: qapi::Command>(qmp: &mut Qmp, step: &'static str, command: &C) -> Result<(), StateError> {
    qmp.execute(command, COMMAND_TIMEOUT)
        .map(drop)
        .map_err(|source| StateError::Qmp { step, source })
}

/// Poll `query-migrate` until the migration ends or `until` passes.
fn finish(qmp: &mut Qmp, step: &'static str, until: Instant) -> Result<(), StateError> {
    let started = Instant::now();
    // No cancel token: a cancel kills QEMU, and the next query fails at once.
    let ended = wait::poll(until, None, Duration::from_millis(20), || {
        match qmp.execute(&QueryMigrate {}, COMMAND_TIMEOUT) {
            Err(source) => Some(Err(StateError::Qmp { step, source })),
            Ok(info) => match progress(info.status.as_deref(), info.error_desc.as_deref()) {
                Progress::Running => None,
                Progress::Done => Some(Ok(())),
                Progress::Failed(detail) => Some(Err(StateError::Failed { step, detail })),
            },
        }
    });
    match ended {
        Ok(result) => result,
        Err(_) => Err(StateError::Timeout {
            step,
            waited: started.elapsed(),
        }),
    }
}

/// `query-migrate` decoded only as far as needed, so a newer or older
/// QEMU's statistics fields never break it.
#[derive(serde::Serialize)]
struct QueryMigrate {}

#[derive(serde::Deserialize)]
struct MigrateStatus {
    status: Option<String>,
    #[serde(rename = "error-desc")]
    error_desc: Option<String>,
}

impl qapi::Command for QueryMigrate {
    type Ok = MigrateStatus;
    const NAME: &'static str = "query-migrate";
    const ALLOW_OOB: bool = false;
}

#[derive(serde::Serialize)]
struct SetBandwidth {
    #[serde(rename = "max-bandwidth")]
    max_bandwidth: u64,
}

impl qapi::Command for SetBandwidth {
    type Ok = qapi::Empty;
    const NAME: &'static str = "migrate-set-parameters";
    const ALLOW_OOB: bool = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_progress_from_query_migrate() {
        assert_eq!(progress(Some("completed"), None), Progress::Done);
        assert_eq!(progress(Some("active"), None), Progress::Running);
        assert_eq!(progress(None, None), Progress::Running);
        assert_eq!(
            progress(Some("failed"), Some("Unable to write to command")),
            Progress::Failed("Unable to write to command".into())
        );
        assert_eq!(
            progress(Some("cancelled"), None),
            Progress::Failed("cancelled".into())
        );
    }

    #[test]
    fn open_connections_skip_the_forward_and_closed_ones() {
        // HMP `info usernet` from QEMU 7.2 after a session was closed by the host.
        let text = "Hub -1 (net0):
  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ
  TCP[ESTABLISHED]   70       127.0.0.1 40101       10.0.2.15    22     0     0
  TCP[FIN_WAIT_2]    69       127.0.0.1 40101       10.0.2.15    22     0     0
  TCP[TIME_WAIT]     67       127.0.0.1 40101       10.0.2.15    22     0     0
  TCP[HOST_FORWARD]   8       127.0.0.1 40101       10.0.2.15    22     0     0
";
        assert_eq!(open_connections(text), 2);
        assert_eq!(open_connections(""), 0);
    }
}
