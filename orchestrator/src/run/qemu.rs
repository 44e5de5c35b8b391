//! The real [`Machine`]: a QEMU guest reached over SSH ([`crate::guest`]).
//!
//! Maps the guest layer's errors onto what the executor needs to know: a
//! panic is a crash (with the console), a QEMU that exited or an SSH session
//! that broke is a lost guest, a deadline is a timeout. Files given with
//! `--module` are copied in after every boot, since the guest's /tmp does not
//! survive a restart. When the machine is dropped, QEMU is shut down and the
//! console logs are copied into the results directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::command::{self, ModuleSources};
use super::machine::{Machine, MachineError, Output};
use super::scheduler::MachineFactory;
use crate::guest::{BootSpec, ExecRequest, Guest, GuestError, RunDir, SshError};
use crate::suite::Suite;
use crate::symbols::{KoSymbols, Symbolizer};
use crate::vm::Killer;

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

/// Bytes of kernel log in one step that mean the ring buffer may have wrapped.
pub const LOG_BUF_FULL: usize = 15 << 20;

/// Boots QEMU guests for suites from one prepared [`BootSpec`].
pub struct QemuFactory {
    /// Kernel, image and accel; each suite adds its command line.
    pub spec: BootSpec,
    /// Host `.ko` files to copy to [`command::MODULE_DIR`] in every guest.
    pub module_files: Vec<PathBuf>,
    /// Where console logs are copied when a guest goes away.
    pub results_dir: PathBuf,
    /// Killers of every running QEMU, for Ctrl-C.
    pub killers: Arc<Mutex<Vec<Killer>>>,
    /// The kernel's modules tree and `--module` files, for naming the code
    /// of unloaded modules.
    pub symbols: KoSymbols,
}

impl QemuFactory {
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
        let run_dir = RunDir::temporary().map_err(|e| MachineError::Boot(format!("{e:#}")))?;
        let mut spec = self.spec.clone();
        spec.cmdline
            .extend(RUNNER_CMDLINE.iter().map(|a| a.to_string()));
        spec.cmdline.extend(suite.cmdline.iter().cloned());
        let booted = Guest::boot(spec, run_dir.path());
        let console_name = format!("console-{}-guest{guest}", suite.name);
        let guest = match booted {
            Ok(guest) => guest,
            Err(error) => {
                // Keep the console of a guest that never came up: it says why.
                copy_consoles(run_dir.path(), &self.results_dir, &console_name);
                return Err(MachineError::Boot(error_chain(&error)));
            }
        };
        let mut machine = QemuMachine {
            guest: Some(guest),
            run_dir,
            module_files: self.module_files.clone(),
            results_dir: self.results_dir.clone(),
            console_name,
            killers: Arc::clone(&self.killers),
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
    killers: Arc<Mutex<Vec<Killer>>>,
}

impl QemuMachine {
    fn guest(&mut self) -> Result<&mut Guest, MachineError> {
        self.guest
            .as_mut()
            .ok_or_else(|| MachineError::Lost("the guest was shut down".into()))
    }

    /// Register the new QEMU for Ctrl-C and copy the module files in.
    fn after_boot(&mut self) -> Result<(), MachineError> {
        let killer = self.guest()?.vm().killer();
        if let Ok(mut killers) = self.killers.lock() {
            killers.push(killer);
        }
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
        self.guest()?
            .restart()
            .map_err(|e| MachineError::Boot(error_chain(&e)))?;
        self.after_boot()
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
        copy_consoles(self.run_dir.path(), &self.results_dir, &self.console_name);
    }
}

/// Copy `console.log` and the `console.<n>.log` of earlier boots to the results.
fn copy_consoles(run_dir: &Path, results_dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = file.strip_prefix("console") {
            let _ = std::fs::copy(entry.path(), results_dir.join(format!("{name}{rest}")));
        }
    }
}

/// An error with its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

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
