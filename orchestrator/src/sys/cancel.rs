//! The cancel token. One per process is fed by signals ([`Cancel::process`]);
//! tests and callers that want no signal handling make their own
//! ([`Cancel::new`]) and trigger it by hand.
//!
//! The first SIGINT, SIGTERM or SIGHUP cancels the token: waits return,
//! registered hooks run (e.g. killing QEMU so a blocked SSH read ends), and
//! the command winds down, keeping what it measured. A second signal of any
//! of the three takes that signal's default action (kcycle ends at once);
//! children still die with it through their parent-death signal.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    /// Why the token was cancelled: a signal name, or what the caller said.
    reason: Option<&'static str>,
    hooks: Vec<(u64, Hook)>,
    next_hook: u64,
}

struct Inner {
    state: Mutex<State>,
    cond: Condvar,
}

/// A shared "stop now" flag that can also be slept on and hooked into.
#[derive(Clone)]
pub struct Cancel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("reason", &self.reason())
            .finish()
    }
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

/// The signals that cancel the process token, with the names errors use.
const SIGNALS: [(i32, &str); 3] = [
    (libc::SIGINT, "SIGINT (Ctrl-C)"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
];

impl Cancel {
    /// A token only [`Cancel::cancel`] triggers.
    pub fn new() -> Cancel {
        Cancel {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                cond: Condvar::new(),
            }),
        }
    }

    /// The process token: installs the signal handlers on first use and
    /// returns the same token ever after. If the handlers cannot be
    /// installed, signals keep their default action and the token never fires.
    pub fn process() -> Cancel {
        static PROCESS: OnceLock<Cancel> = OnceLock::new();
        PROCESS
            .get_or_init(|| {
                let token = Cancel::new();
                let signals = SIGNALS.map(|(number, _)| number);
                if let Ok(mut iterator) = signal_hook::iterator::Signals::new(signals) {
                    let fed = token.clone();
                    let spawned =
                        std::thread::Builder::new()
                            .name("signals".into())
                            .spawn(move || {
                                for signal in iterator.forever() {
                                    if fed.is_cancelled() {
                                        // The second signal: the default action, at once.
                                        let _ =
                                            signal_hook::low_level::emulate_default_handler(signal);
                                    }
                                    fed.cancel(signal_name(signal));
                                }
                            });
                    drop(spawned);
                }
                token
            })
            .clone()
    }

    /// Cancel with `reason` (a signal name, or e.g. "a deadline"). Runs the
    /// hooks once, on this thread; later calls keep the first reason.
    pub fn cancel(&self, reason: &'static str) {
        let hooks = {
            let mut state = self.lock();
            if state.reason.is_some() {
                return;
            }
            state.reason = Some(reason);
            std::mem::take(&mut state.hooks)
        };
        self.inner.cond.notify_all();
        for (_, hook) in hooks {
            hook();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.reason().is_some()
    }

    /// What cancelled the token, e.g. "SIGTERM".
    pub fn reason(&self) -> Option<&'static str> {
        self.lock().reason
    }

    /// Sleep up to `duration`, waking early on cancel. True if cancelled.
    pub fn sleep(&self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        let mut state = self.lock();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if state.reason.is_some() || left.is_zero() {
                return state.reason.is_some();
            }
            state = self
                .inner
                .cond
                .wait_timeout(state, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Run `hook` when the token is cancelled (now, if it already is), unless
    /// the returned guard is dropped first.
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) -> HookGuard {
        let mut state = self.lock();
        if state.reason.is_some() {
            drop(state);
            hook();
            return HookGuard { token: None, id: 0 };
        }
        let id = state.next_hook;
        state.next_hook += 1;
        state.hooks.push((id, Box::new(hook)));
        HookGuard {
            token: Some(self.clone()),
            id,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn signal_name(signal: i32) -> &'static str {
    SIGNALS
        .iter()
        .find(|(number, _)| *number == signal)
        .map_or("a signal", |(_, name)| name)
}

/// Unregisters a hook on drop.
#[must_use = "the hook is unregistered when the guard is dropped"]
pub struct HookGuard {
    token: Option<Cancel>,
    id: u64,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            token.lock().hooks.retain(|(id, _)| *id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn cancel_wakes_sleepers_and_runs_live_hooks_once() {
        let token = Cancel::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ran);
        let _kept = token.on_cancel(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let dropped = token.on_cancel(|| panic!("a dropped hook must not run"));
        drop(dropped);
        let sleeper = {
            let token = token.clone();
            std::thread::spawn(move || token.sleep(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        token.cancel("SIGTERM");
        token.cancel("SIGINT (Ctrl-C)");
        assert!(sleeper.join().unwrap(), "the sleeper saw the cancel");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(token.reason(), Some("SIGTERM"), "the first reason stays");
        // A hook registered after the cancel runs at once.
        let late = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&late);
        let _guard = token.on_cancel(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(late.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_untouched_token_sleeps_the_whole_time() {
        let token = Cancel::new();
        let started = Instant::now();
        assert!(!token.sleep(Duration::from_millis(30)));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(signal_name(libc::SIGHUP), "SIGHUP");
    }
}
