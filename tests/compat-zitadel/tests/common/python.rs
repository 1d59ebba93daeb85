//! ZITADEL's Python SDK in a virtual environment of its own under the target
//! directory, created on first use (PyPI must be reachable) and reused afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// The SDK, pinned.
pub const PACKAGE: &str = "zitadel-client==4.1.9";

/// Panics with everything a failed command printed.
pub fn check(what: &str, output: std::io::Result<Output>) {
    let output = output.unwrap_or_else(|e| panic!("{what}: could not run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The Python interpreter of a virtual environment holding [`PACKAGE`], created and
/// installed on first use.
pub fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let dir = super::target_dir().join("compat-venv");
        let python = dir.join("bin").join("python");
        let marker = dir.join(format!("{}.installed", PACKAGE.replace("==", "-")));
        if marker.is_file() && python.is_file() {
            return python;
        }
        let started = Instant::now();
        if dir.exists() {
            // A previous install did not finish: start over.
            std::fs::remove_dir_all(&dir)
                .unwrap_or_else(|e| panic!("remove the unfinished {}: {e}", dir.display()));
        }
        let base = std::env::var_os("TESSERA_TEST_PYTHON").unwrap_or_else(|| "python3".into());
        check(
            &format!("{} -m venv {}", base.to_string_lossy(), dir.display()),
            Command::new(&base).arg("-m").arg("venv").arg(&dir).stdin(Stdio::null()).output(),
        );
        check(
            &format!("pip install {PACKAGE} (into {})", dir.display()),
            Command::new(&python)
                .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"])
                .arg(PACKAGE)
                .stdin(Stdio::null())
                .output(),
        );
        std::fs::write(&marker, format!("{PACKAGE}\n"))
            .unwrap_or_else(|e| panic!("write {}: {e}", marker.display()));
        eprintln!("created {} with {PACKAGE} in {:.1?}", dir.display(), started.elapsed());
        python
    })
}
