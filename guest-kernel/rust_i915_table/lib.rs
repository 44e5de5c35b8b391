//! Host build of the init/exit table core that the `rust_i915_table` kernel module includes.
//!
//! The kernel module compiles `table.rs` as its own `mod table;`; this crate compiles the very
//! same file so `cargo test -p rust_i915_table` can check it (see `tests/`).
#![no_std]

pub mod table;
