//! Fault injection, end to end: a token endpoint that refuses connections, a name that
//! does not resolve, certificates for another name or signed by nobody, a provider that
//! never answers, broken and oversized transfers, `429` with `Retry-After`, notification
//! commands that never end or flood their output, a thousand idle connections on the
//! redirect listener, a thousand control clients at once, and a control client that
//! says nothing.
//!
//! Each test has two accounts: `work`, which meets the fault, and `other`, which does
//! not. Whatever happens to `work`, the server must go on serving (`status` answers and
//! `show other` prints its token) and `work` must keep the token it should keep.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::provider::{Provider, Reply};
use common::tls::{TestCa, self_signed};
use common::{PROCESSING_PAGE, Sandbox, UNAVAILABLE, append_cmd, browser, config_string, wait_for};

/// A sandbox, not started, with accounts `other` (everything at `healthy`) and `work`
/// (authorising at `healthy`, tokens from `work_token_uri`). `globals` come first; errors
/// and token events go to `errors.log` and `events.log`.
fn prepare(name: &str, healthy: &Provider, work_token_uri: &str, globals: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    let account = |name: &str, token_uri: &str| {
        format!(
            "account \"{name}\" {{\n    auth_uri = \"{}\";\n    token_uri = \"{}\";\n    \
             client_id = \"client-{name}\";\n}}\n",
            healthy.url("/authorize"),
            config_string(token_uri),
        )
    };
    sb.write_config(&format!(
        "{globals}error_notify_cmd = \"{}\";\ntoken_event_cmd = \"{}\";\n{}{}",
        append_cmd(&sb.path("errors.log"), "$PIZAUTH_ACCOUNT|$PIZAUTH_MSG"),
        append_cmd(&sb.path("events.log"), "$PIZAUTH_ACCOUNT|$PIZAUTH_EVENT"),
        account("other", &healthy.url("/token")),
        account("work", work_token_uri),
    ));
    sb
}

/// Puts `globals` at the start of the sandbox's config.
fn prepend(sb: &Sandbox, globals: &str) {
    let config = sb.read("pizauth.conf");
    sb.write_config(&format!("{globals}{config}"));
}

/// Starts the server and authorises `other` (token `fake-other`).
fn start(sb: &mut Sandbox, healthy: &Provider) {
    sb.start();
    healthy.push([Reply::token("fake-other", None, Some(3600))]);
    sb.authorise("other", "fake-other");
}

/// [`prepare`] and [`start`], with `PIZAUTH_TEST_TUNABLES` set to `tunables`.
fn serving(
    name: &str,
    healthy: &Provider,
    work_token_uri: &str,
    globals: &str,
    tunables: &str,
) -> Sandbox {
    let mut sb = prepare(name, healthy, work_token_uri, globals);
    sb.set_env("PIZAUTH_TEST_TUNABLES", tunables);
    start(&mut sb, healthy);
    sb
}

/// Authorises `work` through `token_endpoint`: access token `fake-work-1`, refresh token
/// `fake-refresh-1`, valid for an hour.
fn authorise_work(sb: &Sandbox, token_endpoint: &Provider) {
    token_endpoint.push([Reply::token(
        "fake-work-1",
        Some("fake-refresh-1"),
        Some(3600),
    )]);
    sb.authorise("work", "fake-work-1");
}

/// The server still serves: `status` answers for both accounts, `other` has its token,
/// and `work` has `work` (if given).
#[track_caller]
fn still_serving(sb: &Sandbox, work: Option<&str>) {
    let status = sb.run(&["status"]);
    assert_eq!((status.code, status.stderr.as_str()), (0, ""), "{status:?}");
    let lines: Vec<&str> = status.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{status:?}");
    assert!(
        lines[0].starts_with("other: Active access token (obtained "),
        "{status:?}"
    );
    assert!(lines[1].starts_with("work: "), "{status:?}");
    sb.run(&["show", "other"]).ok("fake-other\n");
    if let Some(token) = work {
        assert!(
            lines[1].starts_with("work: Active access token (obtained "),
            "{status:?}"
        );
        sb.run(&["show", "work"]).ok(&format!("{token}\n"));
    }
}

/// Waits until the server's log contains `needle`.
fn wait_log(sb: &Sandbox, needle: &str) {
    wait_for(&format!("{needle:?} in the log"), common::WAIT, || {
        sb.log().contains(needle).then_some(())
    });
}

#[test]
fn refused_connections_during_a_refresh_keep_the_token_and_are_retried() {
    let healthy = Provider::start();
    let port = common::closed_port();
    let token = Provider::start_at(port);
    let sb = serving(
        "refused",
        &healthy,
        &token.url("/token"),
        "refresh_retry = 1s;\n",
        "",
    );
    authorise_work(&sb, &token);
    // The token endpoint goes away: connections to it are refused.
    drop(token);
    sb.run(&["refresh", "work"]).ok("");
    let refused = format!("work: refreshing failed (cannot connect to 127.0.0.1:{port}: ");
    wait_log(&sb, &refused);
    assert!(sb.log().contains("Connection refused"), "{}", sb.log());
    still_serving(&sb, Some("fake-work-1"));
    // Retried every refresh_retry, the token kept all along.
    wait_log(&sb, "attempt 2 in a row; will retry");
    still_serving(&sb, Some("fake-work-1"));
    // The endpoint comes back: the next try refreshes with the same refresh token.
    let back = Provider::start_at(port);
    back.push([Reply::token("fake-work-2", None, Some(3600))]);
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-work-2");
    let r = back.token_requests();
    assert_eq!(r[0].field("grant_type"), Some("refresh_token"));
    assert_eq!(r[0].field("refresh_token"), Some("fake-refresh-1"));
    still_serving(&sb, Some("fake-work-2"));
    assert_eq!(sb.read("errors.log"), "");
    assert_eq!(
        sb.wait_lines("events.log", 3),
        ["other|token_new", "work|token_new", "work|token_refreshed"]
    );
}

#[test]
fn a_token_endpoint_whose_name_does_not_resolve_fails_in_bounded_time() {
    let healthy = Provider::start();
    let sb = serving(
        "unresolvable",
        &healthy,
        "http://does-not-exist.invalid/token",
        "",
        "exchange_retry_ms=100,http_timeout_ms=2000",
    );
    let url = sb.auth_url("work");
    let visit = browser::visit(&url, None).expect("the browser flow");
    assert_eq!(
        (visit.page.status, visit.page.body.as_str()),
        (200, PROCESSING_PAGE)
    );
    // Meanwhile (ten tries, each bounded by the resolver's failure or the HTTP timeout)
    // everything else goes on.
    still_serving(&sb, None);
    let errors = sb.wait_lines("errors.log", 1);
    let why = "exchanging the authorisation code failed after 10 tries: cannot resolve \
               does-not-exist.invalid: ";
    assert!(errors[0].starts_with(&format!("work|{why}")), "{errors:?}");
    let status = sb.status_of("work");
    assert!(
        status.starts_with("work: No access token (last error ") && status.contains(why),
        "{status}"
    );
    still_serving(&sb, None);
    sb.run(&["show", "-u", "work"]).fails(UNAVAILABLE);
    assert_eq!(sb.lines("events.log"), ["other|token_new"]);
}

/// Certificates the token endpoint must not be trusted with: one for another name,
/// signed by a CA pizauth trusts, and a self-signed one. Neither gets a request through,
/// and the token is kept until the real endpoint is back.
#[test]
fn a_certificate_for_another_name_or_a_self_signed_one_is_refused_and_the_token_kept() {
    let ca = TestCa::new("faults");
    let healthy = Provider::start();
    let port = common::closed_port();
    let good = Provider::start_tls_at(port, ca.server_config.clone());
    // Each try is asked for with `refresh`: nothing retries behind the test's back.
    let mut sb = prepare(
        "tls-faults",
        &healthy,
        &good.url("/token"),
        "refresh_retry = 1h;\n",
    );
    std::fs::write(sb.path("ca.pem"), &ca.ca_pem).expect("write the CA");
    let bundle = sb.path_str("ca.pem");
    sb.set_env("SSL_CERT_FILE", &bundle);
    start(&mut sb, &healthy);
    authorise_work(&sb, &good);
    drop(good);

    let wrong_name = Provider::start_tls_at(port, ca.leaf_for(&["wrong.example"]));
    wrong_name.set_fallback(Reply::token("fake-stolen", None, Some(3600)));
    sb.run(&["refresh", "work"]).ok("");
    wrong_name.wait_connections(1);
    wait_log(
        &sb,
        &format!(
            "work: refreshing failed (TLS with 127.0.0.1:{port} failed: invalid peer certificate: "
        ),
    );
    still_serving(&sb, Some("fake-work-1"));
    drop(wrong_name);

    let unsigned = Provider::start_tls_at(port, self_signed(&["127.0.0.1", "localhost"]));
    unsigned.set_fallback(Reply::token("fake-stolen", None, Some(3600)));
    sb.run(&["refresh", "work"]).ok("");
    unsigned.wait_connections(1);
    wait_log(&sb, "invalid peer certificate: UnknownIssuer");
    still_serving(&sb, Some("fake-work-1"));
    drop(unsigned);

    let log = sb.log();
    assert!(
        log.contains("certificate not valid for name") || log.contains("NotValidForName"),
        "the log says why the first certificate was refused:\n{log}"
    );
    let back = Provider::start_tls_at(port, ca.server_config.clone());
    back.push([Reply::token("fake-work-2", None, Some(3600))]);
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-work-2");
    assert_eq!(
        back.token_requests()[0].field("refresh_token"),
        Some("fake-refresh-1")
    );
    still_serving(&sb, Some("fake-work-2"));
    assert_eq!(sb.read("errors.log"), "");
}

#[test]
fn a_provider_that_accepts_and_never_answers_times_out_and_the_token_is_kept() {
    let healthy = Provider::start();
    let token = Provider::start();
    let sb = serving(
        "never-answers",
        &healthy,
        &token.url("/token"),
        "refresh_retry = 1s;\n",
        "http_timeout_ms=1000",
    );
    authorise_work(&sb, &token);
    token.push([Reply::Hang, Reply::token("fake-work-2", None, Some(3600))]);
    sb.run(&["refresh", "work"]).ok("");
    token.wait_token_requests(2);
    // The request hangs: everything else goes on, and `work` still has its token.
    still_serving(&sb, Some("fake-work-1"));
    wait_log(
        &sb,
        "work: refreshing failed (no answer from the token endpoint within 1 s), attempt 1",
    );
    let r = token.wait_token_requests(3);
    let gap = r[2].at - r[1].at;
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    sb.wait_token("work", "fake-work-2");
    still_serving(&sb, Some("fake-work-2"));
    assert_eq!(sb.read("errors.log"), "");
}

/// `work` authorised (`fake-work-1`), then a refresh that meets `fault`: the log says
/// `why`, the token is kept, and the next try (asked for at once: `refresh_retry` is an
/// hour here, so that nothing races the checks) gets `fake-work-2`.
fn transfer_fault(name: &str, fault: Reply, why: &str) {
    let healthy = Provider::start();
    let token = Provider::start();
    let sb = serving(
        name,
        &healthy,
        &token.url("/token"),
        "refresh_retry = 1h;\n",
        "",
    );
    authorise_work(&sb, &token);
    token.push([fault, Reply::token("fake-work-2", None, Some(3600))]);
    sb.run(&["refresh", "work"]).ok("");
    wait_log(&sb, "work: refreshing failed (");
    let log = sb.log();
    let line = log
        .lines()
        .find(|l| l.contains("work: refreshing failed ("))
        .unwrap_or_default();
    assert!(
        line.contains(why) && line.ends_with("attempt 1 in a row; will retry"),
        "{line}"
    );
    still_serving(&sb, Some("fake-work-1"));
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-work-2");
    let r = token.token_requests();
    assert_eq!(r.len(), 3, "{r:#?}");
    assert_eq!(r[2].field("refresh_token"), Some("fake-refresh-1"));
    still_serving(&sb, Some("fake-work-2"));
    assert_eq!(sb.read("errors.log"), "");
    assert!(!sb.log().contains("fake-"), "a token reached the log");
}

#[test]
fn a_response_cut_off_mid_body_keeps_the_token() {
    transfer_fault(
        "mid-body",
        Reply::CloseMidBody,
        "connection closed after 23 of 200 body bytes",
    );
}

#[test]
fn a_truncated_chunked_body_keeps_the_token() {
    let truncated = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                     10\r\n{\"access_token\":\r\n\
                     20\r\n \"fake-truncated\", \"token_t";
    transfer_fault(
        "truncated-chunked",
        Reply::Raw(truncated.as_bytes().to_vec()),
        "connection closed before the end of the chunked body",
    );
}

/// Ten megabytes of a token response: refused as too large (whether announced by
/// `Content-Length` or not), and the token kept.
#[test]
fn ten_megabytes_with_a_length_are_refused_and_the_token_kept() {
    let mut body =
        String::from("{\"access_token\": \"fake-huge\", \"token_type\": \"Bearer\", \"x\": \"");
    body.push_str(&"x".repeat(10 << 20));
    body.push_str("\"}");
    transfer_fault("ten-megabytes", Reply::json(200, &body), "larger than");
}

#[test]
fn ten_megabytes_without_a_length_are_refused_and_the_token_kept() {
    let mut raw = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n\
                    {\"access_token\": \"fake-huge\", \"token_type\": \"Bearer\", \"x\": \""
        .to_vec();
    raw.extend(std::iter::repeat_n(b'x', 10 << 20));
    raw.extend_from_slice(b"\"}");
    transfer_fault("ten-megabytes-eof", Reply::Raw(raw), "larger than");
}

/// HTTP/1.0 without `Content-Length`: the body runs to the close, and is a token.
#[test]
fn http_1_0_without_a_length_is_read_to_the_close() {
    let healthy = Provider::start();
    let token = Provider::start();
    let sb = serving("http10", &healthy, &token.url("/token"), "", "");
    authorise_work(&sb, &token);
    token.push([Reply::Raw(
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n\
          {\"access_token\": \"fake-work-2\", \"token_type\": \"bearer\", \"expires_in\": 3600}"
            .to_vec(),
    )]);
    let connections = token.connections();
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-work-2");
    // The connection ended with the body: the next refresh needs a new one.
    token.push([Reply::token("fake-work-3", None, Some(3600))]);
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-work-3");
    assert_eq!(token.connections(), connections + 2);
    assert_eq!(
        token.token_requests()[2].field("refresh_token"),
        Some("fake-refresh-1")
    );
    still_serving(&sb, Some("fake-work-3"));
    assert_eq!(sb.read("errors.log"), "");
}

/// `429` with `Retry-After: 2`: the token is kept and the retry waits the two seconds
/// the provider asked for, not just `refresh_retry` (1 s).
#[test]
fn http_429_with_retry_after_delays_the_retry() {
    let healthy = Provider::start();
    let token = Provider::start();
    let sb = serving(
        "retry-after",
        &healthy,
        &token.url("/token"),
        "refresh_retry = 1s;\n",
        "",
    );
    authorise_work(&sb, &token);
    token.push([
        Reply::Respond {
            status: 429,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Retry-After".into(), "2".into()),
            ],
            body: "{\"error\": \"slow down\"}".into(),
        },
        Reply::token("fake-work-2", None, Some(3600)),
    ]);
    sb.run(&["refresh", "work"]).ok("");
    let r = token.wait_token_requests(2);
    wait_log(
        &sb,
        "work: refreshing failed (token endpoint answered HTTP 429",
    );
    still_serving(&sb, Some("fake-work-1"));
    // No request before the two seconds are up; refresh_retry alone would retry after one.
    let r2 = token.wait_token_requests(3);
    let gap = r2[2].at - r[1].at;
    assert!(
        gap >= Duration::from_millis(1950) && gap < Duration::from_millis(3500),
        "retried after {gap:?}"
    );
    sb.wait_token("work", "fake-work-2");
    still_serving(&sb, Some("fake-work-2"));
    assert_eq!(sb.read("errors.log"), "");
}

/// An `auth_notify_cmd` that never exits is killed (with whatever it started) after the
/// notification timeout; the next notifications still run, and the server never waits.
/// Also a regression test: a stuck notification outlived the server that started it.
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
#[test]
fn a_notification_that_never_exits_is_killed_and_later_ones_still_run() {
    let healthy = Provider::start();
    let mut sb = prepare("notify-hangs", &healthy, &healthy.url("/token"), "");
    let notify = sb.path("notify.log");
    // The sleep's argument names this run's stuck commands; `never` must never be written.
    let seconds = format!("613.{}", std::process::id());
    let stuck = || common::processes_running(&["sleep", &seconds]);
    let cmd = format!(
        "printf '%s\\n' \"$PIZAUTH_ACCOUNT\" >> '{0}'; sleep {seconds}; echo never >> '{0}'",
        notify.display()
    );
    prepend(
        &sb,
        &format!(
            "auth_notify_cmd = \"{}\";\nauth_notify_interval = 1s;\n",
            config_string(&cmd)
        ),
    );
    sb.set_env("PIZAUTH_TEST_TUNABLES", "notify_timeout_ms=500");
    start(&mut sb, &healthy);
    let _ = sb.auth_url("work");
    // Notified at once and every second after, each stuck notification killed after
    // half a second.
    wait_for("a second notification of work", common::WAIT, || {
        let text = std::fs::read_to_string(&notify).unwrap_or_default();
        (text.lines().filter(|l| *l == "work").count() >= 2).then_some(())
    });
    wait_log(&sb, "timed out: killing it");
    wait_log(&sb, "notification command was killed by signal 9");
    still_serving(&sb, None);
    assert!(
        sb.status_of("work")
            .starts_with("work: Access token pending authentication (last notification "),
        "{}",
        sb.status_of("work")
    );
    // At most one stuck at a time (a second apart, each killed within half a second):
    // the kill reached the shell's child too.
    assert!(stuck().len() <= 1, "{:?}", stuck());
    // The server stops while a notification is stuck: it does not outlive the server.
    wait_for("a stuck notification", common::WAIT, || {
        (!stuck().is_empty()).then_some(())
    });
    sb.run(&["shutdown"]).ok("");
    assert_eq!(sb.wait_server_exit(), Some(0));
    wait_for("no stuck notification left", common::WAIT, || {
        stuck().is_empty().then_some(())
    });
    let text = std::fs::read_to_string(&notify).unwrap_or_default();
    assert!(!text.contains("never"), "{text}");
}

/// Notification commands' standard output is `/dev/null`: 100 MB of it costs nothing.
#[test]
fn a_notification_that_writes_100_mb_to_stdout_does_no_harm() {
    let healthy = Provider::start();
    let mut sb = prepare("notify-floods", &healthy, &healthy.url("/token"), "");
    let notify = sb.path("notify.log");
    let cmd = format!(
        "head -c 100000000 /dev/zero; printf '%s\\n' \"$PIZAUTH_ACCOUNT done $?\" >> '{}'",
        notify.display()
    );
    prepend(
        &sb,
        &format!("auth_notify_cmd = \"{}\";\n", config_string(&cmd)),
    );
    start(&mut sb, &healthy);
    let _ = sb.auth_url("work");
    wait_for("the notification to finish", common::WAIT, || {
        let text = std::fs::read_to_string(&notify).unwrap_or_default();
        text.lines().any(|l| l == "work done 0").then_some(())
    });
    still_serving(&sb, None);
    let log = sb.log();
    assert!(
        log.len() < 256 * 1024,
        "the log grew to {} bytes",
        log.len()
    );
    assert!(!log.contains("timed out"), "{log}");
    assert!(!log.contains("notification command"), "{log}");
}

/// A thousand idle connections on the redirect listener (slowloris): the server keeps
/// at most 128, dropping the oldest, and a real browser's redirect still goes through.
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
#[test]
fn a_thousand_idle_redirect_connections_do_not_lock_the_browser_out() {
    common::raise_fd_limit();
    let healthy = Provider::start();
    let mut sb = serving("slowloris", &healthy, &healthy.url("/token"), "", "");
    let port = sb.http_port();
    let url = sb.auth_url("work");
    let before = sb.server_fds();
    let flood = Instant::now();
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    // Half a request on each, as slowloris does.
    for s in &mut idle {
        let _ = s.write_all(b"GET /?state=");
    }
    still_serving(&sb, None);
    let during = sb.server_fds();
    assert!(
        during <= before + 128 + 2,
        "{during} descriptors open (from {before})"
    );
    healthy.push([Reply::token("fake-work", None, Some(3600))]);
    let visit = browser::visit(&url, None).expect("the browser flow");
    assert_eq!(
        (visit.page.status, visit.page.body.as_str()),
        (200, PROCESSING_PAGE)
    );
    sb.wait_token("work", "fake-work");
    // Regression: with the listen queue of 128 that std gives, the kernel dropped
    // connections of the burst (the browser's among them) and they retried a second
    // later, again and again: the flood took five seconds.
    let took = flood.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the flood and the browser took {took:?}"
    );
    // Most idle connections were closed by the server to make room.
    let mut closed = 0;
    for s in &mut idle {
        s.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => (),
            _ => closed += 1,
        }
    }
    assert!(
        closed >= 1000 - 128,
        "only {closed} idle connections closed"
    );
    drop(idle);
    still_serving(&sb, Some("fake-work"));
}

/// A thousand control clients at once, each on its own thread: every one gets the token.
#[test]
fn a_thousand_concurrent_control_clients_are_all_answered() {
    common::raise_fd_limit();
    let healthy = Provider::start();
    let sb = serving("crowd-1000", &healthy, &healthy.url("/token"), "", "");
    let socket = sb.socket();
    let start = Arc::new(Barrier::new(1000));
    let threads: Vec<_> = (0..1000)
        .map(|_| {
            let socket = socket.clone();
            let start = Arc::clone(&start);
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || -> Result<String, String> {
                    start.wait();
                    let mut s = UnixStream::connect(&socket).map_err(|e| e.to_string())?;
                    s.set_read_timeout(Some(common::WAIT))
                        .map_err(|e| e.to_string())?;
                    s.write_all(br#"{"cmd":"show","account":"other","with_url":true}"#)
                        .map_err(|e| e.to_string())?;
                    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
                    let mut reply = String::new();
                    s.read_to_string(&mut reply).map_err(|e| e.to_string())?;
                    Ok(reply)
                })
                .expect("spawn a client")
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let reply = t.join().expect("client thread").expect("client");
        let parsed: serde_json::Value = serde_json::from_str(&reply).expect("JSON");
        assert_eq!(
            (parsed["reply"].as_str(), parsed["token"].as_str()),
            (Some("token"), Some("fake-other")),
            "client {i}: {reply}"
        );
    }
    still_serving(&sb, None);
}

/// A control client that connects and says nothing is closed at the control timeout;
/// meanwhile everyone else is served at once.
#[test]
fn a_silent_control_client_is_closed_at_the_timeout_and_holds_nobody_up() {
    let healthy = Provider::start();
    let sb = serving(
        "silent",
        &healthy,
        &healthy.url("/token"),
        "",
        "control_timeout_ms=1000",
    );
    let mut silent = UnixStream::connect(sb.socket()).expect("connect");
    silent
        .set_read_timeout(Some(common::WAIT))
        .expect("timeout");
    let connected = Instant::now();
    still_serving(&sb, None);
    sb.run(&["show", "other"]).ok("fake-other\n");
    assert!(connected.elapsed() < Duration::from_millis(1000));
    let mut buf = Vec::new();
    let n = silent.read_to_end(&mut buf).expect("closed, not reset");
    let waited = connected.elapsed();
    assert_eq!(n, 0, "no reply to a request never sent");
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_millis(3000),
        "closed after {waited:?}"
    );
    still_serving(&sb, None);
}
