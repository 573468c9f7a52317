//! The `pizauth` binary's command line, run as users and scripts run it, without a real
//! server: usage errors, the "not running" path, `info` without config or server, start-up
//! failures of `server`, and the client's printing against a one-shot fake server that
//! answers a canned reply on the control socket.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Sandbox;

use pizauth_fsm::WallTime;
use pizauth_fsm::protocol::{AccountStatus, LastError, Reply, TokenStatus};

const NOT_RUNNING: &str = "ERROR pizauth authenticator not running or not responding\n";

/// Binds the sandbox's control socket and answers one client with `reply`; the join
/// handle gives back what the client sent.
fn serve_once(sb: &Sandbox, reply: Reply) -> JoinHandle<String> {
    serve_raw(sb, reply.encode())
}

/// As [`serve_once`], with the reply's bytes given as they are.
fn serve_raw(sb: &Sandbox, reply: Vec<u8>) -> JoinHandle<String> {
    sb.make_runtime_dir();
    let _ = std::fs::remove_file(sb.socket());
    let listener = UnixListener::bind(sb.socket()).unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = String::new();
        conn.read_to_string(&mut request).unwrap();
        conn.write_all(&reply).unwrap();
        request
    })
}

#[test]
fn bad_usage_prints_usage_on_stderr_and_exits_1() {
    let sb = Sandbox::new("usage");
    for args in [
        &[][..],
        &["bogus"],
        &["show"],
        &["show", "a", "b"],
        &["status", "extra"],
        &["server", "-x"],
        &["info", "-c"],
        &["-v", "server"],
    ] {
        let out = sb.run(args);
        assert_eq!(out.code, 1, "{args:?}");
        assert!(
            out.stderr
                .as_str()
                .starts_with("Usage:\n  pizauth dump\n  pizauth info "),
            "{args:?}: {}",
            out.stderr.as_str()
        );
        assert!(
            out.stderr
                .as_str()
                .contains("  pizauth show [-u] [-w <seconds>] <account>\n")
        );
        assert_eq!(out.stdout.as_str(), "", "{args:?}");
    }
}

#[test]
fn help_prints_usage_on_stdout_and_exits_0() {
    let sb = Sandbox::new("help");
    for args in [
        &["-h"][..],
        &["--help"],
        &["show", "-h"],
        &["server", "-d", "--help"],
    ] {
        let out = sb.run(args);
        assert_eq!(out.code, 0, "{args:?}");
        assert!(out.stdout.as_str().starts_with("Usage:\n  pizauth dump\n"));
        assert_eq!(out.stderr.as_str(), "");
    }
}

#[test]
fn clients_without_a_server_say_so_and_create_nothing() {
    let sb = Sandbox::new("noserver");
    // Not even $XDG_RUNTIME_DIR exists (the sandbox makes it; take it away).
    std::fs::remove_dir(sb.path("run")).expect("remove the runtime directory");
    for args in [
        &["show", "x"][..],
        &["show", "-u", "x"],
        &["refresh", "x"],
        &["revoke", "x"],
        &["status"],
        &["dump"],
        &["reload"],
        &["shutdown"],
    ] {
        sb.run(args).fails(NOT_RUNNING);
    }
    assert!(
        !sb.path("run").exists(),
        "a client created the runtime directory"
    );
}

#[test]
fn a_stale_socket_means_not_running() {
    let sb = Sandbox::new("stale");
    sb.make_runtime_dir();
    drop(UnixListener::bind(sb.socket()).unwrap());
    assert!(sb.socket().exists());
    sb.run(&["show", "x"]).fails(NOT_RUNNING);
}

#[test]
fn a_server_that_never_answers_times_out() {
    let sb = Sandbox::new("silent");
    sb.make_runtime_dir();
    // Bound and listening, so connecting succeeds, but never accepted or answered.
    let _listener = UnixListener::bind(sb.socket()).unwrap();
    let start = Instant::now();
    let out = sb.run(&["show", "x"]);
    let took = start.elapsed();
    out.fails(NOT_RUNNING);
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "{took:?}"
    );
}

#[test]
fn show_prints_exactly_the_token() {
    let sb = Sandbox::new("show");
    let server = serve_once(
        &sb,
        Reply::Token {
            token: "tok-123".to_owned().into(),
        },
    );
    let out = sb.run(&["show", "work"]);
    assert_eq!(out.stdout.as_str(), "tok-123\n");
    assert_eq!(out.stderr.as_str(), "");
    assert_eq!(out.code, 0);
    assert_eq!(
        server.join().unwrap(),
        r#"{"cmd":"show","account":"work","with_url":true}"#
    );
}

#[test]
fn server_errors_are_one_error_line() {
    let sb = Sandbox::new("error");
    let server = serve_once(&sb, Reply::error("No account 'x'"));
    sb.run(&["refresh", "-u", "x"])
        .fails("ERROR No account 'x'\n");
    assert_eq!(
        server.join().unwrap(),
        r#"{"cmd":"refresh","account":"x","with_url":false}"#
    );
}

#[test]
fn malformed_replies_never_echo_their_content() {
    let sb = Sandbox::new("malformed");
    let server = serve_raw(
        &sb,
        br#"{"reply":"token","token":{"SECRET-TOKEN":1}}"#.to_vec(),
    );
    let out = sb.run(&["show", "work"]);
    out.fails("ERROR malformed reply from the server: is it a different version of pizauth?\n");
    server.join().unwrap();

    // Closing without a word is what a server refusing the client does.
    let server = serve_raw(&sb, Vec::new());
    sb.run(&["show", "work"]).fails(NOT_RUNNING);
    server.join().unwrap();
}

#[test]
fn done_prints_nothing() {
    let sb = Sandbox::new("done");
    let server = serve_once(&sb, Reply::Done);
    let out = sb.run(&["revoke", "work"]);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    assert_eq!(out.code, 0);
    assert_eq!(
        server.join().unwrap(),
        r#"{"cmd":"revoke","account":"work"}"#
    );
}

#[test]
fn status_lines_in_local_time() {
    let sb = Sandbox::new("status");
    let at = |secs: i64| WallTime::from_unix_millis(secs * 1000);
    let server = serve_once(
        &sb,
        Reply::Status {
            accounts: vec![
                AccountStatus {
                    name: "b".into(),
                    flow: "code".into(),
                    state: TokenStatus::Active {
                        obtained: at(1_795_890_607),
                        expires: at(1_795_894_207),
                    },
                    last_error: None,
                    warning: None,
                },
                AccountStatus {
                    name: "a".into(),
                    flow: "code".into(),
                    state: TokenStatus::NoToken {
                        last_error: Some(LastError {
                            at: at(0),
                            message: "invalid_grant".into(),
                        }),
                    },
                    last_error: None,
                    warning: None,
                },
            ],
        },
    );
    let out = sb.command(&["status"]).env("TZ", "UTC-1").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a: No access token (last error Thu, 01 Jan 1970 01:00:00 +0100: invalid_grant)\n\
         b: Active access token (obtained Sat, 28 Nov 2026 19:30:07 +0100; \
         expires Sat, 28 Nov 2026 20:30:07 +0100)\n"
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.join().unwrap(), r#"{"cmd":"status"}"#);
}

#[test]
fn dump_and_restore_pass_the_text_through() {
    let sb = Sandbox::new("dump");
    let server = serve_once(
        &sb,
        Reply::Dump {
            dump: "pizauth-dump 1\nline two".to_owned().into(),
        },
    );
    let out = sb.run(&["dump"]);
    assert_eq!(out.stdout.as_str(), "pizauth-dump 1\nline two");
    assert_eq!(out.code, 0);
    server.join().unwrap();

    let server = serve_once(&sb, Reply::Done);
    let out = sb.run_with_stdin(&["restore"], b"pizauth-dump 1\n\"x\"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        server.join().unwrap(),
        r#"{"cmd":"restore","dump":"pizauth-dump 1\n\"x\""}"#
    );
}

#[test]
fn restore_refuses_oversized_input_before_connecting() {
    let sb = Sandbox::new("restore-big");
    let big = vec![b'x'; (16 << 20) + 1];
    let out = sb.run_with_stdin(&["restore"], &big);
    out.fails("ERROR the dump on stdin is larger than the limit of 16 MiB\n");
}

#[test]
fn info_works_without_config_or_server() {
    let sb = Sandbox::new("info");
    let out = sb.run(&["info"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expected = format!(
        "pizauth version {}:\n  cache directory: {}\n  config file: {}\nserver not running\n",
        env!("CARGO_PKG_VERSION"),
        sb.runtime_dir().display(),
        sb.path("config").join("pizauth.conf").display()
    );
    assert_eq!(out.stdout.as_str(), expected);

    let out = sb.run(&["info", "-j", "-c", "/elsewhere.conf"]);
    assert_eq!(out.code, 0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["info_format_version"], 2);
    assert_eq!(v["pizauth_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["cache_directory"], sb.runtime_dir().display().to_string());
    assert_eq!(v["config_file"], "/elsewhere.conf");
    assert_eq!(v["executed_as"], "pizauth");
    assert_eq!(v["server_running"], false);
    assert!(v.get("server_info").is_none());
    assert!(!sb.runtime_dir().exists());
}

#[test]
fn info_reports_a_running_server() {
    let sb = Sandbox::new("info-running");
    let server = serve_once(
        &sb,
        Reply::Info {
            http_port: Some(8765),
            https_port: None,
            https_fingerprint: None,
        },
    );
    let out = sb.run(&["info", "-j"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["server_running"], true);
    assert_eq!(
        v["server_info"],
        serde_json::json!({"http_port": "8765", "https_port": "none"})
    );
    assert_eq!(server.join().unwrap(), r#"{"cmd":"info"}"#);

    let server = serve_once(
        &sb,
        Reply::Info {
            http_port: None,
            https_port: Some(8766),
            https_fingerprint: Some("AB:CD".into()),
        },
    );
    let out = sb.run(&["info"]);
    assert!(out.stdout.as_str().ends_with(
        "server running:\n  HTTP port: none\n  HTTPS port: 8766\n  HTTPS public key: AB:CD\n"
    ));
    server.join().unwrap();
}

#[test]
fn server_without_config_file_names_the_path() {
    let sb = Sandbox::new("server-missing");
    sb.run(&["server", "-d", "-c", "/nonexistent/pizauth.conf"])
        .fails("ERROR config file /nonexistent/pizauth.conf not found\n");
    let default = sb.path("config").join("pizauth.conf");
    sb.run(&["server"]).fails(&format!(
        "ERROR config file {} not found\n",
        default.display()
    ));
}

#[test]
fn server_reports_config_errors_with_line_and_column() {
    let sb = Sandbox::new("server-syntax");
    let conf = sb.path("bad.conf");
    std::fs::write(&conf, "account \"a\" {\n    auth_uri = ;\n}\n").unwrap();
    let out = sb.run(&["server", "-d", "-c", conf.to_str().unwrap()]);
    let stderr = out.stderr.as_str();
    assert_eq!(out.code, 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("ERROR {}:2:", conf.display())),
        "{stderr}"
    );
    assert!(stderr.contains("    auth_uri = ;\n"), "{stderr}");
    assert!(stderr.contains('^'), "{stderr}");
    assert!(!sb.runtime_dir().exists());
}
