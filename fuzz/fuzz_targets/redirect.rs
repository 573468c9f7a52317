//! Raw bytes on a redirect listener, split into reads as byte 0 says, through the
//! request reader and, when a request comes out, the core's interpretation of it. The
//! checks are in `pizauth_io::fuzzing::redirect`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pizauth_io::fuzzing::redirect(data));
