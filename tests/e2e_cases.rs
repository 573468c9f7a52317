//! End-to-end tests of the eight ways issue 12 found the daemon stuck, hammering a
//! provider or dropping a token, each against the fake provider on 127.0.0.1. The
//! timeline tests of the same cases are in `fsm/src/server/tests/cases.rs`.

mod common;

use common::provider::{Provider, Reply};
use common::{PROCESSING_PAGE, Sandbox, browser};

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
