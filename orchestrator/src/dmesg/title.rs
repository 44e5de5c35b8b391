//! A finding's title: the rule's template filled from the report's lines,
//! syzkaller-style (`WARNING in <func>`), stable across runs and kernels.

use std::cell::OnceCell;
use std::sync::LazyLock;

use regex::Regex;

use super::rules::{From, Subject, Title, RULES, TABLE};
use super::stack;
use super::Kind;

/// `, at: func+0x..` in lockdep's lock descriptions.
static LOCK_AT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bat: (?:\[<[0-9a-f]+>\] )?([A-Za-z_][\w.$]*)\+0x").expect("static regex")
});

/// KASAN's access line.
/// `Read of size 8` (generic KASAN; `... by task` before 4.4), `Read at addr`
/// (tag-based KASAN, which has no size).
static ACCESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(Read|Write) (?:of size \d+|at addr )").expect("static regex"));

/// Numbers in titles (`unknown-block(0,0)` -> `unknown-block(NUM,NUM)`).
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:0x[0-9a-fA-F]+|\d+)\b").expect("static regex"));

/// The captures of a report's start line by its rule's start regex, taken
/// once for its title and subject, and only if one uses them: most
/// templates have no `{1}`, and capturing costs more than matching.
pub(super) struct Start<'l> {
    index: usize,
    first: &'l str,
    captures: OnceCell<Option<regex::Captures<'l>>>,
}

impl<'l> Start<'l> {
    /// The start line of the report of rule `index` with these lines.
    pub(super) fn new(index: usize, lines: &[&'l str]) -> Self {
        Start {
            index,
            first: lines.first().copied().unwrap_or(""),
            captures: OnceCell::new(),
        }
    }

    fn captures(&self) -> Option<&regex::Captures<'l>> {
        self.captures
            .get_or_init(|| TABLE.captures(self.index, self.first))
            .as_ref()
    }
}

/// Build the title of the report of rule `index` from its lines.
pub(super) fn build(index: usize, lines: &[&str], start: &Start<'_>) -> String {
    let rule = &RULES[index];
    let fill = |template: &str| {
        if has_slots(template) {
            fill(template, start.captures())
        } else {
            template.to_string()
        }
    };
    let start_func = || {
        start
            .captures()
            .and_then(|c| c.name("func"))
            .map(|m| stack::clean(m.as_str()))
    };
    match rule.title {
        Title::Text(template) => fill(template),
        Title::Numbers(template) => NUMBER.replace_all(&fill(template), "NUM").into_owned(),
        Title::In { fmt, from, skip } => {
            let named = if from == From::Start {
                start_func()
            } else {
                None
            };
            let func = function(from, named, lines, skip);
            with_func(&fill(fmt), func)
        }
        // Named in `Walk::finish_ktap`, which knows the enclosing suite.
        Title::Ktap { .. } => fill("KTAP: not ok {1}"),
        Title::Find {
            regex,
            fmt,
            fallback,
        } => match find_line(regex, lines) {
            Some(c) => self::fill(fmt, Some(&c)),
            None => fallback.to_string(),
        },
        Title::Kasan => {
            let kind = start
                .captures()
                .and_then(|c| c.get(1))
                .map_or(String::new(), |m| kasan_bug(m.as_str()));
            let func = function(From::Start, start_func(), lines, &[]);
            let access = lines
                .iter()
                .find_map(|l| ACCESS.captures(l))
                .and_then(|c| c.get(1))
                .map(|m| m.as_str());
            let head = match access {
                Some(access) => format!("KASAN: {kind} {access} in {{func}}"),
                None => format!("KASAN: {kind} in {{func}}"),
            };
            with_func(&head, func)
        }
    }
}

/// A KASAN bug type as 4.4+ words it: 4.0-4.3 printed `use after free` and
/// `out of bounds access`.
fn kasan_bug(words: &str) -> String {
    let words = words.trim().strip_suffix(" access").unwrap_or(words.trim());
    words.replace(' ', "-")
}

/// Does `template` have a `{1}`-style slot?
fn has_slots(template: &str) -> bool {
    template
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'{' && w[1].is_ascii_digit())
}

/// `template` with `{1}`, `{2}` ... replaced by `captures`.
fn fill(template: &str, captures: Option<&regex::Captures<'_>>) -> String {
    let mut out = template.to_string();
    if let Some(c) = captures {
        for n in 1..c.len() {
            let value = c.get(n).map_or("", |m| m.as_str());
            out = out.replace(&format!("{{{n}}}"), value);
        }
    }
    out
}

/// The captures of `regex` on the first of `lines` it matches.
fn find_line<'l>(regex: &str, lines: &[&'l str]) -> Option<regex::Captures<'l>> {
    let re = FOUND
        .iter()
        .find(|(source, _)| *source == regex)
        .map(|(_, re)| re)?;
    // `is_match` first: it needs no captures, and most lines do not match.
    lines
        .iter()
        .find(|l| re.is_match(l))
        .and_then(|l| re.captures(l))
}

/// The `Find` regexes of the rules' titles and subjects, compiled once.
static FOUND: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let mut sources: Vec<&'static str> = RULES
        .iter()
        .flat_map(|r| {
            let title = match r.title {
                Title::Find { regex, .. } => Some(regex),
                _ => None,
            };
            let subject = match r.subject {
                Some(Subject::Find(regex, _)) => Some(regex),
                _ => None,
            };
            title.into_iter().chain(subject)
        })
        .collect();
    sources.sort_unstable();
    sources.dedup();
    sources
        .into_iter()
        .map(|s| (s, Regex::new(s).expect("static regex")))
        .collect()
});

/// The name the report of rule `index` is about (see `Finding::subject`):
/// debugfs paths lose the root's `/`.
pub(super) fn subject(index: usize, lines: &[&str], start: &Start<'_>) -> Option<String> {
    let raw = match RULES[index].subject? {
        Subject::Start(template) => fill(template, start.captures()),
        Subject::Find(regex, template) => fill(template, Some(&find_line(regex, lines)?)),
    };
    let name = if RULES[index].kind == Kind::DebugfsDuplicate {
        raw.trim_start_matches('/').replace("//", "/")
    } else {
        raw
    };
    (!name.is_empty()).then_some(name)
}

/// Put `func` into a title template, or drop ` in {func}` without one.
fn with_func(template: &str, func: Option<&str>) -> String {
    match func {
        Some(f) => template.replace("{func}", f),
        None => template.replace(" in {func}", "").replace("{func}", "?"),
    }
}

/// The function a report is "in", per its rule's [`From`].
fn function<'a>(
    from: From,
    start: Option<&'a str>,
    lines: &[&'a str],
    skip: &[&str],
) -> Option<&'a str> {
    let pc = || lines.iter().find_map(|l| stack::pc(l));
    let trace = || stack::report_frames(lines);
    match from {
        // Where every frame is generic machinery (a register dump without a
        // trace, `RIP: __slab_free`), the function the CPU was in still says
        // more than none, unless the rule itself excludes it.
        From::Start => {
            let pc_once = std::iter::once_with(pc).flatten();
            stack::first_unskipped(start.into_iter().chain(pc_once).chain(trace()), skip)
                .or_else(|| pc().filter(|f| !stack::skipped(f, skip)))
        }
        From::Pc => stack::first_unskipped(pc().into_iter().chain(trace()), skip)
            .or_else(|| pc().filter(|f| !stack::skipped(f, skip))),
        From::Trace => stack::first_unskipped(trace(), skip),
        From::After(marker) => {
            // What follows the marker is a `%pS` symbol, read as a frame.
            let named = lines.iter().find_map(|l| {
                let at = memchr::memmem::find(l.as_bytes(), marker.as_bytes())?;
                stack::frame(&l[at + marker.len()..])
            });
            stack::first_unskipped(named.into_iter().chain(trace()), skip)
        }
        From::LockAt(count) => {
            let at = lines
                .iter()
                .filter(|l| memchr::memmem::find(l.as_bytes(), b"at: ").is_some())
                .filter_map(|l| LOCK_AT.captures(l))
                .filter_map(|c| c.get(1))
                .map(|m| stack::clean(m.as_str()))
                .take(count);
            stack::first_unskipped(at.chain(trace()), skip)
        }
        From::Stall => stack::stall_function(lines),
        From::HungTask => stack::hung_task_function(lines),
        From::Workqueue => lines.iter().find_map(|l| {
            let rest = l.trim_start().strip_prefix("Workqueue: ")?;
            rest.split_whitespace().nth(1).map(stack::clean)
        }),
    }
}

/// Rust symbols in titles read as Rust paths: `WARNING in
/// _RNvCs…_15rust_i915_table12globals_exit` becomes `WARNING in
/// rust_i915_table::globals_exit` (v0 and legacy manglings, hash dropped).
pub(super) fn demangle_rust(title: &str) -> String {
    if !title.contains("_R") && !title.contains("_ZN") {
        return title.to_string();
    }
    title
        .split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c: char| matches!(c, '\'' | '(' | ')' | ','));
            match rustc_demangle::try_demangle(bare) {
                Ok(symbol) if bare.starts_with("_R") || bare.starts_with("_ZN") => {
                    word.replace(bare, &format!("{symbol:#}"))
                }
                _ => word.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The title of a failed KTAP test, inside `suite` if one is known.
pub(super) fn ktap(test: &str, suite: Option<&str>) -> String {
    match suite {
        Some(suite) => format!("KTAP: not ok {suite}/{test}"),
        None => format!("KTAP: not ok {test}"),
    }
}

/// The test a KTAP/KUnit result line of rule `index` names.
pub(super) fn ktap_test(index: usize, line: &str) -> &str {
    TABLE
        .captures(index, line)
        .and_then(|c| c.get(1))
        .map_or("", |m| m.as_str())
}

#[cfg(test)]
mod demangle_tests {
    #[test]
    fn rust_symbols_become_paths() {
        assert_eq!(
            super::demangle_rust("WARNING in _RNvCskUQIOShT3pq_15rust_i915_table12globals_exit"),
            "WARNING in rust_i915_table::globals_exit"
        );
        assert_eq!(
            super::demangle_rust("WARNING in kmem_cache_destroy"),
            "WARNING in kmem_cache_destroy"
        );
        assert_eq!(
            super::demangle_rust("memory leak in _Rfoo"),
            "memory leak in _Rfoo"
        );
    }
}
