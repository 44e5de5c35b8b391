//! Passthrough of a real Intel GPU with VFIO: find the device, check the
//! host (preflight), move it to vfio-pci and back, and say how QEMU gets it.
//!
//! Everything reads and writes under a [`Roots`] (`/sys` and `/dev` on a
//! host, a fake tree in tests: [`fake`]). [`preflight`] judges [`Facts`]
//! without touching anything; [`bind`] is the only writer.

pub mod bdf;
pub mod bind;
#[doc(hidden)]
pub mod fake;
pub mod preflight;
pub mod sysfs;

#[cfg(test)]
mod tests;

pub use bdf::{Bdf, BdfError};
pub use bind::{BindError, Held, Record};
pub use preflight::{checks, preflight, Check, Facts, PreflightError, Ready, Selector};
pub use sysfs::{PciDevice, Roots};

use crate::vm::argv::{IgdMode, Vfio};

/// How QEMU should get `device`: integrated graphics in universal mode (it
/// works on q35 with the direct kernel boot kcycle does and needs no VBIOS),
/// anything else as a plain vfio-pci device.
pub fn vfio_for(device: &PciDevice) -> Vfio {
    let host = device.bdf.to_string();
    if device.is_integrated() {
        Vfio::Igd {
            host,
            mode: IgdMode::Universal,
        }
    } else {
        Vfio::Discrete { host }
    }
}

/// RLIMIT_MEMLOCK in bytes for [`Facts::memlock`]: None when unlimited or
/// when running as root (CAP_IPC_LOCK lifts the limit for VFIO).
pub fn memlock_limit() -> Option<u64> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return None;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: limit is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Some(0);
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}
