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

/// " did you mean a, b?" for a module name the kernel does not have.
fn similar(name: &str, kernel: &KernelModules) -> String {
    let close = nearest(name, kernel.loadable.iter().map(String::as_str), 5);
    if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", close.join(", "))
    }
}

/// The names closest to `name` by edit distance (at most a third of its
/// length, at least 2), closest first, at most `count`: typo suggestions.
pub fn nearest<'a>(name: &str, names: impl Iterator<Item = &'a str>, count: usize) -> Vec<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    let mut close: Vec<(usize, &str)> = names
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .collect();
    close.sort();
    close.into_iter().take(count).map(|(_, n)| n).collect()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
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
    fn nearest_names_by_edit_distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("i915", "i915"), 0);
        let names = [
            "i915",
            "kcycle_leaks",
            "rust_i915_table",
            "rust_minimal",
            "e1000",
        ];
        assert_eq!(
            nearest("kcycle_laeks", names.iter().copied(), 5),
            ["kcycle_leaks"]
        );
        assert_eq!(nearest("i91", names.iter().copied(), 5), ["i915"]);
        assert_eq!(
            nearest("rust_i915_tabel", names.iter().copied(), 5),
            ["rust_i915_table"]
        );
        assert!(nearest("nvidia", names.iter().copied(), 5).is_empty());
        // Closest first, then by name.
        let ties = ["abcd", "abd", "abc", "x"];
        assert_eq!(nearest("abz", ties.iter().copied(), 2), ["abc", "abd"]);
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
