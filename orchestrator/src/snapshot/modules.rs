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

#[cfg(test)]
mod tests {
    #[test]
    fn names_only() {
        let text = "i915 4194304 0 - Live 0x0\ndrm_buddy 20480 1 i915, Live 0x0\n\n";
        assert_eq!(super::loaded_modules(text), ["i915", "drm_buddy"]);
    }
}
