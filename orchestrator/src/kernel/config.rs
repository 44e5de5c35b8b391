//! Config fragments and `.config` files: parse them, and check that a merged
//! `.config` holds every value the fragments asked for. Pure: text in,
//! values out; reading the files is the caller's job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One `CONFIG_<NAME>=<value>` (or `# CONFIG_<NAME> is not set`) line of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    /// The symbol without its `CONFIG_` prefix, e.g. `DRM_I915`.
    pub name: String,
    /// `y`, `m`, `n`, a number or a quoted string, as written.
    pub value: String,
    pub file: PathBuf,
    /// 1-based line number in `file`.
    pub line: usize,
}

impl Requested {
    /// The line as a fragment or `.config` spells it.
    pub fn spelled(&self) -> String {
        spell(&self.name, &self.value)
    }
}

fn spell(name: &str, value: &str) -> String {
    if value == "n" {
        format!("# CONFIG_{name} is not set")
    } else {
        format!("CONFIG_{name}={value}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    #[error(
        "failed to read config fragment {file}:{line}: `{text}` has the value `{value}`; \
         Kconfig values are y, m, n, a number, 0x-hex or a \"quoted string\""
    )]
    BadValue {
        file: PathBuf,
        line: usize,
        text: String,
        value: String,
    },
    #[error(
        "failed to read config fragment {file}:{line}: `{text}` is not `CONFIG_NAME=value` \
         or `# CONFIG_NAME is not set`"
    )]
    BadLine {
        file: PathBuf,
        line: usize,
        text: String,
    },
}

/// Parse a fragment. Later lines for the same symbol override earlier ones,
/// as `merge_config.sh` does; the caller merges across fragments the same way.
pub fn parse_fragment(file: &Path, text: &str) -> Result<Vec<Requested>, FragmentError> {
    let mut requested = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(name) = not_set_symbol(trimmed) {
            requested.push(Requested {
                name: name.to_string(),
                value: "n".into(),
                file: file.to_path_buf(),
                line,
            });
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        let bad_line = || FragmentError::BadLine {
            file: file.to_path_buf(),
            line,
            text: trimmed.to_string(),
        };
        let (lhs, value) = trimmed.split_once('=').ok_or_else(bad_line)?;
        let name = lhs.strip_prefix("CONFIG_").ok_or_else(bad_line)?;
        if !is_symbol(name) {
            return Err(bad_line());
        }
        if !is_value(value) {
            return Err(FragmentError::BadValue {
                file: file.to_path_buf(),
                line,
                text: trimmed.to_string(),
                value: value.to_string(),
            });
        }
        requested.push(Requested {
            name: name.to_string(),
            value: value.to_string(),
            file: file.to_path_buf(),
            line,
        });
    }
    Ok(requested)
}

/// Last request per symbol wins, in the order the fragments are merged.
pub fn effective(requests: impl IntoIterator<Item = Requested>) -> Vec<Requested> {
    let mut by_name: BTreeMap<String, Requested> = BTreeMap::new();
    for request in requests {
        by_name.insert(request.name.clone(), request);
    }
    let mut list: Vec<Requested> = by_name.into_values().collect();
    list.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    list
}

fn not_set_symbol(line: &str) -> Option<&str> {
    let name = line
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("CONFIG_")?
        .strip_suffix("is not set")?
        .trim_end();
    is_symbol(name).then_some(name)
}

fn is_symbol(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_value(value: &str) -> bool {
    match value {
        "y" | "m" | "n" => true,
        quoted if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => true,
        hex if hex.starts_with("0x") || hex.starts_with("0X") => {
            hex.len() > 2 && hex[2..].bytes().all(|b| b.is_ascii_hexdigit())
        }
        number => {
            let digits = number.strip_prefix('-').unwrap_or(number);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// A `.config`: symbol (without `CONFIG_`) to value; `is not set` reads as `n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DotConfig {
    values: BTreeMap<String, String>,
}

impl DotConfig {
    pub fn parse(text: &str) -> Self {
        let mut values = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = not_set_symbol(line) {
                values.insert(name.to_string(), "n".to_string());
            } else if let Some((lhs, value)) = line.split_once('=') {
                if let Some(name) = lhs.strip_prefix("CONFIG_").filter(|n| is_symbol(n)) {
                    values.insert(name.to_string(), value.to_string());
                }
            }
        }
        DotConfig { values }
    }

    /// The value as written, `None` when the symbol is absent (not visible for this config).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Tristate value for expression evaluation: absent and `n` are both n.
    pub fn tristate(&self, name: &str) -> &str {
        self.get(name).unwrap_or("n")
    }
}

/// A requested value the merged `.config` does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub requested: Requested,
    /// What `.config` has, `None` when the symbol is absent.
    pub actual: Option<String>,
}

impl Mismatch {
    pub fn actual_spelled(&self) -> String {
        match &self.actual {
            Some(value) => spell(&self.requested.name, value),
            None => format!("CONFIG_{} is absent", self.requested.name),
        }
    }
}

/// Every request whose value the config does not hold. `n` is satisfied by
/// an absent symbol too (Kconfig omits invisible symbols).
pub fn verify(requested: &[Requested], config: &DotConfig) -> Vec<Mismatch> {
    requested
        .iter()
        .filter_map(|request| {
            let actual = config.get(&request.name);
            let holds = match (request.value.as_str(), actual) {
                ("n", None) => true,
                (wanted, Some(have)) => wanted == have,
                (_, None) => false,
            };
            (!holds).then(|| Mismatch {
                requested: request.clone(),
                actual: actual.map(str::to_string),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(text: &str) -> Result<Vec<Requested>, FragmentError> {
        parse_fragment(Path::new("f.config"), text)
    }

    #[test]
    fn fragment_reads_values_and_not_set_lines() {
        let requested = frag(
            "# comment\n\nCONFIG_RUST=y\n# CONFIG_MODVERSIONS is not set\nCONFIG_PANIC_TIMEOUT=-1\n\
             CONFIG_CMDLINE=\"console=ttyS0\"\nCONFIG_BASE=0x1f\n",
        )
        .unwrap();
        let spelled: Vec<String> = requested.iter().map(Requested::spelled).collect();
        assert_eq!(
            spelled,
            [
                "CONFIG_RUST=y",
                "# CONFIG_MODVERSIONS is not set",
                "CONFIG_PANIC_TIMEOUT=-1",
                "CONFIG_CMDLINE=\"console=ttyS0\"",
                "CONFIG_BASE=0x1f",
            ]
        );
        assert_eq!(requested[1].line, 4);
    }

    #[test]
    fn fragment_typo_names_file_line_and_value() {
        let err = frag("CONFIG_RUST=y\nCONFIG_FOO=q\n").unwrap_err();
        assert_eq!(
            err,
            FragmentError::BadValue {
                file: "f.config".into(),
                line: 2,
                text: "CONFIG_FOO=q".into(),
                value: "q".into()
            }
        );
        assert!(err.to_string().contains("f.config:2"), "{err}");
        assert!(matches!(
            frag("RUST=y").unwrap_err(),
            FragmentError::BadLine { line: 1, .. }
        ));
        assert!(matches!(
            frag("CONFIG_RUST y").unwrap_err(),
            FragmentError::BadLine { .. }
        ));
        assert!(matches!(
            frag("CONFIG_X=0x").unwrap_err(),
            FragmentError::BadValue { .. }
        ));
    }

    #[test]
    fn later_requests_override_earlier_ones() {
        let mut all = frag("CONFIG_A=y\nCONFIG_B=y\n").unwrap();
        all.extend(parse_fragment(Path::new("g.config"), "CONFIG_A=m\n").unwrap());
        let list = effective(all);
        let spelled: Vec<String> = list.iter().map(Requested::spelled).collect();
        assert_eq!(spelled, ["CONFIG_B=y", "CONFIG_A=m"]);
    }

    #[test]
    fn verify_reports_dropped_and_changed_values() {
        let config = DotConfig::parse(
            "CONFIG_RUST=y\n# CONFIG_EXPERT is not set\nCONFIG_DRM_I915=y\nCONFIG_PANIC_TIMEOUT=-1\n",
        );
        let requested = frag(
            "CONFIG_RUST=y\nCONFIG_DRM_I915=m\nCONFIG_DRM_I915_SELFTEST=y\n\
             # CONFIG_MODVERSIONS is not set\n# CONFIG_EXPERT is not set\nCONFIG_PANIC_TIMEOUT=-1\n",
        )
        .unwrap();
        let mismatches = verify(&requested, &config);
        let found: Vec<(String, String)> = mismatches
            .iter()
            .map(|m| (m.requested.spelled(), m.actual_spelled()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "CONFIG_DRM_I915=m".to_string(),
                    "CONFIG_DRM_I915=y".to_string()
                ),
                (
                    "CONFIG_DRM_I915_SELFTEST=y".to_string(),
                    "CONFIG_DRM_I915_SELFTEST is absent".to_string()
                ),
            ]
        );
    }

    #[test]
    fn dot_config_reads_tristates() {
        let config = DotConfig::parse("CONFIG_A=m\n# CONFIG_B is not set\nnoise\n");
        assert_eq!(config.tristate("A"), "m");
        assert_eq!(config.tristate("B"), "n");
        assert_eq!(config.tristate("C"), "n");
        assert_eq!(config.get("C"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC*") {
            let _ = frag(&text);
            let _ = DotConfig::parse(&text);
        }
    }
}
