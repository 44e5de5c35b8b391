//! `kcycle bisect` for real: a small out-of-tree module repository made
//! here, whose third commit forgets to remove its debugfs directory on exit.
//! Each step checks the commit out, builds the module against the guest
//! kernel and cycles it in a real guest; the search must name that commit,
//! and the repository must be back on its branch afterwards.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const GOOD_EXIT: &str = "debugfs_remove(dir);";
const BAD_EXIT: &str = "/* the directory stays: nothing removes it */";

fn module_source(exit_body: &str, comment: &str) -> String {
    format!(
        "// {comment}\n\
         #include <linux/module.h>\n\
         #include <linux/debugfs.h>\n\
         static struct dentry *dir;\n\
         static int __init kb_init(void)\n{{\n\tdir = debugfs_create_dir(\"kcycle_bisect\", NULL);\n\treturn 0;\n}}\n\
         static void __exit kb_exit(void)\n{{\n\t{exit_body}\n}}\n\
         module_init(kb_init);\nmodule_exit(kb_exit);\n\
         MODULE_LICENSE(\"GPL\");\nMODULE_DESCRIPTION(\"kcycle bisect test module\");\n"
    )
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=kcycle",
            "-c",
            "user.email=kcycle@example.org",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn commit(dir: &Path, file: &str, text: &str, message: &str) -> String {
    std::fs::write(dir.join(file), text).unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A module repository: good, good, the leaking commit, bad. Returns (dir, first, leaking, last).
fn repository(root: &Path) -> (std::path::PathBuf, String, String, String) {
    let dir = root.join("kcycle_bisect");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(dir.join("Kbuild"), "obj-m += kcycle_bisect.o\n").unwrap();
    let first = commit(
        &dir,
        "kcycle_bisect.c",
        &module_source(GOOD_EXIT, "v1"),
        "add kcycle_bisect",
    );
    commit(
        &dir,
        "README",
        "A module for kcycle's bisect test.\n",
        "add a README",
    );
    let leaking = commit(
        &dir,
        "kcycle_bisect.c",
        &module_source(BAD_EXIT, "v1"),
        "exit: drop the debugfs removal",
    );
    let last = commit(
        &dir,
        "kcycle_bisect.c",
        &module_source(BAD_EXIT, "v2"),
        "comment",
    );
    (dir, first, leaking, last)
}

#[test]
fn bisect_names_the_commit_that_left_a_debugfs_directory_behind() {
    let Some(kernel) = support::kernel() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (repo, first, leaking, last) = repository(tmp.path());
    let results = tmp.path().join("bisect");
    let output = support::kcycle(tmp.path(), &kernel)
        .args([
            "--progress=never",
            "bisect",
            "--good",
            &first,
            "--bad",
            &last,
        ])
        .arg("--source")
        .arg(&repo)
        .args(["--cycle", ".", "--cycles", "1", "--runs", "1"])
        .args(["--finding", "*kcycle_bisect*"])
        .arg("--results")
        .arg(&results)
        .timeout(Duration::from_secs(1200))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let short = &leaking[..7];
    assert!(
        stdout.contains(&format!("first bad commit: {short}"))
            && stdout.contains("drop the debugfs removal"),
        "{stdout}\n{stderr}"
    );
    // The evidence names the leftover, from the bad step's own results.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("kcycle_bisect") && l.contains('[')),
        "{stdout}"
    );
    // The bad end, then two steps of log2(3): three runs, each with its results.
    let log = std::fs::read_to_string(results.join("bisect.md")).unwrap();
    assert_eq!(
        log.matches("| bad |").count() + log.matches("| good |").count(),
        3,
        "{log}"
    );
    assert!(
        log.contains(&format!("First bad commit: `{short}")),
        "{log}"
    );
    let steps = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("step-"))
        .filter(|e| e.path().join("results.json").is_file())
        .count();
    assert_eq!(steps, 3, "{log}");
    // The repository is back on its branch, unchanged.
    assert_eq!(git(&repo, &["symbolic-ref", "--short", "HEAD"]), "main");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert!(support::qemus_mentioning(&tmp.path().to_string_lossy()).is_empty());
}
