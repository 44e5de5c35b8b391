//! Guest kernel build and its cache.
//!
//! `artifacts` is the contract between the build and everything that boots
//! or builds against a kernel: one directory with a fixed layout. `build`
//! produces it; the other modules are its parts:
//!
//! - pure: `config` (fragments, `.config`, verification), `kconfig` (why an
//!   option was dropped), `make` (reading kbuild output), key computation in `cache`;
//! - shells: `project` (reading fragments, patches, module sources), `source`
//!   (identity, tarball), `patches`, `external` (M= modules), `toolchain`,
//!   `steps` (the make steps in a build dir), `progress`. Children run
//!   through [`crate::sys::child`].

pub mod artifacts;
pub mod build;
pub mod cache;
pub mod config;
pub mod external;
pub mod kconfig;
pub mod make;
pub mod patches;
pub mod progress;
pub mod project;
pub mod source;
pub mod steps;
pub mod toolchain;

pub use artifacts::{Artifacts, ArtifactsError, KernelModules, Manifest};
pub use build::{build, BuildError, BuildRequest, Built};
pub use project::Project;
