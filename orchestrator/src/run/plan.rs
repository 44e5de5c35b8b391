//! Checks on a plan before any guest boots (pure): every module a suite
//! names exists in the kernel (or was given with `--module`); that every
//! control expects a known finding kind is checked when the suite parses. Whether a passthrough
//! suite's GPU can be had is the passthrough preflight's question.

use crate::kernel::KernelModules;
use crate::suite::Suite;

use super::command::{canonical, ModuleSources};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("suite {suite}: module `{module}` is not in the kernel's modules.dep (nor given with --module){hint}")]
    UnknownModule {
        suite: String,
        module: String,
        hint: String,
    },
    #[error("suite {suite}: module `{module}` is built into the kernel, so it cannot be loaded or unloaded; build it as a module (=m)")]
    BuiltinModule { suite: String, module: String },
}

pub fn check(
    suites: &[Suite],
    kernel: &KernelModules,
    sources: &ModuleSources,
) -> Result<(), PlanError> {
    for suite in suites {
        for module in suite.modules() {
            let name = canonical(module);
            if sources.files.contains_key(&name) || kernel.loadable.contains(&name) {
                continue;
            }
            if kernel.builtin.contains(&name) {
                return Err(PlanError::BuiltinModule {
                    suite: suite.name.clone(),
                    module: module.into(),
                });
            }
            return Err(PlanError::UnknownModule {
                suite: suite.name.clone(),
                module: module.into(),
                hint: similar(&name, kernel),
            });
        }
    }
    Ok(())
}

/// Modules whose names share a prefix with `name`, to catch typos.
fn similar(name: &str, kernel: &KernelModules) -> String {
    let prefix: String = name.chars().take(4).collect();
    let close: Vec<&str> = kernel
        .loadable
        .iter()
        .filter(|m| m.starts_with(&prefix))
        .take(5)
        .map(String::as_str)
        .collect();
    if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", close.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn suite(text: &str) -> Suite {
        Suite::parse(Path::new("suites/p.toml"), text).unwrap()
    }

    fn kernel() -> KernelModules {
        KernelModules::parse(
            "kernel/i915.ko:\nextra/rust_i915_table.ko:\nextra/kcycle_leaks.ko:\n",
            "kernel/8250.ko\n",
        )
    }

    #[test]
    fn modules_must_exist_and_be_loadable() {
        let ok = suite("[[test]]\nname = \"t\"\nsteps = [{ load = \"i915\" }]");
        check(&[ok], &kernel(), &ModuleSources::default()).unwrap();

        let typo = suite("[[test]]\nname = \"t\"\nsteps = [{ load = \"rust_i915_tabel\" }]");
        let err = check(
            std::slice::from_ref(&typo),
            &kernel(),
            &ModuleSources::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`rust_i915_tabel` is not in the kernel's modules.dep"),
            "{err}"
        );
        assert!(err.contains("did you mean rust_i915_table?"), "{err}");

        let mut sources = ModuleSources::default();
        sources
            .files
            .insert("rust_i915_tabel".into(), "/tmp/x.ko".into());
        check(&[typo], &kernel(), &sources).unwrap();

        let builtin = suite("[[test]]\nname = \"t\"\nsteps = [{ unload = \"8250\" }]");
        assert!(matches!(
            check(&[builtin], &kernel(), &ModuleSources::default()),
            Err(PlanError::BuiltinModule { .. })
        ));
    }

    #[test]
    fn shipped_suites_pass_the_checks() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
        let kernel = KernelModules::parse(
            "kernel/i915.ko:\nextra/rust_i915_table.ko:\nextra/kcycle_leaks.ko:\nkernel/samples/rust/rust_minimal.ko:\nkernel/lib/list-test.ko:\n",
            "",
        );
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let suite = Suite::load(&path).unwrap();
                check(&[suite], &kernel, &ModuleSources::default())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
}
