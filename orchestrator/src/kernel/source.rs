//! Where the kernel source comes from and what identifies it.
//!
//! Debian's `linux-source-6.12` tarball is identified by its sha256 and
//! extracted once into the cache (patched there in place). A user's tree
//! (`--source DIR`) is identified by git HEAD plus a hash of uncommitted
//! changes (or, outside git, a snapshot of paths, sizes and mtimes) and is
//! never written to: the build goes to an `O=` directory in the cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::cache::{sha256_file, Cache};
use crate::sys::child;

/// Debian's kernel source package and where it puts the tarball.
pub const DEBIAN_PACKAGE: &str = "linux-source-6.12";
pub const DEBIAN_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "failed to find the kernel source tarball {path}: install it with `apt-get install {DEBIAN_PACKAGE}` \
         (or `kcycle setup`), or build your own tree with --source DIR"
    )]
    MissingTarball { path: PathBuf },
    #[error("failed to find kernel source {dir}: no such directory (check --source / KCYCLE_KERNEL_SRC)")]
    MissingTree { dir: PathBuf },
    #[error(
        "failed to use {dir} as kernel source: it has no {what}, so it is not the top of a Linux tree \
         (point --source / KCYCLE_KERNEL_SRC at the directory that holds Kconfig and Makefile)"
    )]
    NotKernelTree { dir: PathBuf, what: &'static str },
    #[error(
        "failed to use {dir} as kernel source: it holds an in-tree build ({what}), which `make O=` refuses; \
         run `make -C {dir} mrproper` there or point --source at a clean git worktree"
    )]
    InTreeBuild { dir: PathBuf, what: &'static str },
    #[error("failed to read the kernel version from {path}: no VERSION/PATCHLEVEL lines")]
    NoVersion { path: PathBuf },
    #[error("failed to {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to run {what} in {dir}")]
    Process {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: child::ChildError,
    },
}

/// Which source the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Debian { tarball: PathBuf },
    Tree { dir: PathBuf },
}

impl SourceSpec {
    pub fn from_option(dir: Option<PathBuf>) -> Self {
        match dir {
            Some(dir) => SourceSpec::Tree { dir },
            None => SourceSpec::Debian {
                tarball: PathBuf::from(DEBIAN_TARBALL),
            },
        }
    }
}

/// A source with its identity established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    /// Goes into the cache key: changes whenever the source text may have changed.
    pub identity: String,
    pub origin: SourceOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOrigin {
    Debian { tarball: PathBuf, sha256: String },
    Tree { dir: PathBuf, git: Option<GitState> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitState {
    pub head: String,
    /// sha256 prefix of the uncommitted changes, `None` when clean.
    pub dirty: Option<String>,
}

impl Identified {
    /// Name of this source's directories under the cache (`src/`, `build/`).
    pub fn cache_id(&self, version: &str) -> String {
        match &self.origin {
            SourceOrigin::Debian { sha256, .. } => format!("linux-{version}-{}", &sha256[..12]),
            SourceOrigin::Tree { dir, .. } => {
                let digest = hex::encode(Sha256::digest(dir.to_string_lossy().as_bytes()));
                format!("tree-{version}-{}", &digest[..12])
            }
        }
    }

    /// For the manifest: where the source came from, in words.
    pub fn describe(&self, version: &str) -> String {
        match &self.origin {
            SourceOrigin::Debian { tarball, sha256 } => format!(
                "debian {DEBIAN_PACKAGE} {version} ({} sha256 {sha256})",
                tarball.display()
            ),
            SourceOrigin::Tree {
                dir,
                git: Some(git),
            } => format!(
                "git {} {}{} ({version})",
                dir.display(),
                git.head,
                git.dirty
                    .as_ref()
                    .map(|d| format!(" +dirty {d}"))
                    .unwrap_or_default()
            ),
            SourceOrigin::Tree { dir, git: None } => format!("tree {} ({version})", dir.display()),
        }
    }
}

/// Establish the identity of a source without building anything.
pub fn identify(spec: &SourceSpec, cache: &Cache) -> Result<Identified, SourceError> {
    match spec {
        SourceSpec::Debian { tarball } => {
            let sha256 = tarball_sha256(tarball, cache)?;
            Ok(Identified {
                identity: format!("debian-tarball sha256:{sha256}"),
                origin: SourceOrigin::Debian {
                    tarball: tarball.clone(),
                    sha256,
                },
            })
        }
        SourceSpec::Tree { dir } => {
            check_tree(dir)?;
            let dir = dir.canonicalize().map_err(|source| SourceError::Io {
                what: "resolve",
                path: dir.clone(),
                source,
            })?;
            let git = git_state(&dir)?;
            let identity = match &git {
                Some(GitState { head, dirty }) => format!(
                    "git {head} {}",
                    dirty
                        .as_deref()
                        .map_or("clean".to_string(), |d| format!("dirty:{d}"))
                ),
                None => format!("tree snapshot:{}", snapshot_hash(&dir)?),
            };
            Ok(Identified {
                identity,
                origin: SourceOrigin::Tree { dir, git },
            })
        }
    }
}

/// A user's tree must be a kernel top directory without an in-tree build.
pub fn check_tree(dir: &Path) -> Result<(), SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::MissingTree {
            dir: dir.to_path_buf(),
        });
    }
    for what in ["Kconfig", "Makefile"] {
        if !dir.join(what).is_file() {
            return Err(SourceError::NotKernelTree {
                dir: dir.to_path_buf(),
                what,
            });
        }
    }
    for what in [".config", "include/config"] {
        if dir.join(what).exists() {
            return Err(SourceError::InTreeBuild {
                dir: dir.to_path_buf(),
                what,
            });
        }
    }
    Ok(())
}

/// `6.12.117` from a top-level Makefile.
pub fn kernel_version(makefile: &str) -> Option<String> {
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    for line in makefile.lines().take(20) {
        if let Some((name, value)) = line.split_once('=') {
            let name = name.trim();
            if ["VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"].contains(&name) {
                fields.insert(name, value.trim().to_string());
            }
        }
    }
    let version = fields.get("VERSION")?;
    let patchlevel = fields.get("PATCHLEVEL")?;
    let mut text = format!("{version}.{patchlevel}");
    if let Some(sublevel) = fields.get("SUBLEVEL").filter(|s| !s.is_empty()) {
        text.push('.');
        text.push_str(sublevel);
    }
    text.push_str(fields.get("EXTRAVERSION").map_or("", String::as_str));
    Some(text)
}

pub fn read_version(tree: &Path) -> Result<String, SourceError> {
    let path = tree.join("Makefile");
    let text = std::fs::read_to_string(&path).map_err(|source| SourceError::Io {
        what: "read",
        path: path.clone(),
        source,
    })?;
    kernel_version(&text).ok_or(SourceError::NoVersion { path })
}

/// sha256 of the tarball, remembered by (path, size, mtime) so a cache hit
/// does not re-read 150 MB.
fn tarball_sha256(tarball: &Path, cache: &Cache) -> Result<String, SourceError> {
    let meta = std::fs::metadata(tarball).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SourceError::MissingTarball {
                path: tarball.to_path_buf(),
            }
        } else {
            SourceError::Io {
                what: "stat",
                path: tarball.to_path_buf(),
                source,
            }
        }
    })?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let stamp = format!("{} {} {mtime}", tarball.display(), meta.len());
    let memo_path = cache.memo_file("tarball-sha256.json");
    let mut memo: BTreeMap<String, String> = std::fs::read_to_string(&memo_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    if let Some(sha) = memo.get(&stamp) {
        return Ok(sha.clone());
    }
    let sha = sha256_file(tarball).map_err(|source| SourceError::Io {
        what: "hash",
        path: tarball.to_path_buf(),
        source,
    })?;
    memo.insert(stamp, sha.clone());
    // A lost memo only costs a re-hash next time.
    if let Some(parent) = memo_path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(text) = serde_json::to_string_pretty(&memo) {
        let _ = crate::sys::fs::write_atomic(&memo_path, text.as_bytes());
    }
    Ok(sha)
}

fn git(dir: &Path, args: &[&str]) -> Result<Option<child::Captured>, SourceError> {
    let out = child::capture(
        Command::new("git").arg("-C").arg(dir).args(args),
        Duration::from_secs(120),
    )
    .map_err(|source| SourceError::Process {
        what: "git",
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(out.status.success().then_some(out))
}

/// HEAD and a hash of uncommitted changes (tracked diffs and untracked files), or
/// `None` when `dir` is not in a git work tree.
fn git_state(dir: &Path) -> Result<Option<GitState>, SourceError> {
    let Some(head) = git(dir, &["rev-parse", "HEAD"])? else {
        return Ok(None);
    };
    let head = head.stdout.trim().to_string();
    let diff = git(dir, &["diff", "HEAD", "--binary", "--", "."])?
        .map(|o| o.stdout)
        .unwrap_or_default();
    let untracked = git(
        dir,
        &[
            "ls-files",
            "-z",
            "--others",
            "--exclude-standard",
            "--",
            ".",
        ],
    )?
    .map(|o| o.stdout)
    .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(diff.as_bytes());
    let mut dirty = !diff.is_empty();
    for path in untracked.split('\0').filter(|p| !p.is_empty()) {
        dirty = true;
        hasher.update(path.as_bytes());
        hasher.update([0]);
        // Unreadable (e.g. a socket) still counts by name.
        if let Ok(bytes) = std::fs::read(dir.join(path)) {
            hasher.update(&bytes);
        }
    }
    Ok(Some(GitState {
        head,
        dirty: dirty.then(|| hex::encode(&hasher.finalize()[..8])),
    }))
}

/// Paths, sizes and mtimes of every file (outside `.git`) of a non-git tree.
fn snapshot_hash(dir: &Path) -> Result<String, SourceError> {
    let mut entries = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let read = std::fs::read_dir(&current).map_err(|source| SourceError::Io {
            what: "read",
            path: current.clone(),
            source,
        })?;
        for entry in read.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            if meta.is_dir() {
                if entry.file_name() != ".git" {
                    pending.push(path);
                }
                continue;
            }
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
            entries.push((relative, meta.len(), mtime));
        }
    }
    entries.sort();
    let mut hasher = Sha256::new();
    for (path, len, mtime) in entries {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update(len.to_le_bytes());
        hasher.update(mtime.to_le_bytes());
    }
    Ok(hex::encode(&hasher.finalize()[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Makefile"),
            "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION = -rc1\nNAME = x\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("Kconfig"), "mainmenu \"x\"\n").unwrap();
        dir
    }

    fn run_git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(status.status.success(), "git {args:?}: {status:?}");
    }

    #[test]
    fn version_from_makefile() {
        let tree = fake_tree();
        assert_eq!(read_version(tree.path()).unwrap(), "6.12.117-rc1");
        assert_eq!(
            kernel_version("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL =\nEXTRAVERSION =\n").as_deref(),
            Some("6.12")
        );
        assert_eq!(kernel_version("all:\n\techo\n"), None);
    }

    #[test]
    fn tree_checks_name_what_is_wrong() {
        let cache = Cache::new(tempfile::tempdir().unwrap().path().to_path_buf());
        let missing = identify(
            &SourceSpec::Tree {
                dir: "/nonexistent/linux".into(),
            },
            &cache,
        )
        .unwrap_err();
        assert!(
            matches!(missing, SourceError::MissingTree { .. }),
            "{missing}"
        );

        let empty = tempfile::tempdir().unwrap();
        let err = check_tree(empty.path()).unwrap_err();
        assert!(err.to_string().contains("has no Kconfig"), "{err}");

        let tree = fake_tree();
        check_tree(tree.path()).unwrap();
        std::fs::write(tree.path().join(".config"), "").unwrap();
        let err = check_tree(tree.path()).unwrap_err();
        assert!(err.to_string().contains("mrproper"), "{err}");
    }

    #[test]
    fn git_identity_tracks_head_and_uncommitted_changes() {
        let cache = Cache::new(tempfile::tempdir().unwrap().path().to_path_buf());
        let tree = fake_tree();
        run_git(tree.path(), &["init", "-q"]);
        run_git(tree.path(), &["add", "."]);
        run_git(tree.path(), &["commit", "-q", "-m", "base"]);
        let spec = SourceSpec::Tree {
            dir: tree.path().to_path_buf(),
        };

        let clean = identify(&spec, &cache).unwrap();
        assert!(clean.identity.ends_with(" clean"), "{}", clean.identity);
        assert_eq!(
            identify(&spec, &cache).unwrap(),
            clean,
            "stable when nothing changes"
        );

        std::fs::write(tree.path().join("Kconfig"), "mainmenu \"y\"\n").unwrap();
        let edited = identify(&spec, &cache).unwrap();
        assert!(edited.identity.contains("dirty:"), "{}", edited.identity);
        assert_ne!(edited.identity, clean.identity);

        std::fs::write(tree.path().join("new.c"), "int x;\n").unwrap();
        let untracked = identify(&spec, &cache).unwrap();
        assert_ne!(untracked.identity, edited.identity);

        run_git(tree.path(), &["add", "."]);
        run_git(tree.path(), &["commit", "-q", "-m", "more"]);
        let committed = identify(&spec, &cache).unwrap();
        assert!(committed.identity.ends_with(" clean"));
        assert_ne!(
            committed.identity, clean.identity,
            "a new HEAD is a new source"
        );
        assert!(committed.describe("6.12").starts_with("git "));
    }

    #[test]
    fn non_git_tree_is_identified_by_a_snapshot() {
        let cache = Cache::new(tempfile::tempdir().unwrap().path().to_path_buf());
        let tree = fake_tree();
        let spec = SourceSpec::Tree {
            dir: tree.path().to_path_buf(),
        };
        let first = identify(&spec, &cache).unwrap();
        assert!(first.identity.starts_with("tree snapshot:"));
        std::fs::write(tree.path().join("extra.c"), "int y;\n").unwrap();
        assert_ne!(identify(&spec, &cache).unwrap().identity, first.identity);
    }

    #[test]
    fn tarball_identity_is_its_sha256_and_remembered() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path().to_path_buf());
        let tarball = root.path().join("linux.tar.xz");
        std::fs::write(&tarball, b"not really xz").unwrap();
        let spec = SourceSpec::Debian {
            tarball: tarball.clone(),
        };
        let id = identify(&spec, &cache).unwrap();
        let expected = hex::encode(Sha256::digest(b"not really xz"));
        assert_eq!(id.identity, format!("debian-tarball sha256:{expected}"));
        assert_eq!(
            id.cache_id("6.12.117"),
            format!("linux-6.12.117-{}", &expected[..12])
        );
        assert!(cache.memo_file("tarball-sha256.json").exists());

        let missing = identify(
            &SourceSpec::Debian {
                tarball: root.path().join("gone.tar.xz"),
            },
            &cache,
        )
        .unwrap_err();
        assert!(missing
            .to_string()
            .contains("apt-get install linux-source-6.12"));
    }
}
