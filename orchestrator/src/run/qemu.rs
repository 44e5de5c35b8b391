//! The real [`Machine`]: a QEMU guest reached over SSH ([`crate::guest`]).
//!
//! Maps the guest layer's errors onto what the executor needs to know: a
//! panic is a crash (with the console), a QEMU that exited or an SSH session
//! that broke is a lost guest, a deadline is a timeout. Files given with
//! `--module` are copied in after every boot, since the guest's /tmp does not
//! survive a restart. Once the first guest is ready (files copied in), its
//! whole state is saved, so a guest a test left unfit is restored from it
//! rather than booted again ([`super::pristine`]). When the machine is
//! dropped, QEMU is shut down and the console logs are copied into the
//! results directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::command::{self, ModuleSources};
use super::machine::{Machine, MachineError, Output, Saved};
use super::scheduler::MachineFactory;
use crate::guest::{BootSpec, ExecRequest, Guest, GuestError, RunDir, SshError};
use crate::suite::Suite;
use crate::symbols::{KoSymbols, Symbolizer};
use crate::sys::cancel::{Cancel, HookGuard};
use crate::sys::error::chain as error_chain;
use crate::vm::argv::{Pluggable, STANDIN};
use crate::vm::{Qmp, QmpError};

/// Kernel arguments every runner guest gets:
/// - `slab_nomerge`: a cache a module leaks stays visible by name (merged
///   aliases leave stale sysfs links whether leaked or not);
/// - `log_buf_len=16M`: a log flood between two reads stays in the ring;
/// - `loglevel=5`: only warnings and worse go to the serial console, which
///   must survive a dead guest; the rest is read from the ring over SSH, so
///   a chatty driver does not run at the speed of an emulated UART;
/// - `oops=panic`: an oops ends the step at once as a crash with its report,
///   instead of a hung unload that runs into its deadline.
pub const RUNNER_CMDLINE: [&str; 4] = [
    "slab_nomerge",
    "log_buf_len=16M",
    "loglevel=5",
    "oops=panic",
];

/// The kernel arguments a runner guest of a suite with `suite` adds:
/// [`RUNNER_CMDLINE`], then the suite's own.
pub fn guest_cmdline<S: AsRef<str>>(suite: &[S]) -> Vec<String> {
    RUNNER_CMDLINE
        .iter()
        .copied()
        .chain(suite.iter().map(AsRef::as_ref))
        .map(str::to_string)
        .collect()
}

/// Bytes of kernel log in one step that mean the ring buffer may have wrapped.
pub const LOG_BUF_FULL: usize = 15 << 20;

/// Boot numbers already handed out per console base name, so every boot of
/// a slot (first boots, retries, restarts) gets its own console file.
#[derive(Debug, Default)]
pub struct BootCounter {
    next: Mutex<BTreeMap<String, usize>>,
}

impl BootCounter {
    /// The next boot number for `name`: 0, 1, 2...
    fn take(&self, name: &str) -> usize {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.entry(name.to_string()).or_default();
        *slot += 1;
        *slot - 1
    }
}

/// `console-<suite>-guest<N>.log` for a slot's first boot, then `.1.log`, `.2.log`...
pub fn console_file(name: &str, boot: usize) -> String {
    match boot {
        0 => format!("{name}.log"),
        n => format!("{name}.{n}.log"),
    }
}

/// Boots QEMU guests for suites from one prepared [`BootSpec`].
pub struct QemuFactory {
    /// Kernel, image and accel; each suite adds its command line.
    spec: BootSpec,
    /// Host `.ko` files to copy to [`command::MODULE_DIR`] in every guest.
    module_files: Vec<PathBuf>,
    /// Where console logs are copied when a guest goes away.
    results_dir: PathBuf,
    /// Cancelling this kills every QEMU, so in-flight commands end at once.
    cancel: Cancel,
    /// Numbers the boots of each slot for the console file names.
    boots: Arc<BootCounter>,
    /// The kernel's modules tree and `--module` files, for naming the code
    /// of unloaded modules.
    symbols: KoSymbols,
    /// Save each guest's state once it is ready and restore it instead of
    /// rebooting (off: `--no-restore`).
    restore: bool,
}

impl QemuFactory {
    /// Guests from `spec` on a kernel whose modules tree is `modules_dir`, with
    /// `module_files` copied in; consoles land in `results_dir`.
    pub fn new(
        spec: BootSpec,
        modules_dir: PathBuf,
        module_files: Vec<PathBuf>,
        results_dir: PathBuf,
        cancel: Cancel,
        restore: bool,
    ) -> Self {
        QemuFactory {
            spec,
            symbols: KoSymbols::new(vec![modules_dir], module_files.clone()),
            module_files,
            results_dir,
            cancel,
            boots: Arc::default(),
            restore,
        }
    }

    /// How `--module` files are loaded: name (from the file name) to guest path.
    pub fn module_sources(module_files: &[PathBuf]) -> ModuleSources {
        let mut sources = ModuleSources::default();
        for file in module_files {
            if let Some(name) = module_name(file) {
                sources
                    .files
                    .insert(name.clone(), format!("{}/{name}.ko", command::MODULE_DIR));
            }
        }
        sources
    }
}

/// `my-drv.ko` → `my_drv`.
pub fn module_name(file: &Path) -> Option<String> {
    let name = file.file_name()?.to_str()?.strip_suffix(".ko")?;
    Some(command::canonical(name))
}

impl MachineFactory for QemuFactory {
    fn boot(&self, suite: &Suite, guest: usize) -> Result<Box<dyn Machine>, MachineError> {
        let run_dir = RunDir::temporary().map_err(|e| MachineError::Boot(error_chain(&e)))?;
        let mut spec = self.spec.clone();
        spec.cmdline.extend(guest_cmdline(&suite.cmdline));
        let booted = Guest::boot(spec, run_dir.path());
        let console_name = format!("console-{}-guest{guest}", suite.name);
        let first_boot = self.boots.take(&console_name);
        let guest = match booted {
            Ok(guest) => guest,
            Err(error) => {
                // Keep the console of a guest that never came up: it says why.
                copy_consoles(
                    run_dir.path(),
                    &self.results_dir,
                    &console_name,
                    &[first_boot],
                );
                return Err(MachineError::Boot(error_chain(&error)));
            }
        };
        let mut machine = QemuMachine {
            guest: Some(guest),
            run_dir,
            module_files: self.module_files.clone(),
            results_dir: self.results_dir.clone(),
            console_name,
            boot_numbers: vec![first_boot],
            boots: Arc::clone(&self.boots),
            cancel: self.cancel.clone(),
            kill_on_cancel: None,
            can_save: self.restore && self.spec.vfio.is_none(),
            saved: match (self.restore, &self.spec.vfio) {
                (false, _) => Saved::Off,
                // vfio-pci devices block migration.
                (true, Some(_)) => {
                    Saved::Unavailable("a passed-through GPU cannot be saved".into())
                }
                (true, None) => Saved::Unavailable("not saved yet".into()),
            },
        };
        machine.after_boot()?;
        Ok(Box::new(machine))
    }

    fn symbols(&self) -> &dyn Symbolizer {
        &self.symbols
    }
}

pub struct QemuMachine {
    guest: Option<Guest>,
    run_dir: RunDir,
    module_files: Vec<PathBuf>,
    results_dir: PathBuf,
    console_name: String,
    /// The boot number of each of this machine's boots, in order.
    boot_numbers: Vec<usize>,
    boots: Arc<BootCounter>,
    cancel: Cancel,
    /// Kills the current QEMU when the run is cancelled.
    kill_on_cancel: Option<HookGuard>,
    /// The state [`Machine::restore`] goes back to, or why there is none.
    saved: Saved,
    /// Save a state after a boot when there is none.
    can_save: bool,
}

impl QemuMachine {
    fn guest(&mut self) -> Result<&mut Guest, MachineError> {
        self.guest
            .as_mut()
            .ok_or_else(|| MachineError::Lost("the guest was shut down".into()))
    }

    /// Hook the new QEMU to the cancel token.
    fn hook_cancel(&mut self) -> Result<(), MachineError> {
        let killer = self.guest()?.vm().killer();
        self.kill_on_cancel = Some(self.cancel.on_cancel(move || killer.kill()));
        Ok(())
    }

    /// After a boot: hook the cancel token, copy the module files in, and
    /// save the guest's state if it has none yet (a failed save only means
    /// the next unfit guest reboots: the error is kept as the reason).
    fn after_boot(&mut self) -> Result<(), MachineError> {
        self.hook_cancel()?;
        self.copy_modules()?;
        if self.can_save && self.saved != Saved::Ready {
            self.saved = match self.guest()?.save_state() {
                Ok(_) => Saved::Ready,
                Err(error) => Saved::Unavailable(error_chain(&error)),
            };
        }
        Ok(())
    }

    fn copy_modules(&mut self) -> Result<(), MachineError> {
        if self.module_files.is_empty() {
            return Ok(());
        }
        let files = self.module_files.clone();
        let guest = self.guest()?;
        let mkdir = format!("mkdir -p {}", command::MODULE_DIR);
        guest
            .exec(ExecRequest::new(mkdir).deadline(Duration::from_secs(30)))
            .map_err(|e| MachineError::Lost(error_chain(&e)))?;
        for file in files {
            let name = module_name(&file).unwrap_or_default();
            guest
                .upload(&file, &format!("{}/{name}.ko", command::MODULE_DIR))
                .map_err(|e| MachineError::Lost(error_chain(&e)))?;
        }
        Ok(())
    }
}

impl QemuMachine {
    /// Run a QMP exchange on pluggable device `id`; QEMU's refusal or silence is a failed step.
    fn qmp_device(
        &mut self,
        id: &str,
        exchange: impl FnOnce(&mut Qmp, Pluggable) -> Result<(), QmpError>,
    ) -> Result<Output, MachineError> {
        let vm = self.guest()?.vm();
        let Some(device) = vm.config().pluggable(id) else {
            return Ok(Output {
                status: 1,
                stderr: format!(
                    "kcycle: this guest has no pluggable device {id:?} (the stand-in `{}` exists on q35 guests)\n",
                    STANDIN.id
                ),
                ..Output::default()
            });
        };
        let Some(qmp) = vm.qmp() else {
            return Err(MachineError::Lost("QEMU's QMP connection is gone".into()));
        };
        Ok(match exchange(qmp, device) {
            Ok(()) => Output {
                status: 0,
                stdout: format!("kcycle: QMP done for {id}\n"),
                ..Output::default()
            },
            Err(QmpError::Closed { .. }) => {
                return Err(MachineError::Lost("QEMU closed its QMP connection".into()))
            }
            Err(error) => Output {
                status: 1,
                stderr: format!("kcycle: {}\n", error_chain(&error)),
                ..Output::default()
            },
        })
    }
}

impl Machine for QemuMachine {
    fn exec(&mut self, command: &str, timeout: Duration) -> Result<Output, MachineError> {
        let request = ExecRequest::new(command)
            .deadline(timeout)
            .inactivity(timeout);
        let guest = self.guest()?;
        match guest.exec(request) {
            Ok(output) => Ok(Output {
                status: if output.signal.is_some() {
                    128
                } else {
                    output.status
                },
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }),
            Err(GuestError::Panicked { lines }) => Err(MachineError::Crashed {
                summary: lines
                    .iter()
                    .find(|l| l.contains("Kernel panic"))
                    .or(lines.last())
                    .cloned()
                    .unwrap_or_else(|| "kernel panic".into()),
                console: guest.console().contents(),
            }),
            Err(GuestError::Ssh(SshError::Deadline { .. } | SshError::Inactive { .. })) => {
                Err(MachineError::Timeout(timeout))
            }
            Err(other) => Err(MachineError::Lost(error_chain(&other))),
        }
    }

    fn upload(&mut self, host_path: &Path, guest_path: &str) -> Result<(), MachineError> {
        self.guest()?
            .upload(host_path, guest_path)
            .map_err(|e| MachineError::Lost(error_chain(&e)))
    }

    fn restart(&mut self) -> Result<(), MachineError> {
        let number = self.boots.take(&self.console_name);
        self.boot_numbers.push(number);
        self.guest()?
            .restart()
            .map_err(|e| MachineError::Boot(error_chain(&e)))?;
        self.after_boot()
    }

    fn saved(&self) -> Saved {
        self.saved.clone()
    }

    fn restore(&mut self) -> Result<(), MachineError> {
        if self.saved != Saved::Ready {
            return Err(MachineError::Restore("there is no saved state".into()));
        }
        // The restored guest writes a console file of its own.
        let number = self.boots.take(&self.console_name);
        self.boot_numbers.push(number);
        let state = self.run_dir.path().join(crate::vm::STATE_FILE);
        let restored = self.guest()?.restore(&state);
        // Whatever happened, a new QEMU may run: hook it to the cancel token.
        self.hook_cancel()?;
        if let Err(error) = restored {
            let why = error_chain(&error);
            // A state that failed once is not tried again; the next boot saves a new one.
            self.saved = Saved::Unavailable(format!("failed to restore it before: {why}"));
            return Err(MachineError::Restore(why));
        }
        Ok(())
    }

    fn unplug(&mut self, id: &str, timeout: Duration) -> Result<Output, MachineError> {
        self.qmp_device(id, |qmp, _| {
            qmp.device_del(id)?;
            qmp.wait_device_deleted(id, timeout)
        })
    }

    fn plug(&mut self, id: &str, _timeout: Duration) -> Result<Output, MachineError> {
        self.qmp_device(id, |qmp, device| {
            qmp.device_add(device.driver, device.id, device.bus)
        })
    }

    fn console_mark(&mut self) -> usize {
        self.guest.as_mut().map_or(0, |g| g.console().line_count())
    }

    fn console_since(&mut self, mark: usize) -> String {
        let Some(guest) = self.guest.as_mut() else {
            return String::new();
        };
        let text = guest.console().contents();
        let mut lines: Vec<&str> = text.lines().skip(mark).collect();
        // Bounded: the end of a flood is what explains the hang.
        let keep = lines.len().saturating_sub(5_000);
        lines.drain(..keep);
        lines.join("\n")
    }
}

impl Drop for QemuMachine {
    fn drop(&mut self) {
        if let Some(guest) = self.guest.take() {
            let _ = guest.shutdown(Duration::from_secs(5));
        }
        copy_consoles(
            self.run_dir.path(),
            &self.results_dir,
            &self.console_name,
            &self.boot_numbers,
        );
    }
}

/// Copy the consoles of one run directory to the results, named by boot
/// number: [`crate::guest::Guest::restart`] keeps the k-th earlier boot as
/// `console.<k>.log` and the current one as `console.log`, and `numbers`
/// holds each boot's number in the same order.
fn copy_consoles(run_dir: &Path, results_dir: &Path, name: &str, numbers: &[usize]) {
    let Some((current, earlier)) = numbers.split_last() else {
        return;
    };
    let mut files = vec![(crate::vm::CONSOLE_LOG.to_string(), *current)];
    for (k, number) in earlier.iter().enumerate() {
        files.push((format!("console.{}.log", k + 1), *number));
    }
    for (file, number) in files {
        let from = run_dir.join(file);
        if from.is_file() {
            let _ = std::fs::copy(from, results_dir.join(console_file(name, number)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consoles_are_named_by_boot_order() {
        let run_dir = tempfile::tempdir().unwrap();
        let results = tempfile::tempdir().unwrap();
        // Three boots in one run directory: numbers 0, 2, 3 (1 was another machine's).
        for (file, text) in [
            ("console.1.log", "boot 0"),
            ("console.2.log", "boot 2"),
            ("console.log", "boot 3"),
        ] {
            std::fs::write(run_dir.path().join(file), text).unwrap();
        }
        copy_consoles(
            run_dir.path(),
            results.path(),
            "console-s-guest0",
            &[0, 2, 3],
        );
        let read =
            |n| std::fs::read_to_string(results.path().join(console_file("console-s-guest0", n)));
        assert_eq!(read(0).unwrap(), "boot 0");
        assert_eq!(read(2).unwrap(), "boot 2");
        assert_eq!(read(3).unwrap(), "boot 3");
        assert!(read(1).is_err());
        assert_eq!(console_file("c", 0), "c.log");
        let counter = BootCounter::default();
        assert_eq!(
            (counter.take("a"), counter.take("a"), counter.take("b")),
            (0, 1, 0)
        );
    }

    #[test]
    fn module_names_from_files() {
        assert_eq!(
            module_name(Path::new("/x/my-drv.ko")).as_deref(),
            Some("my_drv")
        );
        assert_eq!(module_name(Path::new("/x/notes.txt")), None);
        let sources = QemuFactory::module_sources(&[PathBuf::from("a/my-drv.ko")]);
        assert_eq!(
            sources.files.get("my_drv").map(String::as_str),
            Some("/tmp/kcycle-modules/my_drv.ko")
        );
    }
}
