//! kcycle: catch kernel drivers that do not undo what they set up.
//!
//! The crate is split into a pure core that takes values and returns values
//! (`dmesg`, `suite`, `status`, `report`, the argv builder in `vm`) and thin
//! shells that touch processes, sockets and files (`kernel`, `image`, `vm`,
//! `guest`, `run`), all over one substrate (`sys`: the cancel token, waits
//! with deadlines, child processes). The binary in `main.rs`/`cli/` only
//! parses arguments, calls into these modules and maps errors to exit codes.
//! ARCHITECTURE.md at the repository root draws the layers and the data flow.

pub mod bisect;
pub mod compare;
pub mod config;
pub mod dmesg;
pub mod exit;
pub mod fingerprint;
pub mod guest;
pub mod host;
pub mod image;
pub mod kernel;
pub mod kind;
pub mod located;
pub mod outcome;
pub mod passthrough;
pub mod report;
pub mod run;
pub mod selftest;
pub mod snapshot;
pub mod status;
pub mod suite;
pub mod symbols;
pub mod sys;
pub mod vm;
