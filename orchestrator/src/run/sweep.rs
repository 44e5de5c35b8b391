//! The error-path sweep's plan (pure): which loads to try, and what a
//! point's kernel log says about the fault that was injected.
//!
//! fail-nth: the Nth fault-injectable call (slab or page allocation) made
//! on a module's behalf fails. The shell writes N to its own
//! `/proc/self/fail-nth` and `exec`s kmod's insmod, so the count runs on in
//! the same task through the module's init. Fault injection's stack filter
//! (`require-start`/`require-end`, CONFIG_FAULT_INJECTION_STACKTRACE_FILTER)
//! counts only calls with a module-area frame among the 32 innermost:
//! exec, the dynamic loader and `load_module` itself are not counted, so
//! N=1 is the first call of the module's init, and N names the same call
//! after a guest restart. Not busybox's insmod: it retries a failed
//! `finit_module` with `init_module` in the same task, after fail-nth was
//! spent, so every failed init was followed by a clean load. Whether a
//! fault was injected at all is read from the attributes' `times` budget,
//! which every injection spends: an allocation asking for `__GFP_NOWARN`
//! fails without printing anything (and often has a fallback, so the load
//! survives), so the kernel log alone cannot say that N is past the end.
//! The sweep ends at the first load that succeeds with nothing injected.
//!
//! param: a module parameter naming the step to fail (`fail_at=misc`),
//! walked over the given points.

use crate::dmesg::{self, stack};
use crate::outcome::Finding;
use crate::status::Status;
use crate::suite::{Params, SweepMethod};
use crate::sys::shell::quote;

use super::command::{self, ModuleSources};
use super::verdict;

/// Prepares fault injection once per sweep (and after a restart): fail
/// sleeping allocations as well (`ignore-gfp-wait`), order-0 pages too
/// (`min-order`), print the failing call's stack every time (`verbose=2`,
/// no rate limit), count only calls made from module code (the stack
/// filter, from the kernel image's end up: x86_64 maps modules above it);
/// and load the module's dependencies, so the sweep's `insmod` faults only
/// in the module's own load.
pub fn setup(module: &str, sources: &ModuleSources) -> String {
    let deps = match sources.file(module) {
        Some(_) => String::new(),
        None => format!(
            "; for F in $(modprobe -D {} | sed -n 's/^insmod //p' | sed '$d'); do insmod $F 2>/dev/null; done; true",
            quote(module)
        ),
    };
    format!("{FAULT_SETUP}{deps}")
}

const FAULT_SETUP: &str = "D=/sys/kernel/debug; \
[ -d $D/failslab ] || mount -t debugfs none $D 2>/dev/null; \
S=$(awk '$3 == \"_end\" { print $1; exit }' /proc/kallsyms); \
case $S in ''|0000000000000000) echo \"kcycle: /proc/kallsyms gives no address for _end (is kptr_restrict set?): the sweep cannot tell module code from the kernel's\" >&2; exit 1;; esac; \
for F in failslab fail_page_alloc; do \
[ -d $D/$F ] || { echo \"kcycle: $D/$F is missing: the kernel needs CONFIG_FAULT_INJECTION_DEBUG_FS, CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC\" >&2; exit 1; }; \
[ -e $D/$F/require-start ] || { echo \"kcycle: $D/$F/require-start is missing: the kernel needs CONFIG_FAULT_INJECTION_STACKTRACE_FILTER\" >&2; exit 1; }; \
echo N > $D/$F/ignore-gfp-wait && echo 2 > $D/$F/verbose && \
echo 0 > $D/$F/verbose_ratelimit_interval_ms && echo 32 > $D/$F/stacktrace-depth && \
echo 0x$S > $D/$F/require-start && echo 0xffffffffffffffff > $D/$F/require-end || exit 1; \
done; echo 0 > $D/fail_page_alloc/min-order";

/// The `times` budget each point starts with: an injection spends one.
const BUDGET: u32 = 1000;

/// The line a fail-nth point writes to the kernel log after its load: the
/// `times` left of failslab and fail_page_alloc.
const FAULTS_LEFT: &str = "kcycle-sweep: faults left";

/// Sets the budget, loads with fail-nth, logs what is left of the budget
/// (read with the `read` builtin: a `$(cat)` forks and execs under TCG);
/// exits with the load's status.
fn counted(load: &str) -> String {
    format!(
        "D=/sys/kernel/debug; for F in failslab fail_page_alloc; do echo {BUDGET} > $D/$F/times; done; \
{load}; R=$?; read -r A < $D/failslab/times; read -r B < $D/fail_page_alloc/times; \
echo \"{FAULTS_LEFT} $A $B\" > /dev/kmsg; exit $R"
    )
}

/// The fault-injection report's first line (`lib/fault-inject.c`, `fail_dump`).
const FORCING: &str = "FAULT_INJECTION: forcing a failure.";

/// Frames of the injection machinery itself, never the call site.
const SKIP_INJECTION: &[&str] = &[
    "fail_dump",
    "should_fail",
    "should_failslab",
    "__should_failslab",
    "fail_alloc_page",
    "prepare_alloc_pages",
    "dump_stack",
];

/// One point of a sweep: its subtest name and the load that fails there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// `fail-nth-17`, `fail_at-misc`: the subtest is `<test>@sweep@<name>`.
    pub name: String,
    pub inject: String,
}

/// The point at `index` (0-based), or None past the last one.
pub fn point(
    method: &SweepMethod,
    limit: u32,
    module: &str,
    params: &Params,
    sources: &ModuleSources,
    index: u32,
) -> Option<Point> {
    match method {
        SweepMethod::FailNth => {
            let n = index.checked_add(1).filter(|n| *n <= limit)?;
            // `/sbin/insmod` is kmod's (the image links it); a bare `insmod`
            // under busybox sh would be busybox's, which retries a failed
            // finit_module (see the module comment). insmod, not modprobe:
            // `setup` loaded the dependencies.
            let path = match sources.file(module) {
                Some(file) => format!("P={}", quote(file)),
                None => format!("P=$(modinfo -n {})", quote(module)),
            };
            let load = command::insmod_from("P", params);
            Some(Point {
                name: format!("fail-nth-{n}"),
                inject: counted(&format!(
                    "sh -c {}",
                    quote(&format!(
                        "{path} && echo {n} > /proc/self/fail-nth && exec /sbin/{load}"
                    ))
                )),
            })
        }
        SweepMethod::Param { name, points } => {
            let value = points.get(index as usize)?;
            let mut params = params.clone();
            params.insert(name.clone(), crate::suite::ParamValue::Str(value.clone()));
            Some(Point {
                name: format!("{name}-{value}"),
                inject: command::load_command(module, &params, sources),
            })
        }
    }
}

/// A fault the kernel log says was injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// `failslab`, `fail_page_alloc`.
    pub attr: String,
    /// The function that made the failing call: the first frame in the
    /// module if there is one, else the first that is not allocator or
    /// injection machinery.
    pub call_site: Option<String>,
    /// The fault hit inside the module's load (`load_module`, its init),
    /// not in exec or modprobe's own work before it.
    pub in_load: bool,
    /// The failing call asked for `__GFP_NOWARN`: the budget says a fault
    /// was injected, but the kernel printed no stack.
    pub silent: bool,
}

impl Injection {
    /// For titles: `kcycle_leaks_init (failslab)`.
    pub fn describe(&self) -> String {
        match &self.call_site {
            Some(site) => format!("{site} ({})", self.attr),
            None if self.silent => {
                format!("a __GFP_NOWARN call, which prints no stack ({})", self.attr)
            }
            None => format!("an unnamed call site ({})", self.attr),
        }
    }
}

/// The fault injected during a load, from the kernel log of that load:
/// None when nothing was. A fail-nth point's budget line decides whether a
/// fault was injected; the fault's stack, when printed, says where.
pub fn injection(log: &str, module: &str) -> Option<Injection> {
    let lines: Vec<&str> = log.lines().map(|l| dmesg::line::parse(l).text).collect();
    let spent = spent_budget(&lines);
    if spent == Some(None) {
        return None;
    }
    let Some(start) = lines.iter().position(|l| l.contains(FORCING)) else {
        return spent.flatten().map(|attr| Injection {
            attr: attr.to_string(),
            call_site: None,
            in_load: true,
            silent: true,
        });
    };
    let rest = &lines[start + 1..];
    let attr = rest
        .first()
        .and_then(|l| l.trim().strip_prefix("name "))
        .and_then(|l| l.split(',').next())
        .unwrap_or("fault")
        .to_string();
    let frames: Vec<&str> = stack::trace_frames(rest).collect();
    let tag = format!("[{}]", command::canonical(module));
    let in_module = rest
        .iter()
        .take_while(|l| !l.contains(FORCING))
        .filter(|l| l.contains(&tag))
        .find_map(|l| stack::frame(l));
    let mut skip: Vec<&str> = stack::SKIP_ALLOC.to_vec();
    skip.extend(SKIP_INJECTION);
    let call_site = in_module
        .or_else(|| stack::first_unskipped(frames.iter().copied(), &skip))
        .map(dmesg::demangle);
    let in_load = frames.iter().any(|f| LOAD_FRAMES.contains(f));
    Some(Injection {
        attr,
        call_site,
        in_load,
        silent: false,
    })
}

/// Frames of the module loader: a fault under one of these is in the load
/// (the syscalls' own frames too, as `stack::clean` names them: their
/// helpers are often inlined).
const LOAD_FRAMES: &[&str] = &[
    "load_module",
    "do_init_module",
    "do_one_initcall",
    "init_module_from_file",
    "idempotent_init_module",
    "finit_module",
    "init_module",
];

/// From the budget line: None without one (not a fail-nth point),
/// Some(None) when nothing was spent, else the attribute that was.
fn spent_budget(lines: &[&str]) -> Option<Option<&'static str>> {
    let left = lines
        .iter()
        .rev()
        .find_map(|l| l.split_once(FAULTS_LEFT).map(|(_, rest)| rest))?;
    let mut left = left.split_whitespace().map(|n| n.parse::<u32>().ok());
    let slab = left.next().flatten();
    let page = left.next().flatten();
    Some(match (slab, page) {
        (Some(n), _) if n < BUDGET => Some("failslab"),
        (_, Some(n)) if n < BUDGET => Some("fail_page_alloc"),
        _ => None,
    })
}

/// Whether a kernel-log finding is the injection's own echo (its stack
/// dump, the allocator's "page allocation failure"), not something the
/// module did.
pub fn is_injection_echo(report: &str, title: &str) -> bool {
    report.contains(FORCING)
        || title.contains("page allocation failure")
        || report.contains("page allocation failure")
}

/// A sweep point's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// The point's findings without the fault's own echo, each charged to
    /// the point and the call site that failed.
    pub findings: Vec<Finding>,
    pub status: Status,
    /// What happened, for the subtest's output.
    pub out: String,
}

/// Judge one point from the findings its loads and unloads produced.
pub fn judge(
    point: &Point,
    injection: Option<&Injection>,
    loaded: bool,
    found: Vec<Finding>,
) -> Judged {
    let site = injection.map(Injection::describe);
    let at = match &site {
        Some(site) => format!("sweep point {}, fault injected in {site}", point.name),
        None => format!("sweep point {}", point.name),
    };
    let findings: Vec<Finding> = found
        .into_iter()
        .filter(|f| !is_injection_echo(&f.report, &f.title))
        .map(|mut f| {
            f.attribution = Some(match f.attribution.take() {
                Some(was) => format!("{was} ({at})"),
                None => at.clone(),
            });
            f
        })
        .collect();
    let outside = injection.is_some_and(|i| !i.in_load);
    let status = match verdict::status(None, &findings) {
        Status::Pass if outside => Status::Skip,
        status => status,
    };
    let outcome = match (loaded, &site) {
        (false, Some(site)) => format!("the load failed: fault injected in {site}"),
        (false, None) => "the load failed".to_string(),
        (true, Some(site)) => format!("the load survived a fault injected in {site}"),
        (true, None) => "the load succeeded with nothing injected".to_string(),
    };
    let mut out = format!("sweep point {}: {outcome}\n", point.name);
    if outside {
        out.push_str("the fault hit before the module's load (exec or the loader itself)\n");
    }
    for finding in &findings {
        out.push_str(&format!("{}: {}\n", finding.kind, finding.title));
    }
    Judged {
        findings,
        status,
        out,
    }
}

/// Whether a sweep is over after a point: a fail-nth sweep ends at the
/// first load that succeeds with nothing injected (N is past the last
/// injectable call); a param sweep walks all its points.
pub fn is_done(method: &SweepMethod, loaded: bool, injected: bool) -> bool {
    matches!(method, SweepMethod::FailNth) && loaded && !injected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::ParamValue;

    #[test]
    fn setup_counts_only_module_code_and_is_valid_shell() {
        let script = setup("kcycle_leaks", &ModuleSources::default());
        for knob in ["require-start", "require-end", "stacktrace-depth"] {
            assert!(script.contains(&format!("> $D/$F/{knob}")), "{script}");
        }
        assert!(script.contains("CONFIG_FAULT_INJECTION_STACKTRACE_FILTER"));
        // The guest runs it with bash: it must parse.
        let parsed = std::process::Command::new("bash")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(
            parsed.status.success(),
            "{}\n{script}",
            String::from_utf8_lossy(&parsed.stderr)
        );
    }

    /// What 6.12 prints for a failslab fault in a module's init with verbose=2.
    const FAILSLAB: &str = "\
[   12.000001] FAULT_INJECTION: forcing a failure.
[   12.000002] name failslab, interval 1, probability 0, space 0, times 1
[   12.000003] CPU: 0 UID: 0 PID: 201 Comm: modprobe Not tainted 6.12.117 #1
[   12.000004] Call Trace:
[   12.000005]  <TASK>
[   12.000006]  dump_stack_lvl+0x5d/0x80
[   12.000007]  should_fail_ex+0x1a8/0x1f0
[   12.000008]  should_failslab+0x4d/0x70
[   12.000009]  __kmalloc_cache_noprof+0x5f/0x320
[   12.000010]  kmalloc_init+0x1e/0x60 [kcycle_leaks]
[   12.000011]  kcycle_leaks_init+0x3a/0x110 [kcycle_leaks]
[   12.000012]  do_one_initcall+0x58/0x300
[   12.000013]  do_init_module+0x60/0x230
[   12.000014]  init_module_from_file+0x86/0xc0
[   12.000015]  </TASK>
[   12.000016] kcycle_leaks: init failed at kmalloc: -12
";

    #[test]
    fn names_the_call_site_in_the_module() {
        let found = injection(FAILSLAB, "kcycle_leaks").unwrap();
        assert_eq!(found.attr, "failslab");
        assert_eq!(found.call_site.as_deref(), Some("kmalloc_init"));
        assert!(found.in_load);
        assert_eq!(found.describe(), "kmalloc_init (failslab)");
        assert_eq!(
            injection("[ 1.0] kcycle_leaks: loaded\n", "kcycle_leaks"),
            None
        );
    }

    #[test]
    fn a_rust_call_site_reads_as_its_path() {
        let log = FAILSLAB.replace(
            "kmalloc_init+0x1e/0x60 [kcycle_leaks]",
            "_RNvCskUQIOShT3pq_15rust_i915_table12pci_register+0x1e/0x60 [rust_i915_table]",
        );
        let found = injection(&log, "rust_i915_table").unwrap();
        assert_eq!(
            found.call_site.as_deref(),
            Some("rust_i915_table::pci_register")
        );
    }

    #[test]
    fn the_fault_report_is_no_finding_and_its_echo_is_dropped() {
        assert_eq!(crate::dmesg::classify(FAILSLAB), []);
        let echo = Finding {
            kind: "warning".into(),
            title: "modprobe: page allocation failure: order:0".into(),
            severity: crate::outcome::Severity::Warn,
            report: String::new(),
            attribution: None,
            known_issue: None,
        };
        let leak = Finding {
            kind: "leaked-proc-entry".into(),
            title: "/proc/kcycle_leaks".into(),
            attribution: Some("left behind by failed load in cycle 1".into()),
            severity: crate::outcome::Severity::Fail,
            ..echo.clone()
        };
        let point = Point {
            name: "fail-nth-7".into(),
            inject: String::new(),
        };
        let injection = injection(FAILSLAB, "kcycle_leaks");
        let judged = judge(&point, injection.as_ref(), false, vec![echo, leak]);
        assert_eq!(judged.findings.len(), 1);
        assert_eq!(
            judged.findings[0].attribution.as_deref(),
            Some("left behind by failed load in cycle 1 (sweep point fail-nth-7, fault injected in kmalloc_init (failslab))")
        );
        assert_eq!(judged.status, Status::DmesgFail);
        assert!(
            judged.out.starts_with(
                "sweep point fail-nth-7: the load failed: fault injected in kmalloc_init"
            ),
            "{}",
            judged.out
        );
        let clean = judge(&point, injection.as_ref(), false, Vec::new());
        assert_eq!(clean.status, Status::Pass);
    }

    #[test]
    fn a_fault_in_exec_is_outside_the_load() {
        let log = "\
FAULT_INJECTION: forcing a failure.
name fail_page_alloc, interval 1, probability 0, space 0, times 1
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 should_fail_ex+0x1a8/0x1f0
 should_fail_alloc_page+0x1a/0x30
 __alloc_pages_noprof+0x9e/0x330
 alloc_pages_mpol_noprof+0x8a/0x1c0
 bprm_execve+0x1c5/0x4d0
 do_execveat_common+0x18c/0x1e0
 __x64_sys_execve+0x36/0x50
 </TASK>
";
        let found = injection(log, "kcycle_leaks").unwrap();
        assert_eq!(found.attr, "fail_page_alloc");
        assert_eq!(found.call_site.as_deref(), Some("bprm_execve"));
        assert!(!found.in_load);
        let point = Point {
            name: "fail-nth-1".into(),
            inject: String::new(),
        };
        assert_eq!(
            judge(&point, Some(&found), false, Vec::new()).status,
            Status::Skip
        );
    }

    #[test]
    fn points_of_each_method() {
        let sources = ModuleSources::default();
        let params: Params = [("leak".to_string(), ParamValue::Str("x".into()))].into();
        let p = point(
            &SweepMethod::FailNth,
            2,
            "kcycle_leaks",
            &params,
            &sources,
            1,
        )
        .unwrap();
        assert_eq!(p.name, "fail-nth-2");
        assert!(
            p.inject.contains(
                r#"sh -c 'P=$(modinfo -n '\''kcycle_leaks'\'') && echo 2 > /proc/self/fail-nth && exec /sbin/insmod "$P" '\''leak=x'\'''"#
            ),
            "{}",
            p.inject
        );
        assert!(p.inject.contains("echo 1000 > $D/$F/times"), "{}", p.inject);
        assert!(p
            .inject
            .ends_with(r#"read -r B < $D/fail_page_alloc/times; echo "kcycle-sweep: faults left $A $B" > /dev/kmsg; exit $R"#));
        let mut files = ModuleSources::default();
        files
            .files
            .insert("my_drv".into(), "/tmp/kcycle-modules/my_drv.ko".into());
        let p = point(
            &SweepMethod::FailNth,
            9,
            "my-drv",
            &Params::new(),
            &files,
            0,
        )
        .unwrap();
        assert!(p.inject.contains(
            r#"sh -c 'P='\''/tmp/kcycle-modules/my_drv.ko'\'' && echo 1 > /proc/self/fail-nth && exec /sbin/insmod "$P"'"#
        ));
        assert!(setup("kcycle_leaks", &sources).contains("modprobe -D 'kcycle_leaks'"));
        assert!(!setup("my_drv", &files).contains("modprobe -D"));
        assert_eq!(
            point(&SweepMethod::FailNth, 2, "m", &params, &sources, 2),
            None
        );
        let by_param = SweepMethod::Param {
            name: "fail_at".into(),
            points: vec!["slab".into(), "misc".into()],
        };
        let p = point(&by_param, 0, "kcycle_leaks", &params, &sources, 1).unwrap();
        assert_eq!(p.name, "fail_at-misc");
        assert_eq!(p.inject, "modprobe 'kcycle_leaks' 'fail_at=misc' 'leak=x'");
        assert_eq!(point(&by_param, 0, "m", &params, &sources, 2), None);
    }

    #[test]
    fn fail_nth_stops_at_the_first_load_with_nothing_injected() {
        let nth = SweepMethod::FailNth;
        assert!(!is_done(&nth, false, true));
        assert!(!is_done(&nth, true, true));
        assert!(is_done(&nth, true, false));
        let param = SweepMethod::Param {
            name: "fail_at".into(),
            points: vec![],
        };
        assert!(!is_done(&param, true, false));
    }

    #[test]
    fn the_budget_says_whether_a_fault_was_injected() {
        // Spent without a stack: a __GFP_NOWARN call (execmem's, say).
        let silent = "[ 278.7] execmem: unable to allocate memory\n[ 278.9] kcycle-sweep: faults left 999 1000\n";
        let found = injection(silent, "kcycle_leaks").unwrap();
        assert_eq!((found.attr.as_str(), found.silent), ("failslab", true));
        assert_eq!(found.call_site, None);
        assert!(found.describe().contains("__GFP_NOWARN"));
        let page = injection("kcycle-sweep: faults left 1000 998\n", "m").unwrap();
        assert_eq!(page.attr, "fail_page_alloc");
        // Nothing spent: nothing injected, whatever else the log says.
        assert_eq!(
            injection("kcycle-sweep: faults left 1000 1000\n", "kcycle_leaks"),
            None
        );
        // Spent with a stack: the stack names the site.
        let log = format!("{FAILSLAB}[ 12.1] kcycle-sweep: faults left 999 1000\n");
        let found = injection(&log, "kcycle_leaks").unwrap();
        assert_eq!(found.call_site.as_deref(), Some("kmalloc_init"));
        assert!(!found.silent);
    }

    #[test]
    fn a_fault_in_finit_module_is_in_the_load() {
        // 6.12 inlines init_module_from_file: only the syscall's frame is left.
        let log = "\
FAULT_INJECTION: forcing a failure.
name failslab, interval 1, probability 0, space 0, times 1000
Call Trace:
 <TASK>
 dump_stack_lvl+0x3e/0xb0
 should_fail_ex+0x153/0x160
 should_failslab+0x4f/0x60
 __kmalloc_node_noprof+0xf4/0x320
 __vmalloc_node_range_noprof+0x316/0x850
 vmalloc_noprof+0x4e/0x70
 kernel_read_file+0x16e/0x270
 __se_sys_finit_module+0x2b6/0x3d0
 do_syscall_64+0xc0/0x1b0
 </TASK>
";
        let found = injection(log, "kcycle_leaks").unwrap();
        assert_eq!(found.call_site.as_deref(), Some("kernel_read_file"));
        assert!(found.in_load);
    }
}
