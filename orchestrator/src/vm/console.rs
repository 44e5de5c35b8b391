//! The serial console: copied to a log file by a thread for the guest's
//! whole life and scanned line by line, so a panic is noticed the moment it
//! is printed rather than at some later timeout.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Lines kept in memory for error messages and [`Console::tail`].
const TAIL_LINES: usize = 400;

/// Console lines that mean the kernel is dead or dying.
const FATAL: &[&str] = &["Kernel panic - not syncing", "---[ end Kernel panic"];

/// Is this console line the start of a kernel panic?
pub fn is_panic_line(line: &str) -> bool {
    FATAL.iter().any(|pattern| line.contains(pattern))
}

#[derive(Debug, Default)]
struct Shared {
    tail: VecDeque<String>,
    /// Lines seen so far (also those dropped from `tail`).
    count: usize,
    /// Index (in `count` terms) of the first panic line.
    panic_at: Option<usize>,
    /// QEMU closed its end: the guest is gone.
    closed: bool,
}

/// A running console capture.
pub struct Console {
    path: PathBuf,
    shared: Arc<(Mutex<Shared>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Console {
    /// Start copying `source` (QEMU's stdout) to `log` and scanning it.
    pub fn capture(source: impl Read + Send + 'static, log: &Path) -> std::io::Result<Console> {
        let mut file = std::fs::File::create(log)?;
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let mut reader = BufReader::new(source);
                let mut raw = Vec::new();
                loop {
                    raw.clear();
                    match reader.read_until(b'\n', &mut raw) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    // The log gets the bytes as they came; a full disk must not stop the scan.
                    let _ = file.write_all(&raw).and_then(|()| file.flush());
                    let line = String::from_utf8_lossy(&raw)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    let (lock, cond) = &*thread_shared;
                    let mut state = lock_ignoring_poison(lock);
                    if state.panic_at.is_none() && is_panic_line(&line) {
                        state.panic_at = Some(state.count);
                    }
                    state.count += 1;
                    state.tail.push_back(line);
                    if state.tail.len() > TAIL_LINES {
                        state.tail.pop_front();
                    }
                    cond.notify_all();
                }
                let (lock, cond) = &*thread_shared;
                lock_ignoring_poison(lock).closed = true;
                cond.notify_all();
            })?;
        Ok(Console {
            path: log.to_path_buf(),
            shared,
            thread: Some(thread),
        })
    }

    /// The console log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything the console printed since this VM started (the log file).
    pub fn contents(&self) -> String {
        std::fs::read(&self.path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let state = self.lock();
        let skip = state.tail.len().saturating_sub(n);
        state.tail.iter().skip(skip).cloned().collect()
    }

    /// The panic and what followed it (up to the kept tail), if the kernel panicked.
    pub fn panic(&self) -> Option<Vec<String>> {
        let state = self.lock();
        let at = state.panic_at?;
        let first_kept = state.count - state.tail.len();
        // Include a little context before the panic line (the oops that caused it).
        let from = at.saturating_sub(30).max(first_kept) - first_kept;
        Some(state.tail.iter().skip(from).cloned().collect())
    }

    /// True once QEMU closed the console (it exited).
    pub fn closed(&self) -> bool {
        self.lock().closed
    }

    /// Lines printed so far; pass to [`Console::wait_for`] to look only at later ones.
    pub fn line_count(&self) -> usize {
        self.lock().count
    }

    /// Wait until a line after line number `since` contains `needle`, the
    /// console closes, a panic shows, or `timeout` passes. True if found.
    pub fn wait_for(&self, needle: &str, since: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.shared;
        let mut state = lock_ignoring_poison(lock);
        loop {
            let first_kept = state.count - state.tail.len();
            let skip = since.saturating_sub(first_kept);
            if state.tail.iter().skip(skip).any(|l| l.contains(needle)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.closed || state.panic_at.is_some() || left.is_zero() {
                return false;
            }
            state = cond
                .wait_timeout(state, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock_ignoring_poison(&self.shared.0)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        // The thread ends when QEMU's stdout closes; the VM guard kills QEMU
        // first, so joining here cannot hang on a live guest.
        if self.closed() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// A panicking console thread must not take the VM's cleanup down with it.
fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::wait::poll_for;

    #[test]
    fn panic_lines_are_recognised() {
        assert!(is_panic_line(
            "[    1.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"
        ));
        assert!(is_panic_line(
            "[    1.3] ---[ end Kernel panic - not syncing: VFS ]---"
        ));
        assert!(!is_panic_line("[    1.2] kcycle-init: sshd started"));
        assert!(!is_panic_line("panic=-1 console=ttyS0"));
    }

    #[test]
    fn capture_logs_scans_and_reports_panics() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let (reader, mut writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let console = Console::capture(reader, &log).unwrap();

        writeln!(writer, "Linux version 6.12.0").unwrap();
        writeln!(writer, "kcycle-init: sshd started").unwrap();
        assert!(console.wait_for("sshd started", 0, Duration::from_secs(5)));
        assert!(console.panic().is_none());
        let mark = console.line_count();
        assert!(!console.wait_for("sshd started", mark, Duration::from_millis(50)));

        writeln!(writer, "Oops: general protection fault").unwrap();
        writeln!(writer, "Kernel panic - not syncing: Fatal exception").unwrap();
        writeln!(
            writer,
            "---[ end Kernel panic - not syncing: Fatal exception ]---"
        )
        .unwrap();
        // wait_for returns early (false) once a panic shows.
        assert!(!console.wait_for("never printed", mark, Duration::from_secs(5)));
        let every = Duration::from_millis(10);
        let _ = poll_for(Duration::from_secs(5), None, every, || {
            (console.line_count() >= 5).then_some(())
        });
        let panic = console.panic().unwrap();
        assert!(panic.iter().any(|l| l.contains("Oops")), "{panic:?}");
        assert!(panic.last().unwrap().contains("end Kernel panic"));

        drop(writer);
        let _ = poll_for(Duration::from_secs(5), None, every, || {
            console.closed().then_some(())
        });
        assert!(console.closed());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with("Linux version 6.12.0\nkcycle-init"));
        assert_eq!(
            console.tail(1),
            ["---[ end Kernel panic - not syncing: Fatal exception ]---"]
        );
    }
}
