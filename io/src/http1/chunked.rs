//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally.
//!
//! ```text
//! chunked-body    = *chunk last-chunk trailer-section CRLF
//! chunk           = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size      = 1*HEXDIG
//! last-chunk      = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext       = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! Extensions and trailer fields are skipped (§7.1.1 and §7.1.2 let a recipient ignore
//! them), but their bytes are bounded. Line ends must be CRLF: we never need the bare-LF
//! leniency of §2.2 from a token endpoint, and framing is where leniency turns into
//! ambiguity. Whitespace is tolerated after the size, where some servers pad it.

use super::{MAX_BODY_BYTES, MAX_HEAD_BYTES};

/// The longest chunk-size line (size, whitespace and extensions, without the CRLF).
const MAX_SIZE_LINE: usize = 4096;

/// Why a chunked body could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChunkError {
    /// The body is larger than [`MAX_BODY_BYTES`].
    TooLarge,
    /// The trailer section is larger than [`MAX_HEAD_BYTES`].
    TrailerTooLarge,
    /// The framing is broken; the text says how.
    Malformed(&'static str),
}

/// Where the decoder is in the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `any` once there was at least one.
    Size { value: usize, any: bool },
    /// Whitespace after the size, before `;` or CRLF.
    SizeSpace { value: usize },
    /// Inside chunk extensions, which are skipped.
    Extension { value: usize },
    /// After the CR that ends the size line.
    SizeLf { value: usize },
    /// Inside chunk data, `left` bytes to go (never zero).
    Data { left: usize },
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// After the CR of a trailer field line.
    TrailerLf,
    /// After the CR of the final empty line.
    FinalLf,
    /// The whole chunked body has been read.
    Done,
}

/// An incremental decoder for one chunked body.
#[derive(Debug)]
pub(super) struct Chunked {
    state: State,
    /// Bytes of the current size line so far (bounded by [`MAX_SIZE_LINE`]).
    line: usize,
    /// Bytes of the trailer section so far (bounded by [`MAX_HEAD_BYTES`]).
    trailer: usize,
}

impl Chunked {
    /// A decoder at the start of a chunked body.
    pub(super) fn new() -> Self {
        Chunked {
            state: State::Size {
                value: 0,
                any: false,
            },
            line: 0,
            trailer: 0,
        }
    }

    /// Whether the final CRLF has been read.
    pub(super) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending chunk data to `body` (which never
    /// grows past [`MAX_BODY_BYTES`]). Returns how many bytes of `input` were consumed:
    /// all of them unless the body ended, in which case the rest belongs to whatever
    /// follows the response.
    pub(super) fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data { left } = self.state {
                let n = left.min(input.len() - i);
                body.extend_from_slice(&input[i..i + n]);
                i += n;
                self.state = match left - n {
                    0 => State::DataCr,
                    left => State::Data { left },
                };
                continue;
            }
            self.step(input[i], body.len())?;
            i += 1;
        }
        Ok(i)
    }

    /// Advances over one framing byte; `body_len` is the data decoded so far.
    fn step(&mut self, b: u8, body_len: usize) -> Result<(), ChunkError> {
        use ChunkError::Malformed;
        self.state = match self.state {
            State::Size { value, any } => {
                self.count_line()?;
                if let Some(digit) = hex_value(b) {
                    // Checked against the cap before it can overflow: `value` stays at
                    // most MAX_BODY_BYTES, so `value * 16 + 15` fits in any usize.
                    let value = value * 16 + digit;
                    if value > MAX_BODY_BYTES.saturating_sub(body_len) {
                        return Err(ChunkError::TooLarge);
                    }
                    State::Size { value, any: true }
                } else if !any {
                    return Err(Malformed("invalid chunk size"));
                } else {
                    match b {
                        b' ' | b'\t' => State::SizeSpace { value },
                        b';' => State::Extension { value },
                        b'\r' => State::SizeLf { value },
                        _ => return Err(Malformed("invalid chunk size")),
                    }
                }
            }
            State::SizeSpace { value } => {
                self.count_line()?;
                match b {
                    b' ' | b'\t' => State::SizeSpace { value },
                    b';' => State::Extension { value },
                    b'\r' => State::SizeLf { value },
                    _ => return Err(Malformed("invalid chunk size")),
                }
            }
            State::Extension { value } => {
                self.count_line()?;
                match b {
                    b'\r' => State::SizeLf { value },
                    b'\t' => State::Extension { value },
                    0..=0x1f | 0x7f => return Err(Malformed("invalid chunk extension")),
                    _ => State::Extension { value },
                }
            }
            State::SizeLf { value } => {
                if b != b'\n' {
                    return Err(Malformed("missing lf after chunk size"));
                }
                self.line = 0;
                match value {
                    0 => State::TrailerStart,
                    left => State::Data { left },
                }
            }
            // `decode` copies data in bulk; a zero `left` never exists.
            State::Data { .. } => return Err(Malformed("internal decoder error")),
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataCr => return Err(Malformed("missing crlf after chunk data")),
            State::DataLf if b == b'\n' => State::Size {
                value: 0,
                any: false,
            },
            State::DataLf => return Err(Malformed("missing crlf after chunk data")),
            State::TrailerStart | State::TrailerLine => {
                let start = self.state == State::TrailerStart;
                match b {
                    b'\r' if start => State::FinalLf,
                    b'\r' => {
                        self.count_trailer()?;
                        State::TrailerLf
                    }
                    b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                        self.count_trailer()?;
                        State::TrailerLine
                    }
                    _ => return Err(Malformed("invalid trailer field")),
                }
            }
            State::TrailerLf if b == b'\n' => State::TrailerStart,
            State::TrailerLf => return Err(Malformed("missing lf after trailer field")),
            State::FinalLf if b == b'\n' => State::Done,
            State::FinalLf => return Err(Malformed("missing lf at the end of the body")),
            State::Done => State::Done,
        };
        Ok(())
    }

    /// Counts one byte of the size line against its cap.
    fn count_line(&mut self) -> Result<(), ChunkError> {
        self.line += 1;
        if self.line > MAX_SIZE_LINE {
            return Err(ChunkError::Malformed("chunk size line too long"));
        }
        Ok(())
    }

    /// Counts one byte of the trailer section against its cap.
    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer += 1;
        if self.trailer > MAX_HEAD_BYTES {
            return Err(ChunkError::TrailerTooLarge);
        }
        Ok(())
    }
}

/// The value of an ASCII hex digit.
fn hex_value(b: u8) -> Option<usize> {
    match b {
        b'0'..=b'9' => Some(usize::from(b - b'0')),
        b'a'..=b'f' => Some(usize::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(usize::from(b - b'A' + 10)),
        _ => None,
    }
}
