// SPDX-License-Identifier: MIT OR Apache-2.0
//! The init/exit table of i915's `i915_module.c`, made structural.
//!
//! This file is shared: the host crate (`lib.rs`) tests it with `cargo test`, and the kernel
//! module (`rust_i915_table.rs`) includes it with `mod table;`. It therefore uses `core` only,
//! allocates nothing and never panics.
//!
//! What the C table checks at run time, the types here rule out:
//! - only a [`Step::Gate`] can end init early; an [`Step::Owns`] init returns `Result<(), E>`, so
//!   "early exit from a step that has an exit" (C: `WARN_ON(init_funcs[i].exit)`) cannot be written;
//! - [`Progress`] (C: `init_progress`) is the prefix of the table that init completed, a sub-slice
//!   of it, so it cannot point past the end (C: `GEM_BUG_ON(i >= ARRAY_SIZE(init_funcs))`);
//! - [`Progress::exit`] consumes the progress, so teardown runs at most once.
//!
//! An owning step whose init tries to end early does not compile:
//!
//! ```compile_fail,E0308
//! use core::ops::ControlFlow;
//! use rust_i915_table::table::Step;
//! fn init(_: &mut ()) -> Result<ControlFlow<()>, ()> {
//!     Ok(ControlFlow::Break(()))
//! }
//! fn exit(_: &mut ()) {}
//! let _ = Step::<(), ()>::Owns { name: "globals", init, exit };
//! ```
//!
//! Nor does a progress made up outside `Table::init` (its fields are private):
//!
//! ```compile_fail,E0451
//! use rust_i915_table::table::{End, Progress};
//! let _ = Progress::<'static, (), ()> { done: &[], end: End::Completed };
//! ```
//!
//! Nor a second teardown:
//!
//! ```compile_fail,E0382
//! use rust_i915_table::table::{Step, Table};
//! fn init(_: &mut ()) -> Result<(), ()> { Ok(()) }
//! fn exit(_: &mut ()) {}
//! let steps = [Step::Owns { name: "globals", init, exit }];
//! let progress = Table::new(&steps).init(&mut ()).unwrap();
//! progress.exit(&mut ());
//! progress.exit(&mut ());
//! ```

use core::ops::ControlFlow;

/// Init of an owning step: sets something up, or fails having set up nothing.
pub type InitFn<C, E> = fn(&mut C) -> Result<(), E>;
/// Exit of an owning step: tears down what its init set up. Cannot fail, like `__exit` code.
pub type ExitFn<C> = fn(&mut C);
/// A gate: `Continue` lets init go on, `Break` ends init early with success.
pub type CheckFn<C, E> = fn(&mut C) -> Result<ControlFlow<()>, E>;

/// One row of the table. `C` is the state the steps share, `E` their error.
pub enum Step<C, E> {
    /// Sets something up that must be torn down again: never ends init early.
    Owns {
        name: &'static str,
        init: InitFn<C, E>,
        exit: ExitFn<C>,
    },
    /// Owns nothing, so it is the only kind of step that may end init early.
    Gate {
        name: &'static str,
        check: CheckFn<C, E>,
    },
}

impl<C, E> Step<C, E> {
    /// The step's name, as module parameters like `fail_at=` spell it.
    pub const fn name(&self) -> &'static str {
        match self {
            Step::Owns { name, .. } | Step::Gate { name, .. } => name,
        }
    }

    /// Runs this step's init (or check) and says whether init goes on.
    fn run(&self, ctx: &mut C) -> Result<ControlFlow<()>, E> {
        match self {
            Step::Owns { init, .. } => init(ctx).map(|()| ControlFlow::Continue(())),
            Step::Gate { check, .. } => check(ctx),
        }
    }
}

/// An ordered table of steps.
pub struct Table<'t, C, E> {
    steps: &'t [Step<C, E>],
}

/// How a successful init ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Every step ran.
    Completed,
    /// The named gate ended init early; it and the steps after it did not count.
    StoppedAt(&'static str),
}

/// How far a successful init got: the steps it completed, to be torn down by [`Progress::exit`].
///
/// Dropping it without calling `exit` leaks whatever those steps set up; the kernel module
/// does that on purpose only to reproduce the pre-patch bug (`legacy_exit=1`).
#[must_use = "dropping a Progress leaks what init set up: call exit()"]
pub struct Progress<'t, C, E> {
    done: &'t [Step<C, E>],
    end: End,
}

impl<'t, C, E> Table<'t, C, E> {
    pub const fn new(steps: &'t [Step<C, E>]) -> Self {
        Table { steps }
    }

    pub fn steps(&self) -> &'t [Step<C, E>] {
        self.steps
    }

    /// Whether a step of this name exists (to validate step-name parameters).
    pub fn has_step(&self, name: &str) -> bool {
        self.steps.iter().any(|step| step.name() == name)
    }

    /// Runs the steps in order. On an error at step `i`, tears down the owning steps before `i`
    /// in reverse and returns the error; on a gate's `Break`, stops and returns success.
    pub fn init(&self, ctx: &mut C) -> Result<Progress<'t, C, E>, E> {
        for (i, step) in self.steps.iter().enumerate() {
            // `i < len` (from enumerate), so the split is in range.
            let (done, _) = self.steps.split_at(i);
            match step.run(ctx) {
                Ok(ControlFlow::Continue(())) => {}
                Ok(ControlFlow::Break(())) => {
                    return Ok(Progress {
                        done,
                        end: End::StoppedAt(step.name()),
                    })
                }
                Err(err) => {
                    tear_down(done, ctx);
                    return Err(err);
                }
            }
        }
        Ok(Progress {
            done: self.steps,
            end: End::Completed,
        })
    }
}

impl<C, E> Progress<'_, C, E> {
    /// How init ended.
    pub fn end(&self) -> End {
        self.end
    }

    /// How many steps init completed (C: `init_progress`).
    pub fn steps_done(&self) -> usize {
        self.done.len()
    }

    /// Tears down exactly what init completed, in reverse order.
    pub fn exit(self, ctx: &mut C) {
        tear_down(self.done, ctx);
    }
}

/// Runs the exits of the owning steps in `done`, last first.
fn tear_down<C, E>(done: &[Step<C, E>], ctx: &mut C) {
    for step in done.iter().rev() {
        if let Step::Owns { exit, .. } = step {
            exit(ctx);
        }
    }
}
