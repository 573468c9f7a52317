//! Edges real providers showed (issue 15): client authentication by HTTP Basic, the RFC
//! 9207 mix-up defence, and a token that came without the refresh token asked for.

use super::*;
use crate::config::ClientAuth;
use crate::protocol::TokenStatus;

fn issuer_account(name: &str, client_auth: Option<ClientAuth>) -> Account {
    let mut a = account(name);
    a.issuer = Some(Url::parse("https://id.example/").unwrap().into());
    a.auth_uri = None;
    a.token_uri = None;
    a.client_secret = Some(Secret::new("sec".to_owned()));
    a.client_auth = client_auth;
    a
}

const METADATA: &str = r#"{"issuer":"https://id.example/","authorization_endpoint":"https://id.example/auth","token_endpoint":"https://id.example/token","token_endpoint_auth_methods_supported":["client_secret_basic"],"authorization_response_iss_parameter_supported":true}"#;

/// Starts `name`'s login through discovery; returns the `state` of its URL.
fn discover_and_start(sim: &mut Sim, name: &str) -> String {
    let (_, out) = sim.show(name);
    let (id, _) = single_http(&out);
    sim.respond(id, 200, METADATA);
    let Reply::Error { message } = sim.show(name).0 else {
        panic!("expected no token yet")
    };
    let url = message.rsplit(' ').next().unwrap().to_owned();
    query_param(&url, "state").expect("state")
}

#[test]
fn the_metadata_chooses_basic_for_the_exchange_and_the_refresh() {
    let mut sim = Sim::new(config(vec![issuer_account("a", None)]));
    let state = discover_and_start(&mut sim, "a");
    let (status, _, out) = sim.redirect(&format!(
        "/?state={state}&code=C&iss=https%3A%2F%2Fid.example%2F"
    ));
    assert_eq!(status, 200);
    let (id, http) = single_http(&out);
    let auth = http.authorization.as_ref().expect("a Basic header");
    assert_eq!(auth.as_str(), "Basic Y2xpZW50LWE6c2Vj"); // client-a:sec
    assert!(
        form(http)
            .iter()
            .all(|(k, _)| k != "client_secret" && k != "client_id")
    );
    sim.respond(
        id,
        200,
        r#"{"access_token":"AT","token_type":"bearer","expires_in":3600,"refresh_token":"RT"}"#,
    );
    let out = sim.advance(secs(3510));
    let (_, http) = single_http(&out);
    assert!(http.authorization.is_some());
}

#[test]
fn a_configured_method_wins_over_the_metadata() {
    let mut sim = Sim::new(config(vec![issuer_account("a", Some(ClientAuth::Post))]));
    let state = discover_and_start(&mut sim, "a");
    let (_, _, out) = sim.redirect(&format!(
        "/?state={state}&code=C&iss=https%3A%2F%2Fid.example%2F"
    ));
    let (_, http) = single_http(&out);
    assert!(http.authorization.is_none());
    assert!(form(http).contains(&("client_secret".into(), "sec".into())));
}

/// A redirect whose `iss` is another issuer's (or missing, when the metadata promised
/// one) is refused: the browser is told, `error_notify_cmd` runs, nothing is exchanged.
#[test]
fn a_redirect_from_another_issuer_is_refused() {
    for iss in ["&iss=https%3A%2F%2Fevil.example%2F", ""] {
        let mut c = config(vec![issuer_account("a", None)]);
        c.error_notify_cmd = Some("notify".into());
        let mut sim = Sim::new(c);
        let state = discover_and_start(&mut sim, "a");
        let (status, page, out) = sim.redirect(&format!("/?state={state}&code=C{iss}"));
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("RFC 9207"), "{page}");
        assert!(http_requests(&out).is_empty(), "{out:?}");
        let notified: Vec<_> = spawns(&out)
            .iter()
            .filter_map(|s| env_of(s.2, "PIZAUTH_MSG").map(str::to_owned))
            .collect();
        assert_eq!(notified.len(), 1, "{out:?}");
        assert!(
            notified[0].contains("authorisation refused"),
            "{notified:?}"
        );
        let (reply, _) = sim.ask(Request::Status);
        let Reply::Status { accounts } = reply else {
            panic!("{reply:?}")
        };
        assert!(
            matches!(&accounts[0].state, TokenStatus::NoToken { last_error: Some(e) } if e.message.contains("RFC 9207")),
            "{accounts:?}"
        );
    }
}

#[test]
fn a_token_without_the_refresh_token_asked_for_is_a_warning_in_status() {
    let mut sim = Sim::new(config(vec![account("a")]));
    let out = sim.authorise("a", "AT", None, 3600);
    assert!(
        logs(&out, Level::Warn)
            .iter()
            .any(|m| m.starts_with("a: no refresh token came although offline_access")),
        "{out:?}"
    );
    let Reply::Status { accounts } = sim.ask(Request::Status).0 else {
        panic!()
    };
    let w = accounts[0].warning.as_deref().expect("a warning");
    assert!(w.contains("cannot be refreshed"), "{w}");
    // With a refresh token, no warning.
    let mut sim = Sim::new(config(vec![account("a")]));
    let out = sim.authorise("a", "AT", Some("RT"), 3600);
    assert!(logs(&out, Level::Warn).is_empty(), "{out:?}");
    let Reply::Status { accounts } = sim.ask(Request::Status).0 else {
        panic!()
    };
    assert_eq!(accounts[0].warning, None);
}
