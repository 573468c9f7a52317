//! Replays the corpora of the fuzz targets that start from network bytes (`redirect`,
//! `token_response`) as ordinary tests: every file in fuzz/corpus/TARGET and
//! fuzz/regressions/TARGET runs through `pizauth_io::fuzzing::TARGET`, so CI catches a
//! regression without cargo-fuzz.

use pizauth_io::fuzzing;

#[path = "../../fuzz/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn redirect_corpus_replays() {
    replay("redirect", 12, fuzzing::redirect);
}

#[test]
fn token_response_corpus_replays() {
    replay("token_response", 12, fuzzing::token_response);
}
