//! Arbitrary text given to `restore` at a server holding tokens: malformed input changes
//! nothing, a dump installs exactly the matching accounts without a token. The checks
//! are in `pizauth_fsm::fuzzing::restore`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pizauth_fsm::fuzzing::restore(data));
