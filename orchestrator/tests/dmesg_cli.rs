//! `kcycle dmesg` as a user runs it: the real binary on real fixture logs.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dmesg")
        .join(name)
}

fn kcycle() -> Command {
    Command::cargo_bin("kcycle").expect("kcycle binary")
}

const LEAK: &str = "syzbot-9p-slab-leak-warn-5.17.log";
const CLEAN: &str = "igt-ci-fifo-underrun-clean.log";

#[test]
fn json_prints_one_object_per_file_and_exits_1_on_findings() {
    let output = kcycle()
        .args(["dmesg", "--json"])
        .arg(fixture(LEAK))
        .arg(fixture(CLEAN))
        .output()
        .expect("run kcycle");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    let records: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(records.len(), 2);

    let leak = &records[0];
    assert!(leak["file"].as_str().expect("file").ends_with(LEAK));
    let findings = leak["findings"].as_array().expect("findings array");
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(f["kind"], "slab-leak");
    assert_eq!(
        f["title"],
        "kmem_cache_destroy 9p-fcall-cache: Slab cache still has objects"
    );
    assert_eq!(f["line"], 1);
    assert_eq!(f["severity"], "fail");
    let report = f["report"].as_str().expect("report");
    assert!(report.contains("WARNING: CPU: 1 PID: 3701 at mm/slab_common.c:502"));
    assert!(report.contains("p9_client_destroy+0x213/0x370"));

    assert!(records[1]["file"].as_str().expect("file").ends_with(CLEAN));
    assert_eq!(records[1]["findings"], Value::Array(vec![]));
}

#[test]
fn nothing_found_exits_0() {
    kcycle()
        .args(["dmesg", "--json"])
        .arg(fixture(CLEAN))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("\"findings\":[]"));
}

#[test]
fn human_listing_is_file_line_kind_title() {
    let path = fixture("ioatdma-debugfs-slab-duplicate-reload.log");
    kcycle()
        .arg("dmesg")
        .arg(&path)
        .assert()
        .code(1)
        .stdout(format!(
            "{}:4: debugfs-duplicate: debugfs: duplicate 'ioat_sed_ent' in 'slab'\n",
            path.display()
        ));
}

#[test]
fn dash_reads_standard_input() {
    let log = std::fs::read(fixture("i915-selftest-dg1-igt-kmsg.log")).expect("fixture");
    let output = kcycle()
        .args(["dmesg", "--json", "-"])
        .write_stdin(log)
        .output()
        .expect("run kcycle");
    assert_eq!(output.status.code(), Some(1));
    let record: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(record["file"], "-");
    assert_eq!(record["findings"][0]["kind"], "selftest-fail");
    assert_eq!(record["findings"][0]["line"], 15);
}

#[test]
fn missing_file_exits_2_naming_it_and_still_classifies_the_others() {
    kcycle()
        .args(["dmesg", "/nonexistent/console.log"])
        .arg(fixture(LEAK))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/console.log"))
        .stdout(predicate::str::contains("slab-leak"));
}

#[test]
fn invalid_utf8_is_read_lossily() {
    let mut log = b"\xff\xfe garbage \x80\n".to_vec();
    log.extend_from_slice(
        b"[ 1.0] debugfs: Directory 'i915_vma' with parent 'slab' already present!\n",
    );
    kcycle()
        .args(["dmesg", "-"])
        .write_stdin(log)
        .assert()
        .code(1)
        .stdout("-:2: debugfs-duplicate: debugfs: duplicate 'i915_vma' in 'slab'\n");
}

#[test]
fn no_file_is_a_usage_error() {
    kcycle().arg("dmesg").assert().code(2);
}
