//! The core driven by an arbitrary sequence of inputs and time steps decoded from the
//! bytes, with the invariants checked after each step. The decoding and the checks are
//! in `pizauth_fsm::fuzzing::core`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pizauth_fsm::fuzzing::core(data));
