//! Metamorphic tests of the classifier: every real log (the fixtures and
//! `../shared/corpus/dmesg`) re-rendered as another transport would have
//! stored it must give the same kinds and titles, and so must the log with
//! unrelated lines of another writer mixed in. Each renderer is one prefix
//! family the classifier claims to read (README, "Kernel logs it reads").

use std::path::{Path, PathBuf};

use kcycle::dmesg::{classify, line, Kind};

/// A renderer's name and how it writes line `n` (0-based) whose message is
/// `msg`, of a log whose original line was `raw`.
type Render = (&'static str, fn(usize, &str, &str) -> String);

/// A kernel timestamp for line `n`: seconds that grow with the line.
fn secs(n: usize) -> String {
    format!("{:5}.{:06}", 10 + n / 1000, (n % 1000) * 997)
}

/// Every prefix family, written from the message (the original prefix
/// stripped) or stacked on the original line as posted.
const RENDERERS: &[Render] = &[
    ("bare message", |_, m, _| m.to_string()),
    ("dmesg", |n, m, _| format!("[{}] {m}", secs(n))),
    ("kmsg record", |n, m, _| {
        format!("4,{},{},-;{m}", 100 + n, 1_000_000 + n * 21)
    }),
    ("kmsg record with caller", |n, m, _| {
        let caller = if has_caller(m) { "" } else { ",caller=T42" };
        format!("4,{},{},-{caller};{m}", 100 + n, 1_000_000 + n * 21)
    }),
    ("dmesg -r", |n, m, _| format!("<4>[{}] {m}", secs(n))),
    ("dmesg -r without time", |_, m, _| format!("<3>{m}")),
    ("dmesg -d delta", |n, m, _| {
        format!("[  +0.{:06}] {m}", n % 1000)
    }),
    ("dmesg -d", |n, m, _| {
        format!("[{} <    0.{:06}>] {m}", secs(n), n % 1000)
    }),
    ("dmesg -T", |_, m, _| {
        format!("[Fri Apr 17 01:44:46 2026] {m}")
    }),
    ("dmesg -T localized", |_, m, _| {
        format!("[пн ное 13 18:26:42 2017] {m}")
    }),
    ("dmesg -e", |_, m, _| format!("[Apr17 01:44] {m}")),
    ("dmesg -x", |_, m, _| format!("kern  :warn  : {m}")),
    ("dmesg iso", |_, m, _| {
        format!("2024-06-02T06:00:57,123456+00:00 {m}")
    }),
    ("elided time", |_, m, _| format!("[..] {m}")),
    ("elided time, spaced", |_, m, _| format!("[ ... ] {m}")),
    ("kunit.py time", |_, m, _| format!("[06:00:57] {m}")),
    ("printk caller", |n, m, _| {
        let caller = if has_caller(m) { "" } else { "[  T1234]" };
        format!("[{}]{caller} {m}", secs(n))
    }),
    ("Android CPU suffix", |n, m, _| {
        format!("[{}@2] {m}", secs(n))
    }),
    ("Samsung caller", |n, m, _| {
        format!("[{}] [2:  kworker/2:1:  123] {m}", secs(n))
    }),
    ("caller only", |_, m, _| {
        let caller = if has_caller(m) { "" } else { "[    C3] " };
        format!("{caller}{m}")
    }),
    ("syslog", |n, m, _| {
        format!("Jun  2 06:00:57 host kernel: [{}] {m}", secs(n))
    }),
    ("journalctl", |_, m, _| {
        format!("Jun 02 06:00:57 host.example.org kernel: {m}")
    }),
    ("journalctl short-full", |_, m, _| {
        format!("Sun 2024-06-02 06:00:57 UTC host kernel: {m}")
    }),
    ("journalctl short-monotonic", |n, m, _| {
        format!("[{}] host kernel: {m}", secs(n))
    }),
    ("rsyslog ISO", |_, m, _| {
        format!("2024-06-02T06:00:57.123456+00:00 host kernel: {m}")
    }),
    ("OpenWrt logread", |n, m, _| {
        format!(
            "Sun Sep  1 19:30:19 2019 kern.warn kernel: [{}] {m}",
            secs(n)
        )
    }),
    ("serial console", |n, m, _| {
        format!("\r[{}] {m}\r\r", secs(n))
    }),
    ("pasted ^M", |n, m, _| format!("[{}] {m}^M", secs(n))),
    ("ANSI colours", |n, m, _| {
        format!("\x1b[32m[{}] \x1b[0m\x1b[33m{m}\x1b[0m", secs(n))
    }),
    ("log aggregator", |n, m, _| {
        format!(
            "2024-06-02 06:00:{:02}.{:03} | node-7 | kernel | {m}",
            n % 60,
            n % 1000
        )
    }),
    ("LAVA job log", |n, m, _| {
        format!(
            "- {{\"dt\": \"2024-06-02T06:00:{:02}\", \"lvl\": \"target\", \"msg\": \"{m}\"}}",
            n % 60
        )
    }),
    ("subsystem tag on every line", |_, m, _| {
        format!("console: {m}")
    }),
    ("LAVA marker spliced in", |n, m, _| {
        if n % 5 == 0 {
            format!(
                "[{}] <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=x RESULT=pass>{m}",
                secs(n)
            )
        } else {
            format!("[{}] {m}", secs(n))
        }
    }),
    // Stacked on the line as posted.
    ("mail quote", |_, _, raw| format!("> {raw}")),
    ("nested mail quote", |_, _, raw| format!("> > {raw}")),
    ("indented paste", |_, _, raw| format!("    {raw}")),
];

/// Does the message carry its own caller id (kept from the original)?
fn has_caller(msg: &str) -> bool {
    line::parse(msg).caller.is_some()
}

/// An unrelated line of another writer in the renderer's own prefix.
const CHATTER: &str = "usb 1-1: new high-speed USB device number 2 using xhci_hcd";

fn logs_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut logs: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

fn all_logs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut logs = logs_in(&root.join("tests/fixtures/dmesg"));
    // `shared/corpus/dmesg` beside the checkout, from any worktree depth.
    if let Some(corpus) = root
        .ancestors()
        .map(|a| a.join("shared/corpus/dmesg"))
        .find(|d| d.is_dir())
    {
        logs.extend(logs_in(&corpus));
    }
    logs
}

fn kinds_and_titles(text: &str) -> Vec<(Kind, String)> {
    classify(text)
        .into_iter()
        .map(|f| (f.kind, f.title))
        .collect()
}

/// The log's kernel lines (user-space lines of a syslog dropped: in another
/// transport they would not be there), each as `(message, raw line)`; the
/// message keeps its printk caller id, which tells interleaved reports apart.
fn kernel_lines(text: &str) -> Vec<(String, &str)> {
    text.split('\n')
        .flat_map(|raw| raw.split("#012"))
        .map(|raw| (line::parse(raw), raw))
        .filter(|(l, _)| l.origin != line::Origin::Userspace)
        .map(|(l, raw)| match l.caller {
            Some(caller) => (format!("[{caller:>6}] {}", l.text), raw),
            None => (l.text.to_string(), raw),
        })
        .collect()
}

fn render<S: AsRef<str>>(
    lines: &[(S, &str)],
    render: fn(usize, &str, &str) -> String,
    every: usize,
) -> String {
    let mut out = String::new();
    for (n, (msg, raw)) in lines.iter().enumerate() {
        let msg = msg.as_ref();
        if every > 0 && n % every == every - 1 {
            out.push_str(&render(n, CHATTER, CHATTER));
            out.push('\n');
        }
        out.push_str(&render(n, msg, raw));
        out.push('\n');
    }
    out
}

/// Every log under every renderer, plain and with chatter every 7 lines.
fn mismatches() -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for path in all_logs() {
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read log")).into_owned();
        let lines = kernel_lines(&text);
        let want = kinds_and_titles(&text);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        for (family, renderer) in RENDERERS {
            for every in [0, 7] {
                checked += 1;
                let got = kinds_and_titles(&render(&lines, *renderer, every));
                if got != want {
                    let chatter = if every > 0 { " with chatter" } else { "" };
                    wrong.push(format!(
                        "{name} as {family}{chatter}:\n  want {want:?}\n  got  {got:?}"
                    ));
                }
            }
        }
    }
    (checked, wrong)
}

#[test]
fn every_log_gives_the_same_findings_in_every_prefix_family() {
    let (checked, wrong) = mismatches();
    assert!(
        checked >= 2 * RENDERERS.len() * 30,
        "only {checked} renderings"
    );
    assert!(
        wrong.is_empty(),
        "{} of {checked} renderings differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Benign kernel text in every family: nothing to find.
#[test]
fn benign_logs_give_nothing_in_any_prefix_family() {
    let benign = "\
Linux version 6.12.0 (root@host) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC
Command line: console=ttyS0 kmemleak=on slub_debug=U,rust_i915_*
x86/fpu: Supporting XSAVE feature 0x001: 'x87 floating point registers'
Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks possible via Spectre v2 BHB attacks!
kmemleak: Kernel memory leak detector initialized (mem pool available: 15765)
kmemleak: Automatic memory scanning thread started
i915: Performing mock selftests with st_random_seed=0x1 st_timeout=500
i915: Running i915_gem_object_mock_selftests/igt_gem_huge
Setting dangerous option mock_selftests - tainting kernel
KTAP version 1
1..1
    KTAP version 1
    # Subtest: list-kunit-test
    1..2
    ok 1 list_test_list_init
    ok 2 list_test_list_add # SKIP not today
# list-kunit-test: pass:1 fail:0 skip:1 total:2
ok 1 list-kunit-test
[PASSED] list_test_list_init
traps: a.out[3615] general protection fault ip:7feb96eb56a1 sp:20000fd0 error:0 in a.out[7feb96e9e000+1a5000]
XFS (loop4): WARNING: Reset corrupted AGFL on AG 0. 1 blocks leaked. Please unmount and run xfs_repair.
EXT4-fs (sda1): mounted filesystem 4b0a-11 r/w with ordered data mode. Quota mode: none.
rust_i915_table: loaded, 16 entries
rust_i915_table: unloaded
";
    let lines: Vec<(&str, &str)> = benign.lines().map(|l| (l, l)).collect();
    for (family, renderer) in RENDERERS {
        for every in [0, 3] {
            let found = kinds_and_titles(&render(&lines, *renderer, every));
            assert!(found.is_empty(), "{family}: {found:?}");
        }
    }
}
