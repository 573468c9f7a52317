//! The logic of the fuzz targets in `fuzz/`, as library functions, so that ordinary tests
//! can replay every corpus file without a fuzzer (see `docs/TESTING.md`).
//!
//! Each target is one function that takes the fuzzer's bytes and panics when a property
//! fails: [`config`], [`control`], [`restore`] and [`core`]. The targets that need HTTP
//! framing too (`redirect`, `token_response`) live in `pizauth-io` and build on the
//! [`Harness`] here: a [`Server`](crate::Server) on a simulated clock with seeded entropy
//! ([`XorShift`]) that checks, after every input, the server's invariants, that every
//! control client gets at most one reply, that no token is handed out past its expiry, and
//! that no secret it knows reaches a log line or an error message unless the fuzzer
//! itself sent that text.
//!
//! Everything is deterministic: the same bytes give the same run, so a crash replays.
//! Nothing here unwraps fuzz input; the `expect`s are on the module's own fixed texts.
//!
//! Only built with the `fuzzing` feature, which also enables `invariants`.

use std::sync::OnceLock;

use crate::config::Config;
use crate::event::Entropy;

mod answers;
mod control;
mod harness;
mod restore;
mod sequence;

pub use answers::{PENDING, answer_token_request, interpret_redirect, redirect_harness};
pub use control::control;
pub use harness::{
    Harness, RedirectAnswer, STANDARD_CONFIG, T0_BOOT, T0_WALL, standard_config, state_param,
};
pub use restore::restore;
pub use sequence::core;

/// A tiny deterministic entropy source (xorshift64*): seeded runs replay bit for bit.
/// Not for anything but tests and fuzzing.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator started from `seed` (zero, which xorshift cannot leave, is replaced).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Entropy for XorShift {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            // The high byte: the best-mixed bits of xorshift64*.
            *b = self.next_u64().to_be_bytes()[0];
        }
    }
}

/// Reads fuzz bytes as a stream of small choices; once the bytes run out every read gives
/// zeros (or nothing), so any input decodes to something.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian, or what is left of them.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// The next `n` bytes (fewer if the input ends first).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length-prefixed run of bytes: one byte of length, then that many bytes.
    pub fn short(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte());
        self.take(n)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// Splits `data` into the chunks a network might deliver it in, chosen by `seed`: 0 is
/// one chunk; odd seeds give chunks of 1 to 16 bytes (every boundary case of a framing
/// state machine), even seeds chunks of 1 to 1,500 bytes (packet-sized).
pub fn split(data: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 || data.is_empty() {
        return vec![data];
    }
    let mut rng = XorShift::new(u64::from(seed));
    let max = if seed % 2 == 1 { 16 } else { 1500 };
    let mut chunks = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // `max` is a small constant, so the cast cannot truncate anything that matters.
        let n = (rng.next_u64() % max) as usize + 1;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    chunks
}

/// Fuzz target `config`: the config parser on arbitrary text. It must never panic,
/// must explain every rejection, must render its diagnostics, and must give accounts
/// sorted by name and unique; a parsed config must also start a server that answers
/// `status` (so nothing the parser accepts upsets the core).
pub fn config(data: &[u8]) {
    // The driver refuses a file that is not UTF-8 before parsing; lossy conversion still
    // lets every input count.
    let source = String::from_utf8_lossy(data);
    match Config::parse(&source, "fuzz.conf") {
        Ok(parsed) => {
            let names: Vec<_> = parsed.config.accounts.iter().map(|a| &a.name).collect();
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "accounts not sorted and unique"
            );
            let _ = parsed.warnings.to_string();
            let count = names.len();
            let mut harness = Harness::new(parsed.config, Default::default());
            assert_eq!(harness.status().len(), count, "status lists every account");
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "rejected without a diagnostic");
            let _ = errors.to_string();
        }
    }
}

/// The standard config, parsed once (parsing it again for every run would only slow the
/// fuzzer down).
fn standard() -> Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(standard_config).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_split_keeps_every_byte_in_order() {
        let data: Vec<u8> = (0..=255).cycle().take(5000).collect();
        for seed in 0..=255 {
            let chunks = split(&data, seed);
            assert!(chunks.iter().all(|c| !c.is_empty()));
            assert_eq!(chunks.concat(), data, "seed {seed}");
            if seed % 2 == 1 {
                assert!(chunks.iter().all(|c| c.len() <= 16), "seed {seed}");
            }
        }
        assert_eq!(split(&data, 0), vec![&data[..]]);
    }

    #[test]
    fn a_cursor_reads_zeros_past_the_end() {
        let mut c = Cursor::new(&[1, 2, 3, 4]);
        assert_eq!(c.u16(), 0x0102);
        // Length 3, but only one byte is left.
        assert_eq!(c.short(), &[4][..]);
        assert!(c.is_empty());
        assert_eq!((c.byte(), c.u16(), c.rest()), (0, 0, &[][..]));
    }

    #[test]
    fn the_entropy_is_seeded() {
        let (mut a, mut b) = (XorShift::new(7), XorShift::new(7));
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 32]);
        assert_ne!(XorShift::new(0).next_u64(), 0);
    }
}
