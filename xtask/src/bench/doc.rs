//! The benchmark document: what `just bench` measured, as markdown (pure).

use super::stats::{ratio, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
    Micros,
    KiB,
    Count,
    MegabytesPerSecond,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Millis => "ms",
            Unit::Micros => "µs",
            Unit::KiB => "KiB",
            Unit::Count => "",
            Unit::MegabytesPerSecond => "MB/s",
        }
    }

    fn format(self, value: f64) -> String {
        let number = match self {
            Unit::Seconds if value < 10.0 => format!("{value:.3}"),
            Unit::Seconds | Unit::Millis | Unit::MegabytesPerSecond => format!("{value:.1}"),
            Unit::Micros => format!("{value:.2}"),
            Unit::KiB | Unit::Count => format!("{value:.0}"),
        };
        match self.suffix() {
            "" => number,
            suffix => format!("{number} {suffix}"),
        }
    }
}

/// A figure's result: its samples, or why there are none (a measured failure
/// is a result too).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Measured(Vec<f64>),
    NotMeasured(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Unique in the report; ratios name figures by it.
    pub key: String,
    pub what: String,
    pub unit: Unit,
    /// The exact command (or code path) that was timed.
    pub command: String,
    pub outcome: Outcome,
}

impl Figure {
    pub fn new(key: &str, what: &str, unit: Unit, command: impl Into<String>) -> Figure {
        Figure {
            key: key.to_string(),
            what: what.to_string(),
            unit,
            command: command.into(),
            outcome: Outcome::Measured(Vec::new()),
        }
    }

    pub fn samples(mut self, samples: Vec<f64>) -> Figure {
        self.outcome = Outcome::Measured(samples);
        self
    }

    pub fn not_measured(mut self, why: impl Into<String>) -> Figure {
        self.outcome = Outcome::NotMeasured(why.into());
        self
    }

    fn summary(&self) -> Result<Summary, String> {
        match &self.outcome {
            Outcome::Measured(samples) => {
                Summary::of(samples).ok_or_else(|| "no samples".to_string())
            }
            Outcome::NotMeasured(why) => Err(why.clone()),
        }
    }
}

/// `numerator / denominator` of two figures' medians, with the issue's target.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    pub what: String,
    pub numerator: String,
    pub denominator: String,
    pub target: Option<String>,
}

impl Ratio {
    pub fn new(what: &str, numerator: &str, denominator: &str, target: Option<&str>) -> Ratio {
        Ratio {
            what: what.to_string(),
            numerator: numerator.to_string(),
            denominator: denominator.to_string(),
            target: target.map(str::to_string),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    pub title: String,
    pub figures: Vec<Figure>,
    pub ratios: Vec<Ratio>,
    /// Paragraphs: what the figures mean, what was not measured and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub date: String,
    /// The command that produced the document.
    pub invocation: String,
    /// (what, value) rows: cores, CPU, accel, kernels, load average...
    pub machine: Vec<(String, String)>,
    pub sections: Vec<Section>,
}

impl Report {
    fn figure(&self, key: &str) -> Option<&Figure> {
        self.sections
            .iter()
            .flat_map(|s| &s.figures)
            .find(|f| f.key == key)
    }

    /// The ratio's value, or why it has none.
    fn ratio_value(&self, r: &Ratio) -> Result<f64, String> {
        let side = |key: &str| {
            self.figure(key)
                .ok_or_else(|| format!("no figure `{key}`"))
                .and_then(|f| f.summary().map_err(|why| format!("`{key}`: {why}")))
        };
        let (n, d) = (side(&r.numerator)?, side(&r.denominator)?);
        ratio(&n, &d).ok_or_else(|| format!("`{}` has a zero median", r.denominator))
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A table cell's worth of a long reason; the whole text follows the table.
const SHORT: usize = 200;

fn short(text: &str) -> String {
    let text = cell(text);
    match text.char_indices().nth(SHORT) {
        Some((at, _)) => format!("{}… (whole text below)", &text[..at]),
        None => text,
    }
}

fn ratio_row(report: &Report, r: &Ratio) -> String {
    let value = match report.ratio_value(r) {
        Ok(v) => format!("**{v:.2}×**"),
        Err(why) => format!("not measured ({})", short(&why)),
    };
    format!(
        "| {} | {value} | `{}` / `{}` | {} |\n",
        cell(&r.what),
        r.numerator,
        r.denominator,
        r.target.as_deref().map(cell).unwrap_or_default()
    )
}

const RATIO_HEADER: &str =
    "| ratio | value | figures (medians) | target (issue 15) |\n|---|---:|---|---|\n";

/// The whole document.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(&format!(
        "Written by `{}` on {}. Every figure below was measured in this one run; \
         every ratio divides two medians of this run. Speed is measured here, never \
         asserted in tests. Median and min–max are over the runs shown.\n\n",
        report.invocation, report.date
    ));
    out.push_str("## Machine\n\n| | |\n|---|---|\n");
    for (what, value) in &report.machine {
        out.push_str(&format!("| {} | {} |\n", cell(what), cell(value)));
    }
    let ratios: Vec<&Ratio> = report.sections.iter().flat_map(|s| &s.ratios).collect();
    if !ratios.is_empty() {
        out.push_str("\n## Headline ratios\n\n");
        out.push_str(RATIO_HEADER);
        for r in ratios {
            out.push_str(&ratio_row(report, r));
        }
    }
    for section in &report.sections {
        out.push_str(&format!("\n## {}\n\n", section.title));
        if !section.figures.is_empty() {
            out.push_str(
                "| figure | median | min – max | runs | command |\n|---|---:|---:|---:|---|\n",
            );
            for f in &section.figures {
                let (median, range, runs) = match f.summary() {
                    Ok(s) => (
                        f.unit.format(s.median),
                        format!("{} – {}", f.unit.format(s.min), f.unit.format(s.max)),
                        s.runs.to_string(),
                    ),
                    Err(why) => (
                        format!("not measured: {}", short(&why)),
                        String::new(),
                        "0".into(),
                    ),
                };
                out.push_str(&format!(
                    "| {} (`{}`) | {median} | {range} | {runs} | `{}` |\n",
                    cell(&f.what),
                    f.key,
                    cell(&f.command).replace('`', "'")
                ));
            }
        }
        for f in &section.figures {
            if let Err(why) = f.summary() {
                if short(&why) != cell(&why) {
                    out.push_str(&format!(
                        "\n`{}` not measured:\n\n```\n{}\n```\n",
                        f.key,
                        why.trim_end()
                    ));
                }
            }
        }
        if !section.ratios.is_empty() {
            out.push('\n');
            out.push_str(RATIO_HEADER);
            for r in &section.ratios {
                out.push_str(&ratio_row(report, r));
            }
        }
        for note in &section.notes {
            out.push('\n');
            out.push_str(note.trim_end());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            date: "2026-12-01 23:00 UTC".into(),
            invocation: "just bench".into(),
            machine: vec![("cores".into(), "2".into())],
            sections: vec![
                Section {
                    title: "Boot".into(),
                    figures: vec![
                        Figure::new("ours", "kcycle exec", Unit::Seconds, "kcycle exec -- true")
                            .samples(vec![2.0, 4.0, 3.0]),
                        Figure::new("vng", "vng", Unit::Seconds, "vng --run x --exec true")
                            .samples(vec![6.0, 6.0, 6.0]),
                        Figure::new("broken", "a | pipe", Unit::Millis, "x")
                            .not_measured("vng exited 255: no virtiofsd"),
                    ],
                    ratios: vec![
                        Ratio::new("boot vs vng", "ours", "vng", Some("≤ 0.5×")),
                        Ratio::new("broken vs vng", "broken", "vng", None),
                    ],
                    notes: vec!["A note.".into()],
                },
                Section {
                    title: "Empty".into(),
                    ..Section::default()
                },
            ],
        }
    }

    #[test]
    fn figures_show_median_range_runs_and_command() {
        let text = render(&report());
        assert!(
            text.contains("| kcycle exec (`ours`) | 3.000 s | 2.000 s – 4.000 s | 3 | `kcycle exec -- true` |"),
            "{text}"
        );
        assert!(text.contains("| cores | 2 |"), "{text}");
        assert!(text.contains("Written by `just bench` on 2026-12-01 23:00 UTC"));
        assert!(text.contains("\nA note.\n"));
    }

    #[test]
    fn ratios_divide_medians_and_say_why_when_missing() {
        let text = render(&report());
        assert!(
            text.contains("| boot vs vng | **0.50×** | `ours` / `vng` | ≤ 0.5× |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| broken vs vng | not measured (`broken`: vng exited 255: no virtiofsd) |"
            ),
            "{text}"
        );
        // Headline table and the section's own table both carry the ratio.
        assert_eq!(text.matches("| boot vs vng |").count(), 2);
    }

    #[test]
    fn a_failure_is_a_row_and_cells_stay_cells() {
        let text = render(&report());
        assert!(
            text.contains(
                "| a \\| pipe (`broken`) | not measured: vng exited 255: no virtiofsd |  | 0 |"
            ),
            "{text}"
        );
        let mut r = report();
        r.sections[0]
            .ratios
            .push(Ratio::new("x", "ours", "nope", None));
        assert!(render(&r).contains("not measured (no figure `nope`)"));
        // A long reason: cut in the table, whole below it.
        let long = format!("panicked:\n{}", "console line\n".repeat(40));
        r.sections[0].figures[2].outcome = Outcome::NotMeasured(long.clone());
        let text = render(&r);
        assert!(text.contains("… (whole text below) |  | 0 |"), "{text}");
        let whole = format!("`broken` not measured:\n\n```\n{}\n```", long.trim_end());
        assert!(text.contains(&whole), "{text}");
    }

    #[test]
    fn units() {
        assert_eq!(Unit::Seconds.format(12.34), "12.3 s");
        assert_eq!(Unit::Seconds.format(0.1234), "0.123 s");
        assert_eq!(Unit::KiB.format(21744.4), "21744 KiB");
        assert_eq!(Unit::Count.format(12.0), "12");
        assert_eq!(Unit::MegabytesPerSecond.format(250.04), "250.0 MB/s");
    }
}
