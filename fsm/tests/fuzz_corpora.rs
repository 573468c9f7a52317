//! Replays the corpora of the core's fuzz targets (`control`, `restore`, `core`, and
//! `config` through the same library function the fuzzer calls) as ordinary tests: every
//! file in fuzz/corpus/TARGET and fuzz/regressions/TARGET runs through
//! `pizauth_fsm::fuzzing::TARGET`, so CI catches a regression without cargo-fuzz.

// Reading the corpus is I/O, which fsm/clippy.toml bans for the core itself, not its tests.
#![allow(clippy::disallowed_methods)]

use pizauth_fsm::fuzzing;

#[path = "../../fuzz/replay.rs"]
mod replay;

use replay::replay;

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
