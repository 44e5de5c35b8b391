//! Kernel taint: the bits of /proc/sys/kernel/tainted with their names
//! (include/linux/panic.h and kernel/panic.c in 6.12).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaintFlag {
    ProprietaryModule,
    ForcedModule,
    CpuOutOfSpec,
    ForcedRmmod,
    MachineCheck,
    BadPage,
    User,
    Die,
    OverriddenAcpiTable,
    Warn,
    Crap,
    FirmwareWorkaround,
    OotModule,
    UnsignedModule,
    Softlockup,
    Livepatch,
    Aux,
    Randstruct,
    Test,
}

impl TaintFlag {
    /// In bit order: `ALL[i]` is bit `i`.
    pub const ALL: [TaintFlag; 19] = [
        TaintFlag::ProprietaryModule,
        TaintFlag::ForcedModule,
        TaintFlag::CpuOutOfSpec,
        TaintFlag::ForcedRmmod,
        TaintFlag::MachineCheck,
        TaintFlag::BadPage,
        TaintFlag::User,
        TaintFlag::Die,
        TaintFlag::OverriddenAcpiTable,
        TaintFlag::Warn,
        TaintFlag::Crap,
        TaintFlag::FirmwareWorkaround,
        TaintFlag::OotModule,
        TaintFlag::UnsignedModule,
        TaintFlag::Softlockup,
        TaintFlag::Livepatch,
        TaintFlag::Aux,
        TaintFlag::Randstruct,
        TaintFlag::Test,
    ];

    pub fn bit(self) -> u32 {
        self as u32
    }

    /// The letter the kernel prints in `Tainted: G        W  O`.
    pub fn letter(self) -> char {
        b"PFSRMBUDAWCIOELKXTN"[self as usize] as char
    }

    /// The kernel's name without the `TAINT_` prefix.
    pub fn name(self) -> &'static str {
        [
            "PROPRIETARY_MODULE",
            "FORCED_MODULE",
            "CPU_OUT_OF_SPEC",
            "FORCED_RMMOD",
            "MACHINE_CHECK",
            "BAD_PAGE",
            "USER",
            "DIE",
            "OVERRIDDEN_ACPI_TABLE",
            "WARN",
            "CRAP",
            "FIRMWARE_WORKAROUND",
            "OOT_MODULE",
            "UNSIGNED_MODULE",
            "SOFTLOCKUP",
            "LIVEPATCH",
            "AUX",
            "RANDSTRUCT",
            "TEST",
        ][self as usize]
    }

    /// Bits after which the kernel cannot be trusted for the next test
    /// (IGT's abort-on-taint set): restart the guest.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            TaintFlag::Warn | TaintFlag::Die | TaintFlag::BadPage | TaintFlag::MachineCheck
        )
    }

    /// Bits a test run sets on purpose and that say nothing about the driver:
    /// "dangerous" selftest parameters taint USER, out-of-tree and test
    /// modules taint OOT_MODULE/TEST, unsigned modules UNSIGNED_MODULE.
    pub fn is_expected(self) -> bool {
        matches!(
            self,
            TaintFlag::User | TaintFlag::OotModule | TaintFlag::Test | TaintFlag::UnsignedModule
        )
    }
}

impl fmt::Display for TaintFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TAINT_{} ({})", self.name(), self.letter())
    }
}

/// The taint mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taint(pub u64);

impl Taint {
    /// Parse the decimal mask from /proc/sys/kernel/tainted.
    pub fn parse(text: &str) -> Option<Taint> {
        text.trim().parse().ok().map(Taint)
    }

    pub fn flags(self) -> Vec<TaintFlag> {
        TaintFlag::ALL
            .into_iter()
            .filter(|f| self.0 & (1 << f.bit()) != 0)
            .collect()
    }

    /// Flags set now that were not set in `before`.
    pub fn new_since(self, before: Taint) -> Vec<TaintFlag> {
        Taint(self.0 & !before.0).flags()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_letters_and_new_bits() {
        let before = Taint::parse("64\n").unwrap();
        let after = Taint(64 | 512 | 4096);
        assert_eq!(
            after.new_since(before),
            [TaintFlag::Warn, TaintFlag::OotModule]
        );
        assert_eq!(TaintFlag::Warn.to_string(), "TAINT_WARN (W)");
        assert!(TaintFlag::Warn.is_fatal() && !TaintFlag::Warn.is_expected());
        assert!(TaintFlag::User.is_expected() && !TaintFlag::User.is_fatal());
        assert_eq!(TaintFlag::Test.letter(), 'N');
        assert_eq!(Taint::parse("x"), None);
        for (i, flag) in TaintFlag::ALL.iter().enumerate() {
            assert_eq!(flag.bit() as usize, i);
        }
    }
}
