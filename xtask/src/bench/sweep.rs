//! The error-path sweep's cost: `kcycle cycle kcycle_leaks --sweep`, the
//! whole fail-nth range of the fixed driver, timed from its results.json.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kcycle::kernel::Artifacts;

use super::doc::{Figure, Section, Unit};
use super::{parse, progress, timed, Options};

const MODULE: &str = "kcycle_leaks";
const TEST: &str = "kcycle@cycle@kcycle_leaks-sweep";

/// One sweep of the fixed driver: (whole sweep s, points, restarts).
fn one(
    kcycle: &Path,
    artifacts: &Artifacts,
    options: &Options,
    dir: &Path,
) -> Result<(f64, usize, usize), String> {
    let results = dir.join("results");
    let mut command = Command::new(kcycle);
    command
        .args([
            "--progress",
            "never",
            "cycle",
            MODULE,
            "--cycles",
            "1",
            "--sweep",
        ])
        .args(["--accel", options.accel.name(), "--kernel"])
        .arg(&artifacts.dir)
        .arg("--results")
        .arg(&results)
        .stdin(Stdio::null());
    let (_, out) = timed(&mut command, Duration::from_secs(3600))?;
    let json = std::fs::read_to_string(results.join("results.json")).map_err(|e| {
        format!(
            "kcycle cycle exited {} and left no results.json ({e}): {}",
            out.status,
            parse::tail(&out.stderr, 4)
        )
    })?;
    let (result, seconds) = parse::test_time(&json, TEST)?;
    if !out.status.success() || result != "pass" {
        return Err(format!(
            "kcycle cycle exited {}, the sweep is `{result}`:\n{}",
            out.status,
            parse::test_lines(&out.stderr)
        ));
    }
    let (points, restarts) = parse::sweep_points(&json, TEST)?;
    Ok((seconds, points, restarts))
}

pub fn section(kcycle: &Path, artifacts: &Artifacts, options: &Options, scratch: &Path) -> Section {
    let line = format!(
        "{} --progress never cycle {MODULE} --cycles 1 --sweep --accel {} --kernel {}  (the `{TEST}` test's time from results.json)",
        kcycle.display(),
        options.accel,
        artifacts.dir.display()
    );
    let whole = Figure::new(
        "sweep-whole",
        "the whole fail-nth sweep of kcycle_leaks",
        Unit::Seconds,
        line.clone(),
    );
    let per_point = Figure::new(
        "sweep-point",
        "one sweep point (failing load, ledger diff, clean load and unload)",
        Unit::Millis,
        line.clone(),
    );
    let counted = Figure::new(
        "sweep-points",
        "points until a load succeeds with nothing injected",
        Unit::Count,
        line,
    );
    // A sweep is minutes long: fewer runs than the other figures.
    let runs = options.runs.clamp(1, 2);
    let (mut wholes, mut points, mut per) = (Vec::new(), Vec::new(), Vec::new());
    let mut notes = Vec::new();
    let mut restarts = Vec::new();
    for i in 0..runs {
        progress(&format!(
            "sweep: run {}/{runs} (kcycle cycle {MODULE} --sweep)",
            i + 1
        ));
        match one(
            kcycle,
            artifacts,
            options,
            &scratch.join(format!("sweep-{i}")),
        ) {
            Ok((seconds, n, r)) => {
                wholes.push(seconds);
                points.push(n as f64);
                per.push(seconds * 1000.0 / n.max(1) as f64);
                restarts.push(r);
            }
            Err(e) => notes.push(format!("A sweep run failed: {e}")),
        }
    }
    let figure = |f: Figure, samples: Vec<f64>| {
        if samples.is_empty() {
            f.not_measured("every sweep run failed (below)")
        } else {
            f.samples(samples)
        }
    };
    notes.insert(
        0,
        format!(
            "The fixed kcycle_leaks, so every point is a clean failure and none should restart the guest \
             (restarts seen: {restarts:?}). Each point is three steps, each one SSH round trip holding \
             the command and its collect (kernel log and ledger snapshot): the load with fail-nth set, then a clean load and an unload."
        ),
    );
    Section {
        title: "Sweep".into(),
        figures: vec![
            figure(whole, wholes),
            figure(per_point, per),
            figure(counted, points),
        ],
        ratios: Vec::new(),
        notes,
    }
}
