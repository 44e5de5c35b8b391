//! The kernel options virtme-ng needs, read from its own `--kconfig` source,
//! against a kernel's `.config` (pure).

/// The `CONFIG_X=y` items of virtme-ng's required list (`_GENERIC_CONFIG` in
/// virtme/commands/configkernel.py; `_GENERIC_CONFIG_OPTIONAL` and the
/// `=n` / "is not set" items are preferences, not needs).
pub fn vng_required(configkernel_py: &str) -> Vec<String> {
    let mut inside = false;
    let mut options = Vec::new();
    for line in configkernel_py.lines() {
        let line = line.trim();
        if line.starts_with("_GENERIC_CONFIG = [") {
            inside = true;
            continue;
        }
        if inside && line.starts_with(']') {
            break;
        }
        if !inside {
            continue;
        }
        let Some(item) = line.strip_prefix('"').and_then(|l| l.split('"').next()) else {
            continue;
        };
        if let Some(name) = item.strip_suffix("=y") {
            if name.starts_with("CONFIG_") {
                options.push(name.to_string());
            }
        }
    }
    options
}

/// The value of `option` in a `.config`: `y`, `m`, a string, or `None` when unset.
pub fn value<'a>(config: &'a str, option: &str) -> Option<&'a str> {
    config.lines().find_map(|line| {
        line.strip_prefix(option)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// Options of `required` that `config` does not build in (`=y`).
pub fn missing<'a>(config: &str, required: &'a [String]) -> Vec<&'a str> {
    required
        .iter()
        .filter(|o| value(config, o) != Some("y"))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PY: &str = r###"
_GENERIC_CONFIG = [
    "##: Generic",
    "CONFIG_UEVENT_HELPER=n",  # Obsolete and slow
    "CONFIG_VIRTIO=y",
    "CONFIG_OVERLAY_FS=y",
    "# CONFIG_USB is not set",
    "CONFIG_FUSE_FS=y",
]

_GENERIC_CONFIG_OPTIONAL = [
    "CONFIG_BPF=y",
]
"###;

    #[test]
    fn required_items_only() {
        assert_eq!(
            vng_required(PY),
            ["CONFIG_VIRTIO", "CONFIG_OVERLAY_FS", "CONFIG_FUSE_FS"]
        );
    }

    #[test]
    fn missing_against_a_config() {
        let config = "CONFIG_VIRTIO=y\n# CONFIG_OVERLAY_FS is not set\nCONFIG_FUSE_FS=m\nCONFIG_VIRTIO_PCI=y\n";
        let required = vng_required(PY);
        assert_eq!(
            missing(config, &required),
            ["CONFIG_OVERLAY_FS", "CONFIG_FUSE_FS"]
        );
        assert_eq!(value(config, "CONFIG_VIRTIO"), Some("y"));
        // A prefix of another option's name is not that option.
        assert_eq!(value(config, "CONFIG_VIRTIO_P"), None);
    }
}
