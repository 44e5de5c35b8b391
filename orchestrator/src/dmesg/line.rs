//! One log line: strip whatever prefixes the log's sources added and say
//! where the line came from.
//!
//! Kernel text reaches us through many pipes, often several at once (a
//! journal line quoted in a mail). [`parse`] applies the [`STRIPPERS`] until
//! none matches at the start of the line: `/dev/kmsg` records, `<N>` levels,
//! every `dmesg` timestamp (`-T` in any locale, `-d`, `--reltime`, elided
//! `[..]`), printk caller ids and CPU suffixes, syslog and journalctl in their
//! variants, kunit.py's `[hh:mm:ss]`, quote markers and the indentation of
//! pastes. Prefixes no stripper knows (log-aggregator columns, a subsystem
//! tag repeated on each line) are learned from a report's first line instead:
//! see [`Shape`]. The classifier only ever looks at [`Line::text`].

use std::sync::LazyLock;

use regex::Regex;

/// A log line with its transport prefixes removed.
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

/// What one stripper took off the front of a line.
struct Strip<'a> {
    rest: &'a str,
    caller: Option<&'a str>,
    origin: Origin,
}

impl<'a> Strip<'a> {
    fn kernel(rest: &'a str) -> Self {
        Strip {
            rest,
            caller: None,
            origin: Origin::Kernel,
        }
    }
    fn userspace(rest: &'a str) -> Self {
        Strip {
            rest,
            caller: None,
            origin: Origin::Userspace,
        }
    }
    fn unknown(rest: &'a str) -> Self {
        Strip {
            rest,
            caller: None,
            origin: Origin::Unknown,
        }
    }
}

/// A prefix stripper: the rest of the line when its prefix is at the start.
type Stripper = for<'a> fn(&'a str) -> Option<Strip<'a>>;

/// The first bytes a stripper's prefix can start with: a test of one byte
/// that spares the line the calls of the strippers that cannot match.
type First = fn(u8) -> bool;

/// Every prefix family, each anchored at the start of the line. [`parse`]
/// applies them until none matches, so stacked prefixes come off one by one.
const STRIPPERS: &[(&str, Stripper, First)] = &[
    ("quote marker", quote, |b| b == b'>'),
    ("indentation before a prefix", indent, |b| {
        matches!(b, b' ' | b'\t')
    }),
    ("/dev/kmsg record", kmsg_record, |b| b.is_ascii_digit()),
    ("dmesg -x facility", facility, |b| b.is_ascii_lowercase()),
    ("dmesg --time-format iso", dmesg_iso, |b| b.is_ascii_digit()),
    // The regex's `\d` takes other scripts' digits.
    ("Go logger time", tool_time, |b| {
        b.is_ascii_digit() || !b.is_ascii()
    }),
    ("syslog/journalctl", syslog, |b| {
        b.is_ascii_alphanumeric() || !b.is_ascii()
    }),
    ("dmesg timestamp", timestamp, |b| matches!(b, b'[' | b'<')),
    ("raw level", level, |b| b == b'<'),
    ("printk caller id", caller_id, |b| b == b'['),
    ("kunit.py time", kunit_time, |b| b == b'['),
    ("console multiplexer tag", console_tag, |b| b == b'['),
    ("login prompt glued in front", login, |_| true),
    ("LAVA job log", lava, |b| b == b'-'),
    ("columns before a kernel prefix", columns, |b| {
        !matches!(b, b'[' | b'<' | b' ' | b'\t')
    }),
];

/// For each first byte, the strippers that may match (bit `i`: `STRIPPERS[i]`).
static GATES: LazyLock<[u16; 256]> = LazyLock::new(|| {
    let mut gates = [0; 256];
    for (b, gate) in (0..=u8::MAX).zip(gates.iter_mut()) {
        for (i, (_, _, may)) in STRIPPERS.iter().enumerate() {
            *gate |= u16::from(may(b)) << i;
        }
    }
    gates
});

/// The index of [`login`] in [`STRIPPERS`].
const LOGIN_STRIPPER: usize = 12;

/// At most this many prefixes come off one line (bounds the work).
const MAX_PREFIXES: usize = 8;

/// Lines longer than this are cut before matching: no kernel line is this
/// long, and it bounds the work per line on garbage input.
pub const MAX_LINE: usize = 4096;

/// Strip the transport prefixes from one line (without its `\n`).
pub fn parse(raw: &str) -> Line<'_> {
    let mut text = cut(raw);
    // Serial consoles end lines with `\r\r\n` (or a pasted `^M`) and may
    // start them with `\r` (or a byte order mark, `\u{feff}`).
    let (first, last) = (text.as_bytes().first(), text.as_bytes().last());
    let ragged = matches!(first, Some(b'\r' | 0xef)) || matches!(last, Some(b'\r' | b'M'));
    if ragged {
        loop {
            let mut trimmed = text.trim_end_matches('\r');
            while let Some(rest) = trimmed.strip_suffix("^M") {
                trimmed = rest;
            }
            let trimmed = trimmed.trim_start_matches(['\r', '\u{feff}']);
            if trimmed.len() == text.len() {
                break;
            }
            text = trimmed;
        }
    }
    let mut line = Line {
        text,
        caller: None,
        origin: Origin::Unknown,
    };
    // Each pass strips a part of the last pass's text: without ` login: `
    // in the line, no pass needs to look for it.
    let mut skip = 0u16;
    if LOGIN_FINDER.find(text.as_bytes()).is_none() {
        skip |= 1 << LOGIN_STRIPPER;
    }
    'again: for _ in 0..MAX_PREFIXES {
        let Some(&first) = line.text.as_bytes().first() else {
            break;
        };
        let mut may = GATES[usize::from(first)] & !skip;
        while may != 0 {
            let (_, strip, _) = STRIPPERS[may.trailing_zeros() as usize];
            may &= may - 1;
            let Some(s) = strip(line.text) else {
                continue;
            };
            if s.rest.len() == line.text.len() {
                continue;
            }
            line.text = s.rest;
            line.caller = line.caller.or(s.caller);
            match s.origin {
                Origin::Userspace => {
                    line.origin = Origin::Userspace;
                    return line;
                }
                Origin::Kernel => line.origin = Origin::Kernel,
                Origin::Unknown => {}
            }
            continue 'again;
        }
        break;
    }
    line
}

/// The names of the prefix families [`parse`] strips, in the order tried.
pub fn prefix_families() -> impl Iterator<Item = &'static str> {
    STRIPPERS.iter().map(|(name, _, _)| *name)
}

/// Logs quoted in mails (`> > [  12.3] ...`); KASAN's `>ffff...` shadow line
/// has no space after its `>`, so it stays.
fn quote(text: &str) -> Option<Strip<'_>> {
    if text == ">" || text == ">>" {
        return Some(Strip::unknown(""));
    }
    let rest = text
        .strip_prefix("> ")
        .or_else(|| text.strip_prefix(">> "))?;
    Some(Strip::unknown(rest))
}

/// Pastes indent whole logs (Markdown code blocks, mails): the indentation
/// goes when a prefix follows it; otherwise it is a frame's and stays.
fn indent(text: &str) -> Option<Strip<'_>> {
    let trimmed = text.trim_start_matches([' ', '\t']);
    if trimmed.len() == text.len() {
        return None;
    }
    // Those of the kernel's prefixes that can start with this byte.
    let t = trimmed;
    let kernel_prefix = match *t.as_bytes().first()? {
        b'>' => quote(t).is_some(),
        b'[' => timestamp(t).is_some(),
        b'<' => timestamp(t).is_some() || level(t).is_some(),
        b'0'..=b'9' => kmsg_record(t).is_some() || dmesg_iso(t).is_some() || syslog(t).is_some(),
        b'a'..=b'z' => facility(t).is_some() || syslog(t).is_some(),
        b if b.is_ascii_alphanumeric() || !b.is_ascii() => syslog(t).is_some(),
        _ => false,
    };
    kernel_prefix.then(|| Strip::unknown(trimmed))
}

/// `/dev/kmsg` records: `6,1234,5678901,-;msg` (level, sequence,
/// microseconds, flags; optionally `,caller=T123`).
fn kmsg_record(text: &str) -> Option<Strip<'_>> {
    // Cheap test first: a level's digits, then a comma, then a `;`.
    let b = text.as_bytes();
    if !b.first()?.is_ascii_digit() || !b.iter().take(16).any(|&c| c == b',') || !b.contains(&b';')
    {
        return None;
    }
    let m = KMSG.find(text)?;
    let mut s = Strip::kernel(&text[m.end()..]);
    // Captures cost more than the match: only a record with a caller needs them.
    if memchr::memmem::find(m.as_str().as_bytes(), b",caller=").is_some() {
        s.caller = KMSG
            .captures(text)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str());
    }
    Some(s)
}

static KMSG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{1,3},\d+,\d+,[-c+]?(?:,caller=([TC]\d+))?[^;]{0,40};").expect("static regex")
});

/// `dmesg -x`: `kern  :warn  : ` (facility and level); other facilities are
/// user space.
fn facility(text: &str) -> Option<Strip<'_>> {
    // Cheap test first: a lowercase word, blanks, then a colon.
    let b = text.as_bytes();
    if !b.first()?.is_ascii_lowercase() {
        return None;
    }
    let word = b.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
    if b[word..].iter().find(|&&c| c != b' ') != Some(&b':') {
        return None;
    }
    let m = FACILITY.find(text)?;
    let rest = &text[m.end()..];
    // The facility is the word before the blanks and the colon.
    if b.starts_with(b"kern") && matches!(b.get(4), Some(b' ' | b':')) {
        Some(Strip::kernel(rest))
    } else {
        Some(Strip::userspace(rest))
    }
}

static FACILITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7]) *:",
        r"(?:emerg|alert|crit|err|warn|notice|info|debug) *: ",
    ))
    .expect("static regex")
});

/// `dmesg --time-format iso`: `2024-06-02T06:00:57,123456+00:00 `. The comma
/// tells it from rsyslog's ISO time (a dot), which a host and tag follow.
fn dmesg_iso(text: &str) -> Option<Strip<'_>> {
    if !text.as_bytes().first()?.is_ascii_digit() || !ascii_shape(text, b"dddd-") {
        return None;
    }
    let m = ISO_TIME.find(text)?;
    Some(Strip::kernel(&text[m.end()..]))
}

static ISO_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2},\d+(?:Z|[+-]\d{2}:?\d{2}) ")
        .expect("static regex")
});

/// `2018/01/09 14:28:48 ` in front of lines from tools that log with Go's
/// default logger (syzkaller executor logs).
fn tool_time(text: &str) -> Option<Strip<'_>> {
    if text.as_bytes().get(4) != Some(&b'/') {
        return None;
    }
    let m = TOOL_TIME.find(text)?;
    Some(Strip::unknown(&text[m.end()..]))
}

static TOOL_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? ").expect("static regex")
});

/// syslog and journalctl: `Jun  2 06:00:57 host kernel: ` (month names in
/// any locale: `июл 27`), `2024-06-02T06:00:57.1+00:00 host kernel: `,
/// `Sun 2024-06-02 06:00:57 UTC host kernel: ` (`-o short-full`), OpenWrt's
/// `Sun Sep  1 19:30:19 2019 kern.warn kernel: `, `06:00:57 kernel: `, and the
/// same with another program's tag (`sshd[12]: `: user space). Without a host
/// only the `kernel` tag counts: `<time> debugfs: ...` is a kernel line.
fn syslog(text: &str) -> Option<Strip<'_>> {
    let first = *text.as_bytes().first()?;
    if !first.is_ascii_alphanumeric() && first.is_ascii() {
        return None;
    }
    // The first colon of a syslog line is the one in its time, within its
    // first bytes.
    let colon = memchr::memchr(b':', &text.as_bytes()[..text.len().min(48)])?;
    if !ascii_shape(&text[colon..], b":dd:") {
        return None;
    }
    let m = SYSLOG.find(text)?;
    // The tag is the word before the final `: ` (it has no blanks, and a
    // blank is before it): no captures needed to read it.
    let head = &text[..m.end() - 2];
    let tag = &head[head.rfind(' ').map_or(0, |at| at + 1)..];
    // klogd forwards kernel lines as `kernel[<pid>]:`.
    let kernel = tag == "kernel" || tag.starts_with("kernel[");
    if !kernel && SYSLOG.captures(text)?.name("host").is_none() {
        return None;
    }
    let rest = &text[m.end()..];
    if kernel {
        Some(Strip::kernel(rest))
    } else {
        Some(Strip::userspace(rest))
    }
}

static SYSLOG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:\p{L}{2,3}\.?,? )?",
        r"(?:\p{L}{2,5}\.? +\d{1,2} +|\d{4}-\d{2}-\d{2}[T ])?",
        r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
        r"(?: \d{4})?(?: [A-Z]{3,5})?",
        r"(?: +(?P<host>[A-Za-z0-9_.-]+))?",
        r" +(?P<tag>[A-Za-z0-9_./-]+(?:\[\d+\])?): ",
    ))
    .expect("static regex")
});

/// The kernel's own timestamp, optionally after a `<level>`: `[   12.345678]`,
/// `[12.3@0]` (CPU suffix), `dmesg -d`'s `[ 1.2 < 0.0001>]`, `--reltime`'s
/// `[  +0.000021]` and `[Apr17 01:44]`, `dmesg -T`'s `[Fri Apr 17 01:44:46
/// 2026]` in any locale, an ISO time, or a time the poster elided (`[..]`,
/// `[ ... ]`). Android kernels add the caller (`[  T123]`, `[    C1]`,
/// `[3:  kworker/3:1:  123]`, `(3)[123:kworker]`); a journal's host and
/// `kernel:` tag may follow (`journalctl -o short-monotonic`).
fn timestamp(text: &str) -> Option<Strip<'_>> {
    if !matches!(text.as_bytes().first()?, b'[' | b'<') {
        return None;
    }
    let mut s = match plain_timestamp(text) {
        Plain::Is(end) => Strip::kernel(&text[end..]),
        Plain::Caller(end, caller) => {
            let mut s = Strip::kernel(&text[end..]);
            s.caller = Some(caller);
            s
        }
        Plain::Not => return None,
        Plain::Maybe => {
            let m = TIMESTAMP.find(text)?;
            let mut s = Strip::kernel(&text[m.end()..]);
            // Only the caller id puts a `][` in a match that has one
            // (captures cost more than the match).
            if memchr::memmem::find(m.as_str().as_bytes(), b"][").is_some() {
                s.caller = TIMESTAMP
                    .captures(text)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str());
            }
            s
        }
    };
    s.rest = host_kernel(s.rest).unwrap_or(s.rest);
    Some(s)
}

/// What a byte scan tells of a [`TIMESTAMP`] at the start of a line.
enum Plain<'a> {
    /// The common `[   12.345678] ` alone (nothing the regex would take
    /// after it): the message starts at this byte.
    Is(usize),
    /// The same with a caller id (`[   12.345678][  T123] `): where the
    /// message starts, and the id.
    Caller(usize, &'a str),
    /// The regex cannot match.
    Not,
    /// Something else (a caller id, a date, a non-ASCII character): ask the
    /// regex.
    Maybe,
}

/// The byte scan of [`timestamp`]: most lines of most logs start with
/// `[   12.345678] `, which this reads without the regex. It answers
/// [`Plain::Is`] or [`Plain::Not`] only where the regex would surely agree.
fn plain_timestamp(text: &str) -> Plain<'_> {
    let b = text.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'<') {
        let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        match b.get(1 + digits) {
            Some(b'>') if (1..=3).contains(&digits) => i = 2 + digits,
            Some(c) if c.is_ascii() => return Plain::Not,
            _ => return Plain::Maybe,
        }
        if b.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if b.get(i) != Some(&b'[') {
        return if b.get(i).is_none_or(u8::is_ascii) {
            Plain::Not
        } else {
            Plain::Maybe
        };
    }
    i += 1;
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match b.get(i) {
        Some(b'0'..=b'9') => {}
        // `[<ffff...>]` frames and other brackets: no alternative of the
        // regex starts with these.
        Some(c)
            if c.is_ascii()
                && !c.is_ascii_alphanumeric()
                && !matches!(c, b'+' | b'.' | b'\x0b' | b'\x0c' | b'\r' | b'\n') =>
        {
            return Plain::Not
        }
        _ => return Plain::Maybe,
    }
    let int = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int;
    if !matches!(b.get(i), Some(b'.' | b',')) {
        return Plain::Maybe;
    }
    i += 1;
    let frac = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if frac == 0 {
        return Plain::Maybe;
    }
    i += frac;
    if b.get(i) != Some(&b']') {
        return Plain::Maybe;
    }
    i += 1;
    match b.get(i) {
        // A caller id, a CPU suffix, Android's caller: the regex reads them.
        Some(b'[') => match plain_caller(&b[i..]) {
            Some((len, caller)) => {
                let end = i + len;
                let end = end + usize::from(b.get(end) == Some(&b' '));
                Plain::Caller(end, &text[i + len - 1 - caller..i + len - 1])
            }
            None => Plain::Maybe,
        },
        Some(b'(' | b'@') => Plain::Maybe,
        // `] [  T123]` and `] [drm:...]`: the next stripper's or the
        // message's (the caller id stripper takes the id later); Android's
        // `] [3:  kworker...]`, a digit after the `[`, is the regex's.
        Some(b' ') if b.get(i + 1) == Some(&b'[') => {
            let mut j = i + 2;
            while matches!(b.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            match b.get(j) {
                // `\s` and `\d` as the regex has them.
                Some(c)
                    if c.is_ascii()
                        && !c.is_ascii_digit()
                        && !matches!(c, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b' ') =>
                {
                    Plain::Is(i + 1)
                }
                _ => Plain::Maybe,
            }
        }
        Some(b' ') => Plain::Is(i + 1),
        _ => Plain::Is(i),
    }
}

/// `[  T123]` or `[    C1]` at the start of `b`: its length and the length
/// of the id in it (which ends just before the `]`).
fn plain_caller(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 1;
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if !matches!(b.get(i), Some(b'T' | b'C')) {
        return None;
    }
    let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    (digits > 0 && b.get(i + 1 + digits) == Some(&b']')).then_some((i + 2 + digits, digits + 1))
}

/// May `text` start with `shape` (`d` a digit, other bytes themselves)?
/// From the first non-ASCII byte on the answer is yes: the regexes' `\d`
/// takes other scripts' digits, so they decide.
fn ascii_shape(text: &str, shape: &[u8]) -> bool {
    let b = text.as_bytes();
    for (i, &want) in shape.iter().enumerate() {
        match b.get(i) {
            None => return false,
            Some(c) if !c.is_ascii() => return true,
            Some(c) if want == b'd' && !c.is_ascii_digit() => return false,
            Some(&c) if want != b'd' && c != want => return false,
            Some(_) => {}
        }
    }
    true
}

/// `host kernel: ` after the kernel's own prefix (`journalctl -o
/// short-monotonic`): the rest of the line after it.
fn host_kernel(text: &str) -> Option<&str> {
    const TAG: &str = " kernel: ";
    let host = text
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        .count();
    (host > 0).then_some(())?;
    text[host..].strip_prefix(TAG)
}

static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:<\d{1,3}>)? ?\[(?:",
        r"\s*\+?\d+[.,]\d+(?:@\d+)?(?: <\s*\d+[.,]\d+>)?",
        r"|\s*\.{2,}\s*",
        r"|\p{L}{2,3}\.? \p{L}{2,5}\.? [ \d]\d \d{2}:\d{2}:\d{2} \d{4}",
        r"|\p{Lu}\p{Ll}{2}[ \d]?\d \d{2}:\d{2}",
        r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
        r")\]",
        r"(?:\[\s*([TC]\d+)\]| ?\[\s*\d+:[^\]]{1,40}\]|\(\d+\)\[\d+:[^\]]{1,40}\]|@\d+)?",
        r" ?",
    ))
    .expect("static regex")
});

/// `<4>` alone (`dmesg -r` without timestamps, kmsg levels).
fn level(text: &str) -> Option<Strip<'_>> {
    if !text.starts_with('<') {
        return None;
    }
    let m = LEVEL.find(text)?;
    let rest = &text[m.end()..];
    // IGT writes `<3> [620.7] msg`; any other blank is the message's own
    // indentation (a frame, a continued fragment).
    let rest = rest
        .strip_prefix(' ')
        .filter(|r| r.starts_with('['))
        .unwrap_or(rest);
    Some(Strip::kernel(rest))
}

static LEVEL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^<\d{1,3}>").expect("static regex"));

/// The caller id alone, `[  T123] ` (logs printed without timestamps, or a
/// caller after a space).
fn caller_id(text: &str) -> Option<Strip<'_>> {
    let inner = text.strip_prefix('[')?.trim_start_matches(' ');
    if !inner.starts_with(['T', 'C']) {
        return None;
    }
    let c = CALLER.captures(text)?;
    let mut s = Strip::kernel(&text[c.get(0)?.end()..]);
    s.caller = c.get(1).map(|m| m.as_str());
    Some(s)
}

static CALLER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[ *([TC]\d+)\] ?").expect("static regex"));

/// kunit.py's wall clock: `[12:34:56] `.
fn kunit_time(text: &str) -> Option<Strip<'_>> {
    let b = text.as_bytes();
    let shaped = b.len() >= 11
        && b[0] == b'['
        && b[3] == b':'
        && b[6] == b':'
        && b[9] == b']'
        && b[10] == b' '
        && [1, 2, 4, 5, 7, 8].iter().all(|&i| b[i].is_ascii_digit());
    shaped.then(|| Strip::kernel(&text[11..]))
}

/// A console multiplexer's tag before the kernel prefix (xvisor's
/// `[guest0/uart0] [    1.88] ...`).
fn console_tag(text: &str) -> Option<Strip<'_>> {
    let inner = text.strip_prefix('[')?;
    let end = inner.find("] ")?;
    if inner[..end].contains(' ') || end == 0 {
        return None;
    }
    let after = &inner[end + 2..];
    timestamp(after).map(|_| Strip::unknown(after))
}

const LOGIN: &str = " login: ";
static LOGIN_FINDER: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(LOGIN));

/// Consoles print `host login: ` and the next kernel line on one line.
fn login(text: &str) -> Option<Strip<'_>> {
    let pos = LOGIN_FINDER.find(text.as_bytes())?;
    let after = &text[pos + LOGIN.len()..];
    timestamp(after).map(|_| Strip::unknown(after))
}

/// LAVA's job log (`log.yaml`): `- {"dt": "...", "lvl": "target", "msg": "..."}`.
fn lava(text: &str) -> Option<Strip<'_>> {
    let rest = text.strip_prefix("- {\"dt\": \"")?;
    let at = rest.find("\"msg\": \"")?;
    let msg = &rest[at + 8..];
    let msg = msg.strip_suffix("\"}").unwrap_or(msg);
    Some(Strip::unknown(msg))
}

/// Log-aggregator exports put columns (time, host, unit) before the line as
/// the kernel printed it: a timestamp or caller id after a separator within
/// the first bytes is where the kernel's line starts.
fn columns(text: &str) -> Option<Strip<'_>> {
    const WITHIN: usize = 96;
    if matches!(text.as_bytes().first()?, b'[' | b'<' | b' ' | b'\t') {
        return None;
    }
    let head = &text.as_bytes()[..text.len().min(WITHIN)];
    memchr::memchr_iter(b'[', head)
        .filter(|&i| i > 0 && matches!(head[i - 1], b' ' | b'"' | b'|' | b'\t'))
        .map(|i| &text[i..])
        .find(|rest| timestamp(rest).is_some() || caller_id(rest).is_some())
        .map(Strip::unknown)
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

/// The shape of a prefix no stripper knows, learned from the line a report
/// starts on (the text before its header): log-aggregator columns
/// (`2024-06-02 06:00:57.1 | host | `), a subsystem tag on every line
/// (`kmemleak: `). The report's following lines lose a prefix of the same
/// shape: words with digits match any word (times, pids), other words and
/// punctuation match themselves, a run of blanks matches any run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A word with a digit in it: any word.
    Variable,
    /// A word without digits: itself.
    Word(String),
    /// A run of blanks: any run of one or more.
    Blank,
    /// Any other character: itself.
    Char(char),
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Shape {
    /// The shape of `prefix` (the text before a report's header).
    pub fn learn(prefix: &str) -> Shape {
        let mut tokens = Vec::new();
        let mut rest = prefix;
        while let Some(c) = rest.chars().next() {
            let len = if is_word(c) {
                let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
                let word = &rest[..end];
                tokens.push(if word.bytes().any(|b| b.is_ascii_digit()) {
                    Token::Variable
                } else {
                    Token::Word(word.to_string())
                });
                end
            } else if c == ' ' || c == '\t' {
                tokens.push(Token::Blank);
                rest.find(|c: char| c != ' ' && c != '\t')
                    .unwrap_or(rest.len())
            } else {
                tokens.push(Token::Char(c));
                c.len_utf8()
            };
            rest = &rest[len..];
        }
        Shape { tokens }
    }

    /// `text` without a prefix of this shape, if it has one. The last blank
    /// run takes one blank only: the rest is the line's own indentation.
    /// A line that has only the leading columns of the shape (up to a
    /// blank) loses those: `console: rcu: ` learned, `console: ` on a frame.
    pub fn strip<'a>(&self, text: &'a str) -> Option<&'a str> {
        let mut rest = text;
        let last = self.tokens.len().checked_sub(1)?;
        let mut partial = None;
        for (i, token) in self.tokens.iter().enumerate() {
            if i >= 2 && *token == Token::Blank {
                partial = rest.strip_prefix([' ', '\t']);
            }
            let Some(next) = self.step(i == last, token, rest) else {
                return partial;
            };
            rest = next;
        }
        Some(rest)
    }

    /// One token of the shape at the start of `rest`.
    fn step<'a>(&self, last: bool, token: &Token, rest: &'a str) -> Option<&'a str> {
        Some(match token {
            Token::Variable => {
                let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
                (end > 0).then(|| &rest[end..])?
            }
            Token::Word(word) => {
                let after = rest.strip_prefix(word.as_str())?;
                (!after.starts_with(is_word)).then_some(after)?
            }
            Token::Blank if last => rest.strip_prefix([' ', '\t'])?,
            Token::Blank => {
                let after = rest.trim_start_matches([' ', '\t']);
                (after.len() < rest.len()).then_some(after)?
            }
            Token::Char(c) => rest.strip_prefix(*c)?,
        })
    }
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
            format!("6,1234,5678901,-;{MSG}"),
            format!("4,17,1000,-,caller=T12;{MSG}"),
            format!("<4>{MSG}"),
            format!("[  +0.000021] {MSG}"),
            format!("[    3.117189 <    0.000162>] {MSG}"),
            format!("[Apr17 01:44] {MSG}"),
            format!("[пн ное 13 18:26:42 2017] {MSG}"),
            format!("[..] {MSG}"),
            format!("[ ... ] {MSG}"),
            format!("[12:34:56] {MSG}"),
            format!("[    7.910564@0] {MSG}"),
            format!("[    1.234567][  T123] {MSG}"),
            format!("[    0.000000] [0:        swapper:    0] {MSG}"),
            format!("Sun Sep  1 19:30:19 2019 kern.warn kernel: [138620.515738] {MSG}"),
            format!("Sun 2024-06-02 06:00:57 UTC host kernel: {MSG}"),
            format!("Jun 02 06:00:57.123456 host kernel: {MSG}"),
            format!("    [   12.345678] {MSG}"),
            format!("\t> [   12.345678] {MSG}"),
            format!("\r[   12.345678] {MSG}^M"),
            format!("2024-06-02 06:00:57.1 | node-7 | kernel | [   12.345678] {MSG}"),
            format!("- {{\"dt\": \"2024-06-02T06:00:57\", \"lvl\": \"target\", \"msg\": \"[   12.3] {MSG}\"}}"),
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
    fn every_family_has_a_name() {
        assert!(prefix_families().count() >= 10);
        // One bit per stripper in the gates.
        assert!(STRIPPERS.len() <= 16);
        assert_eq!(STRIPPERS[LOGIN_STRIPPER].0, "login prompt glued in front");
    }

    #[test]
    fn learned_shapes_strip_the_same_columns() {
        let shape = Shape::learn("2024-06-02 06:00:57.123 | node-1 | kernel | ");
        assert_eq!(
            shape.strip("2024-06-02 06:00:58.004 | node-1 | kernel |  dump_stack+0x1/0x2"),
            Some(" dump_stack+0x1/0x2")
        );
        assert_eq!(shape.strip("usb 1-1: new device"), None);
        // Only the leading columns: those go.
        assert_eq!(
            shape.strip("2024-06-02 06:00:58.004 | other-1 | x"),
            Some("other-1 | x")
        );
        let kmemleak = Shape::learn("kmemleak: ");
        assert_eq!(
            kmemleak.strip("kmemleak:   backtrace:"),
            Some("  backtrace:")
        );
        assert_eq!(kmemleak.strip("CPU: 0 PID: 1"), None);
        assert_eq!(Shape::learn("").strip("x"), None);
    }

    #[test]
    fn cuts_overlong_lines_on_a_char_boundary() {
        let long = "é".repeat(MAX_LINE);
        assert!(parse(&long).text.len() <= MAX_LINE);
    }
}
