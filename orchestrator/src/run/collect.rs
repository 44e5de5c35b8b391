//! The collect: what the runner reads from the guest after every step (the
//! kernel log since the last read, a ledger snapshot, and after a load the
//! module's section addresses), as one guest command, alone or appended to
//! the step's own command so that a step costs one SSH round trip. Pure:
//! commands out, text in.

use super::ledger;
use crate::snapshot::{self, SlabCounts};

/// Ends the step's own output in a merged command's stdout; its exit
/// status follows on the same line.
pub const STEP_MARK: &str = "@@kcycle-step-status";
/// Marks the end of the kernel log.
pub const SNAPSHOT_MARK: &str = snapshot::klog::LOG_END;
/// Starts a loaded module's section addresses.
pub const SECTIONS_MARK: &str = "@@kcycle-sections";

/// The collect alone; with `loaded`, also that module's sections.
pub fn command(loaded: Option<&str>, counts: SlabCounts) -> String {
    let mut shell = snapshot::with_log_command(counts);
    if let Some(module) = loaded {
        shell.push_str(&format!(
            "; echo {SECTIONS_MARK}; {}",
            ledger::sections_command(module)
        ));
    }
    shell
}

/// `step` then the collect, in one command. The step runs in a subshell (an
/// `exit` in it ends only the step, as when it ran alone); its status is
/// printed after [`STEP_MARK`] and is the command's exit status. `loads`
/// names the module a successful step loaded: its sections are read only
/// when the step succeeded. The collect's own stderr is dropped, as a
/// separate collect's is.
pub fn after(step: &str, loads: Option<&str>, counts: SlabCounts) -> String {
    let sections = loads
        .map(|module| {
            format!(
                "; if [ $kcycle_rc -eq 0 ]; then echo {SECTIONS_MARK}; {}; fi",
                ledger::sections_command(module)
            )
        })
        .unwrap_or_default();
    format!(
        "(\n{step}\n); kcycle_rc=$?; printf '\\n{STEP_MARK} %d\\n' $kcycle_rc; \
         {{ {}{sections}; }} 2>/dev/null; exit $kcycle_rc",
        snapshot::with_log_command(counts)
    )
}

/// The step inside a command of [`after`], for a fake guest that runs the
/// two parts itself.
pub fn split_after(command: &str) -> Option<(&str, &str)> {
    let rest = command.strip_prefix("(\n")?;
    let (step, tail) = rest.split_once("\n); kcycle_rc=$?; ")?;
    Some((step, tail))
}

/// A merged command's stdout: the step's own stdout, its status, and the
/// collect's output. `None` when the mark is missing (the shell died before
/// it printed it).
pub fn split_output(stdout: &str) -> Option<(&str, i32, &str)> {
    let mark = format!("\n{STEP_MARK} ");
    let at = stdout.find(&mark)?;
    let (step, rest) = (&stdout[..at], &stdout[at + mark.len()..]);
    let (status, collected) = rest.split_once('\n').unwrap_or((rest, ""));
    Some((step, status.trim().parse().ok()?, collected))
}

/// A collect's output: the kernel log, the snapshot's text, the sections' text.
pub fn parts(stdout: &str) -> (&str, &str, &str) {
    let (log, rest) = stdout
        .split_once(&format!("{SNAPSHOT_MARK}\n"))
        .unwrap_or((stdout, ""));
    let (snap, sections) = rest
        .split_once(&format!("{SECTIONS_MARK}\n"))
        .unwrap_or((rest, ""));
    (log, snap, sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_command_runs_the_step_in_a_subshell_then_the_collect() {
        let merged = after("modprobe 'drv'\nexit 3", Some("drv"), SlabCounts::Listed);
        assert!(
            merged.starts_with("(\nmodprobe 'drv'\nexit 3\n); kcycle_rc=$?;"),
            "{merged}"
        );
        assert!(merged.ends_with("exit $kcycle_rc"), "{merged}");
        assert!(merged.contains("if [ $kcycle_rc -eq 0 ]; then echo @@kcycle-sections;"));
        assert!(merged.contains("/sys/module/drv/sections/"));
        assert_eq!(
            split_after(&merged),
            Some((
                "modprobe 'drv'\nexit 3",
                merged.split_once("\n); kcycle_rc=$?; ").unwrap().1
            ))
        );
        let unload = after("modprobe -r 'drv'", None, SlabCounts::Exact);
        assert!(!unload.contains(SECTIONS_MARK));
        assert!(
            unload.contains("/bin/kcycle-snapshot --exact-slabs --take-log;"),
            "{unload}"
        );
        assert_eq!(split_after(&command(None, SlabCounts::Listed)), None);
    }

    #[test]
    fn merged_output_splits_at_the_mark_keeping_the_steps_own_last_newline() {
        let out = "loaded\n\n@@kcycle-step-status 0\n[ 1.0] drv: hi\n@@kcycle-snapshot\n@@slab\n";
        let (step, status, collected) = split_output(out).unwrap();
        assert_eq!((step, status), ("loaded\n", 0));
        assert_eq!(parts(collected), ("[ 1.0] drv: hi\n", "@@slab\n", ""));

        // No output and a failure: the printf's own newline is not the step's.
        let (step, status, _) =
            split_output("\n@@kcycle-step-status 1\n@@kcycle-snapshot\n").unwrap();
        assert_eq!((step, status), ("", 1));
        assert_eq!(split_output("the shell died\n"), None);
    }

    #[test]
    fn a_collect_splits_into_log_snapshot_and_sections() {
        let out = "[ 1.0] a\n@@kcycle-snapshot\n@@taint\n0\n@@kcycle-sections\n/sys/x 0x1\n";
        assert_eq!(parts(out), ("[ 1.0] a\n", "@@taint\n0\n", "/sys/x 0x1\n"));
        assert_eq!(parts("only a log\n"), ("only a log\n", "", ""));
    }
}
