//! Every command of SPEC.md section 3 against a real server, and the server's life:
//! start-up (`startup_cmd`, `NOTIFY_SOCKET`, a second server, daemonising), reload (by
//! command and by SIGHUP), dump and restore between servers, token events, and the end
//! (`shutdown`, SIGTERM).

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::provider::{Provider, Reply};
use common::{
    NOT_RUNNING, PIZAUTH, Sandbox, UNAVAILABLE, account, browser, config_string, unix_now, wait_for,
};

/// The usage text's first lines.
const USAGE_START: &str = "Usage:\n  pizauth dump\n  pizauth info [-c <config-path>] [-j]\n";

#[test]
fn every_command_against_a_running_server() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("commands");
    // Out of order in the file: status sorts by name.
    sb.write_config(&format!(
        "{}{}",
        account("b", &provider, ""),
        account("a", &provider, "")
    ));
    let config = sb.config_path().display().to_string();
    let runtime = sb.runtime_dir().display().to_string();

    // Nothing runs yet.
    for args in [
        &["status"][..],
        &["show", "a"],
        &["refresh", "a"],
        &["revoke", "a"],
        &["dump"],
        &["reload"],
        &["shutdown"],
    ] {
        sb.run(args).fails(NOT_RUNNING);
    }
    sb.run_with_stdin(&["restore"], b"{}").fails(NOT_RUNNING);
    let version = env!("CARGO_PKG_VERSION");
    sb.run(&["info", "-c", &config]).ok(&format!(
        "pizauth version {version}:\n  cache directory: {runtime}\n  config file: {config}\n\
         server not running\n"
    ));

    sb.start();
    sb.run(&["status"])
        .ok("a: No access token\nb: No access token\n");

    // info -j keeps pizauth 1.1.0's types.
    let info = sb.info_json();
    assert_eq!(info["info_format_version"], 2);
    assert!(info["info_format_version"].is_u64(), "{info}");
    assert_eq!(info["pizauth_version"], version);
    assert_eq!(info["cache_directory"], runtime.as_str());
    assert_eq!(
        info["config_file"],
        sb.path("config").join("pizauth.conf").display().to_string()
    );
    assert_eq!(info["executed_as"], "pizauth");
    assert_eq!(info["server_running"], true);
    let server = &info["server_info"];
    let http_port = server["http_port"].as_str().expect("a string");
    let https_port = server["https_port"].as_str().expect("a string");
    let fingerprint = server["https_pub_key"].as_str().expect("a string");
    for port in [http_port, https_port] {
        assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{info}");
    }
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    sb.run(&["info", "-c", &config]).ok(&format!(
        "pizauth version {version}:\n  cache directory: {runtime}\n  config file: {config}\n\
         server running:\n  HTTP port: {http_port}\n  HTTPS port: {https_port}\n  \
         HTTPS public key: {fingerprint}\n"
    ));

    // Unknown accounts.
    for args in [
        &["show", "x"][..],
        &["show", "-u", "x"],
        &["refresh", "x"],
        &["refresh", "-u", "x"],
        &["revoke", "x"],
    ] {
        sb.run(args).fails("ERROR No account 'x'\n");
    }

    provider.push([Reply::token("fake-a-1", Some("fake-refresh-a"), Some(3600))]);
    sb.authorise("a", "fake-a-1");
    let status = sb.run(&["status"]);
    let lines: Vec<&str> = status.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{status:?}");
    assert!(lines[0].starts_with("a: Active access token (obtained "));
    assert_eq!(lines[1], "b: No access token");

    // refresh: at once, silently.
    provider.push([Reply::token("fake-a-2", None, Some(3600))]);
    sb.run(&["refresh", "a"]).ok("");
    let r = provider.wait_token_requests(2);
    assert_eq!(r[1].field("grant_type"), Some("refresh_token"));
    assert_eq!(r[1].field("refresh_token"), Some("fake-refresh-a"));
    sb.wait_token("a", "fake-a-2");

    // dump holds the tokens (and never a secret), restore puts them back after revoke.
    let dump = sb.run(&["dump"]);
    assert_eq!((dump.code, dump.stderr.as_str()), (0, ""));
    let parsed: serde_json::Value = serde_json::from_str(&dump.stdout).expect("JSON");
    assert_eq!(parsed["format"], "pizauth-dump");
    assert_eq!(parsed["accounts"]["a"]["access_token"], "fake-a-2");
    assert_eq!(parsed["accounts"]["a"]["refresh_token"], "fake-refresh-a");
    assert!(parsed["accounts"].get("b").is_none());
    sb.run(&["revoke", "a"]).ok("");
    sb.run(&["show", "-u", "a"]).fails(UNAVAILABLE);
    let pending = sb.status_of("a");
    assert!(
        pending.starts_with("a: Access token pending authentication (last notification "),
        "{pending}"
    );
    sb.run(&["revoke", "a"]).ok("");
    sb.run(&["status"])
        .ok("a: No access token\nb: No access token\n");
    sb.run_with_stdin(&["restore"], dump.stdout.as_bytes())
        .ok("");
    sb.run(&["show", "a"]).ok("fake-a-2\n");

    sb.run(&["reload"]).ok("");
    sb.run(&["show", "a"]).ok("fake-a-2\n");

    // shutdown: the server exits cleanly and removes its socket.
    assert!(sb.socket().exists());
    sb.run(&["shutdown"]).ok("");
    assert_eq!(sb.wait_server_exit(), Some(0), "exit code");
    assert!(!sb.socket().exists(), "socket removed");
    sb.run(&["status"]).fails(NOT_RUNNING);
    sb.run(&["show", "a"]).fails(NOT_RUNNING);
}

#[test]
fn bad_usage_exits_1_with_the_usage() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("usage");
    sb.write_config(&account("a", &provider, ""));
    sb.start();
    for args in [
        &[][..],
        &["bogus"],
        &["show"],
        &["show", "a", "b"],
        &["status", "extra"],
        &["revoke", "-u", "a"],
        &["server", "-x"],
    ] {
        let run = sb.run(args);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{args:?}");
        assert!(run.stderr.starts_with(USAGE_START), "{args:?}: {run:?}");
    }
    let help = sb.run(&["--help"]);
    assert_eq!((help.code, help.stderr.as_str()), (0, ""));
    assert!(help.stdout.starts_with(USAGE_START));
    // None of that reached the server.
    sb.run(&["status"]).ok("a: No access token\n");
}

/// A start that fails after the control socket is bound (here: the redirect port is
/// taken) says why and leaves no socket file behind.
#[test]
fn a_failed_start_leaves_no_socket_file() {
    let provider = Provider::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("address").port();
    let sb = Sandbox::new("port-taken");
    sb.write_config(&format!(
        "http_listen = \"127.0.0.1:{port}\";\n{}",
        account("a", &provider, "")
    ));
    let config = sb.config_path().display().to_string();
    let out = sb.run(&["server", "-d", "-c", &config]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("http_listen"), "{}", out.stderr);
    assert!(
        sb.runtime_dir().is_dir(),
        "the server got as far as its socket"
    );
    assert!(!sb.socket().exists(), "socket file left behind");
}

#[test]
fn a_second_server_is_refused_and_a_stale_socket_replaced() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("second");
    sb.write_config(&account("a", &provider, ""));
    sb.start();
    let config = sb.config_path().display().to_string();
    let second = sb
        .command(&["server", "-d", "-c", &config])
        .output()
        .expect("second server");
    assert_eq!(second.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&second.stderr),
        "ERROR pizauth authenticator already running\n"
    );
    sb.run(&["status"]).ok("a: No access token\n");

    // A server killed outright leaves its socket file behind; the next one replaces it.
    let mut first = sb.take_server().expect("server");
    first.kill().expect("kill");
    first.wait().expect("wait");
    assert!(sb.socket().exists(), "stale socket left");
    sb.run(&["status"]).fails(NOT_RUNNING);
    sb.start();
    sb.run(&["status"]).ok("a: No access token\n");
}

#[test]
fn token_events_run_one_at_a_time_in_order() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("events");
    let events = sb.path_str("events.log");
    let cmd = format!(
        "echo \"start $PIZAUTH_ACCOUNT $PIZAUTH_EVENT\" >> '{events}'; sleep 0.2; \
         echo \"end $PIZAUTH_ACCOUNT $PIZAUTH_EVENT\" >> '{events}'"
    );
    sb.write_config(&format!(
        "token_event_cmd = \"{}\";\n{}",
        config_string(&cmd),
        account("work", &provider, "")
    ));
    sb.start();
    // new, refreshed and revoked follow each other faster than one command runs.
    provider.push([
        Reply::token("fake-access-1", Some("fake-refresh-1"), Some(3600)),
        Reply::token("fake-access-2", None, Some(3600)),
    ]);
    sb.authorise("work", "fake-access-1");
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-access-2");
    sb.run(&["revoke", "work"]).ok("");
    // new again, then invalidated by a refresh the provider refuses.
    provider.push([
        Reply::token("fake-access-3", Some("fake-refresh-3"), Some(3600)),
        Reply::oauth_error(400, "invalid_grant", "no"),
    ]);
    sb.authorise("work", "fake-access-3");
    sb.run(&["refresh", "work"]).ok("");
    let lines = sb.wait_lines("events.log", 10);
    let mut want = Vec::new();
    for e in [
        "token_new",
        "token_refreshed",
        "token_revoked",
        "token_new",
        "token_invalidated",
    ] {
        want.push(format!("start work {e}"));
        want.push(format!("end work {e}"));
    }
    assert_eq!(lines, want);
}

#[test]
fn dump_restores_into_another_server_only_where_the_account_is_the_same() {
    let provider = Provider::start();
    let config = account("work", &provider, "    client_secret = \"fake-secret\";");
    let mut one = Sandbox::new("dump-one");
    one.write_config(&config);
    one.start();
    provider.push([Reply::token(
        "fake-access",
        Some("fake-refresh"),
        Some(3600),
    )]);
    one.authorise("work", "fake-access");
    let dump = one.run(&["dump"]);
    assert_eq!(dump.code, 0);
    assert!(
        !dump.stdout.contains("fake-secret"),
        "no client secret in a dump"
    );

    // A second server, same config: the token moves over.
    let mut two = Sandbox::new("dump-two");
    two.write_config(&config);
    two.start();
    two.run_with_stdin(&["restore"], dump.stdout.as_bytes())
        .ok("");
    two.run(&["show", "work"]).ok("fake-access\n");
    let status = two.status_of("work");
    let expires = status
        .split("; expires ")
        .nth(1)
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{status}"));
    common::assert_time_near(expires, unix_now() + 3600, 30);

    // Garbage changes nothing and says so in one line.
    for garbage in [
        &b"not a dump"[..],
        b"{\"format\": \"pizauth-dump\", \"version\": 99, \"accounts\": {}}",
        b"{\"format\": \"pizauth-dump\", \"version\": 1, \"accounts\": {\"work\": 1}}",
        b"",
    ] {
        let run = two.run_with_stdin(&["restore"], garbage);
        assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
        assert!(run.stderr.starts_with("ERROR "), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert!(!run.stderr.contains("fake-"), "{run:?}");
    }
    two.run(&["show", "work"]).ok("fake-access\n");

    // A dump whose token has expired since: restored, never handed out, refreshed.
    let mut expired: serde_json::Value = serde_json::from_str(&dump.stdout).expect("JSON");
    let now_ms = unix_now() * 1000;
    expired["accounts"]["work"]["obtained"] = (now_ms - 7_200_000).into();
    expired["accounts"]["work"]["expires"] = (now_ms - 3_600_000).into();
    two.run(&["revoke", "work"]).ok("");
    provider.push([Reply::token("fake-access-2", None, Some(3600))]);
    two.run_with_stdin(&["restore"], expired.to_string().as_bytes())
        .ok("");
    let run = two.run(&["show", "work"]);
    assert!(
        run.stdout == "fake-access-2\n"
            || run.stderr == "ERROR Access token has expired. Refreshing initiated\n"
            || run.stderr
                == "ERROR Access token has expired. Refreshing is in progress but has not yet \
                    succeeded\n",
        "{run:?}"
    );
    two.wait_token("work", "fake-access-2");
    let last = provider.token_requests().pop().expect("a refresh");
    assert_eq!(last.field("refresh_token"), Some("fake-refresh"));
    assert_eq!(last.field("client_secret"), Some("fake-secret"));

    // A server whose account has another client_id restores nothing for it.
    let mut three = Sandbox::new("dump-three");
    three.write_config(&config.replace("client-work", "client-other"));
    three.start();
    three
        .run_with_stdin(&["restore"], dump.stdout.as_bytes())
        .ok("");
    three.run(&["show", "-u", "work"]).fails(UNAVAILABLE);
    // Nor does one that has a token already.
    provider.push([Reply::token("fake-newer", None, Some(3600))]);
    let mut four = Sandbox::new("dump-four");
    four.write_config(&config);
    four.start();
    four.authorise("work", "fake-newer");
    four.run_with_stdin(&["restore"], dump.stdout.as_bytes())
        .ok("");
    four.run(&["show", "work"]).ok("fake-newer\n");
}

#[test]
fn reload_keeps_unchanged_accounts_only() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("reload");
    let (same, changed, removed) = (
        account("same", &provider, "    refresh_retry = 30s;"),
        account("changed", &provider, ""),
        account("removed", &provider, ""),
    );
    sb.write_config(&format!("{same}{changed}{removed}"));
    sb.start();
    for name in ["same", "changed", "removed"] {
        provider.push([Reply::token(&format!("fake-{name}"), None, Some(3600))]);
        sb.authorise(name, &format!("fake-{name}"));
    }

    // Timing options are not security-relevant; client_id is.
    let same2 = same.replace("30s", "20s");
    let changed2 = changed.replace("client-changed", "client-changed-2");
    let added = account("added", &provider, "");
    sb.write_config(&format!("{same2}{changed2}{added}"));
    sb.run(&["reload"]).ok("");
    sb.run(&["show", "same"]).ok("fake-same\n");
    sb.run(&["show", "-u", "changed"]).fails(UNAVAILABLE);
    sb.run(&["show", "removed"])
        .fails("ERROR No account 'removed'\n");
    sb.run(&["show", "-u", "added"]).fails(UNAVAILABLE);

    // A broken file: exit 1 with file:line:col, the running config stays.
    let bad = account("bad", &provider, "    bogus = \"x\";");
    let broken = format!("{same2}{changed2}{added}{bad}");
    sb.write_config(&broken);
    let run = sb.run(&["reload"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    let line = 1 + broken
        .lines()
        .position(|l| l.contains("bogus"))
        .expect("the bad line");
    let location = format!("ERROR {}:{line}:5: ", sb.config_path().display());
    assert!(run.stderr.starts_with(&location), "{run:?}");
    assert!(
        run.stderr
            .contains(":5: unknown option 'bogus' in account \"bad\"\n"),
        "{run:?}"
    );
    sb.run(&["show", "same"]).ok("fake-same\n");
    sb.run(&["show", "-u", "added"]).fails(UNAVAILABLE);
    sb.run(&["show", "bad"]).fails("ERROR No account 'bad'\n");

    // A file that has gone: the same.
    std::fs::remove_file(sb.config_path()).expect("remove the config");
    let run = sb.run(&["reload"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    assert!(
        run.stderr.starts_with("ERROR ")
            && run.stderr.contains(&sb.config_path().display().to_string()),
        "{run:?}"
    );
    sb.run(&["show", "same"]).ok("fake-same\n");

    // A FIFO in its place: refused at once (the loop never waits for a writer), nothing
    // changes.
    let path = std::ffi::CString::new(sb.config_path().display().to_string()).expect("path");
    // SAFETY: mkfifo on a NUL-terminated path of the test's own directory.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    let run = sb.run(&["reload"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{run:?}");
    assert!(
        run.stderr.starts_with("ERROR config file ")
            && run
                .stderr
                .contains("is not a regular file, so it cannot be read again"),
        "{run:?}"
    );
    sb.run(&["show", "same"]).ok("fake-same\n");
    std::fs::remove_file(sb.config_path()).expect("remove the FIFO");

    // SIGHUP reloads too.
    sb.write_config(&same2);
    sb.signal(libc::SIGHUP);
    wait_for("SIGHUP to drop `added`", common::WAIT, || {
        (sb.run(&["show", "added"]).stderr == "ERROR No account 'added'\n").then_some(())
    });
    sb.run(&["show", "same"]).ok("fake-same\n");
    sb.run(&["status"])
        .ok(&format!("{}\n", sb.status_of("same")));
}

#[test]
fn startup_cmd_notify_socket_and_sigterm() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("lifecycle");
    let notify = sb.path("notify.sock");
    let listener = UnixDatagram::bind(&notify).expect("bind the notify socket");
    listener
        .set_read_timeout(Some(common::WAIT))
        .expect("timeout");
    sb.set_env("NOTIFY_SOCKET", &notify.display().to_string());
    let out = sb.path_str("startup.out");
    let cmd = format!(
        "{PIZAUTH} status > '{out}.tmp' 2>&1; echo \"exit $? ${{NOTIFY_SOCKET:-unset}}\" >> \
         '{out}.tmp'; mv '{out}.tmp' '{out}'"
    );
    sb.write_config(&format!(
        "startup_cmd = \"{}\";\n{}",
        config_string(&cmd),
        account("a", &provider, "")
    ));
    sb.start();
    let mut buf = [0u8; 64];
    let n = listener
        .recv(&mut buf)
        .expect("READY=1 within the deadline");
    assert_eq!(&buf[..n], b"READY=1");
    // startup_cmd ran once the socket accepted requests, without NOTIFY_SOCKET.
    let got = wait_for("startup_cmd's output", common::WAIT, || {
        let s = sb.read("startup.out");
        (!s.is_empty()).then_some(s)
    });
    assert_eq!(got, "a: No access token\nexit 0 unset\n");

    sb.signal(libc::SIGTERM);
    assert_eq!(sb.wait_server_exit(), Some(0));
    assert!(!sb.socket().exists(), "socket removed");
    sb.run(&["status"]).fails(NOT_RUNNING);
}

/// SPEC.md section 6: commands run through `$SHELL -c` (`/bin/sh` when `SHELL` is unset),
/// with standard input closed.
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
#[test]
fn commands_run_through_the_users_shell_with_nothing_on_stdin() {
    let provider = Provider::start();
    // A SHELL that notes its use, then hands over to sh.
    let mut sb = Sandbox::new("shell");
    let shell = sb.path_str("myshell");
    let log = sb.path_str("shell.log");
    std::fs::write(
        &shell,
        format!("#!/bin/sh\necho \"$1\" >> '{log}'\nexec /bin/sh \"$@\"\n"),
    )
    .expect("write the shell");
    std::fs::set_permissions(&shell, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    sb.set_env("SHELL", &shell);
    let out = sb.path_str("stdin.out");
    let cmd = format!("readlink /proc/self/fd/0 > '{out}.tmp'; mv '{out}.tmp' '{out}'");
    let config = format!(
        "startup_cmd = \"{}\";\n{}",
        config_string(&cmd),
        account("a", &provider, "")
    );
    sb.write_config(&config);
    // The server's own stdin is a file: the command must not get it.
    let stdin = std::fs::File::open(sb.config_path()).expect("open the config");
    sb.start_with_stdin(stdin.into());
    let got = wait_for("startup_cmd's output", common::WAIT, || {
        let s = sb.read("stdin.out");
        (!s.is_empty()).then_some(s)
    });
    assert_eq!(got, "/dev/null\n");
    assert_eq!(sb.read("shell.log"), "-c\n");

    // No SHELL at all: /bin/sh runs it (the shell running the command is the one whose
    // executable `$$` names).
    let mut sb = Sandbox::new("no-shell");
    sb.unset_env("SHELL");
    let out = sb.path_str("ran.out");
    let cmd = format!("readlink /proc/$$/exe > '{out}.tmp'; mv '{out}.tmp' '{out}'");
    sb.write_config(&format!(
        "startup_cmd = \"{}\";\n{}",
        config_string(&cmd),
        account("a", &provider, "")
    ));
    sb.start();
    let got = wait_for("startup_cmd's output", common::WAIT, || {
        let s = sb.read("ran.out");
        (!s.is_empty()).then_some(s)
    });
    let sh = std::fs::canonicalize("/bin/sh").expect("/bin/sh");
    assert_eq!(got, format!("{}\n", sh.display()));
}

/// SPEC.md section 2: the server touches its socket file (every 6 hours; here, as the
/// test tunable says, every 300 ms) so that runtime-directory cleaners spare it.
#[test]
fn the_socket_file_is_touched_while_the_server_runs() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("touch");
    sb.set_env("PIZAUTH_TEST_TUNABLES", "touch_every_ms=300");
    sb.write_config(&account("a", &provider, ""));
    sb.start();
    let socket = sb.socket();
    let old = std::process::Command::new("touch")
        .args(["-d", "@1000000000"])
        .arg(&socket)
        .status()
        .expect("run touch");
    assert!(old.success());
    let modified = || {
        std::fs::symlink_metadata(&socket)
            .and_then(|m| m.modified())
            .expect("socket metadata")
    };
    let year_2001 = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    assert_eq!(modified(), year_2001);
    wait_for("the socket to be touched", common::WAIT, || {
        (modified() > year_2001 + Duration::from_secs(3600)).then_some(())
    });
    sb.run(&["status"]).ok("a: No access token\n");
}

#[test]
fn without_d_the_server_daemonises() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("daemon");
    sb.write_config(&account("a", &provider, ""));
    sb.expect_daemon();
    let started = Instant::now();
    // A relative config path: the daemon leaves the directory, reload must still work.
    let mut parent = sb
        .command(&["server", "-c", "pizauth.conf"])
        .current_dir(&sb.dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let status = wait_for("the parent to return", common::WAIT, || {
        parent.try_wait().expect("try_wait")
    });
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(10));
    wait_for("the daemon to answer", common::WAIT, || {
        (sb.run(&["status"]).code == 0).then_some(())
    });
    sb.run(&["status"]).ok("a: No access token\n");
    // It works like any server: a whole authorisation.
    provider.push([Reply::token("fake-access", None, Some(3600))]);
    let url = sb.auth_url("a");
    let visit = browser::visit(&url, None).expect("browser");
    assert_eq!(visit.page.status, 200);
    sb.wait_token("a", "fake-access");
    sb.write_config(&format!(
        "{}{}",
        account("a", &provider, ""),
        account("b", &provider, "")
    ));
    sb.run(&["reload"]).ok("");
    sb.run(&["show", "a"]).ok("fake-access\n");
    sb.run(&["show", "-u", "b"]).fails(UNAVAILABLE);
    sb.run(&["shutdown"]).ok("");
    wait_for("the daemon to go", common::WAIT, || {
        (!sb.socket().exists()).then_some(())
    });
    sb.run(&["status"]).fails(NOT_RUNNING);
}

#[test]
fn harness_parses_rfc2822_dates() {
    use common::parse_rfc2822_utc;
    assert_eq!(
        parse_rfc2822_utc("Sat, 28 Nov 2026 18:30:07 +0000"),
        Some(1_795_890_607)
    );
    assert_eq!(
        parse_rfc2822_utc("Thu, 01 Jan 1970 00:00:00 +0000"),
        Some(0)
    );
    assert_eq!(
        parse_rfc2822_utc("Tue, 29 Feb 2000 00:00:00 +0000"),
        Some(951_782_400)
    );
    assert_eq!(parse_rfc2822_utc("Fri, 28 Nov 2026 18:30:07 +0000"), None);
    assert_eq!(parse_rfc2822_utc("Sat, 28 Nov 2026 18:30:07 +0100"), None);
}

#[test]
fn runtime_directory_and_socket_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let provider = Provider::start();
    let mut sb = Sandbox::new("private");
    // Without $XDG_RUNTIME_DIR: ${TMPDIR}/runtime-$USER/pizauth, made level by level.
    sb.use_tmpdir_runtime();
    std::fs::create_dir(sb.path("tmp")).expect("tmp");
    sb.write_config(&account("a", &provider, ""));
    sb.start();
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let runtime = sb.runtime_dir();
    assert_eq!(mode(&runtime), 0o700);
    assert_eq!(mode(runtime.parent().expect("runtime-tester")), 0o700);
    assert_eq!(mode(&sb.socket()), 0o600);
    let info = sb.info_json();
    assert_eq!(info["cache_directory"], runtime.display().to_string());
    sb.run(&["shutdown"]).ok("");
    assert_eq!(sb.wait_server_exit(), Some(0));
    assert!(!sb.socket().exists());
}

#[test]
fn reload_drops_work_in_flight_for_removed_accounts() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("reload-in-flight");
    let events = sb.path("events.log");
    let keep = account("keep", &provider, "");
    let gone = account("gone", &provider, "");
    let globals = format!(
        "token_event_cmd = \"{}\";\n",
        common::append_cmd(&events, "$PIZAUTH_ACCOUNT|$PIZAUTH_EVENT")
    );
    sb.write_config(&format!("{globals}{keep}{gone}"));
    sb.start();
    provider.push([
        Reply::token("fake-keep", Some("fake-refresh-keep"), Some(3600)),
        Reply::token("fake-gone", Some("fake-refresh-gone"), Some(3600)),
        // gone's refresh never gets an answer.
        Reply::Hang,
    ]);
    sb.authorise("keep", "fake-keep");
    sb.authorise("gone", "fake-gone");
    sb.run(&["refresh", "gone"]).ok("");
    provider.wait_token_requests(3);
    // gone is removed while its refresh is in flight.
    sb.write_config(&format!("{globals}{keep}"));
    sb.run(&["reload"]).ok("");
    sb.run(&["show", "gone"]).fails("ERROR No account 'gone'\n");
    // Back again: a new account, with no token, that works as any other.
    sb.write_config(&format!("{globals}{keep}{gone}"));
    sb.run(&["reload"]).ok("");
    sb.run(&["show", "-u", "gone"]).fails(UNAVAILABLE);
    provider.push([Reply::token("fake-gone-2", None, Some(3600))]);
    sb.authorise("gone", "fake-gone-2");
    sb.run(&["show", "keep"]).ok("fake-keep\n");
    assert_eq!(
        sb.wait_lines("events.log", 3),
        ["keep|token_new", "gone|token_new", "gone|token_new"]
    );
}

#[test]
fn sigint_shuts_down_cleanly_too() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("sigint");
    sb.write_config(&account("a", &provider, ""));
    sb.start();
    sb.signal(libc::SIGINT);
    assert_eq!(sb.wait_server_exit(), Some(0));
    assert!(!sb.socket().exists(), "socket removed");
    sb.run(&["status"]).fails(NOT_RUNNING);
}
