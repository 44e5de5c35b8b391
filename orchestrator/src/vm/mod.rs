//! QEMU: argv builder, accel probe, QMP, serial console.
//!
//! [`Vm::launch`] starts QEMU from a [`QemuConfig`] as a [`Child`] and gives
//! back a handle that owns the process (killed and reaped on drop), the
//! console capture and the QMP connection. What runs inside the guest is
//! `guest`'s business.

pub mod accel;
pub mod argv;
pub mod console;
pub mod qmp;
pub mod state;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use accel::{resolve_accel, AccelChoice};
pub use argv::{argv, Accel, Chipset, IgdMode, QemuConfig, Vfio};
pub use console::Console;
pub use qmp::{Qmp, QmpError, QmpEvent};
pub use state::{StateError, STATE_FILE};

pub use crate::sys::child::Killer;
use crate::sys::child::{self, Child, ChildError, Spawn};
use crate::sys::wait;

/// Oldest QEMU whose options (`-chardev ...signal=off`, `server=on,wait=off`) we use.
pub const MIN_QEMU: (u32, u32) = (6, 0);

/// Files a VM writes in its run directory.
pub const CONSOLE_LOG: &str = "console.log";
pub const QEMU_LOG: &str = "qemu.log";
pub const QMP_LOG: &str = "qmp.log";
pub const QMP_SOCKET: &str = "qmp.sock";

/// How long QEMU gets to create its QMP socket.
const QMP_CONNECT: Duration = Duration::from_secs(10);
/// Console lines put into error messages.
const ERROR_LINES: usize = 25;
/// How long `qemu --version` may take.
const VERSION_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("failed to start QEMU: `{qemu}` was not found (install qemu-system-x86, e.g. `kcycle setup`)")]
    QemuMissing { qemu: PathBuf },
    #[error("failed to start QEMU: {qemu} is version {found}, kcycle needs {}.{} or newer", MIN_QEMU.0, MIN_QEMU.1)]
    QemuTooOld { qemu: PathBuf, found: String },
    #[error("failed to start QEMU: the QMP socket path {path} is {len} bytes, over the 107-byte unix socket limit (use a shorter run directory, e.g. under /tmp)")]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error("failed to start QEMU: host port 127.0.0.1:{port} for SSH is in use ({stderr})")]
    PortInUse { port: u16, stderr: String },
    #[error("failed to start QEMU {qemu}")]
    Spawn {
        qemu: PathBuf,
        #[source]
        source: ChildError,
    },
    #[error("failed to start QEMU: it exited at once ({status}): {stderr}{}", console_block(.console))]
    ExitedAtStart {
        status: String,
        stderr: String,
        console: Vec<String>,
    },
    #[error("failed to set up the VM run directory {path}")]
    RunDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to connect to QEMU's QMP socket")]
    Qmp(#[source] QmpError),
}

/// "\nlast console lines:\n  ..." or nothing.
pub fn console_block(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut text = String::from("\nlast console lines:");
    for line in lines {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

/// What the guest is doing, as far as the host can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestState {
    Running,
    /// The console showed a kernel panic: these lines from it.
    Panicked {
        lines: Vec<String>,
    },
    /// QEMU exited: its status (`success` when it exited 0, e.g. after a
    /// `poweroff` in the guest) and the last console lines.
    Exited {
        status: String,
        success: bool,
        lines: Vec<String>,
    },
}

/// How [`Vm::shutdown`] ended the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    AlreadyExited,
    /// The guest powered off after the ACPI power button.
    PoweredOff,
    /// QMP `quit`.
    Quit,
    /// SIGKILL to the process group.
    Killed,
}

/// A running QEMU.
pub struct Vm {
    config: QemuConfig,
    run_dir: PathBuf,
    qmp: Option<Qmp>,
    console: Console,
    // Dropped last: the console thread ends when QEMU's stdout closes.
    process: Child,
}

impl Vm {
    /// Start QEMU with `config`, logs in `run_dir`; returns once QMP answers.
    /// Fails (with QEMU's stderr and the console) if QEMU exits meanwhile.
    pub fn launch(config: QemuConfig, run_dir: &Path) -> Result<Vm, VmError> {
        let len = config.qmp_socket.as_os_str().len();
        if !argv::socket_path_fits(&config.qmp_socket) {
            return Err(VmError::SocketPathTooLong {
                path: config.qmp_socket.clone(),
                len,
            });
        }
        check_qemu_version(&config.qemu)?;
        let _ = std::fs::remove_file(&config.qmp_socket);
        let mut process = spawn_qemu(&config, &run_dir.join(QEMU_LOG))?;
        let stdout = process.take_stdout().ok_or_else(|| VmError::RunDir {
            path: run_dir.to_path_buf(),
            source: std::io::Error::other("QEMU's stdout was not piped"),
        })?;
        let console = Console::capture(stdout, &run_dir.join(CONSOLE_LOG)).map_err(|source| {
            VmError::RunDir {
                path: run_dir.to_path_buf(),
                source,
            }
        })?;
        let mut vm = Vm {
            config,
            run_dir: run_dir.to_path_buf(),
            qmp: None,
            console,
            process,
        };
        let transcript = vm.run_dir.join(QMP_LOG);
        let mut last_error = None;
        // Not cancellable: bounded by QMP_CONNECT, and a cancel kills QEMU, which ends it.
        let connected = wait::poll_for(QMP_CONNECT, None, Duration::ZERO, || {
            if let Some(status) = vm.process.try_wait() {
                return Some(Err(status.to_string()));
            }
            // Each attempt waits up to 200 ms for the socket: that paces the poll.
            let attempt = Duration::from_millis(200);
            match Qmp::connect(&vm.config.qmp_socket, attempt, Some(&transcript)) {
                Ok(qmp) => Some(Ok(qmp)),
                Err(err) => {
                    last_error = Some(err);
                    None
                }
            }
        });
        match (connected, last_error) {
            (Ok(Ok(qmp)), _) => {
                vm.qmp = Some(qmp);
                Ok(vm)
            }
            (Ok(Err(status)), _) => Err(vm.start_failure(status)),
            (Err(_), Some(err)) => Err(VmError::Qmp(err)),
            (Err(_), None) => Err(vm.start_failure("no QMP socket".into())),
        }
    }

    /// What QEMU wrote to its stderr so far (its log file).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.run_dir.join(QEMU_LOG))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Why QEMU died right after starting, from its stderr.
    fn start_failure(&self, status: String) -> VmError {
        let stderr = self.stderr();
        if stderr.contains("host forwarding rule") || stderr.contains("Address already in use") {
            return VmError::PortInUse {
                port: self.config.ssh_port,
                stderr,
            };
        }
        VmError::ExitedAtStart {
            status,
            stderr,
            console: self.console.tail(ERROR_LINES),
        }
    }

    pub fn config(&self) -> &QemuConfig {
        &self.config
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn console(&self) -> &Console {
        &self.console
    }

    /// The host port that reaches the guest's sshd.
    pub fn ssh_port(&self) -> u16 {
        self.config.ssh_port
    }

    /// The QMP connection (None once QEMU quit).
    pub fn qmp(&mut self) -> Option<&mut Qmp> {
        self.qmp.as_mut()
    }

    /// A handle that kills this QEMU from another thread.
    pub fn killer(&self) -> Killer {
        self.process.killer()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Panicked beats exited: with `panic=-1 -no-reboot` a panic also exits QEMU.
    pub fn state(&mut self) -> GuestState {
        if let Some(lines) = self.console.panic() {
            return GuestState::Panicked { lines };
        }
        match self.process.try_wait() {
            None => GuestState::Running,
            Some(status) => GuestState::Exited {
                status: status.to_string(),
                success: status.success(),
                lines: self.console.tail(ERROR_LINES),
            },
        }
    }

    /// Power the guest off: ACPI power button and up to `grace` for the guest
    /// to go, then QMP `quit`, then SIGKILL. Always leaves QEMU reaped.
    pub fn shutdown(&mut self, grace: Duration) -> Shutdown {
        if self.process.try_wait().is_some() {
            self.qmp = None;
            return Shutdown::AlreadyExited;
        }
        if let Some(qmp) = self.qmp.as_mut() {
            if qmp.system_powerdown().is_ok() && self.process.wait_timeout(grace).is_some() {
                self.qmp = None;
                return Shutdown::PoweredOff;
            }
        }
        if let Some(mut qmp) = self.qmp.take() {
            if qmp.quit().is_ok() && self.process.wait_timeout(Duration::from_secs(3)).is_some() {
                return Shutdown::Quit;
            }
        }
        self.process.kill();
        Shutdown::Killed
    }

    /// Save the guest's whole state to `path` ([`state::save`]); the guest runs on.
    pub fn save_state(&mut self, path: &Path, deadline: Duration) -> Result<(), StateError> {
        state::save(self.live_qmp("save the guest's state")?, path, deadline)
    }

    /// Load the state at `path` into this VM (launched with
    /// [`QemuConfig::incoming`]) and start the guest ([`state::load`]).
    pub fn load_state(&mut self, path: &Path, deadline: Duration) -> Result<(), StateError> {
        state::load(self.live_qmp("load the saved state")?, path, deadline)
    }

    /// User-net TCP connections still open (to the guest's sshd).
    pub fn open_connections(&mut self) -> Result<usize, StateError> {
        state::connections(self.live_qmp("list user-net connections")?)
    }

    fn live_qmp(&mut self, step: &'static str) -> Result<&mut Qmp, StateError> {
        self.qmp.as_mut().ok_or(StateError::Qmp {
            step,
            source: QmpError::Closed { command: step },
        })
    }

    /// SIGKILL now and reap.
    pub fn kill(&mut self) {
        self.qmp = None;
        self.process.kill();
    }

    /// Wait up to `timeout` for QEMU to exit by itself (e.g. after `poweroff` in the guest).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_timeout(timeout)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Kill before the console is dropped, so its thread sees EOF and ends.
        self.qmp = None;
        self.process.kill();
    }
}

/// A free TCP port on 127.0.0.1 (free now; QEMU may still lose a race for
/// it, which [`VmError::PortInUse`] reports so the caller can retry).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `QEMU emulator version 7.2.22 (Debian ...)` → (7, 2).
pub fn parse_qemu_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The QEMU kcycle runs: `KCYCLE_QEMU` (a self-built QEMU, or a wrapper)
/// when set, else `qemu-system-x86_64` from PATH.
pub fn qemu_binary() -> PathBuf {
    std::env::var_os("KCYCLE_QEMU")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::host::qemu::BINARY))
}

/// qboot, QEMU's minimal firmware, if `qemu` has it in its data directories
/// (`-L help`; Debian's qemu-system-data ships it). It boots a `-kernel`
/// guest 0.17 s sooner than SeaBIOS under TCG (1.43 s to sshd became 1.26 s,
/// 2026-12-04, medians of 5). Asked once per QEMU binary and process.
pub fn fast_firmware(qemu: &Path) -> Option<PathBuf> {
    static FOUND: std::sync::Mutex<Vec<(PathBuf, Option<PathBuf>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, firmware)) = found.iter().find(|(q, _)| q == qemu) {
        return firmware.clone();
    }
    let firmware = child::capture(Command::new(qemu).args(["-L", "help"]), VERSION_LIMIT)
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| firmware_in(&out.stdout, QBOOT, |path| path.is_file()));
    found.push((qemu.to_path_buf(), firmware.clone()));
    firmware
}

/// qboot's file name in QEMU's data directories.
const QBOOT: &str = "qboot.rom";

/// The first of the data directories `-L help` lists (one a line) that holds `name`.
fn firmware_in(dirs: &str, name: &str, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    dirs.lines()
        .map(str::trim)
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|path| exists(path))
}

/// `qemu --version`'s output, with a deadline.
pub fn qemu_version(qemu: &Path) -> Result<String, VmError> {
    let captured = child::capture(Command::new(qemu).arg("--version"), VERSION_LIMIT)
        .map_err(|source| spawn_error(qemu, source))?;
    Ok(captured.stdout)
}

fn spawn_error(qemu: &Path, source: ChildError) -> VmError {
    let qemu = qemu.to_path_buf();
    if source.not_found() {
        VmError::QemuMissing { qemu }
    } else {
        VmError::Spawn { qemu, source }
    }
}

fn check_qemu_version(qemu: &Path) -> Result<(), VmError> {
    let text = qemu_version(qemu)?;
    match parse_qemu_version(&text) {
        Some(found) if found >= MIN_QEMU => Ok(()),
        _ => Err(VmError::QemuTooOld {
            qemu: qemu.to_path_buf(),
            found: text.lines().next().unwrap_or("unknown").to_string(),
        }),
    }
}

/// QEMU with stdin closed, stdout piped (the serial console) and stderr to `stderr_log`.
fn spawn_qemu(config: &QemuConfig, stderr_log: &Path) -> Result<Child, VmError> {
    let argv = argv(config);
    let (program, args) = argv.split_first().ok_or_else(|| VmError::QemuMissing {
        qemu: config.qemu.clone(),
    })?;
    let stderr = std::fs::File::create(stderr_log).map_err(|source| VmError::RunDir {
        path: stderr_log.to_path_buf(),
        source,
    })?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    // SIGKILL on parent death: if kcycle itself is SIGKILLed, QEMU goes too.
    Child::spawn(&mut command, Spawn::default()).map_err(|source| spawn_error(&config.qemu, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_versions_parse() {
        assert_eq!(
            parse_qemu_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)\nCopyright"),
            Some((7, 2))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.1.0"),
            Some((10, 1))
        );
        assert_eq!(parse_qemu_version("garbage"), None);
        assert!((5, 2) < MIN_QEMU && (7, 2) >= MIN_QEMU);
    }

    #[test]
    fn qboot_is_found_in_the_data_directories_qemu_lists() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join(QBOOT), "").unwrap();
        let listing = format!("{}\n{}\n", a.display(), b.display());
        let qemu = fake_qemu(dir.path(), &format!("printf '{listing}'"));
        assert_eq!(fast_firmware(&qemu), Some(b.join(QBOOT)));
        // Asked once: the answer stays when the listing changes.
        std::fs::remove_file(b.join(QBOOT)).unwrap();
        assert_eq!(fast_firmware(&qemu), Some(b.join(QBOOT)));

        let without = dir.path().join("without");
        std::fs::create_dir_all(&without).unwrap();
        let bare = fake_qemu(&without, &format!("echo {}", a.display()));
        assert_eq!(fast_firmware(&bare), None);
        let broken = dir.path().join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        assert_eq!(fast_firmware(&fake_qemu(&broken, "exit 1")), None);
        assert_eq!(firmware_in("\n  \n", QBOOT, |_| true), None);
    }

    fn fake_qemu(dir: &Path, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("qemu-system-x86_64");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn config(dir: &Path, qemu: PathBuf) -> QemuConfig {
        QemuConfig {
            qemu,
            ..QemuConfig::new(
                dir.join("bzImage"),
                dir.join("initrd"),
                dir.join(QMP_SOCKET),
                1,
            )
        }
    }

    #[test]
    fn launch_names_missing_old_and_dying_qemu() {
        let dir = tempfile::tempdir().unwrap();
        let missing = config(dir.path(), dir.path().join("no-such-qemu"));
        let err = Vm::launch(missing, dir.path()).err().unwrap();
        assert!(matches!(err, VmError::QemuMissing { .. }), "{err}");

        let old = fake_qemu(dir.path(), "echo 'QEMU emulator version 5.2.0'");
        let err = Vm::launch(config(dir.path(), old), dir.path())
            .err()
            .unwrap();
        assert!(err.to_string().contains("version 5.2.0"), "{err}");

        let dying = fake_qemu(
            dir.path(),
            "case \"$1\" in --version) echo 'QEMU emulator version 7.2.0';; \
             *) echo 'Linux version 6.12 booting'; echo 'qemu: could not load kernel' >&2; exit 1;; esac",
        );
        let err = Vm::launch(config(dir.path(), dying), dir.path())
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(text.contains("could not load kernel"), "{text}");

        let busy = fake_qemu(
            dir.path(),
            "case \"$1\" in --version) echo 'QEMU emulator version 7.2.0';; \
             *) echo 'qemu-system-x86_64: -netdev user: Could not set up host forwarding rule' >&2; exit 1;; esac",
        );
        let err = Vm::launch(config(dir.path(), busy), dir.path())
            .err()
            .unwrap();
        assert!(matches!(err, VmError::PortInUse { port: 1, .. }), "{err}");

        let long = QemuConfig {
            qmp_socket: PathBuf::from(format!("/tmp/{}/qmp.sock", "d".repeat(120))),
            ..config(dir.path(), PathBuf::from("qemu-system-x86_64"))
        };
        let err = Vm::launch(long, dir.path()).err().unwrap();
        assert!(err.to_string().contains("107-byte"), "{err}");
    }
}
