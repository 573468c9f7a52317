use super::*;

use std::time::Duration;

use pizauth_fsm::Secret;
use pizauth_fsm::event::{RedirectRequest, TransportErrorKind};
use url::Url;

// ---------------------------------------------------------------------------------------
// Encoding requests and responses.

fn request(method: Method, url: &str, body: &str) -> HttpRequest {
    HttpRequest {
        method,
        url: Url::parse(url).expect("url").into(),
        body: Secret::new(body.as_bytes().to_vec()),
        authorization: None,
        timeout: Duration::from_secs(30),
    }
}

#[test]
fn basic_client_authentication_is_a_header() {
    let mut req = request(Method::Post, "https://a.example/token", "grant_type=x");
    req.authorization = Some(Secret::new("Basic aWQ6c2VjcmV0".to_owned()));
    let bytes = text(&encode_request(&req));
    let head = bytes.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        head.lines()
            .any(|l| l == "Authorization: Basic aWQ6c2VjcmV0"),
        "{bytes}"
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[test]
fn post_requests_carry_a_form_body() {
    let req = request(
        Method::Post,
        "https://login.example.com/oauth2/v2.0/token?tenant=x#frag",
        "grant_type=refresh_token&refresh_token=s3cr3t",
    );
    let expected = format!(
        "POST /oauth2/v2.0/token?tenant=x HTTP/1.1\r\n\
         Host: login.example.com\r\n\
         User-Agent: pizauth/{}\r\n\
         Accept: application/json\r\n\
         Connection: keep-alive\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 45\r\n\
         \r\n\
         grant_type=refresh_token&refresh_token=s3cr3t",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(text(&encode_request(&req)), expected);
}

#[test]
fn host_carries_only_a_non_default_port() {
    let host_line = |url: &str| {
        let bytes = encode_request(&request(Method::Get, url, ""));
        let head = text(&bytes);
        let line = head.lines().nth(1).expect("host line").to_owned();
        (head.lines().next().expect("request line").to_owned(), line)
    };
    assert_eq!(
        host_line("https://example.com:443/a"),
        ("GET /a HTTP/1.1".to_owned(), "Host: example.com".to_owned())
    );
    assert_eq!(
        host_line("http://example.com:80"),
        ("GET / HTTP/1.1".to_owned(), "Host: example.com".to_owned())
    );
    assert_eq!(
        host_line("http://127.0.0.1:8080/t").1,
        "Host: 127.0.0.1:8080"
    );
    assert_eq!(
        host_line("https://example.com:80/").1,
        "Host: example.com:80"
    );
    assert_eq!(host_line("http://[::1]:9000/?q").0, "GET /?q HTTP/1.1");
    assert_eq!(host_line("http://[::1]:9000/?q").1, "Host: [::1]:9000");
    assert_eq!(
        host_line("https://user:pw@example.com/x").1,
        "Host: example.com"
    );
}

#[test]
fn get_requests_have_no_body_headers() {
    let head = text(&encode_request(&request(
        Method::Get,
        "https://example.com/.well-known/openid-configuration",
        "",
    )));
    assert!(head.ends_with("\r\n\r\n"));
    assert!(!head.contains("Content-Length"));
    assert!(!head.contains("Content-Type"));
}

#[test]
fn responses_are_framed_for_closing() {
    let body = "pizauth processing authentication: you can safely close this page.";
    let expected = format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         Cache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\n\
         \r\n{body}",
        body.len()
    );
    assert_eq!(text(&encode_response(200, body)), expected);
    assert!(text(&encode_response(404, "")).starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(text(&encode_response(299, "")).starts_with("HTTP/1.1 299 \r\n"));
    assert!(text(&encode_response(7, "")).starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
    // Content-Length counts bytes, not characters.
    assert!(text(&encode_response(200, "é")).contains("Content-Length: 2\r\n"));
}

// ---------------------------------------------------------------------------------------
// Parsing responses.

/// A comparable summary of a [`Progress`].
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    NeedMore,
    Done {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        keep_alive: bool,
    },
    Failed(TransportErrorKind, String),
}

fn outcome(progress: Progress) -> Outcome {
    match progress {
        Progress::NeedMore => Outcome::NeedMore,
        Progress::Done {
            response,
            keep_alive,
        } => Outcome::Done {
            status: response.status,
            headers: response.headers.clone(),
            body: response.body.expose().clone(),
            keep_alive,
        },
        Progress::Failed(e) => Outcome::Failed(e.kind, e.message),
    }
}

/// Feeds `chunks` in order, then the end of the stream if `eof`; stops at the first
/// decided outcome.
fn parse_chunks(chunks: &[&[u8]], eof: bool) -> Outcome {
    let mut parser = ResponseParser::new();
    for chunk in chunks {
        match outcome(parser.feed(chunk)) {
            Outcome::NeedMore => {}
            decided => return decided,
        }
    }
    if eof {
        outcome(parser.eof())
    } else {
        Outcome::NeedMore
    }
}

/// Parses `bytes` whole, split at every boundary, and byte by byte, checks that all agree,
/// and returns the outcome.
fn parse(bytes: &[u8], eof: bool) -> Outcome {
    let whole = parse_chunks(&[bytes], eof);
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(parse_chunks(&[a, b], eof), whole, "split at {i}");
    }
    let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(parse_chunks(&bytewise, eof), whole, "byte by byte");
    whole
}

fn done(status: u16, headers: &[(&str, &str)], body: &[u8], keep_alive: bool) -> Outcome {
    Outcome::Done {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.to_vec(),
        keep_alive,
    }
}

fn done_with(
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
) -> Outcome {
    Outcome::Done {
        status,
        headers,
        body,
        keep_alive,
    }
}

fn failed(kind: TransportErrorKind, message: &str) -> Outcome {
    Outcome::Failed(kind, message.to_owned())
}

fn io(message: &str) -> Outcome {
    failed(TransportErrorKind::Io, message)
}

const BODY_TOO_LARGE: &str = "response body larger than 1 MiB";

#[test]
fn content_length_bodies() {
    let bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCONTENT-length: 18\r\n\r\n{\"access_token\":1}";
    assert_eq!(
        parse(bytes, false),
        done(
            200,
            &[
                ("content-type", "application/json"),
                ("content-length", "18")
            ],
            b"{\"access_token\":1}",
            true
        )
    );
    assert_eq!(parse(&bytes[..bytes.len() - 1], false), Outcome::NeedMore);
    assert_eq!(
        parse(&bytes[..bytes.len() - 1], true),
        io("connection closed after 17 of 18 body bytes")
    );
    let zero = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        parse(zero, false),
        done(200, &[("content-length", "0")], b"", true)
    );
}

#[test]
fn truncated_bodies_fail_at_eof() {
    let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    assert_eq!(
        parse(bytes, true),
        io("connection closed after 3 of 10 body bytes")
    );
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc";
    assert_eq!(
        parse(chunked, true),
        io("connection closed before the end of the chunked body")
    );
    let no_last = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
    assert_eq!(
        parse(no_last, true),
        io("connection closed before the end of the chunked body")
    );
    assert_eq!(
        parse(b"", true),
        io("connection closed before any response")
    );
    assert_eq!(
        parse(b"HTTP/1.1 200 OK\r\n", true),
        io("connection closed in the middle of the response head")
    );
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        4;name=value\r\nWiki\r\n\
        5 ; a=\"quoted;\"\r\npedia\r\n\
        E\r\n in\r\n\r\nchunks.\r\n\
        000\r\nExpires: never\r\nX-Other:\tx\r\n\r\n";
    assert_eq!(
        parse(bytes, false),
        done(
            200,
            &[("transfer-encoding", "chunked")],
            b"Wikipedia in\r\n\r\nchunks.",
            true
        )
    );
    let minimal = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(
        parse(minimal, false),
        done(200, &[("transfer-encoding", "Chunked")], b"", true)
    );
    let padded = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0002 \r\nab\r\n0\r\n\r\n";
    assert_eq!(
        parse(padded, false),
        done(200, &[("transfer-encoding", "chunked")], b"ab", true)
    );
}

#[test]
fn broken_chunked_framing_fails() {
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let case = |body: &str| parse(format!("{head}{body}").as_bytes(), true);
    let malformed = |why: &str| io(&format!("malformed chunked body: {why}"));
    assert_eq!(
        case("3\r\nabcX\r\n0\r\n\r\n"),
        malformed("missing crlf after chunk data")
    );
    assert_eq!(
        case("3\r\nabc\rX0\r\n\r\n"),
        malformed("missing crlf after chunk data")
    );
    assert_eq!(case("3\nabc\r\n0\r\n\r\n"), malformed("invalid chunk size"));
    assert_eq!(
        case("3\rabc\r\n0\r\n\r\n"),
        malformed("missing lf after chunk size")
    );
    assert_eq!(case("x\r\n"), malformed("invalid chunk size"));
    assert_eq!(case("\r\n"), malformed("invalid chunk size"));
    assert_eq!(case(";ext\r\n"), malformed("invalid chunk size"));
    assert_eq!(case("-1\r\n"), malformed("invalid chunk size"));
    assert_eq!(case("0x3\r\nabc\r\n"), malformed("invalid chunk size"));
    assert_eq!(case("3;a\nabc\r\n"), malformed("invalid chunk extension"));
    assert_eq!(case("0\r\nX: y\nZ"), malformed("invalid trailer field"));
    assert_eq!(
        case("0\r\nX: y\r\r"),
        malformed("missing lf after trailer field")
    );
    assert_eq!(
        case("0\r\n\rX"),
        malformed("missing lf at the end of the body")
    );
    // Long inputs: split at every boundary would take minutes, so feed them in pieces.
    let long = |body: &str| {
        let bytes = format!("{head}{body}").into_bytes();
        let pieces: Vec<&[u8]> = bytes.chunks(7).collect();
        let outcome = parse_chunks(&pieces, true);
        assert_eq!(parse_chunks(&[&bytes], true), outcome);
        outcome
    };
    let long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(5000));
    assert_eq!(long(&long_ext), malformed("chunk size line too long"));
    let zeros = format!("{}1\r\na\r\n0\r\n\r\n", "0".repeat(4000));
    assert_eq!(
        long(&zeros),
        done(200, &[("transfer-encoding", "chunked")], b"a", true)
    );
    let zeros = format!("{}1\r\na\r\n0\r\n\r\n", "0".repeat(5000));
    assert_eq!(long(&zeros), malformed("chunk size line too long"));
    let huge_trailer = format!("0\r\nX: {}\r\n\r\n", "y".repeat(MAX_HEAD_BYTES));
    assert_eq!(
        long(&huge_trailer),
        failed(
            TransportErrorKind::TooLarge,
            "response trailer section larger than 64 KiB"
        )
    );
}

#[test]
fn chunk_sizes_cannot_overflow() {
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for size in ["ffffffffffffffffffffffff", "10000000000000001", "100001"] {
        let bytes = format!("{head}{size}\r\n");
        assert_eq!(
            parse_chunks(&[bytes.as_bytes()], true),
            failed(TransportErrorKind::TooLarge, BODY_TOO_LARGE),
            "{size}"
        );
    }
}

#[test]
fn bodies_up_to_the_cap_are_accepted() {
    let body = vec![b'x'; MAX_BODY_BYTES];
    // Content-Length.
    let mut bytes =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY_BYTES}\r\n\r\n").into_bytes();
    bytes.extend_from_slice(&body);
    match parse_chunks(&[&bytes], false) {
        Outcome::Done { body: got, .. } => assert_eq!(got.len(), MAX_BODY_BYTES),
        other => panic!("{other:?}"),
    }
    // Chunked, in two chunks.
    let half = MAX_BODY_BYTES / 2;
    let mut bytes =
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{half:x}\r\n").into_bytes();
    bytes.extend_from_slice(&body[..half]);
    bytes.extend_from_slice(format!("\r\n{half:X}\r\n").as_bytes());
    bytes.extend_from_slice(&body[half..]);
    bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    match parse_chunks(&[&bytes], false) {
        Outcome::Done { body: got, .. } => assert_eq!(got.len(), MAX_BODY_BYTES),
        other => panic!("{other:?}"),
    }
    // Until the end of the stream, fed in pieces.
    let mut bytes = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    bytes.extend_from_slice(&body);
    let pieces: Vec<&[u8]> = bytes.chunks(4096).collect();
    match parse_chunks(&pieces, true) {
        Outcome::Done {
            body: got,
            keep_alive,
            ..
        } => {
            assert_eq!(got.len(), MAX_BODY_BYTES);
            assert!(!keep_alive);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bodies_over_the_cap_are_too_large() {
    let too_large = failed(TransportErrorKind::TooLarge, BODY_TOO_LARGE);
    let over = MAX_BODY_BYTES + 1;
    // Content-Length: refused from the head alone.
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {over}\r\n\r\n");
    assert_eq!(parse_chunks(&[head.as_bytes()], false), too_large);
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
    assert_eq!(parse_chunks(&[head.as_bytes()], false), too_large);
    // Chunked: a last chunk that crosses the cap.
    let half = MAX_BODY_BYTES / 2;
    let mut bytes =
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{half:x}\r\n").into_bytes();
    bytes.extend_from_slice(&vec![b'x'; half]);
    bytes.extend_from_slice(format!("\r\n{:x}\r\n", half + 1).as_bytes());
    assert_eq!(parse_chunks(&[&bytes], false), too_large);
    // Until the end of the stream.
    let mut bytes = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    bytes.extend_from_slice(&vec![b'x'; over]);
    let pieces: Vec<&[u8]> = bytes.chunks(4096).collect();
    assert_eq!(parse_chunks(&pieces, true), too_large);
}

#[test]
fn heads_are_bounded() {
    let head_too_large = failed(
        TransportErrorKind::TooLarge,
        "response head larger than 64 KiB",
    );
    // Exactly 64 KiB of head is accepted.
    let prefix = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ";
    let pad = MAX_HEAD_BYTES - prefix.len() - 4;
    let exact = format!("{prefix}{}\r\n\r\n", "p".repeat(pad));
    assert_eq!(exact.len(), MAX_HEAD_BYTES);
    assert!(matches!(
        parse_chunks(&[exact.as_bytes()], false),
        Outcome::Done { .. }
    ));
    let over = format!("{prefix}{}\r\n\r\n", "p".repeat(pad + 1));
    assert_eq!(parse_chunks(&[over.as_bytes()], false), head_too_large);
    // An endless head is refused without waiting for its end.
    let endless = format!("{prefix}{}", "p".repeat(MAX_HEAD_BYTES));
    assert_eq!(parse_chunks(&[endless.as_bytes()], false), head_too_large);
    // Interim responses count towards the limit.
    let interim = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_HEAD_BYTES / 25 + 1);
    assert_eq!(parse_chunks(&[interim.as_bytes()], false), head_too_large);
    // 64 header fields are accepted, 65 are not.
    let fields = |n: usize| {
        let mut head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_owned();
        for i in 1..n {
            head.push_str(&format!("X-{i}: v\r\n"));
        }
        head.push_str("\r\n");
        head
    };
    assert!(matches!(
        parse_chunks(&[fields(MAX_HEADERS).as_bytes()], false),
        Outcome::Done { .. }
    ));
    assert_eq!(
        parse_chunks(&[fields(MAX_HEADERS + 1).as_bytes()], false),
        failed(
            TransportErrorKind::TooLarge,
            "response has more than 64 header fields"
        )
    );
}

#[test]
fn interim_and_bodiless_responses() {
    let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(
        parse(bytes, false),
        done(200, &[("content-length", "2")], b"{}", true)
    );
    let no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(
        parse(no_content, false),
        done(204, &[("content-length", "5")], b"", true)
    );
    let not_modified = b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        parse(not_modified, false),
        done(304, &[("transfer-encoding", "chunked")], b"", true)
    );
    assert_eq!(
        parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false),
        io("unexpected 101 switching protocols response")
    );
    // Empty lines before the status line are tolerated.
    assert_eq!(
        parse(b"\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        done(200, &[("content-length", "0")], b"", true)
    );
}

#[test]
fn connection_reuse() {
    let keep_alive = |bytes: &[u8], eof: bool| match parse(bytes, eof) {
        Outcome::Done { keep_alive, .. } => keep_alive,
        other => panic!("{other:?}"),
    };
    assert!(keep_alive(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        false
    ));
    assert!(!keep_alive(
        b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n",
        false
    ));
    assert!(!keep_alive(
        b"HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 0\r\n\r\n",
        false
    ));
    assert!(!keep_alive(
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        false
    ));
    assert!(keep_alive(
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
        false
    ));
    assert!(!keep_alive(b"HTTP/1.1 200 OK\r\n\r\nto the end", true));
    // Both framings: chunked wins, and the connection is not reused.
    let both = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
    assert!(!keep_alive(both, false));
    // Bytes after the response: it is complete, but the connection is suspect.
    let extra = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1";
    assert_eq!(
        parse_chunks(&[extra], false),
        done(200, &[("content-length", "1")], b"x", false)
    );
}

#[test]
fn bad_framing_headers_fail() {
    let case = |head: &str| {
        parse(
            format!("HTTP/1.1 200 OK\r\n{head}\r\n\r\n").as_bytes(),
            true,
        )
    };
    assert_eq!(
        case("Content-Length: 5, 6"),
        io("conflicting content-length values")
    );
    assert_eq!(
        case("Content-Length: 5\r\nContent-Length: 6"),
        io("conflicting content-length values")
    );
    for bad in ["-5", "+5", "", "5 5", "0x5", "5,", "five"] {
        assert_eq!(
            case(&format!("Content-Length: {bad}")),
            io("invalid content-length"),
            "{bad:?}"
        );
    }
    assert_eq!(
        parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nab",
            false
        ),
        done(
            200,
            &[("content-length", "2, 2"), ("content-length", "2")],
            b"ab",
            true
        )
    );
    assert_eq!(
        case("Transfer-Encoding: gzip, chunked"),
        io("unsupported transfer-encoding")
    );
    assert_eq!(
        case("Transfer-Encoding: chunked, chunked"),
        io("unsupported transfer-encoding")
    );
    assert_eq!(
        case("Transfer-Encoding: identity"),
        io("unsupported transfer-encoding")
    );
    assert_eq!(
        case("Transfer-Encoding:"),
        io("unsupported transfer-encoding")
    );
    assert_eq!(
        parse(
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            true
        ),
        io("transfer-encoding in an http/1.0 response")
    );
}

#[test]
fn malformed_heads_fail() {
    let is_malformed = |bytes: &[u8]| match parse_chunks(&[bytes], true) {
        Outcome::Failed(TransportErrorKind::Io, message) => message.starts_with("malformed"),
        _ => false,
    };
    assert!(is_malformed(b"garbage\r\n\r\n"));
    assert!(is_malformed(b"HTTP/2 200 OK\r\n\r\n"));
    assert!(is_malformed(b"HTTP/1.1 20 OK\r\n\r\n"));
    assert!(is_malformed(b"HTTP/1.1 099 Low\r\n\r\n"));
    assert!(is_malformed(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"));
    assert!(is_malformed(b"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n"));
    assert!(is_malformed(b"HTTP/1.1 200 OK\r\nA: b\r\n  folded\r\n\r\n"));
    assert!(is_malformed(b"HTTP/1.1 200 OK\r\r\n\r\n"));
}

#[test]
fn header_values_that_are_not_utf8_are_kept_lossily() {
    let bytes = b"HTTP/1.1 200 OK\r\nX-Odd: caf\xe9\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        parse(bytes, false),
        done(
            200,
            &[("x-odd", "caf\u{fffd}"), ("content-length", "0")],
            b"",
            true
        )
    );
}

#[test]
fn a_spent_parser_stays_spent() {
    let mut parser = ResponseParser::new();
    assert!(!parser.has_started());
    assert!(matches!(parser.feed(b""), Progress::NeedMore));
    assert!(!parser.has_started());
    assert!(matches!(parser.feed(b"H"), Progress::NeedMore));
    assert!(parser.has_started());
    assert!(matches!(
        parser.feed(b"TTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        Progress::Done { .. }
    ));
    assert_eq!(
        outcome(parser.feed(b"x")),
        io("bytes after the end of the response")
    );
    assert_eq!(outcome(parser.eof()), io("response already complete"));
}

#[test]
fn debug_output_never_shows_the_body() {
    let secret = "ya29.super-secret-token";
    let mut parser = ResponseParser::new();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        secret.len() + 1
    );
    assert!(matches!(parser.feed(head.as_bytes()), Progress::NeedMore));
    assert!(matches!(parser.feed(secret.as_bytes()), Progress::NeedMore));
    let debug = format!("{parser:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("body_bytes: 23"), "{debug}");
    let progress = parser.feed(b"!");
    let debug = format!("{progress:?}");
    assert!(matches!(progress, Progress::Done { .. }));
    assert!(!debug.contains(secret), "{debug}");
}

/// A small deterministic generator, so the garbage below is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_never_panics() {
    let seeds: [&[u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: t\r\n\r\n",
        b"HTTP/1.0 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nbody",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ];
    let alphabet = b"\r\n :;0123456789abcdefABCDEF\t\x00\xff-,HTTP/.";
    let mut rng = Lcg(0x5eed);
    for round in 0..20_000 {
        let mut bytes = seeds[round % seeds.len()].to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(3) {
                0 if at < bytes.len() => bytes[at] = alphabet[rng.below(alphabet.len())],
                1 => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        // However the bytes are split, the outcome is the same, except that bytes after
        // a complete response can only spoil keep-alive if they arrived with it.
        let split = rng.below(bytes.len() + 1);
        let (a, b) = bytes.split_at(split);
        let eof = round % 2 == 0;
        let whole = parse_chunks(&[&bytes], eof);
        match (parse_chunks(&[a, b], eof), &whole) {
            (
                Outcome::Done {
                    status,
                    headers,
                    body,
                    keep_alive: true,
                },
                Outcome::Done {
                    keep_alive: false, ..
                },
            ) => assert_eq!(done_with(status, headers, body, false), whole, "{bytes:?}"),
            (got, _) => assert_eq!(got, whole, "{bytes:?} split at {split}"),
        }
        assert_eq!(read_chunks(&[a, b]), read_chunks(&[&bytes]), "{bytes:?}");
    }
    for _ in 0..2_000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = parse_chunks(&[&bytes], true);
        let _ = RequestReader::new().feed(&bytes);
    }
}

// ---------------------------------------------------------------------------------------
// Reading redirect requests.

fn read_chunks(chunks: &[&[u8]]) -> ReadProgress {
    let mut reader = RequestReader::new();
    for chunk in chunks {
        match reader.feed(chunk) {
            ReadProgress::NeedMore => {}
            decided => return decided,
        }
    }
    ReadProgress::NeedMore
}

/// Reads `bytes` whole, split at every boundary and byte by byte; all must agree.
fn read(bytes: &[u8]) -> ReadProgress {
    let whole = read_chunks(&[bytes]);
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(read_chunks(&[a, b]), whole, "split at {i}");
    }
    let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(read_chunks(&bytewise), whole, "byte by byte");
    whole
}

fn redirect(method: &str, target: &str, host: Option<&str>) -> ReadProgress {
    ReadProgress::Request(RedirectRequest {
        method: method.to_owned(),
        target: target.to_owned(),
        host: host.map(str::to_owned),
    })
}

fn rejected(status: u16, reason: &'static str) -> ReadProgress {
    ReadProgress::Reject { status, reason }
}

#[test]
fn redirect_requests_are_read() {
    let bytes =
        b"GET /?state=abc&code=xyz HTTP/1.1\r\nHost: localhost:8765\r\nUser-Agent: test\r\n\r\n";
    assert_eq!(
        read(bytes),
        redirect("GET", "/?state=abc&code=xyz", Some("localhost:8765"))
    );
    assert_eq!(read(&bytes[..bytes.len() - 1]), ReadProgress::NeedMore);
    assert_eq!(
        read(b"\r\nPOST /x HTTP/1.0\nhost:  h \n\nbody bytes are ignored"),
        redirect("POST", "/x", Some("h"))
    );
    assert_eq!(read(b"GET / HTTP/1.1\r\n\r\n"), redirect("GET", "/", None));
}

#[test]
fn bad_redirect_requests_are_rejected() {
    assert_eq!(read(b"garbage\r\n\r\n"), rejected(400, "malformed request"));
    assert_eq!(
        read(b"GET / HTTP/3\r\n\r\n"),
        rejected(400, "malformed request")
    );
    assert_eq!(
        read(b"GET  / HTTP/1.1\r\n\r\n"),
        rejected(400, "malformed request")
    );
    assert_eq!(
        read(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        rejected(400, "more than one host header")
    );
    assert_eq!(
        read(b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n"),
        rejected(400, "header value is not utf-8")
    );
    assert_eq!(
        read(b"GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n"),
        rejected(400, "header value is not utf-8")
    );
    // httparse hands out the target as a str, so it must refuse bytes that are not UTF-8
    // (it accepts UTF-8 in targets, which the core then judges).
    assert_eq!(
        read(b"GET /caf\xe9 HTTP/1.1\r\n\r\n"),
        rejected(400, "malformed request")
    );
    assert_eq!(
        read(b"GET /\x7f HTTP/1.1\r\n\r\n"),
        rejected(400, "malformed request")
    );
}

#[test]
fn redirect_requests_are_bounded() {
    let prefix = "GET /?state=";
    let suffix = " HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let pad = MAX_REDIRECT_REQUEST_BYTES - prefix.len() - suffix.len();
    let exact = format!("{prefix}{}{suffix}", "s".repeat(pad));
    assert_eq!(exact.len(), MAX_REDIRECT_REQUEST_BYTES);
    assert!(matches!(
        read_chunks(&[exact.as_bytes()]),
        ReadProgress::Request(_)
    ));
    let pieces: Vec<&[u8]> = exact.as_bytes().chunks(100).collect();
    assert!(matches!(read_chunks(&pieces), ReadProgress::Request(_)));
    let over = format!("{prefix}{}{suffix}", "s".repeat(pad + 1));
    assert_eq!(
        read_chunks(&[over.as_bytes()]),
        rejected(431, "request head too large")
    );
    let pieces: Vec<&[u8]> = over.as_bytes().chunks(100).collect();
    assert_eq!(
        read_chunks(&pieces),
        rejected(431, "request head too large")
    );
    // Empty lines before the request line count too.
    let blanks = "\r\n".repeat(MAX_REDIRECT_REQUEST_BYTES / 2);
    assert_eq!(
        read_chunks(&[blanks.as_bytes()]),
        rejected(431, "request head too large")
    );

    let fields = |n: usize| {
        let mut head = "GET / HTTP/1.1\r\nHost: h\r\n".to_owned();
        for i in 1..n {
            head.push_str(&format!("X-{i}: v\r\n"));
        }
        head.push_str("\r\n");
        head
    };
    assert!(matches!(
        read_chunks(&[fields(MAX_HEADERS).as_bytes()]),
        ReadProgress::Request(_)
    ));
    assert_eq!(
        read_chunks(&[fields(MAX_HEADERS + 1).as_bytes()]),
        rejected(431, "too many header fields")
    );
}

#[test]
fn a_spent_reader_rejects_more() {
    let mut reader = RequestReader::new();
    assert!(matches!(
        reader.feed(b"GET /?code=secret-code HTTP/1.1\r\n"),
        ReadProgress::NeedMore
    ));
    let debug = format!("{reader:?}");
    assert!(!debug.contains("secret-code"), "{debug}");
    assert!(matches!(reader.feed(b"\r\n"), ReadProgress::Request(_)));
    assert_eq!(reader.feed(b"more"), rejected(400, "request already read"));
}
