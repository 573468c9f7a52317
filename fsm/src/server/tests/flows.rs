//! The authorisation-code flow with PKCE (SPEC.md section 5).

use super::*;
use crate::event::Method;
use crate::oauth::code_challenge;

#[test]
fn show_without_token_starts_a_request_with_every_parameter_in_order() {
    let mut a = account("work");
    a.auth_uri_fields = vec![("login_hint".into(), "me@example.com".into())];
    a.client_secret = Some(Secret::new("s3cret".into()));
    let mut sim = Sim::new(config(vec![a]));
    let (reply, out) = sim.show("work");
    let Reply::Error { message } = reply else {
        panic!("no token yet")
    };
    let url = message
        .strip_prefix("Access token unavailable until authorised with URL ")
        .expect(&message);
    let parsed = Url::parse(url).unwrap();
    let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(
        keys,
        [
            "access_type",
            "code_challenge",
            "code_challenge_method",
            "client_id",
            "redirect_uri",
            "response_type",
            "state",
            "scope",
            "login_hint"
        ]
    );
    assert_eq!(query_param(url, "access_type").unwrap(), "offline");
    assert_eq!(query_param(url, "code_challenge_method").unwrap(), "S256");
    assert_eq!(query_param(url, "client_id").unwrap(), "client-work");
    assert_eq!(
        query_param(url, "redirect_uri").unwrap(),
        "http://localhost:8765/"
    );
    assert_eq!(query_param(url, "response_type").unwrap(), "code");
    assert_eq!(query_param(url, "scope").unwrap(), "mail offline_access");
    assert!(!url.contains("s3cret"), "client secret in the URL");
    // 32 bytes of state and a 64-byte verifier, base64url without padding.
    assert_eq!(query_param(url, "state").unwrap().len(), 43);
    assert_eq!(query_param(url, "code_challenge").unwrap().len(), 43);
    // No auth_notify_cmd: nothing is spawned and nothing is due.
    assert!(spawns(&out).is_empty());
    assert_eq!(sim.next_deadline(), None);
}

#[test]
fn show_u_omits_the_url_and_a_second_show_reuses_the_request() {
    let mut sim = Sim::new(config(vec![account("work")]));
    let first = sim.show_text("work").unwrap_err();
    let (reply, _) = sim.ask(Request::Show {
        account: "work".into(),
        with_url: false,
        wait: None,
    });
    assert!(
        matches!(reply, Reply::Error { ref message } if message == "Access token unavailable until authorised"),
        "{reply:?}"
    );
    assert_eq!(sim.show_text("work").unwrap_err(), first);
}

#[test]
fn redirect_uri_follows_the_listener_for_its_scheme() {
    let mut a = account("secure");
    a.redirect_uri = Url::parse("https://localhost/cb?x=1").unwrap().into();
    let mut sim = Sim::new(config(vec![a]));
    let url = sim.show_text("secure").unwrap_err();
    assert_eq!(
        query_param(url.rsplit(' ').next().unwrap(), "redirect_uri").unwrap(),
        "https://localhost:8766/cb?x=1"
    );
}

/// SPEC.md section 5: a redirect whose path or configured query pairs do not match the
/// redirect URI is 404, and nothing is exchanged.
#[test]
fn redirects_must_carry_the_redirect_uris_path_and_query_pairs() {
    let mut a = account("work");
    a.redirect_uri = Url::parse("http://localhost/cb?x=1").unwrap().into();
    let mut sim = Sim::new(config(vec![a]));
    let url = sim.show_text("work").unwrap_err();
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    for target in [
        format!("/cb?state={state}&code=c"),
        format!("/cb?x=2&state={state}&code=c"),
        format!("/?x=1&state={state}&code=c"),
        format!("/cb/more?x=1&state={state}&code=c"),
    ] {
        let (status, _, out) = sim.redirect(&target);
        assert_eq!(status, 404, "{target}");
        assert!(http_requests(&out).is_empty(), "{target}: {out:?}");
    }
    let (status, _, out) = sim.redirect(&format!("/cb?x=1&state={state}&code=c"));
    assert_eq!(status, 200);
    assert_eq!(http_requests(&out).len(), 1);
}

#[test]
fn full_flow_exchanges_the_code_with_the_verifier_and_hands_out_the_token() {
    let mut a = account("work");
    a.client_secret = Some(Secret::new("s3cret".into()));
    let mut sim = Sim::new(config(vec![a]));
    let message = sim.show_text("work").unwrap_err();
    let url = message.rsplit(' ').next().unwrap().to_owned();
    let state = query_param(&url, "state").unwrap();
    let challenge = query_param(&url, "code_challenge").unwrap();

    sim.advance(secs(5));
    let (status, body, out) = sim.redirect(&format!("/?code=abc&state={state}"));
    assert_eq!(
        (status, body.as_str()),
        (200, super::super::flow::PROCESSING_PAGE)
    );
    let (id, http) = single_http(&out);
    assert_eq!(http.method, Method::Post);
    assert_eq!(http.url.as_str(), "https://auth.example/token");
    let fields = form(http);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "code",
            "client_id",
            "code_verifier",
            "redirect_uri",
            "grant_type",
            "client_secret"
        ]
    );
    let verifier = fields[2].1.clone();
    assert_eq!(
        code_challenge(&Secret::new(verifier)),
        challenge,
        "PKCE S256"
    );
    assert_eq!(fields[0].1, "abc");
    assert_eq!(fields[3].1, "http://localhost:8765/");
    assert_eq!(fields[4].1, "authorization_code");
    // The exchange is bounded by the HTTP timeout.
    assert_eq!(sim.next_deadline(), Some(secs(5 + 30)));
    assert!(matches!(sim.show_text("work"), Err(m) if m.contains("being exchanged")));

    sim.advance(secs(1));
    let out = sim.respond(
        id,
        200,
        r#"{"access_token":"AT1","token_type":"Bearer","expires_in":3600,"refresh_token":"RT1"}"#,
    );
    assert!(logs(&out, Level::Info).contains(&"work: token_new"));
    assert_eq!(sim.show_text("work").unwrap(), "AT1");
    // Obtained at 5 s (when the request was sent); expires at 3605 s; refresh 90 s
    // before that, which is earlier than 90 minutes after obtaining it.
    assert_eq!(sim.next_deadline(), Some(secs(5 + 3600 - 90)));
    // The state was used up: a replay of the redirect matches nothing.
    let (status, body, out) = sim.redirect(&format!("/?code=abc&state={state}"));
    assert_eq!(
        (status, body.as_str()),
        (200, super::super::flow::NO_MATCH_PAGE)
    );
    assert!(http_requests(&out).is_empty());
}

#[test]
fn hostile_or_broken_redirects_change_nothing() {
    let mut sim = Sim::new(config(vec![account("work")]));
    let url = sim.show_text("work").unwrap_err();
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let cases: Vec<(RedirectRequest, u16)> = vec![
        (
            RedirectRequest {
                method: "POST".into(),
                target: format!("/?state={state}&code=x"),
                host: Some("localhost:8765".into()),
            },
            405,
        ),
        (
            RedirectRequest {
                method: "GET".into(),
                target: format!("/?state={state}&code=x"),
                host: None,
            },
            400,
        ),
        (
            RedirectRequest {
                method: "GET".into(),
                target: "/?code=x".into(),
                host: Some("localhost:8765".into()),
            },
            404,
        ),
        (
            RedirectRequest {
                method: "GET".into(),
                target: format!("/elsewhere?state={state}&code=x"),
                host: Some("localhost:8765".into()),
            },
            404,
        ),
        (
            RedirectRequest {
                method: "GET".into(),
                target: "/?state=wrong&code=x".into(),
                host: Some("localhost:8765".into()),
            },
            200,
        ),
        (
            RedirectRequest {
                method: "GET".into(),
                target: format!("/?state={state}"),
                host: Some("localhost:8765".into()),
            },
            400,
        ),
        (
            RedirectRequest {
                method: "GET".into(),
                target: "http://evil/?x".into(),
                host: Some("localhost:8765".into()),
            },
            400,
        ),
    ];
    // Another host (DNS rebinding), or the right one on another port: 421.
    let cases =
        cases.into_iter().chain(
            ["evil.example:8765", "localhost:8766", "localhost"].map(|host| {
                let request = RedirectRequest {
                    method: "GET".into(),
                    target: format!("/?state={state}&code=x"),
                    host: Some(host.into()),
                };
                (request, 421)
            }),
        );
    for (request, want) in cases {
        let out = sim.input(Input::RedirectReceived {
            conn: ConnId(1),
            scheme: Scheme::Http,
            request: request.clone(),
        });
        let statuses: Vec<u16> = out
            .iter()
            .filter_map(|o| match o {
                Output::AnswerRedirect { status, .. } => Some(*status),
                _ => None,
            })
            .collect();
        assert_eq!(statuses, [want], "{request:?}");
        assert!(http_requests(&out).is_empty());
    }
    // The request is still pending with the same URL.
    assert_eq!(sim.show_text("work").unwrap_err(), url);
}

#[test]
fn error_on_the_redirect_fails_the_request_and_notifies() {
    let mut c = config(vec![account("work")]);
    c.error_notify_cmd = Some("notify-error".into());
    let mut sim = Sim::new(c);
    let url = sim.show_text("work").unwrap_err();
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (status, body, out) = sim.redirect(&format!(
        "/?state={state}&error=access_denied&error_description=User+said+no"
    ));
    assert_eq!(status, 400);
    assert!(body.contains("access_denied"), "{body}");
    let sp = spawns(&out);
    assert_eq!(sp.len(), 1);
    assert_eq!(sp[0].1, "notify-error");
    assert_eq!(env_of(sp[0].2, "PIZAUTH_ACCOUNT"), Some("work"));
    assert_eq!(
        env_of(sp[0].2, "PIZAUTH_MSG"),
        Some("authorisation failed: access_denied (User said no)")
    );
    let (reply, _) = sim.ask(Request::Status);
    let Reply::Status { accounts } = reply else {
        panic!()
    };
    assert!(matches!(
        &accounts[0].state,
        crate::protocol::TokenStatus::NoToken { last_error: Some(e) } if e.message.contains("access_denied")
    ));
    // The next show starts a fresh request with a new state.
    let again = sim.show_text("work").unwrap_err();
    assert_ne!(again, url);
}

#[test]
fn exchange_transport_errors_retry_ten_times_six_seconds_apart() {
    let mut sim = Sim::new(config(vec![account("work")]));
    let url = sim.show_text("work").unwrap_err();
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (_, _, out) = sim.redirect(&format!("/?state={state}&code=c"));
    let (mut id, _) = single_http(&out);
    for attempt in 1..10 {
        let out = sim.fail_http(id, TransportErrorKind::Connect);
        assert!(http_requests(&out).is_empty());
        assert_eq!(
            sim.next_deadline(),
            Some(sim.elapsed() + secs(6)),
            "attempt {attempt}"
        );
        let out = sim.advance(secs(6));
        let (next, http) = single_http(&out);
        assert_eq!(form(http)[0].1, "c", "the same code is re-sent");
        id = next;
    }
    let out = sim.fail_http(id, TransportErrorKind::Connect);
    assert!(
        logs(&out, Level::Error)
            .iter()
            .any(|m| m.contains("failed after 10 tries")),
        "{out:?}"
    );
    assert_eq!(sim.next_deadline(), None);
    assert!(sim.show_text("work").unwrap_err().contains("with URL"));
}

#[test]
fn exchange_timeout_cancels_and_retries() {
    let mut sim = Sim::new(config(vec![account("work")]));
    let url = sim.show_text("work").unwrap_err();
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (_, _, out) = sim.redirect(&format!("/?state={state}&code=c"));
    let (id, _) = single_http(&out);
    let out = sim.advance(secs(30));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CancelHttp { request } if *request == id))
    );
    let out = sim.advance(secs(6));
    let (id2, _) = single_http(&out);
    assert_ne!(id, id2);
    // A late answer to the cancelled request is dropped.
    let out = sim.respond(id, 200, r#"{"access_token":"LATE","token_type":"bearer"}"#);
    assert!(effects(out).is_empty());
    sim.respond(id2, 200, r#"{"access_token":"AT","token_type":"bearer"}"#);
    assert_eq!(sim.show_text("work").unwrap(), "AT");
}

#[test]
fn exchange_rejected_by_the_provider_fails_at_once() {
    let mut sim = Sim::new(config(vec![account("work")]));
    let url = sim.show_text("work").unwrap_err();
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (_, _, out) = sim.redirect(&format!("/?state={state}&code=c"));
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 400, r#"{"error":"invalid_grant"}"#);
    assert!(http_requests(&out).is_empty());
    assert!(
        logs(&out, Level::Error).contains(&"work: exchanging the authorisation code failed: token endpoint answered HTTP 400: invalid_grant"),
        "{out:?}"
    );
    assert_eq!(sim.next_deadline(), None);
}

#[test]
fn auth_notify_runs_at_start_and_every_interval_while_pending() {
    let mut c = config(vec![account("work")]);
    c.auth_notify_cmd = Some("notify-send pizauth \"$PIZAUTH_URL\"".into());
    c.auth_notify_interval = secs(300);
    let mut sim = Sim::new(c);
    let (reply, out) = sim.show("work");
    let Reply::Error { message } = reply else {
        panic!()
    };
    let url = message.rsplit(' ').next().unwrap();
    let sp = spawns(&out);
    assert_eq!(sp.len(), 1);
    assert_eq!(env_of(sp[0].2, "PIZAUTH_ACCOUNT"), Some("work"));
    assert_eq!(env_of(sp[0].2, "PIZAUTH_URL"), Some(url));
    let first = sp[0].0;
    sim.exit(first, 0);
    assert_eq!(sim.next_deadline(), Some(secs(300)));
    let out = sim.advance(secs(300));
    assert_eq!(spawns(&out).len(), 1);
    let out = sim.advance(secs(300));
    assert_eq!(spawns(&out).len(), 1);
    // Authorising stops the repetition.
    let state = query_param(url, "state").unwrap();
    let (_, _, out) = sim.redirect(&format!("/?state={state}&code=c"));
    let (id, _) = single_http(&out);
    sim.respond(
        id,
        200,
        r#"{"access_token":"AT","token_type":"bearer","expires_in":86400,"refresh_token":"R"}"#,
    );
    let out = sim.advance(secs(3600));
    assert!(spawns(&out).is_empty());
}

#[test]
fn notify_command_is_killed_after_ten_seconds() {
    let mut c = config(vec![account("work")]);
    c.auth_notify_cmd = Some("sleep 1000".into());
    let mut sim = Sim::new(c);
    let (_, out) = sim.show("work");
    let child = spawns(&out)[0].0;
    assert_eq!(sim.next_deadline(), Some(secs(10)));
    let out = sim.advance(secs(10));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Kill { child: c } if *c == child))
    );
    let out = sim.input(Input::ChildExited {
        child,
        status: ExitStatus::Signal(9),
        stdout: None,
    });
    assert!(effects(out).is_empty());
}
