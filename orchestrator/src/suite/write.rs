//! A suite written back as TOML (pure), in the layout people write by hand:
//! what `kcycle cycle --print-suite` prints for the developer to keep.
//! [`super::Suite::parse`] of the text gives the same suite back (known
//! issues excepted: suites written here have none).

use std::fmt::Write as _;

use super::step::{Action, ParamValue, Params, Step, SweepMethod};
use super::{GuestMode, Suite, Test};

/// The suite as a suite file.
pub fn to_toml(suite: &Suite) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "name = {}", string(&suite.name));
    if !suite.description.is_empty() {
        let _ = writeln!(out, "description = {}", string(&suite.description));
    }
    if suite.guest != GuestMode::Emulated {
        out.push_str("guest = \"passthrough\"\n");
    }
    if !suite.cmdline.is_empty() {
        let args: Vec<String> = suite.cmdline.iter().map(|a| string(a)).collect();
        let _ = writeln!(out, "cmdline = [{}]", args.join(", "));
    }
    let _ = writeln!(out, "step_timeout = {}", suite.step_timeout.as_secs());
    for test in &suite.tests {
        out.push('\n');
        write_test(&mut out, suite, test);
    }
    out
}

fn write_test(out: &mut String, suite: &Suite, test: &Test) {
    let prefix = format!("kcycle@{}@", suite.name);
    let short = test.name.strip_prefix(&prefix).unwrap_or(&test.name);
    out.push_str("[[test]]\n");
    let _ = writeln!(out, "name = {}", string(short));
    if !test.description.is_empty() {
        let _ = writeln!(out, "description = {}", string(&test.description));
    }
    if test.cycles != 1 {
        let _ = writeln!(out, "cycles = {}", test.cycles);
    }
    out.push_str("steps = [\n");
    for step in &test.steps {
        let _ = writeln!(out, "    {},", step_table(step, suite));
    }
    out.push_str("]\n");
    if !test.expect.is_empty() {
        out.push_str("expect = [\n");
        for e in &test.expect {
            let _ = writeln!(
                out,
                "    {{ kind = {}, title = {}, attribution = {} }},",
                string(e.kind.name()),
                string(e.title.as_str()),
                string(e.attribution.as_str())
            );
        }
        out.push_str("]\n");
    }
}

/// One step as an inline table: `{ load = "m", params = { k = 1 } }`.
fn step_table(step: &Step, suite: &Suite) -> String {
    let mut fields: Vec<String> = Vec::new();
    let mut params = None;
    match &step.action {
        Action::Load { module, params: p } => {
            fields.push(format!("load = {}", string(module)));
            params = Some(p);
        }
        Action::Unload { module } => fields.push(format!("unload = {}", string(module))),
        Action::Reload { module, params: p } => {
            fields.push(format!("reload = {}", string(module)));
            params = Some(p);
        }
        Action::Selftest {
            module,
            kind,
            filter,
            params: p,
        } => {
            fields.push(format!("selftest = {}", string(module)));
            fields.push(format!("kind = {}", string(kind.as_str())));
            if let Some(filter) = filter {
                fields.push(format!("filter = {}", string(filter)));
            }
            params = Some(p);
        }
        Action::Sweep {
            module,
            method,
            limit,
            params: p,
        } => {
            fields.push(format!("sweep = {}", string(module)));
            match method {
                SweepMethod::FailNth => {
                    fields.push("method = \"fail-nth\"".into());
                    fields.push(format!("limit = {limit}"));
                }
                SweepMethod::Param { name, points } => {
                    fields.push("method = \"param\"".into());
                    fields.push(format!("param = {}", string(name)));
                    let points: Vec<String> = points.iter().map(|p| string(p)).collect();
                    fields.push(format!("points = [{}]", points.join(", ")));
                }
            }
            params = Some(p);
        }
        Action::Unbind { driver } => fields.push(format!("unbind = {}", string(driver))),
        Action::Bind { driver } => fields.push(format!("bind = {}", string(driver))),
        Action::Hotunplug { device } => fields.push(format!("hotunplug = {}", string(device))),
        Action::Hotplug { device } => fields.push(format!("hotplug = {}", string(device))),
        Action::Run { command } => fields.push(format!("run = {}", string(command))),
    }
    if let Some(params) = params.filter(|p| !p.is_empty()) {
        fields.push(format!("params = {}", params_table(params)));
    }
    if step.timeout != suite.step_timeout {
        fields.push(format!("timeout = {}", step.timeout.as_secs()));
    }
    if step.expect_failure {
        fields.push("expect_failure = true".into());
    }
    format!("{{ {} }}", fields.join(", "))
}

fn params_table(params: &Params) -> String {
    let pairs: Vec<String> = params
        .iter()
        .map(|(name, value)| {
            let value = match value {
                ParamValue::Int(n) => n.to_string(),
                ParamValue::Bool(b) => b.to_string(),
                ParamValue::Str(s) => string(s),
            };
            // Parameter names are C identifiers: bare keys.
            format!("{name} = {value}")
        })
        .collect();
    format!("{{ {} }}", pairs.join(", "))
}

/// A TOML basic string.
fn string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}
