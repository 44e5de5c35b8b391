//! The guest side of a snapshot: one process that reads every section
//! [`super::Snapshot::parse`] takes and prints it as `@@<section>` blocks.
//!
//! A shell pipeline of `find`, `cat`, `ls` and `sed` per section costs a
//! fork and exec each, which under TCG is most of a snapshot's time. This
//! file is compiled twice: into kcycle (its tests walk fake trees) and, by
//! `build.rs`, alone into `kcycle-snapshot`, a static binary every guest
//! image carries in /bin. So it uses std only and nothing else of kcycle.
//!
//! What each section holds is [`SECTIONS`]; errors reading the guest (a
//! tree this kernel does not have) leave a section empty, as `2>/dev/null`
//! did. Only a failure to write the output is an error.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Most lines one namespace section may print; a section cut here is
/// reported as truncated (it printed one line more).
pub const MAX_ENTRIES: usize = 20_000;

/// What one piece of a section reads.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A file's text.
    Cat(&'static str),
    /// `<dir>/<N>/<file>` for every entry of `dir` whose name starts with a
    /// digit (`/proc/[0-9]*/stat`).
    PerPid {
        dir: &'static str,
        file: &'static str,
    },
    /// Each line of a file after a tag and a blank (`iomem <line>`).
    Tagged {
        tag: &'static str,
        path: &'static str,
    },
    /// The names in a directory (`ls -1`).
    Names(&'static str),
    /// The names in a directory that are not symlinks (SLUB leaves a merged
    /// alias's symlink behind, so only real cache directories count).
    RealNames(&'static str),
    /// Paths in a tree (`find`).
    Find(Find),
    /// /proc/slabinfo; in a [`SlabCounts::Exact`] snapshot every cache
    /// directory in `caches` is shrunk first.
    Slabinfo {
        path: &'static str,
        caches: &'static str,
    },
}

/// The helper's argument for a [`SlabCounts::Exact`] snapshot.
pub const EXACT_ARG: &str = "--exact-slabs";

/// How a snapshot counts each slab cache's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlabCounts {
    /// As /proc/slabinfo has them. SLUB counts every object of a slab a CPU
    /// holds (its current one and its partial list) as in use, so a count
    /// creeps up by whole slabs as the CPUs pick up partly free slabs: a
    /// clean run's vm_area_struct rose from 252 to 476 objects over 18
    /// cycles, 28 to a slab (CI, 2026-12-04).
    Listed,
    /// Objects in use: each cache is shrunk first (`echo 1 >
    /// /sys/kernel/slab/<cache>/shrink`: the CPUs' slabs go back to the
    /// cache and its empty slabs are freed): 88 caches add 1.4 ms to a
    /// snapshot under TCG (`just bench`, check-snapshot-exact), where a
    /// shell loop of `echo 1 >` took 30 ms.
    Exact,
}

/// `find <root> -mindepth <min> -maxdepth <max>`: no symlinks followed.
#[derive(Debug, Clone, Copy)]
pub struct Find {
    pub root: &'static str,
    pub min: usize,
    pub max: usize,
    /// Print directories only (`-type d`); every directory is still walked.
    pub dirs_only: bool,
    /// Stay on the root's filesystem (`-xdev`): a directory on another is
    /// neither printed nor entered.
    pub same_fs: bool,
    /// Print only paths matching one of these (`-path`, `*` matches `/` too).
    pub keep: &'static [&'static str],
    /// Print no path matching one of these (`! -path`).
    pub drop: &'static [&'static str],
}

impl Find {
    const fn new(root: &'static str, min: usize, max: usize) -> Find {
        Find {
            root,
            min,
            max,
            dirs_only: false,
            same_fs: false,
            keep: &[],
            drop: &[],
        }
    }
}

/// One `@@name` block: its pieces, and whether it is cut at [`MAX_ENTRIES`].
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub name: &'static str,
    pub sources: &'static [Source],
    pub bounded: bool,
}

const fn section(name: &'static str, sources: &'static [Source]) -> Section {
    Section {
        name,
        sources,
        bounded: false,
    }
}

/// A namespace's section: a huge tree is cut, and reported as truncated,
/// rather than read forever.
const fn namespace(name: &'static str, sources: &'static [Source]) -> Section {
    Section {
        name,
        sources,
        bounded: true,
    }
}

/// Every section, in output order: the slab caches, taint, modules and
/// memory counters, then one per namespace (`super::Namespace::section`).
pub const SECTIONS: &[Section] = &[
    section("slab", &[Source::RealNames("/sys/kernel/slab")]),
    section(
        "slabinfo",
        &[Source::Slabinfo {
            path: "/proc/slabinfo",
            caches: "/sys/kernel/slab",
        }],
    ),
    section("taint", &[Source::Cat("/proc/sys/kernel/tainted")]),
    section("modules", &[Source::Cat("/proc/modules")]),
    section("meminfo", &[Source::Cat("/proc/meminfo")]),
    namespace(
        "debugfs",
        &[Source::Find(Find {
            same_fs: true,
            ..Find::new("/sys/kernel/debug", 1, 6)
        })],
    ),
    namespace(
        "sysfs",
        &[
            Source::Find(Find::new("/sys/class", 1, 2)),
            Source::Find(Find {
                keep: &["/sys/bus/*/drivers/*", "/sys/bus/*/devices/*"],
                ..Find::new("/sys/bus", 3, 3)
            }),
            Source::Find(Find::new("/sys/kernel", 1, 1)),
            Source::Find(Find::new("/sys/fs", 1, 1)),
            Source::Find(Find::new("/sys/module", 1, 1)),
            Source::Find(Find::new("/sys/devices/platform", 1, 1)),
            Source::Find(Find {
                dirs_only: true,
                ..Find::new("/sys/devices/virtual", 1, 3)
            }),
        ],
    ),
    namespace(
        "proc",
        &[
            Source::Names("/proc"),
            Source::Find(Find::new("/proc/driver", 1, 2)),
            Source::Find(Find::new("/proc/self/net", 1, 2)),
        ],
    ),
    namespace(
        "sysctl",
        &[Source::Find(Find::new("/proc/sys", 1, usize::MAX))],
    ),
    namespace("devices", &[Source::Cat("/proc/devices")]),
    namespace("misc", &[Source::Cat("/proc/misc")]),
    namespace(
        "dev",
        &[Source::Find(Find {
            drop: &["/dev/pts/*", "/dev/shm/*"],
            ..Find::new("/dev", 1, 2)
        })],
    ),
    namespace("filesystems", &[Source::Cat("/proc/filesystems")]),
    namespace(
        "stat",
        &[Source::PerPid {
            dir: "/proc",
            file: "stat",
        }],
    ),
    namespace("workqueues", &[Source::Names("/sys/bus/workqueue/devices")]),
    namespace(
        "irq",
        &[Source::Find(Find {
            dirs_only: true,
            ..Find::new("/proc/irq", 2, 2)
        })],
    ),
    namespace(
        "ioregions",
        &[
            Source::Tagged {
                tag: "iomem",
                path: "/proc/iomem",
            },
            Source::Tagged {
                tag: "ioports",
                path: "/proc/ioports",
            },
        ],
    ),
];

/// Read every section of the system whose `/` is `root` into `out`.
///
/// Nothing is dropped first: 6.12 takes only 1 to 4 in
/// /proc/sys/vm/drop_caches (the `6` written here until 2026-12-04 was
/// refused with EINVAL, so no snapshot ever dropped anything), and a drop
/// would make the driver's next load rebuild every sysfs inode. The walk's
/// own dentry churn is what trend's tolerance for `inode_cache` absorbs.
pub fn print(root: &Path, counts: SlabCounts, out: &mut dyn Write) -> io::Result<()> {
    for section in SECTIONS {
        writeln!(out, "@@{}", section.name)?;
        let mut lines = Lines {
            out: &mut *out,
            left: if section.bounded {
                MAX_ENTRIES + 1
            } else {
                usize::MAX
            },
        };
        for source in section.sources {
            read(root, source, counts, &mut lines)?;
        }
    }
    out.flush()
}

/// A section's output: stops taking lines when its bound is reached.
struct Lines<'a> {
    out: &'a mut dyn Write,
    left: usize,
}

impl Lines<'_> {
    /// Print one line; false once the section is full.
    fn line(&mut self, text: &[u8]) -> io::Result<bool> {
        if self.left == 0 {
            return Ok(false);
        }
        self.left -= 1;
        self.out.write_all(text)?;
        self.out.write_all(b"\n")?;
        Ok(self.left > 0)
    }

    /// Print a file's text, line by line.
    fn text(&mut self, text: &[u8], tag: Option<&str>) -> io::Result<bool> {
        for line in text.split_inclusive(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let more = match tag {
                Some(tag) => self.line(&[tag.as_bytes(), b" ", line].concat())?,
                None => self.line(line)?,
            };
            if !more {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Where guest path `path` is under `root`.
fn guest(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn read(root: &Path, source: &Source, counts: SlabCounts, lines: &mut Lines) -> io::Result<()> {
    match *source {
        Source::Cat(path) => {
            if let Ok(text) = fs::read(guest(root, path)) {
                lines.text(&text, None)?;
            }
        }
        Source::Slabinfo { path, caches } => {
            if counts == SlabCounts::Exact {
                shrink(&guest(root, caches));
            }
            read(root, &Source::Cat(path), counts, lines)?;
        }
        Source::Tagged { tag, path } => {
            if let Ok(text) = fs::read(guest(root, path)) {
                lines.text(&text, Some(tag))?;
            }
        }
        Source::PerPid { dir, file } => {
            for name in names(&guest(root, dir)) {
                if !name.starts_with(|c: char| c.is_ascii_digit()) {
                    continue;
                }
                // A task may exit between the listing and the read.
                let Ok(text) = fs::read(guest(root, dir).join(&name).join(file)) else {
                    continue;
                };
                if !lines.text(&text, None)? {
                    return Ok(());
                }
            }
        }
        Source::Names(dir) => {
            for name in names(&guest(root, dir)) {
                if !lines.line(name.as_bytes())? {
                    return Ok(());
                }
            }
        }
        Source::RealNames(dir) => {
            for (name, kind) in entries(&guest(root, dir)) {
                if name.starts_with('.') || kind.is_symlink() {
                    continue;
                }
                if !lines.line(name.as_bytes())? {
                    return Ok(());
                }
            }
        }
        Source::Find(find) => {
            let start = guest(root, find.root);
            let device = fs::metadata(&start).map(|m| m.dev()).ok();
            let shown = find.root.trim_end_matches('/');
            walk(&find, &start, shown, 1, device, lines)?;
        }
    }
    Ok(())
}

/// Shrink every cache directory in `dir` (a merged alias is a symlink to
/// one of them). A cache without the file, or a write refused, is left as
/// it is: its count is then what slabinfo lists.
fn shrink(dir: &Path) {
    for (name, kind) in entries(dir) {
        if kind.is_dir() {
            // No create: only the kernel's own attribute is written.
            if let Ok(mut file) = fs::OpenOptions::new()
                .write(true)
                .open(dir.join(name).join("shrink"))
            {
                let _ = file.write_all(b"1");
            }
        }
    }
}

/// The entries of `dir` except `.`-names, in byte order (as `ls` and a
/// glob give them); none if it cannot be read.
fn names(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Every entry of `dir` (dot-names too) with its type, in byte order; none
/// if it cannot be read. The type comes from the directory listing itself
/// (`d_type`), not from a stat of each entry: on sysfs, proc and debugfs a
/// stat is a lookup that builds a dentry and an inode: a quarter of a
/// snapshot's time under TCG (72 ms to 54, 2026-12-04).
fn entries(dir: &Path) -> Vec<(String, fs::FileType)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries: Vec<(String, fs::FileType)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().into_owned(),
                e.file_type().ok()?,
            ))
        })
        .collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// Print the entries of `dir` (shown as `shown`) at `depth` and below;
/// false once the section is full.
fn walk(
    find: &Find,
    dir: &Path,
    shown: &str,
    depth: usize,
    device: Option<u64>,
    lines: &mut Lines,
) -> io::Result<bool> {
    // `find` lists dot-names too; only `.` and `..` are not entries.
    for (name, kind) in entries(dir) {
        let path = dir.join(&name);
        let is_dir = kind.is_dir();
        // Only a directory can be another filesystem's mount point.
        if is_dir
            && find.same_fs
            && device.is_some_and(|d| fs::symlink_metadata(&path).map_or(true, |m| m.dev() != d))
        {
            continue;
        }
        let shown = format!("{shown}/{name}");
        let printed = depth >= find.min
            && (!find.dirs_only || is_dir)
            && (find.keep.is_empty() || find.keep.iter().any(|p| glob(p, &shown)))
            && !find.drop.iter().any(|p| glob(p, &shown));
        if printed && !lines.line(shown.as_bytes())? {
            return Ok(false);
        }
        if is_dir && depth < find.max && !walk(find, &path, &shown, depth + 1, device, lines)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `find -path` matching: `*` matches any run of bytes, `/` included.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Read the guest's `/` and print every section to stdout (the helper's main).
pub fn main_with_stdout(counts: SlabCounts) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    print(Path::new("/"), counts, &mut out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Namespace, Snapshot};
    use std::os::unix::fs::symlink;

    /// A file at guest path `path` under `root`, with `text`.
    fn put(root: &Path, path: &str, text: &str) {
        let path = guest(root, path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn run(find: Find, root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut lines = Lines {
            out: &mut out,
            left: usize::MAX,
        };
        read(root, &Source::Find(find), SlabCounts::Listed, &mut lines).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn find_keeps_to_its_depths_and_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        put(root, "/t/a/b/c/deep", "");
        put(root, "/t/a/.hidden", "");
        put(root, "/elsewhere/x", "");
        symlink(guest(root, "/elsewhere"), guest(root, "/t/link")).unwrap();
        assert_eq!(
            run(Find::new("/t", 1, 2), root),
            ["/t/a", "/t/a/.hidden", "/t/a/b", "/t/link"]
        );
        assert_eq!(run(Find::new("/t", 3, 3), root), ["/t/a/b/c"]);
        let dirs = Find {
            dirs_only: true,
            ..Find::new("/t", 1, usize::MAX)
        };
        assert_eq!(run(dirs, root), ["/t/a", "/t/a/b", "/t/a/b/c"]);
        assert!(run(Find::new("/missing", 1, 2), root).is_empty());
    }

    #[test]
    fn find_filters_paths_as_find_path_does() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for p in [
            "/bus/pci/drivers/i915",
            "/bus/pci/devices/0000:00:02.0",
            "/bus/pci/uevent/x",
        ] {
            put(root, &format!("{p}/f"), "");
        }
        put(root, "/dev/pts/0", "");
        put(root, "/dev/dri/card0", "");
        let keep = Find {
            keep: &["/bus/*/drivers/*", "/bus/*/devices/*"],
            ..Find::new("/bus", 3, 3)
        };
        assert_eq!(
            run(keep, root),
            ["/bus/pci/devices/0000:00:02.0", "/bus/pci/drivers/i915"]
        );
        let drop = Find {
            drop: &["/dev/pts/*"],
            ..Find::new("/dev", 1, 2)
        };
        assert_eq!(run(drop, root), ["/dev/dri", "/dev/dri/card0", "/dev/pts"]);
        assert!(glob("/a/*", "/a/b/c"));
        assert!(glob("*x*", "x"));
        assert!(!glob("/a/*/b", "/a/b"));
    }

    #[test]
    fn a_bounded_section_stops_one_line_past_its_limit() {
        let mut out = Vec::new();
        let mut lines = Lines {
            out: &mut out,
            left: 3,
        };
        assert!(!lines.text(b"1\n2\n3\n4\n5\n", None).unwrap());
        assert!(!lines.line(b"6").unwrap());
        assert_eq!(out, b"1\n2\n3\n");
    }

    #[test]
    fn a_fake_guest_reads_back_as_its_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(guest(root, "/sys/kernel/slab/kmalloc-64")).unwrap();
        fs::create_dir_all(guest(root, "/sys/kernel/slab/rust_i915_vma")).unwrap();
        symlink("kmalloc-64", guest(root, "/sys/kernel/slab/alias")).unwrap();
        put(root, "/proc/sys/kernel/tainted", "4096\n");
        put(
            root,
            "/proc/modules",
            "rust_i915_table 16384 0 - Live 0xffffffffc0000000 (O)\n",
        );
        put(root, "/proc/filesystems", "nodev\tsysfs\n\text4\n");
        put(root, "/proc/12/stat", "12 (kcycle_leakd) S 2 0 0\n");
        put(root, "/proc/iomem", "00000000-00000fff : Reserved\n");
        put(root, "/sys/kernel/debug/rust_i915_table/state", "");
        put(root, "/sys/class/drm/card0/uevent", "");
        let mut out = Vec::new();
        print(root, SlabCounts::Listed, &mut out).unwrap();
        let snap = Snapshot::parse(&String::from_utf8(out).unwrap());
        assert_eq!(
            snap.slab.names().collect::<Vec<_>>(),
            ["kmalloc-64", "rust_i915_vma"]
        );
        assert_eq!(snap.modules, ["rust_i915_table"]);
        assert_eq!(snap.taint.flags().len(), 1);
        let names = |ns| {
            snap.namespaces
                .get(ns)
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Namespace::Debugfs),
            [
                "/sys/kernel/debug/rust_i915_table",
                "/sys/kernel/debug/rust_i915_table/state"
            ]
        );
        assert_eq!(names(Namespace::Filesystem), ["ext4", "sysfs"]);
        assert_eq!(names(Namespace::Kthread), ["kcycle_leakd"]);
        assert_eq!(
            names(Namespace::IoRegion),
            ["iomem 00000000-00000fff : Reserved"]
        );
        assert!(names(Namespace::Sysfs).contains(&"/sys/class/drm/card0".to_string()));
        assert!(snap.namespaces.truncated.is_empty());
    }

    #[test]
    fn an_exact_snapshot_shrinks_each_cache_it_can_before_reading_slabinfo() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        put(root, "/sys/kernel/slab/kmalloc-64/shrink", "");
        put(root, "/sys/kernel/slab/dentry/shrink", "");
        // A cache without the attribute: nothing is created for it.
        fs::create_dir_all(guest(root, "/sys/kernel/slab/old")).unwrap();
        symlink("kmalloc-64", guest(root, "/sys/kernel/slab/alias")).unwrap();
        put(root, "/proc/slabinfo", "dentry 10 20 192 21 1\n");
        let shrunk = |cache: &str| {
            fs::read_to_string(guest(root, &format!("/sys/kernel/slab/{cache}/shrink")))
        };

        let mut out = Vec::new();
        print(root, SlabCounts::Listed, &mut out).unwrap();
        assert_eq!(
            shrunk("dentry").unwrap(),
            "",
            "a listed snapshot writes nothing"
        );

        let mut exact = Vec::new();
        print(root, SlabCounts::Exact, &mut exact).unwrap();
        assert_eq!(exact, out, "the same sections");
        assert_eq!(shrunk("dentry").unwrap(), "1");
        assert_eq!(shrunk("kmalloc-64").unwrap(), "1");
        assert!(shrunk("old").is_err());
    }
}
