//! Issue 12's cases, as timelines on the simulated clock: each one a way the daemon got
//! stuck, hammered a provider or dropped a token (case 1 is in `endpoints.rs`). The
//! invariants `Sim` checks after every step include the liveness invariant and the
//! request-rate bound: after an answer that gave no usable token, an account does not
//! ask its provider again before `refresh_retry`.

use super::*;

fn cc_account(name: &str, retry: u64) -> Account {
    let mut a = account(name);
    a.flow = Flow::ClientCredentials;
    a.auth_uri = None;
    a.client_secret = Some(Secret::new("CCSECRET".into()));
    a.timing.refresh_retry = secs(retry);
    a
}

fn unavailable(sim: &mut Sim, name: &str) -> String {
    sim.show_text(name).expect_err("no token")
}

/// Case 3: after a 503, a `show` 0.1 s later sent a new request although
/// `refresh_retry = 1s`; with a wrong secret every `show` sent another failing request and
/// said only "requesting a token with the client credentials".
#[test]
fn case3_client_credentials_wait_refresh_retry_after_a_failure_and_say_why() {
    let mut sim = Sim::new(config(vec![cc_account("svc", 1)]));
    let (_, out) = sim.show("svc");
    let (id, _) = single_http(&out);
    sim.respond(id, 503, "");
    sim.advance(Duration::from_millis(100));
    let (reply, out) = sim.show("svc");
    assert!(http_requests(&out).is_empty(), "{out:?}");
    assert!(
        matches!(&reply, Reply::Error { message } if message == "Access token unavailable: requesting a token with the client credentials failed: token endpoint answered HTTP 503 (temporary)"),
        "{reply:?}"
    );
    sim.advance(Duration::from_millis(900));
    let (_, out) = sim.show("svc");
    let (id, _) = single_http(&out);
    sim.respond(
        id,
        401,
        r#"{"error":"invalid_client","error_description":"bad secret"}"#,
    );
    for _ in 0..5 {
        let (reply, out) = sim.show("svc");
        assert!(http_requests(&out).is_empty(), "{out:?}");
        assert!(
            matches!(&reply, Reply::Error { message } if message.ends_with("failed: token endpoint answered HTTP 401: invalid_client (bad secret)")),
            "{reply:?}"
        );
        sim.advance(Duration::from_millis(150));
    }
    sim.advance(secs(1));
    let (_, out) = sim.show("svc");
    assert_eq!(http_requests(&out).len(), 1);
}

/// A `Retry-After` longer than `refresh_retry` holds the account back as long.
#[test]
fn case3_retry_after_holds_client_credentials_back() {
    let mut sim = Sim::new(config(vec![cc_account("svc", 1)]));
    let (_, out) = sim.show("svc");
    let (id, _) = single_http(&out);
    sim.respond_with_headers(id, 429, vec![("Retry-After".into(), "30".into())], "");
    sim.advance(secs(29));
    let (_, out) = sim.show("svc");
    assert!(http_requests(&out).is_empty());
    sim.advance(secs(1));
    let (_, out) = sim.show("svc");
    assert_eq!(http_requests(&out).len(), 1);
}

fn active(name: &str, expires_in: u64) -> Sim {
    let mut c = config(vec![account(name)]);
    c.error_notify_cmd = Some("notify-error".into());
    c.transient_error_if_cmd = Some("check".into());
    let mut sim = Sim::new(c);
    sim.authorise(name, "AT1", Some("RT1"), expires_in);
    sim
}

/// Case 6: one odd answer to a refresh (a CDN's 520 to 524, an HTML maintenance page, a
/// body cut short) dropped a token the user still held. They are transient now: the
/// token stays, the refresh is retried after `refresh_retry`, `transient_error_if_cmd`
/// decides after six in a row, and past expiry the user hears once why.
#[test]
fn case6_odd_answers_to_a_refresh_keep_the_token() {
    let mut sim = active("work", 300);
    let mut out = sim.advance(secs(210));
    let odd: [(u16, &str); 6] = [
        (520, ""),
        (521, "<html>web server is down</html>"),
        (522, ""),
        (200, "<html>down for maintenance</html>"),
        (523, ""),
        (200, r#"{"access_token":"AT2","tok"#),
    ];
    for (i, (status, body)) in odd.into_iter().enumerate() {
        let (id, _) = single_http(&out);
        let answered = sim.respond(id, status, body);
        assert!(
            !logs(&answered, Level::Info).contains(&"work: token_invalidated"),
            "{status} {body}: {answered:?}"
        );
        if sim.elapsed() < secs(300) {
            assert_eq!(sim.show_text("work"), Ok("AT1".into()), "{status} {body}");
        }
        if i < 5 {
            assert!(spawns(&answered).iter().all(|s| s.1 != "check"));
            out = sim.advance(secs(40));
        } else {
            // The sixth in a row: transient_error_if_cmd decides; it says go on.
            let check = spawns(&answered)
                .into_iter()
                .find(|s| s.1 == "check")
                .expect("transient_error_if_cmd runs");
            sim.exit(check.0, 0);
        }
    }
    // The token expired at 300 s, while refreshes kept failing: the user was told once.
    let told: Vec<String> = sim
        .transcript
        .iter()
        .filter(|l| l.contains("Spawn") && l.contains("notify-error"))
        .cloned()
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("the access token has expired and refreshing it keeps failing (unusable token response: the body is not a JSON object); pizauth keeps trying"),
        "{told:?}"
    );
    // The endpoint recovers: the refresh token was never lost.
    let out = sim.advance(secs(40));
    let (id, http) = single_http(&out);
    assert_eq!(form(http)[1].1, "RT1");
    sim.respond(
        id,
        200,
        r#"{"access_token":"AT2","token_type":"bearer","expires_in":3600}"#,
    );
    assert_eq!(sim.show_text("work"), Ok("AT2".into()));
}

/// Case 6, the other side: a well-formed OAuth refusal still invalidates.
#[test]
fn case6_an_oauth_refusal_still_invalidates() {
    let mut sim = active("work", 300);
    let out = sim.advance(secs(210));
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 400, r#"{"error":"invalid_grant"}"#);
    assert!(logs(&out, Level::Info).contains(&"work: token_invalidated"));
    assert!(unavailable(&mut sim, "work").contains("with URL"));
}

/// Case 7: `expires_in: 0` gave one refresh a second for ever (63 requests a minute)
/// and `show` never handed out a token. Such an answer gives no usable token: the
/// account keeps its old token and asks once per `refresh_retry`.
#[test]
fn case7_expires_in_zero_is_no_token_and_is_not_asked_for_again_at_once() {
    let mut sim = active("work", 100);
    let mut requests = 0;
    let mut out = sim.advance(secs(10));
    let start = sim.elapsed();
    while sim.elapsed() < start + secs(60) {
        for (id, _) in http_requests(&out) {
            requests += 1;
            sim.respond(
                id,
                200,
                r#"{"access_token":"AT0","token_type":"bearer","expires_in":0,"refresh_token":"RT0"}"#,
            );
        }
        assert_eq!(sim.show_text("work"), Ok("AT1".into()));
        out = sim.advance(secs(1));
    }
    // At 10 s, 50 s: refresh_retry is 40 s.
    assert_eq!(requests, 2);
    // The first exchange answering so: no token, and the reason.
    let mut sim = Sim::new(config(vec![account("x")]));
    let url = unavailable(&mut sim, "x");
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (_, _, out) = sim.redirect(&format!("/?state={state}&code=C"));
    let (id, _) = single_http(&out);
    sim.respond(
        id,
        200,
        r#"{"access_token":"AT0","token_type":"bearer","expires_in":0}"#,
    );
    assert_eq!(
        unavailable(&mut sim, "x").split(" with URL").next(),
        Some("Access token unavailable until authorised")
    );
    let Reply::Status { accounts } = sim.ask(Request::Status).0 else {
        panic!()
    };
    assert_eq!(
        accounts[0].last_error.as_ref().map(|e| e.message.as_str()),
        Some(
            "exchanging the authorisation code failed: unusable token response: 'expires_in' is 0: the token has already expired"
        )
    );
    // Client credentials: a request per refresh_retry at most, whoever asks.
    let mut sim = Sim::new(config(vec![cc_account("svc", 5)]));
    let mut requests = 0;
    for _ in 0..60 {
        let (_, out) = sim.show("svc");
        for (id, _) in http_requests(&out) {
            requests += 1;
            sim.respond(
                id,
                200,
                r#"{"access_token":"AT0","token_type":"bearer","expires_in":0}"#,
            );
        }
        sim.advance(secs(1));
    }
    assert_eq!(requests, 12);
}

/// Case 8: an `access_token` with control characters (an ANSI escape, a newline) was
/// printed raw by `show`. A token outside RFC 6750's `b64token` is a malformed answer:
/// transient on refresh, a failed exchange otherwise.
#[test]
fn case8_a_token_with_control_characters_is_never_handed_out() {
    let mut sim = active("work", 300);
    let out = sim.advance(secs(210));
    let (id, _) = single_http(&out);
    sim.respond(
        id,
        200,
        "{\"access_token\":\"AT2\\u001b[2J\\nrm -rf\",\"token_type\":\"bearer\",\"expires_in\":3600}",
    );
    assert_eq!(sim.show_text("work"), Ok("AT1".into()));
    assert_eq!(sim.next_deadline(), Some(secs(250)));
    let Reply::Status { accounts } = sim.ask(Request::Status).0 else {
        panic!()
    };
    assert_eq!(
        accounts[0].last_error.as_ref().map(|e| e.message.as_str()),
        Some("unusable token response: 'access_token' has characters outside RFC 6750's b64token")
    );
}

/// Case 2: discovery that fails for good (the metadata names another issuer). Every
/// `show` started a new fetch (two requests per `show`, no backoff) and said
/// "discovering the endpoints of ..." instead of why it failed.
#[test]
fn case2_discovery_that_fails_for_good_is_not_hammered_and_show_says_why() {
    let mut a = account("a");
    a.issuer = Some(Url::parse("https://id.example/").unwrap().into());
    a.auth_uri = None;
    a.token_uri = None;
    a.timing.refresh_retry = secs(30);
    let mut sim = Sim::new(config(vec![a]));
    let evil =
        r#"{"issuer":"https://evil.example/","authorization_endpoint":"https://evil.example/a"}"#;
    let why = "Access token unavailable: cannot discover the endpoints of https://id.example/: the metadata names issuer 'https://evil.example/', not 'https://id.example/'";
    let mut requests = 0;
    for round in 0..3 {
        let (_, out) = sim.show("a");
        let (id, _) = single_http(&out);
        let out = sim.respond(id, 200, evil);
        let (id, _) = single_http(&out);
        sim.respond(id, 200, evil);
        requests += 2;
        for _ in 0..29 {
            let (reply, out) = sim.show("a");
            assert!(http_requests(&out).is_empty(), "round {round}: {out:?}");
            assert!(
                matches!(&reply, Reply::Error { message } if message == why),
                "{reply:?}"
            );
            sim.advance(secs(1));
        }
        sim.advance(secs(1));
    }
    assert_eq!(requests, 6);
    // While fetching again, show says what went wrong the last time.
    let (_, out) = sim.show("a");
    assert_eq!(http_requests(&out).len(), 1);
    let message = unavailable(&mut sim, "a");
    assert!(
        message.starts_with("Access token unavailable: discovering the endpoints of https://id.example/ (last time: cannot discover"),
        "{message}"
    );
}

/// Case 4: `redirect_uri = "http://localhost"` (no path, as Microsoft's registration
/// writes it) was sent as `http://localhost:PORT/`, which a strict provider refuses.
/// Only the port may change; the browser's `GET /?code=...` is still taken.
#[test]
fn case4_a_redirect_uri_without_a_path_is_sent_without_one() {
    let mut a = account("a");
    a.redirect_uri_bare = true;
    let mut sim = Sim::new(config(vec![a]));
    let message = unavailable(&mut sim, "a");
    let url = message.rsplit(' ').next().unwrap();
    assert_eq!(
        query_param(url, "redirect_uri").as_deref(),
        Some("http://localhost:8765")
    );
    let state = query_param(url, "state").unwrap();
    let (status, _, out) = sim.redirect(&format!("/?state={state}&code=the-code"));
    assert_eq!(status, 200);
    let (_, http) = single_http(&out);
    assert!(
        form(http).contains(&("redirect_uri".into(), "http://localhost:8765".into())),
        "{:?}",
        form(http)
    );
}

/// While an account waits to try again after a failure, `show` (and `show -w` when it
/// gives up) names the failure.
#[test]
fn show_names_the_last_failure_while_an_account_waits_after_one() {
    let mut a = account("work");
    a.timing.refresh_retry = secs(200);
    let mut sim = Sim::new(config(vec![a]));
    sim.authorise("work", "AT1", Some("RT1"), 100);
    let out = sim.advance(secs(10));
    let (id, _) = single_http(&out);
    sim.respond(id, 503, "");
    sim.advance(secs(95));
    assert_eq!(
        unavailable(&mut sim, "work"),
        "Access token has expired. Refreshing failed (token endpoint answered HTTP 503 (temporary)); pizauth keeps trying"
    );
    // An exchange waiting to be sent again after a transport failure.
    let mut sim = Sim::new(config(vec![account("x")]));
    let url = unavailable(&mut sim, "x");
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (_, _, out) = sim.redirect(&format!("/?state={state}&code=C"));
    let (id, _) = single_http(&out);
    sim.fail_http(id, TransportErrorKind::Connect);
    let out = sim.send(
        ClientId(500),
        Request::Show {
            account: "x".into(),
            with_url: false,
            wait: Some(3),
        },
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Reply { .. })));
    let out = sim.advance(secs(3));
    let reply = out.iter().find_map(|o| match o {
        Output::Reply {
            client: ClientId(500),
            reply: Reply::Error { message },
        } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(
        reply.as_deref(),
        Some(
            "Access token unavailable until authorised: the authorisation code is being exchanged for a token (the last attempt failed: exchanging the authorisation code failed: connection refused)"
        )
    );
}

/// The request map is kept by `Server::apply` alone, from the old and new state: a
/// request just answered is dropped without a `CancelHttp` (the driver is done with it),
/// whatever the answer did; one abandoned (a timeout) is cancelled.
#[test]
fn an_answered_request_is_never_cancelled() {
    let mut sim = active("work", 100);
    for (status, body) in [
        (503, ""),
        (200, "<html></html>"),
        (
            200,
            r#"{"access_token":"AT2","token_type":"bearer","expires_in":100}"#,
        ),
        (400, r#"{"error":"invalid_grant"}"#),
    ] {
        // To the next refresh (or retry).
        let wait = sim.next_deadline().expect("a refresh is due") - sim.elapsed();
        let out = sim.advance(wait);
        let (id, _) = single_http(&out);
        let out = sim.respond(id, status, body);
        assert!(
            !out.iter().any(|o| matches!(o, Output::CancelHttp { .. })),
            "{status} {body}: {out:?}"
        );
    }
    let url = unavailable(&mut sim, "work");
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (_, _, out) = sim.redirect(&format!("/?state={state}&code=C"));
    let (id, _) = single_http(&out);
    let out = sim.advance(secs(30));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CancelHttp { request } if *request == id)),
        "{out:?}"
    );
}

/// The rate bound in the device flow: a poll the token endpoint refuses ends the flow,
/// and `show` asks for new codes only `refresh_retry` later.
#[test]
fn a_refused_device_poll_holds_the_next_request_back() {
    let mut a = account("tv");
    a.flow = Flow::Device;
    a.auth_uri = None;
    a.device_auth_uri = Some(Url::parse("https://auth.example/device").unwrap().into());
    a.timing.refresh_retry = secs(30);
    let mut sim = Sim::new(config(vec![a]));
    let (_, out) = sim.show("tv");
    let (id, _) = single_http(&out);
    sim.respond(
        id,
        200,
        r#"{"device_code":"D","user_code":"U","verification_uri":"https://auth.example/v","interval":5}"#,
    );
    let out = sim.advance(secs(5));
    let (id, _) = single_http(&out);
    sim.respond(id, 401, r#"{"error":"invalid_client"}"#);
    let (reply, out) = sim.show("tv");
    assert!(http_requests(&out).is_empty(), "{out:?}");
    assert!(
        matches!(&reply, Reply::Error { message } if message == "Access token unavailable: device authorisation failed: token endpoint answered HTTP 401: invalid_client"),
        "{reply:?}"
    );
    sim.advance(secs(30));
    let (_, out) = sim.show("tv");
    assert_eq!(http_requests(&out).len(), 1);
}

/// Found by the liveness property's own check of the rate bound: a request for device
/// codes answered 503 with a `Retry-After` longer than `refresh_retry` was asked again
/// after `refresh_retry` only.
#[test]
fn retry_after_holds_the_device_code_request_back() {
    let mut a = account("tv");
    a.flow = Flow::Device;
    a.auth_uri = None;
    a.device_auth_uri = Some(Url::parse("https://auth.example/device").unwrap().into());
    a.timing.refresh_retry = secs(1);
    let mut sim = Sim::new(config(vec![a]));
    let (_, out) = sim.show("tv");
    let (id, _) = single_http(&out);
    sim.respond_with_headers(id, 503, vec![("Retry-After".into(), "30".into())], "");
    sim.advance(secs(29));
    let (_, out) = sim.show("tv");
    assert!(http_requests(&out).is_empty(), "{out:?}");
    sim.advance(secs(1));
    let (_, out) = sim.show("tv");
    assert_eq!(http_requests(&out).len(), 1);
}
