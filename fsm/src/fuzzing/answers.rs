//! The core's half of the `redirect` and `token_response` targets, whose framing half
//! (raw bytes through `pizauth-io`'s parsers) lives in `pizauth_io::fuzzing`.

use std::time::Duration;

use url::Url;

use crate::config::{
    DEFAULT_REFRESH_AT_LEAST, DEFAULT_REFRESH_BEFORE_EXPIRY, DEFAULT_REFRESH_RETRY,
};
use crate::event::{HttpResponse, Output, RedirectRequest, Scheme, TransportError};
use crate::oauth::{self, TokenError};
use crate::protocol::{Reply, Request, TokenStatus};
use crate::server::Tunables;
use crate::time::Instant;

use super::Harness;

/// The accounts [`redirect_harness`] leaves pending.
pub const PENDING: [&str; 3] = ["a", "b", "c"];

/// A harness for the standard config where `a`, `b` and `c` (in that order) are pending
/// authorisation. Entropy is seeded, so their `state`s are the same in every run, and
/// seed inputs can carry them.
pub fn redirect_harness() -> Harness {
    let mut h = Harness::standard();
    for name in PENDING {
        h.show(name);
    }
    h
}

/// The core's half of fuzz target `redirect`: `request`, as the redirect listener framed
/// it, arrives at a server with three pending requests ([`redirect_harness`]).
///
/// Checked, besides everything the [`Harness`] checks: exactly one answer, with status
/// 200, 400, 404 or 405; a method other than `GET` is 405, and a `GET` without `Host`
/// 400; a `200`
/// that starts an exchange moves exactly one pending account to exchanging and sends
/// exactly one request, carrying the request's first `code`; a `400` may fail exactly one
/// pending account, and only when the request carries `error`; any other answer changes
/// nothing. `Debug` of the request never shows its query.
pub fn interpret_redirect(request: RedirectRequest, scheme: Scheme) {
    if let Some((path, query)) = request.target.split_once('?') {
        let shown = format!("{request:?}");
        let echoed = [
            request.method.as_str(),
            path,
            request.host.as_deref().unwrap_or(""),
        ]
        .iter()
        .any(|s| s.contains(query));
        assert!(
            query.len() < 8 || echoed || !shown.contains(query),
            "Debug shows the query of a redirect"
        );
    }
    let mut h = redirect_harness();
    h.hear(request.target.as_bytes());
    h.hear(request.host.as_deref().unwrap_or("").as_bytes());
    let before = h.status();
    let (answer, out) = h.redirect(scheme, request.clone());
    let after = h.status();
    let sent: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::SendHttp { http, .. } => Some(http),
            _ => None,
        })
        .collect();
    let changed: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (x.name.clone(), &x.state, &y.state))
        .collect();
    // The method is judged first, then the Host.
    if request.method != "GET" {
        assert_eq!(answer.status, 405, "a {} was not refused", request.method);
    } else if request.host.is_none() {
        assert_eq!(answer.status, 400, "a request without Host was not refused");
    }
    let query = request
        .target
        .split('#')
        .next()
        .and_then(|t| t.split_once('?'))
        .map_or("", |(_, q)| q);
    let param = |key: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    if sent.is_empty() {
        match changed.as_slice() {
            [] => (),
            [(name, TokenStatus::Pending { .. }, TokenStatus::NoToken { last_error })] => {
                assert_eq!(
                    answer.status, 400,
                    "{name} failed, but the answer is not 400"
                );
                assert!(last_error.is_some(), "{name} failed without saying why");
                assert!(param("error").is_some(), "{name} failed without an error=");
            }
            other => panic!("a redirect changed {other:?} without an exchange"),
        }
        return;
    }
    assert_eq!(
        answer.status, 200,
        "an exchange started, but the answer is not 200"
    );
    let [http] = sent.as_slice() else {
        panic!("one redirect sent {} requests", sent.len());
    };
    match changed.as_slice() {
        [
            (_, TokenStatus::Pending { url: Some(_), .. }, TokenStatus::Pending { url: None, .. }),
        ] => {}
        other => panic!("an exchange started, but the accounts changed thus: {other:?}"),
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(http.body.expose())
        .into_owned()
        .collect();
    let field = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(field("grant_type").as_deref(), Some("authorization_code"));
    assert_eq!(
        field("code"),
        param("code"),
        "the exchange carries another code"
    );
}

/// The core's half of fuzz target `token_response`: the outcome of a token request, as
/// `pizauth-io` framed it (a response, or a transport error), is checked by every parser
/// of the core and then given to a server twice: as the answer to a refresh and as the
/// answer to a code exchange. `heard` is the fuzzer's input (text it chose is not a leak).
///
/// The rules checked: a token response is a token only with a 2xx status; a transient
/// status or a transport error keeps the old token (refresh) or retries (exchange); any
/// other failure drops the token and says why; a new token replaces the old one, and a new
/// refresh token the old one (an absent one keeps it); a token is handed out until its
/// `expires_in` has passed and never after.
pub fn answer_token_request(outcome: Result<HttpResponse, TransportError>, heard: &[u8]) {
    if let Ok(response) = &outcome {
        check_parsers(response);
    }
    as_refresh(&outcome, heard);
    as_exchange(&outcome, heard);
}

/// Every parser of provider responses, on one response: none may panic, and their
/// verdicts must agree with the status.
fn check_parsers(response: &HttpResponse) {
    let success = (200..300).contains(&response.status);
    match oauth::parse_token_response(response) {
        Ok(_) => assert!(success, "a token in a {} response", response.status),
        Err(e) => {
            let _ = e.to_string();
            if let TokenError::Transient { status, .. } = e {
                assert!(oauth::is_transient_status(status));
            }
        }
    }
    match oauth::parse_device_response(response) {
        Ok(d) => {
            assert!(success, "device codes in a {} response", response.status);
            assert!(
                d.interval >= Duration::from_secs(1),
                "a device poll interval of 0"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let issuer = Url::parse("https://id.example/").ok();
    if let Some(issuer) = issuer
        && let Ok(m) = oauth::parse_metadata(response, &issuer)
    {
        assert!(success, "metadata in a {} response", response.status);
        for u in [
            m.authorization_endpoint,
            m.token_endpoint,
            m.device_authorization_endpoint,
            m.revocation_endpoint,
        ]
        .into_iter()
        .flatten()
        {
            assert!(matches!(u.scheme(), "http" | "https"), "endpoint {u}");
        }
    }
    let _ = oauth::retry_after(response);
}

/// The outcome answers a refresh of account `a`, which holds a valid token.
fn as_refresh(outcome: &Result<HttpResponse, TransportError>, heard: &[u8]) {
    let mut h = Harness::with_tokens();
    h.hear(heard);
    let old = h.dump();
    let Some(old) = old.accounts.get("a") else {
        panic!("the setup lost a's token");
    };
    let (old_access, old_refresh) = (old.access_token.clone(), old.refresh_token.clone());
    let reply = h.ask(&Request::Refresh {
        account: "a".into(),
        with_url: false,
    });
    assert!(
        matches!(reply, Some(Reply::Done)),
        "refresh answered {reply:?}"
    );
    let Some(id) = h.in_flight().last().copied() else {
        panic!("refresh sent nothing");
    };
    let sent = h.now();
    let out = match outcome {
        Ok(r) => h.respond(id, r.clone()),
        Err(e) => h.fail(id, e.clone()),
    };
    let verdict = outcome.as_ref().map(oauth::parse_token_response);
    let dump = h.dump();
    match verdict {
        Ok(Ok(t)) => {
            let Some(got) = dump.accounts.get("a") else {
                panic!("a token response was accepted but the token is gone");
            };
            assert_eq!(
                got.access_token, t.access_token,
                "the new token was not taken"
            );
            let refresh = t.refresh_token.clone().or(old_refresh);
            assert_eq!(
                got.refresh_token, refresh,
                "the refresh token was not kept or replaced"
            );
            let lifetime = t.expires_in.unwrap_or(DEFAULT_REFRESH_AT_LEAST);
            let expires = sent.boot + lifetime;
            assert_eq!(
                got.expires,
                sent.wall_at(expires),
                "the expiry is not sent + expires_in"
            );
            // Handed out until it expires, not after (the harness checks the latter).
            // (`show` of an expired token would start a refresh: not before the check
            // of the refresh's timing below.)
            if expires > h.now().boot {
                let token = h.show("a");
                assert!(
                    matches!(&token, Some(Reply::Token { token }) if *token == t.access_token),
                    "a fresh token was not handed out: {token:?}"
                );
            }
            // SPEC 5: the next refresh at min(expiry - refresh_before_expiry, obtained +
            // refresh_at_least), not before now; a token too short-lived for that is
            // refreshed at half its life, and never within a second of obtaining it
            // (otherwise each refresh would start the next at once).
            let obtained = sent.boot;
            let due =
                (expires - DEFAULT_REFRESH_BEFORE_EXPIRY).min(obtained + DEFAULT_REFRESH_AT_LEAST);
            let due = if due > obtained {
                due
            } else {
                obtained + expires.saturating_since(obtained) / 2
            };
            let due = due.max(obtained + Duration::from_secs(1));
            refreshes_at(&mut h, out, due);
            let left = expires.saturating_since(h.now().boot);
            if !left.is_zero() && left < Duration::from_secs(3 * 24 * 3600) {
                h.advance(left - Duration::from_millis(1));
                h.show("a");
                h.advance(Duration::from_millis(2));
                h.show("a");
            }
        }
        Ok(Err(e)) if !e.is_transient() => {
            assert!(
                !dump.accounts.contains_key("a"),
                "the token survived a permanent failure ({e})"
            );
            assert!(
                matches!(
                    h.state_of("a"),
                    Some(TokenStatus::NoToken {
                        last_error: Some(_)
                    })
                ),
                "a permanent failure left no reason"
            );
        }
        // A transient status or a transport error: the old token stays.
        other => {
            let got = dump.accounts.get("a").map(|a| a.access_token.clone());
            assert_eq!(
                got,
                Some(old_access.clone()),
                "a transient failure dropped the token"
            );
            let token = h.show("a");
            assert!(
                matches!(&token, Some(Reply::Token { token }) if *token == old_access),
                "the valid old token is not handed out after a transient failure"
            );
            // SPEC 5: retry after refresh_retry, or the provider's Retry-After (at most
            // six hours) if that is later.
            let retry_after = match other {
                Ok(Err(TokenError::Transient { retry_after, .. })) => retry_after,
                _ => None,
            };
            let wait = retry_after
                .map_or(DEFAULT_REFRESH_RETRY, |r| {
                    r.min(Duration::from_secs(6 * 3600))
                })
                .max(DEFAULT_REFRESH_RETRY);
            refreshes_at(&mut h, out, sent.boot + wait);
        }
    }
}

/// Checks that account `a`'s next refresh request goes out at `due` exactly: in `out`
/// (the outputs of the response) if it is due at once, else not a millisecond before.
fn refreshes_at(h: &mut Harness, out: Vec<Output>, due: Instant) {
    let now = h.now().boot;
    if due <= now {
        assert!(refreshes_a(&out), "the refresh due now was not sent");
        return;
    }
    assert!(!refreshes_a(&out), "a refresh was sent before it was due");
    let early = h.advance(due.saturating_since(now) - Duration::from_millis(1));
    assert!(!refreshes_a(&early), "a refresh was sent before it was due");
    let on_time = h.advance(Duration::from_millis(1));
    assert!(refreshes_a(&on_time), "the refresh was not sent when due");
}

/// Whether `out` sends a refresh request for account `a` (client id `client-a`).
fn refreshes_a(out: &[Output]) -> bool {
    out.iter().any(|o| match o {
        Output::SendHttp { http, .. } => {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(http.body.expose())
                .into_owned()
                .collect();
            let has = |k: &str, v: &str| form.iter().any(|(fk, fv)| fk == k && fv == v);
            has("client_id", "client-a") && has("grant_type", "refresh_token")
        }
        _ => false,
    })
}

/// The outcome answers the code exchange of account `b` (whose redirect URI has a path
/// and a query).
fn as_exchange(outcome: &Result<HttpResponse, TransportError>, heard: &[u8]) {
    let mut h = Harness::standard();
    h.hear(heard);
    h.show("b");
    let Some(target) = h.redirect_target("b", "code=CODE-0123456789-harness") else {
        panic!("b is not pending");
    };
    h.add_secret("CODE-0123456789-harness");
    h.redirect_to(&target);
    let Some(id) = h.in_flight().last().copied() else {
        panic!("the redirect started no exchange");
    };
    match outcome {
        Ok(r) => h.respond(id, r.clone()),
        Err(e) => h.fail(id, e.clone()),
    };
    let sent = h.now();
    let state = h.state_of("b");
    match outcome.as_ref().map(oauth::parse_token_response) {
        Ok(Ok(t)) => {
            let dump = h.dump();
            let Some(got) = dump.accounts.get("b") else {
                panic!("the exchanged token was not taken");
            };
            assert_eq!(
                got.access_token, t.access_token,
                "the exchanged token was not taken"
            );
            let lifetime = t.expires_in.unwrap_or(DEFAULT_REFRESH_AT_LEAST);
            assert_eq!(
                got.expires,
                sent.wall_at(sent.boot + lifetime),
                "the expiry is not sent + expires_in"
            );
        }
        Ok(Err(e)) => assert!(
            matches!(
                state,
                Some(TokenStatus::NoToken {
                    last_error: Some(_)
                })
            ),
            "a failed exchange ({e}) left {state:?}"
        ),
        Err(_) => {
            assert!(
                matches!(state, Some(TokenStatus::Pending { url: None, .. })),
                "a transport error did not leave the exchange retrying: {state:?}"
            );
            // SPEC 5: transport errors are retried 6 s apart, with the same code.
            let delay = Tunables::default().exchange_retry_delay;
            let early = h.advance(delay - Duration::from_millis(1));
            assert!(
                exchanges(&early).is_empty(),
                "the exchange was retried early"
            );
            let on_time = h.advance(Duration::from_millis(1));
            assert_eq!(
                exchanges(&on_time),
                ["CODE-0123456789-harness"],
                "the exchange was not retried when due, with the same code"
            );
        }
    }
}

/// The codes of the code exchanges that `out` sends.
fn exchanges(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendHttp { http, .. } => {
                let form: Vec<(String, String)> = url::form_urlencoded::parse(http.body.expose())
                    .into_owned()
                    .collect();
                let field = |k: &str| form.iter().find(|(fk, _)| fk == k).map(|(_, v)| v.clone());
                (field("grant_type").as_deref() == Some("authorization_code"))
                    .then(|| field("code").unwrap_or_default())
            }
            _ => None,
        })
        .collect()
}
