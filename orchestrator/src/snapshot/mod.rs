//! Snapshots of guest kernel state, taken around each step: slab caches,
//! taint, loaded modules with their addresses, memory counters, and the names
//! in every namespace a driver registers in ([`namespace`]). Pure but for
//! [`walk`], the guest side: the runner fetches the text in one SSH round
//! trip ([`command`]) and these functions parse and compare it.

pub mod klog;
mod memory;
mod modules;
pub mod namespace;
mod slab;
mod taint;
pub mod walk;

use std::collections::BTreeMap;

pub use memory::{Counters, MEMINFO_FIELDS};
pub use modules::{loaded_modules, module_ranges, ModuleRange};
pub use namespace::{Namespace, Namespaces};
pub use slab::{SlabCache, SlabCaches};
pub use taint::{Taint, TaintFlag};
pub use walk::SlabCounts;

/// Where the guest image keeps [`HELPER`].
pub const HELPER_PATH: &str = "/bin/kcycle-snapshot";

/// `kcycle-snapshot`, the static binary that prints everything
/// [`Snapshot::parse`] reads in one process ([`walk`]; built by build.rs).
pub const HELPER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kcycle-snapshot"));

/// The guest command that prints everything [`Snapshot::parse`] reads, in
/// `@@<section>` sections (see [`walk::SECTIONS`]).
pub fn command(counts: SlabCounts) -> String {
    match counts {
        SlabCounts::Listed => HELPER_PATH.to_string(),
        SlabCounts::Exact => format!("{HELPER_PATH} {}", walk::EXACT_ARG),
    }
}

/// [`command`] after the kernel log since the last read (which it clears,
/// as `dmesg -c`) and [`klog::LOG_END`], in one guest process.
pub fn with_log_command(counts: SlabCounts) -> String {
    format!("{} {}", command(counts), klog::TAKE_ARG)
}

/// Guest kernel state at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub slab: SlabCaches,
    pub taint: Taint,
    /// Names of loaded modules, as /proc/modules spells them.
    pub modules: Vec<String>,
    /// Where each loaded module's core image lies.
    pub module_ranges: Vec<ModuleRange>,
    /// Names in every namespace the ledger reads.
    pub namespaces: Namespaces,
    /// /proc/meminfo counters and per-cache active objects, for trends.
    pub counters: Counters,
    /// Section addresses of a module just loaded (read after loads only).
    pub module_sections: BTreeMap<String, u64>,
}

impl Snapshot {
    /// Parse the output of [`command`]. Missing sections give empty values
    /// (a kernel without SLUB sysfs simply has no slab names).
    pub fn parse(text: &str) -> Snapshot {
        let sections = sections(text);
        let get = |name: &str| sections.get(name).map(String::as_str).unwrap_or("");
        let slab = SlabCaches::parse(get("slab"), get("slabinfo"));
        let counters = Counters::new(get("meminfo"), &slab);
        Snapshot {
            taint: Taint::parse(get("taint")).unwrap_or_default(),
            modules: loaded_modules(get("modules")),
            module_ranges: module_ranges(get("modules")),
            namespaces: Namespaces::parse(&sections),
            counters,
            slab,
            module_sections: BTreeMap::new(),
        }
    }
}

/// `@@name` lines start sections; text before the first one is ignored.
fn sections(text: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line
            .trim()
            .strip_prefix("@@")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            current = Some(name.to_string());
            out.entry(name.to_string()).or_default();
        } else if let Some(name) = &current {
            let section = out.entry(name.clone()).or_default();
            section.push_str(line);
            section.push('\n');
        }
    }
    out
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
        assert_eq!(
            snap.module_ranges,
            [ModuleRange {
                module: "rust_i915_table".into(),
                start: 0xffffffffc0000000,
                size: 16384
            }]
        );
        assert_eq!(
            snap.namespaces.get(Namespace::Debugfs).collect::<Vec<_>>(),
            ["rust_i915_table", "slab"]
        );
    }

    #[test]
    fn garbage_gives_empty_state() {
        assert_eq!(
            Snapshot::parse("\0\0garbage\n@@taint\nnot a number").taint,
            Taint::default()
        );
        assert!(Snapshot::parse("\0\0garbage\n@@taint\nnot a number")
            .slab
            .is_empty());
    }
}
