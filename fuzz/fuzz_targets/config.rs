//! The config parser on arbitrary bytes: it must never panic, must explain every
//! rejection, and must render its diagnostics; a config it accepts must start a server.
//! The checks are in `pizauth_fsm::fuzzing::config`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pizauth_fsm::fuzzing::config(data));
