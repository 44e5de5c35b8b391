//! Per-cycle trends (pure): a counter that grows cycle after cycle is a leak
//! even when nothing is left by name (kmalloc without kfree) and kmemleak is
//! off.
//!
//! The rule is a line fit over the samples after the first cycle (which pays
//! one-time costs): the counter must have grown in total, never shrunk by
//! more than noise, and follow a straight line closely (R² ≥ [`MIN_FIT`]).
//! SLUB counts a CPU's whole slab as in use, so a steady leak shows as a
//! staircase, not as equal steps: the fit accepts that, while a counter that
//! jumped once or wanders up and down does not fit a line.

use crate::outcome::{CycleSample, Finding, Severity};

/// Cycles a test needs before a trend is judged.
pub const MIN_CYCLES: usize = 8;
/// How closely the samples must follow a line.
pub const MIN_FIT: f64 = 0.9;
/// At least this much growth per cycle, in the counter's unit (objects, kB).
pub const MIN_SLOPE: f64 = 1.0;

/// Counters that grew steadily over the test's cycles, one finding each.
pub fn steady_growth(samples: &[CycleSample]) -> Vec<Finding> {
    if samples.len() < MIN_CYCLES {
        return Vec::new();
    }
    let window = &samples[1..];
    let Some(first) = window.first() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for name in first.counters.keys() {
        let values: Option<Vec<f64>> = window
            .iter()
            .map(|s| s.counters.get(name).map(|&v| v as f64))
            .collect();
        let Some(values) = values else { continue };
        let Some(fit) = Fit::of(&values) else {
            continue;
        };
        let monotone = values.windows(2).all(|w| w[1] >= w[0]);
        if fit.slope >= MIN_SLOPE && fit.r2 >= MIN_FIT && monotone {
            found.push(finding(name, &values, &fit, window));
        }
    }
    found
}

fn finding(name: &str, values: &[f64], fit: &Fit, window: &[CycleSample]) -> Finding {
    let (counter, unit) = match name.split_once(':') {
        Some(("slab", cache)) => (cache.to_string(), "objects"),
        Some(("meminfo", field)) => (field.to_string(), "kB"),
        _ => (name.to_string(), ""),
    };
    let first = window.first().map_or(0, |s| s.cycle);
    let last = window.last().map_or(0, |s| s.cycle);
    let series: Vec<String> = window
        .iter()
        .zip(values)
        .map(|(s, v)| format!("  cycle {:>3}: {v}", s.cycle))
        .collect();
    Finding {
        kind: crate::kind::FindingKind::STEADY_GROWTH,
        title: format!("{counter} grows every cycle"),
        severity: Severity::Fail,
        report: format!(
            "{counter}: {:+.1} {unit} per cycle over cycles {first}..{last} (R² {:.2}), \
             measured after each cycle's last step:\n{}\n",
            fit.slope,
            fit.r2,
            series.join("\n")
        ),
        attribution: Some(format!(
            "grew from cycle {first} to {last}, in {} of {} cycles",
            values.windows(2).filter(|w| w[1] > w[0]).count(),
            values.len().saturating_sub(1)
        )),
        known_issue: None,
    }
}

/// Least-squares line through (i, value).
struct Fit {
    slope: f64,
    r2: f64,
}

impl Fit {
    fn of(values: &[f64]) -> Option<Fit> {
        let n = values.len() as f64;
        if values.len() < 3 {
            return None;
        }
        let mean_x = (n - 1.0) / 2.0;
        let mean_y = values.iter().sum::<f64>() / n;
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for (i, &y) in values.iter().enumerate() {
            let dx = i as f64 - mean_x;
            let dy = y - mean_y;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }
        if syy == 0.0 {
            return Some(Fit {
                slope: 0.0,
                r2: 0.0,
            });
        }
        Some(Fit {
            slope: sxy / sxx,
            r2: (sxy * sxy) / (sxx * syy),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(name: &str, values: &[u64]) -> Vec<CycleSample> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| CycleSample {
                cycle: i as u32 + 1,
                counters: [(name.to_string(), v)].into(),
                leftovers: 0,
            })
            .collect()
    }

    #[test]
    fn a_staircase_leak_is_found() {
        // 8 objects leaked per cycle, counted in 16-object slabs.
        let found = steady_growth(&samples(
            "slab:kmalloc-512",
            &[100, 116, 116, 132, 132, 148, 148, 164, 164, 180],
        ));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].title, "kmalloc-512 grows every cycle");
        assert!(
            found[0].report.contains("+8.0 objects per cycle"),
            "{}",
            found[0].report
        );
    }

    #[test]
    fn noise_a_single_jump_and_short_runs_are_not() {
        let wandering = [100, 104, 99, 103, 101, 98, 104, 100, 102, 99];
        assert!(steady_growth(&samples("slab:kmalloc-64", &wandering)).is_empty());
        let jump = [100, 100, 100, 100, 164, 164, 164, 164, 164, 164];
        assert!(steady_growth(&samples("meminfo:Slab", &jump)).is_empty());
        let flat = [7; 12];
        assert!(steady_growth(&samples("meminfo:Percpu", &flat)).is_empty());
        let short = [1, 2, 3, 4, 5];
        assert!(steady_growth(&samples("slab:x", &short)).is_empty());
    }
}
