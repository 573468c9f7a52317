//! Tests of the whole configuration language: every option and its default, and every
//! rule of SPEC.md section 4 with the exact message it produces.

use std::sync::Arc;
use std::time::Duration;

use super::*;

const FILE: &str = "pizauth.conf";

/// The three mandatory options of an account.
const MANDATORY: &str = "auth_uri = \"https://example.com/auth\";\n\
                         token_uri = \"https://example.com/token\";\n\
                         client_id = \"id\";\n";

fn parsed(src: &str) -> Parsed {
    Config::parse(src, FILE).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn config(src: &str) -> Config {
    let p = parsed(src);
    assert!(
        p.warnings.is_empty(),
        "unexpected warnings:\n{}",
        p.warnings
    );
    p.config
}

/// All errors, rendered.
fn rendered(src: &str) -> String {
    match Config::parse(src, FILE) {
        Ok(p) => panic!("parsed, but should not have: {:?}", p.config),
        Err(e) => e.to_string(),
    }
}

/// The first line of each error: `line:column: message`.
fn errors(src: &str) -> Vec<String> {
    match Config::parse(src, FILE) {
        Ok(p) => panic!("parsed, but should not have: {:?}", p.config),
        Err(e) => e
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect(),
    }
}

/// The only error's `line:column: message`.
fn error(src: &str) -> String {
    let mut e = errors(src);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.remove(0)
}

/// An account "a" with the mandatory options and `extra` lines.
fn account(extra: &str) -> String {
    format!("account \"a\" {{\n{MANDATORY}{extra}\n}}\n")
}

/// The only account of `src`.
fn the_account(src: &str) -> Account {
    let mut c = config(src);
    assert_eq!(c.accounts.len(), 1);
    c.accounts.remove(0)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn an_empty_file_is_the_default_config() {
    for src in ["", "  \n// only a comment\n\t", "\u{feff}"] {
        assert_eq!(config(src), Config::default());
    }
    let c = Config::default();
    assert_eq!(c.auth_notify_interval, secs(15 * 60));
    assert_eq!(c.http_listen.as_deref(), Some("127.0.0.1:0"));
    assert_eq!(c.https_listen.as_deref(), Some("127.0.0.1:0"));
    assert_eq!(
        (c.auth_notify_cmd, c.error_notify_cmd, c.startup_cmd),
        (None, None, None)
    );
    assert_eq!((c.token_event_cmd, c.transient_error_if_cmd), (None, None));
}

#[test]
fn every_global_option() {
    let c = config(
        "auth_notify_cmd = \"notify-send \\\"$PIZAUTH_URL\\\"\";\n\
         auth_notify_interval = 2h;\n\
         error_notify_cmd = \"logger err\";\n\
         http_listen = \"127.0.0.1:8765\";\n\
         https_listen = none;\n\
         refresh_at_least = 1d;\n\
         refresh_before_expiry = 5m;\n\
         refresh_retry = 7s;\n\
         startup_cmd = \"echo up\";\n\
         token_event_cmd = \"echo $PIZAUTH_EVENT\";\n\
         transient_error_if_cmd = \"ping -c1 example.com\";\n",
    );
    assert_eq!(
        c.auth_notify_cmd.as_deref(),
        Some("notify-send \"$PIZAUTH_URL\"")
    );
    assert_eq!(c.auth_notify_interval, secs(7200));
    assert_eq!(c.error_notify_cmd.as_deref(), Some("logger err"));
    assert_eq!(c.http_listen.as_deref(), Some("127.0.0.1:8765"));
    assert_eq!(c.https_listen, None);
    assert_eq!(c.startup_cmd.as_deref(), Some("echo up"));
    assert_eq!(c.token_event_cmd.as_deref(), Some("echo $PIZAUTH_EVENT"));
    assert_eq!(
        c.transient_error_if_cmd.as_deref(),
        Some("ping -c1 example.com")
    );
    assert!(c.accounts.is_empty());
}

#[test]
fn account_defaults() {
    let a = the_account(&account(""));
    assert_eq!(a.name, "a");
    assert_eq!(
        a.auth_uri.as_ref().unwrap().as_str(),
        "https://example.com/auth"
    );
    assert_eq!(
        a.token_uri.as_ref().unwrap().as_str(),
        "https://example.com/token"
    );
    assert_eq!(a.client_id, "id");
    assert!(a.client_secret.is_none());
    assert!(a.scopes.is_empty());
    assert!(a.auth_uri_fields.is_empty());
    assert_eq!(a.redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
    assert_eq!(a.timing, Timing::default());
    assert_eq!(
        a.timing,
        Timing {
            refresh_at_least: secs(90 * 60),
            refresh_before_expiry: secs(90),
            refresh_retry: secs(40),
        }
    );
}

#[test]
fn every_account_option() {
    let a = the_account(&account(
        "client_secret = \"s3cret\";\n\
         scopes = [\"a\", \"b\", \"offline_access\",];\n\
         auth_uri_fields = { \"prompt\": \"consent\", \"x\": \"1\", \"x\": \"2\" };\n\
         redirect_uri = \"https://localhost:1234/cb?q=1\";\n\
         refresh_at_least = 1h;\n\
         refresh_before_expiry = 2m;\n\
         refresh_retry = 3s;\n",
    ));
    assert_eq!(a.client_secret.as_ref().map(Secret::as_str), Some("s3cret"));
    assert_eq!(a.scopes[..], ["a", "b", "offline_access"]);
    let fields: Vec<_> = a
        .auth_uri_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(fields, [("prompt", "consent"), ("x", "1"), ("x", "2")]);
    assert_eq!(a.redirect_uri.as_str(), "https://localhost:1234/cb?q=1");
    assert_eq!(
        a.timing,
        Timing {
            refresh_at_least: secs(3600),
            refresh_before_expiry: secs(120),
            refresh_retry: secs(3),
        }
    );
}

#[test]
fn account_timing_falls_back_to_the_globals() {
    let src = format!(
        "{}refresh_at_least = 10m;\nrefresh_retry = 9s;\n\
         account \"b\" {{\n{MANDATORY}refresh_retry = 1s;\n}}",
        account("")
    );
    let c = config(&src);
    let (a, b) = (&c.accounts[0], &c.accounts[1]);
    assert_eq!(
        a.timing,
        Timing {
            refresh_at_least: secs(600),
            refresh_before_expiry: secs(90),
            refresh_retry: secs(9),
        }
    );
    assert_eq!(b.timing.refresh_retry, secs(1));
    assert_eq!(b.timing.refresh_at_least, secs(600));
}

#[test]
fn times_and_their_units() {
    for (t, s) in [
        ("0s", 0),
        ("45s", 45),
        ("15m", 900),
        ("2h", 7200),
        ("3d", 259_200),
    ] {
        let c = config(&format!("auth_notify_interval = {t};"));
        assert_eq!(c.auth_notify_interval, secs(s), "{t}");
    }
    let c = config("auth_notify_interval = 36500d;");
    assert_eq!(c.auth_notify_interval, MAX_TIME);
    assert_eq!(
        error("auth_notify_interval = 36501d;"),
        "1:24: time '36501d' is too large: at most 36500d (100 years)"
    );
    assert_eq!(
        error("refresh_retry = 99999999999999999999999s;"),
        "1:17: time '99999999999999999999999s' is too large: at most 36500d (100 years)"
    );
    assert_eq!(
        error(&account("refresh_at_least = 18446744073709551615d;")),
        "5:20: time '18446744073709551615d' is too large: at most 36500d (100 years)"
    );
}

#[test]
fn accounts_are_sorted_and_found_by_name() {
    let src = ["zeta", "alpha", "Mid", "mid"]
        .iter()
        .map(|n| format!("account \"{n}\" {{ {MANDATORY} }}\n"))
        .collect::<String>();
    let c = config(&src);
    let names: Vec<_> = c.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["Mid", "alpha", "mid", "zeta"]);
    assert_eq!(c.account("mid").map(|a| a.name.as_str()), Some("mid"));
    assert!(c.account("beta").is_none());
}

#[test]
fn accounts_of_one_provider_share_their_endpoints_and_scopes() {
    let scopes = "scopes = [\"mail\", \"offline_access\"];";
    let src = format!(
        "account \"a\" {{ {MANDATORY} {scopes} }}\n\
         account \"b\" {{ {MANDATORY} {scopes} }}\n\
         account \"c\" {{ {MANDATORY} scopes = [\"mail\"]; \
         redirect_uri = \"http://localhost/\"; }}\n"
    );
    let c = config(&src);
    let [a, b, other] = &c.accounts[..] else {
        panic!("three accounts expected")
    };
    let same = |x: &Option<Arc<Url>>, y: &Option<Arc<Url>>| match (x, y) {
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    };
    assert!(same(&a.auth_uri, &b.auth_uri) && same(&a.token_uri, &other.token_uri));
    assert!(Arc::ptr_eq(&a.scopes, &b.scopes));
    assert!(!Arc::ptr_eq(&a.scopes, &other.scopes));
    assert_eq!(other.scopes[..], ["mail"]);
    // The default redirect URI and one written out equal each other; only the default
    // one is shared.
    assert!(Arc::ptr_eq(&a.redirect_uri, &b.redirect_uri));
    assert_eq!(a.redirect_uri, other.redirect_uri);
}

#[test]
fn strings_escapes_newlines_and_comments() {
    let a = the_account(&account(
        "client_secret = \"a\\\"b\\\\c // not a comment\";\n\
         scopes = [ // a comment inside a list\n \"x\ny\" ];\n\
         // refresh_retry = nonsense;\n",
    ));
    assert_eq!(
        a.client_secret.as_ref().map(Secret::as_str),
        Some("a\"b\\c // not a comment")
    );
    assert_eq!(a.scopes[..], ["x\ny"]);
    let a = the_account(&account("scopes = [];\nauth_uri_fields = {};"));
    assert!(a.scopes.is_empty() && a.auth_uri_fields.is_empty());
}

#[test]
fn account_names_may_hold_anything_but_nothing() {
    let c = config(&format!("account \"my \\\"work\\\" é\" {{ {MANDATORY} }}"));
    assert_eq!(c.accounts[0].name, "my \"work\" é");
    assert_eq!(
        error(&format!("account \"\" {{ {MANDATORY} }}")),
        "1:9: the account name must not be empty"
    );
}

#[test]
fn deprecated_names_warn() {
    let p = parsed(&format!(
        "auth_error_cmd = \"x\";\nrefresh_retry_interval = 5s;\n{}",
        account("refresh_retry_interval = 6s;")
    ));
    assert_eq!(p.config.error_notify_cmd.as_deref(), Some("x"));
    assert_eq!(p.config.accounts[0].timing.refresh_retry, secs(6));
    assert_eq!(
        p.warnings.to_string(),
        "pizauth.conf:1:1: warning: 'auth_error_cmd' is deprecated: use 'error_notify_cmd'\n\
         auth_error_cmd = \"x\";\n\
         ^\n\
         pizauth.conf:2:1: warning: 'refresh_retry_interval' is deprecated: use 'refresh_retry'\n\
         refresh_retry_interval = 5s;\n\
         ^\n\
         pizauth.conf:7:1: warning: 'refresh_retry_interval' is deprecated: use 'refresh_retry'\n\
         refresh_retry_interval = 6s;\n\
         ^"
    );
    assert!(p.warnings.iter().all(|w| w.severity == Severity::Warning));
    let c = parsed(
        "refresh_retry_interval = 5s;\naccount \"a\" { auth_uri = \"https://x/\"; token_uri = \"https://x/t\"; client_id = \"i\"; }",
    );
    assert_eq!(c.config.accounts[0].timing.refresh_retry, secs(5));
}

#[test]
fn old_and_new_name_together_is_given_twice() {
    assert_eq!(
        error("auth_error_cmd = \"a\";\nerror_notify_cmd = \"b\";"),
        "2:1: option 'error_notify_cmd' given twice (first on line 1 as 'auth_error_cmd')"
    );
    assert_eq!(
        error(&account(
            "refresh_retry = 1s;\nrefresh_retry_interval = 2s;"
        )),
        "6:1: option 'refresh_retry_interval' given twice in account \"a\" (first on line 5 as 'refresh_retry')"
    );
}

#[test]
fn login_hint_is_folded_into_auth_uri_fields() {
    let p = parsed(&account(
        "login_hint = \"me@example.com\";\nauth_uri_fields = { \"prompt\": \"none\" };",
    ));
    assert_eq!(
        p.config.accounts[0].auth_uri_fields,
        [
            ("prompt".to_owned(), "none".to_owned()),
            ("login_hint".to_owned(), "me@example.com".to_owned()),
        ]
    );
    assert_eq!(
        p.warnings.to_string(),
        "pizauth.conf:5:1: warning: 'login_hint' is deprecated: use auth_uri_fields = { \"login_hint\": \"...\" }\n\
         login_hint = \"me@example.com\";\n\
         ^"
    );
    assert_eq!(
        error(&account(
            "auth_uri_fields = { \"login_hint\": \"a\" };\nlogin_hint = \"b\";"
        )),
        "6:1: 'login_hint' given and also as a key of 'auth_uri_fields': keep only the auth_uri_fields entry"
    );
}

#[test]
fn unknown_options_suggest_the_closest() {
    let src = "account \"work\" {\n    auth_uri = \"https://example.com/a\";\n    \
               token_uri = \"https://example.com/t\";\n    client_id = \"x\";\n\n    \
               // the next line has a typo\n    client_secert = \"x\";\n}\n";
    assert_eq!(
        rendered(src),
        "pizauth.conf:7:5: unknown option 'client_secert' in account \"work\" (did you mean 'client_secret'?)\n    \
         client_secert = \"x\";\n    \
         ^"
    );
    assert_eq!(
        error("http_lisen = \"127.0.0.1:1\";"),
        "1:1: unknown option 'http_lisen' (did you mean 'http_listen'?)"
    );
    assert_eq!(
        error("frobnicate = 1s;"),
        "1:1: unknown option 'frobnicate'"
    );
    assert_eq!(
        error("client_id = \"x\";"),
        "1:1: 'client_id' is an account option: it belongs inside an account block"
    );
    assert_eq!(
        error(&account("startup_cmd = \"x\";")),
        "5:1: 'startup_cmd' is a global option: move it out of account blocks"
    );
}

#[test]
fn options_given_twice() {
    assert_eq!(
        rendered("startup_cmd = \"a\";\n\nstartup_cmd = \"b\";"),
        "pizauth.conf:3:1: option 'startup_cmd' given twice (first on line 1)\n\
         startup_cmd = \"b\";\n\
         ^"
    );
    assert_eq!(
        error(&account("client_id = \"other\";")),
        "5:1: option 'client_id' given twice in account \"a\" (first on line 4)"
    );
}

#[test]
fn accounts_given_twice() {
    assert_eq!(
        error(&format!("{}\n{}", account(""), account(""))),
        "8:9: account \"a\" defined twice (first on line 1)"
    );
}

#[test]
fn missing_mandatory_options() {
    assert_eq!(
        rendered("account \"a\" {\n  client_id = \"x\";\n  token_uri = \"https://x/\";\n}"),
        "pizauth.conf:1:9: account \"a\" is missing the mandatory option 'auth_uri'\n\
         account \"a\" {\n        \
         ^"
    );
    assert_eq!(
        error("account \"b\" { }"),
        "1:9: account \"b\" is missing the mandatory options 'auth_uri', 'client_id' and 'token_uri'"
    );
    assert_eq!(
        error("account \"b\" { scopes = []; client_id = \"x\"; }"),
        "1:9: account \"b\" is missing the mandatory options 'auth_uri' and 'token_uri'"
    );
}

#[test]
fn values_of_the_wrong_kind() {
    let cases = [
        (
            "auth_notify_cmd = [\"a\"];",
            "1:19: 'auth_notify_cmd' must be a string, not a list",
        ),
        (
            "startup_cmd = none;",
            "1:15: 'startup_cmd' must be a string, not none",
        ),
        (
            "auth_notify_interval = \"15m\";",
            "1:24: 'auth_notify_interval' must be a time such as 90s, 15m, 2h or 1d, not a string",
        ),
        (
            "http_listen = 5s;",
            "1:15: 'http_listen' must be a string such as \"127.0.0.1:8765\", or none, not a time",
        ),
        (
            "token_event_cmd = {};",
            "1:19: 'token_event_cmd' must be a string, not a map",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(error(src), want);
    }
    let account_cases = [
        (
            "scopes = \"a b\";",
            "5:10: 'scopes' must be a list of strings such as [\"a\", \"b\"], not a string",
        ),
        (
            "auth_uri_fields = [\"a\"];",
            "5:19: 'auth_uri_fields' must be a map of strings such as { \"key\": \"value\" }, not a list",
        ),
        (
            "client_secret = 5m;",
            "5:17: 'client_secret' must be a string, not a time",
        ),
        (
            "redirect_uri = none;",
            "5:16: 'redirect_uri' must be a string holding an http or https URI, not none",
        ),
    ];
    for (extra, want) in account_cases {
        assert_eq!(error(&account(extra)), want);
    }
}

#[test]
fn uris_must_be_absolute_http_without_fragment() {
    let with = |uri: &str| {
        format!(
            "account \"a\" {{\nauth_uri = \"{uri}\";\ntoken_uri = \"https://x/t\";\nclient_id = \"i\";\n}}"
        )
    };
    assert_eq!(
        error(&with("/authorize")),
        "2:12: 'auth_uri' must be an absolute http or https URI, not \"/authorize\" (relative URL without a base)"
    );
    assert_eq!(
        error(&with("ftp://example.com/")),
        "2:12: 'auth_uri' must be an http or https URI, not \"ftp://example.com/\""
    );
    assert_eq!(
        error(&with("https://example.com/a#frag")),
        "2:12: 'auth_uri' must not have a #fragment: \"https://example.com/a#frag\""
    );
    assert_eq!(
        error(&with("https://")),
        "2:12: 'auth_uri' must be an absolute http or https URI, not \"https://\" (empty host)"
    );
    assert_eq!(
        error(&account("redirect_uri = \"mailto:me@example.com\";")),
        "5:16: 'redirect_uri' must be an http or https URI, not \"mailto:me@example.com\""
    );
    let a = the_account(&with("http://127.0.0.1:8080/auth?x=1"));
    assert_eq!(
        a.auth_uri.as_ref().unwrap().as_str(),
        "http://127.0.0.1:8080/auth?x=1"
    );
    assert!(Url::parse(DEFAULT_REDIRECT_URI).is_ok());
}

#[test]
fn auth_uri_fields_must_not_set_what_pizauth_sets() {
    for key in [
        "access_type",
        "client_id",
        "code_challenge",
        "code_challenge_method",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
    ] {
        assert_eq!(
            error(&account(&format!(
                "auth_uri_fields = {{ \"a\": \"b\", \"{key}\": \"x\" }};"
            ))),
            format!("5:31: 'auth_uri_fields' must not set '{key}': pizauth sets it itself")
        );
    }
    // Keys are case-sensitive, as in the URL.
    let a = the_account(&account("auth_uri_fields = { \"State\": \"x\" };"));
    assert_eq!(a.auth_uri_fields.len(), 1);
}

#[test]
fn listen_addresses() {
    for ok in ["127.0.0.1:0", "localhost:8765", "[::1]:65535", "0.0.0.0:80"] {
        let c = config(&format!("http_listen = \"{ok}\";"));
        assert_eq!(c.http_listen.as_deref(), Some(ok));
    }
    let c = config("http_listen = none;");
    assert_eq!(
        (c.http_listen, c.https_listen.as_deref()),
        (None, Some(DEFAULT_LISTEN))
    );
    let c = config("https_listen = none;");
    assert_eq!(
        (c.http_listen.as_deref(), c.https_listen),
        (Some(DEFAULT_LISTEN), None)
    );
    for bad in [
        "8765",
        ":8765",
        "localhost:",
        "::1:80",
        "[::1:80",
        "[]:80",
        "a b:1",
        "h:+80",
    ] {
        assert_eq!(
            error(&format!("https_listen = \"{bad}\";")),
            format!(
                "1:16: 'https_listen' must be host:port, such as \"127.0.0.1:8765\" or \"[::1]:0\", not \"{bad}\""
            )
        );
    }
    assert_eq!(
        error("http_listen = \"127.0.0.1:65536\";"),
        "1:15: 'http_listen' has port '65536', but a port must be from 0 to 65535"
    );
    assert_eq!(
        rendered("http_listen = none;\nhttps_listen = none;"),
        "pizauth.conf:2:16: 'http_listen' and 'https_listen' cannot both be none: redirects need a listener\n\
         https_listen = none;\n               \
         ^"
    );
}

#[test]
fn client_id_must_not_be_empty() {
    assert_eq!(
        error(
            "account \"a\" { auth_uri = \"https://x/\"; token_uri = \"https://x/\"; client_id = \"\"; }"
        ),
        "1:78: 'client_id' must not be empty"
    );
}

#[test]
fn files_that_are_too_large() {
    let src = format!("// {}\n", "x".repeat(MAX_CONFIG_BYTES));
    assert_eq!(
        rendered(&src),
        format!(
            "pizauth.conf:1:1: the file is too large: {} bytes, at most 1048576 are allowed",
            src.len()
        )
    );
    let src = format!("//{}", "x".repeat(MAX_CONFIG_BYTES - 2));
    assert_eq!(config(&src), Config::default());
}

#[test]
fn syntax_errors_name_what_was_expected() {
    assert_eq!(
        rendered("startup_cmd = \"a\"\ntoken_event_cmd = \"b\";"),
        "pizauth.conf:1:18: expected ';' after the value of 'startup_cmd', found 'token_event_cmd'\n\
         startup_cmd = \"a\"\n                 \
         ^"
    );
    let cases = [
        (
            "startup_cmd \"a\";",
            "1:13: expected '=' after 'startup_cmd', found a string",
        ),
        (
            "startup_cmd = echo;",
            "1:15: 'startup_cmd' must be a string, not a bare word (strings need double quotes)",
        ),
        ("= \"a\";", "1:1: expected an option name, found '='"),
        (
            "refresh_retry = 90;",
            "1:17: time '90' needs a unit: s, m, h or d (such as 90s or 15m)",
        ),
        (
            "refresh_retry = 90 s;",
            "1:17: time '90' needs a unit: s, m, h or d (such as 90s or 15m)",
        ),
        (
            "refresh_retry = 2w;",
            "1:17: time '2w' has an unknown unit: use s, m, h or d (such as 90s or 15m)",
        ),
        (
            "http_listen = 127.0.0.1:80;",
            "1:15: unexpected '127.0.0.1:80': strings need double quotes",
        ),
        (
            "startup_cmd = \"a\\n\";",
            "1:17: invalid escape '\\n' in string: only '\\\"' and '\\\\' are allowed",
        ),
        (
            "startup_cmd = \"a;\n",
            "1:15: unterminated string: it needs a closing '\"'",
        ),
        ("# comment\n", "1:1: comments start with '//', not '#'"),
        ("startup_cmd = \"a\"; @", "1:20: unexpected '@'"),
        ("}", "1:1: unexpected '}': no account block is open"),
        (
            "account \"a\" {\nclient_id = \"x\";",
            "2:17: expected '}' to close account \"a\", found the end of the file",
        ),
        (
            "account a {}",
            "1:9: expected the account's name in double quotes after 'account', found 'a'",
        ),
        (
            "account \"a\" client_id",
            "1:13: expected '{' after the account's name, found 'client_id'",
        ),
        (
            "account \"a\" { scopes = [\"a\" \"b\"]; }",
            "1:29: expected ',' or ']' after a list item, found a string",
        ),
        (
            "account \"a\" { scopes = [,]; }",
            "1:25: expected a string or ']' in the list, found ','",
        ),
        (
            "account \"a\" { scopes = [5m]; }",
            "1:25: expected a string or ']' in the list, found '5m'",
        ),
        (
            "account \"a\" { auth_uri_fields = {\"a\"}; }",
            "1:37: expected ':' after the key, found '}'",
        ),
        (
            "account \"a\" { auth_uri_fields = {\"a\": 1s}; }",
            "1:39: expected a string value after ':', found '1s'",
        ),
        (
            "account \"a\" { auth_uri_fields = {\"a\": \"b\" \"c\": \"d\"}; }",
            "1:43: expected ',' or '}' after a map entry, found a string",
        ),
        (
            "account \"a\" { auth_uri_fields = {a: \"b\"}; }",
            "1:34: expected a string key or '}' in the map, found 'a'",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(error(src), want, "for {src:?}");
    }
}

#[test]
fn a_forgotten_quote_is_hinted_at() {
    let e = errors("auth_notify_cmd = \"a;\nstartup_cmd = \"b\";");
    assert_eq!(
        e[0],
        "2:16: expected ';' after the value of 'auth_notify_cmd', found 'b' \
         (the string before it spans several lines: is a closing '\"' missing?)"
    );
}

#[test]
fn several_errors_are_all_reported_in_order() {
    let src = "\
http_listen = \"nope\";
startup_cmd = \"a\"
account \"work\" {
    auth_uri = \"https://login.example.com/authorize\";
    token_uri = \"token\";
    client_id = \"id\";
    scopes = [\"a\" \"b\"];
    frobnicate = 5m;
}
refresh_retry = 1x;
account \"work\" {
    client_id = \"x\";
}
";
    assert_eq!(
        errors(src),
        [
            "1:15: 'http_listen' must be host:port, such as \"127.0.0.1:8765\" or \"[::1]:0\", not \"nope\"",
            "2:18: expected ';' after the value of 'startup_cmd', found 'account'",
            "5:17: 'token_uri' must be an absolute http or https URI, not \"token\" (relative URL without a base)",
            "7:19: expected ',' or ']' after a list item, found a string",
            "8:5: unknown option 'frobnicate' in account \"work\"",
            "10:17: time '1x' has an unknown unit: use s, m, h or d (such as 90s or 15m)",
            "11:9: account \"work\" defined twice (first on line 3)",
            "11:9: account \"work\" is missing the mandatory options 'auth_uri' and 'token_uri'",
        ]
    );
}

#[test]
fn a_missing_brace_before_the_next_account_is_one_error() {
    let src = format!("account \"a\" {{\n{MANDATORY}\naccount \"b\" {{\n{MANDATORY}}}\n");
    assert_eq!(
        errors(&src),
        ["4:18: expected '}' to close account \"a\", found 'account'"]
    );
}

#[test]
fn client_secrets_are_never_shown() {
    let secret = "hunter2-abc";
    let srcs = [
        account(&format!(
            "client_secret = \"{secret}\";\nclient_secret = \"{secret}\";"
        )),
        account(&format!("client_secret = [\"{secret}\"];")),
        account(&format!("client_secret \"{secret}\";")),
        account(&format!("client_secret = \"{secret}\" \"{secret}\";")),
        account(&format!("client_secret = \"{secret}\\q\";")),
        account(&format!("client_secret = {secret};")),
        account(&format!("client_secret = 1{secret};")),
        account(&format!("client_secret = \"{secret}\"\nscopes = [];")),
        format!("client_secret = \"{secret}\";"),
    ];
    for src in srcs {
        let e = rendered(&src);
        assert!(!e.contains("hunter"), "{e}");
        assert!(e.contains("client_secret") || e.contains('*'), "{e}");
    }
    let p = parsed(&account(&format!(
        "client_secret = \"{secret}\";\nlogin_hint = \"x\";"
    )));
    assert!(format!("{:?}", p.config).contains("<redacted>"));
    assert!(!format!("{:?}", p.config).contains("hunter"));
}

#[test]
fn too_many_errors_are_cut_short() {
    let src = "x = 1s;\n".repeat(500);
    let e = Config::parse(&src, FILE).err().unwrap_or_default();
    assert_eq!(e.len(), 101);
    assert_eq!(e[100].message, "too many errors: 400 more not shown");
    assert_eq!(e[99].line, 100);
    let src = ";".repeat(100_000);
    let e = Config::parse(&src, FILE).err().unwrap_or_default();
    assert_eq!(e.len(), 100);
}

#[test]
fn diagnostics_render_one_per_line() {
    let e = Config::parse("a = 1s;\nb = 2s;", FILE)
        .err()
        .unwrap_or_default();
    assert_eq!(
        e.to_string(),
        "pizauth.conf:1:1: unknown option 'a'\na = 1s;\n^\npizauth.conf:2:1: unknown option 'b'\nb = 2s;\n^"
    );
    assert!(e.has_errors());
    let all: Vec<Diagnostic> = e.into_vec();
    assert_eq!(all.len(), 2);
}

#[test]
fn auth_flow_and_the_endpoints_each_flow_needs() {
    assert_eq!(the_account(&account("")).flow, Flow::Code);
    for (text, flow) in [
        ("code", Flow::Code),
        ("device", Flow::Device),
        ("\"device\"", Flow::Device),
        ("client_credentials", Flow::ClientCredentials),
    ] {
        let extra = format!(
            "auth_flow = {text};\ndevice_auth_uri = \"https://example.com/device\";\nclient_secret = \"s\";"
        );
        assert_eq!(the_account(&account(&extra)).flow, flow, "{text}");
    }
    assert_eq!(
        error(&account("auth_flow = browser;")),
        "5:13: 'auth_flow' must be one of code, device or client_credentials, not 'browser'"
    );
    // The device flow needs device_auth_uri and token_uri, not auth_uri.
    let device = "account \"d\" {\n  auth_flow = device;\n  token_uri = \"https://e.com/t\";\n  client_id = \"x\";\n}\n";
    assert_eq!(
        error(device),
        "1:9: account \"d\" is missing the mandatory option 'device_auth_uri'"
    );
    let ok = device.replace(
        "client_id",
        "device_auth_uri = \"https://e.com/d\";\n  client_id",
    );
    let a = the_account(&ok);
    assert_eq!(a.auth_uri, None);
    assert_eq!(a.device_auth_uri.unwrap().as_str(), "https://e.com/d");
    // Client credentials need a secret, from the config or a command.
    let cc = "account \"c\" {\n  auth_flow = client_credentials;\n  token_uri = \"https://e.com/t\";\n  client_id = \"x\";\n}\n";
    assert_eq!(
        error(cc),
        "1:9: account \"c\" uses auth_flow = client_credentials and needs 'client_secret' or 'client_secret_cmd'"
    );
    let with_cmd = cc.replace(
        "client_id",
        "client_secret_cmd = \"pass show c\";\n  client_id",
    );
    assert_eq!(
        the_account(&with_cmd).client_secret_cmd.as_deref(),
        Some("pass show c")
    );
}

#[test]
fn an_issuer_makes_the_endpoints_optional() {
    let src = "account \"i\" {\n  issuer = \"https://login.example.com/tenant/v2.0\";\n  client_id = \"x\";\n  revoke_uri = \"https://login.example.com/revoke\";\n}\n";
    let a = the_account(src);
    assert_eq!(
        a.issuer.unwrap().as_str(),
        "https://login.example.com/tenant/v2.0"
    );
    assert_eq!((a.auth_uri, a.token_uri), (None, None));
    assert_eq!(
        a.revoke_uri.unwrap().as_str(),
        "https://login.example.com/revoke"
    );
    assert_eq!(
        error("account \"i\" {\n  client_id = \"x\";\n}\n"),
        "1:9: account \"i\" is missing the mandatory options 'auth_uri' and 'token_uri'"
    );
    assert_eq!(
        error("account \"i\" {\n  issuer = \"ftp://x\";\n  client_id = \"x\";\n}\n")
            .split(':')
            .take(2)
            .collect::<Vec<_>>(),
        ["2", "12"]
    );
}

#[test]
fn client_secret_and_client_secret_cmd_exclude_each_other() {
    assert_eq!(
        error(&account(
            "client_secret = \"s\";\nclient_secret_cmd = \"pass show a\";"
        )),
        "6:1: 'client_secret' and 'client_secret_cmd' cannot both be given in account \"a\": keep one"
    );
    assert_eq!(
        error(&account("client_secret_cmd = \"\";")),
        "5:21: 'client_secret_cmd' must not be empty"
    );
}

#[test]
fn client_auth_names_a_method_or_is_unset() {
    let base = r#"account "a" { auth_uri = "https://a.example/auth"; token_uri = "https://a.example/token"; client_id = "c"; "#;
    assert_eq!(the_account(&format!("{base}}}")).client_auth, None);
    for (value, method) in [
        ("client_secret_basic", ClientAuth::Basic),
        ("client_secret_post", ClientAuth::Post),
        ("\"client_secret_basic\"", ClientAuth::Basic),
    ] {
        let a = the_account(&format!("{base}client_auth = {value}; }}"));
        assert_eq!(a.client_auth, Some(method), "{value}");
    }
    let e = error(&format!("{base}client_auth = private_key_jwt; }}"));
    assert!(
        e.contains(
            "'client_auth' must be client_secret_basic or client_secret_post, not 'private_key_jwt'"
        ),
        "{e}"
    );
}
