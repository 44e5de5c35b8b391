//! virtme-ng for the boot comparison: the `vng` on PATH, else installed
//! with pip (the bench must run on a fresh machine), once per bench.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use kcycle::sys::child;

use super::{parse, progress};

/// The version the bench was written against (a fresh machine gets it).
const PACKAGE: &str = "virtme-ng==1.42";

/// The `vng` program to run, or why there is none. The first call may
/// install virtme-ng.
pub fn program() -> Result<PathBuf, String> {
    static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROGRAM.get_or_init(find_or_install).clone()
}

/// `vng --version`'s line.
pub fn version(program: &std::path::Path) -> String {
    runs(program).unwrap_or_else(|why| format!("unavailable ({why})"))
}

/// `program --version`'s first line, if it runs.
fn runs(program: &std::path::Path) -> Result<String, String> {
    match child::capture(
        Command::new(program).arg("--version"),
        Duration::from_secs(30),
    ) {
        Ok(out) if out.status.success() => {
            Ok(out.text().lines().next().unwrap_or("").trim().to_string())
        }
        Ok(out) => Err(format!(
            "`{} --version` exited {}",
            program.display(),
            out.status
        )),
        Err(e) => Err(format!("`{} --version`: {e}", program.display())),
    }
}

fn find_or_install() -> Result<PathBuf, String> {
    find().or_else(|not_found| {
        progress(&format!(
            "boot: no vng ({not_found}); installing it: python3 -m pip install {PACKAGE}"
        ));
        let install = child::capture(
            Command::new("python3").args(["-m", "pip", "install", "--quiet", PACKAGE]),
            Duration::from_secs(900),
        )
        .map_err(|e| format!("failed to run `python3 -m pip install {PACKAGE}`: {e}"))?;
        if !install.status.success() {
            return Err(format!(
                "`python3 -m pip install {PACKAGE}` exited {}: {}",
                install.status,
                parse::tail(&install.stderr, 3)
            ));
        }
        find()
    })
}

/// `vng` on PATH, else in python3's scripts directory (where pip puts it;
/// pyenv's shims see a new script only after a rehash).
fn find() -> Result<PathBuf, String> {
    let on_path = PathBuf::from("vng");
    let Err(why) = runs(&on_path) else {
        return Ok(on_path);
    };
    let scripts = child::capture(
        Command::new("python3").args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ]),
        Duration::from_secs(30),
    )
    .ok()
    .filter(|out| out.status.success())
    .map(|out| PathBuf::from(out.stdout.trim()).join("vng"));
    match scripts {
        Some(path) if runs(&path).is_ok() => Ok(path),
        _ => Err(why),
    }
}
