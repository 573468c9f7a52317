//! The authorisation-code flow end to end, as a user lives it: `show` hands out a URL,
//! the browser goes through the provider to pizauth's redirect listener, and `show`
//! prints the token. Also the notifications around it, the redirect listener's answers
//! to odd redirects, and a code exchange that meets a provider that is down.

mod common;

use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use common::provider::{Authorize, Provider, Reply};
use common::{
    PROCESSING_PAGE, Sandbox, UNAVAILABLE, UNAVAILABLE_WITH_URL, account, append_cmd, browser,
    unix_now, wait_for,
};

/// The page for a `state` that matches no pending request.
const NO_MATCH_PAGE: &str = "pizauth: no pending authorisation request matches this page (it was already answered, revoked, or the server restarted); run pizauth show again for a fresh URL.";

fn b64url_sha256(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(s.as_bytes()))
}

#[test]
fn browser_flow_from_url_to_token() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("flow");
    sb.write_config(&account(
        "work",
        &provider,
        r#"    client_secret = "fake-secret";
    scopes = ["email", "offline_access"];
    auth_uri_fields = { "login_hint": "me@example.com", "prompt": "select_account" };"#,
    ));
    sb.start();
    let port = sb.http_port();

    // No token: the URL, and the same sentence without it for -u; `refresh` likewise.
    let url = sb.auth_url("work");
    sb.run(&["show", "-u", "work"]).fails(UNAVAILABLE);
    sb.run(&["refresh", "-u", "work"]).fails(UNAVAILABLE);
    // A pending request is reused, not replaced.
    sb.run(&["refresh", "work"])
        .fails(&format!("{UNAVAILABLE_WITH_URL}{url}\n"));
    sb.run(&["show", "work"])
        .fails(&format!("{UNAVAILABLE_WITH_URL}{url}\n"));

    // The URL: auth_uri plus the parameters of SPEC.md section 5, in order.
    let parsed = url::Url::parse(&url).expect("a URL");
    let base = format!("{}?", provider.url("/authorize"));
    assert!(url.starts_with(&base), "{url}");
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "access_type",
            "code_challenge",
            "code_challenge_method",
            "client_id",
            "redirect_uri",
            "response_type",
            "state",
            "scope",
            "login_hint",
            "prompt"
        ]
    );
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("access_type"), Some("offline"));
    assert_eq!(get("code_challenge_method"), Some("S256"));
    assert_eq!(get("client_id"), Some("client-work"));
    let redirect_uri = format!("http://localhost:{port}/");
    assert_eq!(get("redirect_uri"), Some(redirect_uri.as_str()));
    assert_eq!(get("response_type"), Some("code"));
    assert_eq!(get("scope"), Some("email offline_access"));
    assert_eq!(get("login_hint"), Some("me@example.com"));
    assert_eq!(get("prompt"), Some("select_account"));
    let state = get("state").expect("state");
    let challenge = get("code_challenge").expect("challenge").to_owned();
    // 32 random bytes and a SHA-256, base64url without padding: 43 characters each.
    for v in [state, challenge.as_str()] {
        assert_eq!(v.len(), 43, "{v}");
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
    assert!(!url.contains("fake-secret"), "no client secret in the URL");

    let status = sb.status_of("work");
    let date = status
        .strip_prefix("work: Access token pending authentication (last notification ")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{status}"));
    common::assert_time_near(date, unix_now(), 30);

    // The browser: provider, 302, our listener, the processing page.
    provider.push([Reply::token(
        "fake-access-1",
        Some("fake-refresh-1"),
        Some(3600),
    )]);
    let visit = browser::visit(&url, None).expect("browser flow");
    assert!(
        visit
            .redirect
            .starts_with(&format!("{redirect_uri}?code=code-1&state=")),
        "{}",
        visit.redirect
    );
    assert_eq!(visit.page.status, 200);
    assert_eq!(visit.page.body, PROCESSING_PAGE);
    assert_eq!(
        visit.page.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    sb.wait_token("work", "fake-access-1");
    sb.run(&["show", "work"]).ok("fake-access-1\n");
    sb.run(&["show", "-u", "work"]).ok("fake-access-1\n");

    // What pizauth sent: the code exchange of SPEC.md section 5, with a PKCE verifier
    // whose SHA-256 is the challenge of the URL.
    let requests = provider.token_requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/token"));
    assert_eq!(
        r.field_names(),
        [
            "code",
            "client_id",
            "code_verifier",
            "redirect_uri",
            "grant_type",
            "client_secret"
        ]
    );
    assert_eq!(r.field("code"), Some("code-1"));
    assert_eq!(r.field("client_id"), Some("client-work"));
    assert_eq!(r.field("redirect_uri"), Some(redirect_uri.as_str()));
    assert_eq!(r.field("grant_type"), Some("authorization_code"));
    assert_eq!(r.field("client_secret"), Some("fake-secret"));
    let verifier = r.field("code_verifier").expect("verifier");
    assert_eq!(verifier.len(), 86, "64 random bytes, base64url");
    assert_eq!(b64url_sha256(verifier), challenge);

    // status: obtained now, expires an hour later.
    let status = sb.status_of("work");
    let times = status
        .strip_prefix("work: Active access token (obtained ")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{status}"));
    let (obtained, expires) = times.split_once("; expires ").expect("two times");
    let obtained = common::parse_rfc2822_utc(obtained).expect("obtained");
    let expires = common::parse_rfc2822_utc(expires).expect("expires");
    assert!((obtained - unix_now()).abs() <= 30);
    assert!((expires - obtained - 3600).abs() <= 1, "{status}");

    // The same redirect again (a reload of the page): nothing matches any more.
    let again = browser::get(&visit.redirect, None).expect("replay");
    assert_eq!((again.status, again.body.as_str()), (200, NO_MATCH_PAGE));
    sb.run(&["show", "work"]).ok("fake-access-1\n");
    assert_eq!(provider.token_requests().len(), 1);
}

#[test]
fn odd_redirects_change_nothing() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("redirects");
    let errors = sb.path("errors.log");
    sb.write_config(&format!(
        "error_notify_cmd = \"{}\";\n{}",
        append_cmd(&errors, "$PIZAUTH_ACCOUNT|$PIZAUTH_MSG"),
        account("work", &provider, "")
    ));
    sb.start();
    let port = sb.http_port();
    let url = sb.auth_url("work");
    let listener = format!("http://127.0.0.1:{port}");
    let pending = sb.status_of("work");

    // A state that matches nothing: our page, status 200, nothing changes.
    let page = browser::get(&format!("{listener}/?code=c&state=nothing"), None).expect("get");
    assert_eq!((page.status, page.body.as_str()), (200, NO_MATCH_PAGE));
    // No state at all, or a path that is not the redirect URI's: 404.
    let page = browser::get(&format!("{listener}/?code=c"), None).expect("get");
    assert_eq!(page.status, 404);
    let state = url::Url::parse(&url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let page =
        browser::get(&format!("{listener}/elsewhere?code=c&state={state}"), None).expect("get");
    assert_eq!(page.status, 404);
    // The right state without a code: 400.
    let page = browser::get(&format!("{listener}/?state={state}"), None).expect("get");
    assert_eq!(page.status, 400);
    assert_eq!(page.body, "pizauth: the redirect carries no code");
    sb.run(&["show", "work"])
        .fails(&format!("{UNAVAILABLE_WITH_URL}{url}\n"));
    assert_eq!(sb.status_of("work"), pending);
    assert!(provider.token_requests().is_empty());

    // The provider says access_denied: 400, error_notify_cmd, no token and why.
    provider.set_authorize(Authorize::Error("access_denied".into()));
    let visit = browser::visit(&url, None).expect("browser flow");
    assert_eq!(visit.page.status, 400);
    assert_eq!(
        visit.page.body,
        "pizauth: authorisation failed: access_denied"
    );
    let lines = sb.wait_lines("errors.log", 1);
    assert_eq!(lines, ["work|authorisation failed: access_denied"]);
    let status = sb.status_of("work");
    let rest = status
        .strip_prefix("work: No access token (last error ")
        .and_then(|s| s.strip_suffix(": authorisation failed: access_denied)"))
        .unwrap_or_else(|| panic!("{status}"));
    common::assert_time_near(rest, unix_now(), 30);
    assert!(provider.token_requests().is_empty());
    // The next show starts afresh.
    let fresh = sb.auth_url("work");
    assert_ne!(fresh, url);

    // The provider refuses the code: no token, and the user hears why.
    provider.set_authorize(Authorize::Code);
    provider.push([Reply::oauth_error(400, "invalid_grant", "bad code")]);
    let visit = browser::visit(&fresh, None).expect("browser flow");
    assert_eq!(
        (visit.page.status, visit.page.body.as_str()),
        (200, PROCESSING_PAGE)
    );
    let why = "exchanging the authorisation code failed: token endpoint answered HTTP 400: \
               invalid_grant (bad code)";
    let lines = sb.wait_lines("errors.log", 2);
    assert_eq!(lines[1], format!("work|{why}"));
    let status = sb.status_of("work");
    assert!(
        status.starts_with("work: No access token (last error ")
            && status.ends_with(&format!(": {why})")),
        "{status}"
    );
    sb.run(&["show", "-u", "work"]).fails(UNAVAILABLE);
}

#[test]
fn auth_notify_cmd_repeats_while_pending_and_stops_after() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("notify");
    let log = sb.path("notify.log");
    sb.write_config(&format!(
        "auth_notify_cmd = \"{}\";\nauth_notify_interval = 1s;\n{}",
        append_cmd(&log, "$PIZAUTH_ACCOUNT|$PIZAUTH_URL"),
        account("work", &provider, "")
    ));
    sb.start();
    let url = sb.auth_url("work");
    // Once at the start, then every second while the request is pending.
    let lines = sb.wait_lines("notify.log", 3);
    let want = format!("work|{url}");
    assert!(lines.iter().all(|l| *l == want), "{lines:#?}");

    provider.push([Reply::token(
        "fake-access",
        Some("fake-refresh"),
        Some(3600),
    )]);
    sb.authorise("work", "fake-access");
    // A notification already started may still land; after that, silence for longer
    // than the interval.
    std::thread::sleep(Duration::from_millis(500));
    let after = sb.lines("notify.log").len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        sb.lines("notify.log").len(),
        after,
        "notified after authorisation"
    );
}

#[test]
fn code_exchange_retries_while_the_provider_is_down() {
    let provider = Provider::start();
    let down = common::closed_port();
    let mut sb = Sandbox::new("exchange-retry");
    sb.set_env(
        "PIZAUTH_TEST_TUNABLES",
        "exchange_retry_ms=200,http_timeout_ms=1000",
    );
    let token_uri = format!("http://127.0.0.1:{down}/token");
    sb.write_config(&format!(
        "account \"work\" {{\n    auth_uri = \"{}\";\n    token_uri = \"{token_uri}\";\n    \
         client_id = \"client-work\";\n}}\n",
        provider.url("/authorize")
    ));
    sb.start();
    let url = sb.auth_url("work");
    let visit = browser::visit(&url, None).expect("browser flow");
    assert_eq!(
        (visit.page.status, visit.page.body.as_str()),
        (200, PROCESSING_PAGE)
    );
    // The exchange fails (connection refused) and is retried.
    wait_for("a failed exchange in the log", common::WAIT, || {
        sb.log()
            .contains("exchanging the authorisation code failed (cannot connect to 127.0.0.1")
            .then_some(())
    });
    // Between tries, show also names the last failure (issue 12).
    let run = sb.run(&["show", "work"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    let base = "ERROR Access token unavailable until authorised: the authorisation code is \
                being exchanged for a token";
    assert!(
        run.stderr == format!("{base}\n")
            || run.stderr.starts_with(&format!(
                "{base} (the last attempt failed: exchanging the authorisation code failed: \
                 cannot connect to 127.0.0.1"
            )),
        "{run:?}"
    );
    // The provider comes back on that port: the next try gets the token.
    let back = Provider::start_at(down);
    back.push([Reply::token(
        "fake-access",
        Some("fake-refresh"),
        Some(3600),
    )]);
    sb.wait_token("work", "fake-access");
    let requests = back.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].field("grant_type"), Some("authorization_code"));
    assert_eq!(requests[0].field("code"), Some("code-1"));
}

#[test]
fn two_accounts_pending_at_once_each_get_their_own_token_and_no_secret_is_logged() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("two-pending");
    sb.write_config(&format!(
        "{}{}",
        account("one", &provider, "    client_secret = \"fake-secret-one\";"),
        account("two", &provider, "")
    ));
    sb.start();
    let url_one = sb.auth_url("one");
    let url_two = sb.auth_url("two");
    // Answered in the opposite order.
    provider.push([Reply::token(
        "fake-access-two",
        Some("fake-refresh-two"),
        Some(3600),
    )]);
    let visit = browser::visit(&url_two, None).expect("browser");
    assert_eq!(visit.page.body, PROCESSING_PAGE);
    sb.wait_token("two", "fake-access-two");
    sb.run(&["show", "-u", "one"]).fails(UNAVAILABLE);
    provider.push([Reply::token(
        "fake-access-one",
        Some("fake-refresh-one"),
        Some(3600),
    )]);
    let visit = browser::visit(&url_one, None).expect("browser");
    assert_eq!(visit.page.body, PROCESSING_PAGE);
    sb.wait_token("one", "fake-access-one");
    sb.run(&["show", "two"]).ok("fake-access-two\n");
    let r = provider.token_requests();
    assert_eq!(r[0].field("client_id"), Some("client-two"));
    assert_eq!(r[1].field("client_id"), Some("client-one"));
    provider.push([Reply::token("fake-access-one-2", None, Some(3600))]);
    sb.run(&["refresh", "one"]).ok("");
    sb.wait_token("one", "fake-access-one-2");

    // Logging at full verbosity: still no token, code, state, verifier or secret.
    let log = sb.log();
    assert!(log.contains("one: authorisation code received"), "{log}");
    let mut secrets = vec![
        "fake-access".to_owned(),
        "fake-refresh".to_owned(),
        "fake-secret".to_owned(),
        "code-1".to_owned(),
        "code-2".to_owned(),
    ];
    for url in [&url_one, &url_two] {
        let parsed = url::Url::parse(url).expect("url");
        secrets.extend(
            parsed
                .query_pairs()
                .filter(|(k, _)| k == "state" || k == "code_challenge")
                .map(|(_, v)| v.into_owned()),
        );
    }
    secrets.extend(
        r.iter()
            .filter_map(|r| r.field("code_verifier").map(str::to_owned)),
    );
    assert_eq!(secrets.len(), 5 + 4 + 2);
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "{s} is in the log:\n{log}");
    }
}
