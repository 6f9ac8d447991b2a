//! The example policies and the hostile Rust rule, built from source to wasm once per test
//! process by `scripts/build-rules` (the same script CI and authors use).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The wasm of `rules/<name>`, built in this test run.
pub fn built_rule(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let output = Command::new("bash")
            .arg(workspace().join("scripts/build-rules"))
            .current_dir(workspace())
            .output()
            .expect("scripts/build-rules runs");
        assert!(
            output.status.success(),
            "building the rules failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        workspace().join("target/rules")
    });
    std::fs::read(dir.join(format!("{name}.wasm"))).unwrap_or_else(|e| panic!("rule {name} was not built: {e}"))
}
