//! Responses from token endpoints, parsed incrementally.

use std::fmt;
use std::mem;

use pizauth_fsm::Secret;
use pizauth_fsm::event::{HttpResponse, TransportError, TransportErrorKind};
use zeroize::Zeroize;

use super::chunked::{ChunkError, Chunked};
use super::{MAX_BODY_BYTES, MAX_HEAD_BYTES, MAX_HEADERS, has_token, locate_head};

/// What a [`ResponseParser`] made of the bytes it has been given.
#[derive(Debug)]
pub enum Progress {
    /// The response is not complete yet: read more (or report the end of the stream
    /// with [`ResponseParser::eof`]).
    NeedMore,
    /// A complete final response.
    Done {
        /// The response, with header names lower-cased.
        response: HttpResponse,
        /// Whether the connection may carry another request: false for HTTP/1.0 without
        /// `Connection: keep-alive`, for `Connection: close`, for a body delimited by the
        /// end of the stream, for ambiguous framing, and when bytes followed the response
        /// in the bytes fed so far. Bytes that arrive later, on the idle connection, are
        /// for the driver to notice: it should then close the connection.
        keep_alive: bool,
    },
    /// The response is unusable; the connection must be closed.
    Failed(TransportError),
}

/// Parses one HTTP/1.1 response (RFC 9112) from bytes fed in as they arrive.
///
/// Feed every chunk of bytes read with [`feed`](Self::feed) and, if the peer closes the
/// stream first, call [`eof`](Self::eof). Either returns [`Progress::NeedMore`] until the
/// response is decided; after [`Progress::Done`] or [`Progress::Failed`] the parser is
/// spent and later calls report an error. Interim `1xx` responses are skipped. The body
/// may be framed by `Content-Length`, by `Transfer-Encoding: chunked`, or by the end of
/// the stream; `204` and `304` have none.
///
/// Bounded: [`MAX_HEAD_BYTES`] of head (interim responses included), [`MAX_HEADERS`]
/// header fields, [`MAX_BODY_BYTES`] of body. No input makes it panic.
pub struct ResponseParser {
    /// Bytes received but not yet consumed.
    buf: Vec<u8>,
    /// How far `buf` has been searched for the end of the head.
    scanned: usize,
    /// Head bytes already consumed (leading empty lines and interim responses).
    head_bytes: usize,
    state: State,
}

/// Where the parser is.
enum State {
    /// Waiting for a complete status line and header section.
    Head,
    /// Reading the body of the final response.
    Body(Body),
    /// Done or failed; nothing more to parse.
    Spent,
}

/// The final response's head, and its body so far.
struct Body {
    status: u16,
    headers: Vec<(String, String)>,
    keep_alive: bool,
    framing: Framing,
    /// The body so far, at most [`MAX_BODY_BYTES`]; it may hold tokens.
    data: Vec<u8>,
}

/// How the end of the body is found (RFC 9112 §6.3).
enum Framing {
    /// `Content-Length`: `left` of `total` bytes still to come.
    Length { left: usize, total: usize },
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// Neither: the body runs to the end of the stream.
    UntilEof,
}

/// The outcome of looking for a head in the buffer.
enum Head {
    /// No complete head yet.
    Incomplete,
    /// An interim `1xx` response, consumed.
    Interim,
    /// The final response's head, consumed.
    Final(Body),
}

impl ResponseParser {
    /// A parser waiting for the first byte of a response.
    pub fn new() -> Self {
        ResponseParser {
            buf: Vec::new(),
            scanned: 0,
            head_bytes: 0,
            state: State::Head,
        }
    }

    /// Whether any byte of the response has arrived. A reused keep-alive connection that
    /// the server closes before this is true was most likely closed for idleness before
    /// the request reached the server, the usual case for retrying once on a new
    /// connection; but a server may also close after processing a request, so retrying a
    /// non-idempotent one (RFC 9110 §9.2.2) is a judgement call.
    pub fn has_started(&self) -> bool {
        !matches!(self.state, State::Head) || self.head_bytes > 0 || !self.buf.is_empty()
    }

    /// Parses the next bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) -> Progress {
        if matches!(self.state, State::Spent) {
            return Progress::Failed(io_error("bytes after the end of the response"));
        }
        self.buf.extend_from_slice(bytes);
        let outcome = self.advance();
        self.settle(outcome)
    }

    /// Reports that the peer closed the stream. This completes a body that runs to the
    /// end of the stream; anywhere else it is an error.
    pub fn eof(&mut self) -> Progress {
        let outcome = match &mut self.state {
            State::Spent => return Progress::Failed(io_error("response already complete")),
            State::Head if self.head_bytes == 0 && self.buf.is_empty() => {
                Err(io_error("connection closed before any response"))
            }
            State::Head => Err(io_error(
                "connection closed in the middle of the response head",
            )),
            State::Body(body) => match body.framing {
                Framing::Length { left, total } => Err(io_error(format!(
                    "connection closed after {} of {total} body bytes",
                    total - left
                ))),
                Framing::Chunked(_) => Err(io_error(
                    "connection closed before the end of the chunked body",
                )),
                Framing::UntilEof => Ok(Some(body.finish(false))),
            },
        };
        self.settle(outcome)
    }

    /// Consumes as much of the buffer as possible: `Some` once the response is complete.
    fn advance(&mut self) -> Result<Option<(HttpResponse, bool)>, TransportError> {
        loop {
            match &mut self.state {
                State::Head => match self.parse_head()? {
                    Head::Incomplete => return Ok(None),
                    Head::Interim => {}
                    Head::Final(body) => self.state = State::Body(body),
                },
                State::Body(body) => {
                    if !body.take(&mut self.buf)? {
                        return Ok(None);
                    }
                    // Bytes after the response mean a confused or hostile server: never
                    // send another request down that connection.
                    let keep_alive = body.keep_alive && self.buf.is_empty();
                    return Ok(Some(body.finish(keep_alive)));
                }
                State::Spent => return Ok(None),
            }
        }
    }

    /// Turns the outcome of `advance` or `eof` into progress, spending the parser (and
    /// wiping its buffers) once the response is decided.
    fn settle(
        &mut self,
        outcome: Result<Option<(HttpResponse, bool)>, TransportError>,
    ) -> Progress {
        let progress = match outcome {
            Ok(None) => return Progress::NeedMore,
            Ok(Some((response, keep_alive))) => Progress::Done {
                response,
                keep_alive,
            },
            Err(error) => Progress::Failed(error),
        };
        self.buf.zeroize();
        self.state = State::Spent;
        progress
    }

    /// Looks for a complete head at the start of the buffer and consumes it.
    fn parse_head(&mut self) -> Result<Head, TransportError> {
        let (blank, end) = locate_head(&mut self.buf, &mut self.scanned);
        self.head_bytes += blank;
        let Some(end) = end else {
            if self.head_bytes + self.buf.len() > MAX_HEAD_BYTES {
                return Err(too_large("response head larger than 64 KiB"));
            }
            return Ok(Head::Incomplete);
        };
        if self.head_bytes + end > MAX_HEAD_BYTES {
            return Err(too_large("response head larger than 64 KiB"));
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut fields);
        match parsed.parse(&self.buf[..end]) {
            Ok(httparse::Status::Complete(n)) if n == end => {}
            Ok(_) => return Err(io_error("malformed response head")),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(too_large("response has more than 64 header fields"));
            }
            Err(e) => return Err(io_error(format!("malformed response head: {e}"))),
        }
        // A complete parse sets both.
        let version = parsed.version.unwrap_or(1);
        let status = parsed.code.unwrap_or(0);
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                let value = String::from_utf8_lossy(h.value).into_owned();
                (h.name.to_ascii_lowercase(), value)
            })
            .collect();
        self.buf.drain(..end);
        self.head_bytes += end;
        self.scanned = 0;
        match status {
            101 => Err(io_error("unexpected 101 switching protocols response")),
            100..=199 => Ok(Head::Interim),
            200..=999 => Body::new(version, status, headers).map(Head::Final),
            _ => Err(io_error(format!("malformed status code {status}"))),
        }
    }
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ResponseParser {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// Shows progress only: the buffers may hold tokens.
impl fmt::Debug for ResponseParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Head => "head",
            State::Body(_) => "body",
            State::Spent => "spent",
        };
        let body_bytes = match &self.state {
            State::Body(body) => body.data.len(),
            _ => 0,
        };
        f.debug_struct("ResponseParser")
            .field("state", &state)
            .field("buffered_bytes", &self.buf.len())
            .field("body_bytes", &body_bytes)
            .finish()
    }
}

impl Body {
    /// Decides how the body is framed (RFC 9112 §6.3) and whether the connection may be
    /// reused (§9.3).
    fn new(
        version: u8,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> Result<Body, TransportError> {
        let values = |name: &'static str| field_values(&headers, name);
        let close = values("connection").any(|v| has_token(v, "close"));
        let keep = values("connection").any(|v| has_token(v, "keep-alive"));
        let mut keep_alive = !close && (version >= 1 || keep);
        let codings: Vec<&str> = values("transfer-encoding")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let has_te = values("transfer-encoding").next().is_some();
        let has_cl = values("content-length").next().is_some();
        let framing = if status == 204 || status == 304 {
            Framing::Length { left: 0, total: 0 }
        } else if has_te {
            // §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
            if version == 0 {
                return Err(io_error("transfer-encoding in an http/1.0 response"));
            }
            // We send no TE header, so chunked alone is all a server may use.
            if !matches!(codings.as_slice(), [c] if c.eq_ignore_ascii_case("chunked")) {
                return Err(io_error("unsupported transfer-encoding"));
            }
            // §6.3 item 3: with both, chunked wins and the connection must be closed.
            if has_cl {
                keep_alive = false;
            }
            Framing::Chunked(Chunked::new())
        } else if has_cl {
            let total = content_length(values("content-length"))?;
            Framing::Length { left: total, total }
        } else {
            keep_alive = false;
            Framing::UntilEof
        };
        Ok(Body {
            status,
            headers,
            keep_alive,
            framing,
            data: Vec::new(),
        })
    }

    /// Moves body bytes from `buf`, leaving whatever follows the body. True once the body
    /// is complete.
    fn take(&mut self, buf: &mut Vec<u8>) -> Result<bool, TransportError> {
        match &mut self.framing {
            Framing::Length { left, .. } => {
                let n = (*left).min(buf.len());
                self.data.extend_from_slice(&buf[..n]);
                buf.drain(..n);
                *left -= n;
                Ok(*left == 0)
            }
            Framing::Chunked(chunked) => {
                let n = chunked.decode(buf, &mut self.data).map_err(|e| match e {
                    ChunkError::TooLarge => too_large("response body larger than 1 MiB"),
                    ChunkError::TrailerTooLarge => {
                        too_large("response trailer section larger than 64 KiB")
                    }
                    ChunkError::Malformed(why) => {
                        io_error(format!("malformed chunked body: {why}"))
                    }
                })?;
                buf.drain(..n);
                Ok(chunked.is_done())
            }
            Framing::UntilEof => {
                if self.data.len() + buf.len() > MAX_BODY_BYTES {
                    return Err(too_large("response body larger than 1 MiB"));
                }
                self.data.append(buf);
                Ok(false)
            }
        }
    }

    /// The complete response; the body moves out, so this is called once.
    fn finish(&mut self, keep_alive: bool) -> (HttpResponse, bool) {
        let response = HttpResponse {
            status: self.status,
            headers: mem::take(&mut self.headers),
            body: Secret::new(mem::take(&mut self.data)),
        };
        (response, keep_alive)
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        self.data.zeroize();
    }
}

/// The values of every field named `name` (lower case), in order.
fn field_values<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The value of one or more `Content-Length` fields (RFC 9112 §6.3 item 5): a list of
/// identical decimal numbers is accepted, anything else is an error.
fn content_length<'a>(values: impl Iterator<Item = &'a str>) -> Result<usize, TransportError> {
    let mut length = None;
    for element in values.flat_map(|v| v.split(',')) {
        let element = element.trim();
        if element.is_empty() || !element.bytes().all(|b| b.is_ascii_digit()) {
            return Err(io_error("invalid content-length"));
        }
        // Saturating: any value this large is over the cap anyway.
        let n = element.bytes().fold(0usize, |n, d| {
            n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        });
        if length.is_some_and(|l| l != n) {
            return Err(io_error("conflicting content-length values"));
        }
        length = Some(n);
    }
    match length {
        None => Err(io_error("invalid content-length")),
        Some(n) if n > MAX_BODY_BYTES => Err(too_large("response body larger than 1 MiB")),
        Some(n) => Ok(n),
    }
}

/// A transport error of kind `Io`.
fn io_error(message: impl Into<String>) -> TransportError {
    TransportError {
        kind: TransportErrorKind::Io,
        message: message.into(),
    }
}

/// A transport error of kind `TooLarge`.
fn too_large(message: &str) -> TransportError {
    TransportError {
        kind: TransportErrorKind::TooLarge,
        message: message.to_owned(),
    }
}
