//! Per-cycle trends (pure): a counter that grows cycle after cycle is a leak
//! even when nothing is left by name (kmalloc without kfree) and kmemleak is
//! off.
//!
//! The samples of a test with [`MIN_CYCLES`] or more count slab objects
//! exactly (every cache shrunk first: [`crate::snapshot::SlabCounts`]), so a
//! leak of one object a cycle is a step of one. The rule is a line fit over
//! the samples after the first cycle (which pays one-time costs), taken over
//! their running maximum: the counter must have grown in total by at least
//! [`MIN_SLOPE`] a cycle, follow a straight line closely (R² ≥ [`MIN_FIT`]),
//! and its drops together must stay below [`MAX_DROP_SHARE`] of its growth.
//! Another user of the same cache can free objects in between, and the
//! meminfo counters (kB) move by pages: the rule accepts both, while a
//! counter that jumped once or wanders up and down does not fit a line.
//! The tolerances below were measured on unshrunk slabinfo counts, which
//! creep up by whole slabs; they still hold for the noise that is left.

use crate::outcome::{CycleSample, Finding, Severity};

/// Cycles a test needs before a trend is judged.
pub const MIN_CYCLES: usize = 8;
/// How closely the samples must follow a line.
pub const MIN_FIT: f64 = 0.9;
/// At least this much growth per cycle, in the counter's unit (objects, kB).
pub const MIN_SLOPE: f64 = 1.0;
/// The drops of a growing counter, summed, as a share of its net growth.
pub const MAX_DROP_SHARE: f64 = 0.25;
/// Of the steps between cycles, at least this share must be rises: half a
/// slab leaked a cycle rises every other cycle, while a cache that creeps up
/// a slab now and then under the runner's own work (inode_cache, 4 rises in
/// 18 cycles of a clean run) does not leak.
pub const MIN_RISE_SHARE: f64 = 1.0 / 3.0;
/// A leak keeps its pace: per cycle, the later half of the cycles must add
/// at least this share of what the earlier half added (running maximum).
/// Caches warming up under the runner's own work (dentries, kernfs nodes,
/// VMAs) grow fast at first and then flatten, which a line can still fit:
/// a clean kcycle_leaks run had meminfo:Slab +18 kB a cycle over cycles
/// 2..10 and +7.6 over 11..20, R² 0.91 (CI, 2026-12-04).
pub const MIN_LATE_SHARE: f64 = 0.5;
/// Counters that sum every slab cache: recorded, but judged through their
/// parts (`slab:<cache>`). Summed, the runner's own warm-up of a hundred
/// caches can fit a line by chance (a clean run's SReclaimable: +3.6 kB a
/// cycle, R² 0.96, CI 2026-12-04), while a leak shows in its own cache at
/// the same slab resolution.
pub const SUMS_OF_CACHES: [&str; 3] =
    ["meminfo:Slab", "meminfo:SReclaimable", "meminfo:SUnreclaim"];

/// How one counter moved over a test's cycles (after the first).
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub name: String,
    pub values: Vec<f64>,
    /// Least-squares growth per cycle, of the running maximum.
    pub slope: f64,
    pub r2: f64,
    /// Last value minus first.
    pub growth: f64,
    /// Every decrease between two cycles, summed (positive).
    pub drops: f64,
    /// The cycle each value was measured after.
    pub cycles: Vec<u32>,
}

impl Trend {
    /// Steps between cycles where the counter rose, and all steps.
    pub fn rises(&self) -> (usize, usize) {
        let rises = self.values.windows(2).filter(|w| w[1] > w[0]).count();
        (rises, self.values.len().saturating_sub(1))
    }

    /// Growth per cycle of the running maximum over the first and the
    /// second half of the cycles.
    pub fn pace(&self) -> (f64, f64) {
        let envelope = running_max(&self.values);
        if envelope.len() < 3 {
            return (0.0, 0.0);
        }
        let (last, mid) = (envelope.len() - 1, envelope.len() / 2);
        let early = (envelope[mid] - envelope[0]) / mid as f64;
        let late = (envelope[last] - envelope[mid]) / (last - mid) as f64;
        (early, late)
    }

    /// The first and last cycle measured.
    pub fn span(&self) -> (u32, u32) {
        let first = self.cycles.first().copied().unwrap_or(0);
        (first, self.cycles.last().copied().unwrap_or(first))
    }

    /// Why this counter is not a steady leak, or `None` when it is one.
    pub fn rejection(&self) -> Option<String> {
        if SUMS_OF_CACHES.contains(&self.name.as_str()) {
            return Some("sums every slab cache, so it is judged cache by cache".to_string());
        }
        if self.slope < MIN_SLOPE || self.growth <= 0.0 {
            return Some(format!(
                "grew {:+.1} per cycle (needs {MIN_SLOPE:+.1})",
                self.slope
            ));
        }
        if self.r2 < MIN_FIT {
            return Some(format!(
                "does not follow a line (R² {:.2}, needs {MIN_FIT})",
                self.r2
            ));
        }
        let (rises, steps) = self.rises();
        if (rises as f64) < MIN_RISE_SHARE * steps as f64 {
            return Some(format!(
                "rose in {rises} of {steps} cycles (needs a third of them)"
            ));
        }
        let (early, late) = self.pace();
        if late < MIN_LATE_SHARE * early {
            return Some(format!(
                "slowed down: {early:+.1} per cycle in the first half, {late:+.1} in the second \
                 (needs {:.0}% of the first)",
                MIN_LATE_SHARE * 100.0
            ));
        }
        if self.drops > MAX_DROP_SHARE * self.growth {
            return Some(format!(
                "fell by {} in total against a growth of {} (allowed: {:.0}%)",
                self.drops,
                self.growth,
                MAX_DROP_SHARE * 100.0
            ));
        }
        None
    }
}

/// Every counter's trend over the samples after the first cycle; empty when
/// the test ran fewer than [`MIN_CYCLES`] cycles.
pub fn trends(samples: &[CycleSample]) -> Vec<Trend> {
    if samples.len() < MIN_CYCLES {
        return Vec::new();
    }
    let window = &samples[1..];
    let Some(first) = window.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in first.counters.keys() {
        let values: Option<Vec<f64>> = window
            .iter()
            .map(|s| s.counters.get(name).map(|&v| v as f64))
            .collect();
        let Some(values) = values else { continue };
        // The fit runs over the running maximum: a slab freed by another
        // user of the cache and refilled a cycle later is a dip, not a bend.
        let Some(fit) = Fit::of(&running_max(&values)) else {
            continue;
        };
        let drops = values
            .windows(2)
            .map(|w| (w[0] - w[1]).max(0.0))
            .sum::<f64>();
        out.push(Trend {
            name: name.clone(),
            growth: values[values.len() - 1] - values[0],
            values,
            slope: fit.slope,
            r2: fit.r2,
            drops,
            cycles: window.iter().map(|s| s.cycle).collect(),
        });
    }
    out
}

/// Counters that grew steadily over the test's cycles, one finding each.
pub fn steady_growth(samples: &[CycleSample]) -> Vec<Finding> {
    trends(samples)
        .iter()
        .filter(|t| t.rejection().is_none())
        .map(finding)
        .collect()
}

/// What a steady-growth control that was not flagged needs to say: the
/// counters that grew without counting as a steady leak, and why. Counters
/// whose finding title would match `wanted` come first, then the fastest.
pub fn near_misses(samples: &[CycleSample], wanted: impl Fn(&str) -> bool, limit: usize) -> String {
    if samples.len() < MIN_CYCLES {
        return format!(
            "The test ran {} cycles; a trend needs {MIN_CYCLES}.\n",
            samples.len()
        );
    }
    let mut grown: Vec<(Trend, String)> = trends(samples)
        .into_iter()
        .filter(|t| t.growth > 0.0)
        .filter_map(|t| t.rejection().map(|why| (t, why)))
        .collect();
    grown.sort_by(|a, b| b.0.slope.total_cmp(&a.0.slope));
    grown.sort_by_key(|(t, _)| !wanted(&title(&t.name)));
    let mut out = String::from("Counters that grew but were not judged a steady leak:\n");
    if grown.is_empty() {
        out.push_str("  none\n");
    }
    for (t, why) in grown.iter().take(limit) {
        let series: Vec<String> = t.values.iter().map(|v| v.to_string()).collect();
        let (first, last) = t.span();
        out.push_str(&format!(
            "  {}: {why}; cycles {first}..{last}: {}\n",
            t.name,
            series.join(" ")
        ));
    }
    out
}

/// The counter's name as reports spell it, and its unit.
fn counter(name: &str) -> (&str, &'static str) {
    match name.split_once(':') {
        Some(("slab", cache)) => (cache, "objects"),
        Some(("meminfo", field)) => (field, "kB"),
        _ => (name, ""),
    }
}

fn title(name: &str) -> String {
    format!("{} grows every cycle", counter(name).0)
}

fn finding(t: &Trend) -> Finding {
    let (counter, unit) = counter(&t.name);
    let (first, last) = t.span();
    let series: Vec<String> = t
        .cycles
        .iter()
        .zip(&t.values)
        .map(|(cycle, v)| format!("  cycle {cycle:>3}: {v}"))
        .collect();
    Finding {
        kind: crate::kind::FindingKind::STEADY_GROWTH,
        title: title(&t.name),
        severity: Severity::Fail,
        report: format!(
            "{counter}: {:+.1} {unit} per cycle over cycles {first}..{last} (R² {:.2}), \
             measured after each cycle's last step:\n{}\n",
            t.slope,
            t.r2,
            series.join("\n")
        ),
        attribution: Some({
            let (rises, steps) = t.rises();
            format!("grew from cycle {first} to {last}, in {rises} of {steps} cycles")
        }),
        known_issue: None,
    }
}

/// Each value replaced by the largest so far.
fn running_max(values: &[f64]) -> Vec<f64> {
    values
        .iter()
        .scan(f64::MIN, |max, &v| {
            *max = max.max(v);
            Some(*max)
        })
        .collect()
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
    fn caches_that_warm_up_and_flatten_are_not_a_leak() {
        // The shape of meminfo:Slab (kB) of a clean kcycle_leaks run in CI,
        // cycles 1..20; one cache warming up looks the same.
        let warm = [
            7160, 7300, 7368, 7380, 7392, 7424, 7428, 7444, 7460, 7460, 7464, 7456, 7448, 7488,
            7500, 7508, 7516, 7524, 7520, 7532,
        ];
        let found = samples("slab:vm_area_struct", &warm);
        assert!(steady_growth(&found).is_empty());
        let trend = &trends(&found)[0];
        assert!(trend.r2 >= MIN_FIT, "a line fits it: {}", trend.r2);
        let why = trend.rejection().unwrap();
        assert!(why.starts_with("slowed down: +18.2 per cycle"), "{why}");
        // The same pace all the way is a leak.
        let steady: Vec<u64> = (0..20).map(|i| 7160 + 12 * i).collect();
        assert_eq!(
            steady_growth(&samples("slab:vm_area_struct", &steady)).len(),
            1
        );
    }

    #[test]
    fn sums_of_caches_are_judged_by_their_parts() {
        // meminfo:SReclaimable (kB) of a clean kcycle_leaks run in CI, cycles 1..20:
        // every rule holds, yet nothing leaked.
        let summed = [
            2528, 2536, 2536, 2544, 2544, 2544, 2552, 2552, 2560, 2560, 2564, 2564, 2572, 2576,
            2588, 2592, 2592, 2592, 2592, 2592,
        ];
        let mut run = samples("meminfo:SReclaimable", &summed);
        // The leak in the same run shows in its own cache.
        for (i, sample) in run.iter_mut().enumerate() {
            sample
                .counters
                .insert("slab:kmalloc-512".into(), 100 + 16 * i as u64);
        }
        let found = steady_growth(&run);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].title, "kmalloc-512 grows every cycle");
        let why = near_misses(&run, |_| true, 3);
        assert!(
            why.contains(
                "meminfo:SReclaimable: sums every slab cache, so it is judged cache by cache"
            ),
            "{why}"
        );
        // Alone and under any other name, the same series is a leak.
        assert_eq!(steady_growth(&samples("slab:dentry", &summed)).len(), 1);
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
        assert!(steady_growth(&samples("meminfo:VmallocUsed", &jump)).is_empty());
        let flat = [7; 12];
        assert!(steady_growth(&samples("meminfo:Percpu", &flat)).is_empty());
        let short = [1, 2, 3, 4, 5];
        assert!(steady_growth(&samples("slab:x", &short)).is_empty());
        // A clean run's inode_cache (CI, 2026-12-02): a slab now and then, 4 rises in 18.
        let creeping = [
            2574, 2574, 2574, 2574, 2587, 2587, 2587, 2613, 2613, 2613, 2626, 2626, 2626, 2626,
            2639, 2639, 2639, 2639, 2639, 2639,
        ];
        let creep = samples("slab:inode_cache", &creeping);
        assert!(steady_growth(&creep).is_empty());
        assert!(
            near_misses(&creep, |_| true, 3).contains("rose in 4 of 18 cycles"),
            "{}",
            near_misses(&creep, |_| true, 3)
        );
        // Up by 16 and down by 16 in turn, drifting up: more drop than the rule allows.
        let sawtooth = [100, 132, 116, 148, 132, 164, 148, 180, 164, 196];
        assert!(steady_growth(&samples("slab:kmalloc-512", &sawtooth)).is_empty());
    }

    #[test]
    fn a_leak_survives_one_slab_freed_by_someone_else() {
        // The staircase above, with one slab of the cache freed in cycle 6.
        let dipped = [100, 116, 116, 132, 132, 116, 148, 164, 164, 180];
        let found = steady_growth(&samples("slab:kmalloc-512", &dipped));
        assert_eq!(
            found.len(),
            1,
            "{}",
            near_misses(&samples("slab:kmalloc-512", &dipped), |_| true, 3)
        );
        assert!(
            found[0]
                .attribution
                .as_deref()
                .unwrap()
                .contains("in 4 of 8 cycles"),
            "{:?}",
            found[0].attribution
        );
    }

    #[test]
    fn near_misses_say_why_a_counter_was_not_a_leak() {
        let jump = [100, 100, 100, 100, 164, 164, 164, 164, 164, 164];
        let mut both = samples("meminfo:VmallocUsed", &jump);
        for (sample, v) in both.iter_mut().zip([5, 5, 5, 6, 6, 6, 6, 7, 7, 7]) {
            sample.counters.insert("slab:kmalloc-512".into(), v);
        }
        let text = near_misses(&both, |title| title.starts_with("kmalloc-512 "), 1);
        assert!(
            text.contains("slab:kmalloc-512: grew +0.3 per cycle"),
            "{text}"
        );
        let text = near_misses(&both, |_| false, 3);
        assert!(
            text.contains("meminfo:VmallocUsed: does not follow a line (R² 0."),
            "{text}"
        );
        assert!(text.contains("cycles 2..10: 100 100 100 164"), "{text}");
        let flat = near_misses(&samples("meminfo:VmallocUsed", &[7; 10]), |_| true, 3);
        assert!(flat.ends_with("  none\n"), "{flat}");
        assert!(near_misses(&samples("x", &[1, 2]), |_| true, 3).contains("ran 2 cycles"));
    }
}
