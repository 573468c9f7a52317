//! End-to-end tests of the eight ways issue 12 found the daemon stuck, hammering a
//! provider or dropping a token, each against the fake provider on 127.0.0.1. The
//! timeline tests of the same cases are in `fsm/src/server/tests/cases.rs`.

mod common;

use std::time::Duration;

use common::provider::{Provider, Reply};
use common::{PROCESSING_PAGE, Sandbox, WAIT, account, authorised, browser, wait_for};

/// The gaps between the token requests the provider received.
fn gaps(provider: &Provider) -> Vec<Duration> {
    let at: Vec<_> = provider.token_requests().iter().map(|r| r.at).collect();
    at.windows(2).map(|w| w[1].duration_since(w[0])).collect()
}

/// The metadata document of `issuer`, naming the provider's endpoints.
fn metadata(provider: &Provider, issuer: &str) -> Reply {
    Reply::json(
        200,
        &serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": provider.url("/authorize"),
            "token_endpoint": provider.url("/token"),
        })
        .to_string(),
    )
}

/// Case 1: `issuer` with an explicit `auth_uri`. The token endpoint is discovered only
/// once the browser brings the code back; the exchange is sent the moment the metadata
/// arrives. (It used to wait for a retry timer it had not earned: with that delay made
/// long, the token never came.)
#[test]
fn case1_explicit_auth_uri_with_a_discovered_token_endpoint() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("case1");
    sb.set_env("PIZAUTH_TEST_TUNABLES", "exchange_retry_ms=600000");
    let issuer = provider.url("/tenant");
    provider.push_at(
        "/.well-known/oauth-authorization-server/tenant",
        [metadata(&provider, &issuer)],
    );
    sb.write_config(&format!(
        "account \"a\" {{\n    issuer = \"{issuer}\";\n    auth_uri = \"{}\";\n    \
         client_id = \"client-a\";\n}}\n",
        provider.url("/authorize")
    ));
    sb.start();
    provider.push([Reply::token("fake-a", Some("refresh-a"), Some(3600))]);
    let url = sb.auth_url("a");
    // Nothing is discovered before the endpoint is needed.
    assert!(provider.requests().is_empty());
    let visit = browser::visit(&url, None).expect("the browser flow");
    assert_eq!(visit.page.body, PROCESSING_PAGE);
    sb.wait_token("a", "fake-a");
    let tokens = provider.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].field("grant_type"), Some("authorization_code"));
}

/// Case 3: client credentials after a failure. A `show` right after a 503 sends nothing
/// and says why; only `refresh_retry` later is the provider asked again. With a wrong
/// secret, `show` names the provider's `invalid_client`.
#[test]
fn case3_client_credentials_after_a_failure() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("case3");
    sb.write_config(&format!(
        "account \"svc\" {{\n    auth_flow = client_credentials;\n    token_uri = \"{}\";\n    \
         client_id = \"client-svc\";\n    client_secret = \"wrong-secret\";\n    \
         refresh_retry = 2s;\n}}\n",
        provider.url("/token")
    ));
    sb.start();
    provider.push([Reply::json(503, "{}")]);
    provider.set_fallback(Reply::oauth_error(401, "invalid_client", "bad secret"));
    sb.run(&["show", "svc"]);
    provider.wait_token_requests(1);
    let why = "ERROR Access token unavailable: requesting a token with the client credentials \
               failed: token endpoint answered HTTP 503 (temporary)\n";
    wait_for("show to name the 503", WAIT, || {
        (sb.run(&["show", "svc"]).stderr == why).then_some(())
    });
    for _ in 0..5 {
        sb.run(&["show", "svc"]);
    }
    let refused = "ERROR Access token unavailable: requesting a token with the client \
                   credentials failed: token endpoint answered HTTP 401: invalid_client (bad secret)\n";
    wait_for("show to name invalid_client", WAIT, || {
        (sb.run(&["show", "svc"]).stderr == refused).then_some(())
    });
    for _ in 0..10 {
        sb.run(&["show", "svc"]).fails(refused);
    }
    // However often show ran, requests came at least refresh_retry apart.
    let gaps = gaps(&provider);
    assert!(!gaps.is_empty());
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(1900)),
        "{gaps:?}"
    );
}

/// Case 6: one odd answer to a refresh (a CDN's 520 to 524, a 200 HTML maintenance page,
/// a body cut short) dropped the token the user held. They are hiccups now: the token
/// stays and the refresh is retried after `refresh_retry`.
#[test]
fn case6_odd_answers_to_a_refresh_keep_the_token() {
    let provider = Provider::start();
    let html = Reply::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: "<html>down for maintenance</html>".into(),
    };
    let sb = authorised(
        "case6",
        &provider,
        "    refresh_at_least = 1s;\n    refresh_retry = 1s;",
        3600,
        [
            Reply::json(520, ""),
            html,
            Reply::CloseMidBody,
            Reply::json(524, "<html>timeout</html>"),
            Reply::token("fake-access-2", None, Some(3600)),
        ],
    );
    for n in 2..=5 {
        provider.wait_token_requests(n);
        sb.run(&["show", "work"]).ok("fake-access-1\n");
    }
    sb.wait_token("work", "fake-access-2");
    let requests = provider.token_requests();
    // The refresh token was never lost.
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.field("refresh_token") == Some("fake-refresh-1"))
    );
    assert!(
        !sb.read("errors.log").contains("work|"),
        "{}",
        sb.read("errors.log")
    );
}

/// Case 7: `expires_in: 0` gave one refresh a second for ever, and `show` never handed
/// out a token. Such an answer gives no usable token: the old token is kept, and the
/// provider is asked once per `refresh_retry`.
#[test]
fn case7_expires_in_zero_is_asked_for_once_per_refresh_retry() {
    let provider = Provider::start();
    provider.set_fallback(Reply::token(
        "fake-access-0",
        Some("fake-refresh-0"),
        Some(0),
    ));
    let sb = authorised(
        "case7",
        &provider,
        "    refresh_at_least = 1s;\n    refresh_retry = 2s;",
        3600,
        [],
    );
    provider.wait_token_requests(4);
    sb.run(&["show", "work"]).ok("fake-access-1\n");
    let gaps = gaps(&provider);
    // The exchange, then the refresh a second later; then refresh_retry apart.
    assert!(
        gaps[1..].iter().all(|g| *g >= Duration::from_millis(1900)),
        "{gaps:?}"
    );
}

/// Case 8: a provider's `access_token` with control characters was printed raw by
/// `show`. It is a malformed answer: the exchange fails and says so, and a refresh
/// answering so keeps the old token.
#[test]
fn case8_a_token_with_control_characters_is_never_printed() {
    let provider = Provider::start();
    let evil = "fake\u{1b}[2J\nrm -rf ~";
    let mut sb = Sandbox::new("case8");
    sb.write_config(&account("work", &provider, ""));
    sb.start();
    provider.push([Reply::token(evil, Some("fake-refresh-1"), Some(3600))]);
    let url = sb.auth_url("work");
    browser::visit(&url, None).expect("the browser flow");
    provider.wait_token_requests(1);
    let status = wait_for("the exchange to fail", WAIT, || {
        let s = sb.status_of("work");
        s.contains("last error").then_some(s)
    });
    assert!(
        status.contains("'access_token' has characters outside RFC 6750's b64token"),
        "{status}"
    );
    let run = sb.run(&["show", "work"]);
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stderr.contains('\u{1b}'),
        "{run:?}"
    );
    drop(sb);

    let sb = authorised(
        "case8-refresh",
        &provider,
        "    refresh_at_least = 1s;\n    refresh_retry = 1s;",
        3600,
        [
            Reply::token(evil, None, Some(3600)),
            Reply::token("fake-access-2", None, Some(3600)),
        ],
    );
    provider.wait_token_requests(3);
    sb.wait_token("work", "fake-access-2");
}

/// Case 5: `http_listen = none` with an account whose redirect URI is `http:` (the
/// default) started, and failed only at the first `show`. It is refused at start and at
/// reload, with line and column.
#[test]
fn case5_an_http_redirect_without_the_http_listener_is_refused() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("case5");
    let bad = format!("http_listen = none;\n{}", account("plain", &provider, ""));
    sb.write_config(&bad);
    let config = sb.config_path().display().to_string();
    let out = sb.run(&["server", "-d", "-c", &config]);
    assert_eq!(out.code, 1, "{out:?}");
    let why = "account \"plain\" has an http redirect_uri (http://localhost/), but http_listen \
               is none: redirects could not reach pizauth";
    assert!(
        out.stderr.contains(&format!("{config}:2:9: {why}")),
        "{out:?}"
    );
    assert!(!sb.socket().exists(), "the server started");

    // At reload: refused the same way, and the running configuration stays.
    sb.write_config(&account("plain", &provider, ""));
    sb.start();
    sb.write_config(&bad);
    let run = sb.run(&["reload"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with(&format!("ERROR {config}:2:9: {why}")),
        "{run:?}"
    );
    assert!(
        sb.auth_url("plain")
            .contains("redirect_uri=http%3A%2F%2Flocalhost%3A")
    );
}

/// Case 2: discovery that fails for good (the metadata names another issuer). Every
/// `show` started a new metadata fetch and said "discovering the endpoints of ...";
/// now `show` says why it failed, and the issuer is asked again only `refresh_retry`
/// later.
#[test]
fn case2_discovery_that_fails_for_good() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("case2");
    let issuer = provider.url("/tenant");
    for path in [
        "/.well-known/oauth-authorization-server/tenant",
        "/tenant/.well-known/openid-configuration",
    ] {
        provider.set_fallback_at(path, metadata(&provider, "https://evil.example/tenant"));
    }
    sb.write_config(&format!(
        "account \"a\" {{\n    issuer = \"{issuer}\";\n    client_id = \"client-a\";\n    \
         refresh_retry = 2s;\n}}\n"
    ));
    sb.start();
    let why = format!(
        "ERROR Access token unavailable: cannot discover the endpoints of {issuer}: the \
         metadata names issuer 'https://evil.example/tenant', not '{issuer}'\n"
    );
    sb.run(&["show", "a"]);
    wait_for("show to say why discovery failed", WAIT, || {
        (sb.run(&["show", "a"]).stderr == why).then_some(())
    });
    let fetches = || {
        provider
            .requests()
            .iter()
            .filter(|r| r.path.contains(".well-known"))
            .map(|r| r.at)
            .collect::<Vec<_>>()
    };
    for _ in 0..10 {
        sb.run(&["show", "a"]);
    }
    wait_for("a second round of fetches", WAIT, || {
        sb.run(&["show", "a"]);
        (fetches().len() >= 4).then_some(())
    });
    let at = fetches();
    // Each round is RFC 8414 then OpenID Connect; rounds are refresh_retry apart.
    for round in at.chunks(2).collect::<Vec<_>>().windows(2) {
        assert!(
            round[1][0].duration_since(round[0][1]) >= Duration::from_millis(1900),
            "{at:?}"
        );
    }
}

/// Case 4: `redirect_uri = "http://localhost"` (no path, as Microsoft's registration
/// writes it) was sent as `http://localhost:PORT/`, and a strict provider refused the
/// login. Only the port changes now, and the listener takes the browser's
/// `GET /?code=...`.
#[test]
fn case4_a_redirect_uri_without_a_path() {
    let provider = Provider::start();
    provider.set_registered_redirect("http://localhost");
    let mut sb = Sandbox::new("case4");
    sb.write_config(&account(
        "work",
        &provider,
        "    redirect_uri = \"http://localhost\";",
    ));
    sb.start();
    provider.push([Reply::token("fake-access-1", None, Some(3600))]);
    let url = sb.authorise("work", "fake-access-1");
    let port = sb.http_port();
    assert!(
        url.contains(&format!("redirect_uri=http%3A%2F%2Flocalhost%3A{port}&")),
        "{url}"
    );
    let exchange = &provider.token_requests()[0];
    assert_eq!(
        exchange.field("redirect_uri"),
        Some(format!("http://localhost:{port}").as_str())
    );
}
