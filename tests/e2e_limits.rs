//! The limits of `docs/LIMITS.md`, each tested at its edge through the real binary: what
//! is exactly at a limit is served, what is one past it is refused (or waits, or is
//! dropped) as documented, and the server goes on serving either way.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::provider::{Provider, Reply};
use common::{Sandbox, account, config_string, read_all, wait_for};

/// Bytes of one control request (`MAX_REQUEST_BYTES`).
const MAX_REQUEST: usize = 16 << 20;
/// Bytes of a redirect request's head.
const MAX_REDIRECT_HEAD: usize = 16 << 10;
/// Redirect connections per listener.
const MAX_REDIRECT_CONNS: usize = 128;
/// Control connections served at once.
const MAX_CONTROL_CONNS: usize = 512;
/// Bytes of a token endpoint's response body.
const MAX_BODY: usize = 1 << 20;
/// Commands running at once.
const MAX_CHILDREN: usize = 32;
/// Bytes of a config file.
const MAX_CONFIG: usize = 1 << 20;

#[test]
fn the_documented_limits_are_the_code_s() {
    assert_eq!(MAX_REQUEST, pizauth_fsm::protocol::MAX_REQUEST_BYTES);
    assert_eq!(
        MAX_REDIRECT_HEAD,
        pizauth_io::http1::MAX_REDIRECT_REQUEST_BYTES
    );
    assert_eq!(MAX_BODY, pizauth_io::http1::MAX_BODY_BYTES);
    assert_eq!(MAX_CONFIG, pizauth_fsm::config::MAX_CONFIG_BYTES);
    let t = pizauth_fsm::server::Tunables::default();
    assert_eq!(t.max_children, MAX_CHILDREN);
    assert_eq!(t.max_queued_children, 1024);
    assert_eq!(t.http_timeout, Duration::from_secs(30));
    let d = pizauth_io::driver::Timeouts::default();
    assert_eq!(
        (d.control, d.redirect),
        (Duration::from_secs(10), Duration::from_secs(10))
    );
}

/// A started sandbox whose account `work` holds `fake-work` (refresh token
/// `fake-refresh`), with `PIZAUTH_TEST_TUNABLES` set to `tunables`.
fn serving(name: &str, provider: &Provider, options: &str, tunables: &str) -> Sandbox {
    let mut sb = Sandbox::new(name);
    sb.write_config(&account("work", provider, options));
    sb.set_env("PIZAUTH_TEST_TUNABLES", tunables);
    sb.start();
    provider.push([Reply::token("fake-work", Some("fake-refresh"), Some(3600))]);
    sb.authorise("work", "fake-work");
    sb
}

/// The parsed reply of the server to a raw control request.
fn control_reply(sb: &Sandbox, request: &[u8]) -> serde_json::Value {
    let reply = sb.control_raw(request);
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

/// `{"cmd":"status"}` padded with spaces to `len` bytes (JSON allows trailing space).
fn status_request(len: usize) -> Vec<u8> {
    let mut r = br#"{"cmd":"status"}"#.to_vec();
    r.resize(len, b' ');
    r
}

#[test]
fn a_control_request_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() {
    let provider = Provider::start();
    let sb = serving("control-bytes", &provider, "", "");
    let reply = control_reply(&sb, &status_request(MAX_REQUEST));
    assert_eq!(reply["reply"], "status", "{reply}");
    assert_eq!(reply["accounts"][0]["name"], "work", "{reply}");
    let reply = control_reply(&sb, &status_request(MAX_REQUEST + 1));
    assert_eq!(reply["reply"], "error", "{reply}");
    assert_eq!(reply["message"], "request larger than 16777216 bytes");
    sb.run(&["show", "work"]).ok("fake-work\n");
}

/// A restore carries a dump: the client refuses one larger than the request limit with a
/// clear message before sending anything; the server reads a restore request of exactly
/// the limit (a dump, then blanks) and refuses one byte more.
#[test]
fn restore_refuses_a_dump_over_16_mib_and_the_server_reads_one_of_exactly_the_limit() {
    let provider = Provider::start();
    let sb = serving("dump-bytes", &provider, "", "");
    let dump = sb.run(&["dump"]);
    assert_eq!(dump.code, 0, "{dump:?}");
    sb.run(&["revoke", "work"]).ok("");
    // Past the limit: the client says so, and nothing reaches the server.
    let mut big = dump.stdout.clone().into_bytes();
    big.resize(MAX_REQUEST + 1, b' ');
    sb.run_with_stdin(&["restore"], &big)
        .fails("ERROR the dump on stdin is larger than the limit of 16 MiB\n");
    sb.run(&["show", "-u", "work"]).fails(common::UNAVAILABLE);
    // On the socket: a restore request one byte too long changes nothing...
    let request = serde_json::json!({"cmd": "restore", "dump": dump.stdout}).to_string();
    let mut raw = request.into_bytes();
    raw.resize(MAX_REQUEST + 1, b' ');
    let reply = control_reply(&sb, &raw);
    assert_eq!(
        reply["message"], "request larger than 16777216 bytes",
        "{reply}"
    );
    sb.run(&["show", "-u", "work"]).fails(common::UNAVAILABLE);
    // ...and one of exactly the limit is read and restores the token.
    raw.truncate(MAX_REQUEST);
    let reply = control_reply(&sb, &raw);
    assert_eq!(reply["reply"], "done", "{reply}");
    sb.run(&["show", "work"]).ok("fake-work\n");
}

/// Sends `bytes` on a new connection to the HTTP listener, half-closes, and returns the
/// status and body of the answer (0 and "" if the server closed without one).
fn redirect(port: u16, bytes: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(common::WAIT)).expect("timeout");
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let answer = String::from_utf8_lossy(&read_all(&mut s)).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A redirect request to the listener on `port` whose head is exactly `len` bytes.
fn head_of(port: u16, len: usize) -> Vec<u8> {
    let start = format!("GET /?state=nothing HTTP/1.1\r\nHost: localhost:{port}\r\nX-Pad: ");
    let mut head = start.as_bytes().to_vec();
    head.resize(len - 4, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

#[test]
fn a_redirect_head_of_16_kib_is_read_and_one_byte_more_gets_431() {
    let provider = Provider::start();
    let sb = serving("redirect-bytes", &provider, "", "");
    let port = sb.http_port();
    let (status, body) = redirect(port, &head_of(port, MAX_REDIRECT_HEAD));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("pizauth: no pending authorisation request matches"));
    assert_eq!(
        redirect(port, &head_of(port, MAX_REDIRECT_HEAD + 1)),
        (431, "pizauth: request head too large".to_owned())
    );
    sb.run(&["show", "work"]).ok("fake-work\n");
}

/// Whether the server has closed `s` (it reads end of file or an error, not "would
/// block").
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 256];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            // An answer: read on to see whether the end follows.
            Ok(_) => (),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).expect("blocking");
    closed
}

/// Waits until the server has `n` more descriptors open than `base`.
fn wait_fds(sb: &mut Sandbox, base: usize, n: usize) {
    wait_for(&format!("{n} more open descriptors"), common::WAIT, || {
        (sb.server_fds() >= base + n).then_some(())
    });
}

/// At 128 connections on a listener, the 129th makes room by closing the oldest one
/// still reading its request; a connection whose request was answered and which is
/// left open counts too, and makes room the same way.
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
#[test]
fn the_129th_redirect_connection_evicts_the_oldest() {
    let provider = Provider::start();
    let mut sb = serving("redirect-conns", &provider, "", "");
    let port = sb.http_port();
    let base = sb.server_fds();
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(common::WAIT)).expect("timeout");
        s
    };
    let mut held: Vec<TcpStream> = (0..MAX_REDIRECT_CONNS).map(|_| connect()).collect();
    wait_fds(&mut sb, base, MAX_REDIRECT_CONNS);
    assert!(
        !closed_by_server(&mut held[0]),
        "nothing dropped at the cap"
    );
    // One more: the oldest goes, and only it.
    held.push(connect());
    wait_for("the oldest connection to be closed", common::WAIT, || {
        closed_by_server(&mut held[0]).then_some(())
    });
    for (i, s) in held.iter_mut().enumerate().skip(1) {
        assert!(!closed_by_server(s), "connection {i} was closed too");
    }
    assert_eq!(sb.server_fds(), base + MAX_REDIRECT_CONNS);
    drop(held);

    // Connections that had their answer and stay open count as much (here 200 of them,
    // which would otherwise each hold a descriptor for the whole timeout).
    wait_for("the held connections to close", common::WAIT, || {
        (sb.server_fds() == base).then_some(())
    });
    let mut answered = Vec::new();
    for _ in 0..200 {
        let mut s = connect();
        s.write_all(&head_of(port, 200)).expect("send");
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("an answer");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
        answered.push(s);
    }
    let open = sb.server_fds() - base;
    assert!(
        open <= MAX_REDIRECT_CONNS,
        "{open} redirect connections open"
    );
    // And one more request is still answered.
    let (status, _) = redirect(port, &head_of(port, 300));
    assert_eq!(status, 200);
    sb.run(&["show", "work"]).ok("fake-work\n");
}

/// More than 512 control clients: 512 are served at once, the rest wait in the listen
/// queue; silent ones are dropped at the control timeout and whoever waited behind them
/// is then served.
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
#[test]
fn control_clients_beyond_512_wait_in_the_listen_queue() {
    let provider = Provider::start();
    let mut sb = serving("control-conns", &provider, "", "control_timeout_ms=1000");
    let base = sb.server_fds();
    let before = Instant::now();
    let silent: Vec<UnixStream> = (0..MAX_CONTROL_CONNS + 8)
        .map(|_| {
            let s = UnixStream::connect(sb.socket()).expect("connect");
            s.set_read_timeout(Some(common::WAIT)).expect("timeout");
            s
        })
        .collect();
    wait_fds(&mut sb, base, MAX_CONTROL_CONNS);
    let open = sb.server_fds() - base;
    assert_eq!(open, MAX_CONTROL_CONNS, "control connections open");
    // A real client waits behind them until the first 512 time out.
    sb.run(&["show", "work"]).ok("fake-work\n");
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "served after {waited:?}: the 512 did not hold it up"
    );
    for (i, mut s) in silent.into_iter().enumerate() {
        let mut buf = Vec::new();
        assert_eq!(s.read_to_end(&mut buf).ok(), Some(0), "client {i}");
    }
    assert!(before.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_control_timeout_cuts_a_silent_client_and_spares_a_slow_one() {
    let provider = Provider::start();
    let sb = serving("control-time", &provider, "", "control_timeout_ms=1000");
    let connect = || {
        let s = UnixStream::connect(sb.socket()).expect("connect");
        s.set_read_timeout(Some(common::WAIT)).expect("timeout");
        s
    };
    let start = Instant::now();
    let mut silent = connect();
    let mut slow = connect();
    let request = br#"{"cmd":"show","account":"work","with_url":true}"#;
    slow.write_all(&request[..10]).expect("send");
    std::thread::sleep(Duration::from_millis(600));
    slow.write_all(&request[10..]).expect("send");
    slow.shutdown(Shutdown::Write).expect("shutdown");
    let mut reply = String::new();
    slow.read_to_string(&mut reply).expect("a reply");
    assert_eq!(reply, r#"{"reply":"token","token":"fake-work"}"#);
    let mut buf = Vec::new();
    assert_eq!(silent.read_to_end(&mut buf).ok(), Some(0));
    let cut = start.elapsed();
    assert!(
        cut >= Duration::from_millis(950) && cut < Duration::from_millis(2000),
        "cut after {cut:?}"
    );
    sb.run(&["show", "work"]).ok("fake-work\n");
}

#[test]
fn the_redirect_timeout_cuts_a_silent_connection_and_spares_a_slow_one() {
    let provider = Provider::start();
    let sb = serving("redirect-time", &provider, "", "redirect_timeout_ms=1000");
    let port = sb.http_port();
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(common::WAIT)).expect("timeout");
        s
    };
    sb.run(&["revoke", "work"]).ok("");
    let url = sb.auth_url("work");
    let target = url::Url::parse(&url).expect("url");
    let state = target
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let start = Instant::now();
    let mut silent = connect();
    // The browser's redirect, sent slowly but within the time.
    provider.push([Reply::token("fake-work-2", None, Some(3600))]);
    let mut slow = connect();
    let request =
        format!("GET /?code=code-slow&state={state} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n");
    slow.write_all(&request.as_bytes()[..20]).expect("send");
    std::thread::sleep(Duration::from_millis(600));
    slow.write_all(&request.as_bytes()[20..]).expect("send");
    let answer = String::from_utf8_lossy(&read_all(&mut slow)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.ends_with(common::PROCESSING_PAGE), "{answer}");
    sb.wait_token("work", "fake-work-2");
    assert_eq!(
        provider.token_requests()[1].field("code"),
        Some("code-slow")
    );
    // The silent one is closed without an answer at the timeout.
    let got = read_all(&mut silent);
    let cut = start.elapsed();
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        cut >= Duration::from_millis(950) && cut < Duration::from_millis(2000),
        "cut after {cut:?}"
    );
    sb.run(&["show", "work"]).ok("fake-work-2\n");
}

/// A token response `len` bytes long (`{"access_token": ...}` padded inside).
fn token_body(token: &str, len: usize) -> String {
    let start = format!("{{\"access_token\": \"{token}\", \"token_type\": \"Bearer\", \"pad\": \"");
    let mut body = start;
    let pad = len - body.len() - 2;
    body.push_str(&"x".repeat(pad));
    body.push_str("\"}");
    assert_eq!(body.len(), len);
    body
}

/// A body of exactly 1 MiB is a token; one byte more is refused (as a transient failure:
/// the token is kept), whether the length is announced or the body runs to the close.
#[test]
fn a_response_body_of_exactly_1_mib_is_accepted_and_one_byte_more_refused() {
    let provider = Provider::start();
    // Each try is asked for with `refresh`: nothing retries behind the test's back.
    let sb = serving("body-bytes", &provider, "    refresh_retry = 1h;", "");
    let until_close = |body: String| {
        let mut raw = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n".to_vec();
        raw.extend_from_slice(body.as_bytes());
        Reply::Raw(raw)
    };
    let cases = [
        (
            Reply::json(200, &token_body("fake-over", MAX_BODY + 1)),
            None,
        ),
        (
            Reply::json(200, &token_body("fake-at-1", MAX_BODY)),
            Some("fake-at-1"),
        ),
        (until_close(token_body("fake-over", MAX_BODY + 1)), None),
        (
            until_close(token_body("fake-at-2", MAX_BODY)),
            Some("fake-at-2"),
        ),
    ];
    let mut current = "fake-work".to_owned();
    for (i, (reply, outcome)) in cases.into_iter().enumerate() {
        provider.push([reply]);
        sb.run(&["refresh", "work"]).ok("");
        provider.wait_token_requests(i + 2);
        match outcome {
            Some(token) => {
                sb.wait_token("work", token);
                current = token.to_owned();
            }
            None => {
                let attempt = format!("attempt {} in a row; will retry", 1);
                wait_for("the refusal in the log", common::WAIT, || {
                    let log = sb.log();
                    (log.matches("refreshing failed (").count() == i / 2 + 1).then_some(log)
                });
                let log = sb.log();
                let line = log
                    .lines()
                    .rfind(|l| l.contains("refreshing failed ("))
                    .unwrap_or_default();
                assert!(
                    line.contains("larger than") && line.ends_with(&attempt),
                    "{line}"
                );
                sb.run(&["show", "work"]).ok(&format!("{current}\n"));
            }
        }
    }
    assert!(!sb.log().contains("fake-over"));
}

/// Forty accounts ask for authorisation at once: at most 32 notifications run at a
/// time, and the other eight run as the first ones end.
#[test]
fn at_most_32_commands_run_at_once_and_the_rest_run_later() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("children");
    let log = sb.path_str("children.log");
    let cmd = format!(
        "echo \"start $PIZAUTH_ACCOUNT\" >> '{log}'; sleep 0.7; echo \"end $PIZAUTH_ACCOUNT\" >> '{log}'"
    );
    let accounts: String = (0..40)
        .map(|i| account(&format!("a{i:02}"), &provider, ""))
        .collect();
    sb.write_config(&format!(
        "auth_notify_cmd = \"{}\";\n{accounts}",
        config_string(&cmd)
    ));
    sb.start();
    for i in 0..40 {
        let request = format!(r#"{{"cmd":"show","account":"a{i:02}","with_url":false}}"#);
        let reply = sb.control_raw(request.as_bytes());
        assert!(
            reply.contains("Access token unavailable until authorised"),
            "{reply}"
        );
    }
    let lines = sb.wait_lines("children.log", 80);
    // Replay the log: how many ran at once, and how many had ended when the 33rd began.
    let (mut running, mut most, mut started, mut ended) = (0, 0, 0, 0);
    let mut ended_before_33rd = None;
    for l in &lines {
        if l.starts_with("start ") {
            running += 1;
            started += 1;
            most = most.max(running);
            if started == MAX_CHILDREN + 1 {
                ended_before_33rd = Some(ended);
            }
        } else {
            running -= 1;
            ended += 1;
        }
    }
    assert_eq!(most, MAX_CHILDREN, "{lines:#?}");
    assert_eq!(started, 40);
    assert!(ended_before_33rd.is_some_and(|n| n >= 1), "{lines:#?}");
    let mut names: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("start "))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 40);
    assert_eq!(sb.run(&["status"]).stdout.lines().count(), 40);
}

/// A config of `len` bytes: one account, then a comment to fill it up.
fn config_of(provider: &Provider, len: usize) -> String {
    let mut text = account("work", provider, "");
    text.push_str("// ");
    let fill = len - text.len() - 1;
    text.push_str(&"x".repeat(fill));
    text.push('\n');
    assert_eq!(text.len(), len);
    text
}

#[test]
fn a_config_file_of_1_mib_is_read_and_one_byte_more_is_refused() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("config-bytes");
    let path = sb.config_path().display().to_string();
    sb.write_config(&config_of(&provider, MAX_CONFIG + 1));
    let run = sb
        .command(&["server", "-d", "-c", &path])
        .output()
        .expect("server");
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        format!("ERROR config file {path} is larger than the limit of 1024 KiB\n")
    );
    sb.write_config(&config_of(&provider, MAX_CONFIG));
    sb.start();
    sb.run(&["status"]).ok("work: No access token\n");
    // reload: the same edge.
    let mut two = config_of(&provider, MAX_CONFIG);
    two = two.replacen("account \"work\"", "account \"more\"", 1);
    sb.write_config(&two);
    sb.run(&["reload"]).ok("");
    sb.run(&["status"]).ok("more: No access token\n");
    sb.write_config(&config_of(&provider, MAX_CONFIG + 1));
    sb.run(&["reload"]).fails(&format!(
        "ERROR config file {path} is larger than the limit of 1024 KiB\n"
    ));
    sb.run(&["status"]).ok("more: No access token\n");
}

/// The connection caps add up to more descriptors than macOS (256) and OpenBSD (512)
/// give a process by default: the server raises its soft limit to what they need, as far
/// as the hard limit allows, and never lowers it.
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
#[test]
fn the_server_raises_its_limit_on_open_files_to_what_its_caps_need() {
    let limits = |sb: &mut Sandbox| {
        let text =
            std::fs::read_to_string(format!("/proc/{}/limits", sb.server_pid())).expect("limits");
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("open files line")
            .to_owned();
        let mut numbers = line.split_whitespace().skip(3);
        let soft: u64 = numbers.next().and_then(|n| n.parse().ok()).expect("soft");
        let hard: u64 = numbers.next().and_then(|n| n.parse().ok()).expect("hard");
        (soft, hard)
    };
    let provider = Provider::start();
    let config = account("work", &provider, "");
    let mut sb = Sandbox::new("fd-limit-raised");
    sb.write_config(&config);
    sb.start_with_fd_limits(256, 4096);
    assert_eq!(limits(&mut sb), (1024, 4096));
    let mut sb = Sandbox::new("fd-limit-high");
    sb.write_config(&config);
    sb.start_with_fd_limits(2048, 4096);
    assert_eq!(limits(&mut sb), (2048, 4096), "never lowered");
    let mut sb = Sandbox::new("fd-limit-capped");
    sb.write_config(&config);
    sb.start_with_fd_limits(256, 512);
    assert_eq!(
        limits(&mut sb),
        (512, 512),
        "as far as the hard limit allows"
    );
    let log = sb.log();
    assert!(log.contains("the limit on open files is 512"), "{log}");
}
