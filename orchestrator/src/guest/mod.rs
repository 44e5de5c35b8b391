//! A booted guest reachable over SSH: the [`Guest`] the runner drives.
//!
//! `Guest::boot` writes the per-run key and initrd into a run directory,
//! launches QEMU ([`crate::vm::Vm`]) and waits until an SSH login succeeds
//! (user-net accepts TCP long before sshd runs, so only a finished
//! handshake and auth count), failing at once if QEMU exits or the console
//! shows a panic. Commands then go through the SSH worker ([`ssh::Ssh`]).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use kcycle::guest::{BootSpec, ExecRequest, Guest, RunDir};
//! use kcycle::{image, kernel::Artifacts, vm};
//!
//! let kernel = Artifacts::open("/path/to/artifacts".as_ref())?;
//! let cache = kcycle::sys::dirs::cache_root().ok_or("no cache directory")?;
//! let image = image::build(&kernel, &cache)?;
//! let run_dir = RunDir::temporary()?; // short path: the QMP socket lives here
//! let mut spec = BootSpec::new(kernel.bzimage(), image.path, vm::Accel::Tcg);
//! spec.cmdline = vec!["slub_debug=U".into()];
//! let mut guest = Guest::boot(spec, run_dir.path())?;
//! let out = guest.exec(
//!     ExecRequest::new("modprobe i915 mock_selftests=-1")
//!         .inactivity(Duration::from_secs(120))
//!         .deadline(Duration::from_secs(300)),
//! )?;
//! println!("{} {}", out.status, out.stdout_text());
//! if let vm::GuestState::Panicked { lines } = guest.state() {
//!     eprintln!("{}", lines.join("\n"));
//!     guest.restart()?;
//! }
//! guest.shutdown(Duration::from_secs(10));
//! # Ok(()) }
//! ```

pub mod serve;
pub mod ssh;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub use ssh::{ExecOutput, ExecRequest, Ssh, SshError, SshTarget};

use crate::image::{self, ImageError};
use crate::sys::shell::quote;
use crate::sys::{child, wait, Cancel};
use crate::vm::{
    self, console_block, Accel, GuestState, QemuConfig, Shutdown, StateError, Vm, VmError,
};

/// Files in a run directory besides the VM's logs.
pub const KEY_FILE: &str = "id_ed25519";
pub const INITRD_FILE: &str = "initrd.cpio";
/// How long [`Guest::exec`] waits to log in again after a lost session.
pub const RECONNECT_DEADLINE: Duration = Duration::from_secs(60);
/// Console line from images/init once dropbear runs.
const SSHD_STARTED: &str = "kcycle-init: sshd started";
/// How long readiness waits for [`SSHD_STARTED`] before polling blindly.
const SSHD_MARKER_WAIT: Duration = Duration::from_secs(60);
/// Console line from images/init when dropbear did not start.
const SSHD_FAILED: &str = "kcycle-init: sshd failed";
/// Saving a guest's state: a stopped guest's used memory to a local file.
const SAVE_DEADLINE: Duration = Duration::from_secs(120);
/// From killing the old QEMU to a restored guest's working SSH login.
const RESTORE_DEADLINE: Duration = Duration::from_secs(60);
/// How long a save waits for the guest to close its side of the SSH session.
const SESSION_CLOSE: Duration = Duration::from_secs(10);
/// How long a guest whose SSH connection died may take to show it panicked.
const DYING_GRACE: Duration = Duration::from_secs(5);
/// Keep every PCI device's header (BARs, command) in guest memory
/// (/run/kcycle-pci, saved with the rest of the state): QEMU
/// does not migrate the config space of some devices (`edu`, the stand-in).
const PCI_STASH: &str = "mkdir -p /run/kcycle-pci && for d in /sys/bus/pci/devices/*; do \
[ -e \"$d\" ] || continue; dd if=\"$d/config\" of=/run/kcycle-pci/\"${d##*/}\" bs=64 count=1 2>/dev/null || exit 1; done";
/// After a restore, write back the headers that QEMU lost: BARs and the
/// rest of the header first, then the command register (which turns
/// decoding on). Devices whose header survived are left alone.
const PCI_RESTORE: &str = "for f in /run/kcycle-pci/*; do [ -e \"$f\" ] || continue; \
c=/sys/bus/pci/devices/\"${f##*/}\"/config; dd if=\"$c\" bs=64 count=1 2>/dev/null | cmp -s - \"$f\" && continue; \
dd if=\"$f\" of=\"$c\" bs=4 skip=4 seek=4 count=12 conv=notrunc 2>/dev/null \
&& dd if=\"$f\" of=\"$c\" bs=2 skip=2 seek=2 count=1 conv=notrunc 2>/dev/null || exit 1; echo \"${f##*/}\"; done";

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("failed to create the run directory {path}")]
    RunDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to generate the SSH key {path} with ssh-keygen (install openssh-client): {detail}"
    )]
    KeyGen { path: PathBuf, detail: String },
    #[error("failed to write the run's initrd")]
    Initrd(#[source] ImageError),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("the guest kernel panicked{}", console_block(.lines))]
    Panicked { lines: Vec<String> },
    #[error("QEMU exited ({status}) before the guest was ready or while it was used{}", console_block(.lines))]
    Exited { status: String, lines: Vec<String> },
    #[error("the guest's init could not start sshd (is dropbear in the image?){}", console_block(.lines))]
    SshdFailed { lines: Vec<String> },
    #[error("the guest's sshd did not accept a login within {waited:?} (last attempt: {last}){}", console_block(.lines))]
    NotReady {
        waited: Duration,
        last: String,
        lines: Vec<String>,
    },
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("failed to write {path} in the guest: {stderr}")]
    CopyFailed { path: String, stderr: String },
    #[error("failed to read {path} to copy it into the guest")]
    Upload {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted while waiting for the guest; QEMU was stopped")]
    Cancelled,
    #[error("failed to save the guest's state")]
    Save(#[source] StateError),
    #[error("failed to restore the saved state{}", stderr_block(.stderr))]
    Restore {
        #[source]
        source: StateError,
        /// QEMU's stderr: why it refused the state.
        stderr: String,
    },
    #[error("failed to {step} in the guest: {stderr}")]
    Fixup { step: &'static str, stderr: String },
}

/// "\nQEMU said: ..." or nothing.
fn stderr_block(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("\nQEMU said: {stderr}")
    }
}

/// A 0700 directory for one guest's key, initrd, console log and QMP
/// socket. Temporary ones (under /tmp, short enough for the socket path)
/// are removed on drop unless kept.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    temp: Option<tempfile::TempDir>,
}

impl RunDir {
    /// A fresh `/tmp/kcycle-XXXXXX`.
    pub fn temporary() -> Result<RunDir, GuestError> {
        let temp = tempfile::Builder::new()
            .prefix("kcycle-")
            .tempdir()
            .map_err(|source| GuestError::RunDir {
                path: std::env::temp_dir(),
                source,
            })?;
        let path = temp.path().to_path_buf();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| GuestError::RunDir {
                path: path.clone(),
                source,
            },
        )?;
        Ok(RunDir {
            path,
            temp: Some(temp),
        })
    }

    /// A directory at `path` (created 0700 if missing), never removed.
    pub fn at(path: &Path) -> Result<RunDir, GuestError> {
        let error = |source| GuestError::RunDir {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(path).map_err(error)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(error)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            temp: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the directory after drop (e.g. to look at the console log).
    pub fn keep(mut self) -> PathBuf {
        if let Some(temp) = self.temp.take() {
            // TempDir::keep is newer than our MSRV's tempfile; into_path does the same.
            #[allow(deprecated)]
            let _ = temp.into_path();
        }
        self.path.clone()
    }
}

/// The run's ed25519 key pair (private key 0600).
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub private: PathBuf,
    /// The `ssh-ed25519 AAAA... kcycle` line for authorized_keys.
    pub public_line: String,
}

impl KeyPair {
    /// Generate `<dir>/id_ed25519{,.pub}` with ssh-keygen (reused if present).
    pub fn generate(dir: &Path) -> Result<KeyPair, GuestError> {
        let private = dir.join(KEY_FILE);
        let public = dir.join(format!("{KEY_FILE}.pub"));
        if !private.exists() {
            let output = child::capture(
                std::process::Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "kcycle", "-f"])
                    .arg(&private),
                Duration::from_secs(30),
            )
            .map_err(|err| GuestError::KeyGen {
                path: private.clone(),
                detail: err.to_string(),
            })?;
            if !output.status.success() {
                return Err(GuestError::KeyGen {
                    path: private,
                    detail: output.stderr.trim().to_string(),
                });
            }
        }
        let public_line = std::fs::read_to_string(&public).map_err(|err| GuestError::KeyGen {
            path: public.clone(),
            detail: err.to_string(),
        })?;
        Ok(KeyPair {
            private,
            public_line,
        })
    }
}

/// How to boot a guest.
#[derive(Debug, Clone)]
pub struct BootSpec {
    pub qemu: PathBuf,
    /// The bzImage.
    pub kernel: PathBuf,
    /// The cached base initramfs ([`crate::image::build`]).
    pub image: PathBuf,
    pub accel: Accel,
    /// Extra kernel parameters.
    pub cmdline: Vec<String>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// A GPU passed through with vfio-pci.
    pub vfio: Option<crate::vm::argv::Vfio>,
    /// From QEMU start to a working SSH login.
    pub boot_deadline: Duration,
    /// Give up waiting for the guest (and stop QEMU) when this is cancelled.
    pub cancel: Option<Cancel>,
}

impl BootSpec {
    pub fn new(kernel: PathBuf, image: PathBuf, accel: Accel) -> Self {
        BootSpec {
            qemu: crate::vm::qemu_binary(),
            kernel,
            image,
            accel,
            cmdline: Vec::new(),
            memory_mib: 2048,
            cpus: 2,
            vfio: None,
            boot_deadline: Duration::from_secs(180),
            cancel: None,
        }
    }
}

/// A running guest with a working SSH session.
pub struct Guest {
    spec: BootSpec,
    run_dir: PathBuf,
    key: KeyPair,
    ssh: Option<Ssh>,
    vm: Vm,
    boot_time: Duration,
    /// Started from a saved state: its console has no boot messages.
    restored: bool,
}

impl Guest {
    /// Boot and wait until SSH works. `run_dir` must be short (QMP socket path).
    pub fn boot(spec: BootSpec, run_dir: &Path) -> Result<Guest, GuestError> {
        let started = Instant::now();
        let key = KeyPair::generate(run_dir)?;
        let initrd = run_dir.join(INITRD_FILE);
        image::write_run_initrd(&spec.image, &key.public_line, &initrd)
            .map_err(GuestError::Initrd)?;
        let vm = launch(&spec, run_dir, &initrd, false)?;
        let mut guest = Guest {
            spec,
            run_dir: run_dir.to_path_buf(),
            key,
            ssh: None,
            vm,
            boot_time: Duration::ZERO,
            restored: false,
        };
        guest.wait_ready(guest.spec.boot_deadline)?;
        guest.boot_time = started.elapsed();
        Ok(guest)
    }

    /// Run a command. If SSH fails because the guest died, the error says so
    /// (with the console) rather than just "connection lost".
    /// A session closed by an earlier deadline is re-established first
    /// (within [`RECONNECT_DEADLINE`]) as long as the guest still runs.
    pub fn exec(&mut self, request: ExecRequest) -> Result<ExecOutput, GuestError> {
        if self.ssh.as_ref().is_none_or(Ssh::is_gone) {
            self.reconnect(RECONNECT_DEADLINE)?;
        }
        let ssh = self.ssh.as_mut().ok_or(SshError::Gone)?;
        match ssh.exec(request) {
            Ok(output) => Ok(output),
            Err(err) => Err(self.explain(err)),
        }
    }

    /// Run a command with default limits; stdout/stderr/status in the ExecOutput.
    pub fn run(&mut self, command: &str) -> Result<ExecOutput, GuestError> {
        self.exec(ExecRequest::new(command))
    }

    /// Write `data` to `remote_path` in the guest (mode `mode`), e.g. a `.ko`.
    pub fn copy_in(
        &mut self,
        data: Vec<u8>,
        remote_path: &str,
        mode: u32,
    ) -> Result<(), GuestError> {
        let quoted = quote(remote_path);
        let command = format!("cat > {quoted} && chmod {mode:o} {quoted}");
        let output = self.exec(ExecRequest::new(command.clone()).stdin(data))?;
        if output.success() {
            Ok(())
        } else {
            Err(GuestError::CopyFailed {
                path: remote_path.to_string(),
                stderr: output.stderr_text().trim().to_string(),
            })
        }
    }

    /// Copy the host file `host` to `remote_path` in the guest, keeping its mode.
    pub fn upload(&mut self, host: &Path, remote_path: &str) -> Result<(), GuestError> {
        let error = |source| GuestError::Upload {
            path: host.to_path_buf(),
            source,
        };
        let data = std::fs::read(host).map_err(error)?;
        let mode = std::fs::metadata(host).map_err(error)?.permissions().mode() & 0o7777;
        self.copy_in(data, remote_path, mode)
    }

    /// Running, panicked (with console lines) or exited.
    pub fn state(&mut self) -> GuestState {
        self.vm.state()
    }

    /// The serial console: log file, tail, panic lines.
    pub fn console(&self) -> &vm::Console {
        self.vm.console()
    }

    /// The VM: QMP, pid, killer.
    pub fn vm(&mut self) -> &mut Vm {
        &mut self.vm
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Wall time from QEMU start to the first successful SSH login.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The `ssh` command line that reaches this guest.
    pub fn ssh_command(&self) -> String {
        format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@127.0.0.1",
            quote(&self.key.private.to_string_lossy()),
            self.vm.ssh_port()
        )
    }

    /// Drop the SSH session and log in again (after sshd restarted, or a
    /// deadline closed the session).
    pub fn reconnect(&mut self, deadline: Duration) -> Result<(), GuestError> {
        self.ssh = None;
        self.wait_ready(deadline)
    }

    /// A fresh boot of the same spec in the same run directory: kills the
    /// current QEMU first. The previous console log is kept as
    /// `console.<n>.log`. Use after a panic or hang; QMP `system_reset`
    /// would just make QEMU exit (`-no-reboot`).
    pub fn restart(&mut self) -> Result<(), GuestError> {
        let started = Instant::now();
        self.replace_vm(false)?;
        self.wait_ready(self.spec.boot_deadline)?;
        self.boot_time = started.elapsed();
        Ok(())
    }

    /// Save this guest's whole state to the run directory's
    /// [`vm::STATE_FILE`] for [`Guest::restore`]; returns the file. The SSH
    /// session is closed first (no connection survives a restore) and the
    /// guest keeps its PCI headers in memory (see [`PCI_STASH`]).
    pub fn save_state(&mut self) -> Result<PathBuf, GuestError> {
        let stash = self.exec(ExecRequest::new(PCI_STASH).deadline(Duration::from_secs(30)))?;
        if !stash.success() {
            return Err(GuestError::Fixup {
                step: "keep the PCI headers",
                stderr: stash.stderr_text().trim().to_string(),
            });
        }
        self.ssh = None;
        // A session the guest still holds would be half-open in every restore.
        // Not cancellable: bounded by SESSION_CLOSE.
        let _ = wait::poll_for(SESSION_CLOSE, None, Duration::from_millis(50), || {
            matches!(self.vm.open_connections(), Ok(0)).then_some(())
        });
        let path = self.run_dir.join(vm::STATE_FILE);
        self.vm
            .save_state(&path, SAVE_DEADLINE)
            .map_err(GuestError::Save)?;
        Ok(path)
    }

    /// Replace this guest with a new QEMU started from `state` (from
    /// [`Guest::save_state`]): the current QEMU is killed as in
    /// [`Guest::restart`], the console starts at the restore point (the
    /// previous one is kept as `console.<n>.log`), then a fresh SSH session
    /// sets the guest clock to the host's and writes back the PCI headers
    /// QEMU did not migrate.
    pub fn restore(&mut self, state: &Path) -> Result<(), GuestError> {
        let started = Instant::now();
        self.replace_vm(true)?;
        if let Err(source) = self.vm.load_state(state, RESTORE_DEADLINE) {
            let stderr = self.vm.stderr();
            self.vm.kill();
            return Err(GuestError::Restore { source, stderr });
        }
        self.wait_ready(RESTORE_DEADLINE.saturating_sub(started.elapsed()))?;
        // The guest's clock stood still since the save.
        let fixup = format!("{} && {PCI_RESTORE}", set_clock(SystemTime::now()));
        let fixed = self.exec(ExecRequest::new(fixup).deadline(Duration::from_secs(30)))?;
        if !fixed.success() {
            return Err(GuestError::Fixup {
                step: "set the clock and write back the PCI headers",
                stderr: fixed.stderr_text().trim().to_string(),
            });
        }
        self.boot_time = started.elapsed();
        Ok(())
    }

    /// Kill QEMU, keep its console as `console.<n>.log` and launch a new one
    /// (waiting for a saved state when `incoming`).
    fn replace_vm(&mut self, incoming: bool) -> Result<(), GuestError> {
        self.ssh = None;
        self.vm.kill();
        let log = self.run_dir.join(vm::CONSOLE_LOG);
        for n in 1.. {
            let kept = self.run_dir.join(format!("console.{n}.log"));
            if !kept.exists() {
                let _ = std::fs::rename(&log, kept);
                break;
            }
        }
        self.restored = incoming;
        let initrd = self.run_dir.join(INITRD_FILE);
        self.vm = launch(&self.spec, &self.run_dir, &initrd, incoming)?;
        Ok(())
    }

    /// Power off (ACPI button, then QMP quit, then SIGKILL); QEMU is reaped.
    pub fn shutdown(mut self, grace: Duration) -> Shutdown {
        self.ssh = None;
        self.vm.shutdown(grace)
    }

    fn wait_ready(&mut self, deadline: Duration) -> Result<(), GuestError> {
        let started = Instant::now();
        let target = SshTarget {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, self.vm.ssh_port())),
            user: "root".into(),
            key: self.key.private.clone(),
        };
        // Before the guest's network is up, QEMU's user-net accepts the TCP
        // connection and then holds it silent: an SSH attempt then costs its
        // whole timeout. So first wait for init to report sshd (returns at
        // once on a panic or exit); images without the marker fall back to
        // plain polling after SSHD_MARKER_WAIT.
        // A restored guest printed the marker before its state was saved.
        let marker_wait = if self.restored {
            Duration::ZERO
        } else {
            SSHD_MARKER_WAIT.min(deadline)
        };
        let marker_until = started + marker_wait;
        // Timing out here is fine: the SSH attempts below decide.
        wait::poll(marker_until, None, Duration::ZERO, || {
            if let Err(error) = self.fail_if_cancelled().and_then(|()| self.fail_if_dead()) {
                return Some(Err(error));
            }
            let console = self.vm.console();
            console
                .wait_for(SSHD_STARTED, 0, Duration::from_millis(200).min(marker_wait))
                .then_some(Ok(()))
        })
        .unwrap_or(Ok(()))?;
        let mut backoff = Duration::from_millis(100);
        loop {
            self.fail_if_cancelled()?;
            self.fail_if_dead()?;
            let left = deadline.saturating_sub(started.elapsed());
            let last = match ssh::connect_once(&target, left.min(Duration::from_secs(3))) {
                Ok((session, socket)) => {
                    self.ssh = Some(Ssh::start(session, socket)?);
                    return Ok(());
                }
                // With its cause: "connection refused" says more than "failed to connect".
                Err(err) => crate::sys::error::chain(&err),
            };
            if started.elapsed() + backoff >= deadline {
                self.fail_if_dead()?;
                return Err(GuestError::NotReady {
                    waited: deadline,
                    last,
                    lines: self.vm.console().tail(25),
                });
            }
            // Wake early if the console says sshd just started.
            let mark = self.vm.console().line_count();
            self.vm.console().wait_for(SSHD_STARTED, mark, backoff);
            backoff = (backoff * 3 / 2).min(Duration::from_secs(2));
        }
    }

    fn fail_if_cancelled(&mut self) -> Result<(), GuestError> {
        if self.spec.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
            self.vm.kill();
            return Err(GuestError::Cancelled);
        }
        Ok(())
    }

    fn fail_if_dead(&mut self) -> Result<(), GuestError> {
        // images/init prints this when dropbear is missing or exits at once.
        if self.vm.console().wait_for(SSHD_FAILED, 0, Duration::ZERO) {
            return Err(GuestError::SshdFailed {
                lines: self.vm.console().tail(25),
            });
        }
        match self.vm.state() {
            GuestState::Running => Ok(()),
            GuestState::Panicked { lines } => Err(GuestError::Panicked { lines }),
            GuestState::Exited { status, lines, .. } => Err(GuestError::Exited { status, lines }),
        }
    }

    fn explain(&mut self, err: SshError) -> GuestError {
        let grace = match err {
            // The connection died: under TCG a guest oopsing in an interrupt
            // loses its network seconds before its panic line reaches the
            // serial console, and that line tells a crash from a lost guest.
            SshError::Io { .. } | SshError::Gone => DYING_GRACE,
            // The same death, seen by libssh2 mid-exec (seen: "close the
            // channel: [Session(-43)] error receiving on socket").
            SshError::Exec { ref source, .. } if ssh::is_transport(source) => DYING_GRACE,
            // A command over its deadline: most likely hung, not dying.
            SshError::Deadline { .. } => Duration::from_millis(500),
            _ => return GuestError::Ssh(err),
        };
        let _ = wait::poll_for(grace, None, Duration::from_millis(50), || {
            (!matches!(self.vm.state(), GuestState::Running)).then_some(())
        });
        if let Err(dead) = self.fail_if_dead() {
            return dead;
        }
        GuestError::Ssh(err)
    }
}

/// Launch QEMU on a free port; another process can grab the port between
/// picking and binding it, so a "port in use" start is retried.
fn launch(
    spec: &BootSpec,
    run_dir: &Path,
    initrd: &Path,
    incoming: bool,
) -> Result<Vm, GuestError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let port = vm::free_port().map_err(|source| GuestError::RunDir {
            path: run_dir.to_path_buf(),
            source,
        })?;
        let config = QemuConfig {
            qemu: spec.qemu.clone(),
            accel: spec.accel,
            memory_mib: spec.memory_mib,
            cpus: spec.cpus,
            cmdline: spec.cmdline.clone(),
            vfio: spec.vfio.clone(),
            incoming,
            firmware: vm::fast_firmware(&spec.qemu),
            ..QemuConfig::new(
                spec.kernel.clone(),
                initrd.to_path_buf(),
                run_dir.join(vm::QMP_SOCKET),
                port,
            )
        };
        match Vm::launch(config, run_dir) {
            Err(VmError::PortInUse { .. }) if attempts < 3 => continue,
            other => return Ok(other?),
        }
    }
}

/// The guest command that sets its clock to `now` (to the second, rounded).
fn set_clock(now: SystemTime) -> String {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs() + u64::from(since.subsec_millis() >= 500);
    format!("date -u -s @{seconds} >/dev/null")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_command_rounds_to_the_second() {
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(
            set_clock(at(1_700_000_000_499)),
            "date -u -s @1700000000 >/dev/null"
        );
        assert_eq!(
            set_clock(at(1_700_000_000_500)),
            "date -u -s @1700000001 >/dev/null"
        );
    }

    #[test]
    fn key_pair_is_private() {
        let dir = RunDir::temporary().unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        match KeyPair::generate(dir.path()) {
            Ok(key) => {
                let mode = std::fs::metadata(&key.private)
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
                assert!(key.public_line.starts_with("ssh-ed25519 "));
            }
            Err(err) => {
                assert!(std::env::var_os("CI").is_none(), "{err}");
                eprintln!("skipping: {err}");
            }
        }
    }
}
