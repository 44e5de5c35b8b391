//! The process substrate: everything that waits, signals or spawns.
//!
//! - [`cancel`]: the one cancel token, fed by SIGINT, SIGTERM and SIGHUP;
//! - [`wait`]: the one way to wait for a condition with a deadline and a token;
//! - [`child`]: the one child-process type (own process group, parent-death
//!   signal, terminate with grace then kill, capture with a deadline);
//! - [`shell`], [`fs`], [`error`], [`dirs`]: the shell quoter and command
//!   renderer, the atomic writer, the error-chain formatter, the cache root.
//!
//! Everything here is synchronous: plain threads and channels, no runtime.

pub mod cancel;
pub mod child;
pub mod dirs;
pub mod error;
pub mod fs;
pub mod shell;
pub mod wait;

pub use cancel::Cancel;
pub use child::{Captured, Child, ChildError, Killer};
pub use wait::Stop;
