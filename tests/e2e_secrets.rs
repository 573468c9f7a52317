//! Secrets stay in memory (SPEC.md section 8): a whole session at full verbosity, with
//! distinctive fake values for every secret, and then a search for them everywhere the
//! server could have put them: its log, the command lines of every command it ran (and
//! its own), and every file under the sandbox and the runtime directory. Also: the
//! server's core dumps are off.
//!
//! `tests/e2e_flow.rs` checks the log of a session with two pending accounts; this test
//! covers every kind of secret, every command, and the files.

mod common;

use std::path::{Path, PathBuf};

use common::provider::{Authorize, Provider, Reply};
use common::{PROCESSING_PAGE, Sandbox, browser, config_string};

const ACCESS_1: &str = "fake-access-A11CE-0001";
const ACCESS_2: &str = "fake-access-A11CE-0002";
const REFRESH_1: &str = "fake-refresh-R3FR-0001";
const REFRESH_2: &str = "fake-refresh-R3FR-0002";
const CODE: &str = "fake-code-C0DE-7c3a";
const CLIENT_SECRET: &str = "fake-client-secret-S3CR3T";

/// Every file under `dir`, recursively (sockets and other non-files included).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
#[test]
fn no_secret_reaches_the_log_a_command_line_or_a_file() {
    let provider = Provider::start();
    provider.set_authorize(Authorize::FixedCode(CODE.into()));
    let mut sb = Sandbox::new("secrets");
    for dir in ["cwd", "tmp"] {
        std::fs::create_dir(sb.path(dir)).expect("mkdir");
    }
    let cwd = sb.path("cwd");
    sb.set_cwd(&cwd);
    sb.set_env("TMPDIR", &sb.path_str("tmp"));
    // Each command records its own command line and the server's (its parent's).
    let record = |kind: &str| {
        config_string(&format!(
            "{{ tr '\\000' ' ' < /proc/$$/cmdline; echo; tr '\\000' ' ' < /proc/$PPID/cmdline; \
             echo; }} >> '{}'",
            sb.path_str(&format!("argv-{kind}.log"))
        ))
    };
    sb.write_config(&format!(
        "startup_cmd = \"{}\";\nauth_notify_cmd = \"{}\";\nerror_notify_cmd = \"{}\";\n\
         token_event_cmd = \"{}\";\n\
         account \"work\" {{\n    auth_uri = \"{}\";\n    token_uri = \"{}\";\n    \
         revoke_uri = \"{}\";\n    client_id = \"client-work\";\n    \
         client_secret = \"{CLIENT_SECRET}\";\n}}\n",
        record("startup"),
        record("auth"),
        record("error"),
        record("event"),
        provider.url("/authorize"),
        provider.url("/token"),
        provider.url("/revoke"),
    ));
    sb.start();

    // The whole life of a token: authorised, refreshed (the refresh token rotated),
    // dumped, revoked here and at the provider, restored, and finally refused by the
    // provider (which is reported to the user).
    let url = sb.auth_url("work");
    provider.push([
        Reply::token(ACCESS_1, Some(REFRESH_1), Some(3600)),
        Reply::token(ACCESS_2, Some(REFRESH_2), Some(3600)),
    ]);
    let visit = browser::visit(&url, None).expect("the browser flow");
    assert_eq!(visit.page.body, PROCESSING_PAGE);
    sb.wait_token("work", ACCESS_1);
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", ACCESS_2);
    let dump = sb.run(&["dump"]);
    assert_eq!(dump.code, 0);
    provider.push_at("/revoke", [Reply::json(200, "{}")]);
    let revoked = sb.run(&["revoke", "work"]);
    assert_eq!(
        (revoked.code, revoked.stderr.as_str()),
        (0, "work: revoked locally and at the provider\n")
    );
    sb.run_with_stdin(&["restore"], dump.stdout.as_bytes())
        .ok("");
    sb.run(&["show", "work"]).ok(&format!("{ACCESS_2}\n"));
    provider.push([Reply::oauth_error(400, "invalid_grant", "revoked")]);
    sb.run(&["refresh", "work"]).ok("");
    // token_new, token_refreshed, token_revoked and token_invalidated (a restore fires
    // no event): two lines each.
    sb.wait_lines("argv-event.log", 2 * 4);
    sb.wait_lines("argv-error.log", 2);
    sb.wait_lines("argv-startup.log", 2);
    sb.wait_lines("argv-auth.log", 2);

    // Every secret the session had: the tokens, the code, the client secret, and what
    // pizauth made itself (state, PKCE verifier and challenge).
    let exchange = &provider.token_requests()[0];
    let verifier = exchange.field("code_verifier").expect("a verifier");
    assert_eq!(exchange.field("code"), Some(CODE));
    assert_eq!(exchange.field("client_secret"), Some(CLIENT_SECRET));
    let query = url::Url::parse(&url).expect("url");
    let field = |k: &str| {
        query
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .expect(k)
    };
    let revocation = &provider.requests_to("/revoke")[0];
    assert_eq!(revocation.field("token"), Some(REFRESH_2));
    let secrets = [
        ACCESS_1.to_owned(),
        ACCESS_2.to_owned(),
        REFRESH_1.to_owned(),
        REFRESH_2.to_owned(),
        CODE.to_owned(),
        CLIENT_SECRET.to_owned(),
        verifier.to_owned(),
        field("state"),
        field("code_challenge"),
    ];
    let assert_clean = |what: &str, text: &str| {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{s} is in {what}:\n{text}");
        }
    };

    // The log, at full verbosity: it says what happened, and nothing secret.
    let log = sb.log();
    for said in [
        "trace: work: unauthorised -> pending",
        "work: authorisation code received",
        "work: token_refreshed",
        "work: revoked",
        "restore: 1 accounts restored, 0 skipped",
        "work: refreshing failed: token endpoint answered HTTP 400: invalid_grant (revoked)",
    ] {
        assert!(log.contains(said), "the log lacks {said:?}:\n{log}");
    }
    assert_clean("the server's log", &log);

    // Command lines: each command's own, and the server's as each saw it.
    let pid = sb.server_pid();
    let server_argv = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert_clean(
        "the server's command line",
        &String::from_utf8_lossy(&server_argv),
    );
    for kind in ["startup", "auth", "event", "error"] {
        let lines = sb.lines(&format!("argv-{kind}.log"));
        assert!(
            lines.len() >= 2 && lines.len().is_multiple_of(2),
            "{kind}: {lines:?}"
        );
        for pair in lines.chunks(2) {
            assert!(pair[0].starts_with("/bin/sh -c "), "{kind}: {pair:?}");
            assert!(
                pair[1].starts_with(&format!("{} server -d -c ", common::PIZAUTH)),
                "{kind}: {pair:?}"
            );
        }
        assert_clean(&format!("the command lines of {kind}"), &lines.join("\n"));
    }

    // The HTTPS listener's certificate is made when first needed: have it made, so the
    // walk below also shows that its key went nowhere on disk.
    let info = sb.info_json();
    assert!(
        info["server_info"]["https_pub_key"].as_str().is_some(),
        "{info}"
    );

    // Files: the runtime directory holds the socket only; the working directory and
    // $TMPDIR stay empty; every file the test did not write is free of secrets.
    let runtime: Vec<PathBuf> = walk(&sb.runtime_dir());
    assert_eq!(runtime, [sb.socket()]);
    assert_eq!(walk(&cwd), Vec::<PathBuf>::new());
    assert_eq!(walk(&sb.path("tmp")), Vec::<PathBuf>::new());
    let config = sb.config_path();
    let mut checked = 0;
    for path in walk(&sb.dir) {
        if path == config || path == sb.socket() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_clean(
            &path.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} files checked");

    // No core dump can hold them either (non-dumpability is checked by a unit test in
    // io/src/os/tests.rs: as root, as tests may run, /proc cannot show it).
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("a core limit");
    let values: Vec<&str> = core
        .trim_start_matches("Max core file size")
        .split_whitespace()
        .collect();
    assert_eq!(values, ["0", "0", "bytes"], "{core}");
}
