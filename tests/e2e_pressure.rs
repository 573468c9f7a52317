//! The driver and the client under pressure and under attack: a client never talks to
//! another user's server, dead clients free their slots, running out of descriptors
//! stops nothing for good, a cancelled request hands its connection on, a cut TLS answer
//! is not taken for a whole one, and requests nobody waits for any more are not carried
//! out.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::provider::{Provider, Reply};
use common::{Sandbox, WAIT, account, wait_for};

/// The user the tests that need two users run clients as.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: plain system call.
    unsafe { libc::geteuid() == 0 }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown");
}

/// A server of another user, as an attacker would run it on the socket path: it answers
/// every connection with a token of its choosing at once, and keeps what it is sent.
struct Impostor {
    connections: Arc<AtomicUsize>,
    received: Arc<std::sync::Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Impostor {
    fn listen(socket: &Path) -> Impostor {
        let listener = UnixListener::bind(socket).expect("bind the impostor");
        set_mode(socket, 0o666);
        listener.set_nonblocking(true).expect("nonblocking");
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, r, s) = (connections.clone(), received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(common::POLL);
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = stream.write_all(br#"{"reply":"token","token":"impostor-token"}"#);
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let mut got = Vec::new();
                let _ = stream.read_to_end(&mut got);
                r.lock().expect("lock").extend_from_slice(&got);
            }
        });
        Impostor {
            connections,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Stops the impostor and asserts that it was sent nothing at all.
fn impostor_check(impostor: Impostor) {
    let stop = impostor.stop.clone();
    stop.store(true, Ordering::SeqCst);
    let received = {
        let mut i = impostor;
        if let Some(t) = i.thread.take() {
            let _ = t.join();
        }
        i.received()
    };
    assert!(
        received.is_empty(),
        "the impostor was sent {:?}",
        String::from_utf8_lossy(&received)
    );
}

/// Runs `pizauth ARGS` as [`NOBODY`] with `input` on stdin.
fn run_as_nobody(sb: &Sandbox, args: &[&str], input: &[u8]) -> Output {
    let mut child = sb
        .command(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the client as another user");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("wait for the client")
}

/// Break 1: without `$XDG_RUNTIME_DIR` the socket lies under `$TMPDIR`, where another
/// user can make the runtime directory first and listen in it. The client refuses a
/// directory that is not its user's own and private, and a server of another uid, before
/// it sends anything: no token goes out (`restore`), and none comes in (`show`).
#[test]
fn a_client_refuses_a_runtime_directory_or_a_server_of_another_user() {
    if !is_root() {
        eprintln!("needs root to run a client as another user; not run");
        return;
    }
    let mut sb = Sandbox::new("impostor");
    sb.use_tmpdir_runtime();
    let dir = sb.runtime_dir();
    std::fs::create_dir_all(&dir).expect("mkdir");
    for level in [sb.path("tmp"), sb.path("tmp/runtime-tester")] {
        set_mode(&level, 0o755);
    }
    set_mode(&sb.dir, 0o755);
    // The attacker's (root's) directory, open to all, with the attacker's server in it.
    set_mode(&dir, 0o755);
    let impostor = Impostor::listen(&sb.socket());
    let dump = b"a dump that holds every token\n";

    let out = run_as_nobody(&sb, &["restore"], dump);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "ERROR runtime directory {} belongs to another user (uid 0): refusing to use it\n",
            dir.display()
        )
    );
    let out = run_as_nobody(&sb, &["show", "work"], b"");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(impostor.connections.load(Ordering::SeqCst), 0);

    // The client's own directory, private, but with another user's server listening in
    // it (made before the directory was handed over, say).
    chown(&dir, NOBODY);
    set_mode(&dir, 0o700);
    let refused = format!(
        "ERROR the server on {} runs as another user (uid 0): refusing to talk to it\n",
        sb.socket().display()
    );
    let out = run_as_nobody(&sb, &["restore"], dump);
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stderr)),
        (Some(1), refused.as_str().into())
    );
    let out = run_as_nobody(&sb, &["show", "work"], b"");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        (Some(1), "".into(), refused.as_str().into())
    );
    // The impostor was reached (the check needs the connection) and was sent nothing.
    wait_for("the impostor to see both clients", WAIT, || {
        (impostor.connections.load(Ordering::SeqCst) >= 2).then_some(())
    });
    impostor_check(impostor);

    // A directory that others can enter is refused even if it is the client's own.
    set_mode(&dir, 0o750);
    let out = run_as_nobody(&sb, &["status"], b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "ERROR runtime directory {} can be entered by other users (mode 750): refusing to use it\n",
            dir.display()
        )
    );
}

/// Gives account `work` token `fake-access` through the browser flow.
fn authorise(sb: &Sandbox, provider: &Provider) {
    provider.push([Reply::token(
        "fake-access",
        Some("fake-refresh"),
        Some(3600),
    )]);
    sb.authorise("work", "fake-access");
}

/// Sends `request` on a connection of its own and half-closes, leaving the connection
/// open for the reply.
fn ask_raw(sb: &Sandbox, request: &str) -> UnixStream {
    let mut s = UnixStream::connect(sb.socket()).expect("connect");
    s.write_all(request.as_bytes()).expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    s
}

/// How many lines of the server's log contain `text`.
fn log_count(sb: &Sandbox, text: &str) -> usize {
    sb.log().lines().filter(|l| l.contains(text)).count()
}

/// Break 2: 512 clients waiting with `show -w` that hang up free their slots at once;
/// before, they locked every other client out until their waits ended.
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
#[test]
fn waiting_clients_that_hang_up_free_their_slots_at_once() {
    common::raise_fd_limit();
    let provider = Provider::start();
    let mut sb = Sandbox::new("dead-waiters");
    sb.write_config(&account("work", &provider, ""));
    sb.start();
    // The first authorisation request opens what randomness needs, for good.
    sb.auth_url("work");
    let baseline = sb.server_fds();
    let request = r#"{"cmd":"show","account":"work","with_url":false,"wait":600}"#;
    let waiting: Vec<UnixStream> = (0..512).map(|_| ask_raw(&sb, request)).collect();
    wait_for("512 clients to be waiting", WAIT, || {
        (sb.server_fds() >= baseline + 512).then_some(())
    });
    drop(waiting);
    // Served at once, not after the waits (10 minutes) or the client's own timeout.
    let run = sb.run(&["show", "work"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with(common::UNAVAILABLE_WITH_URL),
        "{run:?}"
    );
    wait_for(
        "the server's descriptors to return to their baseline",
        WAIT,
        || (sb.server_fds() <= baseline).then_some(()),
    );
    // The token, once it comes, goes to the client still waiting, not to the dead ones.
    let mut live = ask_raw(&sb, request);
    authorise(&sb, &provider);
    live.set_read_timeout(Some(WAIT)).expect("timeout");
    let reply = String::from_utf8_lossy(&common::read_all(&mut live)).into_owned();
    assert_eq!(reply, r#"{"reply":"token","token":"fake-access"}"#);
}

/// Break 8: a client that gave up (its wait ended while the server was stopped) and
/// closed its socket: the request is not carried out once the server runs again.
#[test]
fn a_request_whose_client_gave_up_is_not_carried_out() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("gave-up");
    sb.write_config(&account("work", &provider, ""));
    sb.start();
    sb.signal(libc::SIGSTOP);
    drop(ask_raw(&sb, r#"{"cmd":"shutdown"}"#));
    sb.signal(libc::SIGCONT);
    wait_for("the server to drop the request", WAIT, || {
        (log_count(&sb, "a control client left before its request was read") == 1).then_some(())
    });
    // Still running: the shutdown nobody waited for was not done.
    sb.run(&["status"]).ok("work: No access token\n");
    // A client that waits for its answer is still served.
    sb.run(&["shutdown"]).ok("");
    assert_eq!(sb.wait_server_exit(), Some(0));
}

/// Break 6: a dangling symbolic link where the socket goes is no "already running"
/// server: the error says what is there, and the link is left alone.
#[test]
fn a_dangling_symlink_at_the_socket_path_is_named() {
    let provider = Provider::start();
    let sb = Sandbox::new("dangling");
    sb.write_config(&account("work", &provider, ""));
    sb.make_runtime_dir();
    let target = sb.path("nowhere");
    std::os::unix::fs::symlink(&target, sb.socket()).expect("symlink");
    let config = sb.config_path().display().to_string();
    let run = sb.run(&["server", "-c", &config]);
    run.fails(&format!(
        "ERROR {} is a dangling symbolic link to {}, not a socket: remove it to start the server\n",
        sb.socket().display(),
        target.display()
    ));
    assert!(std::fs::symlink_metadata(sb.socket()).is_ok_and(|m| m.file_type().is_symlink()));
}

/// Break 3: with the server out of descriptors, the clients and the browser that queued
/// up meanwhile are served as soon as descriptors are free again; the condition is
/// logged once, and its end too.
#[cfg_attr(not(target_os = "linux"), ignore = "reads /proc, which only Linux has")]
#[test]
fn after_running_out_of_descriptors_every_listener_accepts_again() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("emfile");
    sb.write_config(&account("work", &provider, ""));
    sb.start_with_fd_limit(64);
    authorise(&sb, &provider);
    let http = sb.http_port();
    let baseline = sb.server_fds();
    let out_of = "new connections wait until descriptors are freed";
    // Silent clients, more than the server has descriptors for.
    let held: Vec<UnixStream> = (0..80)
        .map(|_| UnixStream::connect(sb.socket()).expect("connect"))
        .collect();
    wait_for("the server to run out of descriptors", WAIT, || {
        (log_count(&sb, out_of) == 1).then_some(())
    });
    // A client and a browser queue up behind them.
    let show = sb
        .command(&["show", "work"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run show");
    let browser = std::thread::spawn(move || {
        common::browser::get(&format!("http://127.0.0.1:{http}/?state=x"), None)
    });
    // Let both reach the listen queues, then free the descriptors.
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let out = show.wait_with_output().expect("show");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (Some(0), "fake-access\n".to_owned(), String::new())
    );
    let page = browser
        .join()
        .expect("browser")
        .expect("the redirect answered");
    assert_eq!(page.status, 200);
    wait_for("the end of the condition to be logged", WAIT, || {
        (log_count(&sb, "file descriptors are available again") == 1).then_some(())
    });
    assert_eq!(log_count(&sb, out_of), 1, "logged once");
    wait_for(
        "the server's descriptors to return to their baseline",
        WAIT,
        || (sb.server_fds() <= baseline).then_some(()),
    );
    sb.run(&["show", "work"]).ok("fake-access\n");
}

/// Break 4: requests that time out on a token endpoint that never answers hand their
/// connections on: a healthy account queued behind 40 of them still gets its token.
#[test]
fn a_cancelled_request_hands_its_connection_to_the_next_in_the_queue() {
    let hanging = Provider::start();
    hanging.set_fallback(Reply::Hang);
    let healthy = Provider::start();
    healthy.set_fallback(Reply::token("healthy-token", None, Some(3600)));
    let mut sb = Sandbox::new("starved");
    sb.set_env("PIZAUTH_TEST_TUNABLES", "http_timeout_ms=1000");
    let cc = |name: &str, p: &Provider| {
        format!(
            "account \"{name}\" {{\n    auth_flow = client_credentials;\n    \
             token_uri = \"{}\";\n    client_id = \"c\";\n    client_secret = \"s\";\n}}\n",
            p.url("/token")
        )
    };
    let mut config: String = (0..40).map(|i| cc(&format!("a{i:02}"), &hanging)).collect();
    config.push_str(&cc("zz", &healthy));
    sb.write_config(&config);
    sb.start();
    // Each account asks for its token when first shown.
    for i in 0..40 {
        assert_eq!(sb.run(&["show", &format!("a{i:02}")]).code, 1);
    }
    hanging.wait_connections(32);
    assert_eq!(sb.run(&["show", "zz"]).code, 1);
    sb.wait_token("zz", "healthy-token");
    // The hanging ones were tried too, not dropped: all 40 reached the provider.
    hanging.wait_connections(40);
}

/// Break 5: a token answer whose body ends with the connection (no length, not chunked)
/// and whose TLS connection ends without `close_notify` may have been cut by anyone on
/// the path: a transient I/O failure, the token kept, not a new token (or a failure that
/// forces a new login).
#[test]
fn a_tls_answer_cut_without_close_notify_is_a_transient_failure() {
    let ca = common::tls::TestCa::new("cut");
    let auth = Provider::start();
    let token = Provider::start_tls(ca.server_config.clone());
    let mut sb = Sandbox::new("tls-cut");
    let bundle = sb.path("ca.pem");
    std::fs::write(&bundle, &ca.ca_pem).expect("write the CA");
    sb.set_env("SSL_CERT_FILE", &bundle.display().to_string());
    sb.write_config(&format!(
        "account \"work\" {{\n    auth_uri = \"{}\";\n    token_uri = \"{}\";\n    \
         client_id = \"client-work\";\n}}\n",
        common::config_string(&auth.url("/authorize")),
        common::config_string(&token.url("/token")),
    ));
    sb.start();
    authorise(&sb, &token);
    // The whole answer, as JSON goes, but the TLS stream ends without close_notify.
    token.push([Reply::Raw(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n\
          {\"access_token\":\"cut-short\",\"token_type\":\"Bearer\",\"expires_in\":3600}"
            .to_vec(),
    )]);
    sb.run(&["refresh", "work"]).ok("");
    token.wait_token_requests(2);
    wait_for("the cut answer to be refused", WAIT, || {
        (log_count(&sb, "without TLS close_notify") >= 1).then_some(())
    });
    sb.run(&["show", "work"]).ok("fake-access\n");
    assert!(
        sb.status_of("work")
            .starts_with("work: Active access token (obtained "),
        "{}",
        sb.status_of("work")
    );
    // A whole answer (with its length) is taken as before.
    token.push([Reply::token("fake-access-2", None, Some(3600))]);
    sb.run(&["refresh", "work"]).ok("");
    sb.wait_token("work", "fake-access-2");
}

/// Break 7: a redirect whose `Host` names another host (a page of another site whose
/// name was pointed at 127.0.0.1: DNS rebinding) gets a 4xx and changes nothing; the
/// listener's own names with its port are served.
#[test]
fn a_redirect_for_another_host_is_refused_and_changes_nothing() {
    let provider = Provider::start();
    let mut sb = Sandbox::new("rebinding");
    sb.write_config(&account("work", &provider, ""));
    sb.start();
    let port = sb.http_port();
    let url = sb.auth_url("work");
    let state = url::Url::parse(&url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state");
    let get = |host: &str| -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let request = format!("GET /?state={state}&code=stolen HTTP/1.1\r\nHost: {host}\r\n\r\n");
        s.write_all(request.as_bytes()).expect("send");
        String::from_utf8_lossy(&common::read_all(&mut s)).into_owned()
    };
    for host in [
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        "localhost".to_owned(),
    ] {
        let answer = get(&host);
        assert!(answer.starts_with("HTTP/1.1 421 "), "{host}: {answer:?}");
    }
    // Nothing was exchanged, and the same request is still pending.
    assert!(provider.token_requests().is_empty());
    assert_eq!(sb.auth_url("work"), url);
    // The listener's own names are served.
    provider.push([Reply::token("fake-access", None, Some(3600))]);
    let answer = get(&format!("127.0.0.1:{port}"));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    sb.wait_token("work", "fake-access");
    assert_eq!(provider.token_requests()[0].field("code"), Some("stolen"));
}
