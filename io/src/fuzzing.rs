//! The logic of the fuzz targets that start from raw network bytes, `redirect` and
//! `token_response`, as library functions that the fuzz targets in `fuzz/` and the corpus
//! replay tests in `tests/fuzz_*.rs` both call.
//!
//! Each input's first byte chooses how the rest is split into reads (see
//! [`pizauth_fsm::fuzzing::split`]): the framing must decide the same whether the bytes
//! come all at once or a few at a time. What the framing makes of the bytes then goes to
//! the core, whose half of each target is in [`pizauth_fsm::fuzzing`].
//!
//! Only built with the `fuzzing` feature.

use pizauth_fsm::event::{HttpResponse, Scheme, TransportError};
use pizauth_fsm::fuzzing::{self, Cursor};

use crate::http1::{Progress, ReadProgress, RequestReader, ResponseParser};

/// Fuzz target `redirect`: byte 0 chooses the split (and, with its top bit, the HTTPS
/// listener); the rest is what a browser (or anyone) sends to a redirect listener.
///
/// The [`RequestReader`] must reach the same verdict however the bytes are split, refuse
/// only with 400 or 431, and refuse any bytes after its verdict. A request it reads goes
/// to a core with three pending requests (see [`fuzzing::interpret_redirect`]).
pub fn redirect(data: &[u8]) {
    let mut c = Cursor::new(data);
    let seed = c.byte();
    let bytes = c.rest();
    let whole = read_request(&[bytes]);
    let split = read_request(&fuzzing::split(bytes, seed));
    assert_eq!(
        whole, split,
        "the verdict depends on how the bytes were split"
    );
    match whole {
        ReadProgress::NeedMore => (),
        ReadProgress::Reject { status, .. } => {
            assert!(matches!(status, 400 | 431), "refused with status {status}")
        }
        ReadProgress::Request(request) => {
            let scheme = if seed & 0x80 == 0 {
                Scheme::Http
            } else {
                Scheme::Https
            };
            fuzzing::interpret_redirect(request, scheme);
        }
    }
}

/// Feeds `chunks` to a fresh reader; its verdict, or `NeedMore` if the bytes ran out.
fn read_request(chunks: &[&[u8]]) -> ReadProgress {
    let mut reader = RequestReader::new();
    for chunk in chunks {
        let progress = reader.feed(chunk);
        if progress != ReadProgress::NeedMore {
            assert!(
                matches!(reader.feed(b"x"), ReadProgress::Reject { status: 400, .. }),
                "a spent reader took more bytes"
            );
            let shown = format!("{reader:?}");
            assert!(!shown.contains("GET"), "Debug of a reader shows its bytes");
            return progress;
        }
    }
    ReadProgress::NeedMore
}

/// Fuzz target `token_response`: byte 0 chooses the split; the rest is what a token
/// endpoint sends back, read until the parser decides or the bytes end (then the peer
/// closes the stream).
///
/// The [`ResponseParser`] must reach the same verdict however the bytes are split (a
/// reused connection only when no bytes follow the response), and refuse bytes after
/// it. The response, or the transport error, then goes through the core's parsers and to
/// a server as the answer to a refresh and to a code exchange (see
/// [`fuzzing::answer_token_request`]).
pub fn token_response(data: &[u8]) {
    let mut c = Cursor::new(data);
    let seed = c.byte();
    let bytes = c.rest();
    let whole = read_response(&[bytes]);
    let split = read_response(&fuzzing::split(bytes, seed));
    match (&whole, &split) {
        (Ok((a, keep_a)), Ok((b, keep_b))) => {
            assert_eq!(a.status, b.status, "status depends on the split");
            assert_eq!(a.headers, b.headers, "headers depend on the split");
            assert!(a.body == b.body, "body depends on the split");
            // All at once, bytes after the response are seen; split, they may come later.
            assert!(!keep_a || *keep_b, "keep-alive depends on the split");
        }
        (Err(a), Err(b)) => assert_eq!(a.kind, b.kind, "the failure depends on the split"),
        _ => panic!(
            "the verdict depends on the split: {:?} / {:?}",
            whole.as_ref().map(|(r, _)| r.status),
            split.as_ref().map(|(r, _)| r.status)
        ),
    }
    fuzzing::answer_token_request(whole.map(|(r, _)| r), data);
}

/// Feeds `chunks` to a fresh parser, then the end of the stream; its verdict.
fn read_response(chunks: &[&[u8]]) -> Result<(HttpResponse, bool), TransportError> {
    let mut parser = ResponseParser::new();
    let mut progress = Progress::NeedMore;
    for chunk in chunks {
        progress = parser.feed(chunk);
        if !matches!(progress, Progress::NeedMore) {
            break;
        }
    }
    if matches!(progress, Progress::NeedMore) {
        progress = parser.eof();
    }
    assert!(
        matches!(parser.feed(b"x"), Progress::Failed(_)),
        "a spent parser took more bytes"
    );
    match progress {
        Progress::Done {
            response,
            keep_alive,
        } => {
            assert!(
                (200..=999).contains(&response.status),
                "final status {}",
                response.status
            );
            assert!(
                response.body.expose().len() <= crate::http1::MAX_BODY_BYTES,
                "a body over the cap"
            );
            Ok((response, keep_alive))
        }
        Progress::Failed(e) => Err(e),
        Progress::NeedMore => panic!("the parser still wants bytes after the end of the stream"),
    }
}
