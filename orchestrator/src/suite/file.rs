//! Suite files: the TOML shape, and its translation into the checked model.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::located::Located;

use super::known::Date;
use super::step::{
    self, Action, ParamValue, Params, SelftestKind, Step, SweepMethod, DEFAULT_SWEEP_LIMIT,
};
use super::{Expectation, GuestMode, KnownIssue, Suite, Test};

const DEFAULT_STEP_TIMEOUT_SECS: u64 = 120;
const MAX_CYCLES: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("failed to read suite {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse suite {0}")]
    Invalid(Located),
}

/// A suite file's text and name, for turning byte offsets into line:column.
pub struct SuiteSource<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> SuiteSource<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        SuiteSource { path, text }
    }

    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> SuiteError {
        SuiteError::Invalid(Located::new(self.path, self.text, span, message))
    }

    fn default_name(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    #[serde(default = "default_guest")]
    guest: GuestMode,
    #[serde(default)]
    cmdline: Vec<Spanned<String>>,
    /// Seconds.
    step_timeout: Option<Spanned<u64>>,
    #[serde(default)]
    test: Vec<Spanned<RawTest>>,
    #[serde(default)]
    known_issue: Vec<Spanned<RawKnownIssue>>,
}

fn default_guest() -> GuestMode {
    GuestMode::Emulated
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    cycles: Option<Spanned<u32>>,
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    expect: Vec<Spanned<RawExpectation>>,
}

/// A step is a table with exactly one action key: `{ load = "i915", params = {…} }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    load: Option<String>,
    unload: Option<String>,
    reload: Option<String>,
    selftest: Option<String>,
    unbind: Option<String>,
    bind: Option<String>,
    hotunplug: Option<String>,
    hotplug: Option<String>,
    sweep: Option<String>,
    /// A shell line for the guest.
    run: Option<String>,
    kind: Option<SelftestKind>,
    /// Sweeps: `fail-nth` (default) or `param`.
    method: Option<String>,
    /// fail-nth sweeps: the highest N.
    limit: Option<u32>,
    /// param sweeps: the parameter (default `fail_at`) and its values.
    param: Option<String>,
    points: Option<Vec<String>>,
    filter: Option<String>,
    params: Option<BTreeMap<String, Spanned<toml::Value>>>,
    /// Seconds.
    timeout: Option<u64>,
    #[serde(default)]
    expect_failure: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpectation {
    kind: String,
    #[serde(default = "match_all")]
    title: String,
    #[serde(default = "match_all")]
    attribution: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKnownIssue {
    test: String,
    #[serde(default = "match_all")]
    title: String,
    reason: String,
    bug: Option<String>,
    kernel: Option<String>,
    /// A TOML date (`2026-12-31`) or a string holding one.
    first_seen: Option<toml::Value>,
    expires: Option<toml::Value>,
}

/// A known-issues file (`kcycle run --known-issues`, written by `kcycle
/// baseline update`): only known issues and flakes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKnownIssues {
    #[serde(default)]
    known_issue: Vec<Spanned<RawKnownIssue>>,
    #[serde(default)]
    flake: Vec<Spanned<RawKnownIssue>>,
}

fn match_all() -> String {
    "*".into()
}

/// Names that appear in IGT-style test names: `[A-Za-z0-9_-]+`.
fn check_test_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        Some(c) => Err(format!(
            "{name:?} contains {c:?} (allowed: letters, digits, '_', '-')"
        )),
        None => Ok(()),
    }
}

pub(super) fn parse(source: SuiteSource<'_>) -> Result<Suite, SuiteError> {
    let raw: RawSuite =
        toml::from_str(source.text).map_err(|e| source.error(e.span(), e.message().trim()))?;

    let name = match raw.name {
        Some(name) => {
            check_test_name(name.get_ref())
                .map_err(|why| source.error(Some(name.span()), format!("field `name` {why}")))?;
            name.into_inner()
        }
        None => {
            let name = source.default_name();
            check_test_name(&name).map_err(|why| {
                source.error(
                    None,
                    format!("no `name` field and the file name {why}; add `name = \"...\"`"),
                )
            })?;
            name
        }
    };

    let step_timeout = match raw.step_timeout {
        Some(t) if *t.get_ref() == 0 => {
            return Err(source.error(
                Some(t.span()),
                "field `step_timeout` must be at least 1 second",
            ))
        }
        Some(t) => Duration::from_secs(t.into_inner()),
        None => Duration::from_secs(DEFAULT_STEP_TIMEOUT_SECS),
    };

    let mut cmdline = Vec::new();
    for arg in raw.cmdline {
        if arg.get_ref().is_empty() || arg.get_ref().chars().any(char::is_whitespace) {
            return Err(source.error(
                Some(arg.span()),
                format!(
                    "field `cmdline`: {:?} must be one kernel argument without spaces",
                    arg.get_ref()
                ),
            ));
        }
        cmdline.push(arg.into_inner());
    }

    if raw.test.is_empty() {
        return Err(source.error(None, "no tests: add at least one `[[test]]` table"));
    }

    let mut tests = Vec::new();
    let mut seen = HashSet::new();
    for raw_test in raw.test {
        let test = parse_test(&source, &name, raw.guest, step_timeout, raw_test)?;
        if !seen.insert(test.name.clone()) {
            return Err(source.error(None, format!("test name {} is used twice", test.name)));
        }
        tests.push(test);
    }

    let known_issues = raw
        .known_issue
        .into_iter()
        .map(|issue| known_issue(&source, issue, false))
        .collect::<Result<_, _>>()?;

    Ok(Suite {
        name,
        description: raw.description,
        guest: raw.guest,
        cmdline,
        step_timeout,
        tests,
        known_issues,
    })
}

/// Parse a known-issues file: `[[known_issue]]` and `[[flake]]` tables.
pub fn parse_known_issues(source: SuiteSource<'_>) -> Result<Vec<KnownIssue>, SuiteError> {
    let raw: RawKnownIssues =
        toml::from_str(source.text).map_err(|e| source.error(e.span(), e.message().trim()))?;
    let known = raw.known_issue.into_iter().map(|i| (i, false));
    let flakes = raw.flake.into_iter().map(|i| (i, true));
    known
        .chain(flakes)
        .map(|(issue, flake)| known_issue(&source, issue, flake))
        .collect()
}

/// Read and parse a known-issues file.
pub fn load_known_issues(path: &Path) -> Result<Vec<KnownIssue>, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_known_issues(SuiteSource::new(path, &text))
}

fn known_issue(
    source: &SuiteSource<'_>,
    issue: Spanned<RawKnownIssue>,
    flake: bool,
) -> Result<KnownIssue, SuiteError> {
    let span = issue.span();
    let issue = issue.into_inner();
    let invalid = |message: String| source.error(Some(span.clone()), message);
    if issue.reason.trim().is_empty() {
        return Err(invalid(
            "field `reason` of a known issue is empty: say why it is known (a bug link)".into(),
        ));
    }
    for (field, glob) in [("test", &issue.test), ("title", &issue.title)] {
        globset::Glob::new(glob).map_err(|e| {
            invalid(format!(
                "field `{field}` of a known issue is not a valid glob: {e}"
            ))
        })?;
    }
    let kernel = issue
        .kernel
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|why| invalid(format!("field `kernel` of a known issue: {why}")))?;
    let date = |field: &str, value: Option<toml::Value>| -> Result<Option<Date>, SuiteError> {
        let text = match value {
            None => return Ok(None),
            Some(toml::Value::Datetime(d)) => d.to_string(),
            Some(toml::Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        text.parse()
            .map(Some)
            .map_err(|why| invalid(format!("field `{field}` of a known issue: {why}")))
    };
    Ok(KnownIssue {
        first_seen: date("first_seen", issue.first_seen)?,
        expires: date("expires", issue.expires)?,
        test: issue.test,
        title: issue.title,
        reason: issue.reason,
        bug: issue.bug,
        kernel,
        flake,
    })
}

fn parse_test(
    source: &SuiteSource<'_>,
    suite: &str,
    guest: GuestMode,
    step_timeout: Duration,
    raw: Spanned<RawTest>,
) -> Result<Test, SuiteError> {
    let raw = raw.into_inner();
    let short = raw.name.get_ref().clone();
    check_test_name(&short)
        .map_err(|why| source.error(Some(raw.name.span()), format!("test field `name` {why}")))?;

    let cycles = match raw.cycles {
        Some(c) if *c.get_ref() == 0 || *c.get_ref() > MAX_CYCLES => {
            return Err(source.error(
                Some(c.span()),
                format!("test {short:?}: field `cycles` must be 1 to {MAX_CYCLES}"),
            ))
        }
        Some(c) => c.into_inner(),
        None => 1,
    };
    if raw.steps.is_empty() {
        return Err(source.error(
            Some(raw.name.span()),
            format!("test {short:?}: field `steps` is empty"),
        ));
    }
    let steps = raw
        .steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| {
            let span = step.span();
            parse_step(step.into_inner(), guest, step_timeout).map_err(|why| {
                source.error(Some(span), format!("test {short:?} step {}: {why}", i + 1))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let expect = raw
        .expect
        .into_iter()
        .map(|e| parse_expectation(source, &short, e))
        .collect::<Result<_, SuiteError>>()?;

    Ok(Test {
        name: format!("kcycle@{suite}@{short}"),
        description: raw.description,
        cycles,
        steps,
        expect,
    })
}

/// One `expect` entry: its kind must be one some check produces, its globs valid.
fn parse_expectation(
    source: &SuiteSource<'_>,
    short: &str,
    e: Spanned<RawExpectation>,
) -> Result<Expectation, SuiteError> {
    let span = e.span();
    let e = e.into_inner();
    let pattern = |field: &str, glob: &str| {
        super::Pattern::new(glob).map_err(|err| {
            source.error(
                Some(span.clone()),
                format!("test {short:?}: field `expect.{field}` is not a valid glob: {err}"),
            )
        })
    };
    let title = pattern("title", &e.title)?;
    let attribution = pattern("attribution", &e.attribution)?;
    let kind = crate::kind::FindingKind::parse_known(&e.kind).ok_or_else(|| {
        let known: Vec<String> =
            crate::kind::FindingKind::known().map(|k| k.to_string()).collect();
        source.error(
            Some(span.clone()),
            format!(
                "test {short:?}: field `expect.kind` names finding kind `{}`, which no check produces; known kinds: {}",
                e.kind,
                known.join(", ")
            ),
        )
    })?;
    Ok(Expectation {
        kind,
        title,
        attribution,
    })
}

fn parse_step(
    mut raw: RawStep,
    guest: GuestMode,
    default_timeout: Duration,
) -> Result<Step, String> {
    let (verb, target) = step_action(&raw)?;
    check_target(verb, &target, &raw)?;
    let device_step = matches!(verb, "unbind" | "bind" | "hotunplug" | "hotplug");
    let params = match raw.params.take() {
        Some(_) if verb == "unload" || device_step => {
            return Err(format!("field `params` is not allowed on `{verb}`"))
        }
        Some(params) => convert_params(params)?,
        None => Params::new(),
    };
    check_fields_belong(verb, &raw)?;
    let timeout = match raw.timeout {
        Some(0) => return Err("field `timeout` must be at least 1 second".into()),
        Some(secs) => Duration::from_secs(secs),
        None => default_timeout,
    };
    let expect_failure = raw.expect_failure;
    Ok(Step {
        action: action(verb, target, params, raw, guest)?,
        timeout,
        expect_failure,
    })
}

/// The one action a step names, and its target (module, driver, device or shell line).
fn step_action(raw: &RawStep) -> Result<(&'static str, String), String> {
    let actions = [
        ("load", &raw.load),
        ("unload", &raw.unload),
        ("reload", &raw.reload),
        ("selftest", &raw.selftest),
        ("unbind", &raw.unbind),
        ("bind", &raw.bind),
        ("hotunplug", &raw.hotunplug),
        ("hotplug", &raw.hotplug),
        ("sweep", &raw.sweep),
        ("run", &raw.run),
    ];
    let given: Vec<(&'static str, &String)> = actions
        .iter()
        .filter_map(|(verb, value)| value.as_ref().map(|v| (*verb, v)))
        .collect();
    match given.as_slice() {
        [(verb, target)] => Ok((verb, target.to_string())),
        [] => Err(
            "a step needs one of `load`, `unload`, `reload`, `selftest`, `sweep`, `unbind`, `bind`, `hotunplug`, `hotplug`, `run` (e.g. { load = \"i915\" })"
                .into(),
        ),
        many => Err(format!(
            "a step has exactly one action, this one has {}",
            many.iter().map(|(verb, _)| *verb).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The target is one the verb can act on: a shell line for `run`, a pluggable
/// QEMU device for hot(un)plug, a module or driver name otherwise.
fn check_target(verb: &str, target: &str, raw: &RawStep) -> Result<(), String> {
    if verb == "run" {
        if target.trim().is_empty() {
            return Err(
                "field `run` is empty: give a shell line, e.g. { run = \"echo 1 > /sys/...\" }"
                    .into(),
            );
        }
        if raw.params.is_some() || raw.kind.is_some() || raw.filter.is_some() {
            return Err("`run` steps take only `timeout` and `expect_failure`".into());
        }
        return Ok(());
    }
    match verb {
        // QEMU ids: the runner knows which devices it can plug back.
        "hotunplug" | "hotplug" => step::check_device_id(target).and_then(|()| {
            if target == crate::vm::argv::STANDIN.id {
                Ok(())
            } else {
                Err(format!(
                    "no pluggable device {target:?}: emulated guests have `{}` (QEMU's edu behind a hotplug PCIe port)",
                    crate::vm::argv::STANDIN.id
                ))
            }
        }),
        _ => step::check_module_name(target),
    }
    .map_err(|why| format!("field `{verb}`: {why}"))
}

/// Fields of one kind of step on another are a mistake worth naming.
fn check_fields_belong(verb: &str, raw: &RawStep) -> Result<(), String> {
    let owned = [
        ("selftest", "kind", raw.kind.is_some()),
        ("selftest", "filter", raw.filter.is_some()),
        ("sweep", "method", raw.method.is_some()),
        ("sweep", "limit", raw.limit.is_some()),
        ("sweep", "param", raw.param.is_some()),
        ("sweep", "points", raw.points.is_some()),
    ];
    for (owner, field, present) in owned {
        if present && verb != owner {
            return Err(format!(
                "field `{field}` belongs to `{owner}` steps, not `{verb}`"
            ));
        }
    }
    Ok(())
}

fn action(
    verb: &str,
    target: String,
    params: Params,
    raw: RawStep,
    guest: GuestMode,
) -> Result<Action, String> {
    Ok(match verb {
        "load" => Action::Load {
            module: target,
            params,
        },
        "unload" => Action::Unload { module: target },
        "reload" => Action::Reload {
            module: target,
            params,
        },
        "unbind" => Action::Unbind { driver: target },
        "bind" => Action::Bind { driver: target },
        "hotunplug" => Action::Hotunplug { device: target },
        "hotplug" => Action::Hotplug { device: target },
        "sweep" => Action::Sweep {
            module: target,
            params,
            limit: raw.limit.unwrap_or(DEFAULT_SWEEP_LIMIT),
            method: sweep_method(raw.method.as_deref(), raw.param, raw.points, raw.limit)?,
        },
        "run" => Action::Run { command: target },
        _ => {
            let kind = raw
                .kind
                .ok_or("field `kind` is missing: one of \"i915-mock\", \"i915-live\", \"kunit\"")?;
            if kind == SelftestKind::I915Live && guest != GuestMode::Passthrough {
                return Err(
                    "i915-live selftests need a real GPU: set `guest = \"passthrough\"` at the top of the suite"
                        .into(),
                );
            }
            if let Some(filter) = &raw.filter {
                step::check_param_string(filter).map_err(|why| format!("field `filter`: {why}"))?;
            }
            Action::Selftest {
                module: target,
                kind,
                filter: raw.filter,
                params,
            }
        }
    })
}

fn sweep_method(
    method: Option<&str>,
    param: Option<String>,
    points: Option<Vec<String>>,
    limit: Option<u32>,
) -> Result<SweepMethod, String> {
    match method.unwrap_or("fail-nth") {
        "fail-nth" => {
            if param.is_some() || points.is_some() {
                return Err(
                    "fields `param` and `points` belong to `method = \"param\"` sweeps".into(),
                );
            }
            if limit == Some(0) {
                return Err("field `limit` must be at least 1".into());
            }
            Ok(SweepMethod::FailNth)
        }
        "param" => {
            if limit.is_some() {
                return Err("field `limit` belongs to `method = \"fail-nth\"` sweeps".into());
            }
            let name = param.unwrap_or_else(|| "fail_at".into());
            step::check_param_name(&name).map_err(|why| format!("field `param`: {why}"))?;
            let points = points.unwrap_or_default();
            if points.is_empty() {
                return Err("a `method = \"param\"` sweep needs `points = [...]`: the values of the parameter to walk".into());
            }
            for point in &points {
                step::check_param_string(point).map_err(|why| format!("field `points`: {why}"))?;
            }
            Ok(SweepMethod::Param { name, points })
        }
        other => Err(format!(
            "field `method` is {other:?}; one of \"fail-nth\", \"param\""
        )),
    }
}

fn convert_params(raw: BTreeMap<String, Spanned<toml::Value>>) -> Result<Params, String> {
    raw.into_iter()
        .map(|(name, value)| {
            step::check_param_name(&name).map_err(|why| format!("field `params`: {why}"))?;
            let value = match value.into_inner() {
                toml::Value::Integer(n) => ParamValue::Int(n),
                toml::Value::Boolean(b) => ParamValue::Bool(b),
                toml::Value::String(s) => {
                    step::check_param_string(&s)
                        .map_err(|why| format!("field `params.{name}`: {why}"))?;
                    ParamValue::Str(s)
                }
                other => {
                    return Err(format!(
                        "field `params.{name}` must be an integer, boolean or string, not {}",
                        other.type_str()
                    ))
                }
            };
            Ok((name, value))
        })
        .collect()
}
