//! `kcycle dmesg`.

use anyhow::Context;
use kcycle::exit::ExitStatus;

use super::{DmesgArgs, ExitOnError, Failure};

/// `kcycle dmesg`: classify each log, print its findings, exit like grep
/// (0 nothing found, 1 found, 2 when a file could not be read: the others
/// are still classified).
pub(super) fn dmesg(args: &DmesgArgs) -> Result<ExitStatus, Failure> {
    use std::io::Write;

    // Stdout is line-buffered: a write per line of a big log's findings.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut found = false;
    let mut unreadable = Vec::new();
    for path in &args.files {
        let name = path.to_string_lossy();
        let bytes = match read_log(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                unreadable.push(format!("{error:#}"));
                continue;
            }
        };
        let findings = kcycle::dmesg::classify_bytes(&bytes);
        found |= !findings.is_empty();
        if args.json {
            let record = DmesgRecord {
                file: &name,
                findings: &findings,
            };
            serde_json::to_writer(&mut out, &record)
                .context("failed to write the findings as JSON to stdout")
                .infrastructure()?;
            writeln!(out)
                .context("failed to write to stdout")
                .infrastructure()?;
        } else {
            for f in &findings {
                writeln!(out, "{name}:{}: {}: {}", f.line, f.kind, f.title)
                    .context("failed to write to stdout")
                    .infrastructure()?;
            }
        }
        // Each file's findings as soon as it is classified.
        out.flush()
            .context("failed to write to stdout")
            .infrastructure()?;
    }
    out.flush()
        .context("failed to write to stdout")
        .infrastructure()?;
    if !unreadable.is_empty() {
        return Err(Failure {
            status: ExitStatus::BadInput,
            error: anyhow::anyhow!("{}", unreadable.join("; ")),
        });
    }
    Ok(if found {
        ExitStatus::Failed
    } else {
        ExitStatus::Passed
    })
}

/// One line of `kcycle dmesg --json`.
#[derive(serde::Serialize)]
struct DmesgRecord<'a> {
    file: &'a str,
    findings: &'a [kcycle::dmesg::Finding],
}

/// The bytes of a kernel log; `-` is standard input.
fn read_log(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;

    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("failed to read the kernel log from standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| {
        format!(
            "failed to read kernel log {}: check the path and its permissions",
            path.display()
        )
    })
}
