//! The one cache root, shared by the kernel cache, the image cache and the
//! accel probe's answers.

use std::path::PathBuf;

/// The cache root from these variables: `KCYCLE_CACHE`, else
/// `$XDG_CACHE_HOME/kcycle`, else `$HOME/.cache/kcycle`. Empty values count
/// as unset (an empty `KCYCLE_CACHE` must not mean the current directory).
pub fn cache_root_from(
    kcycle_cache: Option<&str>,
    xdg_cache_home: Option<&str>,
    home: Option<&str>,
) -> Option<PathBuf> {
    let nonempty = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    nonempty(kcycle_cache)
        .or_else(|| nonempty(xdg_cache_home).map(|p| p.join("kcycle")))
        .or_else(|| nonempty(home).map(|p| p.join(".cache/kcycle")))
}

/// The cache root from the environment (see [`cache_root_from`]).
pub fn cache_root() -> Option<PathBuf> {
    let var = |name| std::env::var(name).ok();
    cache_root_from(
        var("KCYCLE_CACHE").as_deref(),
        var("XDG_CACHE_HOME").as_deref(),
        var("HOME").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kcycle_cache_then_xdg_then_home_and_empty_is_unset() {
        let root = |k, x, h| cache_root_from(k, x, h).map(|p| p.display().to_string());
        assert_eq!(
            root(Some("/c"), Some("/x"), Some("/h")).as_deref(),
            Some("/c")
        );
        assert_eq!(
            root(Some(""), Some("/x"), Some("/h")).as_deref(),
            Some("/x/kcycle")
        );
        assert_eq!(
            root(None, Some(""), Some("/h")).as_deref(),
            Some("/h/.cache/kcycle")
        );
        assert_eq!(root(Some(""), None, Some("")), None);
    }
}
