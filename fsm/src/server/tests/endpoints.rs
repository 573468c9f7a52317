//! Issuer discovery (RFC 8414, OpenID Connect) and remote revocation (RFC 7009).

use super::*;
use crate::event::Method;

fn issuer_account(name: &str) -> Account {
    let mut a = account(name);
    a.issuer = Some(Url::parse("https://id.example/tenant").unwrap().into());
    a.auth_uri = None;
    a.token_uri = None;
    a
}

const METADATA: &str = r#"{"issuer":"https://id.example/tenant","authorization_endpoint":"https://id.example/tenant/authorize","token_endpoint":"https://id.example/tenant/token","revocation_endpoint":"https://id.example/tenant/revoke"}"#;

#[test]
fn discovery_tries_rfc8414_then_openid_and_then_starts_the_flow() {
    let mut c = config(vec![issuer_account("a"), issuer_account("b")]);
    c.auth_notify_cmd = Some("notify".into());
    let mut sim = Sim::new(c);
    let (reply, out) = sim.show("a");
    assert!(
        matches!(&reply, Reply::Error { message } if message == "Access token unavailable: discovering the endpoints of https://id.example/tenant"),
        "{reply:?}"
    );
    let (id, http) = single_http(&out);
    assert_eq!(http.method, Method::Get);
    assert_eq!(
        http.url.as_str(),
        "https://id.example/.well-known/oauth-authorization-server/tenant"
    );
    // A second account of the same issuer waits for the same fetch.
    let (_, out) = sim.show("b");
    assert!(http_requests(&out).is_empty());
    let out = sim.respond(id, 404, "not found");
    let (id, http) = single_http(&out);
    assert_eq!(
        http.url.as_str(),
        "https://id.example/tenant/.well-known/openid-configuration"
    );
    let out = sim.respond(id, 200, METADATA);
    // Both flows start on their own, and their users are notified.
    let urls: Vec<&str> = spawns(&out)
        .iter()
        .filter_map(|s| env_of(s.2, "PIZAUTH_URL"))
        .collect();
    assert_eq!(urls.len(), 2);
    assert!(
        urls.iter()
            .all(|u| u.starts_with("https://id.example/tenant/authorize?")),
        "{urls:?}"
    );
    // The exchange goes to the discovered token endpoint.
    let out = sim.authorise("a", "AT", Some("RT"), 3600);
    let _ = out;
    let out = sim.advance(secs(3510));
    let (_, http) = single_http(&out);
    assert_eq!(http.url.as_str(), "https://id.example/tenant/token");
}

#[test]
fn configured_endpoints_win_over_discovered_ones() {
    let mut a = issuer_account("a");
    a.token_uri = Some(Url::parse("https://override.example/token").unwrap().into());
    let mut sim = Sim::new(config(vec![a]));
    let (_, out) = sim.show("a");
    let (id, _) = single_http(&out);
    sim.respond(id, 200, METADATA);
    let out = sim.authorise("a", "AT", Some("RT"), 3600);
    let _ = out;
    let out = sim.advance(secs(3510));
    assert_eq!(
        single_http(&out).1.url.as_str(),
        "https://override.example/token"
    );
}

#[test]
fn a_metadata_document_for_another_issuer_is_refused() {
    let mut sim = Sim::new(config(vec![issuer_account("a")]));
    let (_, out) = sim.show("a");
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 200, r#"{"issuer":"https://evil.example","authorization_endpoint":"https://evil.example/a","token_endpoint":"https://evil.example/t"}"#);
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 200, r#"{"issuer":"https://evil.example","authorization_endpoint":"https://evil.example/a","token_endpoint":"https://evil.example/t"}"#);
    assert!(http_requests(&out).is_empty());
    assert!(
        logs(&out, Level::Error)
            .iter()
            .any(|m| m.contains("names issuer 'https://evil.example'")),
        "{out:?}"
    );
    // Tried again when next needed, but not before refresh_retry (issue 12, case 2);
    // meanwhile show says why.
    let (reply, out) = sim.show("a");
    assert!(http_requests(&out).is_empty());
    assert!(
        matches!(&reply, Reply::Error { message } if message == "Access token unavailable: cannot discover the endpoints of https://id.example/tenant: the metadata names issuer 'https://evil.example', not 'https://id.example/tenant'"),
        "{reply:?}"
    );
    sim.advance(secs(40));
    let (_, out) = sim.show("a");
    assert_eq!(http_requests(&out).len(), 1);
}

#[test]
fn discovery_transport_failures_and_timeouts_are_retried_when_next_needed() {
    // Regression: a transport failure (here a name that does not resolve; a body cut
    // short or a dropped connection alike) set no hold, and every `show` fetched the
    // metadata again at once. Each failure now holds the issuer back `refresh_retry`
    // (40 s by default); the next `show` after that fetches it.
    let mut sim = Sim::new(config(vec![issuer_account("a")]));
    let (_, out) = sim.show("a");
    let (id, _) = single_http(&out);
    sim.fail_http(id, TransportErrorKind::Dns);
    for _ in 0..3 {
        let (_, out) = sim.show("a");
        assert!(
            http_requests(&out).is_empty(),
            "held back after the failure"
        );
    }
    sim.advance(secs(40));
    let (_, out) = sim.show("a");
    let (id, _) = single_http(&out);
    let out = sim.advance(secs(30));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::CancelHttp { request } if *request == id))
    );
    let (_, out) = sim.show("a");
    assert!(
        http_requests(&out).is_empty(),
        "held back after the timeout"
    );
    sim.advance(secs(40));
    let (_, out) = sim.show("a");
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 200, METADATA);
    assert_eq!(spawns(&out).len(), 0);
    assert!(
        sim.show_text("a")
            .unwrap_err()
            .contains("with URL https://id.example/tenant/authorize?")
    );
}

#[test]
fn revoke_also_revokes_the_refresh_token_at_the_provider() {
    let mut a = account("a");
    a.revoke_uri = Some(Url::parse("https://auth.example/revoke").unwrap().into());
    a.client_secret = Some(Secret::new("S".into()));
    let mut sim = Sim::new(config(vec![a.clone()]));
    sim.authorise("a", "AT", Some("RT"), 3600);
    let client = ClientId(900);
    let out = sim.send(
        client,
        Request::Revoke {
            account: "a".into(),
        },
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Reply { .. })),
        "the reply waits for the provider"
    );
    let (id, http) = single_http(&out);
    assert_eq!(http.url.as_str(), "https://auth.example/revoke");
    assert_eq!(
        form(http),
        [
            ("token".to_owned(), "RT".to_owned()),
            ("token_type_hint".to_owned(), "refresh_token".to_owned()),
            ("client_id".to_owned(), "client-a".to_owned()),
            ("client_secret".to_owned(), "S".to_owned()),
        ]
    );
    // Forgotten locally at once.
    assert!(sim.show_text("a").unwrap_err().contains("with URL"));
    let out = sim.respond(id, 200, "");
    assert!(out.iter().any(|o| matches!(o, Output::Reply { client: c, reply: Reply::Notice { message } } if *c == client && message == "a: revoked locally and at the provider")), "{out:?}");

    // A failure at the provider is reported, and the local forget stands.
    let mut sim = Sim::new(config(vec![a]));
    sim.authorise("a", "AT", Some("RT"), 3600);
    let out = sim.send(
        client,
        Request::Revoke {
            account: "a".into(),
        },
    );
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 400, r#"{"error":"unsupported_token_type"}"#);
    assert!(out.iter().any(|o| matches!(o, Output::Reply { reply: Reply::Notice { message }, .. } if message == "a: revoked locally; revoking at the provider failed: revocation endpoint answered HTTP 400: unsupported_token_type")), "{out:?}");
    // Timeouts too.
    sim.authorise("a", "AT", Some("RT"), 3600);
    let out = sim.send(
        client,
        Request::Revoke {
            account: "a".into(),
        },
    );
    assert_eq!(http_requests(&out).len(), 1);
    let out = sim.advance(secs(30));
    assert!(out.iter().any(|o| matches!(o, Output::Reply { reply: Reply::Notice { message }, .. } if message.contains("no answer within 30 s"))), "{out:?}");
}

#[test]
fn revoke_discovers_the_revocation_endpoint_when_needed() {
    let mut sim = Sim::new(config(vec![issuer_account("a")]));
    let (_, out) = sim.show("a");
    let (id, _) = single_http(&out);
    sim.respond(id, 200, METADATA);
    sim.authorise("a", "AT", None, 3600);
    let (reply, out) = {
        let out = sim.send(
            ClientId(5),
            Request::Revoke {
                account: "a".into(),
            },
        );
        (out.iter().any(|o| matches!(o, Output::Reply { .. })), out)
    };
    assert!(!reply);
    let (_, http) = single_http(&out);
    assert_eq!(http.url.as_str(), "https://id.example/tenant/revoke");
    assert_eq!(
        form(http)[1].1,
        "access_token",
        "no refresh token: revoke the access token"
    );
}

#[test]
fn revoke_without_a_revocation_endpoint_is_local_as_before() {
    let mut sim = Sim::new(config(vec![account("a")]));
    sim.authorise("a", "AT", Some("RT"), 3600);
    let (reply, out) = sim.ask(Request::Revoke {
        account: "a".into(),
    });
    assert!(matches!(reply, Reply::Done));
    assert!(http_requests(&out).is_empty());
}

/// Case 1 of issue 12: an `issuer` with an explicit `auth_uri` learns its token endpoint
/// only when the code comes back. The exchange used to wait six seconds on a timer it had
/// not earned (and, with discovery failing, fetched the metadata every six seconds for
/// ever without counting an attempt); it now waits for the metadata and is sent the
/// moment it arrives.
#[test]
fn an_explicit_auth_uri_exchanges_the_code_as_soon_as_the_token_endpoint_is_discovered() {
    let mut a = issuer_account("a");
    a.auth_uri = Some(
        Url::parse("https://id.example/tenant/authorize")
            .unwrap()
            .into(),
    );
    let mut sim = Sim::new(config(vec![a]));
    let url = sim.show_text("a").unwrap_err();
    assert!(
        url.contains("with URL https://id.example/tenant/authorize?"),
        "{url}"
    );
    let state = query_param(url.rsplit(' ').next().unwrap(), "state").unwrap();
    let (status, _, out) = sim.redirect(&format!("/?state={state}&code=the-code"));
    assert_eq!(status, 200);
    let (id, http) = single_http(&out);
    assert_eq!(http.method, Method::Get);
    let out = sim.respond(id, 200, METADATA);
    let (id, http) = single_http(&out);
    assert_eq!(http.url.as_str(), "https://id.example/tenant/token");
    assert!(form(http).contains(&("code".into(), "the-code".into())));
    sim.respond(
        id,
        200,
        r#"{"access_token":"AT","token_type":"bearer","expires_in":3600}"#,
    );
    assert_eq!(sim.show_text("a"), Ok("AT".into()));
}

/// A refresh that needs the token endpoint from metadata not yet fetched (a token
/// restored from a dump) waits for the metadata in its state (`Next::Discovering`) and is
/// sent the moment it arrives.
#[test]
fn a_refresh_waiting_for_the_metadata_is_sent_when_it_arrives() {
    let mut sim = Sim::new(config(vec![issuer_account("a")]));
    let (_, out) = sim.show("a");
    let (id, _) = single_http(&out);
    sim.respond(id, 200, METADATA);
    sim.authorise("a", "AT", Some("RT"), 3600);
    let Reply::Dump { dump } = sim.ask(Request::Dump).0 else {
        panic!("no dump")
    };
    let mut sim = Sim::new(config(vec![issuer_account("a")]));
    assert!(matches!(sim.ask(Request::Restore { dump }).0, Reply::Done));
    assert_eq!(sim.show_text("a"), Ok("AT".into()));
    let out = sim.advance(secs(3510));
    let (id, http) = single_http(&out);
    assert_eq!(http.method, Method::Get);
    let out = sim.respond(id, 200, METADATA);
    let (_, http) = single_http(&out);
    assert_eq!(http.url.as_str(), "https://id.example/tenant/token");
    assert!(form(http).contains(&("refresh_token".into(), "RT".into())));
}

/// The device flow with an explicit `device_auth_uri` learns its token endpoint from the
/// metadata when it first polls: it waits for the metadata in its state and polls the
/// moment it arrives, instead of one interval later.
#[test]
fn a_device_poll_waiting_for_the_metadata_is_sent_when_it_arrives() {
    let mut a = issuer_account("tv");
    a.flow = Flow::Device;
    a.device_auth_uri = Some(
        Url::parse("https://id.example/tenant/device")
            .unwrap()
            .into(),
    );
    let mut sim = Sim::new(config(vec![a]));
    let (_, out) = sim.show("tv");
    let (id, http) = single_http(&out);
    assert_eq!(http.url.as_str(), "https://id.example/tenant/device");
    sim.respond(
        id,
        200,
        r#"{"device_code":"D","user_code":"U","verification_uri":"https://id.example/v","interval":5}"#,
    );
    let out = sim.advance(secs(5));
    let (id, http) = single_http(&out);
    assert_eq!(http.method, Method::Get);
    let out = sim.respond(id, 200, METADATA);
    let (id, http) = single_http(&out);
    assert_eq!(http.url.as_str(), "https://id.example/tenant/token");
    sim.respond(
        id,
        200,
        r#"{"access_token":"AT","token_type":"bearer","expires_in":3600}"#,
    );
    assert_eq!(sim.show_text("tv"), Ok("AT".into()));
}

/// A due refresh that cannot be sent because the issuer's metadata could not be had: the
/// token is kept, and `show` past its expiry says why no refresh is under way (it said
/// "Refreshing initiated", with the reason only in the log).
#[test]
fn show_says_why_a_refresh_waiting_on_failed_discovery_was_not_sent() {
    let mut a = issuer_account("a");
    a.timing.refresh_retry = secs(200);
    let mut sim = Sim::new(config(vec![a.clone()]));
    let (_, out) = sim.show("a");
    let (id, _) = single_http(&out);
    sim.respond(id, 200, METADATA);
    sim.authorise("a", "AT", Some("RT"), 3600);
    let Reply::Dump { dump } = sim.ask(Request::Dump).0 else {
        panic!("no dump")
    };
    let mut sim = Sim::new(config(vec![a]));
    assert!(matches!(sim.ask(Request::Restore { dump }).0, Reply::Done));
    let out = sim.advance(secs(3510));
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 503, "");
    let (id, _) = single_http(&out);
    let out = sim.respond(id, 503, "");
    assert!(http_requests(&out).is_empty(), "{out:?}");
    sim.advance(secs(100));
    let (reply, out) = sim.show("a");
    assert!(http_requests(&out).is_empty(), "{out:?}");
    let Reply::Error { message } = reply else {
        panic!("{reply:?}")
    };
    assert!(
        message.starts_with(
            "Access token has expired. Refreshing failed (cannot discover the endpoints of https://id.example/tenant"
        ) && message.ends_with("; pizauth keeps trying"),
        "{message}"
    );
    // At refresh_retry the metadata is fetched again, and the refresh follows it.
    let out = sim.advance(secs(100));
    let (id, http) = single_http(&out);
    assert_eq!(http.method, Method::Get);
    let out = sim.respond(id, 200, METADATA);
    let (_, http) = single_http(&out);
    assert!(form(http).contains(&("refresh_token".into(), "RT".into())));
}
