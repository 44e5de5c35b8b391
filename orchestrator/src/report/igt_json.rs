//! IGT-style `results.json`, the format IGT runner's resultgen writes
//! (`TestrunResult`, results_version 10), so IGT and piglit tooling can read
//! kcycle results. Pure: results in, JSON value out; and back, for merging.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::fingerprint;
use crate::outcome::{Finding, RunInfo, TestResult};
use crate::status::Status;

pub const RESULTS_VERSION: u64 = 10;

/// The per-test object, as resultgen writes it plus kcycle's findings.
#[derive(Debug, Serialize, Deserialize)]
struct TestObject {
    out: String,
    err: String,
    dmesg: String,
    /// A status piglit's loader knows (it has no `abort`).
    result: Status,
    /// kcycle's own status when `result` had to differ from it.
    #[serde(
        rename = "kcycle-result",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    kcycle_result: Option<Status>,
    time: TimeAttribute,
    #[serde(
        rename = "dmesg-warnings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    dmesg_warnings: Option<String>,
    /// kcycle's structured findings; IGT tools ignore unknown keys.
    #[serde(rename = "kcycle-findings", default)]
    findings: Vec<FindingObject>,
    #[serde(rename = "kcycle-suite", default)]
    suite: String,
    #[serde(
        rename = "kcycle-flaky-attempts",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    flaky_attempts: Vec<String>,
    /// Memory counters after each cycle (the leak ledger's trend series).
    #[serde(
        rename = "kcycle-cycles",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    cycles: Vec<crate::outcome::CycleSample>,
}

/// A finding with its fingerprint. The fingerprint is written for other
/// tools; kcycle recomputes it from the finding when it reads results back,
/// so results written by older versions compare the same way.
#[derive(Debug, Serialize, Deserialize)]
struct FindingObject {
    #[serde(flatten)]
    finding: Finding,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    fingerprint: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct TimeAttribute {
    #[serde(rename = "__type__")]
    ty: String,
    start: f64,
    end: f64,
}

impl TimeAttribute {
    fn new(start: f64, end: f64) -> Self {
        TimeAttribute {
            ty: "TimeAttribute".into(),
            start,
            end,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IgtJsonError {
    #[error("failed to parse results.json: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("failed to read results.json: {0}")]
    Shape(String),
}

/// Render results as an IGT `TestrunResult`.
pub fn render(run: &RunInfo, results: &[TestResult]) -> Value {
    let mut tests = Map::new();
    let mut totals: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    let mut runtimes: BTreeMap<String, f64> = BTreeMap::new();
    let mut end = 0.0f64;
    for result in results {
        let duration = result.duration.as_secs_f64();
        let warnings: Vec<&str> = result.findings.iter().map(|f| f.title.as_str()).collect();
        let written = piglit_status(result.status);
        let object = TestObject {
            out: result.out.clone(),
            err: result.err.clone(),
            dmesg: result.dmesg.clone(),
            result: written,
            kcycle_result: (written != result.status).then_some(result.status),
            time: TimeAttribute::new(result.start, result.start + duration),
            dmesg_warnings: (!warnings.is_empty()).then(|| warnings.join("\n") + "\n"),
            findings: result
                .findings
                .iter()
                .map(|f| FindingObject {
                    finding: f.clone(),
                    fingerprint: fingerprint::of(f).id,
                })
                .collect(),
            suite: result.suite.clone(),
            flaky_attempts: result.flaky_attempts.clone(),
            cycles: result.cycles.clone(),
        };
        tests.insert(
            result.name.clone(),
            serde_json::to_value(object).unwrap_or(Value::Null),
        );
        let group = format!("kcycle@{}", result.suite);
        for key in ["", "root", group.as_str()] {
            *totals
                .entry(key.to_string())
                .or_insert_with(empty_totals)
                .entry(written.as_str())
                .or_default() += 1;
        }
        *runtimes.entry(group).or_default() += duration;
        end = end.max(result.start + duration);
    }
    if totals.is_empty() {
        for key in ["", "root"] {
            totals.insert(key.to_string(), empty_totals());
        }
    }
    let runtimes: Map<String, Value> = runtimes
        .into_iter()
        .map(|(group, secs)| (group, json!({ "time": TimeAttribute::new(0.0, secs) })))
        .collect();
    json!({
        "__type__": "TestrunResult",
        "results_version": RESULTS_VERSION,
        "name": run.name,
        "uname": run.kernel_release,
        "cmdline": run.cmdline,
        "time_elapsed": TimeAttribute::new(run.started_at, run.started_at + end),
        "tests": tests,
        "totals": totals,
        "runtimes": runtimes,
        "kcycle-run": run,
    })
}

/// The status results.json says: piglit's loader (framework/status.py)
/// rejects names it does not know, and it knows no `abort`; an aborted test
/// is written as `incomplete` (its result could not be collected) with
/// `kcycle-result` keeping `abort`.
pub fn piglit_status(status: Status) -> Status {
    match status {
        Status::Abort => Status::Incomplete,
        other => other,
    }
}

fn empty_totals() -> BTreeMap<&'static str, u64> {
    Status::ALL
        .iter()
        .filter(|s| piglit_status(**s) == **s)
        .map(|s| (s.as_str(), 0))
        .collect()
}

/// Read back a results.json written by [`render`] (for `kcycle merge`).
pub fn parse(text: &str) -> Result<(RunInfo, Vec<TestResult>), IgtJsonError> {
    let value: Value = serde_json::from_str(text)?;
    if value.get("__type__").and_then(Value::as_str) != Some("TestrunResult") {
        return Err(IgtJsonError::Shape(
            "not an IGT TestrunResult (no \"__type__\": \"TestrunResult\")".into(),
        ));
    }
    let run: RunInfo = match value.get("kcycle-run") {
        Some(run) => serde_json::from_value(run.clone())?,
        None => RunInfo::default(),
    };
    let tests = value
        .get("tests")
        .and_then(Value::as_object)
        .ok_or_else(|| IgtJsonError::Shape("no \"tests\" object".into()))?;
    let mut results = Vec::with_capacity(tests.len());
    for (name, object) in tests {
        let object: TestObject = serde_json::from_value(object.clone())?;
        let suite = if object.suite.is_empty() {
            name.split('@').nth(1).unwrap_or_default().to_string()
        } else {
            object.suite
        };
        results.push(TestResult {
            name: name.clone(),
            suite,
            status: object.kcycle_result.unwrap_or(object.result),
            start: object.time.start,
            duration: Duration::from_secs_f64((object.time.end - object.time.start).max(0.0)),
            findings: object.findings.into_iter().map(|f| f.finding).collect(),
            out: object.out,
            err: object.err,
            dmesg: object.dmesg,
            flaky_attempts: object.flaky_attempts,
            cycles: object.cycles,
        });
    }
    results.sort_by(|a, b| {
        a.start
            .total_cmp(&b.start)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok((run, results))
}
