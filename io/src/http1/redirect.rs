//! Requests arriving on the redirect listeners, read incrementally.

use std::fmt;

use pizauth_fsm::event::RedirectRequest;
use zeroize::Zeroize;

use super::{MAX_HEADERS, locate_head};

/// The most bytes of request head (request line and header fields) read from a redirect
/// connection (16 KiB); a longer head is answered with `431`.
pub const MAX_REDIRECT_REQUEST_BYTES: usize = 16 * 1024;

/// What a [`RequestReader`] made of the bytes it has been given.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadProgress {
    /// The head is not complete yet: read more.
    NeedMore,
    /// A complete request head, for the core to judge.
    Request(RedirectRequest),
    /// The bytes cannot be a request the core could judge: answer with this status (and
    /// the reason as the body, or in the log), then close.
    Reject {
        /// The HTTP status to answer with: `400` or `431`.
        status: u16,
        /// Why, in a few words (lowercase, no trailing period).
        reason: &'static str,
    },
}

/// Reads the head of one request from a redirect connection.
///
/// Feed every chunk of bytes read with [`feed`](Self::feed) until it returns something
/// other than [`ReadProgress::NeedMore`]; the reader is then spent. It reports the method,
/// the request target and the `Host` header and leaves every other decision (method,
/// path, missing `Host`) to the core. A body, if any, is never read.
///
/// Rejected here: a head longer than [`MAX_REDIRECT_REQUEST_BYTES`] or with more than
/// [`MAX_HEADERS`] fields (`431`), anything httparse cannot parse, a header value that is
/// not UTF-8, and more than one `Host` (`400`, as RFC 9112 §3.2 requires). No input makes
/// it panic.
pub struct RequestReader {
    /// The head so far; its target holds an authorisation code.
    buf: Vec<u8>,
    /// Bytes taken so far, leading empty lines included.
    seen: usize,
    /// How far `buf` has been searched for the end of the head.
    scanned: usize,
    /// Whether a request or rejection has been reported.
    spent: bool,
}

impl RequestReader {
    /// A reader waiting for the first byte of a request.
    pub fn new() -> Self {
        RequestReader {
            buf: Vec::new(),
            seen: 0,
            scanned: 0,
            spent: false,
        }
    }

    /// Reads the next bytes from the connection.
    pub fn feed(&mut self, bytes: &[u8]) -> ReadProgress {
        if self.spent {
            return reject(400, "request already read");
        }
        // Keep no more than the cap: a head that fits ends within it.
        let room = MAX_REDIRECT_REQUEST_BYTES.saturating_sub(self.seen);
        let take = &bytes[..bytes.len().min(room)];
        self.seen += take.len();
        self.buf.extend_from_slice(take);
        let progress = match locate_head(&mut self.buf, &mut self.scanned) {
            (_, None) if self.seen >= MAX_REDIRECT_REQUEST_BYTES => {
                reject(431, "request head too large")
            }
            (_, None) => return ReadProgress::NeedMore,
            (_, Some(end)) => parse(&self.buf[..end]),
        };
        self.spent = true;
        self.buf.zeroize();
        progress
    }
}

impl Default for RequestReader {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RequestReader {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// Shows progress only: the target holds an authorisation code.
impl fmt::Debug for RequestReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestReader")
            .field("seen_bytes", &self.seen)
            .field("spent", &self.spent)
            .finish()
    }
}

/// Parses a complete head (`head` ends with its empty line).
fn parse(head: &[u8]) -> ReadProgress {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Err(httparse::Error::TooManyHeaders) => return reject(431, "too many header fields"),
        _ => return reject(400, "malformed request"),
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return reject(400, "malformed request");
    };
    let mut host = None;
    for field in request.headers.iter() {
        let Ok(value) = std::str::from_utf8(field.value) else {
            return reject(400, "header value is not utf-8");
        };
        if field.name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return reject(400, "more than one host header");
            }
            host = Some(value.trim().to_owned());
        }
    }
    ReadProgress::Request(RedirectRequest {
        method: method.to_owned(),
        target: target.to_owned(),
        host,
    })
}

/// A rejection.
fn reject(status: u16, reason: &'static str) -> ReadProgress {
    ReadProgress::Reject { status, reason }
}
