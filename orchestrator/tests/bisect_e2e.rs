//! `kcycle bisect` for real: a small out-of-tree module repository made
//! here, whose third commit forgets to remove its debugfs directory on exit.
//! Each step checks the commit out, builds the module against the guest
//! kernel and cycles it in a real guest; the search must name that commit,
//! and the repository must be back on its branch afterwards. The steps'
//! real results then feed `kcycle compare` and `kcycle baseline update`.
//! A commit whose module does not build is skipped (125), before any boot.

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

    // The good step against the bad one: a possible regression, with the leftover.
    let step = |verdict: &str| -> Vec<std::path::PathBuf> {
        log.lines()
            .filter(|l| l.contains(&format!("| {verdict} |")))
            .filter_map(|l| l.rsplit('|').nth(1))
            .map(|dir| results.join(dir.trim()))
            .collect()
    };
    let (good, bad) = (step("good"), step("bad"));
    assert_eq!((good.len(), bad.len()), (1, 2), "{log}");
    let compare = support::kcycle(tmp.path(), &kernel)
        .arg("compare")
        .arg(&good[0])
        .arg(&bad[0])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&compare.stdout);
    assert_eq!(compare.status.code(), Some(1), "{text}");
    assert!(
        text.contains("Possible regressions") && text.contains("kcycle_bisect"),
        "{text}"
    );
    // Both bad runs found it: a known issue, not a flake.
    let known = tmp.path().join("known-issues.toml");
    let baseline = support::kcycle(tmp.path(), &kernel)
        .args(["baseline", "update"])
        .args(&bad)
        .arg("--file")
        .arg(&known)
        .output()
        .unwrap();
    assert!(baseline.status.success(), "{baseline:?}");
    let file = std::fs::read_to_string(&known).unwrap();
    assert!(
        file.contains("[[known_issue]]") && file.contains("kcycle_bisect"),
        "{file}"
    );
    assert!(!file.contains("[[flake]]"), "{file}");
    // The repository is back on its branch, unchanged.
    assert_eq!(git(&repo, &["symbolic-ref", "--short", "HEAD"]), "main");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert!(support::qemus_mentioning(&tmp.path().to_string_lossy()).is_empty());
}

#[test]
fn a_commit_whose_module_does_not_build_is_skipped() {
    let Some(kernel) = support::kernel() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("broken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Kbuild"), "obj-m += broken.o\n").unwrap();
    std::fs::write(
        dir.join("broken.c"),
        "#include <linux/module.h>\nthis does not compile;\n",
    )
    .unwrap();
    let output = support::kcycle(tmp.path(), &kernel)
        .args(["--progress=never", "cycle"])
        .arg(&dir)
        .args(["--bisect", "--finding", "*broken*", "--results"])
        .arg(tmp.path().join("results"))
        .timeout(Duration::from_secs(600))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("error:") && stderr.contains("skip"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("booting"),
        "no guest for a module that does not build: {stderr}"
    );
}
