//! The executor: suites to guests to steps, emitting events for reporters.

pub mod command;
pub mod event;
pub mod machine;
pub mod verdict;

pub use event::Event;
pub use machine::{Machine, MachineError, Output};
