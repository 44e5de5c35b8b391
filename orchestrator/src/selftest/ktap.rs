//! KTAP, as KUnit prints it (Documentation/dev-tools/ktap.rst): nested test
//! plans whose results are `ok N name` / `not ok N name`, an optional
//! `# SKIP reason` directive, and `# Subtest: name` opening a nested suite
//! whose own result line follows its children at the outer indentation.

use super::{sanitize, Subtest, SubtestOutcome};

struct OpenSuite {
    indent: usize,
    name: String,
    had_results: bool,
    first_line: usize,
}

/// Leaf results of every KTAP test in `messages`, named `suite@case[@param]`.
pub fn ktap_subtests(messages: &[&str]) -> Vec<Subtest> {
    let mut subtests = Vec::new();
    let mut stack: Vec<OpenSuite> = Vec::new();
    let mut case_start = 0;

    for (index, message) in messages.iter().enumerate() {
        let indent = message.len() - message.trim_start().len();
        let text = message.trim();
        if let Some(name) = text.strip_prefix("# Subtest: ") {
            stack.push(OpenSuite {
                indent,
                name: sanitize(name.trim()),
                had_results: false,
                first_line: index,
            });
            case_start = index + 1;
            continue;
        }
        let Some((passed, rest)) = parse_result(text) else {
            continue;
        };
        let (name, directive) = match rest.split_once(" # ") {
            Some((name, directive)) => (name.trim(), Some(directive.trim())),
            None => (rest.trim(), None),
        };
        // A result at a shallower indentation than the innermost suite is
        // that suite's own line: an aggregate when the suite had results of
        // its own (skip it), the only result when it had none (keep it).
        let mut first_line = case_start;
        let mut aggregate = false;
        while stack.last().is_some_and(|s| indent < s.indent) {
            let Some(suite) = stack.pop() else { break };
            first_line = suite.first_line;
            aggregate = suite.had_results;
        }
        if aggregate {
            if let Some(parent) = stack.last_mut() {
                parent.had_results = true;
            }
            case_start = index + 1;
            continue;
        }
        if let Some(parent) = stack.last_mut() {
            parent.had_results = true;
        }
        let mut parts: Vec<String> = stack.iter().map(|s| s.name.clone()).collect();
        parts.push(sanitize(name));
        let outcome = match (passed, directive) {
            (_, Some(d)) if d.to_ascii_uppercase().starts_with("SKIP") => {
                SubtestOutcome::Skip(d[4..].trim().to_string())
            }
            (true, _) => SubtestOutcome::Pass,
            (false, _) => SubtestOutcome::Fail(diagnostic(&messages[first_line.min(index)..index])),
        };
        subtests.push(Subtest {
            name: parts.join("@"),
            outcome,
            first_line: first_line.min(index),
            end_line: index + 1,
        });
        case_start = index + 1;
    }
    subtests
}

/// `ok 3 name…` → (true, "name…"); `not ok 3 name…` → (false, "name…").
fn parse_result(text: &str) -> Option<(bool, &str)> {
    let (passed, rest) = if let Some(rest) = text.strip_prefix("not ok ") {
        (false, rest)
    } else if let Some(rest) = text.strip_prefix("ok ") {
        (true, rest)
    } else {
        return None;
    };
    let (number, name) = rest.split_once(' ').unwrap_or((rest, ""));
    number.parse::<u64>().ok()?;
    Some((passed, name))
}

/// KUnit prints failure details as `# ...` lines before the result.
fn diagnostic(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("# ") && !l.starts_with("# Subtest:"))
        .map(|l| l[2..].to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_suites_and_directives() {
        let log = [
            "KTAP version 1",
            "1..2",
            "    KTAP version 1",
            "    # Subtest: list-kernel-test",
            "    # module: list_test",
            "    1..3",
            "    ok 1 list_test_list_init",
            "    # list_test_list_add: EXPECTATION FAILED at lib/list-test.c:40",
            "    not ok 2 list_test_list_add",
            "    ok 3 list_test_x # SKIP not on this arch",
            "not ok 1 list-kernel-test",
            "    KTAP version 1",
            "    # Subtest: empty-suite",
            "    1..0",
            "not ok 2 empty-suite",
        ];
        let subtests = ktap_subtests(&log);
        let summary: Vec<_> = subtests
            .iter()
            .map(|s| (s.name.as_str(), s.outcome.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("list-kernel-test@list_test_list_init", SubtestOutcome::Pass),
                (
                    "list-kernel-test@list_test_list_add",
                    SubtestOutcome::Fail(
                        "list_test_list_add: EXPECTATION FAILED at lib/list-test.c:40".into()
                    )
                ),
                (
                    "list-kernel-test@list_test_x",
                    SubtestOutcome::Skip("not on this arch".into())
                ),
                ("empty-suite", SubtestOutcome::Fail(String::new())),
            ]
        );
    }

    #[test]
    fn parameterized_cases_nest_one_level_deeper() {
        let log = [
            "    # Subtest: s",
            "        # Subtest: case",
            "        ok 1 param-a",
            "        ok 2 param b",
            "    ok 1 case",
            "ok 1 s",
        ];
        let names: Vec<_> = ktap_subtests(&log).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["s@case@param-a", "s@case@param-b"]);
    }

    #[test]
    fn garbage_is_ignored() {
        assert!(ktap_subtests(&["ok", "not ok x y", "# Subtest:", "okay 1 x"]).is_empty());
    }
}
