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
//! pre-patch exit that leaks after an early exit), `unwind_leak=<step>` (a failed init's unwind
//! skips that owning step's teardown: the error-path bug a sweep must find).

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ops::ControlFlow;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, Ordering};

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
static UNWIND_LEAK: AtomicPtr<c_char> = AtomicPtr::new(ptr::null_mut());
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
    unwind_leak,
    UNWIND_LEAK,
    param_ops_charp,
    "charp",
    0o444,
    0,
    "Owning step whose teardown a failed init's unwind skips (globals, pci); a normal exit still runs it"
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

/// Also drive QEMU's `edu` device (1234:11e8), the stand-in for a GPU in emulated guests.
static STANDIN: AtomicBool = AtomicBool::new(false);
/// Stand-in teardown that remove skips: `irq`, `debugfs` or `regions`.
static REMOVE_LEAK: AtomicPtr<c_char> = AtomicPtr::new(ptr::null_mut());
/// Stand-in probe stage that fails with -ENOMEM: `enable`, `regions`, `iomap`, `irq`, `debugfs`.
static PROBE_FAIL_AT: AtomicPtr<c_char> = AtomicPtr::new(ptr::null_mut());
/// A failed stand-in probe forgets to unmap BAR0 and release the regions (the classic
/// goto-ladder bug).
static PROBE_UNWIND_LEAK: AtomicBool = AtomicBool::new(false);

module_param!(standin, STANDIN, param_ops_bool, "bool", 0o444, 0,
    "Also drive QEMU's edu device 1234:11e8 (added as a dynamic PCI ID): probe maps BAR0, checks the ident register, takes an MSI and waits for one interrupt, creates debugfs rust_i915_table/<device>; remove undoes it");
module_param!(remove_leak, REMOVE_LEAK, param_ops_charp, "charp", 0o444, 0,
    "Stand-in teardown that remove skips (irq, debugfs, regions)");
module_param!(probe_fail_at, PROBE_FAIL_AT, param_ops_charp, "charp", 0o444, 0,
    "Stand-in probe stage that fails with -ENOMEM after unwinding the earlier ones (enable, regions, iomap, irq, debugfs)");
module_param!(probe_unwind_leak, PROBE_UNWIND_LEAK, param_ops_bool, "bool", 0o444, 0,
    "A failed stand-in probe does not unmap BAR0 or release the regions");

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

/// Rejects a stand-in fault parameter that names nothing it knows.
fn check_name_param(param_name: &str, param: &AtomicPtr<c_char>, names: &[&str]) -> Result {
    match step_param(param) {
        Some(name) if !names.iter().any(|n| n.as_bytes() == name.as_bytes()) => {
            pr_err!("{}={}: unknown (one of: {:?})\n", param_name, name, names);
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
    /// `TABLE.init` is running: an exit called now is a failed init's unwind.
    in_init: bool,
}

impl Globals {
    const fn new() -> Self {
        Globals {
            caches: [ptr::null_mut(); CACHES.len()],
            debugfs: ptr::null_mut(),
            sysctl: ptr::null_mut(),
            pci_registered: false,
            in_init: false,
        }
    }

    /// `unwind_leak=<step>`: the unwind of a failed init forgets `step`'s teardown.
    fn unwind_skips(&self, step: &'static str) -> bool {
        let skips = self.in_init
            && step_param(&UNWIND_LEAK).is_some_and(|name| name.as_bytes() == step.as_bytes());
        if skips {
            pr_warn!("{}: unwind_leak: the failed init's unwind skips this teardown\n", step);
        }
        skips
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
            // The step's own cleanup of what it half did: not the table's unwind.
            globals_release(globals);
            return Err(code::ENOMEM);
        }
        globals.caches[i] = cache;
    }
    DEBUGFS_ROOT.store(globals.debugfs, Ordering::Release);
    pr_info!(
        "globals: created debugfs dir rust_i915_table and {} slab caches\n",
        CACHES.len()
    );
    Ok(())
}

fn globals_exit(globals: &mut Globals) {
    if !globals.unwind_skips("globals") {
        globals_release(globals);
    }
}

/// Destroys the caches and the debugfs dir `globals_init` made (all or some of them).
fn globals_release(globals: &mut Globals) {
    for cache in globals.caches.iter_mut().rev() {
        if !cache.is_null() {
            // SAFETY: `cache` came from `__kmem_cache_create_args` and is destroyed once: the
            // slot is nulled right after.
            unsafe { bindings::kmem_cache_destroy(*cache) };
            *cache = ptr::null_mut();
        }
    }
    DEBUGFS_ROOT.store(ptr::null_mut(), Ordering::Release);
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
    id: *const bindings::pci_device_id,
) -> c_int {
    // SAFETY: the PCI core passes the matching entry of our table or of a dynamic ID.
    if unsafe { (*id).driver_data } == STANDIN_ID_DATA {
        // SAFETY: as this function's.
        return unsafe { standin::probe(pdev) };
    }
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
    // SAFETY: as this function's.
    if unsafe { standin::remove(pdev) } {
        return;
    }
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
    if STANDIN.load(Ordering::Relaxed) {
        // What `echo 1234 11e8 > /sys/bus/pci/drivers/rust_i915_table/new_id` does: the core
        // probes the matching devices now. Freed by pci_unregister_driver().
        // SAFETY: the driver was registered just above.
        let err = unsafe {
            bindings::pci_add_dynid(
                PCI_DRIVER.get(),
                standin::VENDOR,
                standin::DEVICE,
                bindings::PCI_ANY_ID as c_uint,
                bindings::PCI_ANY_ID as c_uint,
                0,
                0,
                STANDIN_ID_DATA,
            )
        };
        if let Err(err) = to_result(err) {
            pci_unregister(globals);
            return Err(err);
        }
        pr_info!("pci: added the stand-in device 1234:11e8\n");
    }
    Ok(())
}

fn pci_unregister(globals: &mut Globals) {
    if globals.unwind_skips("pci") {
        return;
    }
    // SAFETY: registered by `pci_register` (this exit only runs after that init succeeded).
    unsafe { bindings::pci_unregister_driver(PCI_DRIVER.get()) };
    globals.pci_registered = false;
    pr_info!("pci: unregistered the PCI driver\n");
}

/// `driver_data` of the stand-in's dynamic ID (the static Intel entry has 0).
const STANDIN_ID_DATA: bindings::kernel_ulong_t = 1;

/// Teardowns `remove_leak` may skip.
const REMOVE_LEAKS: [&str; 3] = ["irq", "debugfs", "regions"];
/// Probe stages, in order (`probe_fail_at`).
const STAGES: [&str; 5] = ["enable", "regions", "iomap", "irq", "debugfs"];

/// The module's debugfs directory (step 2), parent of the per-device ones.
static DEBUGFS_ROOT: AtomicPtr<bindings::dentry> = AtomicPtr::new(ptr::null_mut());

/// The stand-in for a GPU: QEMU's `edu` device (docs/specs/edu.rst). Probe does what a GPU
/// driver's probe does in miniature: enable the device, claim and map its MMIO BAR, check it
/// answers, take an MSI and see one interrupt arrive, and publish per-device state in debugfs.
/// Remove undoes each stage, last first.
mod standin {
    use super::*;

    pub(super) const VENDOR: c_uint = 0x1234;
    pub(super) const DEVICE: c_uint = 0x11e8;

    // edu's BAR0 registers.
    const IDENT: usize = 0x00;
    const LIVENESS: usize = 0x04;
    const IRQ_STATUS: usize = 0x24;
    const IRQ_RAISE: usize = 0x60;
    const IRQ_ACK: usize = 0x64;

    /// Devices driven at once (QEMU guests get one or two).
    const SLOTS: usize = 4;

    /// One bound device. Atomics, because the interrupt handler reads it concurrently.
    struct Slot {
        pdev: AtomicPtr<bindings::pci_dev>,
        mmio: AtomicPtr<c_void>,
        irq: AtomicI32,
        interrupts: AtomicU32,
        debugfs: AtomicPtr<bindings::dentry>,
        /// Stages completed (an index into `STAGES` + 1).
        reached: AtomicU32,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const FREE: Slot = Slot {
        pdev: AtomicPtr::new(ptr::null_mut()),
        mmio: AtomicPtr::new(ptr::null_mut()),
        irq: AtomicI32::new(-1),
        interrupts: AtomicU32::new(0),
        debugfs: AtomicPtr::new(ptr::null_mut()),
        reached: AtomicU32::new(0),
    };
    static DEVICES: [Slot; SLOTS] = [FREE; SLOTS];

    /// A register of BAR0.
    fn reg(mmio: *mut c_void, offset: usize) -> *mut c_void {
        mmio.wrapping_byte_add(offset)
    }

    fn named(param: &AtomicPtr<c_char>, name: &str) -> bool {
        step_param(param).is_some_and(|value| value.as_bytes() == name.as_bytes())
    }

    /// # Safety
    ///
    /// `pdev` is live for the call; `dev_name` is NUL-terminated.
    unsafe fn log(pdev: *mut bindings::pci_dev, warn: bool, fmt: &CStr, arg: c_int) {
        // SAFETY: the caller's; every format here has at most one `%d`.
        unsafe {
            if warn {
                bindings::_dev_warn(&raw mut (*pdev).dev, fmt.as_char_ptr(), arg)
            } else {
                bindings::_dev_info(&raw mut (*pdev).dev, fmt.as_char_ptr(), arg)
            }
        }
    }

    /// Counts and acknowledges edu's interrupts.
    ///
    /// # Safety
    ///
    /// `data` is the `Slot` given to request_threaded_irq(), a static.
    unsafe extern "C" fn interrupt(_irq: c_int, data: *mut c_void) -> bindings::irqreturn_t {
        // SAFETY: the caller's.
        let slot = unsafe { &*data.cast::<Slot>() };
        let mmio = slot.mmio.load(Ordering::Acquire);
        if mmio.is_null() {
            return bindings::irqreturn_IRQ_NONE;
        }
        // SAFETY: BAR0 is mapped while the handler is registered (it is freed before the unmap).
        let status = unsafe { bindings::ioread32(reg(mmio, IRQ_STATUS)) };
        if status == 0 {
            return bindings::irqreturn_IRQ_NONE;
        }
        // SAFETY: as above.
        unsafe { bindings::iowrite32(status, reg(mmio, IRQ_ACK)) };
        slot.interrupts.fetch_add(1, Ordering::Relaxed);
        bindings::irqreturn_IRQ_HANDLED
    }

    /// # Safety
    ///
    /// Called from `pci_probe` with a live `pdev` that matched the stand-in's ID.
    pub(super) unsafe fn probe(pdev: *mut bindings::pci_dev) -> c_int {
        let Some(index) = DEVICES.iter().position(|slot| {
            slot.pdev
                .compare_exchange(ptr::null_mut(), pdev, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) else {
            return code::ENOSPC.to_errno();
        };
        let slot = &DEVICES[index];
        slot.interrupts.store(0, Ordering::Relaxed);
        slot.reached.store(0, Ordering::Relaxed);
        // SAFETY: the caller's; the slot is ours until remove or the unwind below.
        match unsafe { setup(pdev, slot) } {
            Ok(()) => {
                // SAFETY: driver_data belongs to the bound driver; `dev_set_drvdata` is inline.
                unsafe { (*pdev).dev.driver_data = ptr::from_ref(slot).cast_mut().cast() };
                0
            }
            Err(err) => {
                // SAFETY: the caller's.
                unsafe {
                    log(
                        pdev,
                        false,
                        c_str!("stand-in probe failed with error %d; unwinding\n"),
                        err.to_errno(),
                    )
                };
                let keep_regions = PROBE_UNWIND_LEAK.load(Ordering::Relaxed);
                // SAFETY: `slot` holds what `setup` completed on `pdev`.
                unsafe { teardown(pdev, slot, |stage| keep_regions && matches!(stage, "regions" | "iomap")) };
                err.to_errno()
            }
        }
    }

    /// Tears down a stand-in; false when `pdev` is not one.
    ///
    /// # Safety
    ///
    /// Called from `pci_remove` with a live, bound `pdev`.
    pub(super) unsafe fn remove(pdev: *mut bindings::pci_dev) -> bool {
        let Some(slot) = DEVICES
            .iter()
            .find(|slot| slot.pdev.load(Ordering::Acquire) == pdev)
        else {
            return false;
        };
        // SAFETY: the caller's; the slot holds what probe set up on `pdev`.
        unsafe {
            log(
                pdev,
                false,
                c_str!("stand-in remove after %d interrupts\n"),
                slot.interrupts.load(Ordering::Relaxed) as c_int,
            );
            (*pdev).dev.driver_data = ptr::null_mut();
            teardown(pdev, slot, |stage| named(&REMOVE_LEAK, stage));
        }
        true
    }

    /// Fails with -ENOMEM at the `probe_fail_at` stage.
    fn stage(index: usize) -> Result {
        if named(&PROBE_FAIL_AT, STAGES[index]) {
            pr_info!("stand-in: probe_fail_at={}: failing with -ENOMEM\n", STAGES[index]);
            return Err(code::ENOMEM);
        }
        Ok(())
    }

    /// # Safety
    ///
    /// `pdev` is live and `slot` is claimed for it.
    unsafe fn setup(pdev: *mut bindings::pci_dev, slot: &Slot) -> Result {
        let done = |n: u32| slot.reached.store(n, Ordering::Release);
        stage(0)?;
        // SAFETY (this block): `pdev` is live; each call is paired with its undo in `teardown`,
        // which runs for exactly the stages recorded in `reached`.
        unsafe {
            to_result(bindings::pci_enable_device(pdev))?;
            done(1);
            stage(1)?;
            to_result(bindings::pci_request_regions(
                pdev,
                c_str!("rust_i915_table").as_char_ptr(),
            ))?;
            done(2);
            stage(2)?;
            let mmio = bindings::pci_iomap(pdev, 0, 0);
            if mmio.is_null() {
                return Err(code::ENOMEM);
            }
            slot.mmio.store(mmio, Ordering::Release);
            done(3);
            let ident = bindings::ioread32(reg(mmio, IDENT));
            bindings::iowrite32(0x5a5a_1234, reg(mmio, LIVENESS));
            let live = bindings::ioread32(reg(mmio, LIVENESS));
            if ident & 0xff != 0xed || live != !0x5a5a_1234 {
                log(pdev, true, c_str!("stand-in: not an edu device (ident %08x)\n"), ident as c_int);
                return Err(code::ENODEV);
            }
            stage(3)?;
            bindings::pci_set_master(pdev);
            let vectors = bindings::pci_alloc_irq_vectors(
                pdev,
                1,
                1,
                bindings::PCI_IRQ_MSI | bindings::PCI_IRQ_INTX,
            );
            to_result(vectors.min(0))?;
            let irq = bindings::pci_irq_vector(pdev, 0);
            if irq < 0 {
                bindings::pci_free_irq_vectors(pdev);
                return Err(Error::from_errno(irq));
            }
            let err = bindings::request_threaded_irq(
                irq as c_uint,
                Some(interrupt),
                None,
                bindings::IRQF_SHARED as kernel::ffi::c_ulong,
                c_str!("rust_i915_table").as_char_ptr(),
                ptr::from_ref(slot).cast_mut().cast(),
            );
            if err != 0 {
                bindings::pci_free_irq_vectors(pdev);
                return Err(Error::from_errno(err));
            }
            slot.irq.store(irq, Ordering::Release);
            done(4);
            // One interrupt must arrive: the device really raises it and the handler runs.
            bindings::iowrite32(1, reg(mmio, IRQ_RAISE));
            for _ in 0..100 {
                if slot.interrupts.load(Ordering::Relaxed) > 0 {
                    break;
                }
                bindings::msleep(10);
            }
            if slot.interrupts.load(Ordering::Relaxed) == 0 {
                log(pdev, true, c_str!("stand-in: no interrupt within 1 s of raising one (irq %d)\n"), irq);
                return Err(code::EIO);
            }
            stage(4)?;
            // Like i915's per-device debugfs: errors are not fatal; a duplicate directory is
            // reported by debugfs itself ("already present") and yields an error pointer.
            let dir = bindings::debugfs_create_dir((*pdev).dev.kobj.name, DEBUGFS_ROOT.load(Ordering::Acquire));
            bindings::debugfs_create_u32(
                c_str!("interrupts").as_char_ptr(),
                0o444,
                dir,
                slot.interrupts.as_ptr(),
            );
            slot.debugfs.store(dir, Ordering::Release);
            done(5);
            log(pdev, false, c_str!("stand-in: probed: BAR0 mapped, edu answers, irq %d, debugfs entry\n"), irq);
        }
        Ok(())
    }

    /// Undoes the completed stages, last first, except those `skip` names; frees the slot.
    ///
    /// # Safety
    ///
    /// `slot` holds what `setup` completed on the live `pdev`.
    unsafe fn teardown(pdev: *mut bindings::pci_dev, slot: &Slot, skip: impl Fn(&str) -> bool) {
        let reached = slot.reached.load(Ordering::Acquire);
        // SAFETY (this block): each undo runs once, for a stage `setup` completed.
        unsafe {
            if reached >= 5 && !skip("debugfs") {
                bindings::debugfs_remove(slot.debugfs.swap(ptr::null_mut(), Ordering::AcqRel));
            }
            if reached >= 4 && !skip("irq") {
                let irq = slot.irq.swap(-1, Ordering::AcqRel);
                bindings::free_irq(irq as c_uint, ptr::from_ref(slot).cast_mut().cast());
                bindings::pci_free_irq_vectors(pdev);
            }
            let keep_regions = skip("regions") || skip("iomap");
            if reached >= 3 && !keep_regions {
                bindings::pci_iounmap(pdev, slot.mmio.swap(ptr::null_mut(), Ordering::AcqRel));
            }
            if reached >= 2 && !keep_regions {
                bindings::pci_release_regions(pdev);
            }
            if reached >= 1 {
                bindings::pci_disable_device(pdev);
            }
        }
        slot.reached.store(0, Ordering::Release);
        slot.pdev.store(ptr::null_mut(), Ordering::Release);
    }
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
        check_step_param("unwind_leak", &UNWIND_LEAK)?;
        check_name_param("remove_leak", &REMOVE_LEAK, &REMOVE_LEAKS)?;
        check_name_param("probe_fail_at", &PROBE_FAIL_AT, &STAGES)?;
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
        globals.in_init = true;
        let progress = TABLE.init(&mut globals).inspect_err(|err| {
            pr_info!("init failed with error {}; unwound\n", err.to_errno());
        })?;
        globals.in_init = false;
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
