//! Guest kernel build and its cache.
//!
//! `artifacts` is the contract between the build and everything that boots
//! or builds against a kernel: one directory with a fixed layout.

pub mod artifacts;

pub use artifacts::{Artifacts, ArtifactsError, KernelModules, Manifest};
