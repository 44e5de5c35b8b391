//! Moving a device to vfio-pci and back: `driver_override`, unbind,
//! `drivers_probe`. The original binding is recorded in the cache before
//! anything changes, so a kcycle that crashed with the device bound has it
//! restored at the next start ([`recover`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bdf::Bdf;
use super::preflight::VFIO_PCI;
use super::sysfs::{self, PciDevice, Roots};

/// One sysfs attribute write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: PathBuf,
    pub value: String,
}

/// The process that bound a device for the length of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// Field 22 of /proc/<pid>/stat: tells a live owner from a reused pid.
    pub start_time: u64,
}

impl Owner {
    pub fn current() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            start_time: start_time(Path::new("/proc"), pid)?,
        })
    }

    pub fn alive(&self, proc_root: &Path) -> bool {
        start_time(proc_root, self.pid) == Some(self.start_time)
    }
}

fn start_time(proc_root: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // The command name may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// How a device was bound before kcycle moved it, in `<cache>/passthrough/<bdf>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub bdf: Bdf,
    pub sysfs_root: PathBuf,
    pub driver: Option<String>,
    pub driver_override: Option<String>,
    /// The run that bound it; None after `kcycle passthrough bind`, which
    /// stays until `kcycle passthrough unbind`.
    pub owner: Option<Owner>,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("failed to write `{value}` to {}{}", path.display(), root_hint(.source))]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to {what} the binding record {}", path.display())]
    Record {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{bdf} is on {}, not vfio-pci, after the bind: see `dmesg | grep vfio` (a group member on a host driver, or vfio-pci refusing the device)", driver.as_deref().unwrap_or("no driver"))]
    NotBound { bdf: Bdf, driver: Option<String> },
    #[error("{bdf} has gone from {}", root.display())]
    Gone { bdf: Bdf, root: PathBuf },
}

fn root_hint(source: &std::io::Error) -> &'static str {
    if source.kind() == std::io::ErrorKind::PermissionDenied {
        " (sysfs needs root: `sudo kcycle passthrough bind <BDF>` before the run, or run as root)"
    } else {
        ""
    }
}

/// The writes that move `device` to vfio-pci.
pub fn bind_writes(roots: &Roots, device: &PciDevice) -> Vec<Write> {
    let bdf = device.bdf.to_string();
    let mut writes = vec![Write {
        path: roots.device_dir(device.bdf).join("driver_override"),
        value: VFIO_PCI.into(),
    }];
    if let Some(driver) = device.driver.as_deref().filter(|d| *d != VFIO_PCI) {
        writes.push(Write {
            path: roots.driver_dir(driver).join("unbind"),
            value: bdf.clone(),
        });
    }
    writes.push(Write {
        path: roots.drivers_probe(),
        value: bdf,
    });
    writes
}

/// The writes that give `device` back: the old override, off vfio-pci,
/// onto the recorded driver (or, with no record, whichever driver the kernel picks).
pub fn restore_writes(roots: &Roots, device: &PciDevice, record: Option<&Record>) -> Vec<Write> {
    let bdf = device.bdf.to_string();
    let old_override = record.and_then(|r| r.driver_override.clone());
    let mut writes = vec![Write {
        path: roots.device_dir(device.bdf).join("driver_override"),
        // A lone newline clears the override.
        value: old_override.unwrap_or_else(|| "\n".into()),
    }];
    if device.driver.as_deref() == Some(VFIO_PCI) {
        writes.push(Write {
            path: roots.driver_dir(VFIO_PCI).join("unbind"),
            value: bdf.clone(),
        });
    }
    match record.map(|r| r.driver.as_deref()) {
        // It had no driver: leave it without one.
        Some(None) => {}
        Some(Some(driver)) if roots.driver_dir(driver).join("bind").exists() => {
            writes.push(Write {
                path: roots.driver_dir(driver).join("bind"),
                value: bdf,
            })
        }
        _ => writes.push(Write {
            path: roots.drivers_probe(),
            value: bdf,
        }),
    }
    writes
}

/// Each write in order; the first failure stops.
pub fn apply(writes: &[Write]) -> Result<(), BindError> {
    for write in writes {
        std::fs::write(&write.path, &write.value).map_err(|source| BindError::Write {
            path: write.path.clone(),
            value: write.value.trim().to_string(),
            source,
        })?;
    }
    Ok(())
}

pub fn record_path(cache: &Path, bdf: Bdf) -> PathBuf {
    cache.join("passthrough").join(format!("{bdf}.json"))
}

fn save(cache: &Path, record: &Record) -> Result<(), BindError> {
    let path = record_path(cache, record.bdf);
    let err = |source| BindError::Record {
        what: "write",
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path.parent().unwrap_or(cache)).map_err(err)?;
    let json = serde_json::to_vec_pretty(record).map_err(|e| err(e.into()))?;
    crate::sys::fs::write_atomic(&path, &json).map_err(err)
}

pub fn load(cache: &Path, bdf: Bdf) -> Result<Option<Record>, BindError> {
    let path = record_path(cache, bdf);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BindError::Record {
                what: "read",
                path,
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| BindError::Record {
            what: "parse",
            path,
            source: e.into(),
        })
}

fn forget(cache: &Path, bdf: Bdf) -> Result<(), BindError> {
    let path = record_path(cache, bdf);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BindError::Record {
            what: "remove",
            path,
            source: e,
        }),
        _ => Ok(()),
    }
}

fn reread(roots: &Roots, bdf: Bdf) -> Result<PciDevice, BindError> {
    sysfs::device(roots, bdf).ok_or_else(|| BindError::Gone {
        bdf,
        root: roots.sys.clone(),
    })
}

/// Move `device` to vfio-pci, recording its binding first. Returns the
/// device as sysfs shows it afterwards (check [`ensure_vfio`]). A device
/// already on vfio-pci is left alone and nothing is recorded.
pub fn bind(
    roots: &Roots,
    device: &PciDevice,
    cache: &Path,
    owner: Option<Owner>,
) -> Result<PciDevice, BindError> {
    if device.driver.as_deref() == Some(VFIO_PCI) {
        return Ok(device.clone());
    }
    let record = Record {
        bdf: device.bdf,
        sysfs_root: roots.sys.clone(),
        driver: device.driver.clone(),
        driver_override: device.driver_override.clone(),
        owner,
    };
    save(cache, &record)?;
    if let Err(err) = apply(&bind_writes(roots, device)) {
        // Undo what got through (often nothing: no root), then drop the record.
        let now = reread(roots, device.bdf).unwrap_or_else(|_| device.clone());
        if apply(&restore_writes(roots, &now, Some(&record))).is_ok() {
            forget(cache, device.bdf)?;
        }
        return Err(err);
    }
    reread(roots, device.bdf)
}

/// The bind took: the device is on vfio-pci.
pub fn ensure_vfio(device: &PciDevice) -> Result<(), BindError> {
    match device.driver.as_deref() {
        Some(VFIO_PCI) => Ok(()),
        other => Err(BindError::NotBound {
            bdf: device.bdf,
            driver: other.map(String::from),
        }),
    }
}

/// Give `bdf` back to the driver recorded at bind time and drop the record.
pub fn unbind(roots: &Roots, bdf: Bdf, cache: &Path) -> Result<PciDevice, BindError> {
    let device = reread(roots, bdf)?;
    let record = load(cache, bdf)?;
    apply(&restore_writes(roots, &device, record.as_ref()))?;
    forget(cache, bdf)?;
    reread(roots, bdf)
}

/// Restore every binding whose owning run is gone (a kcycle that crashed
/// or was killed). Returns what was restored, or why not.
pub fn recover(cache: &Path, proc_root: &Path) -> Vec<(Bdf, Result<(), BindError>)> {
    let mut out = Vec::new();
    let dir = cache.join("passthrough");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    for path in names {
        let Some(bdf) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<Bdf>().ok())
        else {
            continue;
        };
        let record = match load(cache, bdf) {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(err) => {
                out.push((bdf, Err(err)));
                continue;
            }
        };
        match record.owner {
            Some(owner) if !owner.alive(proc_root) => {
                let roots = Roots {
                    sys: record.sysfs_root.clone(),
                    dev: Roots::default().dev,
                };
                out.push((bdf, unbind(&roots, bdf, cache).map(|_| ())));
            }
            _ => {}
        }
    }
    out
}

/// A device bound for one run: restored when released or dropped (an error
/// return or a panic); a crash leaves the record for [`recover`].
pub struct Held {
    roots: Roots,
    bdf: Bdf,
    cache: PathBuf,
    /// False when the device was on vfio-pci already: then it stays there.
    restore: bool,
}

impl Held {
    /// Bind `device` for this process and check that vfio-pci has it.
    pub fn bind(roots: &Roots, device: &PciDevice, cache: &Path) -> Result<Held, BindError> {
        let restore = device.driver.as_deref() != Some(VFIO_PCI);
        let mut held = Held {
            roots: roots.clone(),
            bdf: device.bdf,
            cache: cache.to_path_buf(),
            restore: false,
        };
        let after = bind(roots, device, cache, Owner::current())?;
        held.restore = restore;
        ensure_vfio(&after)?;
        Ok(held)
    }

    pub fn release(mut self) -> Result<(), BindError> {
        self.restore_now()
    }

    fn restore_now(&mut self) -> Result<(), BindError> {
        if !std::mem::take(&mut self.restore) {
            return Ok(());
        }
        unbind(&self.roots, self.bdf, &self.cache).map(|_| ())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // On failure the record stays and the next start retries.
        let _ = self.restore_now();
    }
}
