//! What the tests that replay and check the fuzz corpora share (`fsm/tests/fuzz_*.rs` and
//! `io/tests/fuzz_*.rs` include this file with `#[path]`): listing a target's inputs,
//! replaying them, and checking the hand-made seed files against the code that makes them.
//! Not part of the fuzz crate itself.

#![allow(dead_code)]

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// `fuzz/` (every including crate is a sibling of it).
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file of the corpus and the regressions of `target`, sorted.
pub fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = fuzz_dir();
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

/// Runs `run` on every input of `target` (at least `minimum` of them); fails naming every
/// input that panicked. Returns how many inputs ran.
pub fn replay(target: &str, minimum: usize, run: fn(&[u8])) -> usize {
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

/// Checks that `fuzz/corpus/TARGET/seed-NAME` holds exactly each of `seeds`; with
/// `PIZAUTH_WRITE_SEEDS` set, writes them instead.
pub fn check_seed_files(target: &str, seeds: &[(String, Vec<u8>)]) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).expect("the corpus directory");
    for (name, bytes) in seeds {
        let path = dir.join(format!("seed-{name}"));
        if std::env::var_os("PIZAUTH_WRITE_SEEDS").is_some() {
            fs::write(&path, bytes).expect("a seed file");
        } else {
            assert!(
                fs::read(&path).ok().as_deref() == Some(&bytes[..]),
                "{} differs from the seed this code makes: rewrite the seeds with PIZAUTH_WRITE_SEEDS=1",
                path.display()
            );
        }
    }
}
