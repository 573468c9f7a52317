//! Sans-IO HTTP/1.1 framing (RFC 9112): bytes in, messages out, no sockets.
//!
//! Two directions, two pairs of tools:
//!
//! - Token endpoints (we are the client): [`encode_request`] turns the core's
//!   [`HttpRequest`] into bytes to write, and a [`ResponseParser`] is fed the bytes read
//!   back until it reports [`Progress::Done`] or [`Progress::Failed`].
//! - Redirect listeners (we are the server): a [`RequestReader`] is fed the bytes of one
//!   connection until it reports a [`RedirectRequest`](pizauth_fsm::event::RedirectRequest)
//!   for the core or a rejection, and [`encode_response`] frames the answer.
//!
//! Everything a peer sends is bounded ([`MAX_HEAD_BYTES`], [`MAX_HEADERS`],
//! [`MAX_BODY_BYTES`], [`MAX_REDIRECT_REQUEST_BYTES`]) and no input makes these types panic;
//! they are public so the fuzz targets can drive them with raw bytes.
//!
//! Request and response bodies carry secrets (codes, verifiers, tokens). Nothing here logs,
//! the parsers' `Debug` output shows only byte counts, error messages never quote a body,
//! and the parsers wipe their buffers when dropped (best effort: a buffer that grew may
//! have left copies behind in freed memory).

mod chunked;
mod redirect;
mod response;

use pizauth_fsm::event::{HttpRequest, Method};

pub use redirect::{MAX_REDIRECT_REQUEST_BYTES, ReadProgress, RequestReader};
pub use response::{Progress, ResponseParser};

/// The largest response body accepted from a token endpoint, in bytes (1 MiB). A larger
/// one fails with [`TransportErrorKind::TooLarge`](pizauth_fsm::event::TransportErrorKind).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The largest response head (status line and header fields, interim `1xx` responses
/// included) accepted from a token endpoint, in bytes (64 KiB).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The most header fields accepted in one response or request head.
pub const MAX_HEADERS: usize = 64;

/// The `User-Agent` we send.
const USER_AGENT: &str = concat!("pizauth/", env!("CARGO_PKG_VERSION"));

/// Frames `req` as an HTTP/1.1 request.
///
/// The request line carries the URL's path and query (never its fragment or user info);
/// `Host` carries the port only when it is not the scheme's default. `POST` adds
/// `Content-Type: application/x-www-form-urlencoded` and `Content-Length`; a `GET` sends no
/// body. The result contains the request body, which holds secrets: write it to the
/// connection and drop it, never log it.
pub fn encode_request(req: &HttpRequest) -> Vec<u8> {
    let url = &req.url;
    let method = match req.method {
        Method::Get => "GET",
        Method::Post => "POST",
    };
    let path = match url.path() {
        "" => "/",
        p => p,
    };
    // `Url::port` is `None` when the port is absent or the scheme's default, and
    // `host_str` already brackets IPv6 literals, so this is the RFC 9112 §3.2 `Host`.
    let host = url.host_str().unwrap_or_default();
    // Room for everything up front (the header holding the client secret, and the body
    // appended below), so that growing the buffer leaves no copy of a secret behind.
    let auth = req.authorization.as_ref().map_or("", |a| a.as_str());
    let room = 512 + host.len() + path.len() + url.query().map_or(0, str::len);
    let mut out = String::with_capacity(room + auth.len() + req.body.expose().len());
    out.push_str(method);
    out.push(' ');
    out.push_str(path);
    if let Some(query) = url.query() {
        out.push('?');
        out.push_str(query);
    }
    out.push_str(" HTTP/1.1\r\nHost: ");
    out.push_str(host);
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str("\r\nUser-Agent: ");
    out.push_str(USER_AGENT);
    out.push_str("\r\nAccept: application/json\r\nConnection: keep-alive\r\n");
    if !auth.is_empty() {
        out.push_str("Authorization: ");
        out.push_str(auth);
        out.push_str("\r\n");
    }
    let body = req.body.expose();
    if req.method == Method::Post {
        out.push_str("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ");
        out.push_str(&body.len().to_string());
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if req.method == Method::Post {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// Frames a complete plain-text answer for a redirect connection, which the driver then
/// closes: `Content-Type: text/plain; charset=utf-8`, `Content-Length`,
/// `Connection: close`, `Cache-Control: no-store` (the page follows a URL holding a code)
/// and `X-Content-Type-Options: nosniff`. A `status` outside 100-999 is sent as 500.
pub fn encode_response(status: u16, body: &str) -> Vec<u8> {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         Cache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\n\
         \r\n",
        reason_phrase(status),
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The reason phrase for the statuses pizauth sends; empty (which RFC 9112 §4 allows)
/// for the rest.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Drops the empty lines before a head (RFC 9112 §2.2 lets both sides ignore them) and
/// looks for the head's end with [`find_head_end`]: returns how many bytes were dropped,
/// and where the head ends if it is complete. While it is not, `*scanned` moves on, so
/// bytes are scanned about once however they arrive.
fn locate_head(buf: &mut Vec<u8>, scanned: &mut usize) -> (usize, Option<usize>) {
    let blank = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if blank > 0 {
        buf.drain(..blank);
        *scanned = 0;
    }
    let end = find_head_end(buf, *scanned);
    if end.is_none() {
        *scanned = buf.len().saturating_sub(2);
    }
    (blank, end)
}

/// Where the head that starts at `buf[0]` ends: the index just past the first empty line
/// (`\n\n` or `\n\r\n`), searching from `from`. Callers pass the previous `buf.len() - 2`
/// (saturating) as `from` so that bytes are scanned about once however they are split.
///
/// A head never starts with an empty line here: callers skip leading CR/LF first, as
/// RFC 9112 §2.2 allows.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Whether a comma-separated header field value (RFC 9110 §5.6.1) holds `token`,
/// compared case-insensitively.
fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests;
