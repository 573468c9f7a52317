//! Raw bytes from a token endpoint, split into reads as byte 0 says, through the response
//! parser, then the core's response parsers and a server that refreshes and exchanges
//! with the result. The checks are in `pizauth_io::fuzzing::token_response`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pizauth_io::fuzzing::token_response(data));
