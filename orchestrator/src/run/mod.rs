//! The executor: suites to guests to steps, emitting events for reporters.
//!
//! `scheduler` hands tests to guests; `executor` runs one test's steps and
//! checks; `verdict` turns findings into statuses; `retry` settles a test's reruns; `command` builds the guest
//! shell commands. Guests are reached through the [`Machine`] trait, so the
//! same code drives QEMU over SSH and the scripted fakes of unit tests.

pub mod collect;
pub mod command;
pub mod event;
pub mod executor;
pub mod ledger;
pub mod machine;
pub mod plan;
pub mod pristine;
pub mod qemu;
pub mod retry;
pub mod scheduler;
pub mod session;
pub mod sweep;
pub mod trend;
pub mod verdict;

pub use event::Event;
pub use machine::{Machine, MachineError, Output};
pub use scheduler::{run_plan, MachineFactory, RunOptions};
pub use session::{Finished, Session};

#[cfg(test)]
mod tests;
