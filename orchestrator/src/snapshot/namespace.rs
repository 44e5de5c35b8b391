//! The kernel namespaces a driver registers in, read as sets of names.
//!
//! Each namespace is one section of the snapshot command's output. What a
//! module's load added and its unload did not take away is a leftover in
//! that namespace, whatever the driver is: the diff is over names, so it
//! needs no knowledge of the driver and no kernel message wording.

use std::collections::{BTreeMap, BTreeSet};

pub use super::walk::MAX_ENTRIES;

/// Where a name lives. The order is the order of findings and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// `/sys/kernel/debug/**` (depth-limited).
    Debugfs,
    /// `/sys/class/*/*`, `/sys/bus/*/{drivers,devices}/*`, `/sys/kernel/*`,
    /// `/sys/fs/*`, `/sys/module/*`, `/sys/devices/platform/*`, `/sys/devices/virtual/**`.
    Sysfs,
    /// Top-level `/proc` entries that are not PIDs, `/proc/driver/**`, `/proc/self/net/*`.
    Proc,
    /// The sysctl tree under `/proc/sys`.
    Sysctl,
    /// Character and block majors from `/proc/devices`.
    Chrdev,
    /// Misc minors from `/proc/misc`.
    Misc,
    /// Device nodes under `/dev`.
    DevNode,
    /// `/proc/filesystems`.
    Filesystem,
    /// Kernel threads by name (pool kworkers excluded: they come and go by themselves).
    Kthread,
    /// Workqueues with sysfs entries (`/sys/bus/workqueue/devices`).
    Workqueue,
    /// IRQ handlers by name (`/proc/irq/<n>/<handler>`).
    Irq,
    /// Claimed MMIO and port ranges with their owners (`/proc/iomem`, `/proc/ioports`):
    /// a region a driver requested and never released blocks the next probe (-EBUSY).
    IoRegion,
}

impl Namespace {
    pub const ALL: [Namespace; 12] = [
        Namespace::Debugfs,
        Namespace::Sysfs,
        Namespace::Proc,
        Namespace::Sysctl,
        Namespace::Chrdev,
        Namespace::Misc,
        Namespace::DevNode,
        Namespace::Filesystem,
        Namespace::Kthread,
        Namespace::Workqueue,
        Namespace::Irq,
        Namespace::IoRegion,
    ];

    /// The finding kind of a leftover here.
    pub fn leak_kind(self) -> &'static str {
        match self {
            Namespace::Debugfs => "leaked-debugfs-entry",
            Namespace::Sysfs => "leaked-sysfs-entry",
            Namespace::Proc => "leaked-proc-entry",
            Namespace::Sysctl => "leaked-sysctl",
            Namespace::Chrdev => "leaked-chrdev",
            Namespace::Misc => "leaked-misc-device",
            Namespace::DevNode => "leaked-dev-node",
            Namespace::Filesystem => "leaked-filesystem",
            Namespace::Kthread => "leaked-kthread",
            Namespace::Workqueue => "leaked-workqueue",
            Namespace::Irq => "leaked-irq",
            Namespace::IoRegion => "leaked-io-region",
        }
    }

    /// The snapshot section that holds this namespace.
    pub fn section(self) -> &'static str {
        match self {
            Namespace::Debugfs => "debugfs",
            Namespace::Sysfs => "sysfs",
            Namespace::Proc => "proc",
            Namespace::Sysctl => "sysctl",
            Namespace::Chrdev => "devices",
            Namespace::Misc => "misc",
            Namespace::DevNode => "dev",
            Namespace::Filesystem => "filesystems",
            Namespace::Kthread => "stat",
            Namespace::Workqueue => "workqueues",
            Namespace::Irq => "irq",
            Namespace::IoRegion => "ioregions",
        }
    }

    /// What a report calls the entries here.
    pub fn describe(self) -> &'static str {
        match self {
            Namespace::Debugfs => "debugfs entries",
            Namespace::Sysfs => "sysfs entries",
            Namespace::Proc => "procfs entries",
            Namespace::Sysctl => "sysctl entries",
            Namespace::Chrdev => "device majors",
            Namespace::Misc => "misc devices",
            Namespace::DevNode => "device nodes",
            Namespace::Filesystem => "filesystem types",
            Namespace::Kthread => "kernel threads",
            Namespace::Workqueue => "workqueues",
            Namespace::Irq => "IRQ handlers",
            Namespace::IoRegion => "I/O regions",
        }
    }

    /// Where the entries come from, for reports.
    pub fn source(self) -> &'static str {
        match self {
            Namespace::Debugfs => "/sys/kernel/debug",
            Namespace::Sysfs => "/sys",
            Namespace::Proc => "/proc",
            Namespace::Sysctl => "/proc/sys",
            Namespace::Chrdev => "/proc/devices",
            Namespace::Misc => "/proc/misc",
            Namespace::DevNode => "/dev",
            Namespace::Filesystem => "/proc/filesystems",
            Namespace::Kthread => "/proc/<pid>/stat (children of kthreadd)",
            Namespace::Workqueue => "/sys/bus/workqueue/devices",
            Namespace::Irq => "/proc/irq",
            Namespace::IoRegion => "/proc/iomem, /proc/ioports",
        }
    }

    /// Parse one section's text into names.
    fn entries(self, text: &str) -> BTreeSet<String> {
        match self {
            Namespace::Chrdev => majors(text),
            Namespace::Misc => trimmed(text).map(str::to_string).collect(),
            Namespace::Filesystem => trimmed(text)
                .filter_map(|l| l.split_whitespace().last())
                .map(str::to_string)
                .collect(),
            Namespace::Kthread => kthreads(text),
            // `sed` in the command prefixed each line with its file; nesting is kept as the
            // parent chain would be, by the indentation the kernel prints.
            Namespace::IoRegion => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.trim_end().to_string())
                .collect(),
            Namespace::Proc => trimmed(text)
                .map(|l| {
                    if l.starts_with('/') {
                        l.to_string()
                    } else {
                        format!("/proc/{l}")
                    }
                })
                .filter(|p| !is_pid_path(p))
                .collect(),
            _ => trimmed(text).map(str::to_string).collect(),
        }
    }
}

/// Names in every namespace at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    entries: BTreeMap<Namespace, BTreeSet<String>>,
    /// Namespaces whose section hit [`MAX_ENTRIES`]: a diff there may miss names.
    pub truncated: BTreeSet<Namespace>,
}

impl Namespaces {
    /// From the snapshot's sections (section name to text).
    pub fn parse(sections: &BTreeMap<String, String>) -> Namespaces {
        let mut out = Namespaces::default();
        for ns in Namespace::ALL {
            let Some(text) = sections.get(ns.section()) else {
                continue;
            };
            if text.lines().count() > MAX_ENTRIES {
                out.truncated.insert(ns);
            }
            out.entries.insert(ns, ns.entries(text));
        }
        out
    }

    pub fn get(&self, ns: Namespace) -> impl Iterator<Item = &str> {
        self.entries
            .get(&ns)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    pub fn contains(&self, ns: Namespace, name: &str) -> bool {
        self.entries.get(&ns).is_some_and(|set| set.contains(name))
    }

    /// Names present here that were not in `before`, per namespace, without
    /// what belongs to a module that is still loaded (its `/sys/module`
    /// directory: a dependency that stayed is not a leak of this module).
    pub fn appeared_since(
        &self,
        before: &Namespaces,
        loaded: &[String],
    ) -> Vec<(Namespace, Vec<String>)> {
        let mut out = Vec::new();
        for ns in Namespace::ALL {
            let new: Vec<String> = self
                .get(ns)
                .filter(|name| !before.contains(ns, name))
                .filter(|name| !(ns == Namespace::Sysfs && of_loaded_module(name, loaded)))
                .map(str::to_string)
                .collect();
            if !new.is_empty() {
                out.push((ns, new));
            }
        }
        out
    }
}

fn of_loaded_module(path: &str, loaded: &[String]) -> bool {
    path.strip_prefix("/sys/module/")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .is_some_and(|module| loaded.iter().any(|m| m == module))
}

fn trimmed(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// `/proc/1234`, `/proc/1234/...`: processes, which come and go.
fn is_pid_path(path: &str) -> bool {
    let rest = path.trim_start_matches("/proc/");
    let first = rest.split('/').next().unwrap_or(rest);
    !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit())
}

/// `/proc/devices`: `char <major> <name>` and `block <major> <name>`.
fn majors(text: &str) -> BTreeSet<String> {
    let mut kind = "char";
    let mut out = BTreeSet::new();
    for line in trimmed(text) {
        if line.starts_with("Character devices") {
            kind = "char";
        } else if line.starts_with("Block devices") {
            kind = "block";
        } else if let Some((major, name)) = line.split_once(char::is_whitespace) {
            if major.bytes().all(|b| b.is_ascii_digit()) {
                out.insert(format!("{kind} {major} {}", name.trim()));
            }
        }
    }
    out
}

/// Kernel threads from `cat /proc/<pid>/stat`: tasks whose parent is
/// kthreadd (pid 2). The same name twice is `name`, `name [2]`: a second
/// thread of one name is a leftover as much as the first. Pool kworkers
/// (`kworker/0:1`, `kworker/u4:2H`) are started and reaped by the kernel
/// itself; rescuers (`kworker/R-<wq>`) belong to a workqueue and stay.
fn kthreads(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in trimmed(text) {
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (line.find('('), line.rfind(')')) else {
            continue;
        };
        if close < open {
            continue;
        }
        let pid = line[..open].trim();
        let comm = &line[open + 1..close];
        let ppid = line[close + 1..].split_whitespace().nth(1).unwrap_or("");
        if ppid != "2" || pid == "2" || is_pool_worker(comm) {
            continue;
        }
        let n = seen.entry(comm.to_string()).or_insert(0);
        *n += 1;
        out.insert(if *n == 1 {
            comm.to_string()
        } else {
            format!("{comm} [{n}]")
        });
    }
    out
}

fn is_pool_worker(comm: &str) -> bool {
    comm.strip_prefix("kworker/")
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_digit() || c == 'u')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_namespace_shape() {
        let ns = Namespaces::parse(&sections(&[
            (
                "devices",
                "Character devices:\n  1 mem\n511 kcycle_leaks\n\nBlock devices:\n  7 loop\n",
            ),
            ("misc", "122 kcycle_leaks\n183 hw_random\n"),
            ("filesystems", "nodev\tsysfs\n\text4\n"),
            (
                "stat",
                "2 (kthreadd) S 0 0 0\n\
                 17 (kworker/0:1) I 2 0 0\n\
                 18 (kworker/u4:2H) I 2 0 0\n\
                 19 (kworker/R-kcycle_leaks) I 2 0 0\n\
                 20 (my (odd) thread) S 2 0 0\n\
                 21 (mydrv) S 2 0 0\n\
                 22 (mydrv) S 2 0 0\n\
                 300 (bash) S 1 0 0\n",
            ),
            (
                "proc",
                "1\n123\nbuddyinfo\nkcycle_leaks\n/proc/driver/rtc\n",
            ),
            (
                "ioregions",
                "iomem fe800000-fe8fffff : 0000:01:00.0\n\
                 iomem   fe800000-fe8fffff : rust_i915_table\n\
                 ioports 0060-0060 : keyboard\n\n",
            ),
        ]));
        assert_eq!(
            ns.get(Namespace::Chrdev).collect::<Vec<_>>(),
            ["block 7 loop", "char 1 mem", "char 511 kcycle_leaks"]
        );
        assert_eq!(
            ns.get(Namespace::Misc).collect::<Vec<_>>(),
            ["122 kcycle_leaks", "183 hw_random"]
        );
        assert_eq!(
            ns.get(Namespace::Filesystem).collect::<Vec<_>>(),
            ["ext4", "sysfs"]
        );
        assert_eq!(
            ns.get(Namespace::Kthread).collect::<Vec<_>>(),
            [
                "kworker/R-kcycle_leaks",
                "my (odd) thread",
                "mydrv",
                "mydrv [2]"
            ]
        );
        assert_eq!(
            ns.get(Namespace::Proc).collect::<Vec<_>>(),
            ["/proc/buddyinfo", "/proc/driver/rtc", "/proc/kcycle_leaks"]
        );
        // The owner's name and the range stay; nesting shows as indentation.
        assert_eq!(
            ns.get(Namespace::IoRegion).collect::<Vec<_>>(),
            [
                "iomem   fe800000-fe8fffff : rust_i915_table",
                "iomem fe800000-fe8fffff : 0000:01:00.0",
                "ioports 0060-0060 : keyboard"
            ]
        );
    }

    #[test]
    fn appeared_names_skip_loaded_modules_and_truncation_is_noted() {
        let before = Namespaces::parse(&sections(&[("sysfs", "/sys/class/misc\n")]));
        let after = Namespaces::parse(&sections(&[(
            "sysfs",
            "/sys/class/misc\n/sys/class/kcycle_leaks\n/sys/module/drm_buddy\n/sys/module/gone\n",
        )]));
        assert_eq!(
            after.appeared_since(&before, &["drm_buddy".into()]),
            [(
                Namespace::Sysfs,
                vec![
                    "/sys/class/kcycle_leaks".to_string(),
                    "/sys/module/gone".to_string()
                ]
            )]
        );
        let huge = "x\n".repeat(MAX_ENTRIES + 1);
        let truncated = Namespaces::parse(&sections(&[("debugfs", huge.as_str())]));
        assert!(truncated.truncated.contains(&Namespace::Debugfs));
    }

    #[test]
    fn the_helper_prints_one_bounded_section_per_namespace() {
        let bounded: Vec<&str> = super::super::walk::SECTIONS
            .iter()
            .filter(|s| s.bounded)
            .map(|s| s.name)
            .collect();
        let namespaces: Vec<&str> = Namespace::ALL.iter().map(|ns| ns.section()).collect();
        assert_eq!(bounded, namespaces);
    }
}
