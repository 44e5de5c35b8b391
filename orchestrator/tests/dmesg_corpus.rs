//! The classifier against the shared corpus of real kernel logs
//! (`../shared/corpus/dmesg`, syzkaller test data): the first finding of each
//! log must have the kind and title `EXPECTED.tsv` gives; `clean` logs must
//! have none.

use std::path::{Path, PathBuf};

use kcycle::dmesg::{classify_bytes, Kind};

/// `shared/corpus/dmesg` beside the checkout, found from any worktree depth
/// (`/work/main/orchestrator` and `/work/wt/<branch>/orchestrator` alike).
fn corpus_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|a| a.join("shared/corpus/dmesg"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| manifest.join("../../shared/corpus/dmesg"))
}

/// The corpus lives outside the repository; without it there is nothing to
/// check, which is a failure in CI and a notice elsewhere.
fn corpus_or_skip() -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.join("EXPECTED.tsv").is_file() {
        return Some(dir);
    }
    let message = format!("shared dmesg corpus not found at {}", dir.display());
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("skipping: {message}");
    None
}

#[test]
fn first_finding_of_every_corpus_log_matches_expected() {
    let Some(dir) = corpus_or_skip() else { return };
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("read EXPECTED.tsv");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for row in expected.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = row.split('\t').collect();
        let (file, class, title) = (fields[0], fields[1], fields.get(2).copied().unwrap_or(""));
        let bytes = std::fs::read(dir.join(file)).expect("read corpus log");
        let findings = classify_bytes(&bytes);
        let got = findings
            .first()
            .map(|f| (f.kind.name().to_string(), f.title.clone()));
        let want = (class != "clean").then(|| (class.to_string(), title.to_string()));
        if got != want {
            wrong.push(format!("{file}: want {want:?}, got {got:?}"));
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} corpus logs checked");
    assert!(
        wrong.is_empty(),
        "{} of {checked} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_kind_name_in_the_corpus_is_a_kind() {
    let Some(dir) = corpus_or_skip() else { return };
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("read EXPECTED.tsv");
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    for row in expected.lines().skip(1) {
        let class = row.split('\t').nth(1).unwrap_or("");
        assert!(
            class == "clean" || names.contains(&class),
            "unknown kind {class}"
        );
    }
}

/// A transport's name and how it prefixes a line.
type Transport = (&'static str, fn(&str) -> String);

/// The same real logs, as syslog, journalctl and `/dev/kmsg` readers would
/// have stored them: the first finding must not change.
#[test]
fn first_finding_survives_every_transport_prefix() {
    let Some(dir) = corpus_or_skip() else { return };
    let transports: [Transport; 6] = [
        ("syslog", |l| format!("Jun  2 06:00:57 host kernel: {l}")),
        ("journal", |l| format!("06:00:57 kernel: {l}")),
        ("rsyslog", |l| {
            format!("2024-06-02T06:00:57.123+00:00 host kernel: {l}")
        }),
        ("kmsg level", |l| format!("<4>{l}")),
        ("dmesg -x", |l| format!("kern  :warn  : {l}")),
        ("dmesg iso", |l| {
            format!("2024-06-02T06:00:57,123456+00:00 {l}")
        }),
    ];
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .expect("read corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut wrong = Vec::new();
    for path in &logs {
        let text = String::from_utf8_lossy(&std::fs::read(path).expect("read log")).into_owned();
        let first = |t: &str| {
            kcycle::dmesg::classify(t)
                .first()
                .map(|f| (f.kind, f.title.clone()))
        };
        let want = first(&text);
        for (name, prefix) in transports {
            let prefixed: String = text.lines().map(|l| prefix(l) + "\n").collect();
            let got = first(&prefixed);
            if got != want {
                let file = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                wrong.push(format!("{file} as {name}: want {want:?}, got {got:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
