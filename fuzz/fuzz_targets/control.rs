//! One control-socket message, as raw bytes, at a server with a few accounts: exactly one
//! reply (at once, or after the wait `show -w`, `reload` or a remote revoke implies), and
//! the server's invariants after each step. The checks are in
//! `pizauth_fsm::fuzzing::control`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pizauth_fsm::fuzzing::control(data));
