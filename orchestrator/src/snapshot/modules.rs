//! Loaded modules from /proc/modules.

/// Module names, in /proc/modules order (most recently loaded first).
pub fn loaded_modules(proc_modules: &str) -> Vec<String> {
    proc_modules
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .map(str::to_string)
        .collect()
}

/// Where a loaded module's core image lies (`/proc/modules`: size and base
/// address). After the module is gone, an address in this range is code or
/// data it left something pointing at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModuleRange {
    pub module: String,
    pub start: u64,
    pub size: u64,
}

impl ModuleRange {
    pub fn contains(&self, address: u64) -> bool {
        address >= self.start && address - self.start < self.size
    }
}

/// Ranges of the modules in `/proc/modules` that show a base address (root
/// sees them; others read 0x0, which is skipped).
pub fn module_ranges(proc_modules: &str) -> Vec<ModuleRange> {
    proc_modules
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let module = fields.first()?.to_string();
            let size = fields.get(1)?.parse().ok()?;
            let base = fields.iter().find_map(|f| f.strip_prefix("0x"))?;
            let start = u64::from_str_radix(base, 16).ok().filter(|&s| s != 0)?;
            Some(ModuleRange {
                module,
                start,
                size,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_from_proc_modules() {
        let text = "kcycle_leaks 24576 0 - Live 0xffffffffc0201000 (O)\nhidden 100 0 - Live 0x0000000000000000\n";
        let ranges = super::module_ranges(text);
        assert_eq!(ranges.len(), 1);
        assert!(ranges[0].contains(0xffffffffc0201000 + 24575));
        assert!(!ranges[0].contains(0xffffffffc0201000 + 24576));
    }

    #[test]
    fn names_only() {
        let text = "i915 4194304 0 - Live 0x0\ndrm_buddy 20480 1 i915, Live 0x0\n\n";
        assert_eq!(super::loaded_modules(text), ["i915", "drm_buddy"]);
    }
}
