//! Choosing which tests run: `--filter GLOB` and `--shard I/N`.

use std::fmt;
use std::str::FromStr;

use super::{Suite, Test};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("failed to parse --filter {glob:?}: {reason}")]
    BadFilter { glob: String, reason: String },
    #[error("--filter {glob:?} matches no test; the suites have: {available}")]
    NothingMatches { glob: String, available: String },
    #[error("failed to parse --shard {given:?}: expected I/N with 1 <= I <= N, e.g. 2/4")]
    BadShard { given: String },
}

/// Shard `index` of `count` (both 1-based in the CLI, as in `--shard 2/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = SelectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SelectError::BadShard { given: s.into() };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The tests to run, in suite order: those matching `filter` (all when
/// `None`), then every `count`-th of them for a shard. Round-robin over the
/// stable order puts each test in exactly one shard and keeps shard sizes
/// within one of each other.
pub fn select<'a>(
    suites: &'a [Suite],
    filter: Option<&str>,
    shard: Option<Shard>,
) -> Result<Vec<(&'a Suite, &'a Test)>, SelectError> {
    let all = suites
        .iter()
        .flat_map(|suite| suite.tests.iter().map(move |test| (suite, test)));
    let matched: Vec<_> = match filter {
        None => all.collect(),
        Some(glob) => {
            let matcher = globset::Glob::new(glob)
                .map_err(|e| SelectError::BadFilter {
                    glob: glob.into(),
                    reason: e.kind().to_string(),
                })?
                .compile_matcher();
            let matched: Vec<_> = all.filter(|(_, t)| matcher.is_match(&t.name)).collect();
            if matched.is_empty() {
                let available = suites
                    .iter()
                    .flat_map(|s| s.tests.iter().map(|t| t.name.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(SelectError::NothingMatches {
                    glob: glob.into(),
                    available,
                });
            }
            matched
        }
    };
    Ok(match shard {
        None => matched,
        Some(shard) => matched
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % shard.count == shard.index - 1)
            .map(|(_, pair)| pair)
            .collect(),
    })
}
