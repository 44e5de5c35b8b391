//! What the benchmark reads back from the tools it timed (pure).

/// `kcycle exec`'s "kcycle: guest 6.12.117 ready in 12.3 s (console: …)": the
/// boot to a working SSH login, as kcycle measured it.
pub fn exec_ready_seconds(stderr: &str) -> Option<f64> {
    stderr.lines().find_map(|line| {
        let rest = line.strip_prefix("kcycle: guest ")?;
        let (_, after) = rest.split_once(" ready in ")?;
        after.split_whitespace().next()?.parse().ok()
    })
}

/// A `/proc/<pid>/status` field in KiB, e.g. `VmHWM: 21872 kB`.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// User plus system CPU in clock ticks from a `/proc/<pid>/stat` line
/// (fields 14 and 15; the command name in parentheses may hold blanks).
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// One test of an IGT-style results.json: (result, seconds from start to end).
pub fn test_time(results_json: &str, test: &str) -> Result<(String, f64), String> {
    let value: serde_json::Value =
        serde_json::from_str(results_json).map_err(|e| format!("results.json: {e}"))?;
    let entry = value
        .get("tests")
        .and_then(|t| t.get(test))
        .ok_or_else(|| format!("results.json has no test `{test}`"))?;
    let result = entry
        .get("result")
        .and_then(|r| r.as_str())
        .unwrap_or("?")
        .to_string();
    let time = |k: &str| {
        entry
            .get("time")
            .and_then(|t| t.get(k))
            .and_then(|v| v.as_f64())
    };
    match (time("start"), time("end")) {
        (Some(start), Some(end)) => Ok((result, end - start)),
        _ => Err(format!("results.json: `{test}` has no time.start/end")),
    }
}

/// The last `n` non-empty lines, for a failure's message.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// kcycle run's stderr from the test's result line (`[1/1] …`) to the summary
/// (`# kcycle: …`): the status and its findings; else the whole stderr's tail.
pub fn test_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    match lines.iter().position(|l| l.starts_with("[1/")) {
        Some(start) => lines[start..]
            .iter()
            .take_while(|l| !l.starts_with("# kcycle:"))
            .take(20)
            .copied()
            .collect::<Vec<_>>()
            .join("\n"),
        None => tail(stderr, 8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        let stderr = "kcycle: accel tcg (forced)\nkcycle: guest 6.12.117 ready in 12.3 s (console: /tmp/x)\n";
        assert_eq!(exec_ready_seconds(stderr), Some(12.3));
        assert_eq!(exec_ready_seconds("kcycle: accel tcg\n"), None);
    }

    #[test]
    fn proc_status() {
        let status = "Name:\tkcycle\nVmHWM:\t   21872 kB\nVmRSS:\t   20000 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(21872));
        assert_eq!(status_kib(status, "VmRSS"), Some(20000));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn proc_stat_cpu() {
        // A real line (from `cat /proc/self/stat`), its name given a blank and a `)`.
        let stat = "4242 (kcy cle)) S 1 4242 4242 0 -1 4194560 120 0 0 0 37 5 0 0 20 0 1 0 100 1000 200 18446744073709551615";
        assert_eq!(stat_cpu_ticks(stat), Some(42));
        assert_eq!(stat_cpu_ticks("4242 (kcycle) S 1"), None);
    }

    #[test]
    fn results_json() {
        let json = r#"{"tests": {"kcycle@bench@cycle": {"result": "pass", "time": {"start": 10.5, "end": 20.0}}}}"#;
        assert_eq!(
            test_time(json, "kcycle@bench@cycle").unwrap(),
            ("pass".to_string(), 9.5)
        );
        assert!(test_time(json, "kcycle@bench@other")
            .unwrap_err()
            .contains("no test `kcycle@bench@other`"));
        assert!(test_time("{", "x")
            .unwrap_err()
            .starts_with("results.json:"));
    }

    #[test]
    fn the_test_lines_of_a_run() {
        let stderr = "guest 0: booting\n[1/1] kcycle@bench@cycle timeout 102.1s\n  step 3 timed out\n# kcycle: failed\n| status |\n";
        assert_eq!(
            test_lines(stderr),
            "[1/1] kcycle@bench@cycle timeout 102.1s\n  step 3 timed out"
        );
        assert_eq!(test_lines("a\nb\n"), "a\nb");
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}

/// A sweep's points in results.json: how many subtests of `test` are sweep
/// points, and how many times its output says the guest was restarted.
pub fn sweep_points(results_json: &str, test: &str) -> Result<(usize, usize), String> {
    let value: serde_json::Value =
        serde_json::from_str(results_json).map_err(|e| format!("results.json: {e}"))?;
    let tests = value
        .get("tests")
        .and_then(|t| t.as_object())
        .ok_or("results.json has no tests")?;
    let prefix = format!("{test}@sweep@");
    let points = tests.keys().filter(|k| k.starts_with(&prefix)).count();
    let restarts = tests
        .get(test)
        .and_then(|t| t.get("out"))
        .and_then(|o| o.as_str())
        .map_or(0, |out| out.matches("# restart the guest").count());
    Ok((points, restarts))
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    #[test]
    fn counts_the_points_of_one_sweep_and_its_restarts() {
        let json = r##"{"tests": {
            "k@c@m-sweep": {"out": "x\n# restart the guest: sweep point fail-nth-3 left it unfit\n"},
            "k@c@m-sweep@sweep@fail-nth-1": {}, "k@c@m-sweep@sweep@fail-nth-2": {},
            "k@c@other@sweep@fail-nth-1": {}, "k@c@m": {}}}"##;
        assert_eq!(sweep_points(json, "k@c@m-sweep"), Ok((2, 1)));
        assert!(sweep_points("{", "x").is_err());
    }
}
