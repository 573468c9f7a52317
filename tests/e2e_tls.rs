//! TLS on both sides: the HTTPS redirect listener (its certificate checked against the
//! fingerprint `pizauth info -j` reports, as a careful user would), and HTTPS token
//! endpoints, trusted through `SSL_CERT_FILE` or refused.

mod common;

use common::provider::{Provider, Reply};
use common::tls::{TestCa, pinned_client};
use common::{PROCESSING_PAGE, Sandbox, account, append_cmd, browser, config_string};

#[test]
fn https_redirect_listener_with_the_advertised_certificate() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("tls-redirect");
    sb.write_config(&account(
        "work",
        &provider,
        "    redirect_uri = \"https://localhost/\";",
    ));
    sb.start();
    let info = sb.info_json();
    let https_port = info["server_info"]["https_port"]
        .as_str()
        .expect("https port")
        .to_owned();
    let fingerprint = info["server_info"]["https_pub_key"]
        .as_str()
        .expect("fingerprint")
        .to_owned();

    let url = sb.auth_url("work");
    let redirect_uri = format!("https://localhost:{https_port}/");
    let parsed = url::Url::parse(&url).expect("url");
    let sent = parsed
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned());
    assert_eq!(sent.as_deref(), Some(redirect_uri.as_str()));

    // A browser that expects another certificate refuses the handshake: the pin is real.
    let wrong = "00:".repeat(31) + "00";
    let refused = browser::visit(&url, Some(pinned_client(&wrong)));
    assert!(refused.is_err(), "{refused:?}");

    provider.push([Reply::token("fake-access", None, Some(3600))]);
    let visit = browser::visit(&url, Some(pinned_client(&fingerprint))).expect("TLS flow");
    assert!(
        visit.redirect.starts_with(&redirect_uri),
        "{}",
        visit.redirect
    );
    assert_eq!(
        (visit.page.status, visit.page.body.as_str()),
        (200, PROCESSING_PAGE)
    );
    sb.wait_token("work", "fake-access");
    let r = provider.token_requests();
    assert_eq!(r[0].field("redirect_uri"), Some(redirect_uri.as_str()));
}

/// The certificate is made on the first HTTPS connection when no `info` asked for it
/// before: the browser gets it at once, and `info` reports that same certificate.
#[test]
fn the_certificate_made_for_the_first_connection_is_the_one_info_reports() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("tls-first-connection");
    sb.write_config(&account(
        "work",
        &provider,
        "    redirect_uri = \"https://localhost/\";",
    ));
    sb.start();
    let url = sb.auth_url("work");

    // A browser pinned to nothing: the handshake fails, and says what it was shown.
    let wrong = "00:".repeat(31) + "00";
    let refused = browser::visit(&url, Some(pinned_client(&wrong))).expect_err("pinned");
    let text = refused.to_string();
    let shown = text
        .split("certificate fingerprint ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_owned();
    assert_eq!(shown.len(), 95, "{shown}");

    let info = sb.info_json();
    assert_eq!(
        info["server_info"]["https_pub_key"].as_str(),
        Some(shown.as_str())
    );

    provider.push([Reply::token("fake-access", None, Some(3600))]);
    let visit = browser::visit(&url, Some(pinned_client(&shown))).expect("TLS flow");
    assert_eq!(visit.page.status, 200);
    sb.wait_token("work", "fake-access");
}

/// A sandbox trusting `ca` through `SSL_CERT_FILE`, with account `work` authorising at
/// `auth` and getting tokens from `token`; notifications go to `errors.log`.
fn with_token_endpoint(name: &str, ca: &TestCa, auth: &Provider, token: &Provider) -> Sandbox {
    let mut sb = Sandbox::new(name);
    let bundle = sb.path("ca.pem");
    std::fs::write(&bundle, &ca.ca_pem).expect("write the CA");
    sb.set_env("SSL_CERT_FILE", &bundle.display().to_string());
    sb.set_env(
        "PIZAUTH_TEST_TUNABLES",
        "exchange_retry_ms=100,http_timeout_ms=2000",
    );
    let errors = sb.path("errors.log");
    sb.write_config(&format!(
        "error_notify_cmd = \"{}\";\naccount \"work\" {{\n    auth_uri = \"{}\";\n    \
         token_uri = \"{}\";\n    client_id = \"client-work\";\n}}\n",
        append_cmd(&errors, "$PIZAUTH_ACCOUNT|$PIZAUTH_MSG"),
        config_string(&auth.url("/authorize")),
        config_string(&token.url("/token")),
    ));
    sb.start();
    sb
}

/// Also a regression test: a TLS record with no data (a KeyUpdate, as servers send on
/// connections they expect to sit idle) made pizauth drop its kept-alive connection.
#[test]
fn https_token_endpoint_trusted_through_ssl_cert_file() {
    let ca = TestCa::new("trusted");
    let auth = Provider::start();
    let token = Provider::start_tls(ca.server_config.clone());
    assert!(token.url("/token").starts_with("https://127.0.0.1:"));
    token.set_keep_alive(Some(std::time::Duration::from_secs(10)));
    token.set_key_update_when_idle();
    token.push([Reply::token(
        "fake-access",
        Some("fake-refresh"),
        Some(3600),
    )]);
    let sb = with_token_endpoint("tls-trusted", &ca, &auth, &token);
    sb.authorise("work", "fake-access");
    let r = token.token_requests();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].field("grant_type"), Some("authorization_code"));
    // A refresh goes the same way, on the same TLS connection: TLS records that carry
    // no data (here a KeyUpdate) arriving while it is idle are no reason to drop it.
    common::wait_for("a KeyUpdate", common::WAIT, || {
        (token.key_updates() >= 1).then_some(())
    });
    token.push([Reply::token("fake-access-2", None, Some(3600))]);
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-access-2");
    assert_eq!(token.connections(), 1);
    assert!(sb.read("errors.log").is_empty());
}

#[test]
fn https_token_endpoint_with_an_untrusted_certificate_is_refused() {
    let trusted = TestCa::new("trusted");
    let other = TestCa::new("other");
    let auth = Provider::start();
    // Signed by a CA pizauth has never heard of.
    let token = Provider::start_tls(other.server_config.clone());
    token.set_fallback(Reply::token("fake-stolen", None, Some(3600)));
    let sb = with_token_endpoint("tls-untrusted", &trusted, &auth, &token);
    let url = sb.auth_url("work");
    let visit = browser::visit(&url, None).expect("browser flow");
    assert_eq!(visit.page.status, 200);
    let errors = sb.wait_lines("errors.log", 1);
    let why = "exchanging the authorisation code failed after 10 tries: TLS with 127.0.0.1:";
    assert!(errors[0].starts_with(&format!("work|{why}")), "{errors:?}");
    assert!(
        errors[0].contains("invalid peer certificate: UnknownIssuer"),
        "{errors:?}"
    );
    // It tried, and no request ever got through.
    assert!(token.connections() >= 1);
    assert!(token.token_requests().is_empty());
    let status = sb.status_of("work");
    assert!(
        status.starts_with("work: No access token (last error ") && status.contains(why),
        "{status}"
    );
    sb.run(&["show", "-u", "work"]).fails(common::UNAVAILABLE);
}

/// A TLS set-up that failed (the bundle named by `SSL_CERT_FILE` could not be read: gone
/// for a moment, or no descriptor left to read it with) is made again for the next
/// request. It used to be kept, and every HTTPS token request failed until a restart.
#[test]
fn a_bundle_that_could_not_be_read_is_read_again_for_the_next_request() {
    let ca = TestCa::new("late");
    let auth = Provider::start();
    let token = Provider::start_tls(ca.server_config.clone());
    token.push([Reply::token(
        "fake-access",
        Some("fake-refresh"),
        Some(3600),
    )]);
    let sb = with_token_endpoint("tls-late-bundle", &ca, &auth, &token);
    // The bundle is read on the first HTTPS connection: take it away before that.
    let bundle = sb.path("ca.pem");
    std::fs::remove_file(&bundle).expect("remove the CA");
    let visit = browser::visit(&sb.auth_url("work"), None).expect("browser flow");
    assert_eq!(visit.page.status, 200);
    let errors = sb.wait_lines("errors.log", 1);
    assert!(errors[0].contains("cannot set up TLS"), "{errors:?}");
    assert!(token.token_requests().is_empty());
    // Back again: the next login's exchange reads it and gets through.
    std::fs::write(&bundle, &ca.ca_pem).expect("write the CA");
    sb.authorise("work", "fake-access");
    assert_eq!(token.token_requests().len(), 1);
}

#[test]
fn listeners_that_are_off() {
    let provider = Provider::start();
    // HTTPS off: an https redirect_uri falls back to the HTTP listener.
    let mut sb = Sandbox::new("https-off");
    sb.write_config(&format!(
        "https_listen = none;\n{}",
        account(
            "work",
            &provider,
            "    redirect_uri = \"https://localhost/\";"
        )
    ));
    sb.start();
    let info = sb.info_json();
    let server = &info["server_info"];
    assert_eq!(server["https_port"], "none");
    assert!(server.get("https_pub_key").is_none(), "{info}");
    let http_port = sb.http_port();
    let url = sb.auth_url("work");
    let redirect = format!("redirect_uri=http%3A%2F%2Flocalhost%3A{http_port}%2F&");
    assert!(url.contains(&redirect), "{url}");
    let text = sb.run(&["info"]).stdout;
    assert!(
        text.ends_with(&format!(
            "server running:\n  HTTP port: {http_port}\n  HTTPS port: none\n"
        )),
        "{text}"
    );

    // HTTP off: only an https redirect_uri has a listener to come back to (an http one
    // is refused at start: tests/e2e_cases.rs, case 5).
    let mut sb = Sandbox::new("http-off");
    sb.write_config(&format!(
        "http_listen = none;\n{}",
        account(
            "secure",
            &provider,
            "    redirect_uri = \"https://localhost/\";"
        )
    ));
    sb.start();
    let info = sb.info_json();
    assert_eq!(info["server_info"]["http_port"], "none");
    assert!(
        info["server_info"]["https_port"]
            .as_str()
            .is_some_and(|p| p != "none")
    );
    assert!(
        sb.auth_url("secure")
            .contains("redirect_uri=https%3A%2F%2Flocalhost%3A")
    );
}
