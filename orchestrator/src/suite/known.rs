//! Known issues that age (pure): which kernels an entry is for, when it
//! expires, and what a run says about it (it matched nothing: an unexpected
//! pass; it is past its date: a warning).

use std::fmt;
use std::str::FromStr;

use super::{glob_matches, KnownIssue};
use crate::outcome::TestResult;

/// A calendar date, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
    pub fn from_unix_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// Today, in UTC.
    pub fn today() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Date::from_unix_days((secs / 86_400) as i64)
    }
}

impl FromStr for Date {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a date like 2026-12-31");
        let mut parts = s.trim().splitn(3, '-');
        let mut next = || parts.next().ok_or_else(bad);
        let (year, month, day) = (next()?, next()?, next()?);
        let date = Date {
            year: year.parse().map_err(|_| bad())?,
            month: month.parse().map_err(|_| bad())?,
            day: day.parse().map_err(|_| bad())?,
        };
        if year.len() != 4 || !(1..=12).contains(&date.month) || !(1..=31).contains(&date.day) {
            return Err(bad());
        }
        Ok(date)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Which kernels an entry is for: comma-separated comparisons
/// (`>=6.12, <6.13`), or one version that releases start with (`6.12`
/// covers 6.12.117; `=6.12` means exactly 6.12.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRange {
    text: String,
    bounds: Vec<(Op, Vec<u64>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Prefix,
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The dotted numbers a kernel release starts with: `6.12.117-kcycle+` is 6.12.117.
fn version(text: &str) -> Option<Vec<u64>> {
    let numeric: &str = text
        .trim()
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let parts: Vec<u64> = numeric
        .split('.')
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (!parts.is_empty()).then_some(parts)
}

fn cmp_versions(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let len = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..len)
        .map(|i| at(a, i).cmp(&at(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

impl FromStr for KernelRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bounds = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .iter()
            .find_map(|(sym, op)| part.strip_prefix(sym).map(|rest| (*op, rest)))
            .unwrap_or((Op::Prefix, part));
            let rest = rest.trim();
            match version(rest) {
                Some(v) if rest.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                    bounds.push((op, v))
                }
                _ => {
                    return Err(format!(
                        "{part:?} is not a kernel version comparison like \">=6.12, <6.13\" or \"6.12\""
                    ))
                }
            }
        }
        Ok(KernelRange {
            text: s.trim().to_string(),
            bounds,
        })
    }
}

impl KernelRange {
    /// Whether a kernel release (`uname -r`) is in the range. A release
    /// that is not a version (unknown) is in every range.
    pub fn contains(&self, release: &str) -> bool {
        let Some(release) = version(release) else {
            return true;
        };
        self.bounds.iter().all(|(op, bound)| {
            let order = cmp_versions(&release, bound);
            match op {
                Op::Prefix => release.len() >= bound.len() && release[..bound.len()] == bound[..],
                Op::Eq => order.is_eq(),
                Op::Lt => order.is_lt(),
                Op::Le => order.is_le(),
                Op::Gt => order.is_gt(),
                Op::Ge => order.is_ge(),
            }
        })
    }
}

impl fmt::Display for KernelRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl KnownIssue {
    /// Whether this entry covers a finding titled `title` in test `test`.
    pub fn matches(&self, test: &str, title: &str) -> bool {
        self.matches_test(test) && glob_matches(&self.title, title)
    }

    /// Whether this entry is about test `test`.
    pub fn matches_test(&self, test: &str) -> bool {
        glob_matches(&self.test, test)
    }

    /// Whether this entry is for kernel `release` (no `kernel` field: every kernel).
    pub fn applies_to(&self, release: &str) -> bool {
        self.kernel.as_ref().is_none_or(|k| k.contains(release))
    }

    /// How to name the entry in a message.
    pub fn describe(&self) -> String {
        let mut text = format!("test {:?} title {:?}", self.test, self.title);
        if let Some(bug) = &self.bug {
            text.push_str(&format!(" ({bug})"));
        }
        text
    }
}

/// What a run says about a known-issue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The entry's tests ran and none produced its finding: the bug was
    /// fixed, or the entry is stale.
    UnexpectedPass(KnownIssue),
    /// The entry is past its `expires` date.
    Expired(KnownIssue, Date),
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::UnexpectedPass(issue) => write!(
                f,
                "unexpected pass: known issue {} matched nothing in this run (fixed, or a stale entry to remove)",
                issue.describe()
            ),
            Note::Expired(issue, on) => write!(
                f,
                "known issue {} expired on {on}: check whether it still happens and renew or remove it",
                issue.describe()
            ),
        }
    }
}

/// Notes about `issues` after a run on kernel `release`. Entries for other
/// kernels, and entries none of whose tests ran, say nothing; flakes are
/// allowed to match nothing.
pub fn audit(
    issues: &[KnownIssue],
    results: &[TestResult],
    release: &str,
    today: Date,
) -> Vec<Note> {
    let mut notes = Vec::new();
    for issue in issues.iter().filter(|i| i.applies_to(release)) {
        if let Some(expires) = issue.expires.filter(|e| *e < today) {
            notes.push(Note::Expired(issue.clone(), expires));
        }
        let ran: Vec<&TestResult> = results
            .iter()
            .filter(|r| {
                !matches!(
                    r.status,
                    crate::status::Status::Skip | crate::status::Status::Notrun
                )
            })
            .filter(|r| issue.matches_test(&r.name))
            .collect();
        let matched = ran
            .iter()
            .any(|r| r.findings.iter().any(|f| issue.matches(&r.name, &f.title)));
        if !issue.flake && !ran.is_empty() && !matched {
            notes.push(Note::UnexpectedPass(issue.clone()));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::outcome::fixtures;
    use crate::status::Status;
    use crate::suite::{parse_known_issues, SuiteSource};

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn dates_parse_print_and_count_from_the_epoch() {
        assert_eq!(date("2026-03-01").to_string(), "2026-03-01");
        assert!(date("2026-02-28") < date("2026-03-01"));
        assert_eq!(Date::from_unix_days(0), date("1970-01-01"));
        assert_eq!(Date::from_unix_days(19_782), date("2024-02-29"));
        assert_eq!(Date::from_unix_days(-1), date("1969-12-31"));
        for bad in ["2026-13-01", "26-01-01", "2026-01", "soon"] {
            assert!(bad.parse::<Date>().is_err(), "{bad}");
        }
    }

    #[test]
    fn kernel_ranges() {
        let range = |s: &str| s.parse::<KernelRange>().unwrap();
        assert!(range("6.12").contains("6.12.117"));
        assert!(range("6.12").contains("6.12.117-kcycle+"));
        assert!(!range("6.12").contains("6.13.1"));
        assert!(!range("6.1").contains("6.12.1"));
        assert!(range(">=6.12, <6.13").contains("6.12.0"));
        assert!(!range(">=6.12, <6.13").contains("6.13"));
        assert!(range("<6.12.118").contains("6.12.117"));
        assert!(range("=6.12").contains("6.12.0") && !range("=6.12").contains("6.12.1"));
        // An unknown release does not drop entries.
        assert!(range("6.12").contains(""));
        assert!(">= six".parse::<KernelRange>().is_err());
        assert!("6.12-rc1".parse::<KernelRange>().is_err());
    }

    fn result(name: &str, status: Status, titles: &[&str]) -> TestResult {
        TestResult {
            status,
            ..fixtures::with_warnings(name, titles)
        }
    }

    const FILE: &str = r#"
[[known_issue]]
test = "kcycle@s@a"
title = "WARNING in foo"
reason = "still happens"
bug = "https://example.invalid/1"
kernel = "6.12"
first_seen = 2026-01-10

[[known_issue]]
test = "kcycle@s@b"
title = "WARNING in bar"
reason = "fixed upstream"
expires = "2026-02-01"

[[known_issue]]
test = "kcycle@s@c"
reason = "for another kernel"
kernel = ">=6.13"

[[known_issue]]
test = "kcycle@other@*"
reason = "its tests did not run"

[[flake]]
test = "kcycle@s@b"
title = "WARNING in sometimes"
reason = "timing"
"#;

    #[test]
    fn known_issue_files_parse_with_their_ageing_fields() {
        let issues = parse_known_issues(SuiteSource::new(Path::new("k.toml"), FILE)).unwrap();
        assert_eq!(issues.len(), 5);
        assert_eq!(issues[0].bug.as_deref(), Some("https://example.invalid/1"));
        assert_eq!(issues[0].first_seen, Some(date("2026-01-10")));
        assert_eq!(issues[1].expires, Some(date("2026-02-01")));
        assert_eq!(issues[3].title, "*");
        assert!(issues[4].flake && !issues[0].flake);
        assert!(!issues[2].applies_to("6.12.117"));

        let bad = |text: &str| {
            parse_known_issues(SuiteSource::new(Path::new("k.toml"), text))
                .unwrap_err()
                .to_string()
        };
        let err = bad("[[known_issue]]\ntest = \"*\"\nreason = \"r\"\nexpires = \"next week\"\n");
        assert!(err.contains("k.toml:1:1"), "{err}");
        let err = bad("[[known_issue]]\ntest = \"*\"\nreason = \"r\"\nkernel = \"six\"\n");
        assert!(err.contains("field `kernel`"), "{err}");
        assert!(bad("[[test]]\nname = \"x\"\n").contains("unknown field"));
    }

    #[test]
    fn audit_reports_unexpected_passes_and_expiry() {
        let issues = parse_known_issues(SuiteSource::new(Path::new("k.toml"), FILE)).unwrap();
        let results = [
            result("kcycle@s@a", Status::DmesgWarn, &["WARNING in foo"]),
            result("kcycle@s@b", Status::Pass, &[]),
            result("kcycle@s@c", Status::Pass, &[]),
        ];
        let notes = audit(&issues, &results, "6.12.117", date("2026-03-01"));
        assert_eq!(
            notes,
            [
                Note::Expired(issues[1].clone(), date("2026-02-01")),
                Note::UnexpectedPass(issues[1].clone()),
            ]
        );
        assert!(notes[1].to_string().starts_with(
            "unexpected pass: known issue test \"kcycle@s@b\" title \"WARNING in bar\" matched nothing"
        ));
        // Before its date it does not warn; on 6.13 the entry for `c` applies
        // and `c` passed, the one for `a` (6.12 only) does not.
        let notes = audit(&issues, &results[1..], "6.13.2", date("2026-01-01"));
        assert_eq!(
            notes,
            [
                Note::UnexpectedPass(issues[1].clone()),
                Note::UnexpectedPass(issues[2].clone()),
            ]
        );
    }
}
