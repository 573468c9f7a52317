//! Keeping a token fresh against a provider that misbehaves on command: renewal before
//! expiry with rotated (and absent) refresh tokens, `invalid_grant`, HTTP 500, a token
//! endpoint that never answers, broken and unusual transfers, kept-alive connections,
//! `transient_error_if_cmd`, expiry, and tokens shorter-lived than `refresh_before_expiry`.

mod common;

use std::time::Duration;

use common::provider::{Provider, Reply};
use common::{Sandbox, account, append_cmd, authorised};

#[test]
fn renews_before_expiry_and_follows_refresh_token_rotation() {
    let provider = Provider::start();
    let sb = authorised(
        "renew",
        &provider,
        "    client_secret = \"fake-secret\";\n    refresh_before_expiry = 2s;",
        3,
        [
            // Rotated: the next refresh must use fake-refresh-2.
            Reply::token("fake-access-2", Some("fake-refresh-2"), Some(3)),
            // None: the next refresh keeps using fake-refresh-2.
            Reply::token("fake-access-3", None, Some(3)),
            Reply::token("fake-access-4", None, Some(3600)),
        ],
    );
    sb.wait_token("work", "fake-access-4");
    let r = provider.wait_token_requests(4);
    assert_eq!(r.len(), 4, "{r:#?}");
    assert_eq!(r[0].field("grant_type"), Some("authorization_code"));
    for (req, refresh) in r[1..]
        .iter()
        .zip(["fake-refresh-1", "fake-refresh-2", "fake-refresh-2"])
    {
        assert_eq!(
            req.field_names(),
            ["client_id", "refresh_token", "grant_type", "client_secret"]
        );
        assert_eq!(req.field("grant_type"), Some("refresh_token"));
        assert_eq!(req.field("refresh_token"), Some(refresh));
        assert_eq!(req.field("client_id"), Some("client-work"));
        assert_eq!(req.field("client_secret"), Some("fake-secret"));
    }
    // Each refresh came refresh_before_expiry (2 s) before the 3 s expiry: about a
    // second after the previous token, not at once and not after it expired.
    for pair in r.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(800) && gap < Duration::from_millis(2900),
            "{gap:?}"
        );
    }
    assert_eq!(
        sb.wait_lines("events.log", 4),
        [
            "work|token_new",
            "work|token_refreshed",
            "work|token_refreshed",
            "work|token_refreshed"
        ]
    );
    assert!(sb.read("errors.log").is_empty());
}

#[test]
fn invalid_grant_drops_the_token_and_tells_the_user() {
    let provider = Provider::start();
    let sb = authorised(
        "invalid-grant",
        &provider,
        "    refresh_before_expiry = 2s;",
        3,
        [Reply::oauth_error(
            400,
            "invalid_grant",
            "Token has been expired or revoked.",
        )],
    );
    let errors = sb.wait_lines("errors.log", 1);
    assert_eq!(
        errors,
        [
            "work|refreshing failed: token endpoint answered HTTP 400: invalid_grant \
          (Token has been expired or revoked.)"
        ]
    );
    let events = sb.wait_lines("events.log", 2);
    assert_eq!(events, ["work|token_new", "work|token_invalidated"]);
    let status = sb.status_of("work");
    assert!(
        status.starts_with("work: No access token (last error ")
            && status.ends_with(
                ": refreshing failed: token endpoint answered HTTP 400: invalid_grant \
                 (Token has been expired or revoked.))"
            ),
        "{status}"
    );
    // The next show starts a new authorisation.
    let url = sb.auth_url("work");
    assert!(url.starts_with(&provider.url("/authorize?")), "{url}");
    let r = provider.token_requests();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].field("refresh_token"), Some("fake-refresh-1"));
}

#[test]
fn http_500_keeps_the_token_and_retries_after_refresh_retry() {
    let provider = Provider::start();
    provider.set_fallback(Reply::token("fake-access-2", None, Some(3600)));
    let sb = authorised(
        "http-500",
        &provider,
        "    refresh_at_least = 1s;\n    refresh_retry = 1s;",
        3600,
        [Reply::json(500, "{\"error\": \"server_error\"}")],
    );
    let r = provider.wait_token_requests(2);
    assert_eq!(r[1].field("grant_type"), Some("refresh_token"));
    // The token survives the 500 (the log says when the 500 has been handled).
    common::wait_for("the 500 in the log", common::WAIT, || {
        sb.log()
            .contains(
                "work: refreshing failed (token endpoint answered HTTP 500 (temporary)), \
                 attempt 1 in a row; will retry",
            )
            .then_some(())
    });
    sb.run(&["show", "work"]).ok("fake-access-1\n");
    assert!(
        sb.status_of("work")
            .starts_with("work: Active access token (obtained "),
    );
    let r = provider.wait_token_requests(3);
    let gap = r[2].at - r[1].at;
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    sb.wait_token("work", "fake-access-2");
    assert!(
        sb.read("errors.log").is_empty(),
        "{}",
        sb.read("errors.log")
    );
    let events = sb.wait_lines("events.log", 2);
    assert_eq!(events[..2], ["work|token_new", "work|token_refreshed"]);
}

#[test]
fn a_hanging_token_endpoint_times_out_and_the_token_is_kept() {
    let provider = Provider::start();
    provider.set_fallback(Reply::token("fake-access-2", None, Some(3600)));
    let sb = authorised(
        "hang",
        &provider,
        "    refresh_at_least = 1s;\n    refresh_retry = 1s;",
        3600,
        [Reply::Hang],
    );
    let r = provider.wait_token_requests(2);
    assert_eq!(r[1].field("grant_type"), Some("refresh_token"));
    // While the provider hangs, show answers at once with the token it has, and
    // `refresh` adds no second request to the one in flight.
    sb.run(&["show", "work"]).ok("fake-access-1\n");
    sb.run(&["refresh", "work"]).ok("");
    // http_timeout_ms=1000: the attempt is given up and retried.
    let r = provider.wait_token_requests(3);
    let gap = r[2].at - r[1].at;
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    assert_eq!(r[2].field("refresh_token"), Some("fake-refresh-1"));
    sb.wait_token("work", "fake-access-2");
    assert!(
        sb.read("errors.log").is_empty(),
        "{}",
        sb.read("errors.log")
    );
    assert!(
        sb.log()
            .contains("work: refreshing failed (no answer from the token endpoint within 1 s)"),
        "the log says why"
    );
    sb.run(&["show", "-u", "work"]).ok("fake-access-2\n");
}

#[test]
fn broken_transfers_are_transient_and_chunked_responses_work() {
    let provider = Provider::start();
    let chunked = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                   Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                   10\r\n{\"access_token\":\r\n\
                   1f\r\n \"fake-access-2\", \"token_type\"\r\n\
                   f\r\n: \"bearer\"}    \r\n\
                   0\r\n\r\n";
    provider.set_fallback(Reply::token("fake-access-3", None, Some(3600)));
    let sb = authorised(
        "transfers",
        &provider,
        "    refresh_at_least = 1s;\n    refresh_retry = 1s;",
        3600,
        [
            // Cut off in the middle of the body.
            Reply::CloseMidBody,
            // Not HTTP at all.
            Reply::Raw(common::noise(7, 300)),
            Reply::Raw(chunked.as_bytes().to_vec()),
        ],
    );
    let r = provider.wait_token_requests(3);
    // Both failures kept the token; each retry came a refresh_retry later.
    sb.run(&["show", "work"]).ok("fake-access-1\n");
    for pair in r[1..].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    }
    let r = provider.wait_token_requests(4);
    assert!(
        r[1..]
            .iter()
            .all(|r| r.field("refresh_token") == Some("fake-refresh-1"))
    );
    // The chunked token arrived (and was then refreshed in turn).
    let events = sb.wait_lines("events.log", 2);
    assert_eq!(events[..2], ["work|token_new", "work|token_refreshed"]);
    assert!(
        sb.read("errors.log").is_empty(),
        "{}",
        sb.read("errors.log")
    );
    let log = sb.log();
    assert!(log.contains("refreshing failed ("), "{log}");
    assert!(!log.contains("fake-access"), "a token reached the log");
    assert!(!log.contains("fake-refresh"), "a token reached the log");
}

/// An unusable token response is a hiccup, not a refusal (issue 12, case 6): the token
/// is kept and the refresh retried after `refresh_retry`.
#[test]
fn unusable_token_responses_keep_the_token() {
    let provider = Provider::start();
    let sb = authorised(
        "unusable",
        &provider,
        "    refresh_at_least = 1s;\n    refresh_retry = 1s;",
        3600,
        [
            Reply::json(
                200,
                "{\"access_token\": \"fake-x\", \"token_type\": \"mac\"}",
            ),
            Reply::token("fake-access-2", None, Some(3600)),
        ],
    );
    sb.wait_token("work", "fake-access-2");
    assert_eq!(
        sb.wait_lines("events.log", 2),
        ["work|token_new", "work|token_refreshed"]
    );
    let log = sb.log();
    assert!(
        log.contains(
            "refreshing failed (unusable token response: 'token_type' is 'mac', not 'bearer')"
        ),
        "{log}"
    );
}

#[test]
fn an_expired_token_is_never_handed_out() {
    let provider = Provider::start();
    provider.set_fallback(Reply::json(503, "{}"));
    let sb = authorised(
        "expired",
        &provider,
        "    refresh_before_expiry = 1s;\n    refresh_retry = 1s;",
        2,
        [],
    );
    let obtained = provider.token_requests()[0].at;
    // Until the expiry the token is handed out while refreshes fail; after it, never.
    common::wait_for("the token to expire", common::WAIT, || {
        let asked = std::time::Instant::now();
        let run = sb.run(&["show", "work"]);
        if asked > obtained + Duration::from_millis(2100) {
            assert_ne!(run.code, 0, "expired token handed out: {run:?}");
        }
        (run.code != 0).then_some(())
    });
    assert!(obtained.elapsed() >= Duration::from_millis(1900));
    for _ in 0..3 {
        let run = sb.run(&["show", "work"]);
        assert!(
            run.stderr == "ERROR Access token has expired. Refreshing initiated\n"
                // Waiting for refresh_retry after the 503 (issue 12): say so.
                || run.stderr
                    == "ERROR Access token has expired. Refreshing failed (token endpoint \
                        answered HTTP 503 (temporary)); pizauth keeps trying\n"
                || run.stderr
                    == "ERROR Access token has expired. Refreshing is in progress but has not \
                        yet succeeded\n",
            "{run:?}"
        );
        assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    }
    let status = sb.status_of("work");
    // While refreshes keep failing, status also names the last failure (issue 12).
    let date = status
        .strip_prefix("work: Access token expired (last refresh attempt ")
        .and_then(|s| {
            s.strip_suffix("; last error: token endpoint answered HTTP 503 (temporary))")
                .or_else(|| s.strip_suffix(')'))
        })
        .unwrap_or_else(|| panic!("{status}"));
    common::assert_time_near(date, common::unix_now(), 30);
    // The provider recovers: so does the token.
    provider.set_fallback(Reply::token("fake-access-2", None, Some(3600)));
    sb.wait_token("work", "fake-access-2");
}

#[test]
fn a_token_without_refresh_token_ends_at_its_expiry() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("no-refresh");
    let events = sb.path("events.log");
    sb.write_config(&format!(
        "token_event_cmd = \"{}\";\n{}",
        append_cmd(&events, "$PIZAUTH_ACCOUNT|$PIZAUTH_EVENT"),
        account("work", &provider, "")
    ));
    sb.start();
    // An HTTP/1.0 answer with neither length nor chunks: the body runs to the close.
    provider.push([Reply::Raw(
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n\
          {\"access_token\": \"fake-access\", \"token_type\": \"Bearer\", \"expires_in\": 1}"
            .to_vec(),
    )]);
    sb.authorise("work", "fake-access");
    assert_eq!(
        sb.wait_lines("events.log", 2),
        ["work|token_new", "work|token_invalidated"]
    );
    sb.run(&["show", "-u", "work"]).fails(common::UNAVAILABLE);
    assert_eq!(
        provider.token_requests().len(),
        1,
        "nothing to refresh with"
    );
}

/// Regression: an idle kept-alive connection was closed on any readiness event, though
/// edge-triggered events can trail data already read (here the response comes in two
/// segments), so connections were reused only by luck. `e2e_tls.rs` has the
/// deterministic case: TLS records with no data on an idle connection.
#[test]
fn kept_alive_connections_are_reused_and_stale_ones_replaced() {
    let provider = Provider::start();
    provider.set_keep_alive(Some(Duration::from_secs(10)));
    let mut sb = Sandbox::new("keep-alive");
    let errors = sb.path("errors.log");
    // A host name, so the resolver thread is used too.
    sb.write_config(&format!(
        "error_notify_cmd = \"{}\";\naccount \"work\" {{\n    auth_uri = \"{}\";\n    \
         token_uri = \"http://localhost:{}/token\";\n    client_id = \"client-work\";\n}}\n",
        append_cmd(&errors, "$PIZAUTH_ACCOUNT|$PIZAUTH_MSG"),
        provider.url("/authorize"),
        provider.port()
    ));
    sb.start();
    provider.push([
        Reply::token("fake-access-1", Some("fake-refresh-1"), Some(3600)),
        Reply::token("fake-access-2", None, Some(3600)),
    ]);
    sb.authorise("work", "fake-access-1");
    let connections = provider.connections();
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-access-2");
    assert_eq!(
        provider.connections(),
        connections,
        "the connection was reused"
    );

    // The provider drops the kept-alive connection as the next request arrives: the
    // request goes again on a fresh connection, and nobody hears of it.
    provider.push([
        Reply::Close,
        Reply::token("fake-access-3", None, Some(3600)),
    ]);
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-access-3");
    assert_eq!(provider.token_requests().len(), 4);
    assert_eq!(provider.connections(), connections + 1);

    // The provider closes an idle connection on its own: the next request opens another.
    provider.set_keep_alive(Some(Duration::from_millis(100)));
    provider.push([Reply::token("fake-access-4", None, Some(3600))]);
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-access-4");
    common::wait_for(
        "the provider to close the idle connection",
        common::WAIT,
        || (provider.idle_closes() >= 1).then_some(()),
    );
    provider.push([Reply::token("fake-access-5", None, Some(3600))]);
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-access-5");
    assert!(
        sb.read("errors.log").is_empty(),
        "{}",
        sb.read("errors.log")
    );
    assert!(!sb.log().contains("refreshing failed"), "{}", sb.log());
}

#[test]
fn transient_error_if_cmd_decides_after_repeated_failures() {
    let provider = Provider::start();
    provider.set_fallback(Reply::json(503, "{}"));
    let mut sb = Sandbox::new("transient-check");
    let (events, errors, checks) = (
        sb.path("events.log"),
        sb.path("errors.log"),
        sb.path("checks.log"),
    );
    // Exit 0 (keep retrying) for `keep`, 1 (give up) for `drop`.
    let check = format!(
        "printf '%s\\n' \"$PIZAUTH_ACCOUNT\" >> '{}'; [ \"$PIZAUTH_ACCOUNT\" = keep ]",
        checks.display()
    );
    sb.write_config(&format!(
        "token_event_cmd = \"{}\";\nerror_notify_cmd = \"{}\";\n\
         transient_error_if_cmd = \"{}\";\nrefresh_at_least = 1s;\nrefresh_retry = 1s;\n{}{}",
        append_cmd(&events, "$PIZAUTH_ACCOUNT|$PIZAUTH_EVENT"),
        append_cmd(&errors, "$PIZAUTH_ACCOUNT|$PIZAUTH_MSG"),
        common::config_string(&check),
        account("keep", &provider, ""),
        account("drop", &provider, ""),
    ));
    // Ask after every second transient failure instead of every sixth.
    sb.set_env("PIZAUTH_TEST_TUNABLES", "check_every=2");
    sb.start();
    provider.push([
        Reply::token("fake-keep", Some("fake-refresh-keep"), Some(3600)),
        Reply::token("fake-drop", Some("fake-refresh-drop"), Some(3600)),
    ]);
    sb.authorise("keep", "fake-keep");
    sb.authorise("drop", "fake-drop");

    let errors = sb.wait_lines("errors.log", 1);
    assert_eq!(
        errors,
        ["drop|refreshing kept failing and transient_error_if_cmd said to give up"]
    );
    sb.run(&["show", "-u", "drop"]).fails(common::UNAVAILABLE);
    // `keep` goes on retrying with its token: a refresh after its check.
    let checks = sb.wait_lines("checks.log", 2);
    let mut sorted = checks[..2].to_vec();
    sorted.sort();
    assert_eq!(sorted, ["drop", "keep"]);
    let refreshes_of_keep = |p: &Provider| {
        p.token_requests()
            .iter()
            .filter(|r| r.field("refresh_token") == Some("fake-refresh-keep"))
            .count()
    };
    common::wait_for("a third refresh of keep", common::WAIT, || {
        (refreshes_of_keep(&provider) >= 3).then_some(())
    });
    sb.run(&["show", "keep"]).ok("fake-keep\n");
    let events = common::wait_for("drop's token_invalidated", common::WAIT, || {
        let events = sb.lines("events.log");
        events
            .contains(&"drop|token_invalidated".to_owned())
            .then_some(events)
    });
    assert!(
        !events.contains(&"keep|token_invalidated".to_owned()),
        "{events:?}"
    );
}

/// Regression: a provider whose tokens live no longer than `refresh_before_expiry` (90 s
/// by default; here 2 s) made pizauth refresh each token the moment it arrived, and its
/// successor too, thousands of times a second, for as long as the server ran. Such a
/// token is now refreshed at half its life.
#[test]
fn tokens_shorter_than_refresh_before_expiry_are_not_refreshed_in_a_loop() {
    let provider = Provider::start();
    provider.set_fallback(Reply::token("fake-access", Some("fake-refresh"), Some(2)));
    let mut sb = Sandbox::new("short-lived");
    sb.write_config(&account("work", &provider, ""));
    sb.start();
    let visit = common::browser::visit(&sb.auth_url("work"), None).expect("browser");
    assert_eq!(visit.page.status, 200);
    provider.wait_token_requests(1);
    std::thread::sleep(Duration::from_millis(500));
    let n = provider.token_requests().len();
    assert!(
        n <= 2,
        "{n} token requests within half a second: a refresh loop"
    );
    // Renewed at half its life: about a second apart, each before the last expired.
    let r = provider.wait_token_requests(3);
    for pair in r.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(800) && gap < Duration::from_millis(1900),
            "refreshed after {gap:?}"
        );
    }
    sb.run(&["show", "work"]).ok("fake-access\n");
}
