//! Why Kconfig dropped a requested option: find the symbol's definitions in
//! the tree's Kconfig files, collect the conditions it sits under (its own
//! `depends on`, enclosing `menu`/`if`/`choice` blocks, and the blocks around
//! the `source` lines that pull its file in) and evaluate them against the
//! merged `.config`. Pure apart from [`KconfigFiles::load`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::DotConfig;

/// Kconfig files of a tree: path relative to the tree -> text.
#[derive(Debug, Clone, Default)]
pub struct KconfigFiles {
    files: BTreeMap<String, String>,
    /// `$(SRCARCH)` in `source` lines, e.g. `x86`.
    arch: String,
}

/// A condition a symbol sits under and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub expr: String,
    /// e.g. `depends on` or `menu "drm/i915 Debugging"`.
    pub from: String,
    /// `path:line` in the tree.
    pub at: String,
}

/// What the Kconfig files say about a symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explanation {
    /// No `config NAME` anywhere: a typo, or the symbol is gone in this version.
    Unknown,
    /// Conditions that evaluate to n with this `.config`, and the symbols in them.
    Unmet(Vec<(Condition, Vec<String>)>),
    /// Defined, all visible conditions hold; something else (select, choice, range) decided.
    Undetermined { defined_at: Vec<String> },
}

impl KconfigFiles {
    pub fn new(files: BTreeMap<String, String>, arch: &str) -> Self {
        KconfigFiles {
            files,
            arch: arch.to_string(),
        }
    }

    /// Read every file named `Kconfig*` under `tree` (skipping `.git` and build output).
    pub fn load(tree: &Path, arch: &str) -> std::io::Result<Self> {
        let mut files = BTreeMap::new();
        let mut pending = vec![tree.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let kind = entry.file_type()?;
                if kind.is_dir() && !name.starts_with('.') {
                    pending.push(entry.path());
                } else if kind.is_file() && name.starts_with("Kconfig") {
                    let path = entry.path();
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let relative = path.strip_prefix(tree).unwrap_or(&path);
                    files.insert(relative.to_string_lossy().into_owned(), text);
                }
            }
        }
        Ok(KconfigFiles::new(files, arch))
    }

    /// Explain why `name` does not have the requested value in `config`.
    pub fn explain(&self, name: &str, config: &DotConfig) -> Explanation {
        let definitions = self.definitions(name);
        if definitions.is_empty() {
            return Explanation::Unknown;
        }
        let mut unmet = Vec::new();
        for (path, line) in &definitions {
            for condition in self.conditions(path, *line, 0) {
                if eval(&condition.expr, config) == Tri::N {
                    let symbols = symbols_of(&condition.expr)
                        .into_iter()
                        .filter(|s| config.tristate(s) == "n" && !is_literal(s))
                        .collect();
                    unmet.push((condition, symbols));
                }
            }
        }
        if unmet.is_empty() {
            Explanation::Undetermined {
                defined_at: definitions
                    .iter()
                    .map(|(path, line)| format!("{path}:{}", line + 1))
                    .collect(),
            }
        } else {
            unmet.dedup();
            Explanation::Unmet(unmet)
        }
    }

    /// (file, 0-based line) of every `config NAME` / `menuconfig NAME`.
    fn definitions(&self, name: &str) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        for (path, text) in &self.files {
            for (index, line) in text.lines().enumerate() {
                let mut words = line.split_whitespace();
                if matches!(words.next(), Some("config" | "menuconfig"))
                    && words.next() == Some(name)
                {
                    found.push((path.clone(), index));
                }
            }
        }
        found
    }

    /// Conditions for the entry at `line` of `path`: its own `depends on`
    /// lines, the blocks it is nested in, and those around where `path` is sourced.
    fn conditions(&self, path: &str, line: usize, depth: usize) -> Vec<Condition> {
        let Some(text) = self.files.get(path) else {
            return Vec::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut conditions = entry_depends(path, &lines, line);
        conditions.extend(enclosing_blocks(path, &lines, line));
        // Guard against `source` cycles in a broken tree.
        if depth < 16 {
            for (parent, parent_line) in self.sourced_from(path) {
                conditions.extend(self.conditions(&parent, parent_line, depth + 1));
            }
        }
        conditions
    }

    /// Where `path` is pulled in by `source "…"` (one level up).
    fn sourced_from(&self, path: &str) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        for (parent, text) in &self.files {
            let dir = Path::new(parent).parent().unwrap_or(Path::new(""));
            for (index, line) in text.lines().enumerate() {
                let mut words = line.split_whitespace();
                let keyword = words.next();
                let Some(target) = words.next().map(|t| t.trim_matches('"')) else {
                    continue;
                };
                let target = target.replace("$(SRCARCH)", &self.arch);
                let resolved = match keyword {
                    Some("source" | "osource") => PathBuf::from(&target),
                    Some("rsource" | "orsource") => dir.join(&target),
                    _ => continue,
                };
                if resolved == Path::new(path) {
                    found.push((parent.clone(), index));
                }
            }
        }
        found
    }
}

const ENTRY_KEYWORDS: &[&str] = &[
    "config",
    "menuconfig",
    "choice",
    "endchoice",
    "menu",
    "endmenu",
    "if",
    "endif",
    "source",
    "rsource",
    "osource",
    "orsource",
    "comment",
    "mainmenu",
];

fn keyword(line: &str) -> Option<&str> {
    line.split_whitespace().next()
}

/// Lines that carry structure: help texts (which may start with "if" or
/// "menu" in prose) are left out. Yields (0-based index, line).
fn structural<'a>(lines: &'a [&'a str]) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    let mut help_indent: Option<usize> = None;
    lines.iter().enumerate().filter_map(move |(index, text)| {
        let trimmed = text.trim();
        if let Some(keyword_indent) = help_indent {
            if trimmed.is_empty() || indent(text) > keyword_indent {
                return None;
            }
            help_indent = None;
        }
        if trimmed == "help" || trimmed == "---help---" {
            help_indent = Some(indent(text));
            return None;
        }
        Some((index, *text))
    })
}

fn indent(line: &str) -> usize {
    line.chars()
        .take_while(|c| c.is_whitespace())
        .map(|c| if c == '\t' { 8 } else { 1 })
        .sum()
}

/// `depends on` lines in the entry body starting at `line`.
fn entry_depends(path: &str, lines: &[&str], line: usize) -> Vec<Condition> {
    let mut conditions = Vec::new();
    for (index, text) in structural(lines).skip_while(|(i, _)| *i <= line) {
        let trimmed = text.trim();
        if keyword(trimmed).is_some_and(|k| ENTRY_KEYWORDS.contains(&k)) {
            break;
        }
        if let Some(expr) = trimmed.strip_prefix("depends on") {
            conditions.push(Condition {
                expr: strip_comment(expr).to_string(),
                from: "depends on".into(),
                at: format!("{path}:{}", index + 1),
            });
        }
    }
    conditions
}

/// `menu`/`choice` blocks with their `depends on`, and `if` blocks, open at `line`.
fn enclosing_blocks(path: &str, lines: &[&str], line: usize) -> Vec<Condition> {
    // Each open block: its own conditions (menus gather `depends on` after the header).
    let mut stack: Vec<(String, Vec<Condition>)> = Vec::new();
    let mut in_block_header = false;
    for (index, text) in structural(lines).take_while(|(i, _)| *i < line) {
        let trimmed = text.trim();
        match keyword(trimmed) {
            Some("menu") | Some("choice") => {
                stack.push((trimmed.to_string(), Vec::new()));
                in_block_header = true;
            }
            Some("if") => {
                let expr = strip_comment(trimmed.trim_start_matches("if")).to_string();
                stack.push((
                    "if".into(),
                    vec![Condition {
                        expr,
                        from: "if".into(),
                        at: format!("{path}:{}", index + 1),
                    }],
                ));
                in_block_header = false;
            }
            Some("endmenu") | Some("endchoice") | Some("endif") => {
                stack.pop();
                in_block_header = false;
            }
            Some("depends") if in_block_header => {
                if let (Some((header, conditions)), Some(expr)) =
                    (stack.last_mut(), trimmed.strip_prefix("depends on"))
                {
                    conditions.push(Condition {
                        expr: strip_comment(expr).to_string(),
                        from: header.clone(),
                        at: format!("{path}:{}", index + 1),
                    });
                }
            }
            Some(k) if ENTRY_KEYWORDS.contains(&k) => in_block_header = false,
            _ => {}
        }
    }
    stack.into_iter().flat_map(|(_, c)| c).collect()
}

fn strip_comment(expr: &str) -> &str {
    expr.split('#').next().unwrap_or("").trim()
}

fn is_literal(symbol: &str) -> bool {
    matches!(symbol, "y" | "m" | "n")
        || symbol.starts_with('"')
        || symbol.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// Kconfig tristate: n < m < y.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tri {
    N,
    M,
    Y,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Symbol(String),
    Not,
    And,
    Or,
    Open,
    Close,
    Compare(&'static str),
}

fn tokenize(expr: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (token, width) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('&', Some('&')) => (Token::And, 2),
            ('|', Some('|')) => (Token::Or, 2),
            ('!', Some('=')) => (Token::Compare("!="), 2),
            ('<', Some('=')) => (Token::Compare("<="), 2),
            ('>', Some('=')) => (Token::Compare(">="), 2),
            ('!', _) => (Token::Not, 1),
            ('=', _) => (Token::Compare("="), 1),
            ('<', _) => (Token::Compare("<"), 1),
            ('>', _) => (Token::Compare(">"), 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            ('"', _) => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '"')
                    .map_or(chars.len(), |p| i + 2 + p);
                let text: String = chars[i..end.min(chars.len())].iter().collect();
                (Token::Symbol(text), end - i)
            }
            _ => {
                let len = chars[i..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
                    .count()
                    .max(1);
                (Token::Symbol(chars[i..i + len].iter().collect()), len)
            }
        };
        tokens.push(token);
        i += width;
    }
    tokens
}

fn symbols_of(expr: &str) -> Vec<String> {
    let mut symbols: Vec<String> = tokenize(expr)
        .into_iter()
        .filter_map(|t| match t {
            Token::Symbol(s) => Some(s),
            _ => None,
        })
        .collect();
    symbols.dedup();
    symbols
}

/// Evaluate a Kconfig expression. Unparsable input evaluates to y, so that a
/// condition we do not understand is never blamed.
pub fn eval(expr: &str, config: &DotConfig) -> Tri {
    let tokens = tokenize(expr);
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
        config,
    };
    match parser.or() {
        Some(value) if parser.pos == tokens.len() => value,
        _ => Tri::Y,
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    config: &'a DotConfig,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self) -> Option<Tri> {
        let mut value = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            value = value.max(self.and()?);
        }
        Some(value)
    }

    fn and(&mut self) -> Option<Tri> {
        let mut value = self.not()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            value = value.min(self.not()?);
        }
        Some(value)
    }

    fn not(&mut self) -> Option<Tri> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Some(match self.not()? {
                Tri::N => Tri::Y,
                Tri::M => Tri::M,
                Tri::Y => Tri::N,
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Option<Tri> {
        match self.peek()?.clone() {
            Token::Open => {
                self.pos += 1;
                let value = self.or()?;
                (self.peek() == Some(&Token::Close)).then_some(())?;
                self.pos += 1;
                Some(value)
            }
            Token::Symbol(left) => {
                self.pos += 1;
                if let Some(Token::Compare(op)) = self.peek().cloned() {
                    self.pos += 1;
                    let Some(Token::Symbol(right)) = self.peek().cloned() else {
                        return None;
                    };
                    self.pos += 1;
                    return Some(compare(&self.value(&left), op, &self.value(&right)));
                }
                Some(match self.value(&left).as_str() {
                    "y" => Tri::Y,
                    "m" => Tri::M,
                    _ => Tri::N,
                })
            }
            _ => None,
        }
    }

    fn value(&self, symbol: &str) -> String {
        if is_literal(symbol) {
            symbol.trim_matches('"').to_string()
        } else {
            self.config.tristate(symbol).trim_matches('"').to_string()
        }
    }
}

fn compare(left: &str, op: &str, right: &str) -> Tri {
    let ordering = match (left.parse::<i64>(), right.parse::<i64>()) {
        (Ok(l), Ok(r)) => l.cmp(&r),
        _ => left.cmp(right),
    };
    let holds = match op {
        "=" => ordering.is_eq(),
        "!=" => !ordering.is_eq(),
        "<" => ordering.is_lt(),
        "<=" => ordering.is_le(),
        ">" => ordering.is_gt(),
        _ => ordering.is_ge(),
    };
    if holds {
        Tri::Y
    } else {
        Tri::N
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> DotConfig {
        DotConfig::parse(text)
    }

    #[test]
    fn expressions_follow_kconfig_tristate_logic() {
        let c = config("CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_V=108500\n");
        assert_eq!(eval("A", &c), Tri::Y);
        assert_eq!(eval("B", &c), Tri::M);
        assert_eq!(eval("C", &c), Tri::N);
        assert_eq!(eval("ABSENT", &c), Tri::N);
        assert_eq!(eval("A && B", &c), Tri::M);
        assert_eq!(eval("C || B", &c), Tri::M);
        assert_eq!(eval("!C && (A || C)", &c), Tri::Y);
        assert_eq!(eval("!B", &c), Tri::M);
        assert_eq!(eval("V >= 108100", &c), Tri::Y);
        assert_eq!(eval("V < 108100", &c), Tri::N);
        assert_eq!(eval("B = m", &c), Tri::Y);
        assert_eq!(eval("B != m", &c), Tri::N);
        // Garbage is never blamed.
        assert_eq!(eval("A && (", &c), Tri::Y);
    }

    fn tree() -> KconfigFiles {
        let mut files = BTreeMap::new();
        files.insert(
            "Kconfig".to_string(),
            "mainmenu \"Linux\"\nsource \"drivers/Kconfig\"\nsource \"arch/$(SRCARCH)/Kconfig\"\n"
                .to_string(),
        );
        files.insert(
            "drivers/Kconfig".to_string(),
            "menu \"Drivers\"\nif PCI\nsource \"drivers/gpu/Kconfig\"\nendif\nendmenu\n"
                .to_string(),
        );
        files.insert(
            "drivers/gpu/Kconfig".to_string(),
            "config DRM_I915\n\ttristate \"i915\"\n\tdepends on DRM\n\n\
             menu \"drm/i915 Debugging\"\ndepends on DRM_I915\ndepends on EXPERT\n\
             config DRM_I915_SELFTEST\n\tbool \"selftests\"\n\tdepends on DRM_I915\n\
             \tselect CRC32\n\thelp\n\t  Selftests.\n\t  if unsure, say N.\nendmenu\n\
             config DRM_I915_OTHER\n\tbool \"other\"\n"
                .to_string(),
        );
        files.insert(
            "arch/x86/Kconfig".to_string(),
            "config RUST_ARCH\n\tdef_bool y\n".to_string(),
        );
        KconfigFiles::new(files, "x86")
    }

    #[test]
    fn explains_a_menu_dependency_through_source_lines() {
        let c =
            config("CONFIG_PCI=y\nCONFIG_DRM=y\nCONFIG_DRM_I915=m\n# CONFIG_EXPERT is not set\n");
        let Explanation::Unmet(unmet) = tree().explain("DRM_I915_SELFTEST", &c) else {
            panic!("expected unmet dependencies");
        };
        assert_eq!(
            unmet,
            [(
                Condition {
                    expr: "EXPERT".into(),
                    from: "menu \"drm/i915 Debugging\"".into(),
                    at: "drivers/gpu/Kconfig:7".into(),
                },
                vec!["EXPERT".to_string()]
            )]
        );
    }

    #[test]
    fn explains_an_if_block_in_the_sourcing_file() {
        let c = config("# CONFIG_PCI is not set\nCONFIG_DRM=y\n");
        let Explanation::Unmet(unmet) = tree().explain("DRM_I915", &c) else {
            panic!("expected unmet dependencies");
        };
        assert_eq!(unmet.len(), 1);
        assert_eq!(unmet[0].0.expr, "PCI");
        assert_eq!(unmet[0].0.at, "drivers/Kconfig:2");
    }

    #[test]
    fn unknown_and_undetermined_symbols() {
        let c = config("CONFIG_PCI=y\n");
        assert_eq!(tree().explain("FOO", &c), Explanation::Unknown);
        assert_eq!(
            tree().explain("RUST_ARCH", &c),
            Explanation::Undetermined {
                defined_at: vec!["arch/x86/Kconfig:1".into()]
            }
        );
        // An entry closed by the menu end is not under the menu.
        assert_eq!(
            tree().explain("DRM_I915_OTHER", &c),
            Explanation::Undetermined {
                defined_at: vec!["drivers/gpu/Kconfig:16".into()]
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn eval_never_panics(expr in "\\PC*") {
            let _ = eval(&expr, &DotConfig::default());
        }
    }
}
