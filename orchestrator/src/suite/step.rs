//! Steps a test is made of, and the strict rules for the values in them.
//!
//! Module names, parameter names and values end up in a guest shell command,
//! so they are checked against narrow character sets here, before any guest
//! boots; the runner quotes them as well.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One step of a test, with its deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: Action,
    pub timeout: Duration,
    /// The action itself must fail (e.g. a load with `fail_at=` set): success fails the test.
    /// The checks around the step (leaks, warnings) still apply.
    pub expect_failure: bool,
}

/// What a step does in the guest.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `modprobe <module> <params>` (or `insmod` for a module file given with `--module`).
    Load { module: String, params: Params },
    /// `modprobe -r <module>`; the module must be gone from /proc/modules afterwards.
    Unload { module: String },
    /// Unload if loaded, then load.
    Reload { module: String, params: Params },
    /// Load a module whose init runs selftests, and collect one result per subtest.
    Selftest {
        module: String,
        kind: SelftestKind,
        /// i915: `st_filter=`; KUnit: `filter_glob=`.
        filter: Option<String>,
        params: Params,
    },
    /// Unbind every device bound to `driver` (sysfs `unbind`: its remove runs). The guest
    /// remembers them for the next `bind`.
    Unbind { driver: String },
    /// Bind the devices the last `unbind` took from `driver` back to it (its probe runs).
    Bind { driver: String },
    /// Unplug the QEMU device with this id (QMP `device_del`), waiting until the guest has let
    /// it go (DEVICE_DELETED): the driver's remove runs as on a surprise removal.
    Hotunplug { device: String },
    /// Plug it back as it was at boot (QMP `device_add`), waiting until the guest's PCI devices
    /// and their drivers are as before the unplug.
    Hotplug { device: String },
    /// Walk the module's init error paths: one failed load per point, each
    /// followed by a clean load and unload ([`crate::run::sweep`]).
    Sweep {
        module: String,
        method: SweepMethod,
        /// fail-nth: the highest N tried.
        limit: u32,
        /// Given on every load of the sweep.
        params: Params,
    },
    /// A shell line in the guest (`sh -c`), e.g. to poke a sysfs file between
    /// loads; a non-zero exit fails the step. `KCYCLE_ATTEMPT` holds the
    /// attempt (1, then 2 on the first rerun of a failing test).
    Run { command: String },
}

/// How a sweep makes init fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepMethod {
    /// The kernel's fault injection: the Nth injectable call of the loading
    /// task fails (`/proc/self/fail-nth`), N = 1, 2, ... until a load
    /// succeeds with nothing injected.
    FailNth,
    /// A module parameter naming the step to fail, e.g. `fail_at=misc`.
    Param { name: String, points: Vec<String> },
}

/// The highest fail-nth tried when a sweep does not say.
pub const DEFAULT_SWEEP_LIMIT: u32 = 400;

impl Step {
    /// The module a load, unload, selftest or sweep step works on; device and `run` steps
    /// have none.
    pub fn module(&self) -> Option<&str> {
        match &self.action {
            Action::Load { module, .. }
            | Action::Unload { module }
            | Action::Reload { module, .. }
            | Action::Selftest { module, .. }
            | Action::Sweep { module, .. } => Some(module),
            Action::Unbind { .. }
            | Action::Bind { .. }
            | Action::Hotunplug { .. }
            | Action::Hotplug { .. }
            | Action::Run { .. } => None,
        }
    }
}

/// How selftest results are reported by the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelftestKind {
    /// `mock_selftests=-1`: tests run in module init; `<module>: Running <suite>/<test>`
    /// lines and the result written back to /sys/module/<module>/parameters/mock_selftests.
    I915Mock,
    /// `live_selftests=-1`: needs a real GPU (passthrough guests only).
    I915Live,
    /// A KUnit test module: KTAP in dmesg and debugfs kunit/<suite>/results.
    Kunit,
}

impl SelftestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SelftestKind::I915Mock => "i915-mock",
            SelftestKind::I915Live => "i915-live",
            SelftestKind::Kunit => "kunit",
        }
    }
}

/// Module parameters, sorted by name so command lines are deterministic.
pub type Params = BTreeMap<String, ParamValue>;

/// A module parameter value as written in a suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Int(i64),
    Bool(bool),
    Str(String),
}

impl fmt::Display for ParamValue {
    /// The form modprobe and the kernel's param parser accept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(n) => write!(f, "{n}"),
            ParamValue::Bool(b) => f.write_str(if *b { "1" } else { "0" }),
            ParamValue::Str(s) => f.write_str(s),
        }
    }
}

/// Module names as the kernel spells them (dashes and underscores are the same to modprobe).
pub fn check_module_name(name: &str) -> Result<(), String> {
    check_chars(name, 56, |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '-'
    })
    .map_err(|why| format!("module name {name:?} {why} (allowed: letters, digits, '_', '-')"))
}

/// QEMU device ids (`-device …,id=<id>`) a hotplug step names.
pub fn check_device_id(id: &str) -> Result<(), String> {
    check_chars(id, 64, |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '-'
    })
    .map_err(|why| format!("device id {id:?} {why} (allowed: letters, digits, '_', '-')"))
}

/// Parameter names are C identifiers.
pub fn check_param_name(name: &str) -> Result<(), String> {
    let starts_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    check_chars(name, 64, |c| c.is_ascii_alphanumeric() || c == '_')
        .and_then(|()| {
            if starts_ok {
                Ok(())
            } else {
                Err("must start with a letter or '_'".into())
            }
        })
        .map_err(|why| format!("parameter name {name:?} {why}"))
}

/// String parameter values: enough for step names, filters and globs, nothing a shell interprets.
pub fn check_param_string(value: &str) -> Result<(), String> {
    check_chars(value, 256, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ',' | ':' | '*' | '/' | '+')
    })
    .map_err(|why| {
        format!("parameter value {value:?} {why} (allowed: letters, digits and _ - . , : * / +)")
    })
}

fn check_chars(s: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if s.contains("..") {
        return Err("contains '..'".into());
    }
    match s.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(format!("contains {c:?}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_are_refused() {
        for hostile in [
            "; reboot",
            "$(reboot)",
            "a\nb",
            "../x",
            "a b",
            "`id`",
            "a'b",
            "",
        ] {
            assert!(check_module_name(hostile).is_err(), "{hostile:?}");
            assert!(check_param_string(hostile).is_err(), "{hostile:?}");
            assert!(check_param_name(hostile).is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn ordinary_values_pass() {
        check_module_name("rust_i915_table").unwrap();
        check_module_name("drm-kms-helper").unwrap();
        check_param_name("mock_selftests").unwrap();
        check_param_string("globals").unwrap();
        check_param_string("i915_gem_*,i915_vma").unwrap();
        assert!(check_param_name("9lives").is_err());
    }

    #[test]
    fn bools_render_as_digits() {
        assert_eq!(ParamValue::Bool(true).to_string(), "1");
        assert_eq!(ParamValue::Int(-1).to_string(), "-1");
    }
}
