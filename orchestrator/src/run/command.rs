//! Guest shell commands for each step (pure). Values were validated when the
//! suite was parsed; they are single-quoted here as well, so a value that
//! slipped through could still not reach the shell as code.

use std::collections::BTreeMap;

use crate::suite::{Action, Params, SelftestKind};
use crate::sys::shell::quote;

/// Where `--module` files are copied in the guest.
pub const MODULE_DIR: &str = "/tmp/kcycle-modules";

/// How to load modules: by name through modprobe, or from a copied file
/// through insmod (user's out-of-tree modules given with `--module`).
#[derive(Debug, Clone, Default)]
pub struct ModuleSources {
    /// Module name (underscores) to guest path of its .ko.
    pub files: BTreeMap<String, String>,
}

impl ModuleSources {
    fn load(&self, module: &str, params: &[(String, String)]) -> String {
        let args = quoted_args(params);
        match self.files.get(&canonical(module)) {
            Some(path) => format!("insmod {} {args}", quote(path)),
            None => format!("modprobe {} {args}", quote(module)),
        }
        .trim_end()
        .to_string()
    }

    /// The guest path of a `--module` file.
    pub fn file(&self, module: &str) -> Option<&str> {
        self.files.get(&canonical(module)).map(String::as_str)
    }
}

/// `'k=v' 'k2=v2'`: parameters as single-quoted words.
fn quoted_args(params: &[(String, String)]) -> String {
    let args: Vec<String> = params
        .iter()
        .map(|(k, v)| quote(&format!("{k}={v}")))
        .collect();
    args.join(" ")
}

/// `insmod <path> <params>` with the path from a shell variable (`$P`).
pub fn insmod_from(var: &str, params: &Params) -> String {
    format!("insmod \"${var}\" {}", quoted_args(&rendered(params)))
        .trim_end()
        .to_string()
}

/// Module names in /proc/modules use '_' where modprobe also accepts '-'.
pub fn canonical(module: &str) -> String {
    module.replace('-', "_")
}

/// The selftest parameter that holds the result after a selftest load.
pub fn selftest_param(kind: SelftestKind) -> Option<&'static str> {
    match kind {
        SelftestKind::I915Mock => Some("mock_selftests"),
        SelftestKind::I915Live => Some("live_selftests"),
        SelftestKind::Kunit => None,
    }
}

fn rendered(params: &Params) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

/// `modprobe`/`insmod` of a module with its parameters (the sweep's loads).
pub fn load_command(module: &str, params: &Params, sources: &ModuleSources) -> String {
    sources.load(module, &rendered(params))
}

/// The command for a step. Unloads also check that the module is gone from
/// /proc/modules, since `modprobe -r` of a module that is in use or has no
/// exit function can exit 0 on some kmod versions and leave it loaded.
pub fn for_action(action: &Action, sources: &ModuleSources) -> String {
    match action {
        Action::Load { module, params } => loaded(module, sources.load(module, &rendered(params))),
        Action::Unload { module } => unload(module, sources),
        Action::Reload { module, params } => format!(
            "{{ {} && {}; }}; {}",
            in_proc_modules(&canonical(module)),
            unload(module, sources),
            loaded(module, sources.load(module, &rendered(params)))
        ),
        Action::Selftest {
            module,
            kind,
            filter,
            params,
        } => {
            let mut all = Vec::new();
            if let Some(param) = selftest_param(*kind) {
                all.push((param.to_string(), "-1".to_string()));
                if let Some(filter) = filter {
                    all.push(("st_filter".to_string(), filter.clone()));
                }
            }
            all.extend(rendered(params));
            sources.load(module, &all)
        }
        Action::Unbind { driver } => unbind(driver),
        Action::Bind { driver } => bind(driver),
        // QMP does the work; these print what the guest saw around it.
        Action::Hotunplug { device } => format!("{}; {}", pci_record(device), UNPLUG_NOTE),
        Action::Hotplug { device } => format!("# QMP device_add {device}"),
        // A sweep's own command prepares fault injection; its loads are
        // planned point by point (`super::sweep`).
        Action::Sweep { module, .. } => super::sweep::setup(module, sources),
        Action::Run { command } => format!("sh -c {}", quote(command)),
    }
}

/// The command for a step of attempt `attempt` of its test: `run` lines see
/// it as `KCYCLE_ATTEMPT` (as nextest's NEXTEST_ATTEMPT), so a suite can
/// tell a rerun from the first try.
pub fn for_step(action: &Action, sources: &ModuleSources, attempt: u32) -> String {
    match action {
        Action::Run { .. } => format!("KCYCLE_ATTEMPT={attempt} {}", for_action(action, sources)),
        _ => for_action(action, sources),
    }
}

/// Where the guest keeps what a device step's counterpart needs (the devices an unbind took,
/// the PCI devices before an unplug).
const STATE_DIR: &str = "/run/kcycle";
const UNPLUG_NOTE: &str = "echo 'kcycle: QMP device_del follows'";

/// The driver's directory on whatever bus it is (`/sys/bus/pci/drivers/<name>`), in `$d`.
fn driver_dir(driver: &str) -> String {
    let name = quote(driver);
    format!(
        "d=$(ls -d /sys/bus/*/drivers/{name} 2>/dev/null | head -n 1); \
         [ -n \"$d\" ] || {{ echo 'kcycle: no driver '{name}' in /sys/bus/*/drivers: is its module loaded?' >&2; exit 1; }}"
    )
}

/// Unbind every device bound to `driver`, printing `kcycle: unbound <device>` for each.
fn unbind(driver: &str) -> String {
    let name = quote(driver);
    format!(
        "{}; set --; for l in \"$d\"/*; do [ -L \"$l\" ] && [ -e \"$l/driver\" ] && set -- \"$@\" \"${{l##*/}}\"; done; \
         [ $# -gt 0 ] || {{ echo 'kcycle: no device is bound to '{name} >&2; exit 1; }}; \
         mkdir -p {STATE_DIR} && echo \"$@\" > {STATE_DIR}/unbound-{name}; \
         for b in \"$@\"; do echo \"$b\" > \"$d/unbind\" || exit 1; echo \"kcycle: unbound $b\"; done",
        driver_dir(driver)
    )
}

/// Bind back what the last unbind of `driver` took; each must end up bound.
fn bind(driver: &str) -> String {
    let name = quote(driver);
    format!(
        "{}; [ -s {STATE_DIR}/unbound-{name} ] || {{ echo 'kcycle: nothing to bind to '{name}': an unbind step must come first' >&2; exit 1; }}; \
         for b in $(cat {STATE_DIR}/unbound-{name}); do \
         echo \"$b\" > \"$d/bind\" || {{ echo \"kcycle: binding $b to \"{name}\" failed: its probe failed (see the kernel log)\" >&2; exit 1; }}; \
         [ -e \"$d/$b\" ] || {{ echo \"kcycle: $b is not bound to \"{name}\" after bind\" >&2; exit 1; }}; \
         echo \"kcycle: bound $b\"; done; rm -f {STATE_DIR}/unbound-{name}",
        driver_dir(driver)
    )
}

/// Every PCI device with its driver, one `<bdf> <driver>` line each.
const PCI_LISTING: &str = "for p in /sys/bus/pci/devices/*; do drv=$(readlink \"$p/driver\"); echo \"${p##*/} ${drv##*/}\"; done";

/// Before an unplug of QEMU device `id`: remember the guest's PCI devices and drivers.
fn pci_record(id: &str) -> String {
    format!(
        "mkdir -p {STATE_DIR} && {{ {PCI_LISTING}; }} > {STATE_DIR}/pci-{}",
        quote(id)
    )
}

/// After the unplug: `kcycle: removed <bdf> (from <driver>)` for each device that went.
pub fn unplug_report(id: &str) -> String {
    format!(
        "while read -r b drv; do [ -e \"/sys/bus/pci/devices/$b\" ] || echo \"kcycle: removed $b${{drv:+ (from $drv)}}\"; done < {STATE_DIR}/pci-{}",
        quote(id)
    )
}

/// After plugging `id` back: wait (polling, at most `secs`) until the guest's PCI devices and
/// their drivers are as before the unplug.
pub fn plug_await(id: &str, secs: u64) -> String {
    let file = format!("{STATE_DIR}/pci-{}", quote(id));
    format!(
        "[ -s {file} ] || {{ echo 'kcycle: hotplug of '{id}' without a hotunplug first' >&2; exit 1; }}; \
         want=$(cat {file}); i=0; while [ $i -lt {tries} ]; do now=$({PCI_LISTING}); \
         [ \"$now\" = \"$want\" ] && {{ echo 'kcycle: '{id}' is back, bound as before'; exit 0; }}; i=$((i+1)); sleep 0.2; done; \
         echo 'kcycle: within {secs}s of plugging '{id}' back, the PCI devices and drivers are not as before the unplug' >&2; \
         echo \"before: $want\" >&2; echo \"now: $now\" >&2; exit 1",
        id = quote(id),
        tries = secs.saturating_mul(5).max(1),
    )
}

/// The devices a successful unbind or hot-unplug took from their drivers, by driver, from
/// the step's output (`kcycle: unbound <dev>`, `kcycle: removed <bdf> (from <driver>)`).
pub fn released_devices(action: &Action, output: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in output.lines() {
        let (device, driver) = match action {
            Action::Unbind { driver } => match line.strip_prefix("kcycle: unbound ") {
                Some(device) => (device.trim(), driver.as_str()),
                None => continue,
            },
            Action::Hotunplug { .. } => {
                let Some(rest) = line.strip_prefix("kcycle: removed ") else {
                    continue;
                };
                match rest.split_once(" (from ") {
                    Some((device, driver)) => (device.trim(), driver.trim_end_matches(')')),
                    None => continue, // no driver had it: nothing to undo
                }
            }
            _ => return out,
        };
        out.entry(canonical(driver))
            .or_default()
            .push(device.to_string());
    }
    out
}

/// `load`, then check the module is in /proc/modules: kmod's modprobe takes
/// an init that fails with -EEXIST for "already loaded" and exits 0.
fn loaded(module: &str, load: String) -> String {
    let name = canonical(module);
    format!(
        "{load} && if ! {}; then echo 'kcycle: {name} is not in /proc/modules after its load: its init failed (modprobe takes -EEXIST for \"already loaded\")' >&2; false; fi",
        in_proc_modules(&name)
    )
}

/// A shell test that module `name` (canonical) is in /proc/modules, in
/// shell builtins: a `grep` is an exec, 5 ms under TCG, twice a cycle
/// (2026-12-04, 20 runs in one guest).
fn in_proc_modules(name: &str) -> String {
    format!(
        "{{ while read -r kcycle_m _; do [ \"$kcycle_m\" = {name} ] && break; done < /proc/modules; \
         [ \"$kcycle_m\" = {name} ]; }}"
    )
}

fn unload(module: &str, sources: &ModuleSources) -> String {
    let name = canonical(module);
    let remove = if sources.files.contains_key(&name) {
        format!("rmmod {}", quote(&name))
    } else {
        format!("modprobe -r {}", quote(module))
    };
    format!(
        "{remove} && if {}; then echo 'kcycle: {name} is still in /proc/modules after unload' >&2; false; fi",
        in_proc_modules(&name)
    )
}

/// Whether the value of the selftest parameter after the load means success.
/// i915 writes -ENOTTY (-25) when the tests passed and it stops there
/// (`mock_selftests=-1`: "run tests then leave dummy module"), 0 when it
/// went on loading; any other value is the failing test's error.
pub fn selftest_passed(value: &str) -> bool {
    matches!(value.trim(), "0" | "-25")
}

/// Read the selftest result parameter after a selftest load.
pub fn read_selftest_result(module: &str, kind: SelftestKind) -> Option<String> {
    selftest_param(kind)
        .map(|param| format!("cat /sys/module/{}/parameters/{param}", canonical(module)))
}

/// Scan for leaks, print the report, and forget what was reported.
/// kmemleak reports only objects older than its minimum age (5 s) that a
/// scan found unreferenced: scan, wait past the age, scan again (as
/// netdev's CI does), then read.
pub const KMEMLEAK_SCAN: &str = "K=/sys/kernel/debug/kmemleak; echo scan > $K && sleep 5 && \
echo scan > $K && cat $K && echo clear > $K";

/// Forget what kmemleak found before the test (boot, earlier tests).
pub const KMEMLEAK_CLEAR: &str = "echo clear > /sys/kernel/debug/kmemleak";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::ParamValue;

    fn params(pairs: &[(&str, ParamValue)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn the_proc_modules_test_is_true_only_for_a_listed_module() {
        let tmp = tempfile::tempdir().unwrap();
        let modules = tmp.path().join("modules");
        std::fs::write(
            &modules,
            "drm_buddy 20480 0 - Live 0x0\nrust_i915_table 16384 0 - Live 0x0 (O)\n",
        )
        .unwrap();
        let listed = |name: &str| {
            let test = in_proc_modules(name).replace("/proc/modules", modules.to_str().unwrap());
            std::process::Command::new("sh")
                .args(["-c", &test])
                .status()
                .unwrap()
                .success()
        };
        assert!(listed("drm_buddy"));
        assert!(listed("rust_i915_table"));
        assert!(!listed("drm"), "a prefix of a listed name");
        assert!(!listed("i915"));
        std::fs::write(&modules, "").unwrap();
        assert!(!listed("drm_buddy"), "an empty list");
    }

    #[test]
    fn commands_for_each_action() {
        let sources = ModuleSources::default();
        let load = Action::Load {
            module: "rust_i915_table".into(),
            params: params(&[("legacy_exit", ParamValue::Bool(true))]),
        };
        let command = for_action(&load, &sources);
        assert!(
            command.starts_with("modprobe 'rust_i915_table' 'legacy_exit=1' && if ! { while read -r kcycle_m _; do [ \"$kcycle_m\" = rust_i915_table ]"),
            "{command}"
        );
        let unload = for_action(
            &Action::Unload {
                module: "drm-buddy".into(),
            },
            &sources,
        );
        assert!(
            unload.starts_with("modprobe -r 'drm-buddy' && if { while read -r kcycle_m _; do [ \"$kcycle_m\" = drm_buddy ]"),
            "{unload}"
        );
        let selftest = Action::Selftest {
            module: "i915".into(),
            kind: SelftestKind::I915Mock,
            filter: Some("i915_gem_*".into()),
            params: Params::new(),
        };
        assert_eq!(
            for_action(&selftest, &sources),
            "modprobe 'i915' 'mock_selftests=-1' 'st_filter=i915_gem_*'"
        );
        assert_eq!(
            read_selftest_result("i915", SelftestKind::I915Mock).unwrap(),
            "cat /sys/module/i915/parameters/mock_selftests"
        );
    }

    #[test]
    fn module_files_use_insmod_and_rmmod() {
        let mut sources = ModuleSources::default();
        sources
            .files
            .insert("my_drv".into(), format!("{MODULE_DIR}/my_drv.ko"));
        let load = Action::Load {
            module: "my-drv".into(),
            params: Params::new(),
        };
        assert!(
            for_action(&load, &sources).starts_with("insmod '/tmp/kcycle-modules/my_drv.ko' && ")
        );
        let unload = for_action(
            &Action::Unload {
                module: "my_drv".into(),
            },
            &sources,
        );
        assert!(unload.starts_with("rmmod 'my_drv' && "), "{unload}");
    }

    #[test]
    fn selftest_results() {
        assert!(selftest_passed("0\n") && selftest_passed("-25"));
        assert!(!selftest_passed("-22") && !selftest_passed("") && !selftest_passed("1"));
    }
}
