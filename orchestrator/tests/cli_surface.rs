//! The command line as users meet it besides `--help`: shell completions and
//! man pages generated from the same definitions, and `kcycle ci`'s sharding
//! flags refusing bad input before any setup starts.

use assert_cmd::Command;
use predicates::prelude::*;

fn kcycle() -> Command {
    Command::cargo_bin("kcycle").expect("kcycle binary")
}

fn stdout(args: &[&str]) -> String {
    let output = kcycle().args(args).output().unwrap();
    assert!(output.status.success(), "kcycle {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

const SUBCOMMANDS: &[&str] = &["setup", "kernel", "run", "ci", "merge", "report", "dmesg"];

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand() {
    let bash = stdout(&["completions", "bash"]);
    let check = std::process::Command::new("bash")
        .args(["-n", "-c", &bash])
        .status()
        .expect("bash runs");
    assert!(check.success(), "bash rejects the script");
    let zsh = stdout(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef kcycle"), "{zsh:.80}");
    let fish = stdout(&["completions", "fish"]);
    for script in [&bash, &zsh, &fish] {
        for name in SUBCOMMANDS {
            assert!(script.contains(name), "no {name} in a completion script");
        }
    }
    assert!(fish.contains("complete -c kcycle"));
    assert!(bash.contains("--shard") && bash.contains("--suites"));
    kcycle()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bash"));
}

#[test]
fn man_pages_cover_kcycle_and_each_subcommand() {
    let page = stdout(&["man"]);
    assert!(page.contains(".TH kcycle 1"), "{page:.200}");
    assert!(page.contains("Exit codes"), "the after-help is in the page");
    let dir = tempfile::tempdir().unwrap();
    kcycle()
        .args(["man", "--out"])
        .arg(dir.path())
        .assert()
        .success();
    for name in SUBCOMMANDS {
        let file = dir.path().join(format!("kcycle-{name}.1"));
        assert!(file.is_file(), "no {}", file.display());
    }
    let ci = std::fs::read_to_string(dir.path().join("kcycle-ci.1")).unwrap();
    assert!(ci.contains("shard") && ci.contains("suites"), "{ci}");
}

#[test]
fn ci_refuses_a_bad_shard_before_setup() {
    let dir = tempfile::tempdir().unwrap();
    kcycle()
        .current_dir(dir.path())
        .args([
            "--progress",
            "never",
            "ci",
            "--shard",
            "4/3",
            "--suites",
            "x.toml",
        ])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("4/3"))
        .stderr(predicate::str::contains("host packages").not());
}

#[test]
fn ci_without_config_or_suites_names_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    kcycle()
        .current_dir(dir.path())
        .args(["ci"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("kcycle.toml"));
}
