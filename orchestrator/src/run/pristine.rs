//! (pure) How a guest slot gets a pristine guest for its next test: keep
//! the guest it has, restore the state saved when the guest was first ready,
//! or boot it again.

/// Whether a machine has a saved state to go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// A state saved when the guest was ready, before any test ran.
    Ready,
    /// Restoring is switched off (`--no-restore`) or the machine cannot save.
    Off,
    /// Saving failed or cannot work for this guest: why.
    Unavailable(String),
}

/// What a slot does before its next test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// The guest is fit: use it as it is.
    Keep,
    /// Load the saved state into a new QEMU.
    Restore,
    /// Boot afresh; with the reason no saved state could be used, if one was wanted.
    Reboot { no_state: Option<String> },
}

/// The slot's guest is fit (`unfit` is None) or not, and what it saved.
pub fn renewal<R>(unfit: Option<&R>, saved: &Saved) -> Renewal {
    match (unfit, saved) {
        (None, _) => Renewal::Keep,
        // Every reason to leave a guest is undone by its saved state: a
        // crash or hang (a new QEMU), leftovers, loaded modules, taint.
        (Some(_), Saved::Ready) => Renewal::Restore,
        (Some(_), Saved::Off) => Renewal::Reboot { no_state: None },
        (Some(_), Saved::Unavailable(why)) => Renewal::Reboot {
            no_state: Some(why.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::event::Unfit;
    use crate::status::Status;

    #[test]
    fn a_fit_guest_is_kept_whatever_it_saved() {
        for saved in [Saved::Ready, Saved::Off, Saved::Unavailable("x".into())] {
            assert_eq!(renewal::<Unfit>(None, &saved), Renewal::Keep);
        }
    }

    #[test]
    fn an_unfit_guest_restores_when_it_can_and_says_why_not() {
        let unfit = [
            Unfit::Fault(Status::Crash),
            Unfit::Fault(Status::Timeout),
            Unfit::Leftover("/proc/kcycle_leaks".into()),
            Unfit::ModuleLoaded("drv".into()),
            Unfit::Tainted(vec!["W".into()]),
        ];
        for why in &unfit {
            assert_eq!(renewal(Some(why), &Saved::Ready), Renewal::Restore);
            assert_eq!(
                renewal(Some(why), &Saved::Off),
                Renewal::Reboot { no_state: None }
            );
            assert_eq!(
                renewal(Some(why), &Saved::Unavailable("QEMU refused".into())),
                Renewal::Reboot {
                    no_state: Some("QEMU refused".into())
                }
            );
        }
    }
}
