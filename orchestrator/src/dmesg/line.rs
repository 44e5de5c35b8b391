//! One log line: strip whatever prefix the log's source added and say where
//! the line came from.
//!
//! Kernel text reaches us through many pipes: raw `dmesg` (`[   12.345678] `),
//! `dmesg` with `CONFIG_PRINTK_CALLER` (`[   12.345678][  T123] `), `dmesg -T`,
//! `-x` and `--time-format iso`, `/dev/kmsg` dumps and IGT
//! (`<4>[   12.345678] `, `<3> [513.235] `), syslog
//! (`Jun  2 06:00:57 host kernel: `), journalctl (`06:00:57 kernel: `,
//! `2024-06-02T06:00:57+0000 host kernel: `, `[  12.3] host kernel: `),
//! consoles that glue a login prompt in front of a kernel line, and files
//! with no prefix at all (kmemleak). The classifier only ever looks at
//! [`Line::text`].

use std::sync::LazyLock;

use regex::Regex;

/// A log line with its transport prefix removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The message as the kernel printed it (leading indentation kept: stack
    /// frames and hex dumps are indented).
    pub text: &'a str,
    /// The printk caller id (`T123` or `C1`) when the log has one. Lines of
    /// one report share it, so it separates interleaved reports.
    pub caller: Option<&'a str>,
    /// Where the line came from.
    pub origin: Origin,
}

/// Where a line came from, as far as its prefix tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A kernel prefix (timestamp, log level or syslog `kernel:` tag).
    Kernel,
    /// A syslog/journal line of some other program: never a kernel report.
    Userspace,
    /// No prefix: could be either (kmemleak files, plain console captures).
    Unknown,
}

/// `Jun  2 06:00:57 host kernel: ` (month names in any locale: `июл 27`),
/// `2024-06-02T06:00:57.1+00:00 host kernel: `,
/// `06:00:57 kernel: ` and the same with another program's tag (`sshd[12]: `).
/// Without a host only the `kernel` tag counts: `<time> debugfs: ...` is a
/// kernel line with a timestamp (`dmesg --time-format iso`).
static SYSLOG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:\p{L}{2,5}\.? +\d{1,2} +|\d{4}-\d{2}-\d{2}[T ])?",
        r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
        r"(?: +(?P<host>[A-Za-z0-9_.-]+))?",
        r" +(?P<tag>[A-Za-z0-9_./-]+(?:\[\d+\])?): ",
    ))
    .expect("static regex")
});

/// `2018/01/09 14:28:48 ` in front of lines from tools that log with Go's
/// default logger (syzkaller executor logs).
static TOOL_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? ").expect("static regex")
});

/// The kernel's own prefix: optional `<level>`, `[ seconds]` or `dmesg -T`'s
/// `[Fri Apr 17 01:44:46 2026]`, optional `[ T123]`/`[C1]` caller id.
/// Group 1 is the caller id.
static KERNEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:<\d{1,3}>)? ?\[(?: *\d+\.\d+|[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})\]",
        r"(?:\[ *([TC]\d+)\])? ?",
    ))
    .expect("static regex")
});

/// `dmesg -x`: `kern  :warn  : ` (facility and level). Group 1 is the facility.
static FACILITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7]) *:",
        r"(?:emerg|alert|crit|err|warn|notice|info|debug) *: ",
    ))
    .expect("static regex")
});

/// `dmesg --time-format iso`: `2024-06-02T06:00:57,123456+00:00 `. The comma
/// tells it from rsyslog's ISO time (a dot), which a host and tag follow.
static ISO_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2},\d+(?:Z|[+-]\d{2}:?\d{2}) ")
        .expect("static regex")
});

/// `journalctl -o short-monotonic`: `[   12.345678] host kernel: ` - the host
/// and tag after the kernel's own prefix.
static HOST_KERNEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_.-]+ kernel: ").expect("static regex"));

/// `<4>` alone (kmsg records without timestamps).
static LEVEL_ONLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^<\d{1,3}>").expect("static regex"));

/// The caller id alone, `[  T123] ` (logs printed without timestamps).
static CALLER_ONLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[ *([TC]\d+)\] ").expect("static regex"));

/// Consoles print `host login: ` and the next kernel line on one line.
const LOGIN: &str = " login: ";

/// Lines longer than this are cut before matching: no kernel line is this
/// long, and it bounds the work per line on garbage input.
pub const MAX_LINE: usize = 4096;

/// Strip the transport prefix from one line (without its `\n`).
pub fn parse(raw: &str) -> Line<'_> {
    // Serial consoles end lines with `\r\r\n`.
    let mut text = cut(raw.trim_end_matches('\r'));
    let mut origin = Origin::Unknown;

    if let Some(rest) = text.strip_prefix('\u{feff}') {
        text = rest;
    }
    // Logs quoted in mails (`> > [  12.3] ...`); KASAN's `>ffff...` shadow
    // line has no space after its `>`.
    while let Some(rest) = text.strip_prefix("> ").or_else(|| text.strip_prefix(">> ")) {
        text = rest;
    }
    if text == ">" {
        text = "";
    }
    // Cheap byte checks first: most lines start with `[` and need no regex
    // but the kernel prefix's.
    let first = text.as_bytes().first().copied().unwrap_or(b' ');
    if first.is_ascii_digit() && text.as_bytes().get(4) == Some(&b'/') {
        if let Some(m) = TOOL_TIME.find(text) {
            text = &text[m.end()..];
        }
    }
    let first = text.as_bytes().first().copied().unwrap_or(b' ');
    if first.is_ascii_lowercase() {
        if let Some(c) = FACILITY.captures(text) {
            let kernel = c.get(1).is_some_and(|m| m.as_str() == "kern");
            text = &text[c.get(0).map_or(0, |m| m.end())..];
            if !kernel {
                return Line {
                    text,
                    caller: None,
                    origin: Origin::Userspace,
                };
            }
            origin = Origin::Kernel;
        }
    }
    let first = text.as_bytes().first().copied().unwrap_or(b' ');
    let mut dmesg_iso = false;
    if first.is_ascii_digit() {
        if let Some(m) = ISO_TIME.find(text) {
            text = &text[m.end()..];
            origin = Origin::Kernel;
            dmesg_iso = true;
        }
    }
    let first = text.as_bytes().first().copied().unwrap_or(b' ');
    let maybe_syslog = !dmesg_iso
        && (first.is_ascii_alphanumeric() || !first.is_ascii())
        && text.as_bytes().iter().take(40).any(|&b| b == b':');
    let syslog = maybe_syslog
        .then(|| SYSLOG.captures(text))
        .flatten()
        .filter(|c| {
            c.name("host").is_some() || c.name("tag").is_some_and(|t| t.as_str() == "kernel")
        });
    if let Some(c) = syslog {
        let tag = c.name("tag").map_or("", |m| m.as_str());
        text = &text[c.get(0).map_or(0, |m| m.end())..];
        if tag != "kernel" {
            return Line {
                text,
                caller: None,
                origin: Origin::Userspace,
            };
        }
        origin = Origin::Kernel;
    }
    if let Some(pos) = text.find(LOGIN) {
        let after = &text[pos + LOGIN.len()..];
        if KERNEL.is_match(after) {
            text = after;
        }
    }
    let mut caller = None;
    let first = text.as_bytes().first().copied().unwrap_or(b' ');
    if first == b'[' && !KERNEL.is_match(text) {
        // A tag of the console multiplexer in front of the kernel prefix
        // (xvisor's `[guest0/uart0] [    1.88] ...`).
        if let Some(end) = text.find("] [") {
            let after = &text[end + 2..];
            if !text[1..end].contains(' ') && KERNEL.is_match(after) {
                text = after;
            }
        }
    }
    if !matches!(first, b'[' | b'<') {
        return Line {
            text,
            caller,
            origin,
        };
    }
    if let Some(c) = KERNEL.captures(text) {
        caller = c.get(1).map(|m| m.as_str());
        text = &text[c.get(0).map_or(0, |m| m.end())..];
        origin = Origin::Kernel;
        if let Some(m) = HOST_KERNEL.find(text) {
            text = &text[m.end()..];
        }
    } else if let Some(m) = LEVEL_ONLY.find(text) {
        text = &text[m.end()..];
        origin = Origin::Kernel;
    }
    if caller.is_none() {
        if let Some(c) = CALLER_ONLY.captures(text) {
            caller = c.get(1).map(|m| m.as_str());
            text = &text[c.get(0).map_or(0, |m| m.end())..];
            origin = Origin::Kernel;
        }
    }
    Line {
        text,
        caller,
        origin,
    }
}

/// Cut `s` to at most [`MAX_LINE`] bytes on a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_LINE {
        return s;
    }
    let mut end = MAX_LINE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    // Synthetic prefix variants around one real message (fs/debugfs/inode.c).
    const MSG: &str = "debugfs: Directory 'i915_vma' with parent 'slab' already present!";

    fn text_of(raw: &str) -> &str {
        parse(raw).text
    }

    #[test]
    fn strips_every_kernel_prefix_seen_in_the_wild() {
        let variants = [
            MSG.to_string(),
            format!("[   12.345678] {MSG}"),
            format!("[   12.345678][  T123] {MSG}"),
            format!("[   12.345678][    C1] {MSG}"),
            format!("[   12.345678] [  T123] {MSG}"),
            format!("[ 9320.075571][T22160] {MSG}"),
            format!("<4>[   12.345678] {MSG}"),
            format!("<3> [513.235] {MSG}"),
            format!("<3>{MSG}"),
            format!("Jun  2 06:00:57 host kernel: {MSG}"),
            format!("Jun  2 06:00:57 host kernel: [48216.757622] {MSG}"),
            format!("06:00:57 kernel: {MSG}"),
            format!("sep 20 11:53:55 biskvi kernel: {MSG}"),
            format!("июл 27 14:08:04 laptop kernel: {MSG}"),
            format!("[Fri Apr 17 01:44:46 2026] {MSG}"),
            format!("2024-06-02T06:00:57.123456+00:00 host kernel: {MSG}"),
            format!("Nov 24 14:07:01 host kernel: [   12.3][ T1] {MSG}"),
            format!("syzkaller login: [   36.852785][ T3615] {MSG}"),
            format!("[   12.345678] {MSG}\r"),
            format!("[  T123] {MSG}"),
            format!("kern  :err   : [   12.345678] {MSG}"),
            format!("kern  :warn  : {MSG}"),
            format!("2024-06-02T06:00:57,123456+00:00 {MSG}"),
            format!("[   12.345678] host kernel: {MSG}"),
            format!("> [   12.345678] {MSG}"),
            format!("[guest0/uart0] [    1.885337] {MSG}"),
            format!("> > Jun  2 06:00:57 host kernel: {MSG}"),
        ];
        for v in &variants {
            assert_eq!(text_of(v), MSG, "prefix not stripped: {v:?}");
        }
    }

    #[test]
    fn dmesg_iso_lines_are_kernel_lines_whatever_their_words() {
        // `<word> <word>: ` after a time must not pass for syslog's host and tag.
        let line =
            parse("2024-06-02T06:00:57,123456+00:00 kmem_cache_destroy i915_vma: Slab cache");
        assert_eq!(line.origin, Origin::Kernel);
        assert_eq!(line.text, "kmem_cache_destroy i915_vma: Slab cache");
    }

    #[test]
    fn keeps_the_caller_id() {
        assert_eq!(parse("[   1.0][  T123] x").caller, Some("T123"));
        assert_eq!(parse("[   1.0][    C1] x").caller, Some("C1"));
        assert_eq!(parse("[   1.0] [  T42] x").caller, Some("T42"));
        assert_eq!(parse("[   1.0] x").caller, None);
    }

    #[test]
    fn keeps_indentation_of_stack_frames() {
        assert_eq!(
            text_of("[   1.0]  dump_stack+0x1/0x2"),
            " dump_stack+0x1/0x2"
        );
    }

    #[test]
    fn marks_other_programs_in_syslog_as_userspace() {
        let line = parse("Jun  2 06:00:57 host sshd[812]: WARNING: CPU: 0 PID: 1 at x");
        assert_eq!(line.origin, Origin::Userspace);
        assert_eq!(
            parse("user  :warn  : BUG: not the kernel").origin,
            Origin::Userspace
        );
        assert_eq!(parse(&format!("[ 1.0] {MSG}")).origin, Origin::Kernel);
        assert_eq!(parse(MSG).origin, Origin::Unknown);
    }

    #[test]
    fn cuts_overlong_lines_on_a_char_boundary() {
        let long = "é".repeat(MAX_LINE);
        assert!(parse(&long).text.len() <= MAX_LINE);
    }
}
