//! Errors that point into a text file: `path:line:column: message` and the
//! offending line, for suite and config files alike.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A message about a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The line the error points at, so the field is visible even when the
    /// parser's message only names a type.
    pub source_line: String,
}

impl Located {
    /// Locate byte range `span` (the file start when `None`) of `text`.
    pub fn new(
        path: &Path,
        text: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let mut offset = span.map_or(0, |s| s.start.min(text.len()));
        while offset > 0 && !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Located {
            path: path.to_path_buf(),
            line: before.matches('\n').count() + 1,
            column: before.len() - line_start + 1,
            message: message.into(),
            source_line: text[line_start..]
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect(),
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n{:>5} | {}",
            self.path.display(),
            self.line,
            self.column,
            self.message,
            self.line,
            self.source_line
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_lines() {
        let text = "a = 1\nbé = \"x\"\n";
        let at = Located::new(Path::new("f.toml"), text, Some(9..10), "bad");
        assert_eq!((at.line, at.column), (2, 4));
        assert_eq!(at.to_string(), "f.toml:2:4: bad\n    2 | bé = \"x\"");
        let start = Located::new(Path::new("f.toml"), text, None, "empty");
        assert_eq!((start.line, start.column), (1, 1));
        let past_end = Located::new(Path::new("f.toml"), text, Some(99..100), "x");
        assert_eq!(past_end.line, 3);
    }
}
