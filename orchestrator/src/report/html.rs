//! `index.html`: one self-contained page for people (pure: results in, HTML
//! text out). No scripts, no network: inline CSS and hand-drawn SVG, so the
//! file opens from a CI artifact, an e-mail or a printout alike.
//!
//! Layout: the run's facts, status counts, a table of every test, each
//! failing test opened to its findings (title, attribution, report), the
//! per-cycle charts, then every test's own logs (out, err, dmesg) collapsed,
//! with links to the guest console logs beside the file.

use std::fmt::Write;

use serde::Serialize;

use crate::outcome::{RunInfo, TestResult};
use crate::status::Status;

/// A results directory's files the page links to, relative to it
/// (`console-rust-table-guest0.log`, `shard-1-of-2/console-…`).
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub consoles: Vec<String>,
}

/// One panel of the per-cycle section: a named series of values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub title: String,
    pub unit: String,
    /// `(label, value)`: "cycle 3" or a test name.
    pub points: Vec<(String, f64)>,
    /// Drawn as a line over cycles; otherwise as bars (one per test).
    pub per_cycle: bool,
}

/// The per-cycle section's data and what it shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Charts {
    /// Says what the panels are, e.g. that the results have no per-cycle counters.
    pub note: String,
    pub series: Vec<Series>,
}

/// Counters drawn per test, besides its leftovers: those that moved most.
const COUNTERS_PER_TEST: usize = 4;
/// Panels at most, so a run of hundreds of tests keeps a readable page.
const MAX_PANELS: usize = 60;

/// DATA HOOK (per-cycle chart): the series the per-cycle section draws, from
/// each test's `cycles` (the samples the runner takes after every cycle):
/// leftovers, and the counters (`meminfo:*` kB, `slab:*` objects) that moved
/// most from the first cycle to the last. Results without samples (older
/// runs, single-cycle tests) fall back to each test's duration, and the note says so.
pub fn charts(results: &[TestResult]) -> Charts {
    let sampled: Vec<&TestResult> = results
        .iter()
        .filter(|r| is_top_level(&r.name) && !r.cycles.is_empty())
        .collect();
    if sampled.is_empty() {
        return durations(results);
    }
    let mut series = Vec::new();
    for result in &sampled {
        let label = |c: &crate::outcome::CycleSample| format!("cycle {}", c.cycle);
        series.push(Series {
            title: format!("{}: leftovers", result.name),
            unit: "names".into(),
            points: result
                .cycles
                .iter()
                .map(|c| (label(c), c.leftovers as f64))
                .collect(),
            per_cycle: true,
        });
        for name in moving_counters(&result.cycles) {
            series.push(Series {
                title: format!("{}: {name}", result.name),
                unit: if name.starts_with("meminfo:") {
                    "kB"
                } else {
                    "objects"
                }
                .into(),
                points: result
                    .cycles
                    .iter()
                    .map(|c| (label(c), c.counters.get(&name).copied().unwrap_or(0) as f64))
                    .collect(),
                per_cycle: true,
            });
        }
    }
    let shown = series.len().min(MAX_PANELS);
    series.truncate(MAX_PANELS);
    Charts {
        note: format!(
            "Sampled after every cycle ({} sampled test{}): names left behind so far, and \
             the up to {COUNTERS_PER_TEST} counters per test that moved most from the first \
             cycle to the last ({shown} panels).",
            sampled.len(),
            if sampled.len() == 1 { "" } else { "s" }
        ),
        series,
    }
}

/// The counters that changed most over the samples, largest relative change first.
fn moving_counters(cycles: &[crate::outcome::CycleSample]) -> Vec<String> {
    let (Some(first), Some(last)) = (cycles.first(), cycles.last()) else {
        return Vec::new();
    };
    let mut moved: Vec<(f64, &String)> = last
        .counters
        .iter()
        .filter_map(|(name, &end)| {
            let start = *first.counters.get(name)?;
            let change = (end as f64 - start as f64).abs() / (start.max(1) as f64);
            (end != start).then_some((change, name))
        })
        .collect();
    moved.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    moved
        .into_iter()
        .take(COUNTERS_PER_TEST)
        .map(|(_, name)| name.clone())
        .collect()
}

/// Without per-cycle samples: each test's duration, and a note that says so.
fn durations(results: &[TestResult]) -> Charts {
    let points: Vec<(String, f64)> = results
        .iter()
        .filter(|r| is_top_level(&r.name))
        .map(|r| (r.name.clone(), r.duration.as_secs_f64()))
        .collect();
    Charts {
        note: "These results carry no per-cycle samples (older runs, or tests of one \
               cycle); the panel shows each test's duration instead."
            .into(),
        series: if points.is_empty() {
            Vec::new()
        } else {
            vec![Series {
                title: "duration per test".into(),
                unit: "s".into(),
                points,
                per_cycle: false,
            }]
        },
    }
}

/// `kcycle@suite@test` (not a selftest subtest `kcycle@suite@test@subtest`).
fn is_top_level(name: &str) -> bool {
    name.matches('@').count() <= 2
}

/// Render the whole page.
pub fn render(run: &RunInfo, results: &[TestResult], links: &Links) -> String {
    let failing: Vec<&TestResult> = results.iter().filter(|r| r.fails_run()).collect();
    let verdict = if failing.is_empty() {
        "passed"
    } else {
        "FAILED"
    };
    let mut html = String::with_capacity(16 * 1024 + results.len() * 2048);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>kcycle: {verdict} ({} tests)</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <a class=\"skip\" href=\"#tests\">Skip to the tests</a>\n",
        results.len()
    );
    header(&mut html, run, results, verdict);
    html.push_str("<main>\n");
    counts(&mut html, results);
    test_table(&mut html, results);
    failures(&mut html, &failing);
    chart_section(&mut html, &charts(results));
    logs(&mut html, results, links);
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

fn header(html: &mut String, run: &RunInfo, results: &[TestResult], verdict: &str) {
    let total: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
    let _ = write!(
        html,
        "<header>\n<h1>kcycle: <span class=\"verdict verdict-{}\">{verdict}</span> \
         ({} tests)</h1>\n<dl class=\"facts\">\n",
        verdict.to_ascii_lowercase(),
        results.len()
    );
    let started = if run.started_at > 0.0 {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(run.started_at);
        humantime::format_rfc3339_seconds(at).to_string()
    } else {
        String::new()
    };
    let total = format!("{total:.1} s");
    let cmdline = run.cmdline.join(" ");
    let more = [
        ("host", run.hostname.as_str()),
        ("started", started.as_str()),
        ("test time", total.as_str()),
        ("command", cmdline.as_str()),
    ];
    for (key, value) in super::summary::run_facts(run).into_iter().chain(more) {
        if !value.is_empty() {
            let slug = key.replace(' ', "-");
            let _ = writeln!(
                html,
                "<div><dt>{key}</dt><dd data-fact=\"{slug}\">{}</dd></div>",
                escape(value)
            );
        }
    }
    html.push_str("</dl>\n</header>\n");
}

fn counts(html: &mut String, results: &[TestResult]) {
    html.push_str(
        "<section aria-labelledby=\"counts-h\">\n<h2 id=\"counts-h\">Statuses</h2>\n\
         <table class=\"counts\">\n<thead><tr><th scope=\"col\">status</th>\
         <th scope=\"col\">tests</th></tr></thead>\n<tbody>\n",
    );
    for status in Status::ALL.iter().rev() {
        let count = results.iter().filter(|r| r.status == *status).count();
        if count > 0 {
            let _ = writeln!(
                html,
                "<tr><th scope=\"row\">{}</th><td class=\"num\" data-count=\"{status}\">{count}</td></tr>",
                badge(*status)
            );
        }
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
}

fn test_table(html: &mut String, results: &[TestResult]) {
    html.push_str(
        "<section aria-labelledby=\"tests-h\" id=\"tests\">\n<h2 id=\"tests-h\">Tests</h2>\n\
         <table class=\"tests\">\n<thead><tr><th scope=\"col\">test</th>\
         <th scope=\"col\">status</th><th scope=\"col\" class=\"num\">duration</th>\
         <th scope=\"col\">finding</th><th scope=\"col\">logs</th></tr></thead>\n<tbody>\n",
    );
    for result in results {
        let finding = match result.headline() {
            Some(f) => escape(&f.title),
            None => escape(result.err.lines().next().unwrap_or("")),
        };
        let name = if result.fails_run() {
            format!(
                "<a href=\"#{}\">{}</a>",
                anchor("finding", &result.name),
                escape(&result.name)
            )
        } else {
            escape(&result.name)
        };
        let known = if result.status.is_failure() && !result.fails_run() {
            " <span class=\"known\">known issue</span>"
        } else {
            ""
        };
        let _ = writeln!(
            html,
            "<tr data-test=\"{}\" data-status=\"{}\"><th scope=\"row\">{name}</th><td>{}{known}</td>\
             <td class=\"num\">{:.2} s</td><td>{finding}</td><td><a href=\"#{}\">logs</a></td></tr>",
            escape(&result.name),
            result.status,
            badge(result.status),
            result.duration.as_secs_f64(),
            anchor("log", &result.name),
        );
    }
    html.push_str("</tbody>\n</table>\n</section>\n");
}

fn failures(html: &mut String, failing: &[&TestResult]) {
    html.push_str("<section aria-labelledby=\"fail-h\">\n<h2 id=\"fail-h\">Failures</h2>\n");
    if failing.is_empty() {
        html.push_str("<p>No test failed the run.</p>\n");
    }
    for result in failing {
        let _ = writeln!(
            html,
            "<details open class=\"failure\" id=\"{}\" data-failing=\"{}\">\n\
             <summary><code>{}</code> {}</summary>",
            anchor("finding", &result.name),
            escape(&result.name),
            escape(&result.name),
            badge(result.status)
        );
        let mut findings: Vec<_> = result.findings.iter().collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for finding in findings {
            let _ = write!(
                html,
                "<article class=\"finding\">\n<h3><span class=\"kind\">{}</span> {}</h3>\n",
                escape(finding.kind.name()),
                escape(&finding.title)
            );
            if let Some(attribution) = &finding.attribution {
                let _ = writeln!(html, "<p class=\"attribution\">{}</p>", escape(attribution));
            }
            if let Some(reason) = &finding.known_issue {
                let _ = writeln!(
                    html,
                    "<p class=\"known\">known issue: {}</p>",
                    escape(reason)
                );
            }
            if !finding.report.is_empty() {
                let _ = writeln!(
                    html,
                    "<pre class=\"report\">{}</pre>",
                    escape(&finding.report)
                );
            }
            html.push_str("</article>\n");
        }
        if result.findings.is_empty() && !result.err.is_empty() {
            let _ = writeln!(html, "<pre class=\"report\">{}</pre>", escape(&result.err));
        }
        let _ = writeln!(
            html,
            "<p><a href=\"#{}\">this test's logs</a></p>\n</details>",
            anchor("log", &result.name)
        );
    }
    html.push_str("</section>\n");
}

/// The per-cycle section: the marked place the charts go, with their data as
/// JSON for anyone who wants to draw them differently.
fn chart_section(html: &mut String, charts: &Charts) {
    html.push_str(
        "<!-- PER-CYCLE CHART: drawn from report::html::charts(); see its doc comment. -->\n\
         <section aria-labelledby=\"cycles-h\" id=\"per-cycle\" data-kcycle-hook=\"per-cycle\">\n\
         <h2 id=\"cycles-h\">Per cycle</h2>\n",
    );
    let _ = writeln!(html, "<p class=\"note\">{}</p>", escape(&charts.note));
    html.push_str("<div class=\"panels\">\n");
    for (i, series) in charts.series.iter().enumerate() {
        if series.per_cycle {
            html.push_str(&line_chart(series, i));
        } else {
            html.push_str(&bar_chart(series, i));
        }
    }
    html.push_str("</div>\n");
    let data = serde_json::to_string(charts)
        .unwrap_or_default()
        .replace("</", "<\\/");
    let _ = writeln!(
        html,
        "<script type=\"application/json\" id=\"kcycle-chart-data\">{data}</script>\n</section>"
    );
}

const BAR_HEIGHT: usize = 18;
const LABEL_WIDTH: usize = 320;
const PLOT_WIDTH: usize = 420;

/// A horizontal bar chart of one series, as inline SVG with a text alternative.
fn bar_chart(series: &Series, index: usize) -> String {
    let max = series.points.iter().map(|(_, v)| *v).fold(0.0f64, f64::max);
    let height = 28 + series.points.len() * (BAR_HEIGHT + 4);
    let width = LABEL_WIDTH + PLOT_WIDTH + 80;
    let id = format!("chart-{index}");
    let mut svg = format!(
        "<figure class=\"chart\">\n<svg role=\"img\" aria-labelledby=\"{id}-t\" \
         viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n<title id=\"{id}-t\">{} ({})</title>\n",
        escape(&series.title),
        escape(&series.unit)
    );
    for (row, (label, value)) in series.points.iter().enumerate() {
        let y = 20 + row * (BAR_HEIGHT + 4);
        let length = if max > 0.0 {
            (value / max * PLOT_WIDTH as f64).max(1.0)
        } else {
            1.0
        };
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">{}</text>\
             <rect x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{length:.1}\" height=\"{BAR_HEIGHT}\" class=\"bar\"/>\
             <text x=\"{:.1}\" y=\"{}\" class=\"value\">{value:.2} {}</text>",
            LABEL_WIDTH - 6,
            y + BAR_HEIGHT - 5,
            escape(&shorten(label, 44)),
            LABEL_WIDTH as f64 + length + 4.0,
            y + BAR_HEIGHT - 5,
            escape(&series.unit)
        );
    }
    let _ = write!(
        svg,
        "</svg>\n<figcaption>{}</figcaption>\n</figure>\n",
        escape(&series.title)
    );
    svg
}

const LINE_WIDTH: f64 = 340.0;
const LINE_HEIGHT: f64 = 110.0;
const LINE_LEFT: f64 = 64.0;
const LINE_TOP: f64 = 10.0;

/// A small line chart of one series over cycles, as inline SVG: the y axis
/// from the series' minimum to its maximum, each point with its value as a
/// tooltip, and the values as text for screen readers.
fn line_chart(series: &Series, index: usize) -> String {
    let values: Vec<f64> = series.points.iter().map(|(_, v)| *v).collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if max > min { max - min } else { 1.0 };
    let step = LINE_WIDTH / (values.len().max(2) - 1) as f64;
    let at = |i: usize, v: f64| {
        let x = LINE_LEFT + step * i as f64;
        let y = LINE_TOP + LINE_HEIGHT - (v - min) / span * LINE_HEIGHT;
        (x, y)
    };
    let id = format!("chart-{index}");
    let (width, height) = (LINE_LEFT + LINE_WIDTH + 16.0, LINE_TOP + LINE_HEIGHT + 30.0);
    let described: Vec<String> = series
        .points
        .iter()
        .map(|(label, v)| format!("{label}: {v}"))
        .collect();
    let mut svg = format!(
        "<figure class=\"chart\">\n<svg role=\"img\" aria-labelledby=\"{id}-t {id}-d\" \
         viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n<title id=\"{id}-t\">{} ({})</title>\n\
         <desc id=\"{id}-d\">{}</desc>\n",
        escape(&series.title),
        escape(&series.unit),
        escape(&described.join(", "))
    );
    let bottom = LINE_TOP + LINE_HEIGHT;
    axes(&mut svg, min, max);
    let path: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (x, y) = at(i, v);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = writeln!(
        svg,
        "<polyline points=\"{}\" class=\"line\"/>",
        path.join(" ")
    );
    for (i, (label, v)) in series.points.iter().enumerate() {
        let (x, y) = at(i, *v);
        let _ = writeln!(
            svg,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" class=\"point\"><title>{}: {}</title></circle>",
            escape(label),
            number(*v)
        );
    }
    if let (Some((first, _)), Some((last, _))) = (series.points.first(), series.points.last()) {
        let _ = writeln!(
            svg,
            "<text x=\"{LINE_LEFT}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            bottom + 16.0,
            escape(first),
            LINE_LEFT + LINE_WIDTH,
            bottom + 16.0,
            escape(last)
        );
    }
    let _ = write!(
        svg,
        "</svg>\n<figcaption>{} ({})</figcaption>\n</figure>\n",
        escape(&series.title),
        escape(&series.unit)
    );
    svg
}

/// The chart's two axes, labelled with the series' maximum and minimum.
fn axes(svg: &mut String, min: f64, max: f64) {
    let bottom = LINE_TOP + LINE_HEIGHT;
    let _ = write!(
        svg,
        "<line x1=\"{LINE_LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" class=\"axis\"/>\
         <line x1=\"{LINE_LEFT}\" y1=\"{LINE_TOP}\" x2=\"{LINE_LEFT}\" y2=\"{bottom}\" class=\"axis\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{bottom}\" text-anchor=\"end\">{}</text>\n",
        LINE_LEFT + LINE_WIDTH,
        LINE_LEFT - 4.0,
        LINE_TOP + 8.0,
        number(max),
        LINE_LEFT - 4.0,
        number(min),
    );
}

/// A value for an axis label: integers as integers.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// Every test's own logs, collapsed, and the guest consoles of its suite.
fn logs(html: &mut String, results: &[TestResult], links: &Links) {
    html.push_str(
        "<section aria-labelledby=\"logs-h\" class=\"logs\">\n<h2 id=\"logs-h\">Logs</h2>\n",
    );
    if !links.consoles.is_empty() {
        html.push_str("<h3>Guest consoles</h3>\n<ul class=\"consoles\">\n");
        for console in &links.consoles {
            let _ = writeln!(
                html,
                "<li><a href=\"{}\">{}</a></li>",
                escape(console),
                escape(console)
            );
        }
        html.push_str("</ul>\n");
    }
    for result in results {
        let _ = writeln!(
            html,
            "<details class=\"log\" id=\"{}\">\n<summary><code>{}</code> {}</summary>",
            anchor("log", &result.name),
            escape(&result.name),
            badge(result.status)
        );
        let prefix = format!("console-{}-", result.suite);
        let consoles: Vec<&String> = links
            .consoles
            .iter()
            .filter(|c| c.rsplit('/').next().is_some_and(|f| f.starts_with(&prefix)))
            .collect();
        if !consoles.is_empty() {
            html.push_str("<p>console:");
            for console in consoles {
                let _ = write!(html, " <a href=\"{0}\">{0}</a>", escape(console));
            }
            html.push_str("</p>\n");
        }
        for (label, text) in [
            ("out", &result.out),
            ("err", &result.err),
            ("dmesg", &result.dmesg),
        ] {
            if !text.is_empty() {
                let _ = writeln!(html, "<h4>{label}</h4>\n<pre>{}</pre>", escape(text));
            }
        }
        html.push_str("</details>\n");
    }
    html.push_str("</section>\n");
}

/// A status as text (never colour alone) with a class for its colour.
fn badge(status: Status) -> String {
    let class = match status {
        Status::Pass => "ok",
        Status::Skip | Status::Notrun => "skip",
        Status::DmesgWarn | Status::Warn => "warn",
        Status::DmesgFail | Status::Fail => "fail",
        Status::Timeout | Status::Crash | Status::Incomplete | Status::Abort => "broken",
    };
    format!("<span class=\"status status-{class}\">{status}</span>")
}

/// A fragment id from a test name: letters, digits, `-` and `_` kept, the rest `-`.
fn anchor(prefix: &str, name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{slug}")
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let tail: String = text
        .chars()
        .skip(text.chars().count() - (max - 1))
        .collect();
    format!("…{tail}")
}

/// Escape for HTML text and attributes. Control characters that kernel logs
/// carry (ESC, NUL) are not allowed in HTML: they become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root { --fg:#1a1a1a; --bg:#fff; --muted:#555; --line:#ccc; --ok:#1b6e2a; --warn:#8a5a00;
  --fail:#b00020; --broken:#6a1b9a; --skip:#555; --bar:#2f5d8a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; padding: 1rem 1.5rem 3rem; max-width: 80rem; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: #ff0; padding: .3rem; }
h1 { font-size: 1.6rem; margin: .2rem 0 .8rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid var(--line); margin-top: 2rem; }
h3 { font-size: 1.05rem; margin: .8rem 0 .3rem; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr));
  gap: .2rem 1.5rem; margin: 0; }
.facts div { display: flex; gap: .5rem; min-width: 0; }
.facts dt { font-weight: 600; white-space: nowrap; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
table.counts { width: auto; }
th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
thead th { border-bottom: 2px solid var(--fg); }
tbody th { font-weight: normal; font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.status { display: inline-block; padding: 0 .4rem; border: 1px solid currentColor;
  border-radius: .25rem; font-weight: 600; font-size: .9em; white-space: nowrap; }
.status-ok { color: var(--ok); } .status-warn { color: var(--warn); }
.status-fail { color: var(--fail); } .status-broken { color: var(--broken); }
.status-skip { color: var(--skip); }
.verdict-passed { color: var(--ok); } .verdict-failed { color: var(--fail); }
.known { color: var(--muted); font-style: italic; }
details { border: 1px solid var(--line); border-radius: .3rem; padding: .4rem .8rem;
  margin: .6rem 0; }
details.failure { border-left: .3rem solid var(--fail); }
summary { cursor: pointer; font-weight: 600; }
summary:focus-visible, a:focus-visible { outline: 3px solid #1a73e8; outline-offset: 2px; }
.kind { font-family: ui-monospace, monospace; color: var(--muted); font-weight: normal; }
.attribution { font-weight: 600; margin: .2rem 0; }
pre { background: #f5f5f5; border: 1px solid var(--line); padding: .5rem; overflow-x: auto;
  font: 13px/1.35 ui-monospace, "DejaVu Sans Mono", monospace; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.chart svg { max-width: 100%; height: auto; }
.chart .bar { fill: var(--bar); }
.panels { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; }
.chart { margin: .5rem 0; }
.chart figcaption { font-size: .85em; overflow-wrap: anywhere; max-width: 26rem; }
.chart .line { fill: none; stroke: var(--bar); stroke-width: 2; }
.chart .point { fill: var(--bar); }
.chart .axis { stroke: var(--muted); stroke-width: 1; }
.chart text { font: 12px ui-monospace, monospace; fill: var(--fg); }
.note { color: var(--muted); }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  .skip, .logs { display: none; }
  details { border-color: #999; break-inside: avoid-page; }
  details.failure { border-left: 3pt solid #000; }
  pre { background: none; max-height: none; font-size: 8.5pt; }
  a { color: inherit; text-decoration: none; }
  .status { border-width: 1pt; }
  tr, article, figure { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>\x1b[0m\x00\n"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{fffd}[0m\u{fffd}\n"
        );
    }

    #[test]
    fn anchors_are_fragment_safe() {
        assert_eq!(
            anchor("log", "kcycle@rust-table@load 1"),
            "log-kcycle-rust-table-load-1"
        );
    }

    #[test]
    fn subtests_are_not_top_level() {
        assert!(is_top_level("kcycle@i915-mock@load"));
        assert!(!is_top_level("kcycle@i915-mock@load@sanitycheck"));
    }

    fn sampled(name: &str, samples: &[(u64, u64, usize)]) -> TestResult {
        let mut result: TestResult = serde_json::from_value(serde_json::json!({
            "name": name, "suite": "s", "status": "pass", "start": 0.0,
            "duration": {"secs": 2, "nanos": 0}, "findings": [], "out": "", "err": "", "dmesg": ""
        }))
        .unwrap();
        result.cycles = samples
            .iter()
            .enumerate()
            .map(
                |(i, &(slab, free, leftovers))| crate::outcome::CycleSample {
                    cycle: i as u32 + 1,
                    counters: [
                        ("slab:rust_i915_vma".to_string(), slab),
                        ("meminfo:MemFree".to_string(), free),
                        ("slab:steady".to_string(), 7),
                    ]
                    .into(),
                    leftovers,
                },
            )
            .collect();
        result
    }

    #[test]
    fn per_cycle_samples_become_line_panels_of_leftovers_and_moving_counters() {
        let results = [
            sampled(
                "kcycle@s@leaks",
                &[(10, 1000, 0), (20, 990, 1), (30, 985, 2)],
            ),
            sampled("kcycle@s@leaks@subtest", &[(1, 1, 0)]),
        ];
        let charts = charts(&results);
        let titles: Vec<&str> = charts.series.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "kcycle@s@leaks: leftovers",
                "kcycle@s@leaks: slab:rust_i915_vma",
                "kcycle@s@leaks: meminfo:MemFree"
            ],
            "the steady counter and the subtest are left out"
        );
        assert!(charts.series.iter().all(|s| s.per_cycle));
        assert_eq!(charts.series[1].points[2], ("cycle 3".to_string(), 30.0));
        assert_eq!(charts.series[2].unit, "kB");
        assert!(charts.note.contains("(1 sampled test)"), "{}", charts.note);
        let svg = line_chart(&charts.series[1], 1);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("<desc id=\"chart-1-d\">cycle 1: 10, cycle 2: 20, cycle 3: 30</desc>"));
    }

    #[test]
    fn without_samples_the_panel_is_durations_and_says_so() {
        let mut plain = sampled("kcycle@s@a", &[]);
        plain.cycles.clear();
        let charts = charts(&[plain]);
        assert!(
            charts.note.contains("no per-cycle samples"),
            "{}",
            charts.note
        );
        assert_eq!(charts.series.len(), 1);
        assert!(!charts.series[0].per_cycle);
        assert_eq!(charts.series[0].points, [("kcycle@s@a".to_string(), 2.0)]);
    }

    #[test]
    fn long_labels_keep_their_end() {
        let short = shorten("kcycle@rust-table@a-very-long-test-name", 12);
        assert_eq!(short.chars().count(), 12);
        assert!(short.ends_with("name"), "{short}");
    }
}
