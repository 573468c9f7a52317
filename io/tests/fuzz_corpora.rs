//! Replays the corpora of the fuzz targets that start from network bytes (`redirect`,
//! `token_response`) as ordinary tests: every file in fuzz/corpus/TARGET and
//! fuzz/regressions/TARGET runs through `pizauth_io::fuzzing::TARGET`, so CI catches a
//! regression without cargo-fuzz.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use pizauth_io::fuzzing;

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
fn replay(target: &str, minimum: usize, run: fn(&[u8])) {
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
}

#[test]
fn redirect_corpus_replays() {
    replay("redirect", 12, fuzzing::redirect);
}

#[test]
fn token_response_corpus_replays() {
    replay("token_response", 12, fuzzing::token_response);
}
