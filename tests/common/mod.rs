//! Locating the test data that `cargo xtask test` generates under `target/`.

use std::path::PathBuf;

/// `target/<name>` of the workspace, or `None` after a loud notice when it was not
/// generated. Under `CI=true` missing data is a failure, never a silent skip.
pub fn generated_dir(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is missing: CI must run `cargo xtask test`, which generates it",
            dir.display()
        );
    }
    eprintln!("SKIPPED: {} is missing; run `cargo xtask test` (or `cargo xtask test --prepare-only`) to generate it", dir.display());
    None
}
