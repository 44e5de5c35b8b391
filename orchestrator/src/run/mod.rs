//! The executor: suites to guests to steps, emitting events for reporters.

pub mod command;
