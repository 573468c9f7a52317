//! The configuration language from the outside: realistic files as users write them,
//! and property tests that `Config::parse` never panics, whatever it is given.

use std::time::Duration;

use pizauth_fsm::config::{Config, Diagnostics, Parsed, Severity};
use proptest::prelude::*;

const MICROSOFT_365: &str = r#"// Microsoft 365 (Outlook) for IMAP and SMTP, as in pizauth's documentation.
account "office365" {
    auth_uri = "https://login.microsoftonline.com/common/oauth2/v2.0/authorize";
    token_uri = "https://login.microsoftonline.com/common/oauth2/v2.0/token";
    client_id = "9e5f94bc-e8a4-4e73-b8be-63364c29d753";
    scopes = [
      "https://outlook.office365.com/IMAP.AccessAsUser.All",
      "https://outlook.office365.com/SMTP.Send",
      "offline_access"
    ];
    // Skip the account picker.
    auth_uri_fields = { "login_hint": "someone@example.com" };
}
"#;

const GMAIL: &str = r#"account "gmail" {
    auth_uri = "https://accounts.google.com/o/oauth2/auth";
    token_uri = "https://oauth2.googleapis.com/token";
    client_id = "123456789012-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com";
    client_secret = "GOCSPX-abcdefghijklmnopqrstuvwxyz0";
    scopes = ["https://mail.google.com/"];
    // Google only issues a refresh token on first consent unless asked again.
    auth_uri_fields = {"prompt": "consent", "login_hint": "someone@gmail.com"};
}
"#;

/// Every option there is, global and per account, in current spelling.
const EVERYTHING: &str = r#"
auth_notify_cmd = "if [ \"$(notify-send --action=open=Open \"pizauth: $PIZAUTH_ACCOUNT\")\" = open ]; then xdg-open \"$PIZAUTH_URL\"; fi";
auth_notify_interval = 30m;
error_notify_cmd = "notify-send -u critical \"pizauth: $PIZAUTH_ACCOUNT\" \"$PIZAUTH_MSG\"";
http_listen = "127.0.0.1:8765";
https_listen = "[::1]:8766";
refresh_at_least = 1h;
refresh_before_expiry = 2m;
refresh_retry = 30s;
startup_cmd = "pizauth restore < ~/.cache/pizauth.dump";
token_event_cmd = "pizauth dump > ~/.cache/pizauth.dump";
transient_error_if_cmd = "! ping -c 1 -W 2 example.com";

account "everything" {
    auth_uri = "https://auth.example.com/authorize?tenant=x";
    token_uri = "https://auth.example.com/token";
    client_id = "client";
    client_secret = "secret with \\ and \" inside";
    scopes = ["openid", "email",];
    auth_uri_fields = { "prompt": "select_account", "domain_hint": "example.com", };
    redirect_uri = "https://localhost/callback";
    refresh_at_least = 2h;
    refresh_before_expiry = 3m;
    refresh_retry = 1m;
}

account "inherits" {
    auth_uri = "http://127.0.0.1:9000/auth";
    token_uri = "http://127.0.0.1:9000/token";
    client_id = "local";
}
"#;

fn parse(src: &str) -> Parsed {
    Config::parse(src, "pizauth.conf").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn microsoft_365() {
    let p = parse(MICROSOFT_365);
    assert!(p.warnings.is_empty());
    let a = p.config.account("office365").expect("the account");
    assert_eq!(
        a.auth_uri.as_ref().unwrap().as_str(),
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    );
    assert_eq!(
        a.token_uri.as_ref().unwrap().as_str(),
        "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    );
    assert_eq!(
        a.scopes[..],
        [
            "https://outlook.office365.com/IMAP.AccessAsUser.All",
            "https://outlook.office365.com/SMTP.Send",
            "offline_access",
        ]
    );
    assert_eq!(
        a.auth_uri_fields,
        [("login_hint".to_owned(), "someone@example.com".to_owned())]
    );
    assert!(a.client_secret.is_none());
    assert_eq!(a.redirect_uri.as_str(), "http://localhost/");
}

#[test]
fn gmail() {
    let p = parse(GMAIL);
    let a = p.config.account("gmail").expect("the account");
    assert_eq!(
        a.auth_uri.as_ref().unwrap().as_str(),
        "https://accounts.google.com/o/oauth2/auth"
    );
    assert_eq!(
        a.token_uri.as_ref().unwrap().as_str(),
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(
        a.client_secret.as_ref().map(|s| s.as_str()),
        Some("GOCSPX-abcdefghijklmnopqrstuvwxyz0")
    );
    assert_eq!(a.scopes[..], ["https://mail.google.com/"]);
    assert_eq!(a.auth_uri_fields.len(), 2);
}

#[test]
fn both_providers_in_one_file() {
    let p = parse(&format!("{GMAIL}\n{MICROSOFT_365}"));
    let names: Vec<_> = p.config.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["gmail", "office365"]);
}

#[test]
fn a_file_with_every_option() {
    let p = parse(EVERYTHING);
    assert!(p.warnings.is_empty(), "{}", p.warnings);
    let c = &p.config;
    assert!(
        c.auth_notify_cmd
            .as_deref()
            .is_some_and(|s| s.contains("\"$PIZAUTH_URL\""))
    );
    assert_eq!(c.auth_notify_interval, Duration::from_secs(1800));
    assert!(c.error_notify_cmd.is_some());
    assert_eq!(c.http_listen.as_deref(), Some("127.0.0.1:8765"));
    assert_eq!(c.https_listen.as_deref(), Some("[::1]:8766"));
    assert!(c.startup_cmd.is_some() && c.token_event_cmd.is_some());
    assert!(c.transient_error_if_cmd.is_some());
    let e = c.account("everything").expect("everything");
    assert_eq!(
        e.client_secret.as_ref().map(|s| s.as_str()),
        Some("secret with \\ and \" inside")
    );
    assert_eq!(e.scopes[..], ["openid", "email"]);
    assert_eq!(e.auth_uri_fields.len(), 2);
    assert_eq!(e.redirect_uri.as_str(), "https://localhost/callback");
    assert_eq!(e.timing.refresh_at_least, Duration::from_secs(7200));
    assert_eq!(e.timing.refresh_before_expiry, Duration::from_secs(180));
    assert_eq!(e.timing.refresh_retry, Duration::from_secs(60));
    let i = c.account("inherits").expect("inherits");
    assert_eq!(i.timing.refresh_at_least, Duration::from_secs(3600));
    assert_eq!(i.timing.refresh_before_expiry, Duration::from_secs(120));
    assert_eq!(i.timing.refresh_retry, Duration::from_secs(30));
}

#[test]
fn a_seed_era_file_still_parses_with_warnings() {
    let src = "auth_error_cmd = \"logger\";\nrefresh_retry_interval = 10s;\n\
               account \"x\" {\n auth_uri = \"https://a.example/\";\n token_uri = \"https://a.example/t\";\n \
               client_id = \"c\";\n login_hint = \"me\";\n refresh_retry_interval = 5s;\n}\n";
    let p = parse(src);
    let lines: Vec<_> = p.warnings.iter().map(|w| (w.line, w.column)).collect();
    assert_eq!(lines, [(1, 1), (2, 1), (7, 2), (8, 2)]);
    assert!(p.warnings.iter().all(|w| w.severity == Severity::Warning));
    assert_eq!(p.config.error_notify_cmd.as_deref(), Some("logger"));
}

/// What must hold for any outcome of any input.
fn check(src: &str, result: Result<Parsed, Diagnostics>) {
    let lines = src.split('\n').count();
    let diagnostics = match result {
        Ok(p) => {
            let names: Vec<_> = p.config.accounts.iter().map(|a| &a.name).collect();
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "accounts sorted and unique"
            );
            assert!(p.config.http_listen.is_some() || p.config.https_listen.is_some());
            p.warnings
        }
        Err(e) => {
            assert!(!e.is_empty(), "an error without a diagnostic");
            assert!(e.has_errors());
            e
        }
    };
    for d in diagnostics.iter() {
        assert!(d.line >= 1 && d.line <= lines, "line {} of {lines}", d.line);
        assert!(d.column >= 1);
        assert!(!d.message.is_empty());
        assert!(!d.message.ends_with('.'), "{}", d.message);
        let _ = d.to_string();
    }
    assert!(diagnostics.windows(2).all(|w| w[0].offset <= w[1].offset));
}

/// Pieces of the language, to build inputs that get past the lexer.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "account",
        "\"a\"",
        "\"https://x.example/\"",
        "{",
        "}",
        "[",
        "]",
        ";",
        "=",
        ",",
        ":",
        "none",
        "15m",
        "99999999999999999999d",
        "90",
        "auth_uri",
        "token_uri",
        "client_id",
        "client_secret",
        "scopes",
        "auth_uri_fields",
        "login_hint",
        "http_listen",
        "https_listen",
        "refresh_retry",
        "auth_error_cmd",
        "\"state\"",
        "//",
        "\n",
        " ",
        "\"",
        "\\",
        "#",
        "é",
        "\u{0}",
        "\"127.0.0.1:1\"",
        "\"\"",
    ])
}

/// A valid file with one edit: a deletion, an insertion, a duplication or a cut.
fn mutated() -> impl Strategy<Value = String> {
    let base = prop::sample::select(vec![MICROSOFT_365, GMAIL, EVERYTHING]);
    (
        base,
        any::<prop::sample::Index>(),
        0usize..40,
        0u8..4,
        piece(),
    )
        .prop_map(|(base, at, len, op, piece)| {
            let mut s = base.to_owned();
            let mut start = at.index(s.len() + 1);
            while !s.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + len).min(s.len());
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            match op {
                0 => s.replace_range(start..end, ""),
                1 => s.insert_str(start, piece),
                2 => {
                    let copy = s[start..end].to_owned();
                    s.insert_str(end, &copy);
                }
                _ => s.truncate(start),
            }
            s
        })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(src in any::<String>()) {
        check(&src, Config::parse(&src, "f"));
    }

    #[test]
    fn never_panics_on_token_soup(pieces in prop::collection::vec(piece(), 0..80)) {
        let src = pieces.join(" ");
        check(&src, Config::parse(&src, "f"));
        let src = pieces.concat();
        check(&src, Config::parse(&src, "f"));
    }

    #[test]
    fn never_panics_on_mutated_valid_files(src in mutated()) {
        check(&src, Config::parse(&src, "f"));
    }

    #[test]
    fn strings_round_trip_through_escapes(value in "\\PC+") {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let src = format!(
            "account \"a\" {{ auth_uri = \"https://x/\"; token_uri = \"https://x/\"; client_id = \"{escaped}\"; }}"
        );
        let p = Config::parse(&src, "f").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&p.config.accounts[0].client_id, &value);
    }

    #[test]
    fn times_convert_exactly(n in 0u64..=36500, unit in prop::sample::select(vec![('s', 1u64), ('m', 60), ('h', 3600), ('d', 86400)])) {
        let src = format!(
            "refresh_retry = {n}{};\naccount \"a\" {{ auth_uri = \"https://x/\"; token_uri = \"https://x/\"; client_id = \"c\"; }}",
            unit.0
        );
        let secs = n * unit.1;
        match Config::parse(&src, "f") {
            Ok(p) => {
                prop_assert!(secs <= 36500 * 86400);
                prop_assert_eq!(p.config.accounts[0].timing.refresh_retry, Duration::from_secs(secs));
            }
            Err(e) => {
                prop_assert!(secs > 36500 * 86400);
                prop_assert!(e[0].message.contains("too large"));
            }
        }
    }
}

/// Issue 12, case 5: `http_listen = none` with an account whose redirect URI is
/// `http:` (the default) is refused at start and at reload, with line and column, as
/// pizauth 1.1.0 does; it used to fail only at the first `show`.
#[test]
fn an_http_redirect_uri_needs_the_http_listener() {
    let account = |extra: &str| {
        format!(
            "http_listen = none;\naccount \"a\" {{\n    auth_uri = \"https://p.example/a\";\n    \
             token_uri = \"https://p.example/t\";\n    client_id = \"c\";\n{extra}}}\n"
        )
    };
    let error = |src: &str| match Config::parse(src, "pizauth.conf") {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(d) => d.to_string(),
    };
    let default = error(&account(""));
    assert!(
        default.contains("pizauth.conf:2:9: account \"a\" has an http redirect_uri (http://localhost/), but http_listen is none"),
        "{default}"
    );
    let given = error(&account("    redirect_uri = \"http://localhost/cb\";\n"));
    assert!(
        given.contains("pizauth.conf:6:20: account \"a\" has an http redirect_uri (http://localhost/cb), but http_listen is none"),
        "{given}"
    );
    // An https redirect_uri, or a flow without redirects, needs no HTTP listener.
    for extra in [
        "    redirect_uri = \"https://localhost/\";\n",
        "    auth_flow = device;\n    device_auth_uri = \"https://p.example/d\";\n",
    ] {
        let src = account(extra);
        assert!(Config::parse(&src, "pizauth.conf").is_ok(), "{src}");
    }
}

/// Issue 12, case 4: whether `redirect_uri` was written without a path is kept, so that
/// the URI sent to the provider has none either.
#[test]
fn a_redirect_uri_without_a_path_is_remembered_as_such() {
    for (uri, bare) in [
        ("http://localhost", true),
        ("http://localhost:8080", true),
        ("http://localhost?tenant=x", true),
        ("http://localhost/", false),
        ("http://localhost/cb", false),
        ("https://localhost", true),
    ] {
        let src = format!(
            "account \"a\" {{ auth_uri = \"https://p.example/a\"; token_uri = \"https://p.example/t\"; \
             client_id = \"c\"; redirect_uri = \"{uri}\"; }}"
        );
        let config = Config::parse(&src, "pizauth.conf").expect("parses").config;
        assert_eq!(config.accounts[0].redirect_uri_bare, bare, "{uri}");
    }
    let config = Config::parse(
        "account \"a\" { auth_uri = \"https://p.example/a\"; token_uri = \"https://p.example/t\"; client_id = \"c\"; }",
        "pizauth.conf",
    )
    .expect("parses")
    .config;
    assert!(
        !config.accounts[0].redirect_uri_bare,
        "the default has a path"
    );
}
