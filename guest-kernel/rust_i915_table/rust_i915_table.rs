// SPDX-License-Identifier: GPL-2.0
//! rust_i915_table: i915's init/exit table (6.12 `drivers/gpu/drm/i915/i915_module.c`) in Rust.
//!
//! Five steps, each owning a kernel resource whose leak is visible from userspace:
//!
//! | step             | kind  | what it does                                                    |
//! |------------------|-------|-----------------------------------------------------------------|
//! | `nomodeset`      | gate  | `modeset=0` ends init early (success)                           |
//! | `globals`        | owns  | debugfs dir `rust_i915_table` + slab caches `rust_i915_*`       |
//! | `mock_selftests` | gate  | `mock_selftests!=0`: exercise the caches, store the result in   |
//! |                  |       | the parameter (0 or -errno), end init early (success)           |
//! | `pci`            | owns  | PCI driver for Intel display-class devices (8086, class 0300xx) |
//! | `sysctl`         | owns  | `/proc/sys/dev/rust_i915/perf_stream_paranoid`                  |
//!
//! The table logic itself is `table.rs`, shared with the host crate that property-tests it.
//! Fault injection for kcycle's tests: `fail_at=<step>` (-ENOMEM), `hang_at=<step>` (wait for a
//! signal, then -EINTR), `panic_at=<step>` (kernel panic), `leak_objects=1` (selftests keep one
//! object), `st_fail=<test>` (that mock selftest fails with -EINVAL), `legacy_exit=1` (the
//! pre-patch exit that leaks after an early exit).

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ops::ControlFlow;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};

use kernel::bindings;
use kernel::c_str;
use kernel::error::{code, to_result, Error};
use kernel::ffi::{c_char, c_int, c_uint, c_void};
use kernel::prelude::*;
use kernel::str::CStr;

// The same items are the public API of the host crate (`lib.rs`); here they are only used
// inside this module, which `unreachable_pub` would flag.
#[allow(unreachable_pub)]
mod table;

use table::{End, Progress, Step, Table};

module! {
    type: RustI915Table,
    name: "rust_i915_table",
    author: "kcycle",
    description: "i915's init/exit table in Rust, with fault injection for kcycle",
    license: "GPL",
}

/// The table, in i915's order (6.12 has one row per slab cache plus pmu; the seed's shape is kept:
/// gate, globals, selftests gate, pci, sysctl).
static TABLE: Table<'static, Globals, Error> = Table::new(&[
    Step::Gate {
        name: "nomodeset",
        check: check_nomodeset,
    },
    Step::Owns {
        name: "globals",
        init: globals_init,
        exit: globals_exit,
    },
    Step::Gate {
        name: "mock_selftests",
        check: mock_selftests,
    },
    Step::Owns {
        name: "pci",
        init: pci_register,
        exit: pci_unregister,
    },
    Step::Owns {
        name: "sysctl",
        init: sysctl_register,
        exit: sysctl_unregister,
    },
]);

// ---------------------------------------------------------------------------------------------
// Module parameters.
//
// 6.12's `module!` has no parameters. They are built here by hand, the way `module_param_cb()`
// expands in C: a `struct kernel_param` in the `__param` section (the loader parses it and
// creates /sys/module/rust_i915_table/parameters/<name>) plus `parmtype=`/`parm=` strings in
// `.modinfo` (what modinfo(8) shows). Doing it in Rust rather than in a C file of a composite
// module keeps the module one language and one object: the struct layout comes from bindgen,
// so it cannot drift from the header, and the storage is an atomic whose address the kernel's
// own `param_ops_*` read and write (same layout as the C type), so Rust never needs `static mut`.
// ---------------------------------------------------------------------------------------------

/// A `kernel_param` the loader reads from the `__param` section.
#[repr(transparent)]
struct Param(bindings::kernel_param);

// SAFETY: a `Param` is never written after build time: the kernel only reads the struct, and the
// pointers in it refer to statics (name, ops, storage) that live as long as the module.
unsafe impl Sync for Param {}

/// Copies a byte string into an array, so a `.modinfo` entry can be a sized static.
const fn modinfo<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// `module_param_named(name, storage, type, perm)` plus `MODULE_PARM_DESC(name, desc)`.
macro_rules! module_param {
    ($param:ident, $storage:expr, $ops:ident, $type:literal, $perm:literal, $flags:expr, $desc:literal) => {
        const _: () = {
            #[link_section = "__param"]
            #[used]
            static PARAM: Param = Param(bindings::kernel_param {
                name: concat!(stringify!($param), "\0").as_ptr().cast::<c_char>(),
                mod_: &raw mut bindings::__this_module,
                ops: &raw const bindings::$ops,
                perm: $perm,
                level: -1,
                flags: $flags as u8,
                __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
                    arg: $storage.as_ptr().cast::<c_void>(),
                },
            });

            const TYPE: &[u8] =
                concat!("parmtype=", stringify!($param), ":", $type, "\0").as_bytes();
            #[link_section = ".modinfo"]
            #[used]
            static PARMTYPE: [u8; TYPE.len()] = modinfo(TYPE);

            const DESC: &[u8] = concat!("parm=", stringify!($param), ":", $desc, "\0").as_bytes();
            #[link_section = ".modinfo"]
            #[used]
            static PARM: [u8; DESC.len()] = modinfo(DESC);
        };
    };
}

/// i915's `modeset`: -1 default, 0 ends init early at the nomodeset gate.
static MODESET: AtomicI32 = AtomicI32::new(-1);
/// i915's `mock_selftests`: non-zero runs the selftests at load; the result is stored back.
static MOCK_SELFTESTS: AtomicI32 = AtomicI32::new(0);
/// Reproduce the pre-patch `i915_exit()`, which returned early when the PCI driver was not
/// registered, so after an early exit nothing was torn down.
static LEGACY_EXIT: AtomicBool = AtomicBool::new(false);
/// The selftests keep one object, so `kmem_cache_destroy()` finds the cache not empty.
static LEAK_OBJECTS: AtomicBool = AtomicBool::new(false);
/// Step names for fault injection (`charp`: the kernel owns and frees the strings).
static FAIL_AT: AtomicPtr<c_char> = AtomicPtr::new(ptr::null_mut());
static HANG_AT: AtomicPtr<c_char> = AtomicPtr::new(ptr::null_mut());
static PANIC_AT: AtomicPtr<c_char> = AtomicPtr::new(ptr::null_mut());
/// Name of a mock selftest (a cache name, e.g. `rust_i915_vma`) whose check fails with -EINVAL,
/// so the -errno result path of `mock_selftests` can be tested.
static ST_FAIL: AtomicPtr<c_char> = AtomicPtr::new(ptr::null_mut());

// All 0444: set at load time only, readable by the runner under /sys/module/.../parameters.
module_param!(
    modeset,
    MODESET,
    param_ops_int,
    "int",
    0o444,
    0,
    "Use kernel modesetting (0=disable: init ends early at the nomodeset gate, -1=default)"
);
// Like i915 (module_param_named_unsafe): setting it taints the kernel (TAINT_USER).
module_param!(mock_selftests, MOCK_SELFTESTS, param_ops_int, "int", 0o444,
    bindings::KERNEL_PARAM_FL_UNSAFE,
    "Run the mock selftests at load and stop there (0=off [default], any other value=run); afterwards holds the result: 0 pass, -errno fail");
module_param!(
    legacy_exit,
    LEGACY_EXIT,
    param_ops_bool,
    "bool",
    0o444,
    0,
    "Pre-patch exit: after an early exit, tear down nothing (leaks the caches and the debugfs dir)"
);
module_param!(leak_objects, LEAK_OBJECTS, param_ops_bool, "bool", 0o444, 0,
    "Selftests keep one object allocated, so kmem_cache_destroy reports the cache still has objects");
module_param!(
    fail_at,
    FAIL_AT,
    param_ops_charp,
    "charp",
    0o444,
    0,
    "Step whose init fails with -ENOMEM (nomodeset, globals, mock_selftests, pci, sysctl)"
);
module_param!(
    hang_at,
    HANG_AT,
    param_ops_charp,
    "charp",
    0o444,
    0,
    "Step whose init waits until the loading process gets a signal, then fails with -EINTR"
);
module_param!(
    st_fail,
    ST_FAIL,
    param_ops_charp,
    "charp",
    0o444,
    0,
    "Mock selftest that fails with -EINVAL (rust_i915_active, rust_i915_context, rust_i915_objects, rust_i915_request, rust_i915_vma)"
);
module_param!(
    panic_at,
    PANIC_AT,
    param_ops_charp,
    "charp",
    0o444,
    0,
    "Step whose init panics the kernel"
);

/// The step name a `charp` parameter holds, if it is set.
fn step_param(param: &AtomicPtr<c_char>) -> Option<&'static CStr> {
    let name = param.load(Ordering::Relaxed);
    if name.is_null() {
        return None;
    }
    // SAFETY: a non-null `charp` value is a NUL-terminated string the kernel allocated when it
    // parsed the parameter; it is only replaced or freed when the parameter is written (never:
    // 0444) or the module is unloaded, after every user here is gone.
    Some(unsafe { CStr::from_char_ptr(name) })
}

/// Rejects a fault-injection parameter that names no step, so a typo cannot pass silently.
fn check_step_param(param_name: &str, param: &AtomicPtr<c_char>) -> Result {
    match step_param(param) {
        Some(name) if !TABLE.has_step(name.to_str().unwrap_or("")) => {
            pr_err!(
                "{}={}: no such step (steps: nomodeset globals mock_selftests pci sysctl)\n",
                param_name,
                name
            );
            Err(code::EINVAL)
        }
        _ => Ok(()),
    }
}

/// Runs at the start of every step: applies `panic_at`, `hang_at` and `fail_at`.
fn inject_faults(step: &'static str) -> Result {
    let is = |param: &AtomicPtr<c_char>| {
        step_param(param).is_some_and(|name| name.as_bytes() == step.as_bytes())
    };
    if is(&PANIC_AT) {
        let len = c_int::try_from(step.len()).unwrap_or(0);
        // SAFETY: `%.*s` takes an int length and a pointer to at least that many bytes: the
        // step name, which is static.
        unsafe {
            bindings::panic(
                c_str!("rust_i915_table: panic_at=%.*s\n").as_char_ptr(),
                len,
                step.as_ptr(),
            )
        }
    }
    if is(&HANG_AT) {
        // A warning, so it reaches the serial console (runner guests boot
        // with loglevel=5): the evidence of a hang must survive the guest.
        pr_warn!(
            "{}: hang_at: waiting for a signal to the loading process\n",
            step
        );
        while !kernel::current!().signal_pending() {
            // SAFETY: plain C call; sleeps at most 1 s and returns early on a signal.
            unsafe { bindings::msleep_interruptible(1000) };
        }
        pr_info!("{}: hang_at: signal received, failing with -EINTR\n", step);
        return Err(code::EINTR);
    }
    if is(&FAIL_AT) {
        pr_info!("{}: fail_at: failing with -ENOMEM\n", step);
        return Err(code::ENOMEM);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The state the steps share.
// ---------------------------------------------------------------------------------------------

/// i915's global slab caches (6.12: i915_active, context, gem_context, objects, request, vma...).
const CACHES: [(&CStr, c_uint); 5] = [
    (c_str!("rust_i915_active"), 96),
    (c_str!("rust_i915_context"), 256),
    (c_str!("rust_i915_objects"), 384),
    (c_str!("rust_i915_request"), 512),
    (c_str!("rust_i915_vma"), 192),
];

/// What the owning steps set up, so their exits can tear it down.
struct Globals {
    caches: [*mut bindings::kmem_cache; CACHES.len()],
    debugfs: *mut bindings::dentry,
    sysctl: *mut bindings::ctl_table_header,
    pci_registered: bool,
}

impl Globals {
    const fn new() -> Self {
        Globals {
            caches: [ptr::null_mut(); CACHES.len()],
            debugfs: ptr::null_mut(),
            sysctl: ptr::null_mut(),
            pci_registered: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Step 1: nomodeset gate.
// ---------------------------------------------------------------------------------------------

/// 6.12's i915 fails this check with -ENODEV; the seed (and kcycle) end init early with success
/// instead, which is the path the table exists for. The `nomodeset` boot option lives in drm,
/// which this module does not depend on, so only the parameter is checked.
fn check_nomodeset(_: &mut Globals) -> Result<ControlFlow<()>, Error> {
    inject_faults("nomodeset")?;
    if MODESET.load(Ordering::Relaxed) == 0 {
        pr_info!("nomodeset: modeset=0, KMS disabled: ending init early\n");
        return Ok(ControlFlow::Break(()));
    }
    Ok(ControlFlow::Continue(()))
}

// ---------------------------------------------------------------------------------------------
// Step 2: globals.
// ---------------------------------------------------------------------------------------------

fn globals_init(globals: &mut Globals) -> Result {
    inject_faults("globals")?;
    // Like i915, debugfs errors are not fatal (a duplicate directory is reported by debugfs
    // itself and yields an error pointer, which debugfs_remove() ignores).
    // SAFETY: the name is a static NUL-terminated string; a null parent means the debugfs root.
    globals.debugfs = unsafe {
        bindings::debugfs_create_dir(c_str!("rust_i915_table").as_char_ptr(), ptr::null_mut())
    };
    for (i, (name, size)) in CACHES.iter().enumerate() {
        let mut args = bindings::kmem_cache_args::default();
        // SAFETY: `name` is static and NUL-terminated (the cache keeps its own copy); `args`
        // outlives the call. `__kmem_cache_create_args` is what 6.12's `kmem_cache_create()`
        // macro expands to.
        let cache = unsafe {
            bindings::__kmem_cache_create_args(
                name.as_ptr(),
                *size,
                &mut args,
                bindings::SLAB_HWCACHE_ALIGN,
            )
        };
        if cache.is_null() {
            pr_err!("globals: failed to create slab cache {}\n", name);
            globals_exit(globals);
            return Err(code::ENOMEM);
        }
        globals.caches[i] = cache;
    }
    pr_info!(
        "globals: created debugfs dir rust_i915_table and {} slab caches\n",
        CACHES.len()
    );
    Ok(())
}

fn globals_exit(globals: &mut Globals) {
    for cache in globals.caches.iter_mut().rev() {
        if !cache.is_null() {
            // SAFETY: `cache` came from `__kmem_cache_create_args` and is destroyed once: the
            // slot is nulled right after.
            unsafe { bindings::kmem_cache_destroy(*cache) };
            *cache = ptr::null_mut();
        }
    }
    // SAFETY: `debugfs` is null, an error pointer or the directory created in `globals_init`;
    // debugfs_remove() ignores the first two. Nulled right after, so removed once.
    unsafe { bindings::debugfs_remove(globals.debugfs) };
    globals.debugfs = ptr::null_mut();
    pr_info!("globals: destroyed the slab caches and the debugfs dir\n");
}

// ---------------------------------------------------------------------------------------------
// Step 3: mock selftests gate.
// ---------------------------------------------------------------------------------------------

/// Objects each selftest allocates per cache.
const SELFTEST_OBJECTS: usize = 16;

/// Allocates from every cache, writes a pattern, checks it and frees (or, with `leak_objects`,
/// keeps one object). Stores 0 or -errno in `mock_selftests` and always ends init early with
/// success: the module must stay loaded until the next syscall boundary (see the seed).
fn mock_selftests(globals: &mut Globals) -> Result<ControlFlow<()>, Error> {
    inject_faults("mock_selftests")?;
    if MOCK_SELFTESTS.load(Ordering::Relaxed) == 0 {
        return Ok(ControlFlow::Continue(()));
    }
    pr_info!("Performing mock selftests\n");
    let fail = step_param(&ST_FAIL);
    let mut result = 0;
    for (cache, (name, size)) in globals.caches.iter().zip(CACHES.iter()) {
        pr_info!("Running mock/{}\n", name);
        let outcome = match exercise_cache(*cache, *size as usize) {
            Ok(()) if fail.is_some_and(|fail| fail.as_bytes() == name.as_bytes()) => {
                Err(code::EINVAL)
            }
            outcome => outcome,
        };
        if let Err(err) = outcome {
            result = err.to_errno();
            // i915's format exactly (`i915/<caller>: <test> failed with error <n>`), which
            // `pr_err!` cannot give: it always prefixes "rust_i915_table: ".
            // SAFETY: the format starts with KERN_ERR and has one `%s` (the test name, a static
            // NUL-terminated string) and one `%d` (a C int).
            unsafe {
                bindings::_printk(
                    c_str!("\x013rust_i915_table/mock: %s failed with error %d\n").as_char_ptr(),
                    name.as_char_ptr(),
                    result,
                )
            };
            break;
        }
    }
    if result == 0 {
        pr_info!("mock selftests passed; ending init early\n");
    }
    MOCK_SELFTESTS.store(result, Ordering::Relaxed);
    Ok(ControlFlow::Break(()))
}

fn exercise_cache(cache: *mut bindings::kmem_cache, size: usize) -> Result {
    let mut objects = [ptr::null_mut::<u8>(); SELFTEST_OBJECTS];
    let mut outcome = Ok(());
    for (n, slot) in objects.iter_mut().enumerate() {
        // SAFETY: `cache` is a live cache created by `globals_init` (this gate runs after it).
        let object = unsafe { bindings::kmem_cache_alloc_noprof(cache, bindings::GFP_KERNEL) };
        let object = object.cast::<u8>();
        if object.is_null() {
            outcome = Err(code::ENOMEM);
            break;
        }
        // SAFETY: the object is `size` bytes, freshly allocated and ours alone.
        unsafe { ptr::write_bytes(object, n as u8, size) };
        *slot = object;
    }
    for (n, &object) in objects.iter().enumerate().filter(|(_, o)| !o.is_null()) {
        // SAFETY: as above; the object is still allocated and `size` bytes long.
        let bytes = unsafe { core::slice::from_raw_parts(object, size) };
        if outcome.is_ok() && bytes.iter().any(|&b| b != n as u8) {
            outcome = Err(code::EINVAL);
        }
    }
    let keep = usize::from(LEAK_OBJECTS.load(Ordering::Relaxed));
    for &object in objects.iter().skip(keep).filter(|o| !o.is_null()) {
        // SAFETY: allocated from `cache` above and freed exactly once.
        unsafe { bindings::kmem_cache_free(cache, object.cast()) };
    }
    outcome
}

// ---------------------------------------------------------------------------------------------
// Step 4: PCI driver.
// ---------------------------------------------------------------------------------------------

/// A C object the kernel links into its own lists, so it must live at a fixed address and be
/// mutable behind Rust's back.
#[repr(transparent)]
struct KernelOwned<T>(UnsafeCell<T>);

// SAFETY: Rust code only hands out the raw pointer; the kernel serializes its own accesses
// (driver core and sysctl locks), and registration/unregistration happen in module init/exit,
// which never run concurrently.
unsafe impl<T> Sync for KernelOwned<T> {}

impl<T> KernelOwned<T> {
    const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// Intel (0x8086), any device, display class 0x0300xx; zero-terminated.
static PCI_IDS: [bindings::pci_device_id; 2] = [
    bindings::pci_device_id {
        vendor: 0x8086,
        device: bindings::PCI_ANY_ID as u32,
        subvendor: bindings::PCI_ANY_ID as u32,
        subdevice: bindings::PCI_ANY_ID as u32,
        class: bindings::PCI_CLASS_DISPLAY_VGA << 8,
        class_mask: 0xffff00,
        driver_data: 0,
        override_only: 0,
    },
    // SAFETY: all-zero is the terminating entry of a `pci_device_id` table.
    unsafe { MaybeUninit::zeroed().assume_init() },
];

static PCI_DRIVER: KernelOwned<bindings::pci_driver> =
    KernelOwned(UnsafeCell::new(bindings::pci_driver {
        name: c_str!("rust_i915_table").as_char_ptr(),
        id_table: PCI_IDS.as_ptr(),
        probe: Some(pci_probe),
        remove: Some(pci_remove),
        // SAFETY: the remaining fields are pointers, optional callbacks, flags and the embedded
        // `device_driver`/`dynids`, for which all-zero is what a C static initializer gives.
        ..unsafe { MaybeUninit::zeroed().assume_init() }
    }));

/// Logs the device; binding needs nothing else.
///
/// # Safety
///
/// Called by the PCI core only, with a live `pdev`.
unsafe extern "C" fn pci_probe(
    pdev: *mut bindings::pci_dev,
    _id: *const bindings::pci_device_id,
) -> c_int {
    // SAFETY: the PCI core passes a live device for the duration of the call; the format's
    // conversions match the arguments (two `%04x` u16, one `%06x` u32).
    unsafe {
        bindings::_dev_info(
            &raw mut (*pdev).dev,
            c_str!("probe [%04x:%04x] class %06x\n").as_char_ptr(),
            c_uint::from((*pdev).vendor),
            c_uint::from((*pdev).device),
            (*pdev).class,
        )
    };
    0
}

/// Logs the device going away.
///
/// # Safety
///
/// Called by the PCI core only, with a live `pdev`.
unsafe extern "C" fn pci_remove(pdev: *mut bindings::pci_dev) {
    // SAFETY: as in `pci_probe`.
    unsafe {
        bindings::_dev_info(
            &raw mut (*pdev).dev,
            c_str!("remove [%04x:%04x]\n").as_char_ptr(),
            c_uint::from((*pdev).vendor),
            c_uint::from((*pdev).device),
        )
    };
}

fn pci_register(globals: &mut Globals) -> Result {
    inject_faults("pci")?;
    // SAFETY: the driver is a static at a fixed address, unregistered in `pci_unregister`
    // before the module goes; `__this_module` is this module; the name is static.
    to_result(unsafe {
        bindings::__pci_register_driver(
            PCI_DRIVER.get(),
            &raw mut bindings::__this_module,
            c_str!("rust_i915_table").as_char_ptr(),
        )
    })?;
    globals.pci_registered = true;
    pr_info!("pci: registered the PCI driver\n");
    Ok(())
}

fn pci_unregister(globals: &mut Globals) {
    // SAFETY: registered by `pci_register` (this exit only runs after that init succeeded).
    unsafe { bindings::pci_unregister_driver(PCI_DRIVER.get()) };
    globals.pci_registered = false;
    pr_info!("pci: unregistered the PCI driver\n");
}

// ---------------------------------------------------------------------------------------------
// Step 5: sysctl.
// ---------------------------------------------------------------------------------------------

/// i915's `dev.i915.perf_stream_paranoid`.
static PERF_STREAM_PARANOID: AtomicI32 = AtomicI32::new(1);

static SYSCTL_TABLE: KernelOwned<[bindings::ctl_table; 1]> =
    KernelOwned(UnsafeCell::new([bindings::ctl_table {
        procname: c_str!("perf_stream_paranoid").as_char_ptr(),
        data: PERF_STREAM_PARANOID.as_ptr().cast(),
        maxlen: core::mem::size_of::<c_int>() as c_int,
        mode: 0o644,
        proc_handler: Some(bindings::proc_dointvec),
        poll: ptr::null_mut(),
        extra1: ptr::null_mut(),
        extra2: ptr::null_mut(),
    }]));

fn sysctl_register(globals: &mut Globals) -> Result {
    inject_faults("sysctl")?;
    // SAFETY: the path is static; the table is a static at a fixed address with one entry,
    // unregistered in `sysctl_unregister` before the module goes.
    let header = unsafe {
        bindings::register_sysctl_sz(
            c_str!("dev/rust_i915").as_char_ptr(),
            SYSCTL_TABLE.get().cast(),
            1,
        )
    };
    if header.is_null() {
        return Err(code::ENOMEM);
    }
    globals.sysctl = header;
    pr_info!("sysctl: registered dev/rust_i915\n");
    Ok(())
}

fn sysctl_unregister(globals: &mut Globals) {
    // SAFETY: `sysctl` is the header `register_sysctl_sz` returned; nulled right after.
    unsafe { bindings::unregister_sysctl_table(globals.sysctl) };
    globals.sysctl = ptr::null_mut();
    pr_info!("sysctl: unregistered dev/rust_i915\n");
}

// ---------------------------------------------------------------------------------------------
// The module.
// ---------------------------------------------------------------------------------------------

struct RustI915Table {
    globals: Globals,
    /// `None` only while `drop` runs.
    progress: Option<Progress<'static, Globals, Error>>,
}

// SAFETY: the raw pointers in `Globals` are kernel objects (caches, dentry, sysctl header) that
// any thread may use; the module value is only touched by module init and exit.
unsafe impl Send for RustI915Table {}
// SAFETY: as above; there are no `&self` methods that touch the pointers.
unsafe impl Sync for RustI915Table {}

impl kernel::Module for RustI915Table {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        check_step_param("fail_at", &FAIL_AT)?;
        check_step_param("hang_at", &HANG_AT)?;
        check_step_param("panic_at", &PANIC_AT)?;
        if let Some(test) = step_param(&ST_FAIL) {
            if !CACHES
                .iter()
                .any(|(name, _)| name.as_bytes() == test.as_bytes())
            {
                pr_err!(
                    "st_fail={}: no such mock selftest (they are named after the caches)\n",
                    test
                );
                return Err(code::EINVAL);
            }
        }

        let mut globals = Globals::new();
        let progress = TABLE.init(&mut globals).inspect_err(|err| {
            pr_info!("init failed with error {}; unwound\n", err.to_errno());
        })?;
        match progress.end() {
            End::Completed => pr_info!("init: all {} steps done\n", progress.steps_done()),
            End::StoppedAt(gate) => pr_info!(
                "init: ended early at {} after {} of {} steps\n",
                gate,
                progress.steps_done(),
                TABLE.steps().len()
            ),
        }
        Ok(RustI915Table {
            globals,
            progress: Some(progress),
        })
    }
}

impl Drop for RustI915Table {
    fn drop(&mut self) {
        let Some(progress) = self.progress.take() else {
            return;
        };
        if LEGACY_EXIT.load(Ordering::Relaxed) && !self.globals.pci_registered {
            // The pre-patch i915_exit(): `if (!i915_pci_driver.driver.owner) return;`
            pr_warn!(
                "exit: legacy_exit=1 and the PCI driver is not registered: tearing down nothing ({} steps leak)\n",
                progress.steps_done()
            );
            // `progress` goes out of scope without `exit()`: what it covers stays set up.
            return;
        }
        pr_info!(
            "exit: undoing the {} steps init completed\n",
            progress.steps_done()
        );
        progress.exit(&mut self.globals);
    }
}
