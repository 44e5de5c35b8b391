//! The classifier against the project's own fixtures of real kernel text
//! (`tests/fixtures/dmesg`, sources in its README.md): the first finding of
//! each log matches `EXPECTED.tsv`, and every finding's title is pinned by
//! an insta snapshot so that any change of a title shows up in review.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kcycle::dmesg::classify_bytes;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dmesg")
}

/// The fixture logs of the top folder, sorted (the `own/` subfolder holds
/// logs of this project's guest and has its own expectations).
fn fixture_logs() -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("read fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// Check every row of `dir/EXPECTED.tsv` (`file<TAB>kind<TAB>title`, a
/// header line first; kind `clean` for no finding) against the classifier.
fn check_expected(dir: &Path) -> Vec<String> {
    let expected = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    let mut wrong = Vec::new();
    for row in expected.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut fields = row.split('\t');
        let file = fields.next().unwrap_or_default();
        let kind = fields.next().unwrap_or_default();
        let title = fields.next().unwrap_or_default();
        let bytes = std::fs::read(dir.join(file)).expect("fixture listed in EXPECTED.tsv");
        let got = classify_bytes(&bytes)
            .first()
            .map(|f| (f.kind.name().to_string(), f.title.clone()));
        let want = (kind != "clean").then(|| (kind.to_string(), title.to_string()));
        if got != want {
            wrong.push(format!("{file}: want {want:?}, got {got:?}"));
        }
    }
    wrong
}

#[test]
fn first_finding_of_every_fixture_matches_expected() {
    let listed = std::fs::read_to_string(fixtures().join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    for log in fixture_logs() {
        let name = log.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(
            listed.lines().any(|l| l.split('\t').next() == Some(name)),
            "{name} is not in EXPECTED.tsv"
        );
    }
    let wrong = check_expected(&fixtures());
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Logs of this project's own guest runs, when `own/EXPECTED.tsv` lists them.
#[test]
fn first_finding_of_every_own_guest_log_matches_expected() {
    let own = fixtures().join("own");
    if !own.join("EXPECTED.tsv").is_file() {
        eprintln!("no own/EXPECTED.tsv yet: nothing to check");
        return;
    }
    let wrong = check_expected(&own);
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn titles_of_all_fixtures() {
    let mut listing = String::new();
    for log in fixture_logs() {
        let name = log.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let bytes = std::fs::read(&log).expect("read fixture");
        for f in classify_bytes(&bytes) {
            writeln!(
                listing,
                "{name}:{}: {} {}: {}",
                f.line, f.kind, f.severity, f.title
            )
            .expect("write to string");
        }
    }
    insta::assert_snapshot!(listing);
}

#[test]
fn fixtures_readme_cites_every_fixture() {
    let readme = std::fs::read_to_string(fixtures().join("README.md")).expect("README.md");
    for log in fixture_logs() {
        let name = log.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(readme.contains(name), "README.md does not cite {name}");
    }
}
