//! One closed type for what a finding is (pure), over every check: the
//! dmesg classifier's kinds, the runner's own, the ledger's `leaked-*` per
//! namespace, and guest faults, as syzkaller's crash types are one type.
//!
//! Serialized as its name (`sysfs-duplicate`, `leaked-slab-cache`, `crash`),
//! so results.json, JUnit and baseline files keep the strings they always
//! had. A name this kcycle does not know (a file from another version) reads
//! as [`FindingKind::Other`] and is written back as it came.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dmesg;
use crate::snapshot::Namespace;
use crate::status::Status;

/// What a finding is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// A report the dmesg classifier found in the kernel log.
    Dmesg(dmesg::Kind),
    /// One of the runner's own checks.
    Runner(Runner),
    /// Something the module created in this namespace outlived its unload.
    Leaked(Namespace),
    /// The guest gave out; named as the status it gives.
    Fault(Fault),
    /// A name no check of this kcycle produces, kept as it was read.
    Other(String),
}

/// The runner's own checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runner {
    /// A step's command failed (non-zero exit, module still loaded after unload).
    StepFailed,
    /// A step marked `expect_failure` succeeded.
    UnexpectedSuccess,
    /// The selftest result parameter was non-zero.
    SelftestResult,
    /// Slab caches that appeared with a load and outlived the unload.
    LeakedSlabCache,
    /// An oops or warning in the image of a module that had been unloaded.
    UseAfterUnload,
    /// A memory counter that grew by a steady amount every cycle.
    SteadyGrowth,
    /// New taint bits that are not expected from the test itself.
    Taint,
    /// A control test that did not come out flagged as expected.
    ControlNotFlagged,
}

/// How the guest gave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    Crash,
    Timeout,
    Incomplete,
    /// The guest could not be booted or reached.
    Abort,
}

impl Runner {
    pub const ALL: [Runner; 8] = [
        Runner::StepFailed,
        Runner::UnexpectedSuccess,
        Runner::SelftestResult,
        Runner::LeakedSlabCache,
        Runner::UseAfterUnload,
        Runner::SteadyGrowth,
        Runner::Taint,
        Runner::ControlNotFlagged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Runner::StepFailed => "step-failed",
            Runner::UnexpectedSuccess => "unexpected-success",
            Runner::SelftestResult => "selftest-result",
            Runner::LeakedSlabCache => "leaked-slab-cache",
            Runner::UseAfterUnload => "use-after-unload",
            Runner::SteadyGrowth => "steady-growth",
            Runner::Taint => "taint",
            Runner::ControlNotFlagged => "control-not-flagged",
        }
    }
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::Crash,
        Fault::Timeout,
        Fault::Incomplete,
        Fault::Abort,
    ];

    pub fn status(self) -> Status {
        match self {
            Fault::Crash => Status::Crash,
            Fault::Timeout => Status::Timeout,
            Fault::Incomplete => Status::Incomplete,
            Fault::Abort => Status::Abort,
        }
    }

    /// The fault a status stands for, if it is one.
    pub fn from_status(status: Status) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.status() == status)
    }
}

impl FindingKind {
    pub const STEP_FAILED: FindingKind = FindingKind::Runner(Runner::StepFailed);
    pub const UNEXPECTED_SUCCESS: FindingKind = FindingKind::Runner(Runner::UnexpectedSuccess);
    pub const SELFTEST_RESULT: FindingKind = FindingKind::Runner(Runner::SelftestResult);
    pub const LEAKED_SLAB_CACHE: FindingKind = FindingKind::Runner(Runner::LeakedSlabCache);
    pub const USE_AFTER_UNLOAD: FindingKind = FindingKind::Runner(Runner::UseAfterUnload);
    pub const STEADY_GROWTH: FindingKind = FindingKind::Runner(Runner::SteadyGrowth);
    pub const TAINT: FindingKind = FindingKind::Runner(Runner::Taint);
    pub const CONTROL_NOT_FLAGGED: FindingKind = FindingKind::Runner(Runner::ControlNotFlagged);

    /// Every kind some check produces, for error messages and lookups.
    pub fn known() -> impl Iterator<Item = FindingKind> {
        let dmesg = dmesg::Kind::ALL.into_iter().map(FindingKind::Dmesg);
        let runner = Runner::ALL.into_iter().map(FindingKind::Runner);
        let leaked = Namespace::ALL.into_iter().map(FindingKind::Leaked);
        let faults = Fault::ALL.into_iter().map(FindingKind::Fault);
        dmesg.chain(runner).chain(leaked).chain(faults)
    }

    /// The kind named `name`, if a check produces it (the suite's `expect`).
    pub fn parse_known(name: &str) -> Option<FindingKind> {
        FindingKind::known().find(|k| k.name() == name)
    }

    /// The kind named `name`; a name no check produces is kept as `Other`.
    pub fn parse(name: &str) -> FindingKind {
        FindingKind::parse_known(name).unwrap_or_else(|| FindingKind::Other(name.to_string()))
    }

    /// The name in results.json, JUnit, titles and suite files.
    pub fn name(&self) -> &str {
        match self {
            FindingKind::Dmesg(kind) => kind.name(),
            FindingKind::Runner(kind) => kind.name(),
            FindingKind::Leaked(ns) => ns.leak_kind(),
            FindingKind::Fault(fault) => fault.status().as_str(),
            FindingKind::Other(name) => name,
        }
    }

    /// Kinds that make a test `fail` rather than `dmesg-warn`/`dmesg-fail`.
    pub fn is_test_failure(&self) -> bool {
        matches!(
            self,
            FindingKind::Runner(
                Runner::StepFailed
                    | Runner::UnexpectedSuccess
                    | Runner::SelftestResult
                    | Runner::ControlNotFlagged
            )
        )
    }

    /// The classifier's "this name is taken" kinds, whatever the namespace.
    pub fn is_duplicate(&self) -> bool {
        matches!(
            self,
            FindingKind::Dmesg(
                dmesg::Kind::DebugfsDuplicate
                    | dmesg::Kind::SysfsDuplicate
                    | dmesg::Kind::ProcDuplicate
                    | dmesg::Kind::SysctlDuplicate
                    | dmesg::Kind::KobjectDuplicate
            )
        )
    }
}

impl From<dmesg::Kind> for FindingKind {
    fn from(kind: dmesg::Kind) -> Self {
        FindingKind::Dmesg(kind)
    }
}

/// A kind by name, as [`FindingKind::parse`] reads it.
impl From<&str> for FindingKind {
    fn from(name: &str) -> Self {
        FindingKind::parse(name)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq<str> for FindingKind {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl PartialEq<&str> for FindingKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl Serialize for FindingKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for FindingKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(FindingKind::parse(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_kind_round_trips_through_its_name() {
        let known: Vec<FindingKind> = FindingKind::known().collect();
        assert_eq!(known.len(), 17 + 8 + Namespace::ALL.len() + 4);
        let mut names: Vec<&str> = known.iter().map(FindingKind::name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), known.len(), "two kinds share a name");
        for kind in &known {
            assert_eq!(&FindingKind::parse(kind.name()), kind);
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(&serde_json::from_str::<FindingKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn the_names_stay_the_ones_files_already_hold() {
        for (kind, name) in [
            (
                FindingKind::Dmesg(dmesg::Kind::SysfsDuplicate),
                "sysfs-duplicate",
            ),
            (FindingKind::Dmesg(dmesg::Kind::Kmemleak), "kmemleak"),
            (FindingKind::LEAKED_SLAB_CACHE, "leaked-slab-cache"),
            (
                FindingKind::Leaked(Namespace::Debugfs),
                "leaked-debugfs-entry",
            ),
            (FindingKind::STEP_FAILED, "step-failed"),
            (FindingKind::Fault(Fault::Crash), "crash"),
            (FindingKind::Fault(Fault::Abort), "abort"),
        ] {
            assert_eq!(kind.name(), name);
        }
    }

    #[test]
    fn unknown_names_are_kept_as_written() {
        let kind: FindingKind = serde_json::from_str("\"rcu-expedited-stall\"").unwrap();
        assert_eq!(kind, FindingKind::Other("rcu-expedited-stall".into()));
        assert_eq!(
            serde_json::to_string(&kind).unwrap(),
            "\"rcu-expedited-stall\""
        );
        assert_eq!(FindingKind::parse_known("rcu-expedited-stall"), None);
        assert!(!kind.is_test_failure());
    }
}
