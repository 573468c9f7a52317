//! Replays the config fuzz target's corpus (fuzz/corpus/config) as an ordinary test, so
//! every input the fuzzer has kept is checked on each `cargo test` without cargo-fuzz.
//! Seeds named `valid-*` must parse, seeds named `invalid-*` must be rejected with
//! diagnostics, and nothing may panic.

// Reading the corpus is I/O, which fsm/clippy.toml bans for the core itself, not its tests.
#![allow(clippy::disallowed_methods)]

use std::fs;

use pizauth_fsm::config::Config;

#[path = "../../fuzz/replay.rs"]
mod replay;

#[test]
fn config_corpus_replays() {
    let entries = replay::inputs("config");
    let (mut valid, mut invalid) = (0, 0);
    for path in &entries {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let source = String::from_utf8_lossy(&bytes);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let result = Config::parse(&source, name);
        match &result {
            Ok(p) => {
                let _ = p.warnings.to_string();
            }
            Err(e) => {
                assert!(!e.is_empty(), "{name}: rejected without a diagnostic");
                let _ = e.to_string();
            }
        }
        if name.starts_with("valid-") {
            valid += 1;
            if let Err(e) = result {
                panic!("{name} should parse:\n{e}");
            }
        } else if name.starts_with("invalid-") {
            invalid += 1;
            assert!(result.is_err(), "{name} should be rejected");
        }
    }
    assert!(
        valid >= 6 && invalid >= 6,
        "the seeds are missing from fuzz/corpus/config"
    );
}
