//! Fragment verification against the real Linux 6.12 Kconfig files: a
//! dropped option is named with the dependency that dropped it.
//!
//! Reads the Kconfig files straight from Debian's linux-source-6.12 tarball
//! (or `KCYCLE_KERNEL_SRC`), so it does not need a built kernel.

use std::path::{Path, PathBuf};
use std::process::Command;

use kcycle::kernel::config::DotConfig;
use kcycle::kernel::kconfig::{Explanation, KconfigFiles};
use kcycle::kernel::source::DEBIAN_TARBALL;

fn kconfig_tree() -> Option<(tempfile::TempDir, PathBuf)> {
    let scratch = tempfile::tempdir().unwrap();
    if let Some(src) = std::env::var_os("KCYCLE_KERNEL_SRC") {
        return Some((scratch, PathBuf::from(src)));
    }
    if !Path::new(DEBIAN_TARBALL).exists() {
        return None;
    }
    let status = Command::new("tar")
        .arg("-xJf")
        .arg(DEBIAN_TARBALL)
        .arg("-C")
        .arg(scratch.path())
        .args(["--strip-components=1", "--wildcards", "*Kconfig*"])
        .status()
        .unwrap();
    assert!(status.success(), "tar failed: {status}");
    let tree = scratch.path().to_path_buf();
    Some((scratch, tree))
}

#[test]
fn selftest_option_dropped_without_expert_names_the_menu_dependency() {
    let Some((_scratch, tree)) = kconfig_tree() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{DEBIAN_TARBALL} is missing: run `kcycle setup` (CI must have it)"
        );
        eprintln!("skipping: {DEBIAN_TARBALL} is missing (run `kcycle setup`)");
        return;
    };
    let files = KconfigFiles::load(&tree, "x86").unwrap();
    // What x86_64_defconfig + our fragments gave before CONFIG_EXPERT=y was added.
    let config = DotConfig::parse(
        "CONFIG_X86=y\nCONFIG_HAS_IOMEM=y\nCONFIG_PCI=y\nCONFIG_DRM=y\nCONFIG_DRM_I915=m\n# CONFIG_EXPERT is not set\n",
    );
    let Explanation::Unmet(unmet) = files.explain("DRM_I915_SELFTEST", &config) else {
        panic!("expected an unmet dependency");
    };
    let (condition, symbols) = &unmet[0];
    assert_eq!(condition.expr, "EXPERT");
    assert_eq!(condition.from, "menu \"drm/i915 Debugging\"");
    assert!(
        condition.at.starts_with("drivers/gpu/drm/i915/Kconfig:"),
        "{condition:?}"
    );
    assert_eq!(symbols, &["EXPERT".to_string()]);

    assert_eq!(files.explain("FOO_TYPO", &config), Explanation::Unknown);

    let with_expert = DotConfig::parse(
        "CONFIG_X86=y\nCONFIG_HAS_IOMEM=y\nCONFIG_PCI=y\nCONFIG_DRM=y\nCONFIG_DRM_I915=m\nCONFIG_EXPERT=y\n",
    );
    let explained = files.explain("DRM_I915_SELFTEST", &with_expert);
    assert!(
        matches!(explained, Explanation::Undetermined { .. }),
        "{explained:?}"
    );
}
