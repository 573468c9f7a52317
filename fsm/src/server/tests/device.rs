//! The device authorisation grant (RFC 8628) and client credentials (RFC 6749 4.4).

use super::*;
use crate::config::Flow;
use crate::protocol::TokenStatus;

fn device_account(name: &str) -> Account {
    let mut a = account(name);
    a.flow = Flow::Device;
    a.auth_uri = None;
    a.device_auth_uri = Some(Url::parse("https://auth.example/device").unwrap().into());
    a
}

const CODES: &str = r#"{"device_code":"DEVCODE","user_code":"WDJB-MJHT","verification_uri":"https://auth.example/verify","verification_uri_complete":"https://auth.example/verify?code=WDJB-MJHT","expires_in":600,"interval":5}"#;

/// Starts a device flow and answers with `CODES`; returns the outputs of the answer.
fn codes_issued(sim: &mut Sim) -> Vec<Output> {
    let (reply, out) = sim.show("dev");
    assert!(
        matches!(&reply, Reply::Error { message } if message == "Access token unavailable until authorised: requesting a device code"),
        "{reply:?}"
    );
    let (id, http) = single_http(&out);
    assert_eq!(http.url.as_str(), "https://auth.example/device");
    assert_eq!(
        form(http),
        [
            ("client_id".to_owned(), "client-dev".to_owned()),
            ("scope".to_owned(), "mail offline_access".to_owned()),
        ]
    );
    sim.respond(id, 200, CODES)
}

#[test]
fn device_flow_shows_the_code_notifies_and_polls_until_authorised() {
    let mut c = config(vec![device_account("dev")]);
    c.auth_notify_cmd = Some("notify".into());
    let mut sim = Sim::new(c);
    let out = codes_issued(&mut sim);
    let sp = spawns(&out);
    assert_eq!(sp.len(), 1);
    assert_eq!(
        env_of(sp[0].2, "PIZAUTH_URL"),
        Some("https://auth.example/verify?code=WDJB-MJHT")
    );
    assert_eq!(env_of(sp[0].2, "PIZAUTH_USER_CODE"), Some("WDJB-MJHT"));
    assert_eq!(
        env_of(sp[0].2, "PIZAUTH_VERIFICATION_URI"),
        Some("https://auth.example/verify")
    );
    sim.exit(sp[0].0, 0);
    assert_eq!(
        sim.show_text("dev").unwrap_err(),
        "Access token unavailable until authorised: visit https://auth.example/verify and enter code WDJB-MJHT"
    );
    let (reply, _) = sim.ask(Request::Show {
        account: "dev".into(),
        with_url: false,
        wait: None,
    });
    assert!(
        matches!(reply, Reply::Error { message } if message == "Access token unavailable until authorised")
    );
    // Polls every `interval` seconds.
    assert_eq!(sim.next_deadline(), Some(secs(5)));
    let out = sim.advance(secs(5));
    let (id, http) = single_http(&out);
    assert_eq!(
        form(http),
        [
            (
                "grant_type".to_owned(),
                "urn:ietf:params:oauth:grant-type:device_code".to_owned()
            ),
            ("device_code".to_owned(), "DEVCODE".to_owned()),
            ("client_id".to_owned(), "client-dev".to_owned()),
        ]
    );
    sim.respond(id, 400, r#"{"error":"authorization_pending"}"#);
    assert_eq!(sim.next_deadline(), Some(secs(10)));
    // slow_down adds 5 s to the interval, for good.
    let out = sim.advance(secs(5));
    let (id, _) = single_http(&out);
    sim.respond(id, 400, r#"{"error":"slow_down"}"#);
    assert_eq!(sim.next_deadline(), Some(secs(20)));
    let out = sim.advance(secs(10));
    let (id, _) = single_http(&out);
    // A transient failure keeps polling.
    sim.respond(id, 503, "");
    assert_eq!(sim.next_deadline(), Some(secs(30)));
    let out = sim.advance(secs(10));
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 200, r#"{"access_token":"DEVTOKEN","token_type":"bearer","expires_in":3600,"refresh_token":"R"}"#);
    assert!(logs(&out, Level::Info).contains(&"dev: token_new"));
    assert_eq!(sim.show_text("dev").unwrap(), "DEVTOKEN");
}

#[test]
fn device_requests_without_an_answer_are_cancelled_and_handled_as_failures() {
    // The request for codes: cancelled at the HTTP timeout, and the flow fails saying so.
    let mut sim = Sim::new(config(vec![device_account("dev")]));
    let (_, out) = sim.show("dev");
    let (id, _) = single_http(&out);
    let out = sim.advance(secs(30));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CancelHttp { request } if *request == id))
    );
    assert!(
        out.iter().any(|o| matches!(o, Output::Log { message, .. }
            if message.ends_with("requesting a device code failed: no answer within 30 s"))),
        "{out:?}"
    );
    // A poll: cancelled at the HTTP timeout, and polling goes on an interval later.
    let mut sim = Sim::new(config(vec![device_account("dev")]));
    codes_issued(&mut sim);
    let out = sim.advance(secs(5));
    let (id, _) = single_http(&out);
    let out = sim.advance(secs(30));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CancelHttp { request } if *request == id))
    );
    assert!(http_requests(&out).is_empty(), "{out:?}");
    assert_eq!(sim.next_deadline(), Some(secs(40)));
    let out = sim.advance(secs(5));
    let (next, _) = single_http(&out);
    assert_ne!(next, id);
}

#[test]
fn device_flow_ends_on_denial_expiry_and_code_expiry() {
    for (answer, message) in [
        (r#"{"error":"access_denied"}"#, "authorisation was denied"),
        (
            r#"{"error":"expired_token"}"#,
            "the device code expired before it was entered: run pizauth show for a new one",
        ),
        (
            r#"{"error":"invalid_client"}"#,
            "device authorisation failed: token endpoint answered HTTP 400: invalid_client",
        ),
    ] {
        let mut sim = Sim::new(config(vec![device_account("dev")]));
        codes_issued(&mut sim);
        let out = sim.advance(secs(5));
        let (id, _) = single_http(&out);
        let out = sim.respond(id, 400, answer);
        assert!(
            logs(&out, Level::Error).contains(&format!("dev: {message}").as_str()),
            "{out:?}"
        );
        assert_eq!(sim.next_deadline(), None);
    }
    // The user never enters the code: polling stops when the codes expire.
    let mut sim = Sim::new(config(vec![device_account("dev")]));
    codes_issued(&mut sim);
    let mut out = Vec::new();
    for _ in 0..200 {
        if sim.next_deadline().is_none() {
            break;
        }
        let step = sim.advance(secs(5));
        if let Some((id, _)) = http_requests(&step).first().copied() {
            out = sim.respond(id, 400, r#"{"error":"authorization_pending"}"#);
        }
    }
    assert!(
        sim.elapsed() <= secs(610),
        "polled past expiry: {:?}",
        sim.elapsed()
    );
    let _ = out;
    assert!(matches!(
        sim.ask(Request::Status).0,
        Reply::Status { accounts } if matches!(&accounts[0].state, TokenStatus::NoToken { last_error: Some(e) } if e.message.contains("expired"))
    ));
}

#[test]
fn device_status_reports_the_code() {
    let mut sim = Sim::new(config(vec![device_account("dev")]));
    codes_issued(&mut sim);
    let Reply::Status { accounts } = sim.ask(Request::Status).0 else {
        panic!()
    };
    assert_eq!(accounts[0].flow, "device");
    assert_eq!(
        accounts[0].state,
        TokenStatus::Pending {
            last_notification: WallTime::from_unix_millis(T0_WALL),
            url: Some("https://auth.example/verify?code=WDJB-MJHT".into()),
            user_code: Some("WDJB-MJHT".into()),
        }
    );
}

fn cc_account(name: &str) -> Account {
    let mut a = account(name);
    a.flow = Flow::ClientCredentials;
    a.auth_uri = None;
    a.client_secret = Some(Secret::new("CCSECRET".into()));
    a
}

#[test]
fn client_credentials_obtain_and_renew_by_asking_again() {
    let mut sim = Sim::new(config(vec![cc_account("svc")]));
    let (reply, out) = sim.show("svc");
    assert!(
        matches!(&reply, Reply::Error { message } if message == "Access token unavailable: requesting a token with the client credentials"),
        "{reply:?}"
    );
    let (id, http) = single_http(&out);
    assert_eq!(
        form(http),
        [
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), "client-svc".to_owned()),
            ("scope".to_owned(), "mail offline_access".to_owned()),
            ("client_secret".to_owned(), "CCSECRET".to_owned()),
        ]
    );
    sim.respond(
        id,
        200,
        r#"{"access_token":"CC1","token_type":"bearer","expires_in":600}"#,
    );
    assert_eq!(sim.show_text("svc").unwrap(), "CC1");
    // No refresh token: at refresh time it asks again with its credentials.
    assert_eq!(sim.next_deadline(), Some(secs(510)));
    let out = sim.advance(secs(510));
    let (id, http) = single_http(&out);
    assert_eq!(form(http)[0].1, "client_credentials");
    // Transient errors are handled as for any refresh: keep the token, retry.
    sim.respond(id, 502, "");
    assert_eq!(sim.show_text("svc").unwrap(), "CC1");
    let out = sim.advance(secs(40));
    let (id, _) = single_http(&out);
    let out = sim.respond(
        id,
        200,
        r#"{"access_token":"CC2","token_type":"bearer","expires_in":600}"#,
    );
    assert!(logs(&out, Level::Info).contains(&"svc: token_refreshed"));
    assert_eq!(sim.show_text("svc").unwrap(), "CC2");
    // A permanent error invalidates; show says why, and asks again only once
    // refresh_retry has passed since the refused request (issue 12, case 3).
    let out = sim.advance(secs(510));
    let (id, _) = single_http(&out);
    sim.respond(id, 401, r#"{"error":"invalid_client"}"#);
    let (reply, out) = sim.show("svc");
    assert!(http_requests(&out).is_empty());
    assert!(
        matches!(&reply, Reply::Error { message } if message == "Access token unavailable: refreshing failed: token endpoint answered HTTP 401: invalid_client"),
        "{reply:?}"
    );
    sim.advance(secs(40));
    let (_, out) = sim.show("svc");
    assert_eq!(http_requests(&out).len(), 1);
}

#[test]
fn client_credentials_failures_say_what_failed_and_reach_status() {
    let mut sim = Sim::new(config(vec![cc_account("svc")]));
    let (_, out) = sim.show("svc");
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 404, "no such endpoint");
    assert!(
        logs(&out, Level::Error).contains(&"svc: requesting a token with the client credentials failed: token endpoint answered HTTP 404"),
        "{out:?}"
    );
    let Reply::Status { accounts } = sim.ask(Request::Status).0 else {
        panic!()
    };
    assert_eq!(
        accounts[0].last_error.as_ref().map(|e| e.message.as_str()),
        Some(
            "requesting a token with the client credentials failed: token endpoint answered HTTP 404"
        )
    );
}
