//! The real binary against a real, independently written OpenID Connect provider: node's
//! `oidc-provider` (a certified implementation), configured by `tests/interop/provider.mjs`
//! and installed by `npm ci` in `tests/interop` (`.ci/run` does it). Everything runs on
//! 127.0.0.1.
//!
//! The browser here is a small HTTP client with a cookie jar that goes through the
//! provider's own login and consent pages as a user would: it follows redirects, fills in
//! the login form, and submits (or cancels) the consent form.
//!
//! Without node or the installed package these tests fail when `CI=true` (as `.ci/run`
//! runs them) and otherwise say loudly that they did not run.

mod common;

#[path = "interop/harness.rs"]
mod harness;

use common::{Sandbox, WAIT, append_cmd, wait_for};
use harness::*;
use url::Url;

/// Waits until `status` for `account` contains `text`; returns the line.
fn wait_status(sb: &Sandbox, account: &str, text: &str) -> String {
    wait_for(
        &format!("status of {account} to say {text:?}"),
        WAIT,
        || {
            let line = sb.status_of(account);
            line.contains(text).then_some(line)
        },
    )
}

/// The code flow with PKCE through the provider's login and consent pages, endpoints from
/// discovery, client_secret_post; then refreshes with rotation, several in a row by the
/// server's own schedule and one asked for with `pizauth refresh`; then revocation at the
/// provider.
#[test]
fn code_flow_refresh_rotation_and_revocation() {
    let mut sb = Sandbox::new("oidc-code");
    let Some(oidc) = Oidc::start(&sb, 6) else {
        return;
    };
    let events = sb.path("events");
    sb.write_config(&format!(
        "token_event_cmd = \"{}\";\n{}",
        append_cmd(&events, "$PIZAUTH_EVENT"),
        account(
            "work",
            &oidc,
            "pizauth-post",
            &format!("{OFFLINE}    refresh_before_expiry = 3s;")
        )
    ));
    sb.start();
    let first = log_in(&sb, &oidc, "work", "me@example.com");
    let info = oidc.introspect(&first);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], "me@example.com", "{info}");
    assert_eq!(info["client_id"], "pizauth-post", "{info}");
    assert!(
        sb.status_of("work")
            .starts_with("work: Active access token")
    );
    assert!(!sb.status_of("work").contains("warning"));

    // Three refreshes by the schedule (a 6 s token is refreshed 3 s before it expires),
    // each token new and live at the provider.
    let mut token = first.clone();
    let mut seen = vec![first];
    for _ in 0..3 {
        token = wait_new_token(&sb, "work", &token);
        assert!(!seen.contains(&token), "a token came twice");
        assert!(oidc.active(&token), "the refreshed token is live");
        seen.push(token.clone());
    }
    // And one on request.
    let run = sb.run(&["refresh", "work"]);
    assert_eq!(run.code, 0, "{run:?}");
    token = wait_new_token(&sb, "work", &token);
    assert!(oidc.active(&token));
    let lines = sb.wait_lines("events", 5);
    assert_eq!(lines[0], "token_new");
    assert!(
        lines[1..].iter().all(|l| l == "token_refreshed"),
        "{lines:?}"
    );

    // Revocation at the provider: the grant goes, and with it the access token.
    let run = sb.run(&["revoke", "work"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "work: revoked locally and at the provider\n");
    wait_for("the provider to forget the token", WAIT, || {
        (!oidc.active(&token)).then_some(())
    });
    let run = sb.run(&["show", "-u", "work"]);
    assert_eq!(run.code, 1);
}

/// A client registered for `client_secret_basic` only: with `client_auth =
/// client_secret_basic` the login and the refresh work; without it, the provider refuses
/// the exchange (`invalid_client`) and `status` says so.
#[test]
fn basic_client_authentication() {
    let mut sb = Sandbox::new("oidc-basic");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    sb.write_config(&format!(
        "{}{}",
        account(
            "basic",
            &oidc,
            "pizauth-basic",
            &format!("{OFFLINE}    client_auth = client_secret_basic;")
        ),
        account("post", &oidc, "pizauth-basic", OFFLINE)
    ));
    sb.start();
    let token = log_in(&sb, &oidc, "basic", "me@example.com");
    assert!(oidc.active(&token));
    let run = sb.run(&["refresh", "basic"]);
    assert_eq!(run.code, 0, "{run:?}");
    let token = wait_new_token(&sb, "basic", &token);
    assert!(oidc.active(&token));
    let run = sb.run(&["revoke", "basic"]);
    assert_eq!(run.stderr, "basic: revoked locally and at the provider\n");
    // Every request pizauth made for it used HTTP Basic: the exchange, the refresh, the
    // revocation.
    let seen = oidc.client_auth_seen();
    let mine: Vec<(String, String)> = seen
        .iter()
        .filter(|(_, client, _)| client == "pizauth-basic")
        .map(|(path, _, method)| (path.clone(), method.clone()))
        .collect();
    let basic = |path: &str| ("/".to_owned() + path, "basic".to_owned());
    assert_eq!(
        mine,
        [basic("token"), basic("token"), basic("token/revocation")],
        "{seen:?}"
    );

    // The same client, its secret in the body: refused.
    let url = auth_url(&sb, "post");
    let mut browser = Browser::new("me@example.com");
    let redirect = browser
        .through_provider(&url, oidc.port)
        .expect("a redirect");
    assert_eq!(browser.get(&redirect).status, 200);
    let line = wait_status(&sb, "post", "invalid_client");
    assert!(
        line.starts_with("post: No access token (last error"),
        "{line}"
    );
}

/// The device flow: `show` gives the page and the code; the user enters it on the
/// provider's page, logs in and consents; the next `show` prints the token.
#[test]
fn device_flow() {
    let mut sb = Sandbox::new("oidc-device");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    sb.write_config(&account(
        "dev",
        &oidc,
        "pizauth-post",
        &format!("    auth_flow = device;\n{OFFLINE}"),
    ));
    sb.start();
    let message = wait_for("a device code", WAIT, || {
        let run = sb.run(&["show", "dev"]);
        run.stderr.contains("enter code").then_some(run.stderr)
    });
    // "... visit URI and enter code CODE"
    let words: Vec<&str> = message.split_whitespace().collect();
    let code = words.last().unwrap().to_string();
    let page = words[words.iter().position(|w| *w == "visit").unwrap() + 1];
    assert!(page.starts_with(&oidc.issuer), "{message}");
    let mut browser = Browser::new("me@example.com");
    browser.user_code = Some(code);
    let end = browser
        .through_provider(page, oidc.port)
        .expect_err("the device flow ends on the provider's page");
    assert!(end.body.contains("Sign-in Success"), "{end:?}");
    let token = wait_show(&sb, "dev");
    assert!(oidc.active(&token));
    let run = sb.run(&["refresh", "dev"]);
    assert_eq!(run.code, 0);
    let token = wait_new_token(&sb, "dev", &token);
    assert!(oidc.active(&token));
}

/// Client credentials, with the token endpoint from discovery.
#[test]
fn client_credentials() {
    let mut sb = Sandbox::new("oidc-cc");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    sb.write_config(&account(
        "svc",
        &oidc,
        "pizauth-post",
        "    auth_flow = client_credentials;\n    scopes = [\"reports.read\"];",
    ));
    sb.start();
    let token = wait_show(&sb, "svc");
    let info = oidc.introspect(&token);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], "pizauth-post", "{info}");
    assert_eq!(info["scope"], "reports.read", "{info}");
}

/// Cancelling on the consent page: the provider redirects with `access_denied`, which
/// pizauth shows the browser and keeps in `status`.
#[test]
fn denied_consent() {
    let mut sb = Sandbox::new("oidc-deny");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    sb.write_config(&account("work", &oidc, "pizauth-post", OFFLINE));
    sb.start();
    let url = auth_url(&sb, "work");
    let mut browser = Browser::new("me@example.com");
    browser.consent = Consent::Deny;
    let redirect = browser
        .through_provider(&url, oidc.port)
        .expect("a redirect");
    assert!(redirect.contains("error=access_denied"), "{redirect}");
    let page = browser.get(&redirect);
    assert_eq!(page.status, 400, "{page:?}");
    assert!(
        page.body
            .starts_with("pizauth: authorisation failed: access_denied"),
        "{page:?}"
    );
    let line = sb.status_of("work");
    assert!(line.contains("last error"), "{line}");
    assert!(line.contains("access_denied"), "{line}");
}

/// A wrong client secret: the login succeeds at the provider, the exchange is refused.
#[test]
fn wrong_secret() {
    let mut sb = Sandbox::new("oidc-secret");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    let config = account("work", &oidc, "pizauth-post", OFFLINE).replace(POST_SECRET, "wrong");
    sb.write_config(&config);
    sb.start();
    let url = auth_url(&sb, "work");
    let mut browser = Browser::new("me@example.com");
    let redirect = browser
        .through_provider(&url, oidc.port)
        .expect("a redirect");
    assert_eq!(browser.get(&redirect).status, 200);
    let line = wait_status(&sb, "work", "invalid_client");
    assert!(
        line.starts_with("work: No access token (last error"),
        "{line}"
    );
    assert!(!sb.log().contains("wrong"), "the secret reached the log");
}

/// Without `"prompt": "consent"` the provider gives no refresh token for
/// `offline_access` (OpenID Connect Core section 11): `status` warns.
#[test]
fn no_consent_prompt_no_refresh_token_and_a_warning() {
    let mut sb = Sandbox::new("oidc-noprompt");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    sb.write_config(&account(
        "work",
        &oidc,
        "pizauth-post",
        "    scopes = [\"openid\", \"offline_access\", \"mail\"];",
    ));
    sb.start();
    log_in(&sb, &oidc, "work", "me@example.com");
    let line = sb.status_of("work");
    assert!(
        line.contains("; warning: no refresh token came although offline_access was asked for"),
        "{line}"
    );
    assert!(sb.log().contains("no refresh token came"), "{}", sb.log());
}

/// RFC 9207: the provider's redirect carries `iss`; one replaced by another issuer's is
/// refused and the code never reaches the token endpoint (the genuine redirect, replayed
/// afterwards, matches no request any more).
#[test]
fn a_replaced_iss_is_refused() {
    let mut sb = Sandbox::new("oidc-iss");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    sb.write_config(&account("work", &oidc, "pizauth-post", OFFLINE));
    sb.start();
    let url = auth_url(&sb, "work");
    let mut browser = Browser::new("me@example.com");
    let redirect = browser
        .through_provider(&url, oidc.port)
        .expect("a redirect");
    let genuine = Url::parse(&redirect).unwrap();
    let iss: Vec<String> = genuine
        .query_pairs()
        .filter(|(k, _)| k == "iss")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(iss.len(), 1, "the provider sends iss once");
    assert_eq!(iss[0], oidc.issuer);
    let mut forged = genuine.clone();
    let pairs: Vec<(String, String)> = genuine
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" {
                "http://127.0.0.1:9/".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let page = browser.get(forged.as_str());
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.body.contains("RFC 9207"), "{page:?}");
    let line = sb.status_of("work");
    assert!(line.contains("authorisation refused"), "{line}");
    let replay = browser.get(genuine.as_str());
    assert_eq!(replay.status, 200);
    assert!(
        replay.body.contains("no pending authorisation request"),
        "{replay:?}"
    );
    let line = sb.status_of("work");
    assert!(
        line.starts_with("work: No access token (last error"),
        "{line}"
    );
    assert_eq!(sb.run(&["show", "-u", "work"]).code, 1);
}

/// The README's recipe for "any other provider", read from README.md with only the
/// endpoints, the client id and its secret filled in: `redirect_uri =
/// "http://127.0.0.1/"` passes a provider that lets only a loopback address's port vary,
/// and `"prompt": "consent"` brings the refresh token, so the token refreshes.
#[test]
fn the_readme_recipe_for_any_other_provider() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README.md");
    let at = readme
        .find("```conf\naccount \"example\" {\n    auth_uri = \"https://login.example.com/oauth2/authorize\";")
        .expect("the README's recipe for any other provider");
    let block = &readme[at + "```conf\n".len()..];
    let block = &block[..block.find("```").expect("the block ends")];
    assert!(
        block.contains("redirect_uri = \"http://127.0.0.1/\";"),
        "{block}"
    );
    assert!(block.contains("\"prompt\": \"consent\""), "{block}");

    let mut sb = Sandbox::new("oidc-readme");
    let Some(oidc) = Oidc::start(&sb, 60) else {
        return;
    };
    let config = block
        .replace(
            "https://login.example.com/oauth2/authorize",
            &oidc.url("auth"),
        )
        .replace("https://login.example.com/oauth2/token", &oidc.url("token"))
        .replace(
            "client_id = \"my-client-id\";",
            &format!("client_id = \"pizauth-post\";\n    client_secret = \"{POST_SECRET}\";"),
        );
    sb.write_config(&config);
    sb.start();
    let token = log_in(&sb, &oidc, "example", "me@example.com");
    let line = sb.status_of("example");
    assert!(!line.contains("warning"), "{line}");
    assert_eq!(sb.run(&["refresh", "example"]).code, 0);
    let token = wait_new_token(&sb, "example", &token);
    assert!(oidc.active(&token));
}
