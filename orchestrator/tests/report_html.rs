//! index.html in a real browser: the results directory `kcycle run` writes
//! (through the same `ResultsWriter`), re-rendered by `kcycle report`, then
//! loaded by Debian's headless Chromium, whose DOM dump and screenshot are
//! checked. `.ci/run` installs chromium; without it these tests fail under
//! `CI` and print a skip notice elsewhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use kcycle::outcome::{CycleSample, Finding, RunInfo, Severity, TestResult};
use kcycle::report::results_dir::{ResultsWriter, HTML_FILE};
use kcycle::status::Status;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1800;
const TRACE_LINE: &str = "kmem_cache_create_usercopy+0x1c4/0x2b0";

fn run_info() -> RunInfo {
    RunInfo {
        name: "kcycle".into(),
        kernel_release: "6.12.117".into(),
        kernel_source: "debian linux-source-6.12.117".into(),
        qemu_version: "QEMU emulator version 7.2.0".into(),
        accel: "tcg".into(),
        commit: "0123456789ab".into(),
        hostname: "runner".into(),
        cmdline: vec![
            "kcycle".into(),
            "run".into(),
            "suites/rust-table.toml".into(),
        ],
        shard: Some("2/3".into()),
        started_at: 1_700_000_000.0,
    }
}

fn result(name: &str, status: Status, start: f64, findings: Vec<Finding>) -> TestResult {
    TestResult {
        name: format!("kcycle@rust-table@{name}"),
        suite: "rust-table".into(),
        status,
        start,
        duration: Duration::from_millis(1200 + (start * 100.0) as u64),
        findings,
        out: "$ modprobe rust_i915_table\n".into(),
        err: String::new(),
        // Kernel logs carry ESC and NUL bytes; the page must stay well-formed.
        dmesg: "[    1.0] rust_i915_table: loaded\x1b[0m\x00 <done>\n".into(),
        flaky_attempts: vec![],
        cycles: Vec::new(),
    }
}

/// What the runner samples after each cycle: a slab cache that grows and leftovers.
fn cycles(count: u32) -> Vec<CycleSample> {
    (1..=count)
        .map(|cycle| CycleSample {
            cycle,
            counters: [
                ("slab:rust_i915_vma".to_string(), 100 * u64::from(cycle)),
                (
                    "meminfo:MemFree".to_string(),
                    500_000 - 64 * u64::from(cycle),
                ),
            ]
            .into(),
            leftovers: cycle as usize - 1,
        })
        .collect()
}

fn leak() -> Finding {
    Finding {
        kind: "debugfs-duplicate".into(),
        title: "debugfs: Directory 'rust_i915_vma' with parent 'slab' already present!".into(),
        severity: Severity::Warn,
        report: format!(
            "debugfs: Directory 'rust_i915_vma' with parent 'slab' already present!\n\
             Call Trace:\n <TASK>\n dump_stack_lvl+0x5d/0x80\n {TRACE_LINE}\n </TASK>\n"
        ),
        attribution: Some("left behind by unload in cycle 2".into()),
        known_issue: None,
    }
}

fn results() -> Vec<TestResult> {
    let mut known = leak();
    known.title = "WARNING in i915_gem_init".into();
    known.known_issue = Some("https://example.invalid/bug/7".into());
    vec![
        result("load-unload", Status::Pass, 1.0, vec![]),
        TestResult {
            cycles: cycles(4),
            ..result("legacy-exit-leaks", Status::DmesgWarn, 3.0, vec![leak()])
        },
        result("known", Status::DmesgWarn, 5.0, vec![known]),
        result("passthrough", Status::Skip, 7.0, vec![]),
        result("reload", Status::Pass, 9.0, vec![]),
    ]
}

/// A results directory as `kcycle run` leaves it: reports plus a console log.
fn write_run(dir: &Path) {
    let mut writer = ResultsWriter::create(dir, run_info()).unwrap();
    for result in results() {
        writer.record(result).unwrap();
    }
    // Guests shut down (and their consoles are copied in) after the last test.
    std::fs::write(
        dir.join("console-rust-table-guest0.log"),
        "Linux version 6.12\n",
    )
    .unwrap();
    writer.finish().unwrap();
}

fn chromium() -> Option<PathBuf> {
    // Debian's chromium first; GitHub's Ubuntu images carry google-chrome.
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let found = names.iter().find_map(|name| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed (.ci/run installs it: apt-get install -y chromium)"
        );
        eprintln!("skipping: chromium is not installed (apt-get install -y chromium, as root)");
    }
    found
}

/// Headless Chromium on `page` with nothing reaching the network, plus `args`.
fn browser(chromium: &Path, profile: &Path, args: &[String], page: &str) -> std::process::Output {
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(page)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

fn screenshot(chromium: &Path, profile: &Path, page: &str, out: &Path) -> Vec<u8> {
    browser(
        chromium,
        profile,
        &[
            format!("--screenshot={}", out.display()),
            format!("--window-size={WIDTH},{HEIGHT}"),
        ],
        page,
    );
    std::fs::read(out).expect("chromium wrote the screenshot")
}

#[test]
fn every_run_writes_index_html_and_kcycle_report_renders_the_same_page() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let written = std::fs::read_to_string(dir.path().join(HTML_FILE)).unwrap();
    assert!(written.contains("left behind by unload in cycle 2"));

    std::fs::remove_file(dir.path().join(HTML_FILE)).unwrap();
    Command::cargo_bin("kcycle")
        .unwrap()
        .arg("report")
        .arg(dir.path())
        .assert()
        .success()
        .stdout(predicates::str::contains(HTML_FILE));
    let rendered = std::fs::read_to_string(dir.path().join(HTML_FILE)).unwrap();
    assert_eq!(
        rendered, written,
        "results.json round-trips to the same page"
    );
}

#[test]
fn kcycle_report_without_results_json_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("kcycle")
        .unwrap()
        .arg("report")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicates::str::contains("results.json"));
}

#[test]
fn chromium_renders_findings_counts_chart_and_links() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let profile = tempfile::tempdir().unwrap();
    let page = format!("file://{}", dir.path().join(HTML_FILE).display());

    let dom = browser(&chromium, profile.path(), &["--dump-dom".into()], &page);
    let dom = String::from_utf8(dom.stdout).unwrap();
    assert!(dom.contains("<main>"), "not our page: {dom:.400}");
    // Status counts: 2 pass, 2 dmesg-warn (one a known issue), 1 skip.
    for (status, count) in [("pass", 2), ("dmesg-warn", 2), ("skip", 1)] {
        let cell = format!("data-count=\"{status}\">{count}</td>");
        assert!(dom.contains(&cell), "no {cell} in the DOM");
    }
    assert!(!dom.contains("data-count=\"fail\""));
    // Only the test that fails the run is opened to its findings, with the report.
    assert_eq!(dom.matches("class=\"failure\"").count(), 1);
    let failure = dom
        .split("<details open=\"\" class=\"failure\"")
        .nth(1)
        .expect("the failing test's details are open");
    let failure = &failure[..failure.find("</details>").unwrap()];
    assert!(failure.contains("data-failing=\"kcycle@rust-table@legacy-exit-leaks\""));
    assert!(failure.contains("left behind by unload in cycle 2"));
    assert!(failure.contains("with parent 'slab' already present!"));
    assert!(failure.contains(TRACE_LINE), "the call trace is shown");
    // The per-cycle section: the sampled test's leftovers and its two moving
    // counters, a line each with a point per cycle.
    let chart = dom.split("data-kcycle-hook=\"per-cycle\"").nth(1).unwrap();
    let chart = &chart[..chart.find("</section>").unwrap()];
    assert_eq!(chart.matches("<polyline").count(), 3, "{chart:.2000}");
    assert_eq!(chart.matches("<circle").count(), 3 * 4);
    assert!(chart.contains("kcycle@rust-table@legacy-exit-leaks: slab:rust_i915_vma (objects)"));
    assert!(chart.contains("cycle 1: 100, cycle 2: 200, cycle 3: 300, cycle 4: 400"));
    assert!(dom.contains("id=\"kcycle-chart-data\""));
    assert!(dom.contains("href=\"console-rust-table-guest0.log\""));
    assert!(dom.contains("data-fact=\"shard\">2/3</dd>"));
    assert!(
        dom.contains("\u{fffd}[0m\u{fffd} &lt;done&gt;"),
        "control bytes replaced, markup escaped"
    );
}

#[test]
fn chromium_screenshot_has_the_window_size_and_is_not_blank() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let profile = tempfile::tempdir().unwrap();
    let page = format!("file://{}", dir.path().join(HTML_FILE).display());

    let shot = screenshot(
        &chromium,
        profile.path(),
        &page,
        &dir.path().join("page.png"),
    );
    if let Some(keep) = std::env::var_os("KCYCLE_KEEP_SCREENSHOT") {
        std::fs::write(keep, &shot).unwrap();
    }
    assert_eq!(png_size(&shot), (WIDTH, HEIGHT));
    // An empty page of the same size compresses to almost nothing; ours has text and bars.
    std::fs::write(
        dir.path().join("blank.html"),
        "<!DOCTYPE html><title>x</title>",
    )
    .unwrap();
    let blank = format!("file://{}", dir.path().join("blank.html").display());
    let empty = screenshot(
        &chromium,
        profile.path(),
        &blank,
        &dir.path().join("blank.png"),
    );
    assert_eq!(png_size(&empty), (WIDTH, HEIGHT));
    assert!(
        shot.len() > 4 * empty.len(),
        "page screenshot {} bytes vs blank {} bytes",
        shot.len(),
        empty.len()
    );

    // Printing: a PDF comes out (the print stylesheet hides the logs section).
    let pdf = dir.path().join("page.pdf");
    browser(
        &chromium,
        profile.path(),
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".into(),
        ],
        &page,
    );
    let pdf = std::fs::read(pdf).expect("chromium printed the page");
    assert!(pdf.starts_with(b"%PDF-"));
}
