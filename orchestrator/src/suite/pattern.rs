//! A glob from a suite or known-issues file, compiled once when the file is
//! read, and kept with its text for messages and for writing files back.

use std::fmt;

use globset::{Glob, GlobMatcher};

/// A compiled glob over test names, titles or attributions.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, globset::Error> {
        Ok(Pattern {
            text: text.to_string(),
            matcher: Glob::new(text)?.compile_matcher(),
        })
    }

    /// `*`: anything.
    pub fn any() -> Pattern {
        Pattern::new("*").expect("`*` is a glob")
    }

    pub fn matches(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Whether `glob` matches `text`; a glob that does not compile matches nothing.
/// For fields kept as text (known issues, which are written back as read).
pub fn glob_matches(glob: &str, text: &str) -> bool {
    Pattern::new(glob).is_ok_and(|p| p.matches(text))
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

impl PartialEq<&str> for Pattern {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_and_keep_their_text() {
        let p = Pattern::new("*rust_i915_*").unwrap();
        assert!(p.matches("leaked slab cache rust_i915_vma"));
        assert!(!p.matches("leaked slab cache i915_vma"));
        assert_eq!(p.to_string(), "*rust_i915_*");
        assert!(Pattern::any().matches(""));
        assert!(Pattern::new("[").is_err());
        assert!(!glob_matches("[", "["));
        // Alternatives, as suites use them for either of two symbol names.
        let p = Pattern::new("m:{timer,timer_fn}+*").unwrap();
        assert!(p.matches("m:timer+0x10/0x50"));
        assert!(p.matches("m:timer_fn+0x0/0x1c"));
        assert!(!p.matches("m:timer_live+0x0/0x1"));
    }
}
