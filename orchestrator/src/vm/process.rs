//! QEMU as a child process in its own process group, always reaped.
//!
//! The group keeps a terminal's Ctrl-C away from QEMU (kcycle decides how to
//! shut it down) and lets one `kill(-pgid)` take any helpers with it. The
//! guard kills and reaps on drop, so every exit path — errors, panics
//! unwinding, the CLI's signal handler via [`Killer`] — leaves nothing behind.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running QEMU. Dropping it kills the process group and reaps the child.
pub struct QemuProcess {
    child: Child,
    /// The process group id while the child is unreaped, 0 after.
    pgid: Arc<AtomicI32>,
    status: Option<ExitStatus>,
}

/// Kills a QEMU from another thread (a signal handler's watcher, a deadline).
#[derive(Clone)]
pub struct Killer {
    pgid: Arc<AtomicI32>,
}

impl Killer {
    /// SIGKILL the process group if it is still unreaped; the owner reaps it.
    pub fn kill(&self) {
        let pgid = self.pgid.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill(2) with a negative pid signals that process group only.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl QemuProcess {
    /// Start `argv` with stdin closed, stdout piped (the serial console) and
    /// stderr to `stderr_log`.
    pub fn spawn(
        argv: &[OsString],
        stderr_log: &Path,
    ) -> std::io::Result<(QemuProcess, ChildStdout)> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty QEMU argv"))?;
        let stderr = std::fs::File::create(stderr_log)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the child.
        // If kcycle itself is SIGKILLed (no guard can run), the kernel kills QEMU.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("QEMU stdout was not piped"))?;
        let pgid = child.id() as i32;
        Ok((
            QemuProcess {
                child,
                pgid: Arc::new(AtomicI32::new(pgid)),
                status: None,
            },
            stdout,
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn killer(&self) -> Killer {
        Killer {
            pgid: Arc::clone(&self.pgid),
        }
    }

    /// The exit status if QEMU has exited (reaping it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped(status);
            }
        }
        self.status
    }

    /// Wait up to `timeout` for QEMU to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the group and reap. Idempotent.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.try_wait().is_none() {
            self.killer().kill();
            if let Ok(status) = self.child.wait() {
                self.reaped(status);
            }
        }
        self.status
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        // The group leader is gone; stragglers in the group still get a SIGKILL.
        let pgid = self.pgid.swap(0, Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: see Killer::kill.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exists and is not a zombie (an orphan waits for init to reap it).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                !stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'))
            })
            .unwrap_or(false)
    }

    #[test]
    fn drop_kills_and_reaps_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let argv: Vec<OsString> = ["sh", "-c", "sleep 1000 & echo $!; wait"]
            .iter()
            .map(OsString::from)
            .collect();
        let (process, stdout) = QemuProcess::spawn(&argv, &dir.path().join("err")).unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let pid = process.pid();
        assert!(alive(grandchild));
        drop(process);
        assert!(!alive(pid), "the leader is reaped, not a zombie");
        let deadline = Instant::now() + Duration::from_secs(5);
        // The grandchild is reparented and reaped by init; it must be gone soon.
        while alive(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(grandchild), "the whole group is killed");
    }

    #[test]
    fn killer_works_from_another_thread() {
        let dir = tempfile::tempdir().unwrap();
        let argv: Vec<OsString> = ["sleep", "1000"].iter().map(OsString::from).collect();
        let (mut process, _stdout) = QemuProcess::spawn(&argv, &dir.path().join("err")).unwrap();
        let killer = process.killer();
        std::thread::spawn(move || killer.kill()).join().unwrap();
        let status = process.wait_timeout(Duration::from_secs(5)).unwrap();
        assert!(!status.success());
    }
}
