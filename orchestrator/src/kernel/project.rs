//! The kcycle project as the kernel build sees it: where fragments, patches
//! and external modules live, and reading them into build inputs.

use std::path::{Path, PathBuf};

use super::config::{self, Requested};
use super::error::BuildError;
use super::external::ModuleSource;
use super::patches::{self, Patch};
use super::profile::Profile;
use super::progress::BuildEvent;

/// The kcycle project: where fragments, patches and the Rust module live.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
}

impl Project {
    /// `KCYCLE_ROOT`, else the nearest ancestor of the current directory with
    /// `guest-kernel/configs`, else the clone this binary was built from.
    pub fn discover() -> Result<Self, BuildError> {
        let is_project = |p: &Path| p.join("guest-kernel/configs").is_dir();
        if let Some(root) = std::env::var_os("KCYCLE_ROOT").map(PathBuf::from) {
            return if is_project(&root) {
                Ok(Project { root })
            } else {
                Err(BuildError::NoProject)
            };
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        cwd.ancestors()
            .find(|p| is_project(p))
            .map(Path::to_path_buf)
            .or_else(|| is_project(&built_from).then_some(built_from))
            .map(|root| Project { root })
            .ok_or(BuildError::NoProject)
    }

    pub fn configs_dir(&self) -> PathBuf {
        self.root.join("guest-kernel/configs")
    }

    pub fn patches_dir(&self) -> PathBuf {
        self.root.join("guest-kernel/patches")
    }

    /// The external modules kcycle always builds.
    pub fn default_modules(&self) -> Vec<PathBuf> {
        vec![
            self.root.join("guest-kernel/rust_i915_table"),
            self.root.join("guest-kernel/kcycle_leaks"),
        ]
    }
}

/// Everything a build reads from the project, read once: the same bytes go
/// into the cache key and into the build.
pub struct Inputs {
    /// The base config the fragments go onto.
    pub profile: Profile,
    /// Config fragments in merge order: (path, contents).
    pub fragments: Vec<(PathBuf, Vec<u8>)>,
    /// The options they request, last request per symbol winning.
    pub requested: Vec<Requested>,
    pub patches: Vec<Patch>,
    /// External modules that can be built (others were skipped with a warning).
    pub modules: Vec<ModuleSource>,
}

/// Fragments (the profile's base, the project's, then `extra_fragments`),
/// patches and the buildable ones of `external_modules`;
/// skipped modules are told to `observe`.
pub fn read_inputs(
    project: &Project,
    profile: Profile,
    extra_fragments: &[PathBuf],
    external_modules: &[PathBuf],
    observe: &mut dyn FnMut(BuildEvent),
) -> Result<Inputs, BuildError> {
    let dir = project.configs_dir();
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io {
            what: "read",
            path,
            source,
        }
    };
    let mut fragments = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(read_err(&dir))? {
        let path = entry.map_err(read_err(&dir))?.path();
        if path.extension().is_some_and(|e| e == "config") {
            let bytes = std::fs::read(&path).map_err(read_err(&path))?;
            fragments.push((path, bytes));
        }
    }
    fragments.sort();
    if fragments.is_empty() {
        return Err(BuildError::NoFragments { dir });
    }
    if let Some(base) = profile.base_fragment(&project.root) {
        let bytes = std::fs::read(&base).map_err(read_err(&base))?;
        fragments.insert(0, (base, bytes));
    }
    for path in extra_fragments {
        let bytes = std::fs::read(path).map_err(read_err(path))?;
        fragments.push((path.clone(), bytes));
    }
    let mut requested = Vec::new();
    for (path, bytes) in &fragments {
        requested.extend(config::parse_fragment(
            path,
            &String::from_utf8_lossy(bytes),
        )?);
    }
    let patches = patches::load(&project.patches_dir())?;
    let mut modules = Vec::new();
    for dir in external_modules {
        if !dir.is_dir() {
            observe(BuildEvent::Note(format!(
                "warning: skipping external module {}: no such directory",
                dir.display()
            )));
            continue;
        }
        let module = ModuleSource::read(dir)?;
        if module.is_buildable() {
            modules.push(module);
        } else {
            observe(BuildEvent::Note(format!(
                "warning: skipping external module {}: it has no Kbuild or Makefile yet",
                dir.display()
            )));
        }
    }
    Ok(Inputs {
        profile,
        fragments,
        requested: config::effective(requested),
        patches,
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project with empty configs and patches dirs.
    fn fake_project() -> (tempfile::TempDir, Project) {
        let tmp = tempfile::tempdir().unwrap();
        let project = Project {
            root: tmp.path().to_path_buf(),
        };
        std::fs::create_dir_all(project.configs_dir()).unwrap();
        std::fs::create_dir_all(project.patches_dir()).unwrap();
        (tmp, project)
    }

    /// Each requested option as `NAME=value`.
    fn wanted(inputs: &Inputs) -> Vec<String> {
        inputs
            .requested
            .iter()
            .map(|r| format!("{}={}", r.name, r.value))
            .collect()
    }

    #[test]
    fn extra_fragments_merge_after_the_projects_and_win() {
        let (tmp, project) = fake_project();
        std::fs::write(
            project.configs_dir().join("10-a.config"),
            "CONFIG_A=y\nCONFIG_B=y\n",
        )
        .unwrap();
        let extra = tmp.path().join("bench.config");
        std::fs::write(&extra, "CONFIG_B=n\nCONFIG_C=m\n").unwrap();
        let inputs = read_inputs(
            &project,
            Profile::Full,
            std::slice::from_ref(&extra),
            &[],
            &mut |_| {},
        )
        .unwrap();
        let names: Vec<_> = inputs.fragments.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(names, [project.configs_dir().join("10-a.config"), extra]);
        let wanted = wanted(&inputs);
        assert!(wanted.contains(&"B=n".to_string()), "{wanted:?}");
        assert!(wanted.contains(&"C=m".to_string()), "{wanted:?}");

        let missing = tmp.path().join("nope.config");
        let error = read_inputs(&project, Profile::Full, &[missing], &[], &mut |_| {})
            .err()
            .unwrap();
        assert!(error.to_string().contains("nope.config"), "{error}");
    }

    #[test]
    fn the_minimal_profile_merges_its_base_fragment_first() {
        let (_tmp, project) = fake_project();
        std::fs::write(project.configs_dir().join("10-a.config"), "CONFIG_A=n\n").unwrap();
        let error = read_inputs(&project, Profile::Minimal, &[], &[], &mut |_| {})
            .err()
            .unwrap();
        assert!(error.to_string().contains("minimal.config"), "{error}");
        let base = Profile::Minimal.base_fragment(&project.root).unwrap();
        std::fs::create_dir_all(base.parent().unwrap()).unwrap();
        std::fs::write(&base, "CONFIG_A=y\nCONFIG_64BIT=y\n").unwrap();
        let inputs = read_inputs(&project, Profile::Minimal, &[], &[], &mut |_| {}).unwrap();
        assert_eq!(inputs.fragments[0].0, base);
        let wanted = wanted(&inputs);
        // The project's fragments still win over the base.
        assert!(wanted.contains(&"A=n".to_string()), "{wanted:?}");
        assert!(wanted.contains(&"64BIT=y".to_string()), "{wanted:?}");
    }
}
