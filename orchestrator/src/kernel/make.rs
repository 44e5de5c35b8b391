//! Reading kbuild output: the stage a build is in (for progress), the first
//! error (for the failure message) and signs of a full disk. Pure.

/// The current kbuild step from a quiet-mode line such as
/// `  CC [M]  drivers/gpu/drm/i915/i915_drv.o` -> `CC [M] drivers/gpu/drm/i915`.
pub fn stage(line: &str) -> Option<String> {
    let body = line.strip_prefix("  ")?;
    let first = body.chars().next()?;
    if !first.is_ascii_uppercase() {
        return None;
    }
    // Verb (possibly with a flag like `[M]` or `L`) and a single path-like target.
    let (verb, target) = body.trim_end().rsplit_once(char::is_whitespace)?;
    let verb = verb.split_whitespace().collect::<Vec<_>>().join(" ");
    let verb_ok = verb.len() <= 16
        && verb
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b" []_-".contains(&b));
    if !verb_ok || target.is_empty() {
        return None;
    }
    let place = match target.rsplit_once('/') {
        // Absolute paths (M= builds, modules_install) say little beyond the file.
        Some((_, file)) if target.starts_with('/') => file,
        Some((dir, _)) if !dir.is_empty() => dir,
        _ => target,
    };
    Some(format!("{verb} {place}"))
}

/// The line that best explains a failed build: the first compiler/linker
/// error, else make's own `***` line, else nothing.
pub fn first_error(log: &str) -> Option<&str> {
    let is_error = |l: &str| {
        l.contains("error:")
            || l.contains("error[E")
            || l.contains("undefined reference")
            || l.contains("No space left on device")
            || l.starts_with("ERROR:")
    };
    log.lines()
        .find(|l| is_error(l))
        .or_else(|| log.lines().find(|l| l.contains("***")))
        .map(str::trim)
}

/// Did the build fail because the disk is full?
pub fn disk_full(log: &str) -> bool {
    log.contains("No space left on device")
}

/// The last `n` lines of a log.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_reads_kbuild_quiet_lines() {
        assert_eq!(
            stage("  CC [M]  drivers/gpu/drm/i915/i915_drv.o").as_deref(),
            Some("CC [M] drivers/gpu/drm/i915")
        );
        assert_eq!(
            stage("  RUSTC L rust/core.o").as_deref(),
            Some("RUSTC L rust")
        );
        assert_eq!(stage("  LD      vmlinux").as_deref(), Some("LD vmlinux"));
        assert_eq!(
            stage("  BINDGEN rust/bindings/bindings_generated.rs").as_deref(),
            Some("BINDGEN rust/bindings")
        );
        assert_eq!(
            stage("  INSTALL /c/kernel/artifacts/.tmp-k-1/modules/lib/modules/6.12.117/kernel/drivers/gpu/drm/i915/i915.ko")
                .as_deref(),
            Some("INSTALL i915.ko")
        );
        assert_eq!(stage("make[1]: Entering directory '/x'"), None);
        assert_eq!(stage("drivers/x.c:1:2: error: boom"), None);
        assert_eq!(stage("  a lowercase line"), None);
        assert_eq!(stage(""), None);
    }

    #[test]
    fn first_error_prefers_the_compiler_line() {
        let log = "  CC      a.o\n\
                   drivers/x.c:10:5: error: use of undeclared identifier 'y'\n\
                   make[4]: *** [scripts/Makefile.build:229: drivers/x.o] Error 1\n";
        assert_eq!(
            first_error(log),
            Some("drivers/x.c:10:5: error: use of undeclared identifier 'y'")
        );
        let log = "make: *** No rule to make target 'bzImag'.  Stop.\n";
        assert_eq!(
            first_error(log),
            Some("make: *** No rule to make target 'bzImag'.  Stop.")
        );
        assert_eq!(first_error("all fine\n"), None);
    }

    #[test]
    fn disk_full_and_tail() {
        assert!(disk_full(
            "ld.lld: error: failed to write output 'vmlinux': No space left on device\n"
        ));
        assert!(!disk_full("ok\n"));
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a\n", 5), "a");
    }
}
