//! Guest kernel build and its cache.
//!
//! `artifacts` is the contract between the build and everything that boots
//! or builds against a kernel: one directory with a fixed layout. `build`
//! produces it; the other modules are its parts:
//!
//! - pure: `config` (fragments, `.config`, verification), `profile` (the base config), `kconfig` (why an
//!   option was dropped), `make` (reading kbuild output), key computation in `cache`;
//! - shells: `project` (reading fragments, patches, module sources), `source`
//!   (identity, tarball), `patches`, `external` (M= modules), `toolchain`,
//!   `steps` (the make steps in a build dir); `error` (every build error);
//!   `progress` (the events a build emits; the library never prints).
//!   Children run through [`crate::sys::child`].
//!
//! Dependencies point one way: `build` -> `steps`/`project`/`source`/... ->
//! `external`/`error` (no cycles: `steps` builds external modules, `external`
//! only reads their sources). Nothing here installs packages: a missing Debian source is an
//! error the caller may fix (`host::apt_install`) before it retries.

pub(crate) mod artifacts;
pub mod build;
pub mod cache;
pub mod config;
pub(crate) mod error;
pub(crate) mod external;
pub mod kconfig;
pub(crate) mod make;
pub mod patches;
pub mod profile;
pub(crate) mod progress;
pub(crate) mod project;
pub mod source;
pub(crate) mod steps;
pub(crate) mod toolchain;

pub use artifacts::{Artifacts, ArtifactsError, KernelModules, Manifest};
pub use build::{build, BuildRequest, Built};
pub use error::BuildError;
pub use external::{vermagic, ExternalError};
pub use profile::Profile;
pub use progress::BuildEvent;
pub use project::Project;
pub use steps::{build_module, default_jobs};
pub use toolchain::ToolchainError;
