//! The leak ledger of one test (pure): what each unload (or failed load) left
//! behind, by namespace, and which later trouble that explains.
//!
//! - A name that appeared with a module's load and is still there after its
//!   unload is a leftover, charged "left behind by unload in cycle N".
//! - A later report that names a leftover (a duplicate-entry warning in any
//!   wording, a load failing with -EEXIST/-EBUSY) is charged to the same
//!   unload: the state diff finds the leak, the message only corroborates.
//! - An oops or warning whose addresses lie in the image of a module that
//!   has been unloaded is code that ran after the unload (a timer, work item
//!   or callback left armed), charged to that unload, with the frames named
//!   from the module's symbols.

use std::collections::BTreeMap;

use crate::kind::FindingKind;
use crate::outcome::{Finding, Severity};
use crate::snapshot::{ModuleRange, Snapshot};
use crate::symbols::Symbolizer;

/// Names listed in a finding's report, at most; the rest are counted.
const MAX_LISTED: usize = 40;
/// Names in a finding's title, at most.
const MAX_TITLED: usize = 3;

/// One name an unload left behind.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub kind: FindingKind,
    /// The full name, e.g. `/sys/class/kcycle_leaks` or `char 511 kcycle_leaks`.
    pub name: String,
    pub module: String,
    pub cycle: u32,
    /// "unload" or "failed load".
    pub by: String,
}

impl Leftover {
    /// Strings a kernel message about this name would contain, most specific
    /// first: the path, the path below its namespace root (sysfs messages say
    /// `/class/x`, sysctl ones `/kernel/x`), and the last component.
    fn keys(&self) -> Vec<String> {
        let mut keys = vec![self.name.clone()];
        for root in ["/sys/kernel/debug", "/proc/sys", "/sys", "/proc", "/dev"] {
            if let Some(rest) = self.name.strip_prefix(root) {
                if rest.starts_with('/') && rest.len() > 1 {
                    keys.push(rest.to_string());
                }
            }
        }
        if let Some(last) = self.name.rsplit(['/', ' ']).next().filter(|l| l.len() >= 4) {
            keys.push(last.to_string());
        }
        keys.dedup();
        keys
    }

    pub fn attribution(&self) -> String {
        format!("left behind by {} in cycle {}", self.by, self.cycle)
    }
}

/// A module image that is gone, and the load that had put it there.
#[derive(Debug, Clone)]
struct Gone {
    range: ModuleRange,
    /// Section name to address, read after the load (for symbols).
    sections: BTreeMap<String, u64>,
    cycle: u32,
}

#[derive(Default)]
pub struct Ledger {
    pub leftovers: Vec<Leftover>,
    gone: Vec<Gone>,
    /// Image and sections of each loaded module, read after its load.
    images: BTreeMap<String, (ModuleRange, BTreeMap<String, u64>)>,
}

impl Ledger {
    /// Remember where a freshly loaded module lies (from the snapshot after
    /// its load) and where its sections are.
    /// A reload replaces the image: the old one is gone as of `cycle`.
    pub fn loaded(
        &mut self,
        module: &str,
        after: &Snapshot,
        sections: BTreeMap<String, u64>,
        cycle: u32,
    ) {
        if let Some(range) = after.module_ranges.iter().find(|r| r.module == module) {
            let old = self
                .images
                .insert(module.to_string(), (range.clone(), sections));
            if let Some((old, sections)) = old.filter(|(old, _)| old != range) {
                self.gone.push(Gone {
                    range: old,
                    sections,
                    cycle,
                });
            }
        }
    }

    /// `module`'s image is gone (its unload returned, or the guest died in
    /// it): from now on, code running there is use after unload.
    pub fn removed(&mut self, module: &str, cycle: u32) {
        if let Some((range, sections)) = self.images.remove(module) {
            self.gone.push(Gone {
                range,
                sections,
                cycle,
            });
        }
    }

    /// Whether `module`'s latest image is gone (and not loaded again since).
    pub fn is_gone(&self, module: &str) -> bool {
        !self.images.contains_key(module) && self.gone.iter().any(|g| g.range.module == module)
    }

    /// `module` was unloaded (or failed to load) in `cycle`: what appeared
    /// since `before` (the snapshot before its load) and is still in `after`
    /// is left behind. Returns one finding per namespace.
    pub fn unloaded(
        &mut self,
        module: &str,
        before: &Snapshot,
        after: &Snapshot,
        by: &str,
        cycle: u32,
    ) -> Vec<Finding> {
        if !after.modules.iter().any(|m| m == module) {
            self.removed(module, cycle);
        }
        let mut findings = Vec::new();
        let caches = after.slab.appeared_since(&before.slab);
        let slabs: Vec<String> = caches
            .iter()
            .map(|c| match c.active_objects {
                Some(n) => format!("{} ({n} objects)", c.name),
                None => c.name.clone(),
            })
            .collect();
        let names: Vec<String> = caches.iter().map(|c| c.name.clone()).collect();
        if !names.is_empty() {
            findings.push(self.leak_finding(
                FindingKind::LEAKED_SLAB_CACHE,
                "slab caches",
                "/sys/kernel/slab",
                names,
                &slabs,
                (module, by, cycle),
            ));
        }
        for (ns, names) in after
            .namespaces
            .appeared_since(&before.namespaces, &after.modules)
        {
            let listed = names.clone();
            let mut finding = self.leak_finding(
                FindingKind::Leaked(ns),
                ns.describe(),
                ns.source(),
                names,
                &listed,
                (module, by, cycle),
            );
            if after.namespaces.truncated.contains(&ns) {
                finding
                    .report
                    .push_str("(the listing was cut at its size limit: more may be missing)\n");
            }
            findings.push(finding);
        }
        findings
    }

    /// `devices` left `driver` in `cycle` (unbind, hot-unplug) while its module stays loaded:
    /// what their probe set up must be gone. Per-device by nature are IRQ handlers and I/O
    /// regions (a driver claims them for a device) and any name containing a device's name
    /// (`debugfs/<driver>/0000:01:00.0`); of those, what appeared since `before` (the snapshot
    /// before the module's load) and is still in `after` was left behind by the remove.
    pub fn released(
        &mut self,
        driver: &str,
        devices: &[String],
        before: &Snapshot,
        after: &Snapshot,
        by: &str,
        cycle: u32,
    ) -> Vec<Finding> {
        let per_device = |ns: crate::snapshot::Namespace, name: &str| {
            matches!(
                ns,
                crate::snapshot::Namespace::Irq | crate::snapshot::Namespace::IoRegion
            ) || devices.iter().any(|d| name.contains(d.as_str()))
        };
        let mut findings = Vec::new();
        for (ns, names) in after
            .namespaces
            .appeared_since(&before.namespaces, &after.modules)
        {
            let names: Vec<String> = names.into_iter().filter(|n| per_device(ns, n)).collect();
            if names.is_empty() {
                continue;
            }
            let listed = names.clone();
            findings.push(self.leak_finding(
                FindingKind::Leaked(ns),
                ns.describe(),
                ns.source(),
                names,
                &listed,
                (driver, by, cycle),
            ));
        }
        findings
    }

    fn leak_finding(
        &mut self,
        kind: FindingKind,
        what: &str,
        source: &str,
        names: Vec<String>,
        listed: &[String],
        (module, by, cycle): (&str, &str, u32),
    ) -> Finding {
        let tops = top_level(&names);
        let mut title = format!(
            "{what} left after {by} of {module}: {}",
            tops.iter()
                .take(MAX_TITLED)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        if tops.len() > MAX_TITLED {
            title.push_str(&format!(" (+{} more)", tops.len() - MAX_TITLED));
        }
        let mut report =
            format!("Present in {source} after the {by} of {module} but not before its load:\n");
        for name in listed.iter().take(MAX_LISTED) {
            report.push_str(&format!("  {name}\n"));
        }
        if listed.len() > MAX_LISTED {
            report.push_str(&format!("  … and {} more\n", listed.len() - MAX_LISTED));
        }
        let leftover = |name: String| Leftover {
            kind: kind.clone(),
            name,
            module: module.to_string(),
            cycle,
            by: by.to_string(),
        };
        self.leftovers.extend(names.into_iter().map(leftover));
        Finding {
            kind,
            title,
            severity: Severity::Fail,
            report,
            attribution: Some(format!("left behind by {by} in cycle {cycle}")),
            known_issue: None,
        }
    }

    /// The leftover a report is about: the one whose most specific key it
    /// names (longest match wins, latest on a tie).
    pub fn blame(&self, text: &str) -> Option<&Leftover> {
        let mut best: Option<(usize, &Leftover)> = None;
        for leftover in &self.leftovers {
            if let Some(key) = leftover
                .keys()
                .into_iter()
                .find(|k| text.contains(k.as_str()))
            {
                if best.is_none_or(|(len, _)| key.len() >= len) {
                    best = Some((key.len(), leftover));
                }
            }
        }
        best.map(|(_, l)| l)
    }

    /// Latest leftover of `module`, for failures that name nothing (a load
    /// that fails with -EEXIST after its unload left things behind).
    pub fn latest_of(&self, module: &str) -> Option<&Leftover> {
        self.leftovers.iter().rev().find(|l| l.module == module)
    }

    /// Name the addresses of gone modules in a finding (kmemleak backtraces,
    /// oopses): `0xffffffffc0201040` in the title becomes the function, and
    /// the report gets the table.
    pub fn annotate(&self, finding: &mut Finding, symbols: &dyn Symbolizer) {
        let mut table = Vec::new();
        for address in kernel_addresses(&format!("{}\n{}", finding.title, finding.report)) {
            let Some(gone) = self.gone.iter().rev().find(|g| g.range.contains(address)) else {
                continue;
            };
            let module = &gone.range.module;
            let name = match symbols.symbolize(module, &gone.sections, address) {
                Some(sym) => format!("{module}:{sym}"),
                None => format!("{module}+{:#x}", address - gone.range.start),
            };
            finding.title = finding.title.replace(&format!("{address:#x}"), &name);
            table.push(format!("  {address:#x} = {name}"));
        }
        if !table.is_empty() {
            finding.report.push_str(&format!(
                "Addresses in unloaded modules (from their .ko):\n{}\n",
                table.join("\n")
            ));
        }
    }

    /// If `finding`'s addresses lie in a module image that is gone (and not
    /// in a module loaded now), the finding that says so: code of that module
    /// ran after its unload.
    pub fn use_after_unload(
        &self,
        finding: &Finding,
        loaded: &[ModuleRange],
        symbols: &dyn Symbolizer,
    ) -> Option<Finding> {
        let text = format!("{}\n{}", finding.title, finding.report);
        let addresses = kernel_addresses(&text);
        // The image from /proc/modules is the module's text; its data and read-only data
        // (6.4+ allocates them apart) are known from its sections and the .ko.
        let owns = |g: &Gone, a: u64| {
            g.range.contains(a) || symbols.symbolize(&g.range.module, &g.sections, a).is_some()
        };
        let (gone, address) = addresses.iter().find_map(|&a| {
            // `loaded` may predate an unload that just returned (a crash in its collect).
            if loaded
                .iter()
                .any(|r| r.contains(a) && !self.is_gone(&r.module))
            {
                return None;
            }
            self.gone.iter().rev().find(|g| owns(g, a)).map(|g| (g, a))
        })?;
        let module = &gone.range.module;
        let name = symbols
            .symbolize(module, &gone.sections, address)
            .map(|s| format!("{module}:{s}"))
            .unwrap_or_else(|| format!("{module}+{:#x}", address - gone.range.start));
        let frames: Vec<String> = addresses
            .iter()
            .filter(|&&a| owns(gone, a))
            .map(|&a| {
                let sym = symbols
                    .symbolize(module, &gone.sections, a)
                    .unwrap_or_else(|| format!("{module}+{:#x}", a - gone.range.start));
                format!("  {a:#x} {sym}")
            })
            .collect();
        Some(Finding {
            kind: FindingKind::USE_AFTER_UNLOAD,
            title: format!("{module} image used after its unload: {name}"),
            severity: Severity::Fail,
            report: format!(
                "{} ({}) hit addresses of {module}, which was unloaded in cycle {} \
                 (its image was {:#x}..{:#x}):\n{}\nA timer, work item, thread or callback \
                 (or the object holding it), or a name or table the kernel still points to, \
                 that the exit path did not cancel or unregister.\n",
                finding.title,
                finding.kind,
                gone.cycle,
                gone.range.start,
                gone.range.start + gone.range.size,
                frames.join("\n")
            ),
            // Data a name or table points to, named by its section when no symbol covers it.
            attribution: Some(if !name.contains(":[.") || name.contains(":[.text") {
                format!("callback left armed by unload in cycle {}", gone.cycle)
            } else {
                format!(
                    "pointer into its data left registered by unload in cycle {}",
                    gone.cycle
                )
            }),
            known_issue: None,
        })
    }
}

/// Devices whose probe failed in `log`, by driver: the driver core's
/// `<bus> <dev>: probe with driver <drv> failed with error <n>` (5.x+) and
/// `<drv> <dev>: probe of <dev> failed with error <n>` / `<drv>: probe of <dev> failed…` (older).
/// A failed probe must release what it claimed, like a remove.
pub fn failed_probes(log: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in log.lines() {
        let found = if let Some((head, tail)) = line.split_once(": probe with driver ") {
            let device = head.rsplit(' ').next().unwrap_or_default();
            let driver = tail.split_whitespace().next().unwrap_or_default();
            (device, driver)
        } else if let Some((head, tail)) = line.split_once(": probe of ") {
            let device = tail.split_whitespace().next().unwrap_or_default();
            let mut words = head.rsplit(' ');
            let last = words.next().unwrap_or_default();
            // `<drv> <dev>: probe of` or `<drv>: probe of`
            let driver = if last == device {
                words.next().unwrap_or_default()
            } else {
                last
            };
            (device, driver)
        } else {
            continue;
        };
        if !line.contains(" failed with error ") || found.0.is_empty() || found.1.is_empty() {
            continue;
        }
        let devices = out.entry(found.1.replace('-', "_")).or_default();
        if !devices.iter().any(|d| d == found.0) {
            devices.push(found.0.to_string());
        }
    }
    out
}

/// Names without those under another listed name (`/sys/class/x/y` under
/// `/sys/class/x`), for titles.
fn top_level(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            !names
                .iter()
                .any(|p| p != *n && n.starts_with(p.as_str()) && n[p.len()..].starts_with('/'))
        })
        .cloned()
        .collect()
}

/// Kernel-half addresses in a report (x86-64: 0xffff8…), as hex words with
/// or without `0x`, e.g. `RIP: 0010:0xffffffffc0201040`, `address: ffffffffc0201040`.
pub fn kernel_addresses(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for word in text.split(|c: char| !c.is_ascii_hexdigit() && c != 'x') {
        let hex = word.strip_prefix("0x").unwrap_or(word);
        if hex.len() == 16 && hex.starts_with("ffff") {
            if let Ok(a) = u64::from_str_radix(hex, 16) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// `/sys/module/<m>/sections/<name> <address>` lines, as the collect
/// command prints them after a load.
pub fn parse_sections(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (path, value) = line.trim().rsplit_once(' ')?;
            let name = path.rsplit('/').next()?;
            let address = u64::from_str_radix(value.trim().trim_start_matches("0x"), 16).ok()?;
            Some((name.to_string(), address))
        })
        .collect()
}

/// The shell that prints a module's sections (root only can read them).
/// `read`, a builtin: `$(cat ...)` forked and exec'd per section, 46 ms a
/// load step under TCG against 3 ms.
pub fn sections_command(module: &str) -> String {
    format!(
        "for f in /sys/module/{module}/sections/.text* /sys/module/{module}/sections/.exit.text \
         /sys/module/{module}/sections/.rodata* \
         /sys/module/{module}/sections/.data /sys/module/{module}/sections/.bss; do \
         [ -r \"$f\" ] && read -r a < \"$f\" && echo \"$f $a\"; done 2>/dev/null"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::NoSymbols;

    fn snapshot(text: &str) -> Snapshot {
        Snapshot::parse(text)
    }

    #[test]
    fn leftovers_per_namespace_charged_to_their_cycle() {
        let before = snapshot("@@modules\n@@sysfs\n/sys/class/misc\n@@sysctl\n/proc/sys/kernel\n");
        let after = snapshot(
            "@@modules\n@@sysfs\n/sys/class/misc\n/sys/class/kcycle_leaks\n/sys/class/kcycle_leaks/kcycle_leaks0\n\
             @@sysctl\n/proc/sys/kernel\n/proc/sys/kcycle\n/proc/sys/kcycle/kcycle_leaks\n/proc/sys/kcycle/kcycle_leaks/value\n",
        );
        let mut ledger = Ledger::default();
        let found = ledger.unloaded("kcycle_leaks", &before, &after, "unload", 2);
        let kinds: Vec<&str> = found.iter().map(|f| f.kind.name()).collect();
        assert_eq!(kinds, ["leaked-sysfs-entry", "leaked-sysctl"]);
        assert_eq!(
            found[0].title,
            "sysfs entries left after unload of kcycle_leaks: /sys/class/kcycle_leaks"
        );
        assert_eq!(
            found[1].attribution.as_deref(),
            Some("left behind by unload in cycle 2")
        );

        // The next load's complaint names the leftover in the kernel's own spelling.
        let dup = "sysctl duplicate entry: /kcycle/kcycle_leaks/value";
        assert_eq!(
            ledger.blame(dup).unwrap().name,
            "/proc/sys/kcycle/kcycle_leaks/value"
        );
        let sysfs = "sysfs: cannot create duplicate filename '/class/kcycle_leaks'";
        assert_eq!(ledger.blame(sysfs).unwrap().name, "/sys/class/kcycle_leaks");
        assert!(ledger.blame("WARNING in something_else").is_none());
    }

    #[test]
    fn code_running_in_a_gone_module_is_charged_to_its_unload() {
        let loaded = snapshot("@@modules\nkcycle_leaks 24576 0 - Live 0xffffffffc0201000 (O)\n");
        let after = snapshot("@@modules\n");
        let mut ledger = Ledger::default();
        let sections =
            parse_sections("/sys/module/kcycle_leaks/sections/.text 0xffffffffc0201000\n");
        ledger.loaded("kcycle_leaks", &loaded, sections, 3);
        assert!(ledger
            .unloaded("kcycle_leaks", &after, &after, "unload", 3)
            .is_empty());
        let oops = Finding {
            kind: "oops".into(),
            title: "BUG: unable to handle page fault for address: ffffffffc0201040".into(),
            severity: Severity::Fail,
            report:
                "RIP: 0010:0xffffffffc0201040\nModules linked in: [last unloaded: kcycle_leaks]\n"
                    .into(),
            attribution: None,
            known_issue: None,
        };
        let uaf = ledger.use_after_unload(&oops, &[], &NoSymbols).unwrap();
        assert_eq!(uaf.kind, FindingKind::USE_AFTER_UNLOAD);
        assert_eq!(
            uaf.title,
            "kcycle_leaks image used after its unload: kcycle_leaks+0x40"
        );
        assert_eq!(
            uaf.attribution.as_deref(),
            Some("callback left armed by unload in cycle 3")
        );
        // The same address in a module loaded there now is that module's business.
        let reloaded = ModuleRange {
            module: "other".into(),
            start: 0xffffffffc0201000,
            size: 4096,
        };
        assert!(ledger
            .use_after_unload(&oops, &[reloaded], &NoSymbols)
            .is_none());
        // A snapshot from before the unload still lists the gone module: not a reason to
        // look away (a crash in the unload's own collect).
        let stale = loaded.module_ranges.clone();
        assert!(ledger.use_after_unload(&oops, &stale, &NoSymbols).is_some());
    }

    #[test]
    fn failed_probes_are_read_in_every_wording() {
        let log = "[   15.97] rust_i915_table 0000:01:00.0: probe with driver rust_i915_table failed with error -12\n\
                   [   16.00] e1000e 0000:00:19.0: probe of 0000:00:19.0 failed with error -5\n\
                   <3>[ 2.1] my-drv: probe of spi0.1 failed with error -22\n\
                   [   17.00] rust_i915_table 0000:01:00.0: probed\n";
        let found = failed_probes(log);
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            [
                ("e1000e".to_string(), vec!["0000:00:19.0".to_string()]),
                ("my_drv".to_string(), vec!["spi0.1".to_string()]),
                (
                    "rust_i915_table".to_string(),
                    vec!["0000:01:00.0".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn addresses_in_reports() {
        assert_eq!(
            kernel_addresses(
                "RIP: 0010:0xffffffffc0201040 Code: ffff8880 address: ffffffffc0201041,"
            ),
            [0xffffffffc0201040, 0xffffffffc0201041]
        );
    }
}
