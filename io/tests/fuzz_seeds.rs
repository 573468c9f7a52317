//! The hand-made seed inputs of the fuzz targets that start from network bytes
//! (`redirect`, `token_response`). Redirect seeds carry the real `state`s of the fuzz
//! harness's pending requests (its entropy is seeded), so they reach the code exchange.
//! The files in fuzz/corpus/TARGET/seed-* must equal what this code makes (a test fails
//! otherwise); `PIZAUTH_WRITE_SEEDS=1 cargo test -p pizauth-io --test fuzz_seeds`
//! rewrites them. Other tests check that they pass their targets and that the redirect
//! seeds named `exchange-*` really start an exchange.

use pizauth_fsm::event::Output;
use pizauth_fsm::fuzzing::redirect_harness;
use pizauth_io::fuzzing;
use pizauth_io::http1::{ReadProgress, RequestReader};

#[path = "../../fuzz/replay.rs"]
mod replay;

/// Named seed inputs.
type Seeds = Vec<(String, Vec<u8>)>;

/// Byte 0 of an input: how the rest is split (0 at once, odd tiny reads, even packets;
/// the top bit picks the HTTPS listener for redirects).
const WHOLE: u8 = 0;
const TINY: u8 = 1;
const PACKETS: u8 = 2;
const HTTPS: u8 = 0x80;

/// A browser's request for `target`.
fn browser(target: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\n\
         Host: localhost:8765\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
         Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
         Accept-Language: en-GB,en;q=0.5\r\n\
         Accept-Encoding: gzip, deflate, br, zstd\r\n\
         Connection: keep-alive\r\n\
         Upgrade-Insecure-Requests: 1\r\n\
         Sec-Fetch-Dest: document\r\n\
         Sec-Fetch-Mode: navigate\r\n\
         Sec-Fetch-Site: cross-site\r\n\
         \r\n"
    )
}

fn redirect_seeds() -> Seeds {
    let mut h = redirect_harness();
    let code = "code=M.C540_BAY.2.U.0fd1c7b2-8d6c-4b8e-9f3a-5e2d1c0b9a87";
    let target = |h: &mut pizauth_fsm::fuzzing::Harness, name: &str, tail: &str| {
        h.redirect_target(name, tail).expect("a pending account")
    };
    let a = target(&mut h, "a", code);
    let b = target(&mut h, "b", code);
    let c = target(&mut h, "c", code);
    let a_error = target(
        &mut h,
        "a",
        "error=access_denied&error_description=The+user+denied+access",
    );
    let b_no_tenant = b.replace("tenant=b&", "");
    let seeds: Vec<(&str, u8, String)> = vec![
        ("exchange-a", WHOLE, browser(&a)),
        ("exchange-a-tiny-reads", TINY, browser(&a)),
        ("exchange-b-path-and-query", PACKETS, browser(&b)),
        ("exchange-c-https", HTTPS, browser(&c)),
        (
            "exchange-a-http10",
            WHOLE,
            format!("GET {a} HTTP/1.0\r\nHost: localhost:8765\r\n\r\n"),
        ),
        (
            "exchange-a-leading-blank-lines",
            TINY,
            format!("\r\n\r\n{}", browser(&a)),
        ),
        (
            "exchange-a-bare-lf",
            WHOLE,
            browser(&a).replace("\r\n", "\n"),
        ),
        ("error-denied", WHOLE, browser(&a_error)),
        (
            "no-host",
            WHOLE,
            format!("GET {a} HTTP/1.1\r\nUser-Agent: curl/8.5.0\r\n\r\n"),
        ),
        (
            "two-hosts",
            WHOLE,
            format!("GET {a} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ),
        ("post", WHOLE, browser(&a).replacen("GET", "POST", 1)),
        (
            "unknown-state",
            WHOLE,
            browser("/?state=bm90LWEtc3RhdGU&code=x"),
        ),
        ("no-state-favicon", WHOLE, browser("/favicon.ico")),
        ("wrong-path", WHOLE, browser(&a.replacen('/', "/other", 1))),
        ("b-without-tenant", WHOLE, browser(&b_no_tenant)),
        ("empty-code", WHOLE, browser(&target(&mut h, "a", "code="))),
        (
            "no-code",
            WHOLE,
            browser(&target(&mut h, "a", "scope=mail")),
        ),
        ("fragment", WHOLE, browser(&format!("{a}#fragment"))),
        (
            "absolute-form",
            WHOLE,
            browser(&format!("http://localhost:8765{a}")),
        ),
        ("state-twice", WHOLE, browser(&format!("{a}&state=other"))),
        (
            "truncated-head",
            WHOLE,
            format!("GET {a} HTTP/1.1\r\nHost: localhost\r\n"),
        ),
        (
            "huge-header",
            PACKETS,
            format!(
                "GET {a} HTTP/1.1\r\nHost: l\r\nCookie: {}\r\n\r\n",
                "x".repeat(17_000)
            ),
        ),
        (
            "many-headers",
            WHOLE,
            format!(
                "GET {a} HTTP/1.1\r\nHost: l\r\n{}\r\n",
                "X-A: 1\r\n".repeat(70)
            ),
        ),
        (
            "garbage",
            TINY,
            "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}\u{1}\u{fc}\u{3}\u{3}".to_owned(),
        ),
        (
            "bad-method-token",
            WHOLE,
            format!("G(T {a} HTTP/1.1\r\nHost: l\r\n\r\n"),
        ),
    ];
    let mut out: Seeds = seeds
        .into_iter()
        .map(|(n, seed, text)| (n.to_owned(), [vec![seed], text.into_bytes()].concat()))
        .collect();
    let mut latin = format!("GET {a} HTTP/1.1\r\nHost: l\r\nX-Name: ").into_bytes();
    latin.extend_from_slice(b"caf\xe9\r\n\r\n");
    out.push(("header-not-utf8".to_owned(), [vec![WHOLE], latin].concat()));
    out
}

/// A response with `head` lines (CRLF added) and `body`, with a Content-Length.
fn with_length(status: &str, head: &[&str], body: &str) -> String {
    let mut s = format!("HTTP/1.1 {status}\r\n");
    for h in head {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s
}

const TOKEN: &str = r#"{"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.c2ln","token_type":"Bearer","expires_in":3599,"scope":"https://outlook.office.com/IMAP.AccessAsUser.All","refresh_token":"0.AXoAm9vYk3w-new-refresh"}"#;

fn token_response_seeds() -> Seeds {
    let json = [
        "Content-Type: application/json; charset=utf-8",
        "Cache-Control: no-store",
        "Pragma: no-cache",
    ];
    let chunked = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                   1a;name=value;quoted=\"a b\"\r\n{\"access_token\":\"tok-12345\r\n\
                   2A \r\n\",\"token_type\":\"bearer\",\"expires_in\":3600}\r\n\
                   0\r\nX-Trailer: yes\r\nServer-Timing: total;dur=12\r\n\r\n";
    let seeds: Vec<(&str, u8, String)> = vec![
        ("ok-content-length", WHOLE, with_length("200 OK", &json, TOKEN)),
        ("ok-content-length-tiny-reads", TINY, with_length("200 OK", &json, TOKEN)),
        ("ok-chunked-extensions-trailers", PACKETS, chunked.to_owned()),
        ("ok-chunked-tiny-reads", TINY, chunked.to_owned()),
        ("ok-http10-until-eof", WHOLE, format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{TOKEN}")),
        ("ok-no-refresh-token", WHOLE, with_length("200 OK", &json, r#"{"access_token":"at-no-refresh-0123","token_type":"bearer","expires_in":600}"#)),
        ("ok-no-expires-in", WHOLE, with_length("200 OK", &json, r#"{"access_token":"at-no-expiry-0123","token_type":"Bearer"}"#)),
        ("ok-expires-in-string", WHOLE, with_length("200 OK", &json, r#"{"access_token":"at-string-0123","token_type":"bearer","expires_in":"3600"}"#)),
        ("ok-expires-in-float", WHOLE, with_length("200 OK", &json, r#"{"access_token":"at-float-0123","token_type":"bearer","expires_in":3599.9}"#)),
        ("ok-expires-in-zero", WHOLE, with_length("200 OK", &json, r#"{"access_token":"at-zero-0123","token_type":"bearer","expires_in":0}"#)),
        ("ok-expires-in-huge", WHOLE, with_length("200 OK", &json, r#"{"access_token":"at-huge-0123","token_type":"bearer","expires_in":1e300}"#)),
        ("continue-then-ok", TINY, format!("HTTP/1.1 100 Continue\r\n\r\n{}", with_length("200 OK", &json, TOKEN))),
        ("leading-blank-lines", WHOLE, format!("\r\n\r\n{}", with_length("200 OK", &json, TOKEN))),
        ("keep-alive-then-more", WHOLE, format!("{}HTTP/1.1 200 OK\r\n", with_length("200 OK", &json, TOKEN))),
        ("connection-close", WHOLE, with_length("200 OK", &["Connection: close"], TOKEN)),
        ("bare-lf", WHOLE, with_length("200 OK", &json, TOKEN).replace("\r\n", "\n")),
        ("too-many-requests-retry-after", WHOLE, with_length("429 Too Many Requests", &["Retry-After: 120", json[0]], r#"{"error":"temporarily_unavailable"}"#)),
        ("unavailable-retry-after-date", WHOLE, with_length("503 Service Unavailable", &["Retry-After: Wed, 21 Oct 2026 07:28:00 GMT"], "")),
        ("server-error-html", PACKETS, with_length("500 Internal Server Error", &["Content-Type: text/html"], "<html><body>Oops</body></html>")),
        ("invalid-grant", WHOLE, with_length("400 Bad Request", &json, r#"{"error":"invalid_grant","error_description":"AADSTS70000: The provided grant has expired.\r\nTrace ID: 1"}"#)),
        ("invalid-client", WHOLE, with_length("401 Unauthorized", &["WWW-Authenticate: Basic realm=\"token\"", json[0]], r#"{"error":"invalid_client"}"#)),
        ("error-in-200", WHOLE, with_length("200 OK", &json, r#"{"error":"slow_down"}"#)),
        ("token-type-mac", WHOLE, with_length("200 OK", &json, r#"{"access_token":"at-mac-0123","token_type":"mac"}"#)),
        ("not-json", WHOLE, with_length("200 OK", &["Content-Type: text/plain"], "access_token=x&token_type=bearer")),
        ("redirect", WHOLE, with_length("302 Found", &["Location: https://login.example.com/"], "")),
        ("no-content", WHOLE, "HTTP/1.1 204 No Content\r\n\r\n".to_owned()),
        ("device-codes", WHOLE, with_length("200 OK", &json, r#"{"device_code":"GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS","user_code":"WDJB-MJHT","verification_uri":"https://example.com/device","verification_uri_complete":"https://example.com/device?user_code=WDJB-MJHT","expires_in":1800,"interval":5}"#)),
        ("metadata", WHOLE, with_length("200 OK", &json, r#"{"issuer":"https://id.example/","authorization_endpoint":"https://id.example/authorize","token_endpoint":"https://id.example/token","device_authorization_endpoint":"https://id.example/device","revocation_endpoint":"https://id.example/revoke"}"#)),
        ("truncated-body", WHOLE, with_length("200 OK", &json, TOKEN)[..300].to_owned()),
        ("truncated-head", WHOLE, "HTTP/1.1 200 OK\r\nContent-Type: applica".to_owned()),
        ("truncated-chunked", TINY, chunked[..chunked.len() - 20].to_owned()),
        ("length-and-chunked", WHOLE, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_owned()),
        ("conflicting-lengths", WHOLE, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_owned()),
        ("length-list", WHOLE, "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}".to_owned()),
        ("gzip-coding", WHOLE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_owned()),
        ("chunk-size-overflow", WHOLE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n".to_owned()),
        ("chunked-bad-crlf", WHOLE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n".to_owned()),
        ("switching-protocols", WHOLE, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n".to_owned()),
        ("obs-fold", WHOLE, format!("HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: {}\r\n\r\n{TOKEN}", TOKEN.len())),
        ("status-999", WHOLE, with_length("999 Odd", &[], "{}")),
        ("garbage", TINY, "\u{15}\u{3}\u{3}\u{0}\u{2}\u{2}\u{50}".to_owned()),
    ];
    seeds
        .into_iter()
        .map(|(n, seed, text)| (n.to_owned(), [vec![seed], text.into_bytes()].concat()))
        .collect()
}

#[test]
fn seed_files_are_what_this_code_makes() {
    replay::check_seed_files("redirect", &redirect_seeds());
    replay::check_seed_files("token_response", &token_response_seeds());
}

#[test]
fn seeds_pass_their_targets() {
    for (name, bytes) in redirect_seeds() {
        eprintln!("redirect {name}");
        fuzzing::redirect(&bytes);
    }
    for (name, bytes) in token_response_seeds() {
        eprintln!("token_response {name}");
        fuzzing::token_response(&bytes);
    }
}

#[test]
fn exchange_seeds_reach_the_code_exchange() {
    let mut checked = 0;
    for (name, bytes) in redirect_seeds() {
        if !name.starts_with("exchange-") {
            continue;
        }
        checked += 1;
        let mut reader = RequestReader::new();
        let ReadProgress::Request(request) = reader.feed(&bytes[1..]) else {
            panic!("{name}: not read as a request");
        };
        let mut h = redirect_harness();
        let (answer, out) = h.redirect(pizauth_fsm::event::Scheme::Http, request);
        assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        assert!(
            out.iter().any(|o| matches!(o, Output::SendHttp { .. })),
            "{name}: no exchange"
        );
    }
    assert!(checked >= 2, "only {checked} exchange seeds");
}
