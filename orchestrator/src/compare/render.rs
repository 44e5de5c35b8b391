//! A comparison as terminal text, as markdown for a pull-request comment,
//! and as JSON (pure: comparison in, text out).

use super::{Category, Comparison, Entry, Side};

/// Names listed at most for "only in base/new" in text and markdown; JSON has all.
const MAX_LISTED: usize = 20;

/// Plain text, mail style: heading, notes, one section per non-empty category.
pub fn text(comparison: &Comparison) -> String {
    let mut out = format!(
        "kcycle compare: {} -> {}\n  base: {}\n  new:  {}\n",
        comparison.base.label,
        comparison.new.label,
        describe(&comparison.base),
        describe(&comparison.new)
    );
    for note in &comparison.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    for (which, names) in only_lists(comparison) {
        out.push_str(&format!(
            "  only in {which}: {}\n",
            listed(names, |n| n.into())
        ));
    }
    for category in Category::ALL {
        let entries: Vec<&Entry> = comparison.of(category).collect();
        if entries.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{} ({}):\n", category.heading(), entries.len()));
        for entry in entries {
            out.push_str(&format!(
                "  {}: {} -> {}\n",
                entry.test, entry.base, entry.new
            ));
            for finding in &entry.findings {
                out.push_str(&format!(
                    "    [{}] {}  (fingerprint {})\n",
                    finding.kind, finding.title, finding.fingerprint
                ));
                if let Some(attribution) = &finding.attribution {
                    out.push_str(&format!("      {attribution}\n"));
                }
                if let Some(reason) = &finding.known_issue {
                    out.push_str(&format!("      known issue: {reason}\n"));
                }
            }
        }
    }
    out.push_str(&format!("\nVerdict: {}\n", comparison.verdict()));
    out
}

/// Markdown for a pull-request comment: the verdict first, then a section per category.
pub fn markdown(comparison: &Comparison) -> String {
    let headline = match comparison.of(Category::NewFailure).count() {
        0 => "no new failures".to_string(),
        1 => "**1 possible regression**".to_string(),
        n => format!("**{n} possible regressions**"),
    };
    let mut out = format!(
        "### kcycle: {headline}\n\n{}\n\n| | run | kernel | tests |\n|---|---|---|---|\n",
        comparison.verdict()
    );
    for (which, side) in [("base", &comparison.base), ("new", &comparison.new)] {
        out.push_str(&format!(
            "| {which} | {} | {} | {} |\n",
            cell(&side.label),
            cell(&side.kernel),
            side.tests
        ));
    }
    if !comparison.notes.is_empty() {
        out.push('\n');
        for note in &comparison.notes {
            out.push_str(&format!("> **Note:** {note}\n>\n"));
        }
        out.truncate(out.len() - 2);
    }
    for (which, names) in only_lists(comparison) {
        out.push_str(&format!("\nOnly in {which}: {}\n", listed(names, code)));
    }
    for category in Category::ALL {
        let entries: Vec<&Entry> = comparison.of(category).collect();
        if entries.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n#### {} ({})\n\n",
            category.heading(),
            entries.len()
        ));
        for entry in entries {
            out.push_str(&format!(
                "- {}: {} → **{}**\n",
                code(&entry.test),
                entry.base,
                entry.new
            ));
            for finding in &entry.findings {
                let mut line = format!(
                    "  - `{}` {} (fingerprint `{}`)",
                    finding.kind,
                    code(&finding.title),
                    finding.fingerprint
                );
                if let Some(attribution) = &finding.attribution {
                    line.push_str(&format!(", {}", escape(attribution)));
                }
                if let Some(reason) = &finding.known_issue {
                    line.push_str(&format!(", known issue: {}", escape(reason)));
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

/// The comparison as pretty JSON.
pub fn json(comparison: &Comparison) -> String {
    serde_json::to_string_pretty(comparison).unwrap_or_else(|_| "{}".into()) + "\n"
}

fn describe(side: &Side) -> String {
    let kernel = if side.kernel.is_empty() {
        "unknown kernel"
    } else {
        &side.kernel
    };
    let accel = if side.accel.is_empty() {
        String::new()
    } else {
        format!(" ({})", side.accel)
    };
    format!(
        "{} tests, kernel {kernel}{accel}, suites {}",
        side.tests,
        side.suites.join(", ")
    )
}

fn only_lists(comparison: &Comparison) -> Vec<(&'static str, &[String])> {
    [
        ("base", comparison.only_in_base.as_slice()),
        ("new", comparison.only_in_new.as_slice()),
    ]
    .into_iter()
    .filter(|(_, names)| !names.is_empty())
    .collect()
}

/// `n tests: a, b, c, and m more`.
fn listed(names: &[String], show: impl Fn(&str) -> String) -> String {
    let shown: Vec<String> = names.iter().take(MAX_LISTED).map(|n| show(n)).collect();
    let more = names.len().saturating_sub(MAX_LISTED);
    let tail = if more > 0 {
        format!(", and {more} more")
    } else {
        String::new()
    };
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("{} test{plural}: {}{tail}", names.len(), shown.join(", "))
}

/// Inline code that survives any title: backticks would end the span.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('\n', " "))
}

/// Text outside code spans: no table breaks, no HTML, no line breaks.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', " ")
}

/// A table cell.
fn cell(text: &str) -> String {
    if text.is_empty() {
        "?".into()
    } else {
        code(text).replace('|', "\\|")
    }
}
