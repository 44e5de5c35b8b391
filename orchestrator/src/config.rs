//! `kcycle.toml`: what `kcycle ci` (and so `just ci`) runs — kernel source,
//! suites, jobs, results directory. Strict like suite files.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::located::Located;

pub const DEFAULT_FILE: &str = "kcycle.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config {path} (create it, or pass --config FILE)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse config {0}")]
    Invalid(Located),
}

/// The main job's settings. Relative paths are relative to the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiConfig {
    /// A kernel tree to build instead of Debian's linux-source-6.12.
    pub kernel_source: Option<PathBuf>,
    pub suites: Vec<PathBuf>,
    pub jobs: usize,
    pub results: PathBuf,
    /// Only tests matching this glob.
    pub filter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    kernel: RawKernel,
    run: RawRun,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    source: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    suites: toml::Spanned<Vec<PathBuf>>,
    #[serde(default = "one")]
    jobs: toml::Spanned<usize>,
    #[serde(default = "results")]
    results: PathBuf,
    filter: Option<String>,
}

fn one() -> toml::Spanned<usize> {
    toml::Spanned::new(0..0, 1)
}

fn results() -> PathBuf {
    PathBuf::from("results")
}

impl CiConfig {
    pub fn load(path: &Path) -> Result<CiConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        CiConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<CiConfig, ConfigError> {
        let invalid =
            |span, message: String| ConfigError::Invalid(Located::new(path, text, span, message));
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| invalid(e.span(), e.message().trim().to_string()))?;
        if raw.run.suites.get_ref().is_empty() {
            return Err(invalid(
                Some(raw.run.suites.span()),
                "field `run.suites` is empty: list at least one suite file".into(),
            ));
        }
        if *raw.run.jobs.get_ref() == 0 {
            return Err(invalid(
                Some(raw.run.jobs.span()),
                "field `run.jobs` must be at least 1".into(),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(CiConfig {
            kernel_source: raw.kernel.source.map(|p| base.join(p)),
            suites: raw
                .run
                .suites
                .into_inner()
                .into_iter()
                .map(|p| base.join(p))
                .collect(),
            jobs: raw.run.jobs.into_inner(),
            results: base.join(raw.run.results),
            filter: raw.run.filter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_relative_to_the_file() {
        let config = CiConfig::parse(
            Path::new("/repo/kcycle.toml"),
            "[run]\nsuites = [\"suites/smoke.toml\"]\n",
        )
        .unwrap();
        assert_eq!(config.suites, [PathBuf::from("/repo/suites/smoke.toml")]);
        assert_eq!(config.jobs, 1);
        assert_eq!(config.results, PathBuf::from("/repo/results"));
        assert_eq!(config.kernel_source, None);
    }

    #[test]
    fn mistakes_are_located() {
        for (text, expected) in [
            (
                "[run]\nsuites = []\n",
                "kcycle.toml:2:10: field `run.suites` is empty",
            ),
            (
                "[run]\nsuites = [\"a\"]\njobs = 0\n",
                "kcycle.toml:3:8: field `run.jobs` must be at least 1",
            ),
            (
                "[run]\nsuites = [\"a\"]\njbos = 2\n",
                "kcycle.toml:3:1: unknown field `jbos`",
            ),
            ("[kernel]\nsource = \"x\"\n", "missing field `run`"),
        ] {
            let err = CiConfig::parse(Path::new("kcycle.toml"), text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_shipped_config_parses_and_names_existing_suites() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kcycle.toml");
        let config = CiConfig::load(&path).unwrap();
        for suite in &config.suites {
            assert!(suite.is_file(), "{}", suite.display());
        }
    }
}
