//! Waiting for a condition with a deadline and a cancel token: the one
//! poll loop, so every wait stops for the same reasons in the same way.

use std::time::{Duration, Instant};

use super::cancel::Cancel;

/// Why a wait ended without its condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    TimedOut,
    /// The token was cancelled, with its reason (e.g. "SIGTERM").
    Cancelled(&'static str),
}

/// Call `check` every `every` until it returns `Some`, `deadline` passes or
/// `cancel` fires. `check` runs at least once, also after a deadline in the past.
pub fn poll<T>(
    deadline: Instant,
    cancel: Option<&Cancel>,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, Stop> {
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if let Some(reason) = cancel.and_then(Cancel::reason) {
            return Err(Stop::Cancelled(reason));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Stop::TimedOut);
        }
        let nap = every.min(left);
        match cancel {
            Some(cancel) => {
                cancel.sleep(nap);
            }
            None => std::thread::sleep(nap),
        }
    }
}

/// [`poll`] for `timeout` from now.
pub fn poll_for<T>(
    timeout: Duration,
    cancel: Option<&Cancel>,
    every: Duration,
    check: impl FnMut() -> Option<T>,
) -> Result<T, Stop> {
    poll(Instant::now() + timeout, cancel, every, check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_value_times_out_or_stops_on_cancel() {
        let mut calls = 0;
        let found = poll_for(
            Duration::from_secs(5),
            None,
            Duration::from_millis(1),
            || {
                calls += 1;
                (calls == 3).then_some(calls)
            },
        );
        assert_eq!(found, Ok(3));

        let started = Instant::now();
        let never = poll_for(
            Duration::from_millis(30),
            None,
            Duration::from_millis(5),
            || None::<()>,
        );
        assert_eq!(never, Err(Stop::TimedOut));
        assert!(started.elapsed() >= Duration::from_millis(30));

        let token = Cancel::new();
        let canceller = {
            let token = token.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                token.cancel("SIGHUP");
            })
        };
        let started = Instant::now();
        let stopped = poll_for(
            Duration::from_secs(30),
            Some(&token),
            Duration::from_secs(10),
            || None::<()>,
        );
        canceller.join().unwrap();
        assert_eq!(stopped, Err(Stop::Cancelled("SIGHUP")));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken, not slept out"
        );
    }
}
