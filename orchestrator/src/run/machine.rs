//! What the executor needs from a guest. The real implementation is QEMU plus
//! SSH (`vm` and `guest`); unit tests of the executor use a scripted fake.

use std::time::Duration;

pub use super::pristine::Saved;

/// A finished guest command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Why a guest command has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("the command did not finish within {}s", .0.as_secs())]
    Timeout(Duration),
    /// The console showed a kernel panic or QEMU exited while the command ran.
    #[error("the guest crashed: {summary}")]
    Crashed {
        summary: String,
        /// The console from the last restart on, for the crash report.
        console: String,
    },
    /// SSH broke (sshd gone, network down) and could not be re-established.
    #[error("lost the guest: {0}")]
    Lost(String),
    /// The guest did not come up (after its retries).
    #[error("failed to boot the guest: {0}")]
    Boot(String),
    /// The saved state could not be brought back (the guest can still boot).
    #[error("failed to restore the guest's saved state: {0}")]
    Restore(String),
}

/// A running guest the executor drives.
pub trait Machine {
    /// Run a shell command as root; `Ok` whatever its exit status.
    fn exec(&mut self, command: &str, timeout: Duration) -> Result<Output, MachineError>;
    /// Copy a host file into the guest at `guest_path` (for `--module` files).
    fn upload(&mut self, host_path: &std::path::Path, guest_path: &str)
        -> Result<(), MachineError>;
    /// Start the guest afresh (after a crash, a hang, leftovers or fatal taint).
    fn restart(&mut self) -> Result<(), MachineError>;
    /// Whether [`Machine::restore`] has a state to go back to.
    fn saved(&self) -> Saved {
        Saved::Off
    }
    /// Go back to the state saved when the guest was first ready: what
    /// [`Machine::restart`] gives, in a fraction of a boot.
    fn restore(&mut self) -> Result<(), MachineError> {
        Err(MachineError::Restore("this machine saves no state".into()))
    }
    /// Unplug QEMU device `id` (QMP `device_del`) and wait up to `timeout` until QEMU reports it
    /// gone. A refusal or a timeout is the step's failure (non-zero status, why on stderr).
    fn unplug(&mut self, id: &str, _timeout: Duration) -> Result<Output, MachineError> {
        Ok(cannot_plug(id))
    }
    /// Plug device `id` back as it was at boot (QMP `device_add`).
    fn plug(&mut self, id: &str, _timeout: Duration) -> Result<Output, MachineError> {
        Ok(cannot_plug(id))
    }
    /// Lines the serial console printed so far: a mark for [`Machine::console_since`].
    fn console_mark(&mut self) -> usize {
        0
    }
    /// What the console printed after `mark`: the evidence of a step that
    /// hung or killed the guest, which SSH can no longer fetch.
    fn console_since(&mut self, _mark: usize) -> String {
        String::new()
    }
}

/// What a machine without QMP answers to a hotplug step.
fn cannot_plug(id: &str) -> Output {
    Output {
        status: 1,
        stdout: String::new(),
        stderr: format!("kcycle: this machine cannot hot-plug devices (asked for {id})\n"),
    }
}
