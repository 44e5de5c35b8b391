//! The guest side of the kernel log read: what `dmesg -c` prints, read and
//! cleared in the snapshot helper's own process. A busybox `dmesg -c` is an
//! exec of its own, 5 ms under TCG, twice a cycle (2026-12-04, 20 runs in
//! one guest).
//!
//! Compiled twice, like [`super::walk`]: into kcycle (for [`pretty`]'s
//! tests) and into `kcycle-snapshot`. So it uses std only.

use std::io;

/// The helper's argument to print the kernel log (read and cleared), then
/// [`LOG_END`], before the snapshot.
pub const TAKE_ARG: &str = "--take-log";
/// Ends the kernel log in a collect's output; the snapshot follows.
pub const LOG_END: &str = "@@kcycle-snapshot";

/// syslog(2) actions (include/linux/syslog.h).
const SYSLOG_ACTION_READ_CLEAR: i32 = 4;
const SYSLOG_ACTION_SIZE_BUFFER: i32 = 10;
/// The smallest buffer read, as busybox's dmesg takes it when the kernel
/// does not say its size.
const MIN_READ: usize = 16 << 10;

extern "C" {
    /// glibc's wrapper of syslog(2) (sys/klog.h); linked statically into the helper.
    fn klogctl(kind: i32, buf: *mut u8, len: i32) -> i32;
}

/// Everything in the kernel's ring buffer, and the buffer cleared in the
/// same call (`dmesg -c`), as [`pretty`] prints it.
pub fn take() -> io::Result<Vec<u8>> {
    // SAFETY: SIZE_BUFFER reads no buffer; it returns the ring buffer's size.
    let size = unsafe { klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
    let size = usize::try_from(size).unwrap_or(0).max(MIN_READ);
    let mut raw = vec![0u8; size];
    let len = i32::try_from(raw.len()).unwrap_or(i32::MAX);
    // SAFETY: the kernel writes at most `len` bytes into `raw`, which holds that many.
    let read = unsafe { klogctl(SYSLOG_ACTION_READ_CLEAR, raw.as_mut_ptr(), len) };
    let Ok(read) = usize::try_from(read) else {
        return Err(io::Error::last_os_error());
    };
    raw.truncate(read);
    Ok(pretty(&raw))
}

/// What `dmesg` prints of syslog(2)'s text (pure): the `<level>` that starts
/// each record dropped, and a newline at the end if the last line has none.
pub fn pretty(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for line in raw.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(without_level(line));
    }
    if out.last().is_some_and(|&b| b != b'\n') {
        out.push(b'\n');
    }
    out
}

/// `line` without a leading `<digits>`; unchanged when it has none.
fn without_level(line: &[u8]) -> &[u8] {
    let Some(rest) = line.strip_prefix(b"<") else {
        return line;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    match rest[digits..].strip_prefix(b">") {
        Some(text) if digits > 0 => text,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_dropped_from_record_starts_only() {
        let raw = b"<6>[    1.000000] drv: hello\n<4>[    1.100000] WARNING: at x\n\
<14>[    1.200000] kcycle: mark <3> stays\n<x> not a level\n<>empty\n";
        assert_eq!(
            String::from_utf8(pretty(raw)).unwrap(),
            "[    1.000000] drv: hello\n[    1.100000] WARNING: at x\n\
[    1.200000] kcycle: mark <3> stays\n<x> not a level\n<>empty\n"
        );
    }

    #[test]
    fn the_log_ends_with_a_newline_and_an_empty_one_prints_nothing() {
        assert_eq!(pretty(b"<6>[ 1.0] cut"), b"[ 1.0] cut\n");
        assert!(pretty(b"").is_empty());
    }
}
