//! Garbage from peers: whatever arrives on the redirect listeners or the control socket,
//! the server keeps serving, and `show` still prints the token afterwards.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::provider::{Provider, Reply};
use common::{Sandbox, account, noise, read_all};

/// A started sandbox whose account `work` holds token `fake-access`.
fn serving(name: &str, provider: &Provider) -> Sandbox {
    let mut sb = Sandbox::new(name);
    sb.write_config(&account("work", provider, ""));
    sb.start();
    provider.push([Reply::token(
        "fake-access",
        Some("fake-refresh"),
        Some(3600),
    )]);
    sb.authorise("work", "fake-access");
    sb
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s
}

/// Sends `bytes`, half-closes, and returns the status of whatever came back (0 if the
/// server closed without an HTTP answer).
fn send(port: u16, bytes: &[u8]) -> u16 {
    let mut s = connect(port);
    // The server may close before taking everything.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let answer = read_all(&mut s);
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

#[test]
fn garbage_on_the_redirect_listeners() {
    let provider = Provider::start();
    let sb = serving("hostile-redirect", &provider);
    let info = sb.info_json();
    let port = |k: &str| -> u16 {
        info["server_info"][k]
            .as_str()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    };
    let (http, https) = (port("http_port"), port("https_port"));

    // Random bytes: not HTTP, so 400.
    for seed in 1..=5 {
        let mut bytes = noise(seed, 2048);
        bytes.extend_from_slice(b"\r\n\r\n");
        assert_eq!(send(http, &bytes), 400, "seed {seed}");
    }
    // A 20 KiB header: 431.
    let big = format!(
        "GET /?state=x HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    assert_eq!(send(http, big.as_bytes()), 431);
    // Half a request, then close: no answer, no harm.
    assert_eq!(send(http, b"GET /?state=x HTTP/1.1\r\nHo"), 0);
    // Garbage where a TLS handshake should be.
    assert_eq!(send(https, &noise(9, 4096)), 0);
    // Many idle connections on both listeners, more than either keeps: the oldest are
    // dropped and new ones are still served.
    let idle: Vec<TcpStream> = (0..300)
        .map(|i| connect(if i % 2 == 0 { http } else { https }))
        .collect();
    sb.run(&["show", "work"]).ok("fake-access\n");
    let page = common::browser::get(&format!("http://127.0.0.1:{http}/?state=x"), None)
        .expect("served while flooded");
    assert_eq!(page.status, 200);
    drop(idle);

    sb.run(&["show", "work"]).ok("fake-access\n");
    assert!(
        sb.status_of("work")
            .starts_with("work: Active access token (obtained ")
    );
}

#[test]
fn garbage_on_the_control_socket() {
    let provider = Provider::start();
    let sb = serving("hostile-control", &provider);
    let socket = sb.socket();
    let ask = |bytes: &[u8]| -> String {
        let mut s = UnixStream::connect(&socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let _ = s.write_all(bytes);
        let _ = s.shutdown(Shutdown::Write);
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
    };
    // Each gets an error reply that quotes nothing of what was sent.
    for request in [
        noise(3, 10_000),
        b"not json at all".to_vec(),
        b"{\"cmd\": \"show\"}".to_vec(),
        b"{\"cmd\": \"launch_missiles\", \"account\": \"work\"}".to_vec(),
        b"[1, 2, 3]".to_vec(),
    ] {
        let reply = ask(&request);
        let parsed: serde_json::Value = serde_json::from_str(&reply).expect("a JSON reply");
        assert_eq!(parsed["reply"], "error", "{reply}");
        assert!(!reply.contains("missiles"), "{reply}");
    }
    // Connecting and closing without a word (how a second server checks for this one)
    // gets no reply at all.
    assert_eq!(ask(b""), "");

    // A client that connects and sends nothing does not hold up others.
    let silent = UnixStream::connect(&socket).expect("connect");
    let started = std::time::Instant::now();
    sb.run(&["show", "work"]).ok("fake-access\n");
    sb.run(&["status"])
        .ok(&format!("{}\n", sb.status_of("work")));
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);

    sb.run(&["show", "work"]).ok("fake-access\n");
}

#[test]
fn a_crowd_of_clients_is_served() {
    let provider = Provider::start();
    let sb = serving("crowd", &provider);
    let socket = sb.socket();
    // More connections than the server handles at once (512): the rest wait in the
    // listen queue and are served as earlier ones finish.
    let mut clients: Vec<UnixStream> = (0..600)
        .map(|_| {
            let s = UnixStream::connect(&socket).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(15)))
                .expect("timeout");
            s
        })
        .collect();
    let request = br#"{"cmd":"show","account":"work","with_url":true}"#;
    for s in &mut clients {
        s.write_all(request).expect("send");
        s.shutdown(Shutdown::Write).expect("shutdown");
    }
    for (i, s) in clients.iter_mut().enumerate() {
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("reply");
        let parsed: serde_json::Value = serde_json::from_str(&reply).expect("JSON");
        assert_eq!(parsed["reply"], "token", "client {i}: {reply}");
        assert_eq!(parsed["token"], "fake-access", "client {i}");
    }
    sb.run(&["show", "work"]).ok("fake-access\n");
}

/// SPEC.md section 8: the server answers only peers of its own uid. The runtime
/// directory (0700) and the socket (0600) normally keep other users out before the
/// server sees them; here both are opened up, so that a client of another user reaches
/// the server and only SO_PEERCRED stands in its way. Needs root, to run that client as
/// another user (the test says so and checks nothing otherwise).
#[test]
fn a_client_of_another_user_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // SAFETY: plain system call.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("a_client_of_another_user_is_refused: needs root to switch uid; not run");
        return;
    }
    let provider = Provider::start();
    let sb = serving("other-uid", &provider);
    let open = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    for dir in [sb.dir.clone(), sb.path("run"), sb.runtime_dir()] {
        open(&dir, 0o711);
    }
    open(&sb.socket(), 0o666);
    let nobody = 65534;
    // pizauth's own client refuses a runtime directory of another user before it
    // connects; only a client made by hand reaches the server.
    let out = sb
        .command(&["show", "work"])
        .uid(nobody)
        .gid(nobody)
        .output()
        .expect("run the client as another user");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "the token went to another user");
    let raw = "import socket, sys\n\
               s = socket.socket(socket.AF_UNIX)\n\
               s.connect(sys.argv[1])\n\
               s.sendall(b'{\"cmd\":\"show\",\"account\":\"work\",\"with_url\":false}')\n\
               s.shutdown(socket.SHUT_WR)\n\
               sys.stdout.buffer.write(s.recv(65536))\n";
    let Ok(out) = std::process::Command::new("python3")
        .arg("-c")
        .arg(raw)
        .arg(sb.socket())
        .uid(nobody)
        .gid(nobody)
        .output()
    else {
        eprintln!("a_client_of_another_user_is_refused: no python3 for a raw client; not run");
        return;
    };
    // The server closes at once (the write may fail): it answers nothing.
    assert!(out.stdout.is_empty(), "the token went to another user");
    let log = sb.log();
    assert!(
        log.contains(&format!("refused a control client of uid {nobody}")),
        "{log}"
    );
    // The owner is still served, once the directory is private again.
    open(&sb.runtime_dir(), 0o700);
    sb.run(&["show", "work"]).ok("fake-access\n");
}
