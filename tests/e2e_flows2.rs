//! The newer ways of getting and giving up tokens, end to end against the fake provider:
//! the device flow (RFC 8628), client credentials, endpoint discovery (RFC 8414, then
//! OpenID Connect), revocation at the provider (RFC 7009), `client_secret_cmd`,
//! `status -j`, and `show -w`.

mod common;

use std::time::{Duration, Instant};

use common::provider::{Provider, Reply};
use common::{
    NOT_RUNNING, PROCESSING_PAGE, Sandbox, UNAVAILABLE, UNAVAILABLE_WITH_URL, account, append_cmd,
    browser, config_string, wait_for,
};

/// `status -j`, parsed; its accounts by name.
fn status_json(sb: &Sandbox) -> (serde_json::Value, Vec<serde_json::Value>) {
    let run = sb.run(&["status", "-j"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "one line: {run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let accounts = v["accounts"].as_array().expect("accounts").clone();
    (v, accounts)
}

/// An RFC 3339 UTC time (`2026-11-28T18:30:07Z`) as unix seconds.
fn rfc3339(t: &serde_json::Value) -> i64 {
    let s = t.as_str().unwrap_or_else(|| panic!("not a time: {t}"));
    let (date, time) = s
        .strip_suffix('Z')
        .and_then(|s| s.split_once('T'))
        .unwrap_or_else(|| panic!("not RFC 3339 UTC: {s}"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse().expect("date")).collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Through the RFC 2822 parser, which checks the weekday: try each one.
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    days.iter()
        .find_map(|wd| {
            common::parse_rfc2822_utc(&format!(
                "{wd}, {:02} {} {} {time} +0000",
                d[2],
                months[(d[1] - 1) as usize],
                d[0]
            ))
        })
        .unwrap_or_else(|| panic!("not a date: {s}"))
}

#[test]
fn device_flow_from_codes_to_token_with_growing_intervals() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("device");
    let notify = sb.path("notify.log");
    let verify = provider.url("/activate");
    let complete = format!("{verify}?user_code=WDJB-MJHT");
    sb.write_config(&format!(
        "auth_notify_cmd = \"{}\";\naccount \"tv\" {{\n    auth_flow = device;\n    \
         device_auth_uri = \"{}\";\n    token_uri = \"{}\";\n    client_id = \"client-tv\";\n    \
         scopes = [\"email\", \"offline_access\"];\n}}\n",
        append_cmd(
            &notify,
            "$PIZAUTH_ACCOUNT|$PIZAUTH_URL|$PIZAUTH_USER_CODE|$PIZAUTH_VERIFICATION_URI"
        ),
        provider.url("/device"),
        provider.url("/token"),
    ));
    // slow_down adds a second instead of RFC 8628's five.
    sb.set_env("PIZAUTH_TEST_TUNABLES", "slow_down_ms=1000");
    provider.push_at(
        "/device",
        [Reply::json(
            200,
            &serde_json::json!({
                "device_code": "fake-device-code",
                "user_code": "WDJB-MJHT",
                "verification_uri": verify,
                "verification_uri_complete": complete,
                "expires_in": 600,
                "interval": 1,
            })
            .to_string(),
        )],
    );
    provider.push([
        Reply::oauth_error(400, "authorization_pending", "not yet"),
        Reply::oauth_error(400, "slow_down", "easy"),
        Reply::token(
            "fake-device-access",
            Some("fake-device-refresh"),
            Some(3600),
        ),
    ]);
    sb.start();

    // The first show asks for codes; once they are here, show says where to go.
    let first = sb.run(&["show", "tv"]);
    let visit = format!(
        "ERROR Access token unavailable until authorised: visit {verify} and enter code \
         WDJB-MJHT\n"
    );
    assert!(
        first.stderr
            == "ERROR Access token unavailable until authorised: requesting a device code\n"
            || first.stderr == visit,
        "{first:?}"
    );
    wait_for("show to give the code", common::WAIT, || {
        (sb.run(&["show", "tv"]).stderr == visit).then_some(())
    });
    sb.run(&["show", "-u", "tv"]).fails(UNAVAILABLE);
    let lines = sb.wait_lines("notify.log", 1);
    assert_eq!(lines[0], format!("tv|{complete}|WDJB-MJHT|{verify}"));
    let device = provider.requests_to("/device");
    assert_eq!(device.len(), 1);
    assert_eq!(device[0].method, "POST");
    assert_eq!(device[0].field_names(), ["client_id", "scope"]);
    assert_eq!(device[0].field("client_id"), Some("client-tv"));
    assert_eq!(device[0].field("scope"), Some("email offline_access"));
    // Polling takes four seconds: status -j shows the request pending meanwhile.
    let (_, accounts) = status_json(&sb);
    assert_eq!(accounts[0]["flow"], "device");
    assert_eq!(accounts[0]["state"], "pending");
    assert_eq!(accounts[0]["user_code"], "WDJB-MJHT");
    assert_eq!(accounts[0]["url"], complete.as_str());

    // authorization_pending, slow_down, then the token.
    sb.wait_token("tv", "fake-device-access");
    let polls = provider.token_requests();
    assert_eq!(polls.len(), 3, "{polls:#?}");
    for p in &polls {
        assert_eq!(
            p.field("grant_type"),
            Some("urn:ietf:params:oauth:grant-type:device_code")
        );
        assert_eq!(p.field("device_code"), Some("fake-device-code"));
        assert_eq!(p.field("client_id"), Some("client-tv"));
    }
    // Polled at the interval (1 s), which slow_down then lengthened (by 1 s here).
    let gaps = [
        polls[0].at - device[0].at,
        polls[1].at - polls[0].at,
        polls[2].at - polls[1].at,
    ];
    let about = |gap: Duration, secs: u64| {
        gap >= Duration::from_millis(secs * 1000 - 50)
            && gap < Duration::from_millis(secs * 1000 + 700)
    };
    assert!(
        about(gaps[0], 1) && about(gaps[1], 1) && about(gaps[2], 2),
        "{gaps:?}"
    );
    let (_, accounts) = status_json(&sb);
    assert_eq!(accounts[0]["state"], "active");
    assert_eq!(accounts[0]["user_code"], serde_json::Value::Null);
}

#[test]
fn client_credentials_get_a_token_and_renew_it_by_asking_again() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("client-credentials");
    let events = sb.path("events.log");
    sb.write_config(&format!(
        "token_event_cmd = \"{}\";\naccount \"svc\" {{\n    auth_flow = client_credentials;\n    \
         token_uri = \"{}\";\n    client_id = \"client-svc\";\n    \
         client_secret = \"fake-svc-secret\";\n    scopes = [\"api\"];\n}}\n",
        append_cmd(&events, "$PIZAUTH_ACCOUNT|$PIZAUTH_EVENT"),
        provider.url("/token"),
    ));
    sb.start();
    // A token for two seconds (no refresh token): renewed at half its life.
    provider.push([Reply::token("fake-svc-1", None, Some(2))]);
    provider.set_fallback(Reply::token("fake-svc-2", None, Some(3600)));
    let first = sb.run(&["show", "svc"]);
    assert!(
        first.stdout == "fake-svc-1\n"
            || first.stderr
                == "ERROR Access token unavailable: requesting a token with the client credentials\n",
        "{first:?}"
    );
    sb.wait_token("svc", "fake-svc-1");
    sb.wait_token("svc", "fake-svc-2");
    let r = provider.token_requests();
    assert_eq!(r.len(), 2, "{r:#?}");
    for req in &r {
        assert_eq!(
            req.field_names(),
            ["grant_type", "client_id", "scope", "client_secret"]
        );
        assert_eq!(req.field("grant_type"), Some("client_credentials"));
        assert_eq!(req.field("client_id"), Some("client-svc"));
        assert_eq!(req.field("scope"), Some("api"));
        assert_eq!(req.field("client_secret"), Some("fake-svc-secret"));
    }
    let gap = r[1].at - r[0].at;
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_millis(1900),
        "renewed after {gap:?}"
    );
    // No user: nobody was sent to a browser.
    assert!(provider.authorizations().is_empty());
    assert_eq!(
        sb.wait_lines("events.log", 2),
        ["svc|token_new", "svc|token_refreshed"]
    );
    let (_, accounts) = status_json(&sb);
    assert_eq!(accounts[0]["flow"], "client_credentials");
    assert_eq!(accounts[0]["state"], "active");
}

/// Three issuers on one provider: one with RFC 8414 metadata, one with OpenID Connect
/// metadata only, and one whose metadata names another issuer (refused).
#[test]
fn issuer_discovery_tries_rfc_8414_then_openid_and_refuses_a_wrong_issuer() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("discovery");
    let metadata = |issuer: &str| {
        Reply::json(
            200,
            &serde_json::json!({
                "issuer": issuer,
                "authorization_endpoint": provider.url("/authorize"),
                "token_endpoint": provider.url("/token"),
            })
            .to_string(),
        )
    };
    let (a, b, c) = (
        provider.url("/tenant-a"),
        provider.url("/tenant-b"),
        provider.url("/tenant-c"),
    );
    provider.push_at(
        "/.well-known/oauth-authorization-server/tenant-a",
        [metadata(&a)],
    );
    provider.push_at("/tenant-b/.well-known/openid-configuration", [metadata(&b)]);
    for path in [
        "/.well-known/oauth-authorization-server/tenant-c",
        "/tenant-c/.well-known/openid-configuration",
    ] {
        provider.set_fallback_at(path, metadata("https://evil.example/tenant-c"));
    }
    let issuer_account = |name: &str, issuer: &str| {
        format!(
            "account \"{name}\" {{\n    issuer = \"{issuer}\";\n    client_id = \"client-{name}\";\n}}\n"
        )
    };
    sb.write_config(&format!(
        "{}{}{}",
        issuer_account("a", &a),
        issuer_account("b", &b),
        issuer_account("c", &c)
    ));
    sb.start();
    // Nothing is fetched before it is needed.
    assert!(provider.requests().is_empty());

    for (name, issuer) in [("a", &a), ("b", &b)] {
        let first = sb.run(&["show", name]);
        let discovering =
            format!("ERROR Access token unavailable: discovering the endpoints of {issuer}\n");
        assert!(
            first.stderr == discovering || first.stderr.starts_with(common::UNAVAILABLE_WITH_URL),
            "{first:?}"
        );
        // Once the metadata is here, the authorisation starts by itself.
        let url = wait_for("the authorisation URL", common::WAIT, || {
            let run = sb.run(&["show", name]);
            run.stderr
                .strip_prefix(UNAVAILABLE_WITH_URL)
                .and_then(|s| s.strip_suffix('\n'))
                .map(str::to_owned)
        });
        assert!(url.starts_with(&provider.url("/authorize?")), "{url}");
        assert!(url.contains(&format!("client_id=client-{name}")), "{url}");
        provider.push([Reply::token(&format!("fake-{name}"), None, Some(3600))]);
        let visit = browser::visit(&url, None).expect("the browser flow");
        assert_eq!(visit.page.body, PROCESSING_PAGE);
        sb.wait_token(name, &format!("fake-{name}"));
    }
    let asked: Vec<String> = provider
        .requests()
        .iter()
        .filter(|r| r.path.contains(".well-known"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        asked,
        [
            // a: RFC 8414 answers.
            "GET /.well-known/oauth-authorization-server/tenant-a",
            // b: RFC 8414 does not (404), OpenID Connect does.
            "GET /.well-known/oauth-authorization-server/tenant-b",
            "GET /tenant-b/.well-known/openid-configuration",
        ]
    );
    let tokens = provider.token_requests();
    assert_eq!(tokens[0].field("client_id"), Some("client-a"));
    assert_eq!(tokens[1].field("client_id"), Some("client-b"));

    // c: both documents name another issuer. show -w fails as soon as that is known.
    let refused = sb.run(&["show", "-w", "10", "c"]);
    let why = format!(
        "cannot discover the endpoints of {c}: the metadata names issuer \
         'https://evil.example/tenant-c', not '{c}'"
    );
    refused.fails(&format!("ERROR Access token unavailable: {why}\n"));
    let status = sb.status_of("c");
    assert!(
        status.starts_with("c: No access token (last error ")
            && status.ends_with(&format!(": {why})")),
        "{status}"
    );
    assert!(provider.authorizations().len() == 2);
    sb.run(&["show", "a"]).ok("fake-a\n");
}

#[test]
fn revoke_also_revokes_at_the_provider() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("revoke-remote");
    let options = format!(
        "    revoke_uri = \"{}\";\n    client_secret = \"fake-secret\";",
        provider.url("/revoke")
    );
    sb.write_config(&format!(
        "{}{}",
        account("work", &provider, &options),
        account("bare", &provider, &options)
    ));
    sb.start();
    provider.push([
        Reply::token("fake-access", Some("fake-refresh"), Some(3600)),
        Reply::token("fake-bare", None, Some(3600)),
    ]);
    sb.authorise("work", "fake-access");
    sb.authorise("bare", "fake-bare");
    provider.push_at(
        "/revoke",
        [
            Reply::json(200, "{}"),
            Reply::json(200, "{}"),
            Reply::oauth_error(400, "unsupported_token_type", "no"),
        ],
    );

    let run = sb.run(&["revoke", "work"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "", "work: revoked locally and at the provider\n")
    );
    sb.run(&["show", "-u", "work"]).fails(UNAVAILABLE);
    // Without a refresh token, the access token is revoked.
    let run = sb.run(&["revoke", "bare"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, "bare: revoked locally and at the provider\n")
    );
    let r = provider.requests_to("/revoke");
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].method, "POST");
    assert_eq!(
        r[0].field_names(),
        ["token", "token_type_hint", "client_id", "client_secret"]
    );
    assert_eq!(r[0].field("token"), Some("fake-refresh"));
    assert_eq!(r[0].field("token_type_hint"), Some("refresh_token"));
    assert_eq!(r[0].field("client_id"), Some("client-work"));
    assert_eq!(r[0].field("client_secret"), Some("fake-secret"));
    assert_eq!(r[1].field("token"), Some("fake-bare"));
    assert_eq!(r[1].field("token_type_hint"), Some("access_token"));

    // The provider refuses: the tokens are gone here all the same, and revoke exits 0.
    provider.push([Reply::token(
        "fake-access-2",
        Some("fake-refresh-2"),
        Some(3600),
    )]);
    sb.authorise("work", "fake-access-2");
    let run = sb.run(&["revoke", "work"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:?}");
    assert_eq!(
        run.stderr,
        "work: revoked locally; revoking at the provider failed: revocation endpoint \
         answered HTTP 400: unsupported_token_type (no)\n"
    );
    sb.run(&["show", "-u", "work"]).fails(UNAVAILABLE);
    // Nothing to revoke: local only, silently.
    sb.run(&["revoke", "work"]).ok("");
    assert_eq!(provider.requests_to("/revoke").len(), 3);
}

/// A config whose account `work` gets its client secret from `command`.
fn secret_cmd_config(provider: &Provider, command: &str) -> String {
    account(
        "work",
        provider,
        &format!("    client_secret_cmd = \"{}\";", config_string(command)),
    )
}

/// A sandbox whose account `work` gets its client secret from `command`.
fn with_secret_cmd(name: &str, provider: &Provider, command: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.write_config(&secret_cmd_config(provider, command));
    sb
}

#[test]
fn client_secret_cmd_at_start_and_at_reload() {
    let provider = Provider::start();
    let mut sb = with_secret_cmd(
        "secret-cmd",
        &provider,
        "printf '  fake-secret-%s-1\\n' \"$PIZAUTH_ACCOUNT\"",
    );
    sb.start();
    provider.push([Reply::token("fake-access-1", None, Some(3600))]);
    sb.authorise("work", "fake-access-1");
    let r = provider.token_requests();
    assert_eq!(r[0].field("client_secret"), Some("fake-secret-work-1"));

    // A reload runs it again: the same secret keeps the token...
    sb.run(&["reload"]).ok("");
    sb.run(&["show", "work"]).ok("fake-access-1\n");
    // ...a failing command keeps the running configuration and says which account...
    sb.write_config(&secret_cmd_config(&provider, "exit 2"));
    sb.run(&["reload"])
        .fails("ERROR account \"work\": client_secret_cmd exited with code 2\n");
    sb.run(&["show", "work"]).ok("fake-access-1\n");
    // ...and a new secret is a new account: authorised afresh, with the new secret.
    sb.write_config(&secret_cmd_config(
        &provider,
        "printf '  fake-secret-%s-2\\n' \"$PIZAUTH_ACCOUNT\"",
    ));
    sb.run(&["reload"]).ok("");
    sb.run(&["show", "-u", "work"]).fails(UNAVAILABLE);
    provider.push([Reply::token("fake-access-2", None, Some(3600))]);
    sb.authorise("work", "fake-access-2");
    let r = provider.token_requests();
    assert_eq!(r[1].field("client_secret"), Some("fake-secret-work-2"));
    assert!(
        !sb.log().contains("fake-secret-work"),
        "a secret reached the log"
    );
}

#[test]
fn a_failing_client_secret_cmd_at_start_stops_the_server_naming_the_account() {
    let provider = Provider::start();
    let sb = with_secret_cmd("secret-cmd-fails", &provider, "echo oops >&2; exit 3");
    let config = sb.config_path().display().to_string();
    let started = Instant::now();
    let out = sb
        .command(&["server", "-d", "-c", &config])
        .output()
        .expect("server");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "oops\nERROR account \"work\": client_secret_cmd exited with code 3\n"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!sb.socket().exists(), "no socket left behind");
    sb.run(&["status"]).fails(NOT_RUNNING);
    // One that prints nothing is refused the same way.
    let sb = with_secret_cmd("secret-cmd-empty", &provider, "true");
    let out = sb
        .command(&[
            "server",
            "-d",
            "-c",
            &sb.config_path().display().to_string(),
        ])
        .output()
        .expect("server");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ERROR account \"work\": client_secret_cmd printed nothing\n"
    );
}

#[test]
fn status_j_reports_flow_state_times_and_codes() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("status-json");
    sb.write_config(&format!(
        "{}{}{}",
        account("b-active", &provider, ""),
        account("a-pending", &provider, ""),
        account("c-none", &provider, "")
    ));
    sb.start();
    provider.push([Reply::token(
        "fake-active",
        Some("fake-refresh"),
        Some(3600),
    )]);
    sb.authorise("b-active", "fake-active");
    let url = sb.auth_url("a-pending");
    let (v, accounts) = status_json(&sb);
    assert_eq!(v["status_format_version"], 1);
    assert!(v["status_format_version"].is_u64());
    let names: Vec<&str> = accounts.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["a-pending", "b-active", "c-none"]);
    let now = common::unix_now();

    let pending = &accounts[0];
    assert_eq!(pending["flow"], "code");
    assert_eq!(pending["state"], "pending");
    assert_eq!(pending["url"], url.as_str());
    assert_eq!(pending["user_code"], serde_json::Value::Null);
    assert!((rfc3339(&pending["last_notification"]) - now).abs() <= 30);
    assert_eq!(pending["obtained"], serde_json::Value::Null);

    let active = &accounts[1];
    assert_eq!(active["flow"], "code");
    assert_eq!(active["state"], "active");
    let (obtained, expires) = (rfc3339(&active["obtained"]), rfc3339(&active["expires"]));
    assert!((obtained - now).abs() <= 30, "{active}");
    assert!((expires - obtained - 3600).abs() <= 1, "{active}");
    assert_eq!(active["last_refresh_attempt"], serde_json::Value::Null);
    assert_eq!(active["last_error"], serde_json::Value::Null);
    assert_eq!(active["url"], serde_json::Value::Null);

    let none = &accounts[2];
    assert_eq!(none["state"], "no_token");
    assert_eq!(none["last_error"], serde_json::Value::Null);
    // The same facts as the plain text.
    assert_eq!(sb.status_of("c-none"), "c-none: No access token");
}

#[test]
fn show_w_returns_the_token_as_soon_as_it_comes_and_times_out_as_plain_show() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("show-wait");
    sb.write_config(&format!(
        "{}{}",
        account("work", &provider, ""),
        account("idle", &provider, "")
    ));
    sb.start();
    let sb = std::sync::Arc::new(sb);
    // A client waits (it starts the authorisation itself)...
    let waiting = {
        let sb = std::sync::Arc::clone(&sb);
        std::thread::spawn(move || {
            let run = sb.run(&["show", "-w", "20", "work"]);
            (run, Instant::now())
        })
    };
    // ...while the user authorises in the browser.
    let url = wait_for("the pending request", common::WAIT, || {
        let (_, accounts) = status_json(&sb);
        accounts[1]["url"].as_str().map(str::to_owned)
    });
    provider.push([Reply::token("fake-access", None, Some(3600))]);
    let visited = Instant::now();
    let visit = browser::visit(&url, None).expect("the browser flow");
    assert_eq!(visit.page.body, PROCESSING_PAGE);
    let (run, returned) = waiting.join().expect("the waiting client");
    run.ok("fake-access\n");
    assert!(returned > visited, "returned before the browser came back");
    assert!(
        returned - visited < Duration::from_secs(2),
        "returned {:?} after the browser came back",
        returned - visited
    );

    // No token within the wait: what plain show says.
    let idle_url = sb.auth_url("idle");
    let started = Instant::now();
    sb.run(&["show", "-w", "1", "idle"])
        .fails(&format!("{UNAVAILABLE_WITH_URL}{idle_url}\n"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    sb.run(&["show", "-u", "-w", "1", "idle"])
        .fails(UNAVAILABLE);
}
