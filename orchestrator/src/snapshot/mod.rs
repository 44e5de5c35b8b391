//! Snapshots of guest kernel state, taken around each step: slab caches,
//! taint, loaded modules. Pure: the runner fetches the text in one SSH round
//! trip ([`COMMAND`]) and these functions parse and compare it.

mod modules;
mod slab;
mod taint;

pub use modules::loaded_modules;
pub use slab::{SlabCache, SlabCaches};
pub use taint::{Taint, TaintFlag};

/// One shell command that prints everything [`Snapshot::parse`] reads, in sections.
///
/// Slab names are the real cache directories of /sys/kernel/slab: SLUB
/// leaves the symlink of a merged alias behind when the alias is destroyed,
/// so symlinks say nothing about leaks (kcycle boots with `slab_nomerge`).
pub const COMMAND: &str =
    "echo @@slab; for d in /sys/kernel/slab/*; do [ -L \"$d\" ] || echo \"${d##*/}\"; done; \
echo @@slabinfo; cat /proc/slabinfo 2>/dev/null; \
echo @@taint; cat /proc/sys/kernel/tainted; \
echo @@modules; cat /proc/modules; \
echo @@debugfs; ls -1 /sys/kernel/debug 2>/dev/null";

/// Guest kernel state at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub slab: SlabCaches,
    pub taint: Taint,
    /// Names of loaded modules, as /proc/modules spells them.
    pub modules: Vec<String>,
    /// Top-level debugfs entries (drivers create their directory there).
    pub debugfs: Vec<String>,
}

impl Snapshot {
    /// Parse the output of [`COMMAND`]. Missing sections give empty values
    /// (a kernel without SLUB sysfs simply has no slab names).
    pub fn parse(text: &str) -> Snapshot {
        let mut sections: [(&str, String); 5] = [
            ("@@slab", String::new()),
            ("@@slabinfo", String::new()),
            ("@@taint", String::new()),
            ("@@modules", String::new()),
            ("@@debugfs", String::new()),
        ];
        let mut current: Option<usize> = None;
        for line in text.lines() {
            if let Some(i) = sections
                .iter()
                .position(|(marker, _)| line.trim() == *marker)
            {
                current = Some(i);
            } else if let Some(i) = current {
                sections[i].1.push_str(line);
                sections[i].1.push('\n');
            }
        }
        let [(_, names), (_, slabinfo), (_, taint), (_, modules), (_, debugfs)] = sections;
        Snapshot {
            slab: SlabCaches::parse(&names, &slabinfo),
            taint: Taint::parse(&taint).unwrap_or_default(),
            modules: loaded_modules(&modules),
            debugfs: debugfs
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// debugfs entries present now that were not in `before`.
    pub fn debugfs_appeared_since<'a>(&'a self, before: &Snapshot) -> Vec<&'a str> {
        self.debugfs
            .iter()
            .filter(|e| !before.debugfs.contains(e))
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_sections() {
        let text = "@@slab\nkmalloc-64\nrust_i915_vma\n:0000128\n@@slabinfo\n\
slabinfo - version: 2.1\n\
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n\
rust_i915_vma         12     32    128   32    1 : tunables    0    0    0 : slabdata      1      1      0\n\
@@taint\n4160\n@@modules\nrust_i915_table 16384 0 - Live 0xffffffffc0000000 (O)\n\
@@debugfs\nslab\nrust_i915_table\n";
        let snap = Snapshot::parse(text);
        assert_eq!(
            snap.slab.names().collect::<Vec<_>>(),
            ["kmalloc-64", "rust_i915_vma"]
        );
        assert_eq!(
            snap.slab.get("rust_i915_vma").unwrap().active_objects,
            Some(12)
        );
        assert_eq!(snap.taint.flags(), [TaintFlag::User, TaintFlag::OotModule]);
        assert_eq!(snap.modules, ["rust_i915_table"]);
        assert_eq!(snap.debugfs, ["slab", "rust_i915_table"]);
        let before = Snapshot {
            debugfs: vec!["slab".into()],
            ..Snapshot::default()
        };
        assert_eq!(snap.debugfs_appeared_since(&before), ["rust_i915_table"]);
    }

    #[test]
    fn garbage_gives_empty_state() {
        assert_eq!(
            Snapshot::parse("\0\0garbage\n@@taint\nnot a number"),
            Snapshot::default()
        );
    }
}
