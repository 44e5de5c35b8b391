//! `kcycle bisect`'s input checks, before any step runs (no kernel, no guest).

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=k", "-c", "user.email=k@example.org"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

fn bisect(args: &[&str]) -> (i32, String) {
    let output = assert_cmd::Command::cargo_bin("kcycle")
        .unwrap()
        .args(["--progress=never", "bisect"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_trees_and_ranges_are_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    let dir = repo.to_str().unwrap();

    let (code, err) = bisect(&["--good", "a", "--bad", "b", "--source", dir, "--cycle", "."]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a git tree"), "{err}");

    git(repo, &["init", "--quiet"]);
    std::fs::write(repo.join("a.c"), "1\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "--quiet", "-m", "one"]);
    git(repo, &["tag", "one"]);
    std::fs::write(repo.join("a.c"), "2\n").unwrap();
    git(repo, &["commit", "--quiet", "-am", "two"]);
    git(repo, &["tag", "two"]);

    // Reversed range: nothing between.
    let (code, err) = bisect(&[
        "--good", "two", "--bad", "one", "--source", dir, "--cycle", ".",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a descendant of two"), "{err}");

    let (code, err) = bisect(&[
        "--good", "one", "--bad", "nope", "--source", dir, "--cycle", ".",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no commit nope"), "{err}");

    // A module repository needs --cycle; suites need a kernel tree.
    let (code, err) = bisect(&["--good", "one", "--bad", "two", "--source", dir, "s.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bisect a module repository with --cycle DIR"),
        "{err}"
    );

    std::fs::write(repo.join("a.c"), "dirty\n").unwrap();
    let (code, err) = bisect(&[
        "--good", "one", "--bad", "two", "--source", dir, "--cycle", ".",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("commit or stash them first") && err.contains("a.c"),
        "{err}"
    );
}
