//! Stable identities for findings (pure): the same bug in two runs gets the
//! same fingerprint even when its WARN moved a few lines, the kernel was
//! relinked, or a number in its message changed.
//!
//! A fingerprint hashes a finding's kind, its title with numbers and
//! addresses replaced, and the names of up to [`MAX_FRAMES`] reliable,
//! non-generic frames of its first stack trace (offsets, addresses, file and
//! line numbers are not part of a frame's name). The stack is read with the
//! classifier's own parser ([`crate::dmesg::stack`]), so titles and
//! fingerprints agree on which frames count.

use std::sync::LazyLock;

use globset::Glob;
use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dmesg::{line, stack};
use crate::outcome::{Finding, FindingKind};

/// Frames of the stack that take part in a fingerprint, at most.
pub const MAX_FRAMES: usize = 5;

/// Hex digits of the hash that form a fingerprint's id (64 bits).
pub const ID_LEN: usize = 16;

/// Shortest id prefix `--finding` accepts as a fingerprint (as git does).
pub const MIN_PREFIX: usize = 6;

/// What a fingerprint is made of, and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// [`ID_LEN`] hex digits of SHA-256 over the other fields.
    pub id: String,
    pub kind: FindingKind,
    /// The title with numbers and addresses replaced by `N`.
    pub title: String,
    /// Function names, innermost first.
    pub frames: Vec<String>,
}

/// Numbers in titles: anything that starts with a digit (`12`, `0x1f`,
/// `120s`) and long hex words (`ffff888003c1e000`). Identifiers that merely
/// contain digits (`i915`, `card0`) are kept.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:[0-9][0-9A-Za-z_]*|[0-9a-fA-F]{8,})\b").expect("static regex")
});

/// The fingerprint of a finding.
pub fn of(finding: &Finding) -> Fingerprint {
    compute(&finding.kind, &finding.title, &finding.report)
}

/// The fingerprint of a finding given by its parts.
pub fn compute(kind: &FindingKind, title: &str, report: &str) -> Fingerprint {
    let title = normalize_title(title);
    let frames = frames(report);
    let mut hash = Sha256::new();
    hash.update(kind.name().as_bytes());
    hash.update(b"\n");
    hash.update(title.as_bytes());
    for frame in &frames {
        hash.update(b"\n");
        hash.update(frame.as_bytes());
    }
    let mut id = hex::encode(hash.finalize());
    id.truncate(ID_LEN);
    Fingerprint {
        id,
        kind: kind.clone(),
        title,
        frames,
    }
}

/// A title with its numbers replaced by `N`.
pub fn normalize_title(title: &str) -> String {
    NUMBER.replace_all(title.trim(), "N").into_owned()
}

/// Up to [`MAX_FRAMES`] function names from the report's first stack trace,
/// skipping the reporting machinery (`dump_stack`, `__warn`, locks, allocators).
pub fn frames(report: &str) -> Vec<String> {
    let lines: Vec<&str> = report.lines().map(|l| line::parse(l).text).collect();
    stack::trace_frames(&lines)
        // first_unskipped over one name: "is this frame generic machinery?"
        .filter(|f| stack::first_unskipped(std::iter::once(*f), &[]).is_some())
        .take(MAX_FRAMES)
        .map(str::to_string)
        .collect()
}

impl Fingerprint {
    /// Whether `pattern` names this finding: its id or an id prefix of at
    /// least [`MIN_PREFIX`] hex digits, or a glob over its title (as
    /// printed or normalized) or `kind: title`.
    pub fn matches(&self, pattern: &str, original_title: &str) -> bool {
        let pattern = pattern.trim();
        if pattern.len() >= MIN_PREFIX
            && pattern.bytes().all(|b| b.is_ascii_hexdigit())
            && self.id.starts_with(&pattern.to_ascii_lowercase())
        {
            return true;
        }
        let Ok(glob) = Glob::new(pattern) else {
            return false;
        };
        let glob = glob.compile_matcher();
        glob.is_match(original_title)
            || glob.is_match(&self.title)
            || glob.is_match(format!("{}: {original_title}", self.kind))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WARN: &str = "\
WARNING: CPU: 0 PID: 81 at drivers/gpu/drm/i915/i915_gem.c:1234 i915_gem_cleanup+0x1a/0x40 [i915]
Modules linked in: i915(+) drm_buddy
CPU: 0 PID: 81 Comm: modprobe Tainted: G        W  O       6.12.117 #1
RIP: 0010:i915_gem_cleanup+0x1a/0x40 [i915]
Call Trace:
 <TASK>
 ? __warn+0x7d/0x130
 ? report_bug+0x18e/0x1a0
 dump_stack_lvl+0x5d/0x80
 i915_gem_cleanup+0x1a/0x40 [i915]
 i915_driver_remove+0x55/0x110 [i915]
 i915_pci_remove+0x1e/0x40 [i915]
 pci_device_remove+0x3e/0xb0
 device_release_driver_internal+0x19e/0x200
 driver_detach+0x48/0x90
 </TASK>
---[ end trace 0000000000000000 ]---
";

    #[test]
    fn takes_five_named_frames_without_machinery() {
        assert_eq!(
            frames(WARN),
            [
                "i915_gem_cleanup",
                "i915_driver_remove",
                "i915_pci_remove",
                "pci_device_remove",
                // device_release_driver_internal is driver-core machinery
                "driver_detach",
            ]
        );
    }

    #[test]
    fn reads_frames_behind_console_timestamps() {
        let stamped: String = WARN
            .lines()
            .map(|l| format!("[   12.345678] {l}\n"))
            .collect();
        assert_eq!(frames(&stamped), frames(WARN));
        assert_eq!(
            compute(&"warning".into(), "WARNING in i915_gem_cleanup", &stamped),
            compute(&"warning".into(), "WARNING in i915_gem_cleanup", WARN)
        );
    }

    #[test]
    fn titles_lose_numbers_but_keep_identifiers() {
        assert_eq!(
            normalize_title("kernel BUG at mm/slub.c:4321!"),
            "kernel BUG at mm/slub.c:N!"
        );
        assert_eq!(
            normalize_title("cycle 2/3: load rust_i915_table failed with exit 1: x"),
            "cycle N/N: load rust_i915_table failed with exit N: x"
        );
        assert_eq!(
            normalize_title("unreferenced object 0xffff888003c1e000 on card0"),
            "unreferenced object N on card0"
        );
        assert_eq!(
            normalize_title("step did not finish in 120s"),
            "step did not finish in N"
        );
    }

    #[test]
    fn findings_without_a_stack_hash_kind_and_title() {
        let a = compute(
            &"leaked-slab-cache".into(),
            "slab caches left: rust_i915_vma",
            "",
        );
        let b = compute(
            &"leaked-slab-cache".into(),
            "slab caches left: rust_i915_vma",
            "Present in /sys/kernel/slab after the unload:\n  rust_i915_vma (3 objects)\n",
        );
        assert_eq!(a, b);
        assert!(a.frames.is_empty());
        assert_eq!(a.id.len(), ID_LEN);
        assert_ne!(
            a.id,
            compute(
                &"leaked-debugfs-entry".into(),
                "slab caches left: rust_i915_vma",
                ""
            )
            .id
        );
    }

    #[test]
    fn matches_ids_prefixes_and_title_globs() {
        let fp = compute(&"warning".into(), "WARNING in i915_gem_cleanup", WARN);
        let title = "WARNING in i915_gem_cleanup";
        assert!(fp.matches(&fp.id, title));
        assert!(fp.matches(&fp.id[..MIN_PREFIX].to_ascii_uppercase(), title));
        assert!(!fp.matches(&fp.id[..MIN_PREFIX - 1], title));
        assert!(fp.matches("WARNING in i915_*", title));
        assert!(fp.matches("warning: *cleanup", title));
        assert!(!fp.matches("*slab*", title));
        assert!(!fp.matches("[", title));
    }

    /// The report with every offset, address and line number replaced by
    /// other values, as a relinked or slightly edited kernel prints it.
    fn shifted(report: &str, offset: u32, addr: u64, line_no: u32) -> String {
        let offsets = Regex::new(r"\+0x[0-9a-f]+/0x[0-9a-f]+").unwrap();
        let files = Regex::new(r"\.c:\d+").unwrap();
        let pids = Regex::new(r"PID: \d+").unwrap();
        let report = offsets.replace_all(report, format!("+0x{offset:x}/0x{:x}", offset + 0x40));
        let report = files.replace_all(&report, format!(".c:{line_no}"));
        let report = pids.replace_all(&report, format!("PID: {line_no}"));
        report
            .lines()
            .map(|l| {
                // Some kernels print `[<address>]` before each frame.
                if l.starts_with(' ') && l.contains("+0x") {
                    format!(" [<{addr:016x}>]{l}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn noise_keeps_the_fingerprint(
            offset in 1u32..0xffff,
            addr in any::<u64>(),
            line_no in 1u32..100_000,
        ) {
            let base = compute(&"warning".into(), "WARNING in i915_gem_cleanup", WARN);
            let moved = shifted(WARN, offset, addr, line_no);
            let title = format!("kernel BUG at drivers/gpu/drm/i915/i915_gem.c:{line_no}!");
            prop_assert_eq!(
                compute(&"warning".into(), "WARNING in i915_gem_cleanup", &moved).id,
                base.id
            );
            prop_assert_eq!(
                compute(&"bug".into(), &title, &moved).id,
                compute(&"bug".into(), "kernel BUG at drivers/gpu/drm/i915/i915_gem.c:1!", WARN).id
            );
        }

        #[test]
        fn another_function_changes_it(
            name in "[a-z][a-z0-9_]{2,20}",
            frame in 0usize..MAX_FRAMES,
        ) {
            let names = frames(WARN);
            prop_assume!(!names.contains(&name));
            prop_assume!(stack::first_unskipped(std::iter::once(name.as_str()), &[]).is_some());
            let changed = WARN.replace(&names[frame], &name);
            let title = "WARNING in i915_gem_cleanup";
            prop_assert_ne!(compute(&"warning".into(), title, &changed).id, compute(&"warning".into(), title, WARN).id);
        }
    }
}
