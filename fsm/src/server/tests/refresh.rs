//! Refresh timing and failures (SPEC.md section 5).

use super::*;

const TOKEN: &str = r#"{"access_token":"AT2","token_type":"bearer","expires_in":3600}"#;

fn active(name: &str) -> Sim {
    let mut sim = Sim::new(config(vec![account(name)]));
    sim.authorise(name, "AT1", Some("RT1"), 3600);
    sim
}

#[test]
fn refreshes_before_expiry_and_keeps_an_unrotated_refresh_token() {
    let mut sim = active("work");
    assert_eq!(sim.next_deadline(), Some(secs(3510)));
    let out = sim.advance(secs(3510));
    let (id, http) = single_http(&out);
    assert_eq!(
        form(http),
        [
            ("client_id".to_owned(), "client-work".to_owned()),
            ("refresh_token".to_owned(), "RT1".to_owned()),
            ("grant_type".to_owned(), "refresh_token".to_owned()),
        ]
    );
    // Still valid during the refresh.
    assert_eq!(sim.show_text("work").unwrap(), "AT1");
    let out = sim.respond(id, 200, TOKEN);
    assert!(logs(&out, Level::Info).contains(&"work: token_refreshed"));
    assert_eq!(sim.show_text("work").unwrap(), "AT2");
    let out = sim.advance(secs(3510));
    let (_, http) = single_http(&out);
    assert_eq!(
        form(http)[1].1,
        "RT1",
        "no new refresh token: the old one is kept"
    );
}

#[test]
fn rotated_refresh_token_replaces_the_old_one() {
    let mut sim = active("work");
    let out = sim.advance(secs(3510));
    let (id, _) = single_http(&out);
    sim.respond(
        id,
        200,
        r#"{"access_token":"AT2","token_type":"bearer","expires_in":3600,"refresh_token":"RT2"}"#,
    );
    let out = sim.advance(secs(3510));
    assert_eq!(form(single_http(&out).1)[1].1, "RT2");
}

#[test]
fn refresh_at_least_wins_for_long_lived_tokens_and_stands_in_for_missing_expires_in() {
    let mut sim = Sim::new(config(vec![account("long"), account("noexp")]));
    sim.authorise("long", "A", Some("R"), 86_400);
    assert_eq!(sim.next_deadline(), Some(secs(90 * 60)));
    let mut sim = Sim::new(config(vec![account("noexp")]));
    let url = sim.show_text("noexp").unwrap_err();
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (_, _, out) = sim.redirect(&format!("/?state={state}&code=c"));
    let (id, _) = single_http(&out);
    sim.respond(
        id,
        200,
        r#"{"access_token":"A","token_type":"bearer","refresh_token":"R"}"#,
    );
    // Lifetime = refresh_at_least (90 min); refresh 90 s before that.
    assert_eq!(sim.next_deadline(), Some(secs(90 * 60 - 90)));
    let (reply, _) = sim.ask(Request::Status);
    let Reply::Status { accounts } = reply else {
        panic!()
    };
    assert_eq!(
        accounts[0].state,
        crate::protocol::TokenStatus::Active {
            obtained: WallTime::from_unix_millis(T0_WALL),
            expires: WallTime::from_unix_millis(T0_WALL + 90 * 60 * 1000),
        }
    );
}

#[test]
fn transient_failures_keep_the_token_and_retry_after_refresh_retry() {
    let mut sim = active("work");
    let out = sim.advance(secs(3510));
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 500, "oops");
    assert!(http_requests(&out).is_empty());
    assert_eq!(sim.show_text("work").unwrap(), "AT1");
    assert_eq!(sim.next_deadline(), Some(secs(3510 + 40)));
    let out = sim.advance(secs(40));
    let (id, _) = single_http(&out);
    sim.fail_http(id, TransportErrorKind::Dns);
    assert_eq!(sim.next_deadline(), Some(secs(3550 + 40)));
    // The token expires while retries go on: show refuses it and says a refresh is on.
    let out = sim.advance(secs(40));
    let (id, _) = single_http(&out);
    sim.advance(secs(20));
    assert_eq!(
        sim.show_text("work").unwrap_err(),
        "Access token has expired. Refreshing is in progress but has not yet succeeded"
    );
    sim.respond(id, 200, TOKEN);
    assert_eq!(sim.show_text("work").unwrap(), "AT2");
}

/// Issue 12, case 6: only a well-formed OAuth refusal (a 4xx whose JSON `error` is
/// `invalid_grant`, `invalid_client` and the like) invalidates a token on refresh; any
/// other answer (a CDN's 52x, a bare 4xx, `temporarily_unavailable`) is transient.
#[test]
fn which_answers_are_transient_on_refresh() {
    let refusal = r#"{"error":"invalid_grant"}"#;
    let html = "<html>sign in</html>";
    for (status, body, transient) in [
        (408, "", true),
        (429, "", true),
        (500, "", true),
        (502, refusal, true),
        (503, "", true),
        (504, "", true),
        (400, "", true),
        (401, html, true),
        (403, "", true),
        (404, "", true),
        (501, "", true),
        (520, "", true),
        (521, "", true),
        (522, "", true),
        (523, "", true),
        (524, html, true),
        (400, r#"{"error":"temporarily_unavailable"}"#, true),
        (400, refusal, false),
        (401, r#"{"error":"invalid_client"}"#, false),
        (400, r#"{"error":"unauthorized_client"}"#, false),
        (400, r#"{"error":"invalid_scope"}"#, false),
    ] {
        let mut sim = active("work");
        let out = sim.advance(secs(3510));
        let (id, _) = single_http(&out);
        let out = sim.respond(id, status, body);
        let status = format!("{status} {body}");
        if transient {
            assert!(
                !logs(&out, Level::Info).contains(&"work: token_invalidated"),
                "{status}: {out:?}"
            );
            assert_eq!(sim.show_text("work").unwrap(), "AT1", "{status}");
            assert_eq!(sim.next_deadline(), Some(secs(3510 + 40)), "{status}");
        } else {
            assert!(
                logs(&out, Level::Info).contains(&"work: token_invalidated"),
                "{status}: {out:?}"
            );
            assert!(
                sim.show_text("work").unwrap_err().contains("with URL"),
                "{status}"
            );
        }
    }
}

/// SPEC.md section 5: the check runs after every 6th *consecutive* transient failure (a
/// success starts the count again), and one that does not exit within 3 minutes is
/// killed and counts as a failure of the check.
#[test]
fn transient_error_if_cmd_counts_consecutive_failures_and_is_timed_out() {
    let mut c = config(vec![account("work")]);
    c.transient_error_if_cmd = Some("check".into());
    let mut sim = Sim::new(c);
    sim.authorise("work", "AT1", Some("RT1"), 3600);
    let mut out = sim.advance(secs(3510));
    let fail = |sim: &mut Sim, out: &mut Vec<Output>, times: usize| {
        for i in 0..times {
            let (id, _) = single_http(out);
            *out = sim.fail_http(id, TransportErrorKind::Connect);
            if i + 1 < times {
                assert!(spawns(out).is_empty());
                *out = sim.advance(secs(40));
            }
        }
    };
    // Three failures, a success, then five more: never six in a row, no check.
    fail(&mut sim, &mut out, 3);
    let out2 = sim.advance(secs(40));
    let (id, _) = single_http(&out2);
    sim.respond(id, 200, TOKEN);
    let mut out = sim.advance(secs(3510));
    fail(&mut sim, &mut out, 5);
    assert!(spawns(&out).is_empty());
    // The sixth in a row asks; the check hangs and is killed at 3 minutes, which
    // invalidates the token.
    let mut out = sim.advance(secs(40));
    fail(&mut sim, &mut out, 1);
    let sp = spawns(&out);
    assert_eq!(sp.len(), 1);
    assert_eq!(sp[0].1, "check");
    let child = sp[0].0;
    // While the check decides, neither `refresh` nor `show` sends another refresh.
    let (reply, out) = sim.ask(Request::Refresh {
        account: "work".into(),
        with_url: false,
    });
    assert!(matches!(reply, Reply::Done), "{reply:?}");
    assert!(http_requests(&out).is_empty(), "{out:?}");
    let (reply, out) = sim.ask(Request::Show {
        account: "work".into(),
        with_url: false,
        wait: None,
    });
    assert!(matches!(reply, Reply::Error { .. }), "expired: {reply:?}");
    assert!(http_requests(&out).is_empty(), "{out:?}");
    let out = sim.advance(secs(180));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Kill { child: c } if *c == child)),
        "{out:?}"
    );
    let out = sim.exit(child, -9);
    assert!(
        logs(&out, Level::Info).contains(&"work: token_invalidated"),
        "{out:?}"
    );
    assert!(sim.show_text("work").unwrap_err().contains("with URL"));
}

#[test]
fn retry_after_on_429_is_honoured() {
    let mut sim = active("work");
    let out = sim.advance(secs(3510));
    let (id, _) = single_http(&out);
    sim.respond_with_headers(id, 429, vec![("retry-after".into(), "300".into())], "");
    assert_eq!(sim.next_deadline(), Some(secs(3510 + 300)));
}

#[test]
fn every_sixth_transient_failure_asks_transient_error_if_cmd() {
    let mut c = config(vec![account("work")]);
    c.transient_error_if_cmd = Some("ping -c1 example.com".into());
    let mut sim = Sim::new(c);
    sim.authorise("work", "AT1", Some("RT1"), 3600);
    let mut out = sim.advance(secs(3510));
    for round in 0..2 {
        for attempt in 1..=6 {
            let (id, _) = single_http(&out);
            out = sim.fail_http(id, TransportErrorKind::Connect);
            if attempt < 6 {
                assert!(spawns(&out).is_empty());
                out = sim.advance(secs(40));
            }
        }
        let sp = spawns(&out);
        assert_eq!(sp.len(), 1, "round {round}");
        assert_eq!(sp[0].1, "ping -c1 example.com");
        assert_eq!(env_of(sp[0].2, "PIZAUTH_ACCOUNT"), Some("work"));
        let child = sp[0].0;
        // While it runs, only its own timeout is pending (3 minutes).
        assert_eq!(sim.next_deadline(), Some(sim.elapsed() + secs(180)));
        if round == 0 {
            sim.advance(secs(2));
            sim.exit(child, 0);
            out = sim.advance(secs(40));
        } else {
            let out = sim.exit(child, 1);
            assert!(logs(&out, Level::Info).contains(&"work: token_invalidated"));
            assert!(sim.show_text("work").unwrap_err().contains("with URL"));
        }
    }
}

#[test]
fn permanent_refresh_failure_invalidates_and_notifies() {
    let mut c = config(vec![account("work")]);
    c.error_notify_cmd = Some("notify".into());
    c.token_event_cmd = Some("event".into());
    let mut sim = Sim::new(c);
    let out = sim.authorise("work", "AT1", Some("RT1"), 3600);
    let ev = spawns(&out)[0].0;
    sim.exit(ev, 0);
    let out = sim.advance(secs(3510));
    let (id, _) = single_http(&out);
    let out = sim.respond(
        id,
        400,
        r#"{"error":"invalid_grant","error_description":"revoked"}"#,
    );
    let sp = spawns(&out);
    assert_eq!(sp.len(), 2, "{out:?}");
    assert_eq!(sp[0].1, "event");
    assert_eq!(env_of(sp[0].2, "PIZAUTH_EVENT"), Some("token_invalidated"));
    assert_eq!(sp[1].1, "notify");
    assert_eq!(
        env_of(sp[1].2, "PIZAUTH_MSG"),
        Some("refreshing failed: token endpoint answered HTTP 400: invalid_grant (revoked)")
    );
    assert!(
        sim.show_text("work")
            .unwrap_err()
            .starts_with("Access token unavailable until authorised with URL")
    );
}

/// Issue 12, case 6: a body cut short (or an HTML maintenance page) is a hiccup: the
/// token the user holds is kept and the refresh retried after `refresh_retry`.
#[test]
fn malformed_json_on_refresh_is_transient() {
    let mut sim = active("work");
    let out = sim.advance(secs(3510));
    let (id, _) = single_http(&out);
    sim.respond(id, 200, "{not json");
    assert_eq!(sim.show_text("work").unwrap(), "AT1");
    assert_eq!(sim.next_deadline(), Some(secs(3510 + 40)));
    let out = sim.advance(secs(40));
    let (id, _) = single_http(&out);
    sim.respond(id, 200, "<html>down for maintenance</html>");
    assert_eq!(sim.show_text("work").unwrap(), "AT1");
}

#[test]
fn refresh_timeout_is_transient() {
    let mut sim = active("work");
    let out = sim.advance(secs(3510));
    let (id, _) = single_http(&out);
    let out = sim.advance(secs(30));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CancelHttp { request } if *request == id))
    );
    assert_eq!(sim.show_text("work").unwrap(), "AT1");
    assert_eq!(sim.next_deadline(), Some(secs(3510 + 40)));
}

#[test]
fn without_a_refresh_token_the_token_lasts_until_it_expires() {
    let mut c = config(vec![account("work")]);
    c.token_event_cmd = Some("event".into());
    let mut sim = Sim::new(c);
    let out = sim.authorise("work", "AT1", None, 600);
    sim.exit(spawns(&out)[0].0, 0);
    assert_eq!(sim.next_deadline(), Some(secs(600)));
    let out = sim.advance(secs(599));
    assert!(http_requests(&out).is_empty());
    assert_eq!(sim.show_text("work").unwrap(), "AT1");
    let out = sim.advance(secs(1));
    assert_eq!(
        env_of(spawns(&out)[0].2, "PIZAUTH_EVENT"),
        Some("token_invalidated")
    );
    assert!(sim.show_text("work").unwrap_err().contains("with URL"));
}

#[test]
fn a_refresh_due_during_suspend_happens_on_resume() {
    let mut sim = active("work");
    let out = sim.suspend(secs(8 * 3600));
    let (_, http) = single_http(&out);
    assert_eq!(form(http)[2].1, "refresh_token");
    assert_eq!(
        sim.show_text("work").unwrap_err(),
        "Access token has expired. Refreshing is in progress but has not yet succeeded"
    );
}

#[test]
fn show_of_an_expired_token_starts_a_refresh() {
    // A token valid for 100 s whose refresh fails, with a retry far past its expiry.
    let mut a = account("x");
    a.timing.refresh_retry = secs(1000);
    let mut sim2 = Sim::new(config(vec![a]));
    sim2.authorise("x", "A", Some("R"), 100);
    let out = sim2.advance(secs(10));
    let (id, _) = single_http(&out);
    sim2.fail_http(id, TransportErrorKind::Connect);
    // Expired, and within refresh_retry of the failed attempt: `show` says why and sends
    // nothing, however often it is asked (a mail program polling every second must not
    // turn one outage into a request a second, nor into six failures in a row).
    sim2.advance(secs(200));
    for _ in 0..5 {
        let (reply, out) = sim2.show("x");
        assert!(
            matches!(reply, Reply::Error { ref message } if message.contains("Refreshing failed")),
            "{reply:?}"
        );
        assert!(http_requests(&out).is_empty());
    }
    // Once refresh_retry has passed, the retry itself is due and goes out.
    let out = sim2.advance(secs(800));
    assert_eq!(http_requests(&out).len(), 1);
    let (reply, out) = sim2.show("x");
    assert!(matches!(reply, Reply::Error { ref message } if message.contains("in progress")));
    assert!(http_requests(&out).is_empty());
}

/// Regression: a refresh whose answer was cut short (an I/O error, not an answer) set no
/// hold, so every `show` of the expired token sent another refresh, and the failures that
/// make `transient_error_if_cmd` decide piled up at the pace of `show`.
#[test]
fn a_refresh_cut_short_holds_the_account_back_refresh_retry() {
    let mut a = account("x");
    a.timing.refresh_retry = secs(5);
    let mut sim = Sim::new(config(vec![a]));
    sim.authorise("x", "A", Some("R"), 2);
    let out = sim.advance(secs(2));
    let (id, _) = single_http(&out);
    sim.fail_http(id, TransportErrorKind::Io);
    // The refresh went out at 1 s (half the token's life) and failed at 2 s.
    let mut sent = 0;
    for _ in 0..30 {
        let (_, out) = sim.show("x");
        sent += http_requests(&out).len();
        let out = sim.advance(Duration::from_millis(100));
        sent += http_requests(&out).len();
    }
    // 3 s of `show` every 0.1 s: nothing before refresh_retry (5 s) has passed since.
    assert_eq!(sent, 0);
    let out = sim.advance(secs(2));
    assert_eq!(http_requests(&out).len(), 1, "then the retry");
}

#[test]
fn refresh_command_refreshes_now_once() {
    let mut sim = active("work");
    let (reply, out) = sim.ask(Request::Refresh {
        account: "work".into(),
        with_url: true,
    });
    assert!(matches!(reply, Reply::Done));
    assert_eq!(http_requests(&out).len(), 1);
    let (reply, out) = sim.ask(Request::Refresh {
        account: "work".into(),
        with_url: true,
    });
    assert!(matches!(reply, Reply::Done));
    assert!(
        http_requests(&out).is_empty(),
        "no second refresh while one is in flight"
    );
}

/// Regression: a token living no longer than `refresh_before_expiry` (90 s by default)
/// was due for refresh the moment it arrived, and so was its successor: against a
/// provider that answers at once, a busy loop. It is now refreshed at half its life,
/// and never within a second of being obtained.
#[test]
fn short_lived_tokens_are_refreshed_at_half_their_life() {
    let mut sim = active_for("work", 60);
    assert_eq!(sim.next_deadline(), Some(secs(30)));
    let out = sim.advance(secs(30));
    let (id, _) = single_http(&out);
    sim.respond(
        id,
        200,
        r#"{"access_token":"AT2","token_type":"bearer","expires_in":60}"#,
    );
    assert_eq!(sim.next_deadline(), Some(secs(60)));
    let out = sim.advance(secs(30));
    let (id, _) = single_http(&out);
    // Expired on arrival (issue 12, case 7): no usable token, so a failed refresh: the
    // old token stays and the next try is refresh_retry (40 s) later.
    sim.respond(
        id,
        200,
        r#"{"access_token":"AT3","token_type":"bearer","expires_in":0}"#,
    );
    assert_eq!(sim.show_text("work").unwrap(), "AT2");
    assert_eq!(sim.next_deadline(), Some(secs(100)));
}

fn active_for(name: &str, expires_in: u64) -> Sim {
    let mut sim = Sim::new(config(vec![account(name)]));
    sim.authorise(name, "AT1", Some("RT1"), expires_in);
    sim
}
