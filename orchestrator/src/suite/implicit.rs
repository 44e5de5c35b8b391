//! The suite `kcycle cycle MODULE` runs when there is no suite file (pure):
//! load (or the selftest load) -> unload, N cycles; then a reload; with
//! `sweep`, a fail-nth sweep of the module's init error paths.

use std::time::Duration;

use super::step::{self, Action, Params, SelftestKind, Step, SweepMethod};
use super::{GuestMode, Suite, Test};

/// Name of the implicit suite: tests are `kcycle@cycle@<module>...`.
pub const SUITE_NAME: &str = "cycle";
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// i915's mock selftests take minutes under TCG.
const SELFTEST_TIMEOUT: Duration = Duration::from_secs(900);

/// What `kcycle cycle` was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleSpec {
    /// The module name as /proc/modules spells it.
    pub module: String,
    pub params: Params,
    pub cycles: u32,
    pub selftest: Option<SelftestKind>,
    pub cmdline: Vec<String>,
    pub sweep: bool,
    /// The sweep's highest fail-nth.
    pub sweep_limit: u32,
}

/// The implicit suite, checked by the same rules as a suite file's.
pub fn suite(spec: &CycleSpec) -> Result<Suite, String> {
    check(spec)?;
    Ok(Suite {
        name: SUITE_NAME.into(),
        description: format!("kcycle cycle {}", spec.module),
        guest: GuestMode::Emulated,
        cmdline: spec.cmdline.clone(),
        step_timeout: STEP_TIMEOUT,
        tests: tests(spec),
        known_issues: Vec::new(),
    })
}

/// What a suite file's parser would refuse, refused with the option's name.
fn check(spec: &CycleSpec) -> Result<(), String> {
    step::check_module_name(&spec.module)?;
    for (name, value) in &spec.params {
        step::check_param_name(name)?;
        if let super::ParamValue::Str(s) = value {
            step::check_param_string(s)?;
        }
    }
    if spec.sweep_limit == 0 {
        return Err("--sweep-limit must be at least 1".into());
    }
    if spec.cycles == 0 {
        return Err("--cycles must be at least 1".into());
    }
    if spec.selftest == Some(SelftestKind::I915Live) {
        return Err("i915-live selftests need a real GPU (a passthrough guest), which kcycle does not set up yet".into());
    }
    Ok(())
}

/// The cycles, the reload and, if asked, the sweep.
fn tests(spec: &CycleSpec) -> Vec<Test> {
    let module = spec.module.clone();
    let step = |action: Action| Step {
        timeout: match action {
            Action::Selftest { .. } => SELFTEST_TIMEOUT,
            _ => STEP_TIMEOUT,
        },
        action,
        expect_failure: false,
    };
    let first = match spec.selftest {
        Some(kind) => Action::Selftest {
            module: module.clone(),
            kind,
            filter: None,
            params: spec.params.clone(),
        },
        None => Action::Load {
            module: module.clone(),
            params: spec.params.clone(),
        },
    };
    let unload = || Action::Unload {
        module: module.clone(),
    };
    let test = |suffix: &str, description: String, cycles: u32, steps: Vec<Step>| Test {
        name: format!("kcycle@{SUITE_NAME}@{module}{suffix}"),
        description,
        cycles,
        steps,
        expect: Vec::new(),
    };
    let mut tests = vec![
        test(
            "",
            format!(
                "{} -> unload, {} cycles: nothing may be left behind",
                describe_first(spec),
                spec.cycles
            ),
            spec.cycles,
            vec![step(first), step(unload())],
        ),
        test(
            "-reload",
            "after the cycles, a reload: the module must still load and unload".into(),
            1,
            vec![
                step(Action::Reload {
                    module: module.clone(),
                    params: spec.params.clone(),
                }),
                step(unload()),
            ],
        ),
    ];
    if spec.sweep {
        tests.push(test(
            "-sweep",
            "every init error path (fail-nth): a failed init must leave nothing behind".into(),
            1,
            vec![step(Action::Sweep {
                module: module.clone(),
                method: SweepMethod::FailNth,
                limit: spec.sweep_limit,
                params: spec.params.clone(),
            })],
        ));
    }
    tests
}

fn describe_first(spec: &CycleSpec) -> String {
    match spec.selftest {
        Some(kind) => format!("load with {} selftests", kind.as_str()),
        None => "load".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::ParamValue;

    fn spec() -> CycleSpec {
        CycleSpec {
            module: "kcycle_leaks".into(),
            params: [("leak_objects".to_string(), ParamValue::Int(2))].into(),
            cycles: 3,
            selftest: None,
            cmdline: vec!["slub_debug=U".into()],
            sweep: true,
            sweep_limit: crate::suite::DEFAULT_SWEEP_LIMIT,
        }
    }

    #[test]
    fn cycles_then_reload_then_sweep() {
        let suite = suite(&spec()).unwrap();
        let names: Vec<&str> = suite.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "kcycle@cycle@kcycle_leaks",
                "kcycle@cycle@kcycle_leaks-reload",
                "kcycle@cycle@kcycle_leaks-sweep"
            ]
        );
        assert_eq!(suite.tests[0].cycles, 3);
        assert!(matches!(
            &suite.tests[0].steps[0].action,
            Action::Load { params, .. } if params.contains_key("leak_objects")
        ));
        assert!(matches!(
            suite.tests[2].steps[0].action,
            Action::Sweep {
                method: SweepMethod::FailNth,
                ..
            }
        ));
    }

    #[test]
    fn printed_suite_parses_back_to_the_same_suite() {
        for selftest in [
            None,
            Some(SelftestKind::I915Mock),
            Some(SelftestKind::Kunit),
        ] {
            let built = suite(&CycleSpec { selftest, ..spec() }).unwrap();
            let text = crate::suite::to_toml(&built);
            let parsed = Suite::parse(std::path::Path::new("cycle.toml"), &text)
                .unwrap_or_else(|e| panic!("{}\n{text}", crate::sys::error::chain(&e)));
            assert_eq!(parsed, built, "{text}");
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let bad = |change: fn(&mut CycleSpec)| {
            let mut s = spec();
            change(&mut s);
            suite(&s).unwrap_err()
        };
        assert!(bad(|s| s.cycles = 0).contains("--cycles"));
        assert!(bad(|s| s.sweep_limit = 0).contains("--sweep-limit"));
        assert!(bad(|s| s.module = "a;b".into()).contains("module name"));
        assert!(bad(|s| {
            s.params
                .insert("x".into(), ParamValue::Str("$(reboot)".into()));
        })
        .contains("parameter value"));
        assert!(bad(|s| s.selftest = Some(SelftestKind::I915Live)).contains("real GPU"));
    }
}
