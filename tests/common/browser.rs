//! A tiny browser: `GET` a URL (http, or https with a pinned certificate), follow the
//! provider's `302` to pizauth's redirect listener, return what the user would see.
//!
//! `localhost` is always 127.0.0.1 here (pizauth's listeners bind 127.0.0.1 only, and a
//! resolver may prefer `::1`).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

/// An HTTP response as the browser saw it.
#[derive(Clone, Debug)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The two steps of an authorisation in the browser.
#[derive(Clone, Debug)]
pub struct Visit {
    /// Where the provider redirected to.
    pub redirect: String,
    /// What the redirect listener answered.
    pub page: Page,
}

/// Visits the authorisation `url` (on a plain-HTTP provider) and follows its `302`.
/// An `https` redirect is checked against `tls` (see [`super::tls::pinned_client`]).
pub fn visit(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> io::Result<Visit> {
    let first = get(url, None)?;
    if first.status != 302 {
        return Err(io::Error::other(format!(
            "the provider answered {} instead of 302: {first:?}",
            first.status
        )));
    }
    let redirect = first
        .header("Location")
        .ok_or_else(|| io::Error::other("302 without Location"))?
        .to_owned();
    let page = get(&redirect, tls)?;
    Ok(Visit { redirect, page })
}

/// `GET url`; `tls` is required for an `https` URL.
pub fn get(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> io::Result<Page> {
    let url = Url::parse(url).map_err(io::Error::other)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| io::Error::other("no port"))?;
    let ip = if host == "localhost" {
        "127.0.0.1"
    } else {
        &host
    };
    let tcp = TcpStream::connect((ip, port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: pizauth-e2e\r\n\
         Connection: close\r\n\r\n"
    );
    let raw = match url.scheme() {
        "http" => exchange(tcp, request.as_bytes())?,
        "https" => {
            let config = tls.ok_or_else(|| io::Error::other("https needs a TLS config"))?;
            let name =
                rustls::pki_types::ServerName::try_from(host.clone()).map_err(io::Error::other)?;
            let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
            exchange(rustls::StreamOwned::new(conn, tcp), request.as_bytes())?
        }
        other => return Err(io::Error::other(format!("unsupported scheme {other}"))),
    };
    parse_response(&raw)
}

/// Writes `request`, then reads until the server closes (or the body is complete).
fn exchange(mut stream: impl Read + Write, request: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(request)?;
    stream.flush()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A peer that closes without TLS close_notify: keep what arrived, and let
            // the parser judge whether it is complete.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !out.is_empty() => {
                return Ok(out);
            }
            Err(e) => return Err(e),
        }
        if complete(&out) {
            return Ok(out);
        }
    }
}

/// Whether `raw` holds a head and all of the body its `Content-Length` announces.
fn complete(raw: &[u8]) -> bool {
    parse_response(raw).is_ok()
}

fn parse_response(raw: &[u8]) -> io::Result<Page> {
    let bad = |why: &str| io::Error::other(format!("{why}: {:?}", String::from_utf8_lossy(raw)));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no complete response head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = &raw[end + 4..];
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .ok_or_else(|| bad("no Content-Length"))?;
    if body.len() < length {
        return Err(bad("truncated body"));
    }
    Ok(Page {
        status,
        headers,
        body: String::from_utf8_lossy(&body[..length]).into_owned(),
    })
}
