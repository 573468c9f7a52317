//! Replays the corpora of the core's fuzz targets (`control`, `restore`, `core`, and
//! `config` through the same library function the fuzzer calls) as ordinary tests: every
//! file in fuzz/corpus/TARGET and fuzz/regressions/TARGET runs through
//! `pizauth_fsm::fuzzing::TARGET`, so CI catches a regression without cargo-fuzz.

// Reading the corpus is I/O, which fsm/clippy.toml bans for the core itself, not its tests.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use pizauth_fsm::fuzzing;

/// Every file of the corpus and the regressions of `target`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in [
        fuzz.join("corpus").join(target),
        fuzz.join("regressions").join(target),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        files.extend(
            entries
                .map(|e| e.expect("a directory entry").path())
                .filter(|p| p.is_file()),
        );
    }
    files.sort();
    files
}

/// Runs `run` on every input of `target`; fails naming every input that panicked.
/// Returns how many inputs ran.
fn replay(target: &str, minimum: usize, run: fn(&[u8])) -> usize {
    let files = inputs(target);
    assert!(
        files.len() >= minimum,
        "{target}: {} inputs, expected at least {minimum}: are the seeds missing?",
        files.len()
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail:\n{}",
        failed.join("\n")
    );
    files.len()
}

#[test]
fn config_corpus_replays_through_the_target() {
    replay("config", 12, fuzzing::config);
}

#[test]
fn control_corpus_replays() {
    replay("control", 12, fuzzing::control);
}

#[test]
fn restore_corpus_replays() {
    replay("restore", 12, fuzzing::restore);
}

#[test]
fn core_corpus_replays() {
    replay("core", 12, fuzzing::core);
}
