//! What a kernel build tells its caller while it runs. The library only
//! emits these; the CLI draws them (a spinner, or plain lines in CI logs).

/// One step of a build's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// A new phase, e.g. `configure (make olddefconfig)`.
    Phase(String),
    /// The current make stage changed (from kbuild's output).
    Stage(String),
    /// About every 100 ms while a command runs, for heartbeats.
    Tick,
    /// A message that must stay visible: warnings, the log's path, the result.
    Note(String),
}

impl std::fmt::Display for BuildEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildEvent::Phase(phase) => write!(f, "[{phase}]"),
            BuildEvent::Stage(stage) => write!(f, "  {stage}"),
            BuildEvent::Tick => Ok(()),
            BuildEvent::Note(note) => f.write_str(note),
        }
    }
}
