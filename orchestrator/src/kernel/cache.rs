//! The kernel cache: where sources, build directories and artifact entries
//! live, how the key is computed, and how an entry becomes complete.
//!
//! ```text
//! <root>/kernel/src/<source-id>/          extracted Debian source (patched in place)
//! <root>/kernel/build/<source-id>/        O= build directory, reused incrementally
//! <root>/kernel/build/<source-id>.lock    held while anything uses that build dir
//! <root>/kernel/artifacts/<key>/          complete entries (see `artifacts`)
//! <root>/kernel/artifacts/.tmp-<key>-<pid>/  an entry being written
//! <root>/kernel/logs/<key>.log            full build log
//! ```
//!
//! An entry is written in a temporary directory and renamed into place, so a
//! directory under `artifacts/` without the `.tmp-` prefix is always complete.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::sys::dirs;
use crate::sys::wait::{self, Stop};
use crate::sys::Cancel;

/// How often a busy build lock is tried again.
const LOCK_POLL: Duration = Duration::from_millis(500);

/// Bump when the build recipe changes in a way that must invalidate entries.
pub const RECIPE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "failed to find a cache directory: set KCYCLE_CACHE (or HOME) to a writable directory"
    )]
    NoRoot,
    #[error("failed to {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "failed to lock {path}: another kcycle kernel build held it for {waited:?}; \
         wait for it to finish or remove the lock file if no kcycle is running"
    )]
    LockTimeout { path: PathBuf, waited: Duration },
    #[error("stopped waiting for the lock {path}: kcycle received {signal}")]
    Interrupted { path: PathBuf, signal: &'static str },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError {
    let path = path.to_path_buf();
    move |source| CacheError::Io { what, path, source }
}

/// The kernel part of the cache.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: PathBuf) -> Self {
        Cache { root }
    }

    /// Under the cache root from the environment ([`dirs::cache_root`]).
    pub fn from_env() -> Result<Self, CacheError> {
        dirs::cache_root().map(Cache::new).ok_or(CacheError::NoRoot)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn kernel(&self) -> PathBuf {
        self.root.join("kernel")
    }

    /// Where extracted sources live (one directory per source id).
    pub fn sources_root(&self) -> PathBuf {
        self.kernel().join("src")
    }

    pub fn build_dir(&self, source_id: &str) -> PathBuf {
        self.kernel().join("build").join(source_id)
    }

    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.kernel().join("artifacts").join(key)
    }

    pub fn log_file(&self, key: &str) -> PathBuf {
        self.kernel().join("logs").join(format!("{key}.log"))
    }

    /// Scratch space for one build (external module copies).
    pub fn scratch_dir(&self, key: &str) -> PathBuf {
        self.kernel()
            .join("scratch")
            .join(format!("{key}-{}", std::process::id()))
    }

    /// Small remembered facts, e.g. tarball hashes by size and mtime.
    pub fn memo_file(&self, name: &str) -> PathBuf {
        self.kernel().join(name)
    }

    /// A fresh temporary directory for the entry `key`, next to where it will be renamed.
    pub fn begin_entry(&self, key: &str) -> Result<PendingEntry, CacheError> {
        let parent = self.kernel().join("artifacts");
        std::fs::create_dir_all(&parent).map_err(io_error("create", &parent))?;
        remove_stale_temporaries(&parent);
        let dir = parent.join(format!(".tmp-{key}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_error("remove", &dir))?;
        }
        std::fs::create_dir(&dir).map_err(io_error("create", &dir))?;
        Ok(PendingEntry {
            dir,
            dest: self.entry_dir(key),
        })
    }

    /// Mark an entry as just used, so pruning (least recently used first) keeps it.
    pub fn touch_entry(&self, dir: &Path) {
        // Best effort: a failed touch only makes the entry an earlier prune candidate.
        if let Ok(file) = File::open(dir) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Remove all but the `keep` most recently used entries.
    pub fn prune_entries(&self, keep: usize) {
        let parent = self.kernel().join("artifacts");
        let Ok(read) = std::fs::read_dir(&parent) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = read
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        entries.sort();
        let excess = entries.len().saturating_sub(keep);
        for (_, path) in entries.into_iter().take(excess) {
            // Best effort: a failed prune only costs disk space.
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Remove `.tmp-<name>-<pid>` directories whose process is gone: an interrupted build.
pub fn remove_stale_temporaries(parent: &Path) {
    let Ok(read) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in read.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".tmp-")
            .and_then(|rest| rest.rsplit('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() || pid == std::process::id() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// An entry being written. Dropped without [`PendingEntry::commit`], it is removed.
#[derive(Debug)]
pub struct PendingEntry {
    dir: PathBuf,
    dest: PathBuf,
}

impl PendingEntry {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Make the entry complete: rename it into place, replacing an older one.
    pub fn commit(self) -> Result<PathBuf, CacheError> {
        let dest = self.dest.clone();
        if dest.exists() {
            let old = dest.with_file_name(format!(
                ".old-{}-{}",
                dest.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            std::fs::rename(&dest, &old).map_err(io_error("move aside", &dest))?;
            let _ = std::fs::remove_dir_all(&old);
        }
        std::fs::rename(&self.dir, &dest).map_err(io_error("rename into place", &self.dir))?;
        // Nothing left to clean up: the temporary name no longer exists.
        std::mem::forget(self);
        Ok(dest)
    }
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An exclusive `flock` on a file, released on drop (or when the last process
/// that inherited it exits: `make` children keep it while they live).
#[derive(Debug)]
pub struct BuildLock {
    file: File,
}

impl BuildLock {
    /// Wait up to `deadline` for the lock (or until `cancel` fires);
    /// `on_wait` is called once if it is busy.
    pub fn acquire(
        path: &Path,
        deadline: Duration,
        cancel: &Cancel,
        on_wait: impl FnOnce(),
    ) -> Result<Self, CacheError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error("create", parent))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_error("open", path))?;
        let start = Instant::now();
        let mut on_wait = Some(on_wait);
        let locked = wait::poll(start + deadline, Some(cancel), LOCK_POLL, || {
            // SAFETY: flock on a file descriptor we own; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            let err = io::Error::last_os_error();
            if rc == 0 || err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Some((rc == 0).then_some(()).ok_or(err));
            }
            if let Some(notify) = on_wait.take() {
                notify();
            }
            None
        });
        match locked {
            Ok(Ok(())) => Ok(BuildLock { file }),
            Ok(Err(source)) => Err(CacheError::Io {
                what: "lock",
                path: path.to_path_buf(),
                source,
            }),
            Err(Stop::Cancelled(signal)) => Err(CacheError::Interrupted {
                path: path.to_path_buf(),
                signal,
            }),
            Err(Stop::TimedOut) => Err(CacheError::LockTimeout {
                path: path.to_path_buf(),
                waited: start.elapsed(),
            }),
        }
    }

    /// The lock file descriptor, for children that should keep the lock while they live.
    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}

/// Everything that goes into a build, in a form that hashes the same on every machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInputs {
    /// Source identity: tarball sha256, or git HEAD + dirty hash.
    pub source: String,
    /// Config fragments in merge order: (file name, contents).
    pub fragments: Vec<(String, Vec<u8>)>,
    /// Patches in apply order: (file name, contents).
    pub patches: Vec<(String, Vec<u8>)>,
    /// Tool name to `--version` output.
    pub toolchain: BTreeMap<String, String>,
    /// The base config's part of the key (none for the full profile).
    pub profile: Option<&'static str>,
}

/// Key of the kernel proper (bzImage + in-tree modules).
pub fn kernel_key(inputs: &KeyInputs) -> String {
    let mut hasher = Framed::new("kernel");
    hasher.field(&RECIPE_VERSION.to_le_bytes());
    hasher.field(inputs.source.as_bytes());
    if let Some(base) = inputs.profile {
        hasher.field(b"base");
        hasher.field(base.as_bytes());
    }
    for (name, contents) in &inputs.fragments {
        hasher.field(b"fragment");
        hasher.field(name.as_bytes());
        hasher.field(contents);
    }
    for (name, contents) in &inputs.patches {
        hasher.field(b"patch");
        hasher.field(name.as_bytes());
        hasher.field(contents);
    }
    for (tool, version) in &inputs.toolchain {
        hasher.field(b"tool");
        hasher.field(tool.as_bytes());
        hasher.field(version.as_bytes());
    }
    hasher.finish()
}

/// An external module's name and its files as (relative path, contents).
pub type ModuleFiles = (String, Vec<(String, Vec<u8>)>);

/// Key of a complete entry: the kernel key plus external module sources.
pub fn entry_key(kernel_key: &str, modules: &[ModuleFiles]) -> String {
    let mut hasher = Framed::new("entry");
    hasher.field(kernel_key.as_bytes());
    for (name, files) in modules {
        hasher.field(b"module");
        hasher.field(name.as_bytes());
        for (path, contents) in files {
            hasher.field(path.as_bytes());
            hasher.field(contents);
        }
    }
    hasher.finish()
}

/// Length-prefixed fields, so ("ab", "c") and ("a", "bc") hash differently.
struct Framed(Sha256);

impl Framed {
    fn new(domain: &str) -> Self {
        let mut framed = Framed(Sha256::new());
        framed.field(domain.as_bytes());
        framed
    }

    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn finish(self) -> String {
        // 32 hex digits are plenty for a local cache and keep paths short.
        hex::encode(&self.0.finalize()[..16])
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> KeyInputs {
        KeyInputs {
            source: "debian 585a4a07".into(),
            fragments: vec![("10-rust.config".into(), b"CONFIG_RUST=y\n".to_vec())],
            patches: vec![],
            toolchain: [("rustc".to_string(), "rustc 1.85.0".to_string())].into(),
            profile: None,
        }
    }

    #[test]
    fn kernel_key_changes_with_every_input() {
        let base = kernel_key(&inputs());
        assert_eq!(base, kernel_key(&inputs()), "the key is deterministic");
        assert_eq!(base.len(), 32);

        let mut changed = inputs();
        changed.source = "debian 00000000".into();
        assert_ne!(kernel_key(&changed), base);

        let mut changed = inputs();
        changed.fragments[0].1 = b"CONFIG_RUST=n\n".to_vec();
        assert_ne!(kernel_key(&changed), base);

        let mut changed = inputs();
        changed
            .patches
            .push(("0001-x.patch".into(), b"diff".to_vec()));
        assert_ne!(kernel_key(&changed), base);

        let mut changed = inputs();
        changed
            .toolchain
            .insert("rustc".into(), "rustc 1.96.0".into());
        assert_ne!(kernel_key(&changed), base);

        let mut changed = inputs();
        changed.profile = super::super::Profile::Minimal.key_part();
        assert_ne!(kernel_key(&changed), base);
    }

    #[test]
    fn framing_keeps_field_boundaries() {
        let mut a = inputs();
        a.fragments = vec![("ab".into(), b"c".to_vec())];
        let mut b = inputs();
        b.fragments = vec![("a".into(), b"bc".to_vec())];
        assert_ne!(kernel_key(&a), kernel_key(&b));
    }

    #[test]
    fn entry_key_depends_on_module_sources_only_beyond_the_kernel() {
        let module = |text: &[u8]| {
            vec![(
                "rust_i915_table".to_string(),
                vec![("Kbuild".to_string(), text.to_vec())],
            )]
        };
        let k = kernel_key(&inputs());
        assert_eq!(entry_key(&k, &module(b"a")), entry_key(&k, &module(b"a")));
        assert_ne!(entry_key(&k, &module(b"a")), entry_key(&k, &module(b"b")));
        assert_ne!(entry_key(&k, &module(b"a")), entry_key(&k, &[]));
    }

    #[test]
    fn pending_entry_is_removed_unless_committed() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path().to_path_buf());

        let pending = cache.begin_entry("k1").unwrap();
        let tmp = pending.dir().to_path_buf();
        std::fs::write(tmp.join("bzImage"), b"x").unwrap();
        drop(pending);
        assert!(!tmp.exists());
        assert!(!cache.entry_dir("k1").exists());

        let pending = cache.begin_entry("k1").unwrap();
        std::fs::write(pending.dir().join("bzImage"), b"new").unwrap();
        let dest = pending.commit().unwrap();
        assert_eq!(dest, cache.entry_dir("k1"));
        assert_eq!(std::fs::read(dest.join("bzImage")).unwrap(), b"new");

        // Replacing a complete entry leaves exactly the new one.
        let pending = cache.begin_entry("k1").unwrap();
        std::fs::write(pending.dir().join("bzImage"), b"newer").unwrap();
        pending.commit().unwrap();
        assert_eq!(
            std::fs::read(cache.entry_dir("k1").join("bzImage")).unwrap(),
            b"newer"
        );
        let names: Vec<String> = std::fs::read_dir(root.path().join("kernel/artifacts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["k1"]);
    }

    #[test]
    fn pruning_keeps_the_most_recently_used_entries() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path().to_path_buf());
        for key in ["old", "mid", "new"] {
            cache.begin_entry(key).unwrap().commit().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        cache.touch_entry(&cache.entry_dir("old"));
        cache.prune_entries(2);
        assert!(cache.entry_dir("old").exists(), "used last, kept");
        assert!(!cache.entry_dir("mid").exists());
        assert!(cache.entry_dir("new").exists());
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path().to_path_buf());
        let parent = root.path().join("kernel/artifacts");
        // No process has a pid above pid_max (at most 2^22).
        let stale = parent.join(".tmp-k0-999999999");
        std::fs::create_dir_all(&stale).unwrap();
        let _pending = cache.begin_entry("k2").unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn lock_is_exclusive_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.lock");
        let none = Cancel::new();
        // Not Duration::ZERO: a child another test forks holds a copy of the
        // descriptor (and so the lock) until it execs.
        let soon = Duration::from_secs(5);
        let held = BuildLock::acquire(&path, soon, &none, || {}).unwrap();
        let mut waited = false;
        let err = BuildLock::acquire(&path, Duration::from_millis(10), &none, || waited = true)
            .unwrap_err();
        assert!(matches!(err, CacheError::LockTimeout { .. }), "{err}");
        assert!(waited);
        drop(held);
        BuildLock::acquire(&path, soon, &none, || {}).unwrap();
    }
}
