//! The tools a Rust-enabled kernel build needs: which rustc and bindgen to
//! use, their versions (part of the cache key), and what `make rustavailable`
//! said, turned into an error that says what to install.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::sys::child;

/// Debian's rustc-web installs the compiler the kernel was tested with here;
/// rustup's `rustc` usually comes first on PATH, so it is named explicitly.
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolchainError {
    #[error("failed to find a Rust toolchain for the kernel: {detail}; {hint}")]
    RustUnavailable { detail: String, hint: String },
}

/// Resolved tool paths and the PATH children run with.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub rustc: PathBuf,
    /// `None` when bindgen is nowhere to be found; `make rustavailable` then says so.
    pub bindgen: Option<PathBuf>,
    /// PATH for make: the caller's, plus `~/.cargo/bin` where `cargo install` puts bindgen.
    pub path: OsString,
}

impl Toolchain {
    /// `KCYCLE_RUSTC`, else Debian's `/usr/bin/rustc`, else `rustc` from PATH.
    pub fn discover() -> Self {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let cargo_bin = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .map(|p| p.join("bin"));
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        if let Some(cargo_bin) = &cargo_bin {
            if !dirs.contains(cargo_bin) {
                dirs.push(cargo_bin.clone());
            }
        }
        let rustc = std::env::var_os("KCYCLE_RUSTC")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from(DEBIAN_RUSTC)).filter(|p| p.exists()))
            .or_else(|| find_in(&dirs, "rustc"))
            .unwrap_or_else(|| PathBuf::from("rustc"));
        let bindgen = find_in(&dirs, "bindgen");
        Toolchain {
            rustc,
            bindgen,
            path: std::env::join_paths(&dirs).unwrap_or(path),
        }
    }

    /// `--version` of every tool that goes into the kernel; a missing tool reads `missing`.
    pub fn versions(&self) -> BTreeMap<String, String> {
        let mut versions = BTreeMap::new();
        let mut probe = |name: &str, program: &Path| {
            let version = child::capture(
                Command::new(program)
                    .arg("--version")
                    .env("PATH", &self.path),
                Duration::from_secs(20),
            )
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| out.text().lines().next().map(str::to_string))
            .unwrap_or_else(|| "missing".into());
            versions.insert(name.to_string(), version);
        };
        probe("rustc", &self.rustc);
        probe(
            "bindgen",
            self.bindgen.as_deref().unwrap_or(Path::new("bindgen")),
        );
        probe("clang", Path::new("clang"));
        probe("ld.lld", Path::new("ld.lld"));
        versions
    }

    /// make variables that select this toolchain.
    pub fn make_vars(&self) -> Vec<String> {
        let mut vars = vec![
            "LLVM=1".to_string(),
            format!("RUSTC={}", self.rustc.display()),
        ];
        if let Some(bindgen) = &self.bindgen {
            vars.push(format!("BINDGEN={}", bindgen.display()));
        }
        vars
    }
}

fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Interpret `make rustavailable`: its script prints `***` lines explaining
/// what is wrong; keep those and add what to install.
pub fn rust_available(output: &str, success: bool) -> Result<(), ToolchainError> {
    if success && output.contains("Rust is available!") {
        return Ok(());
    }
    let detail: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("***"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let detail = if detail.is_empty() {
        output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("`make rustavailable` failed without a message")
            .trim()
            .to_string()
    } else {
        detail.join(" ")
    };
    let lower = detail.to_lowercase();
    let hint = if lower.contains("bindgen") && lower.contains("libclang") {
        "install libclang-dev (`kcycle setup`)"
    } else if lower.contains("bindgen") {
        "run `kcycle setup` (it runs `cargo install --locked bindgen-cli` into ~/.cargo/bin)"
    } else if lower.contains("standard library") || lower.contains("source code") {
        "install rust-web-src of the same version as rustc-web (`kcycle setup`)"
    } else if lower.contains("rust compiler") || lower.contains("rustc") {
        "install Debian's rustc-web 1.85 (`kcycle setup`); kcycle uses /usr/bin/rustc, or KCYCLE_RUSTC"
    } else {
        "run `kcycle setup --check` to see which host packages are missing"
    };
    Err(ToolchainError::RustUnavailable {
        detail,
        hint: hint.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_when_the_script_says_so() {
        assert_eq!(
            rust_available("make[1]: Entering\nRust is available!\n", true),
            Ok(())
        );
    }

    #[test]
    fn missing_bindgen_points_at_setup() {
        let out = "***\n*** Rust bindings generator 'bindgen' could not be found.\n***\n";
        let err = rust_available(out, false).unwrap_err().to_string();
        assert!(
            err.contains("Rust bindings generator 'bindgen' could not be found"),
            "{err}"
        );
        assert!(err.contains("cargo install --locked bindgen-cli"), "{err}");
    }

    #[test]
    fn missing_core_source_points_at_rust_web_src() {
        let out = "***\n*** Source code for the 'core' standard library could not be found\n\
                   *** at '/usr/lib/rustlib/src/rust/library/core/src/lib.rs'.\n***\n";
        let err = rust_available(out, false).unwrap_err().to_string();
        assert!(err.contains("rust-web-src"), "{err}");
        assert!(err.contains("/usr/lib/rustlib/src"), "{err}");
    }

    #[test]
    fn missing_compiler_points_at_rustc_web() {
        let out = "***\n*** Rust compiler '/usr/bin/rustc' could not be found.\n***\n";
        let err = rust_available(out, false).unwrap_err().to_string();
        assert!(err.contains("rustc-web"), "{err}");
    }

    #[test]
    fn silent_failure_keeps_the_last_line() {
        let err = rust_available("make: *** No rule to make target\n", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("No rule to make target"), "{err}");
    }
}
